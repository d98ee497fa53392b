//! The Redis broker behind `wsx serve --redis`: the [`Bus`] that makes chat rooms span several
//! nodes.
//!
//! - One Redis connection per node, a `redis::aio::ConnectionManager` speaking RESP3, carries
//!   the PUBLISHes and the node's subscriptions (one channel per room with members here).
//! - A member's message is PUBLISHed and only delivered when it comes back from the
//!   subscription, by the single task that reads the connection's pushes: every node hands a
//!   room's messages to its members in the order in which Redis executed the PUBLISHes.
//! - Outage policy: while Redis is unreachable the node keeps serving (echo, pages, open chat
//!   connections), reports `degraded` in `/healthz` and `wsx_broker_up 0` in `/metrics`, and
//!   refuses room messages: each is dropped and its sender is told so (a JSON notice). Nothing is
//!   queued, so nothing arrives late or twice. A supervisor reconnects with backoff (100 ms
//!   doubling to 5 s) and resubscribes to the rooms that still have members before it reports
//!   the broker up again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands as _, IntoConnectionInfo as _, ProtocolVersion, PushKind, Value};
use tokio::sync::{mpsc, Notify};
use tracing::{debug, info, warn};
use wsx::Message;

use super::bus::{Bus, Local, Publishing, Undelivered};

/// How often a healthy connection is checked with PING.
const HEALTH_INTERVAL: Duration = Duration::from_secs(1);
/// Answers slower than this count as an outage.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Reconnect backoff: from the first to the last delay, doubling.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// What the supervisor is asked to do with a room's subscription.
#[derive(Debug)]
enum Command {
    Subscribe(String),
    Unsubscribe(String),
}

/// A node's link to Redis. Cheap to share; the work happens in two tasks ([`Bus::start`]).
#[derive(Debug)]
pub(crate) struct Broker {
    inner: Arc<Inner>,
    commands: mpsc::UnboundedSender<Command>,
    /// Taken by [`Bus::start`].
    start: Mutex<Option<(redis::Client, mpsc::UnboundedReceiver<Command>)>>,
}

#[derive(Debug)]
struct Inner {
    /// Channel names are this prefix and the room's name.
    prefix: String,
    /// Set once the first connection is made.
    manager: Mutex<Option<ConnectionManager>>,
    up: AtomicBool,
    /// Wakes the supervisor when the push reader sees the connection drop.
    lost: Notify,
    outages: AtomicU64,
    undelivered: AtomicU64,
}

impl Broker {
    /// A broker for the Redis at `url` (`redis://HOST:PORT[/DB]`); nothing connects before
    /// [`Bus::start`]. Channels are named `prefix` + room.
    pub(crate) fn new(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let info = url.into_connection_info().map_err(|e| {
            anyhow::anyhow!("{url:?} is not a Redis URL ({e}); use redis://HOST:PORT[/DB]")
        })?;
        // RESP3: subscriptions and commands share the one connection.
        let settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(settings))?;
        let (commands, receiver) = mpsc::unbounded_channel();
        Ok(Self {
            inner: Arc::new(Inner {
                prefix: prefix.to_string(),
                manager: Mutex::new(None),
                up: AtomicBool::new(false),
                lost: Notify::new(),
                outages: AtomicU64::new(0),
                undelivered: AtomicU64::new(0),
            }),
            commands,
            start: Mutex::new(Some((client, receiver))),
        })
    }

    /// PUBLISHes `message` to `room`'s channel; it reaches the members (the sender included)
    /// when it comes back through the subscriptions.
    async fn publish_now(&self, room: &str, message: &Message) -> Result<(), Undelivered> {
        let manager = self.inner.manager.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (true, Some(mut manager)) = (self.is_up(), manager) else {
            self.inner.undelivered.fetch_add(1, Relaxed);
            return Err(Undelivered::BrokerDown);
        };
        let channel = format!("{}{room}", self.inner.prefix);
        let published = manager.publish::<_, _, usize>(channel, encode(message));
        match tokio::time::timeout(RESPONSE_TIMEOUT, published).await {
            Ok(Ok(_)) => Ok(()),
            failed => {
                let why =
                    failed.map_or_else(|_| "no answer".to_string(), |e| e.unwrap_err().to_string());
                self.inner.went_down(&format!("PUBLISH failed: {why}"));
                self.inner.undelivered.fetch_add(1, Relaxed);
                Err(Undelivered::BrokerDown)
            }
        }
    }
}

