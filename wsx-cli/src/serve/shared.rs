//! `wsx serve --exec-shared 'CMD ARGS'`: one long-lived program for every WebSocket upgrade to
//! the paths nothing else serves (a chat bot, a game loop, a gateway to something with state).
//! The program reads JSON lines on stdin, one event each (a client joined, sent a message,
//! left), and prints lines on stdout: a plain line goes to every client as a text message, a
//! JSON object is an envelope addressed to some clients, or to all (docs/exec.md has the
//! format). When the program exits, its clients are closed with 1011 and it is started again
//! after a backoff (100 ms doubling to 10 s; back to 100 ms after it ran 10 s); while it is down,
//! upgrades are refused with 503.
//!
//! Queues are bounded: each client has `--room-backlog` messages of room; a client whose queue
//! is full (it does not read) is closed with 1013, so the program never waits for one client.
//! Events to the program wait for room in its stdin queue: a program that stops reading holds
//! the clients back (their sockets are not read), and new clients are refused (503) while the
//! queue is full.
//!
//! Imports only leaves (`args`, `exec` for the environment and signals, `pipe`): `upgrade.rs`
//! joins a client before its 101 ([`Shared::join`]), `session.rs` runs it ([`Client`]), and
//! `mod.rs` starts the program ([`Shared::spawn`]).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use wsx::{CloseCode, Message};

use super::exec::{inherited, signal, INHERITED};
use crate::args::ServeArgs;
use crate::pipe::{read_line, split, text_line, CHUNK};

/// Events waiting for the program's stdin.
const EVENTS: usize = 1024;

/// The first wait before a restart, and the longest.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(10));

/// A program that ran this long is restarted after the first wait again.
const STABLE: Duration = Duration::from_secs(10);

/// The shared program of --exec-shared and its clients (cloned: the state and the supervisor).
#[derive(Clone)]
pub(super) struct Shared {
    inner: Arc<Inner>,
    /// The queue of events to its stdin, shared by the instances of the program in turn.
    events: Arc<tokio::sync::Mutex<mpsc::Receiver<Event>>>,
}

/// What the program's supervisor, its output router and the sessions share.
struct Inner {
    words: Vec<String>,
    line: String,
    inherit: Vec<String>,
    grace: Duration,
    /// The longest stdout line read as one.
    max_line: usize,
    /// Messages a client may have waiting before it is closed with 1013.
    backlog: usize,
    /// The port the server listens on (SERVER_PORT).
    port: u16,
    events: mpsc::Sender<Event>,
    next_id: AtomicU64,
    /// The clients of the running instance (none while it is down), and which instance that is.
    clients: Mutex<Clients>,
}

#[derive(Default)]
struct Clients {
    /// The running instance (counted from 1); `None` while the program is down.
    running: Option<u64>,
    by_id: HashMap<u64, Entry>,
}

/// A client as the router sees it.
struct Entry {
    messages: mpsc::Sender<Message>,
    closer: oneshot::Sender<Closing>,
}

/// An instance of the program that runs, and the tasks that serve its pipes.
struct Running {
    child: Child,
    pid: u32,
    writer: tokio::task::JoinHandle<()>,
    router: tokio::task::JoinHandle<()>,
}

/// A line for the program's stdin, for one instance of it (events of clients of an instance
/// that has exited are not shown to the next one).
struct Event {
    instance: u64,
    line: String,
}

/// Why the program side closes a client.
#[derive(Debug)]
pub(super) struct Closing {
    pub(super) code: CloseCode,
    pub(super) reason: String,
    /// Whether the messages queued before it are sent first (not for a client that is too
    /// slow to take them).
    pub(super) drain: bool,
}

/// Why a client could not join.
#[derive(Debug)]
pub(super) enum Refused {
    /// The program is not running (restarting) or does not take events (its stdin queue is
    /// full): 503.
    Down,
}

/// What the program is told about a client that joins.
pub(super) struct Joining<'a> {
    pub(super) path: &'a str,
    pub(super) query: Option<&'a str>,
    /// The client's address (see --trust-proxy) and the port it connected from.
    pub(super) remote: SocketAddr,
    /// The token's user, with --auth-*.
    pub(super) user: Option<&'a str>,
}

