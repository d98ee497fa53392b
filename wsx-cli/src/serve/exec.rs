//! `wsx serve --exec` and `--exec-dir`: a program per WebSocket connection, as websocketd runs
//! them. Each text message is a line on the program's stdin, each line it prints is a text
//! message (with `--binary`: raw bytes both ways); stderr goes to the log. The program learns
//! about its request from CGI variables, in an environment cleared of everything else but an
//! allow-list. When the program exits the connection closes (1000 for status 0, 1011 for any
//! other); when the client leaves, the program gets EOF on stdin, SIGTERM after `--exec-grace`,
//! SIGKILL after as long again, and is always reaped.
//!
//! Imports only leaves (`args`, `metrics`, `stop`): `upgrade.rs` starts the program before the
//! 101 ([`Exec::start`]), `session.rs` runs it ([`Process::run`]).

use std::ffi::OsString;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderMap, Method, Uri};
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use wsx::{CloseCode, Message, WebSocket};

use super::metrics::{ExecStats, Metrics};
use super::safepath::{inside, percent_decode, plain_segment};
use super::stop::Stop;
use crate::args::ServeArgs;
use crate::pipe::{close, payload, peer_code, read_chunks, read_line, read_lines, reserve};
use crate::pipe::{split, text_line, write_input, CHUNK, QUEUE};

/// Variables of the server's environment that programs inherit without --exec-env (`*`: a
/// prefix).
pub(super) const INHERITED: [&str; 6] = ["PATH", "HOME", "LANG", "LC_*", "TZ", "TMPDIR"];

/// The programs of `--exec` or `--exec-dir`, and what every one of them shares.
pub(super) struct Exec {
    program: Program,
    binary: bool,
    /// The allow-list of inherited variables (`NAME`, or `PREFIX*`).
    inherit: Vec<String>,
    grace: Duration,
    /// The longest stdout line sent as one message (--max-message-size); longer ones are cut.
    max_line: usize,
    forks: Arc<Semaphore>,
    max_forks: usize,
    counters: Arc<Counters>,
    /// The address the server listens on (SERVER_PORT, and SERVER_NAME without a Host).
    server: SocketAddr,
    tls: bool,
}

/// What runs: one command line, or the scripts of a directory.
enum Program {
    /// Its words, and the line they came from.
    Command(Vec<String>, String),
    /// The directory, canonical.
    Dir(PathBuf),
}

#[derive(Debug, Default)]
struct Counters {
    started: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    signalled: AtomicU64,
}

/// Why no program was started for an upgrade.
#[derive(Debug)]
pub(super) enum Refused {
    /// `--exec-dir` has no executable for the path (404).
    NotFound,
    /// `--max-forks` programs are running (503).
    Full,
    /// The program could not be started (500).
    Failed(std::io::Error),
}

/// What a program is told about the upgrade that started it (as CGI variables).
pub(super) struct Request<'a> {
    pub(super) method: &'a Method,
    pub(super) uri: &'a Uri,
    pub(super) headers: &'a HeaderMap,
    /// The client's address (see --trust-proxy) and the port it connected from.
    pub(super) remote: SocketAddr,
    /// The token's user, with --auth-*.
    pub(super) user: Option<&'a str>,
}

impl Exec {
    /// The programs configured by `args` for a server listening on `server`; `None` without
    /// --exec and --exec-dir.
    pub(super) fn from_args(args: &ServeArgs, server: SocketAddr) -> anyhow::Result<Option<Self>> {
        let program = match (&args.exec, &args.exec_dir) {
            (Some(line), _) => {
                let words = split(line).map_err(|e| anyhow::anyhow!("--exec {line:?}: {e}"))?;
                if words.is_empty() {
                    anyhow::bail!("--exec: no command given");
                }
                Program::Command(words, line.clone())
            }
            (None, Some(dir)) => {
                let canonical = std::fs::canonicalize(dir)
                    .with_context(|| format!("--exec-dir {}", dir.display()))?;
                if !canonical.is_dir() {
                    anyhow::bail!("--exec-dir {}: not a directory", dir.display());
                }
                Program::Dir(canonical)
            }
            (None, None) => return Ok(None),
        };
        let mut inherit: Vec<String> = INHERITED.iter().map(|v| v.to_string()).collect();
        inherit.extend(args.exec_env.iter().cloned());
        Ok(Some(Self {
            program,
            binary: args.binary,
            inherit,
            grace: args.exec_grace,
            max_line: args.max_message_size.max(1),
            forks: Arc::new(Semaphore::new(args.max_forks)),
            max_forks: args.max_forks,
            counters: Arc::default(),
            server,
            tls: args.tls_cert.is_some(),
        }))
    }

