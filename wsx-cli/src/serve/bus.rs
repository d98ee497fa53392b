//! The contract between the chat rooms (`rooms.rs`) and a bus that shares them with other nodes
//! (`broker.rs`, over Redis): what the rooms ask of a bus ([`Bus`]), what a bus hands back to
//! the rooms of this node ([`Local`]), what travels through a room ([`Event`], [`Posted`]),
//! where a joining member starts ([`Start`]) and what it finds ([`Replay`]), and why a message
//! reached nobody ([`Undelivered`]). Neither side imports the other; `serve/mod.rs` puts them
//! together.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, Weak};

use wsx::{Message, Prepared};

/// Carries rooms between nodes: a member's message is published to the bus, and reaches the
/// members (on every node, the sender's included) only when the bus brings it back through
/// [`Local::deliver`], with its offset, so every node hands a room's messages over in the bus's
/// one order. The bus also keeps each room's history and its presence list.
pub(crate) trait Bus: fmt::Debug + Send + Sync {
    /// What `/healthz` calls this bus, in its `broker` field (`"redis"`).
    fn name(&self) -> &'static str;

    /// Starts the bus's work (connecting, subscribing, reading); what it receives goes to
    /// `local`, and it ends once `local` is gone.
    fn start(&self, local: Weak<dyn Local>);

    /// Whether the bus is reachable and this node's subscriptions are in place.
    fn is_up(&self) -> bool;

    /// Times the bus went from up to down.
    fn outages(&self) -> u64;

    /// Room messages refused because the bus was down.
    fn undelivered(&self) -> u64;

    /// Asks for `room`'s messages (its first member on this node joined). Requests are carried
    /// out in the order they are made.
    fn subscribe(&self, room: &str);

    /// No more of `room`'s messages (its last member on this node left).
    fn unsubscribe(&self, room: &str);

    /// Queues `message` from `member` for every member of `room`, on every node; resolves once
    /// queued (a bounded queue: a sender waits while it is full). Messages queued by one member
    /// are published in the order queued. A message refused later (the bus failed under it)
    /// comes back to this node as [`Event::Refused`].
    fn publish<'a>(
        &'a self,
        room: &'a str,
        member: &'a Arc<str>,
        message: Message,
    ) -> Publishing<'a>;

    /// Enters `member` in `room`'s presence list (announcing it), then reads where it starts.
    fn join<'a>(&'a self, room: &'a str, member: &'a Member, start: &'a Start) -> Joining<'a>;

    /// Takes `member` out of `room`'s presence list, announcing it.
    fn leave(&self, room: &str, member: &Member);

    /// Resolves once everything queued so far (messages, leaves) has been carried out (or has
    /// failed): a node that stops loses none of what its members sent.
    fn flush(&self) -> Flushing<'_>;
}

/// A [`Bus::flush`] under way.
pub(crate) type Flushing<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A [`Bus::publish`] under way.
pub(crate) type Publishing<'a> = Pin<Box<dyn Future<Output = Result<(), Undelivered>> + Send + 'a>>;

/// A [`Bus::join`] under way.
pub(crate) type Joining<'a> =
    Pin<Box<dyn Future<Output = Result<Replay, Undelivered>> + Send + 'a>>;

/// The rooms of this node, as a bus sees them.
pub(crate) trait Local: Send + Sync {
    /// The rooms with members here (those the node must be subscribed to), with their members
    /// (whose presence the bus keeps fresh).
    fn names(&self) -> Vec<(String, Vec<Member>)>;

    /// Marks this node's subscription to `names` as in place.
    fn mark_subscribed(&self, names: &[String]);

    /// Hands an event that came from the bus to `room`'s members on this node.
    fn deliver(&self, room: &str, event: Event);
}