impl Bus for Broker {
    fn name(&self) -> &'static str {
        "redis"
    }

    /// Starts the supervisor (connects, subscribes, checks health, reconnects) and the reader
    /// of the subscription's messages, which delivers them to `rooms`.
    fn start(&self, rooms: Weak<dyn Local>) {
        let Some((client, commands)) = self.start.lock().unwrap_or_else(|e| e.into_inner()).take()
        else {
            return;
        };
        let (pushes, receiver) = mpsc::unbounded_channel();
        tokio::spawn(read_pushes(self.inner.clone(), rooms.clone(), receiver));
        let supervisor = Supervisor::new(self.inner.clone(), rooms, client, commands, pushes);
        tokio::spawn(supervisor.run());
    }

    fn is_up(&self) -> bool {
        self.inner.up.load(Relaxed)
    }

    fn outages(&self) -> u64 {
        self.inner.outages.load(Relaxed)
    }

    fn undelivered(&self) -> u64 {
        self.inner.undelivered.load(Relaxed)
    }

    fn subscribe(&self, room: &str) {
        let _ = self.commands.send(Command::Subscribe(room.to_string()));
    }

    fn unsubscribe(&self, room: &str) {
        let _ = self.commands.send(Command::Unsubscribe(room.to_string()));
    }

    fn publish<'a>(&'a self, room: &'a str, message: &'a Message) -> Publishing<'a> {
        Box::pin(self.publish_now(room, message))
    }
}

impl Inner {
    fn went_down(&self, why: &str) {
        if self.up.swap(false, Relaxed) {
            self.outages.fetch_add(1, Relaxed);
            warn!("Redis unreachable ({why}): room messages are refused until it is back");
        }
        self.lost.notify_one();
    }
}

/// `url` with its password (if any) replaced by `***`, for logs.
pub(crate) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..])
        }
        None => url.to_string(),
    }
}

/// Messages on the wire: one byte for the kind, then the payload.
fn encode(message: &Message) -> Vec<u8> {
    let (kind, payload): (u8, &[u8]) = match message {
        Message::Text(text) => (b't', text.as_bytes()),
        Message::Binary(bytes) => (b'b', bytes),
        _ => (b'?', &[]),
    };
    let mut out = Vec::with_capacity(1 + payload.len());
    out.push(kind);
    out.extend_from_slice(payload);
    out
}

fn decode(bytes: Vec<u8>) -> Option<Message> {
    let (&kind, _) = bytes.split_first()?;
    let payload = bytes::Bytes::from(bytes).slice(1..);
    match kind {
        b't' => wsx::Utf8Bytes::try_from(payload).ok().map(Message::Text),
        b'b' => Some(Message::Binary(payload)),
        _ => None,
    }
}

/// Keeps the node connected and subscribed; the only task that changes subscriptions.
struct Supervisor {
    inner: Arc<Inner>,
    rooms: Weak<dyn Local>,
    client: redis::Client,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Where the connection sends what the subscriptions bring (to [`read_pushes`]).
    pushes: mpsc::UnboundedSender<redis::PushInfo>,
    /// Made at the first successful connect; it reconnects by itself after that.
    manager: Option<ConnectionManager>,
    /// The wait before the next attempt to recover.
    delay: Duration,
    /// Whether the current outage has been logged as a warning.
    logged_failure: bool,
    /// An interval, not a sleep per turn: a stream of joins and leaves must not starve the
    /// check.
    health: tokio::time::Interval,
}

impl Supervisor {
    fn new(
        inner: Arc<Inner>,
        rooms: Weak<dyn Local>,
        client: redis::Client,
        commands: mpsc::UnboundedReceiver<Command>,
        pushes: mpsc::UnboundedSender<redis::PushInfo>,
    ) -> Self {
        let mut health = tokio::time::interval(HEALTH_INTERVAL);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (manager, delay, logged_failure) = (None, BACKOFF.0, false);
        Self { inner, rooms, client, commands, pushes, manager, delay, logged_failure, health }
    }

    /// Recovers while the broker is down, and carries out requests and health checks while it
    /// is up, until the rooms are gone or nobody can send requests any more.
    async fn run(mut self) {
        loop {
            let Some(rooms) = self.rooms.upgrade() else { return };
            if self.inner.up.load(Relaxed) {
                // Not held while waiting: the rooms may go away meanwhile.
                drop(rooms);
            } else if !self.recover(rooms).await {
                continue;
            }
            let Some(manager) = self.manager.as_mut() else { continue };
            let result = tokio::select! {
                command = self.commands.recv() => match command {
                    None => return,
                    Some(command) => apply(&self.inner, &self.rooms, manager, command).await,
                },
                _ = self.health.tick() => ping(manager).await,
                // Only a wake-up: `went_down` has already marked the broker down.
                () = self.inner.lost.notified() => Ok(()),
            };
            if let Err(why) = result {
                self.inner.went_down(&why);
            }
        }
    }

    /// One attempt to connect, check and resubscribe: `true` when the broker is up again;
    /// else, after the backoff delay, `false`. Holds `rooms` only while it works, never while
    /// it waits.
    async fn recover(&mut self, rooms: Arc<dyn Local>) -> bool {
        match tokio::time::timeout(RESPONSE_TIMEOUT * 2, self.resubscribe(&*rooms)).await {
            Ok(Ok(names)) => {
                rooms.mark_subscribed(&names);
                self.inner.up.store(true, Relaxed);
                info!(rooms = names.len(), "Redis reachable: rooms shared through it");
                self.delay = BACKOFF.0;
                self.logged_failure = false;
                true
            }
            failed => {
                drop(rooms);
                let why =
                    failed.map_or_else(|_| "timed out".to_string(), |e| e.unwrap_err().to_string());
                self.back_off(&why).await;
                false
            }
        }
    }