    /// What runs, for the banner.
    pub(super) fn describe(&self) -> String {
        let mode = if self.binary { " (binary)" } else { "" };
        match &self.program {
            Program::Command(_, line) => format!("{line}{mode}"),
            Program::Dir(dir) => format!("the executables in {}{mode}", dir.display()),
        }
    }

    /// The counters of /metrics.
    pub(super) fn stats(&self) -> ExecStats {
        let c = &self.counters;
        ExecStats {
            started: c.started.load(Relaxed),
            running: (self.max_forks - self.forks.available_permits()) as u64,
            succeeded: c.succeeded.load(Relaxed),
            failed: c.failed.load(Relaxed),
            signalled: c.signalled.load(Relaxed),
        }
    }

    /// Starts the program of `request` (before the 101: a refusal can still be answered).
    pub(super) fn start(&self, request: &Request<'_>) -> Result<Process, Refused> {
        let path = request.uri.path();
        let (mut command, script_name, path_info) = match &self.program {
            Program::Command(words, _) => {
                let mut command = Command::new(&words[0]);
                command.args(&words[1..]);
                let decoded = percent_decode(path).unwrap_or_else(|| path.to_string());
                (command, String::new(), decoded)
            }
            Program::Dir(dir) => {
                let (file, script_name, path_info) = script(dir, path).ok_or(Refused::NotFound)?;
                (Command::new(file), script_name, path_info)
            }
        };
        let fork = self.forks.clone().try_acquire_owned().map_err(|_| Refused::Full)?;
        command
            .env_clear()
            .envs(inherited(&self.inherit))
            .envs(self.cgi(request, script_name, path_info))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Dropped without being reaped (a task cut short): SIGKILL, reaped by tokio.
            .kill_on_drop(true);
        // A group of its own: the signals reach what it started too, and a Ctrl-C meant for
        // the server does not.
        #[cfg(unix)]
        command.process_group(0);
        let mut child = command.spawn().map_err(Refused::Failed)?;
        self.counters.started.fetch_add(1, Relaxed);
        let pid = child.id().unwrap_or_default();
        let remote = request.remote;
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let (input, input_rx) = mpsc::channel(QUEUE);
        let (output_tx, output) = mpsc::channel(QUEUE);
        if let Some(stdin) = stdin {
            tokio::spawn(write_input(stdin, input_rx, !self.binary));
        }
        if let Some(stdout) = stdout {
            match self.binary {
                true => tokio::spawn(read_chunks(stdout, output_tx)),
                false => tokio::spawn(read_lines(stdout, output_tx, self.max_line)),
            };
        }
        if let Some(stderr) = stderr {
            tokio::spawn(log_stderr(stderr, remote, pid));
        }
        debug!(client = %remote, pid, path, "program started");
        Ok(Process {
            child,
            pid,
            input: Some(input),
            output,
            grace: self.grace,
            counters: self.counters.clone(),
            remote,
            ended: None,
            _fork: fork,
        })
    }

    /// The CGI variables of `request` (websocketd's set).
    fn cgi(
        &self,
        request: &Request<'_>,
        script_name: String,
        path_info: String,
    ) -> Vec<(OsString, OsString)> {
        let uri = request.uri;
        let host = request.headers.get(http::header::HOST).and_then(|h| h.to_str().ok());
        // The Host header's name without its port (brackets kept for IPv6), else our address.
        let server_name = host
            .and_then(|h| h.parse::<http::uri::Authority>().ok())
            .map(|a| a.host().to_string())
            .unwrap_or_else(|| self.server.ip().to_string());
        let request_uri = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
        let mut vars: Vec<(OsString, OsString)> = [
            ("GATEWAY_INTERFACE", "CGI/1.1".to_string()),
            ("SERVER_SOFTWARE", concat!("wsx/", env!("CARGO_PKG_VERSION")).to_string()),
            ("SERVER_PROTOCOL", "HTTP/1.1".to_string()),
            ("SERVER_NAME", server_name),
            ("SERVER_PORT", self.server.port().to_string()),
            ("REQUEST_METHOD", request.method.as_str().to_string()),
            ("REQUEST_URI", request_uri.to_string()),
            ("QUERY_STRING", uri.query().unwrap_or_default().to_string()),
            ("SCRIPT_NAME", script_name),
            ("PATH_INFO", path_info),
            ("REMOTE_ADDR", request.remote.ip().to_canonical().to_string()),
            ("REMOTE_PORT", request.remote.port().to_string()),
        ]
        .into_iter()
        .map(|(name, value)| (OsString::from(name), OsString::from(value)))
        .collect();
        if self.tls {
            vars.push(("HTTPS".into(), "on".into()));
        }
        if let Some(user) = request.user {
            vars.push(("REMOTE_USER".into(), user.into()));
        }
        // Each header once; repeated ones joined with ", ".
        for name in request.headers.keys() {
            let values: Vec<&[u8]> =
                request.headers.get_all(name).iter().map(|v| v.as_bytes()).collect();
            let variable = format!("HTTP_{}", name.as_str().to_ascii_uppercase().replace('-', "_"));
            vars.push((variable.into(), os_string(values.join(&b", "[..]))));
        }
        vars
    }
}