impl Shared {
    /// The program of `args` (`None` without --exec-shared), for a server on `port`. Not
    /// started yet: [`Shared::supervise`] runs it.
    pub(super) fn from_args(args: &ServeArgs, port: u16) -> anyhow::Result<Option<Self>> {
        let Some(line) = &args.exec_shared else { return Ok(None) };
        let words = split(line).map_err(|e| anyhow::anyhow!("--exec-shared {line:?}: {e}"))?;
        if words.is_empty() {
            anyhow::bail!("--exec-shared: no command given");
        }
        let mut inherit: Vec<String> = INHERITED.iter().map(|v| v.to_string()).collect();
        inherit.extend(args.exec_env.iter().cloned());
        let (events, receiver) = mpsc::channel(EVENTS);
        let inner = Inner {
            words,
            line: line.clone(),
            inherit,
            grace: args.exec_grace,
            max_line: args.max_message_size.max(1),
            backlog: args.room_backlog.max(1),
            port,
            events,
            next_id: AtomicU64::new(1),
            clients: Mutex::default(),
        };
        let events = Arc::new(tokio::sync::Mutex::new(receiver));
        Ok(Some(Self { inner: Arc::new(inner), events }))
    }

    /// What runs, for the banner.
    pub(super) fn describe(&self) -> String {
        format!("{} (one process for all, JSON lines)", self.inner.line)
    }

    /// Joins a client (before its 101): the program is told, and the client gets its queue.
    pub(super) fn join(&self, joining: &Joining<'_>) -> Result<Client, Refused> {
        let inner = &self.inner;
        let mut clients = inner.lock();
        let instance = clients.running.ok_or(Refused::Down)?;
        let id = inner.next_id.fetch_add(1, Relaxed);
        let mut event = json!({
            "type": "join",
            "id": id,
            "path": joining.path,
            "query": joining.query.unwrap_or_default(),
            "remote_addr": joining.remote.ip().to_canonical().to_string(),
            "remote_port": joining.remote.port(),
        });
        if let Some(user) = joining.user {
            event["user"] = Value::from(user);
        }
        let line = event.to_string();
        // Under the lock: an instance that exits meanwhile cannot miss this client.
        inner.events.try_send(Event { instance, line }).map_err(|_| Refused::Down)?;
        let (messages, receiver) = mpsc::channel(inner.backlog);
        let (closer, closed) = oneshot::channel();
        clients.by_id.insert(id, Entry { messages, closer });
        drop(clients);
        debug!(id, path = joining.path, "client joined the shared program");
        let events = Events { events: inner.events.clone(), instance };
        Ok(Client { id, instance, inner: inner.clone(), messages: receiver, closed, events })
    }

    /// Starts the program, then runs it on a task of its own until `stop` fires, restarting it
    /// with backoff whenever it exits; then ends it (EOF, SIGTERM, SIGKILL after --exec-grace
    /// each). `alive` is held meanwhile, so the server waits for it when it stops. A program
    /// that cannot be started the first time is an error (the server does not start).
    pub(super) fn spawn(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
        alive: mpsc::Sender<()>,
    ) -> anyhow::Result<()> {
        let first = self.launch(1).map_err(|e| {
            anyhow::anyhow!("--exec-shared: cannot start {:?}: {e}", self.inner.words[0])
        })?;
        tokio::spawn(async move {
            self.supervise(first, stop).await;
            drop(alive);
        });
        Ok(())
    }