    /// Connects (the first time), checks with PING, subscribes to every room with members
    /// here; the rooms subscribed to.
    async fn resubscribe(&mut self, rooms: &dyn Local) -> Result<Vec<String>, redis::RedisError> {
        let inner = self.inner.clone();
        let manager = self.connect().await?;
        redis::cmd("PING").query_async::<Value>(&mut *manager).await?;
        let names = rooms.names();
        if !names.is_empty() {
            let channels: Vec<String> =
                names.iter().map(|n| format!("{}{n}", inner.prefix)).collect();
            manager.subscribe(channels).await?;
        }
        Ok(names)
    }

    /// The connection, made the first time.
    async fn connect(&mut self) -> Result<&mut ConnectionManager, redis::RedisError> {
        if self.manager.is_none() {
            let config = ConnectionManagerConfig::new()
                .set_push_sender(self.pushes.clone())
                .set_connection_timeout(Some(RESPONSE_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT))
                // The manager retries once; the supervisor's loop is the long-term backoff.
                .set_number_of_retries(1);
            let made = self.client.get_connection_manager_with_config(config).await?;
            *self.inner.manager.lock().unwrap_or_else(|e| e.into_inner()) = Some(made.clone());
            self.manager = Some(made);
        }
        Ok(self.manager.as_mut().expect("made above"))
    }

    /// Logs a failed recovery (a warning for the first of an outage), waits, and doubles the
    /// next wait.
    async fn back_off(&mut self, why: &str) {
        if !self.logged_failure {
            warn!("cannot reach Redis ({why}); retrying with backoff up to {:?}", BACKOFF.1);
            self.logged_failure = true;
        } else {
            debug!("Redis still unreachable: {why}");
        }
        // Requests that arrive meanwhile are covered by the resubscription.
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(BACKOFF.1);
        while self.commands.try_recv().is_ok() {}
    }
}

/// Carries out one subscription request.
async fn apply(
    inner: &Inner,
    rooms: &Weak<dyn Local>,
    manager: &mut ConnectionManager,
    command: Command,
) -> Result<(), String> {
    let channel = |room: &str| format!("{}{room}", inner.prefix);
    let done = match &command {
        Command::Subscribe(room) => manager.subscribe(channel(room)).await,
        Command::Unsubscribe(room) => manager.unsubscribe(channel(room)).await,
    };
    debug!(?command, ?done, "subscription change");
    if let (Ok(()), Command::Subscribe(room), Some(rooms)) = (&done, &command, rooms.upgrade()) {
        rooms.mark_subscribed(std::slice::from_ref(room));
    }
    done.map_err(|e| e.to_string())
}

/// The health check: PING, answered in time.
async fn ping(manager: &mut ConnectionManager) -> Result<(), String> {
    let ping = redis::cmd("PING");
    match tokio::time::timeout(RESPONSE_TIMEOUT, ping.query_async::<Value>(manager)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("PING timed out".to_string()),
    }
}

/// Delivers what the subscription brings, in the order it comes; notices lost connections.
async fn read_pushes(
    inner: Arc<Inner>,
    rooms: Weak<dyn Local>,
    mut pushes: mpsc::UnboundedReceiver<redis::PushInfo>,
) {
    while let Some(push) = pushes.recv().await {
        match push.kind {
            PushKind::Message => {
                let Some(rooms) = rooms.upgrade() else { return };
                let mut data = push.data.into_iter();
                let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) =
                    (data.next(), data.next())
                else {
                    continue;
                };
                let room = channel
                    .strip_prefix(inner.prefix.as_bytes())
                    .and_then(|r| std::str::from_utf8(r).ok());
                match (room, decode(payload)) {
                    (Some(room), Some(message)) => rooms.deliver(room, message),
                    _ => debug!(
                        "ignored a message on {:?} that is not a wsx room message",
                        String::from_utf8_lossy(&channel)
                    ),
                }
            }
            PushKind::Disconnection => inner.went_down("connection lost"),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_roundtrip_through_the_wire_format() {
        for message in
            [Message::text("héllo"), Message::text(""), Message::binary(vec![0u8, 255, 1])]
        {
            assert_eq!(decode(encode(&message)), Some(message));
        }
        assert_eq!(decode(Vec::new()), None);
        assert_eq!(decode(b"x123".to_vec()), None);
        assert_eq!(decode(b"t\xff".to_vec()), None, "text must be UTF-8");
    }

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(redacted("redis://:s3cret@db:6379/2"), "redis://:***@db:6379/2");
        assert_eq!(redacted("redis://app:s3cret@db"), "redis://app:***@db");
        assert_eq!(redacted("redis://db:6379"), "redis://db:6379");
    }

    #[test]
    fn bad_urls_say_what_to_use() {
        let error = Broker::new("http://example", "wsx:room:").unwrap_err().to_string();
        assert!(error.contains("redis://HOST:PORT"), "{error}");
    }
}
