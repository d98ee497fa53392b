//! The Redis broker behind `wsx serve --redis`: chat rooms that span several nodes.
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

use super::rooms::{Rooms, Undelivered};

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

/// A node's link to Redis. Cheap to share; the work happens in two tasks ([`Broker::start`]).
#[derive(Debug)]
pub(crate) struct Broker {
    inner: Arc<Inner>,
    commands: mpsc::UnboundedSender<Command>,
    /// Taken by [`Broker::start`].
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
    /// [`Broker::start`]. Channels are named `prefix` + room.
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

    /// Starts the supervisor (connects, subscribes, checks health, reconnects) and the reader
    /// of the subscription's messages, which delivers them to `rooms`.
    pub(crate) fn start(&self, rooms: Weak<Rooms>) {
        let Some((client, commands)) = self.start.lock().unwrap_or_else(|e| e.into_inner()).take()
        else {
            return;
        };
        let (pushes, receiver) = mpsc::unbounded_channel();
        tokio::spawn(read_pushes(self.inner.clone(), rooms.clone(), receiver));
        tokio::spawn(supervise(self.inner.clone(), rooms, client, commands, pushes));
    }

    /// Whether Redis is reachable and this node's subscriptions are in place.
    pub(crate) fn is_up(&self) -> bool {
        self.inner.up.load(Relaxed)
    }

    /// Times the broker went from up to down.
    pub(crate) fn outages(&self) -> u64 {
        self.inner.outages.load(Relaxed)
    }

    /// Room messages refused because the broker was down.
    pub(crate) fn undelivered(&self) -> u64 {
        self.inner.undelivered.load(Relaxed)
    }

    pub(crate) fn subscribe(&self, room: &str) {
        let _ = self.commands.send(Command::Subscribe(room.to_string()));
    }

    pub(crate) fn unsubscribe(&self, room: &str) {
        let _ = self.commands.send(Command::Unsubscribe(room.to_string()));
    }

    /// PUBLISHes `message` to `room`'s channel; it reaches the members (the sender included)
    /// when it comes back through the subscriptions.
    pub(crate) async fn publish(&self, room: &str, message: &Message) -> Result<(), Undelivered> {
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
async fn supervise(
    inner: Arc<Inner>,
    weak_rooms: Weak<Rooms>,
    client: redis::Client,
    mut commands: mpsc::UnboundedReceiver<Command>,
    pushes: mpsc::UnboundedSender<redis::PushInfo>,
) {
    let mut delay = BACKOFF.0;
    let mut manager: Option<ConnectionManager> = None;
    let mut logged_failure = false;
    // An interval, not a sleep per turn: a stream of joins and leaves must not starve the check.
    let mut health = tokio::time::interval(HEALTH_INTERVAL);
    health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let Some(rooms) = weak_rooms.upgrade() else { return };
        if !inner.up.load(Relaxed) {
            // Connect (the first time), check, resubscribe every room with members here.
            let recovered = async {
                if manager.is_none() {
                    let config = ConnectionManagerConfig::new()
                        .set_push_sender(pushes.clone())
                        .set_connection_timeout(Some(RESPONSE_TIMEOUT))
                        .set_response_timeout(Some(RESPONSE_TIMEOUT))
                        // The manager retries once; this loop is the long-term backoff.
                        .set_number_of_retries(1);
                    let made = client.get_connection_manager_with_config(config).await?;
                    *inner.manager.lock().unwrap_or_else(|e| e.into_inner()) = Some(made.clone());
                    manager = Some(made);
                }
                let manager = manager.as_mut().expect("made above");
                redis::cmd("PING").query_async::<Value>(&mut *manager).await?;
                let names = rooms.names();
                if !names.is_empty() {
                    let channels: Vec<String> =
                        names.iter().map(|n| format!("{}{n}", inner.prefix)).collect();
                    manager.subscribe(channels).await?;
                }
                Ok::<_, redis::RedisError>(names)
            };
            match tokio::time::timeout(RESPONSE_TIMEOUT * 2, recovered).await {
                Ok(Ok(names)) => {
                    rooms.mark_subscribed(names.iter().map(String::as_str));
                    inner.up.store(true, Relaxed);
                    info!(rooms = names.len(), "Redis reachable: rooms shared through it");
                    delay = BACKOFF.0;
                    logged_failure = false;
                }
                failed => {
                    let why = failed
                        .map_or_else(|_| "timed out".to_string(), |e| e.unwrap_err().to_string());
                    if !logged_failure {
                        warn!(
                            "cannot reach Redis ({why}); retrying with backoff up to {:?}",
                            BACKOFF.1
                        );
                        logged_failure = true;
                    } else {
                        debug!("Redis still unreachable: {why}");
                    }
                    drop(rooms);
                    // Requests that arrive meanwhile are covered by the resubscription.
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(BACKOFF.1);
                    while commands.try_recv().is_ok() {}
                    continue;
                }
            }
        }
        drop(rooms);
        let Some(manager) = manager.as_mut() else { continue };
        let result = tokio::select! {
            command = commands.recv() => match command {
                None => return,
                Some(command) => {
                    let channel = |room: &str| format!("{}{room}", inner.prefix);
                    let done = match &command {
                        Command::Subscribe(room) => manager.subscribe(channel(room)).await,
                        Command::Unsubscribe(room) => manager.unsubscribe(channel(room)).await,
                    };
                    debug!(?command, ?done, "subscription change");
                    if let (Ok(()), Command::Subscribe(room), Some(rooms)) = (&done, &command, weak_rooms.upgrade()) {
                        rooms.mark_subscribed([room.as_str()]);
                    }
                    done.map_err(|e| e.to_string())
                }
            },
            _ = health.tick() => {
                match tokio::time::timeout(RESPONSE_TIMEOUT, redis::cmd("PING").query_async::<Value>(manager)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("PING timed out".to_string()),
                }
            }
            // Only a wake-up: `went_down` has already marked the broker down.
            () = inner.lost.notified() => Ok(()),
        };
        if let Err(why) = result {
            inner.went_down(&why);
        }
    }
}

/// Delivers what the subscription brings, in the order it comes; notices lost connections.
async fn read_pushes(
    inner: Arc<Inner>,
    rooms: Weak<Rooms>,
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