    /// Watches the running program and restarts it after each exit, until `stop`.
    async fn supervise(&self, first: Running, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut wait = BACKOFF.0;
        let (mut instance, mut running) = (1, Some(first));
        loop {
            if let Some(program) = running.take() {
                let started = Instant::now();
                if self.watch(program, &mut stop).await {
                    return;
                }
                if started.elapsed() >= STABLE {
                    wait = BACKOFF.0;
                }
            }
            warn!("restarting the shared program in {} ms", wait.as_millis());
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = &mut stop => return,
            }
            wait = (wait * 2).min(BACKOFF.1);
            instance += 1;
            match self.launch(instance) {
                Ok(program) => running = Some(program),
                Err(e) => warn!("cannot start the shared program {:?}: {e}", self.inner.line),
            }
        }
    }

    /// Starts instance `instance` of the program (no shell, its own process group, the
    /// environment's allow-list), its stdin writer, its stdout router and its stderr logger;
    /// clients may join from now on.
    fn launch(&self, instance: u64) -> std::io::Result<Running> {
        let inner = &self.inner;
        let mut command = Command::new(&inner.words[0]);
        command
            .args(&inner.words[1..])
            .env_clear()
            .envs(inherited(&inner.inherit))
            .env("SERVER_SOFTWARE", concat!("wsx/", env!("CARGO_PKG_VERSION")))
            .env("SERVER_PORT", inner.port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        #[cfg(unix)]
        command.process_group(0);
        let mut child = command.spawn()?;
        let pid = child.id().unwrap_or_default();
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(std::io::Error::other("no pipes to the program"));
        };
        let writer = tokio::spawn(write_events(stdin, self.events.clone(), instance));
        let router = tokio::spawn(route_output(inner.clone(), stdout));
        tokio::spawn(log_stderr(stderr, pid));
        inner.lock().running = Some(instance);
        info!(pid, "shared program started: {}", inner.line);
        Ok(Running { child, pid, writer, router })
    }

    /// Waits until the program exits (its clients are then closed with 1011, after what it
    /// printed) or `stop` fires (`true`: it was ended for the stop).
    async fn watch<F>(&self, mut program: Running, stop: &mut std::pin::Pin<&mut F>) -> bool
    where
        F: Future<Output = ()>,
    {
        let status = tokio::select! {
            status = program.child.wait() => status.ok(),
            () = stop.as_mut() => {
                // Its clients are closed with 1001 by their sessions.
                program.writer.abort();
                self.inner.lock().running = None;
                self.end(&mut program.child, program.pid).await;
                return true;
            }
        };
        program.writer.abort();
        // What it printed before it exited still goes out (a process it left behind may hold
        // its stdout open: read for --exec-grace at most).
        let _ = tokio::time::timeout(self.inner.grace, &mut program.router).await;
        program.router.abort();
        let reason = ended(status);
        warn!(pid = program.pid, "shared program {reason}: closing its clients with 1011");
        self.inner.close_all(CloseCode::INTERNAL_ERROR, &format!("program {reason}"));
        false
    }

    /// Ends the program for the server's stop: EOF on stdin (the writer is gone), SIGTERM after
    /// --exec-grace, SIGKILL after as long again; reaped.
    async fn end(&self, child: &mut Child, pid: u32) {
        let grace = self.inner.grace;
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            signal(pid, "TERM").await;
            if tokio::time::timeout(grace, child.wait()).await.is_err() {
                signal(pid, "KILL").await;
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
        }
        info!(pid, "shared program ended (server stopping)");
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Clients> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The program is down: every client is closed with `code`, after what was queued for it.
    fn close_all(&self, code: CloseCode, reason: &str) {
        let mut clients = self.lock();
        clients.running = None;
        for (_, entry) in clients.by_id.drain() {
            let reason = reason.to_string();
            let _ = entry.closer.send(Closing { code, reason, drain: true });
        }
    }

    /// Queues `message` for the client `id`; one that has no room left is closed with 1013.
    fn deliver(clients: &mut Clients, id: u64, message: Message) {
        let Some(entry) = clients.by_id.get(&id) else {
            debug!(id, "message for a client that is gone: dropped");
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = entry.messages.try_send(message) {
            if let Some(entry) = clients.by_id.remove(&id) {
                let reason = "too slow: fell behind the program".to_string();
                let code = CloseCode::TRY_AGAIN_LATER;
                let _ = entry.closer.send(Closing { code, reason, drain: false });
            }
        }
    }

    /// Routes one line of the program's output (docs/exec.md): a plain line to everyone, an
    /// envelope to whom it names.
    fn route(&self, line: String) {
        let envelope = match line.starts_with('{') {
            true => serde_json::from_str::<Map<String, Value>>(&line).ok(),
            false => None,
        };
        let Some(envelope) = envelope else {
            return self.send(None, Message::text(line));
        };
        match Envelope::parse(&envelope) {
            Ok(Envelope::Send(to, message)) => self.send(to, message),
            Ok(Envelope::Close(ids, closing)) => self.close(&ids, closing),
            Err(why) => warn!("shared program: line dropped ({why}): {line}"),
        }
    }

    /// Sends `message` to the clients `to` (all of them for `None`).
    fn send(&self, to: Option<Vec<u64>>, message: Message) {
        let mut clients = self.lock();
        let ids = to.unwrap_or_else(|| clients.by_id.keys().copied().collect());
        for id in ids {
            Self::deliver(&mut clients, id, message.clone());
        }
    }

    /// Closes the clients `ids` after what was queued for them.
    fn close(&self, ids: &[u64], closing: Closing) {
        let mut clients = self.lock();
        for id in ids {
            if let Some(entry) = clients.by_id.remove(id) {
                let (code, reason, drain) = (closing.code, closing.reason.clone(), closing.drain);
                let _ = entry.closer.send(Closing { code, reason, drain });
            }
        }
    }
}

/// A line of the program's output that is a JSON object.
enum Envelope {
    /// `{"to": N | [N, ...], "text": "..."}` or `"base64"` for a binary message; without
    /// `to`, to everyone.
    Send(Option<Vec<u64>>, Message),
    /// `{"close": N | [N, ...], "code": 1000, "reason": "..."}`.
    Close(Vec<u64>, Closing),
}

impl Envelope {
    fn parse(object: &Map<String, Value>) -> Result<Self, &'static str> {
        if let Some(ids) = object.get("close") {
            let ids = ids_of(ids).ok_or("\"close\" must be a client id or a list of ids")?;
            let code = match object.get("code") {
                None => CloseCode::NORMAL,
                Some(code) => code
                    .as_u64()
                    .and_then(|c| u16::try_from(c).ok())
                    .map(CloseCode::from)
                    .filter(|c| c.is_sendable())
                    .ok_or(
                        "\"code\" must be a close code that may be sent (1000, 3000-4999, ...)",
                    )?,
            };
            let reason = object.get("reason").and_then(Value::as_str).unwrap_or_default();
            let reason = truncated(reason, 123).to_string();
            return Ok(Self::Close(ids, Closing { code, reason, drain: true }));
        }
        let to = match object.get("to") {
            None => None,
            Some(ids) => Some(ids_of(ids).ok_or("\"to\" must be a client id or a list of ids")?),
        };
        let message = match (object.get("text"), object.get("base64")) {
            (Some(Value::String(text)), None) => Message::text(text.clone()),
            (None, Some(Value::String(data))) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .map_err(|_| "\"base64\" is not base64")?;
                Message::binary(bytes)
            }
            _ => {
                return Err(
                    "an envelope has one of \"text\" or \"base64\" (a string), or \"close\"",
                )
            }
        };
        Ok(Self::Send(to, message))
    }
}