/// The variables of the server's environment on the allow-list (`NAME` or `PREFIX*`).
pub(super) fn inherited(allowed: &[String]) -> Vec<(OsString, OsString)> {
    let allows = |name: &str| {
        allowed.iter().any(|a| match a.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => a == name,
        })
    };
    std::env::vars_os().filter(|(name, _)| name.to_str().is_some_and(allows)).collect()
}

#[cfg(unix)]
fn os_string(bytes: Vec<u8>) -> OsString {
    use std::os::unix::ffi::OsStringExt as _;
    OsString::from_vec(bytes)
}

#[cfg(not(unix))]
fn os_string(bytes: Vec<u8>) -> OsString {
    String::from_utf8_lossy(&bytes).into_owned().into()
}

/// A running program, and the two queues between it and its connection.
pub(super) struct Process {
    child: Child,
    pid: u32,
    /// What goes to its stdin (lines or chunks); dropped: EOF.
    input: Option<mpsc::Sender<Bytes>>,
    /// Its stdout, as messages; ends when its stdout does.
    output: mpsc::Receiver<Message>,
    grace: Duration,
    counters: Arc<Counters>,
    remote: SocketAddr,
    /// How it ended, once reaped (`Some(None)`: its status could not be read).
    ended: Option<Option<ExitStatus>>,
    /// Its place under --max-forks, given back once it is reaped.
    _fork: OwnedSemaphorePermit,
}