/// What goes through a room to its members: cheap to clone (one per member).
#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// A message, at its place in the room.
    Posted(Arc<Posted>),
    /// Consecutive messages that came from the bus at once, in offset order: a member takes
    /// them with one wake-up and writes them with one write.
    Batch(Arc<[Arc<Posted>]>),
    /// A member came.
    Joined(Arc<Member>),
    /// A member left.
    Left(Arc<Member>),
    /// The bus could not publish a message of `member` (only that member is told).
    Refused(Arc<str>),
}

impl Event {
    /// The room's messages this event carries (none for the others).
    pub(crate) fn posted(&self) -> &[Arc<Posted>] {
        match self {
            Self::Posted(posted) => std::slice::from_ref(posted),
            Self::Batch(batch) => batch,
            Self::Joined(_) | Self::Left(_) | Self::Refused(_) => &[],
        }
    }
}

/// A room's message, at its place: `offset` in `epoch`.
#[derive(Debug)]
pub(crate) struct Posted {
    pub(crate) epoch: Arc<str>,
    pub(crate) offset: u64,
    /// The message as its author sent it (what `chat` members receive).
    pub(crate) message: Message,
    /// When it was published (milliseconds since the Unix epoch, the bus's clock), for
    /// `--history-ttl`.
    pub(crate) at_ms: u64,
    /// The `superchat` frame, made (and with permessage-deflate compressed) once for every
    /// member that needs it.
    pub(crate) frame: OnceLock<Prepared>,
    /// The message as sent, prepared once for every `chat` member.
    relayed: OnceLock<Prepared>,
}

impl Posted {
    pub(crate) fn new(epoch: Arc<str>, offset: u64, message: Message, at_ms: u64) -> Self {
        Self { epoch, offset, message, at_ms, frame: OnceLock::new(), relayed: OnceLock::new() }
    }

    /// The message as its author sent it, prepared once for every member that relays it.
    pub(crate) fn relayed(&self) -> &Prepared {
        let prepare = || Prepared::new(self.message.clone()).expect("rooms carry data messages");
        self.relayed.get_or_init(prepare)
    }
}

/// A member in a presence list: its id (unique across nodes) and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) id: Arc<str>,
    pub(crate) name: String,
}

impl Member {
    /// The member as the bus stores it: `{"member":ID,"name":NAME}`.
    pub(crate) fn to_json(&self) -> String {
        serde_json::json!({ "member": &*self.id, "name": self.name }).to_string()
    }

    /// A member stored by [`Member::to_json`].
    pub(crate) fn from_json(json: &[u8]) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_slice(json).ok()?;
        let id = value.get("member")?.as_str()?;
        let name = value.get("name")?.as_str()?;
        Some(Self { id: id.into(), name: name.to_string() })
    }
}

/// Where a joining member starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Start {
    /// With the live messages.
    Live,
    /// With the room's last `n` messages (bounded by `--history`).
    Last(u64),
    /// Resuming: every message after `offset` in `epoch`.
    After { epoch: String, offset: u64 },
}

/// What a joining member finds: the room's place and what to replay before the live messages.
#[derive(Debug, Clone)]
pub(crate) struct Replay {
    pub(crate) epoch: Arc<str>,
    /// The room's last offset (0: no message yet).
    pub(crate) top: u64,
    /// The messages to hand over first, in order, all of them in `epoch` and at most `top`.
    pub(crate) posted: Vec<Arc<Posted>>,
    /// The members present (this one included).
    pub(crate) presence: Vec<Member>,
}

/// Why a member's message reached nobody.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Undelivered {
    /// The bus (Redis) is unreachable (or did not take the message in time).
    BrokerDown,
}

impl fmt::Display for Undelivered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BrokerDown => f.write_str(
                "not delivered: the message broker (Redis) is unreachable; \
                 send it again later (if it was published after all, it comes back to you \
                 like every room message)",
            ),
        }
    }
}

/// A new epoch: 16 random hex digits.
pub(crate) fn new_epoch() -> String {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 8];
    // The system's random source; a failure (none on Linux) falls back to the clock.
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        bytes = now.map_or(0, |d| d.as_nanos() as u64).to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0, |d| d.as_millis() as u64)
}