/// `N` or `[N, ...]`: client ids.
fn ids_of(value: &Value) -> Option<Vec<u64>> {
    match value {
        Value::Number(n) => Some(vec![n.as_u64()?]),
        Value::Array(items) => items.iter().map(Value::as_u64).collect(),
        _ => None,
    }
}

/// At most `max` bytes of `text`, cut at a character boundary (a close reason's limit).
fn truncated(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// How the program ended, for the log and the close reason.
fn ended(status: Option<ExitStatus>) -> String {
    match status {
        Some(s) => match s.code() {
            Some(code) => format!("exited with status {code}"),
            None => format!("ended: {s}"),
        },
        None => "ended (status unknown)".to_string(),
    }
}

/// A client of the shared program, held by its session. Dropping it tells the program the
/// client left (if the instance it joined still runs).
pub(super) struct Client {
    pub(super) id: u64,
    instance: u64,
    inner: Arc<Inner>,
    /// What the program sends it.
    pub(super) messages: mpsc::Receiver<Message>,
    /// Fires when the program side closes it.
    pub(super) closed: oneshot::Receiver<Closing>,
    /// Where its messages go.
    pub(super) events: Events,
}

impl Client {
    /// The event line of a data message this client sent (`None` for control messages).
    pub(super) fn message_event(&self, message: &Message) -> Option<String> {
        let event = match message {
            Message::Text(text) => json!({"type": "message", "id": self.id, "text": text.as_str()}),
            Message::Binary(bytes) => {
                let data = base64::engine::general_purpose::STANDARD.encode(bytes);
                json!({"type": "message", "id": self.id, "base64": data})
            }
            _ => return None,
        };
        Some(event.to_string())
    }
}

/// Where a client's events go: the program's stdin queue, for the instance it joined.
pub(super) struct Events {
    events: mpsc::Sender<Event>,
    instance: u64,
}

impl Events {
    /// Room for one more event in the program's stdin queue (waits while it is full).
    pub(super) async fn reserve(&self) -> Option<EventPermit<'_>> {
        let permit = self.events.reserve().await.ok()?;
        Some(EventPermit { permit, instance: self.instance })
    }
}