impl Process {
    /// Runs the connection `ws` with this program until one of them ends (or the server stops,
    /// or `expired` fires: a token's expiry, closed with 1008), then ends the program (EOF,
    /// SIGTERM, SIGKILL) and reaps it. How the connection closed, as a close code.
    pub(super) async fn run<S>(
        &mut self,
        ws: &mut WebSocket<S>,
        stop: &Stop,
        metrics: &Metrics,
        expired: impl Future<Output = ()>,
    ) -> Option<CloseCode>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let code = self.converse(ws, stop, metrics, expired).await;
        self.finish().await;
        code
    }

    /// Ends the program of a connection that never opened (its 101 could not be sent).
    pub(super) async fn abandon(&mut self) {
        self.finish().await;
    }

    async fn converse<S>(
        &mut self,
        ws: &mut WebSocket<S>,
        stop: &Stop,
        metrics: &Metrics,
        expired: impl Future<Output = ()>,
    ) -> Option<CloseCode>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let stop = stop.stopped();
        tokio::pin!(stop, expired);
        // A message waiting for room in the stdin queue: the client is not read meanwhile (its
        // TCP window fills), but the program's output still is, so neither side can block the
        // other for good.
        let mut pending: Option<Bytes> = None;
        let mut stdout_open = true;
        // Dropped when the conversation ends: EOF on the program's stdin.
        let input = self.input.take();
        loop {
            tokio::select! {
                biased;
                () = &mut stop => {
                    return close(ws, CloseCode::GOING_AWAY, "server shutting down").await;
                }
                () = &mut expired => {
                    metrics.token_expired.fetch_add(1, Relaxed);
                    return close(ws, CloseCode::POLICY_VIOLATION, "token expired").await;
                }
                message = self.output.recv(), if stdout_open => match message {
                    Some(message) => {
                        if let Err(code) = send(ws, message, self.output.is_empty(), metrics).await {
                            return code;
                        }
                    }
                    None => stdout_open = false,
                },
                permit = reserve(input.as_ref()), if pending.is_some() => match permit {
                    Some(permit) => permit.send(pending.take().unwrap_or_default()),
                    // Its stdin is closed (it closed it, or exited): input is dropped.
                    None => pending = None,
                },
                item = ws.recv(), if pending.is_none() => match item {
                    Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                        metrics.received(m.len());
                        if input.as_ref().is_some_and(|i| !i.is_closed()) {
                            pending = Some(payload(m));
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return e.close_code().or_else(|| peer_code(ws)),
                    None => return peer_code(ws).or(Some(CloseCode::ABNORMAL)),
                },
                status = self.child.wait() => {
                    self.ended = Some(status.ok());
                    return self.exited(ws, metrics).await;
                }
            }
        }
    }

    /// The program exited: the rest of its output (what it printed before it exited, read
    /// within --exec-grace: a process it left behind may hold its stdout open), then the close:
    /// 1000 for status 0, 1011 otherwise.
    async fn exited<S>(&mut self, ws: &mut WebSocket<S>, metrics: &Metrics) -> Option<CloseCode>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let deadline = Instant::now() + self.grace;
        loop {
            match tokio::time::timeout_at(deadline, self.output.recv()).await {
                Ok(Some(message)) => {
                    if let Err(code) = send(ws, message, self.output.is_empty(), metrics).await {
                        return code;
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    debug!(client = %self.remote, pid = self.pid, "stdout still open after exit");
                    break;
                }
            }
        }
        let (code, reason) = close_code(self.ended.flatten());
        close(ws, code, &reason).await
    }

    /// Ends the program if it still runs: EOF on its stdin, SIGTERM (to its process group) after
    /// --exec-grace, SIGKILL after as long again; reaps it and counts how it ended.
    async fn finish(&mut self) {
        drop(self.input.take());
        // Its output is no longer read: a program still writing gets EPIPE (or SIGPIPE).
        self.output.close();
        if self.ended.is_none() {
            let status = match tokio::time::timeout(self.grace, self.child.wait()).await {
                Ok(status) => status,
                Err(_) => {
                    self.signal("TERM").await;
                    match tokio::time::timeout(self.grace, self.child.wait()).await {
                        Ok(status) => status,
                        Err(_) => {
                            self.signal("KILL").await;
                            let _ = self.child.start_kill();
                            self.child.wait().await
                        }
                    }
                }
            };
            self.ended = Some(status.ok());
        }
        let status = self.ended.flatten();
        let counter = match status {
            Some(s) if s.success() => &self.counters.succeeded,
            Some(s) if s.code().is_none() => &self.counters.signalled,
            _ => &self.counters.failed,
        };
        counter.fetch_add(1, Relaxed);
        let (_, reason) = close_code(status);
        let ended = if reason.is_empty() { "exit status 0" } else { reason.as_str() };
        info!(client = %self.remote, pid = self.pid, "program ended: {ended}");
    }

    /// Sends SIGTERM or SIGKILL to the program's process group.
    async fn signal(&self, name: &str) {
        debug!(client = %self.remote, pid = self.pid, "SIG{name} to the program");
        signal(self.pid, name).await;
    }
}

/// Sends SIGTERM or SIGKILL to the process group `pid` leads (and to `pid`, in case it left the
/// group), with kill(1): the crate has no unsafe code, and std sends only SIGKILL.
pub(super) async fn signal(pid: u32, name: &str) {
    #[cfg(unix)]
    {
        let (group, pid) = (format!("-{pid}"), pid.to_string());
        let sent = Command::new("kill")
            .args(["-s", name, "--", &group, &pid])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        if let Err(e) = sent {
            warn!("cannot run kill(1) to send SIG{name}: {e}");
        }
    }
    #[cfg(not(unix))]
    let _ = (pid, name);
}

impl Drop for Process {
    fn drop(&mut self) {
        // Not reaped (its connection's task was cut short): kill_on_drop sends SIGKILL.
        if self.ended.is_none() {
            self.counters.signalled.fetch_add(1, Relaxed);
        }
    }
}

/// The close of a connection whose program ended with `status`.
fn close_code(status: Option<ExitStatus>) -> (CloseCode, String) {
    let Some(status) = status else {
        return (CloseCode::INTERNAL_ERROR, "exit status unknown".to_string());
    };
    if status.success() {
        return (CloseCode::NORMAL, String::new());
    }
    if let Some(code) = status.code() {
        return (CloseCode::INTERNAL_ERROR, format!("exit status {code}"));
    }
    #[cfg(unix)]
    if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
        return (CloseCode::INTERNAL_ERROR, format!("killed by signal {signal}"));
    }
    (CloseCode::INTERNAL_ERROR, status.to_string())
}

/// Queues `message`, and writes everything queued when `last` (nothing more is waiting).
async fn send<S>(
    ws: &mut WebSocket<S>,
    message: Message,
    last: bool,
    metrics: &Metrics,
) -> Result<(), Option<CloseCode>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let len = message.len();
    let sent = match ws.feed(message).await {
        Ok(()) if last => ws.flush().await,
        other => other,
    };
    match sent {
        Ok(()) => {
            metrics.sent(len);
            Ok(())
        }
        Err(e) => Err(e.close_code().or_else(|| peer_code(ws))),
    }
}

/// Logs each stderr line of the program (at info, with its client).
async fn log_stderr(stderr: tokio::process::ChildStderr, remote: SocketAddr, pid: u32) {
    let mut reader = BufReader::with_capacity(CHUNK, stderr);
    let mut line = Vec::new();
    while let Ok(true) = read_line(&mut reader, &mut line, CHUNK).await {
        info!(client = %remote, pid, "program stderr: {}", text_line(&mut line));
    }
}

/// The script for the URL path `path` under `dir` (canonical): walking down its segments, the
/// first executable file, with its URL path (SCRIPT_NAME) and what follows (PATH_INFO). `None`
/// when there is none, or the path is not plainly inside `dir`: percent-escapes are decoded
/// first, and empty segments, segments starting with `.` (`.`, `..`, hidden files) or holding
/// a backslash are refused, as is anything that resolves (symbolic links followed) outside `dir`.
fn script(dir: &Path, path: &str) -> Option<(PathBuf, String, String)> {
    let decoded = percent_decode(path)?;
    let segments: Vec<&str> = decoded.strip_prefix('/')?.split('/').collect();
    let mut at = dir.to_path_buf();
    for (i, segment) in segments.iter().enumerate() {
        if !plain_segment(segment) {
            return None;
        }
        at.push(segment);
        let real = inside(dir, &at)?;
        let meta = std::fs::metadata(&real).ok()?;
        if meta.is_dir() {
            at = real;
            continue;
        }
        if !(meta.is_file() && executable(&meta)) {
            return None;
        }
        let script_name = format!("/{}", segments[..=i].join("/"));
        let path_info = segments[i + 1..].iter().map(|s| format!("/{s}")).collect();
        return Some((real, script_name, path_info));
    }
    None
}

#[cfg(unix)]
fn executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn executable(_: &std::fs::Metadata) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn scripts_stay_inside_their_directory() {
        use std::os::unix::fs::{symlink, PermissionsExt as _};
        let root = std::env::temp_dir().join(format!("wsx-exec-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = root.join("scripts");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let executable = |path: &Path| {
            std::fs::write(path, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        executable(&dir.join("hello"));
        executable(&dir.join("sub/deep"));
        executable(&dir.join(".hidden"));
        executable(&root.join("outside"));
        std::fs::write(dir.join("plain"), "not executable").unwrap();
        symlink(root.join("outside"), dir.join("escape")).unwrap();
        symlink(dir.join("hello"), dir.join("alias")).unwrap();
        let dir = std::fs::canonicalize(&dir).unwrap();
        let found = |path| script(&dir, path);
        let (file, name, info) = found("/hello").unwrap();
        assert_eq!((file, name.as_str(), info.as_str()), (dir.join("hello"), "/hello", ""));
        let (file, name, info) = found("/sub/deep/x/y").unwrap();
        assert_eq!(
            (file, name.as_str(), info.as_str()),
            (dir.join("sub/deep"), "/sub/deep", "/x/y")
        );
        assert_eq!(found("/alias").unwrap().0, dir.join("hello"), "a link inside is followed");
        for refused in [
            "/",
            "/nothing",
            "/plain",
            "/sub",
            "/.hidden",
            "/../outside",
            "/sub/../hello",
            "/%2e%2e/outside",
            "/%2E%2E%2Foutside",
            "/sub%2f..%2f..%2foutside",
            "/escape",
            "//hello",
            "/..%5coutside",
            "/hello%00",
        ] {
            assert!(found(refused).is_none(), "{refused} must be refused");
        }
        let _ = std::fs::remove_dir_all(root);
    }
}