/// Room for one event, taken by [`Events::reserve`].
pub(super) struct EventPermit<'a> {
    permit: mpsc::Permit<'a, Event>,
    instance: u64,
}

impl EventPermit<'_> {
    /// Queues the event `line` (a JSON object) in the room taken.
    pub(super) fn send(self, line: String) {
        self.permit.send(Event { instance: self.instance, line });
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let mut clients = self.inner.lock();
        clients.by_id.remove(&self.id);
        if clients.running != Some(self.instance) {
            return;
        }
        drop(clients);
        let line = json!({"type": "leave", "id": self.id}).to_string();
        let event = Event { instance: self.instance, line };
        debug!(id = self.id, "client left the shared program");
        // Never lost, never waited for here: when the queue is full, a task waits for room.
        if let Err(mpsc::error::TrySendError::Full(event)) = self.inner.events.try_send(event) {
            let events = self.inner.events.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { events.send(event).await });
            }
        }
    }
}

/// Writes the events of `instance` to its stdin, one JSON line each (events for an instance
/// that has exited are dropped); ends when stdin refuses a write.
async fn write_events<W>(
    mut stdin: W,
    events: Arc<tokio::sync::Mutex<mpsc::Receiver<Event>>>,
    instance: u64,
) where
    W: AsyncWrite + Unpin,
{
    let mut events = events.lock().await;
    while let Some(event) = events.recv().await {
        if event.instance != instance {
            continue;
        }
        let mut line = event.line.into_bytes();
        line.push(b'\n');
        if stdin.write_all(&line).await.is_err() {
            return;
        }
    }
}

/// Reads the program's stdout line by line and routes each line.
async fn route_output(inner: Arc<Inner>, stdout: ChildStdout) {
    let mut reader = BufReader::with_capacity(CHUNK, stdout);
    let mut line = Vec::new();
    while let Ok(true) = read_line(&mut reader, &mut line, inner.max_line).await {
        inner.route(text_line(&mut line));
    }
}

/// Logs each stderr line of the program (at info).
async fn log_stderr(stderr: ChildStderr, pid: u32) {
    let mut reader = BufReader::with_capacity(CHUNK, stderr);
    let mut line = Vec::new();
    while let Ok(true) = read_line(&mut reader, &mut line, CHUNK).await {
        info!(pid, "shared program stderr: {}", text_line(&mut line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Envelope, &'static str> {
        Envelope::parse(&serde_json::from_str(line).unwrap())
    }

    #[test]
    fn envelopes() {
        let Ok(Envelope::Send(None, m)) = parse(r#"{"text":"hi all"}"#) else { panic!() };
        assert_eq!(m, Message::text("hi all"));
        let Ok(Envelope::Send(Some(to), _)) = parse(r#"{"to":3,"text":"x"}"#) else { panic!() };
        assert_eq!(to, [3]);
        let Ok(Envelope::Send(Some(to), m)) = parse(r#"{"to":[1,2],"base64":"AAH/"}"#) else {
            panic!()
        };
        assert_eq!((to, m), (vec![1, 2], Message::binary(vec![0u8, 1, 255])));
        let Ok(Envelope::Close(ids, c)) = parse(r#"{"close":[4],"code":4000,"reason":"bye"}"#)
        else {
            panic!()
        };
        assert_eq!((ids, u16::from(c.code), c.reason.as_str()), (vec![4], 4000, "bye"));
        let Ok(Envelope::Close(_, c)) = parse(r#"{"close":4}"#) else { panic!() };
        assert_eq!(c.code, CloseCode::NORMAL);
        for bad in [
            r#"{"foo":1}"#,
            r#"{"to":"all","text":"x"}"#,
            r#"{"text":1}"#,
            r#"{"text":"a","base64":"AA=="}"#,
            r#"{"base64":"%%%"}"#,
            r#"{"close":1,"code":1006}"#,
            r#"{"close":"x"}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    /// A shared program's state with `backlog` of room per client, running instance 1, and
    /// the receiving end of its events.
    fn running(backlog: usize) -> (Shared, mpsc::Receiver<Event>) {
        let cli = <crate::args::Cli as clap::Parser>::try_parse_from([
            "wsx",
            "serve",
            "--exec-shared",
            "cat",
            "--room-backlog",
            &backlog.to_string(),
        ])
        .unwrap();
        let crate::args::Command::Serve(args) = cli.command else { unreachable!() };
        let shared = Shared::from_args(&args, 8080).unwrap().unwrap();
        shared.inner.lock().running = Some(1);
        let events = std::mem::replace(&mut *shared.events.try_lock().unwrap(), mpsc::channel(1).1);
        (shared, events)
    }

    fn joining() -> Joining<'static> {
        Joining { path: "/p", query: None, remote: "127.0.0.1:5".parse().unwrap(), user: None }
    }

    #[tokio::test]
    async fn a_client_that_falls_behind_is_closed_with_1013_and_the_others_are_served() {
        let (shared, mut events) = running(2);
        let mut slow = shared.join(&joining()).unwrap();
        let mut fast = shared.join(&joining()).unwrap();
        for i in 0..3 {
            shared.inner.route(format!("line {i}"));
            // The fast one takes each message at once.
            assert_eq!(fast.messages.recv().await.unwrap(), Message::text(format!("line {i}")));
        }
        let closing = (&mut slow.closed).await.unwrap();
        assert_eq!((closing.code, closing.drain), (CloseCode::TRY_AGAIN_LATER, false));
        assert!(fast.closed.try_recv().is_err(), "the fast client stays");
        // Joins and a leave reached the program, in order.
        let lines: Vec<String> =
            std::iter::from_fn(|| events.try_recv().ok().map(|e| e.line)).collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains(r#""type":"join","id":1"#), "{lines:?}");
        drop(slow);
        let leave = events.try_recv().unwrap().line;
        assert_eq!(leave, r#"{"type":"leave","id":1}"#);
    }

    #[tokio::test]
    async fn nobody_joins_a_program_that_is_down() {
        let (shared, _events) = running(2);
        let mut client = shared.join(&joining()).unwrap();
        shared.inner.route("last words".to_string());
        shared.inner.close_all(CloseCode::INTERNAL_ERROR, "program exited with status 1");
        assert!(matches!(shared.join(&joining()), Err(Refused::Down)));
        let closing = (&mut client.closed).await.unwrap();
        assert_eq!((closing.code, closing.drain), (CloseCode::INTERNAL_ERROR, true));
        assert_eq!(client.messages.recv().await.unwrap(), Message::text("last words"));
    }

    #[test]
    fn reasons_are_cut_at_a_character_boundary() {
        assert_eq!(truncated("héllo", 2), "h");
        assert_eq!(truncated("abc", 123), "abc");
    }
}
