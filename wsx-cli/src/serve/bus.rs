//! The contract between the chat rooms (`rooms.rs`) and a bus that shares them with other nodes
//! (`broker.rs`, over Redis): what the rooms ask of a bus ([`Bus`]), what a bus hands back to
//! the rooms of this node ([`Local`]), and why a message reached nobody ([`Undelivered`]).
//! Neither side imports the other; `serve/mod.rs` puts them together.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Weak;

use wsx::Message;

/// Carries rooms between nodes: a member's message is published to the bus, and reaches the
/// members (on every node, the sender's included) only when the bus brings it back through
/// [`Local::deliver`], so every node hands a room's messages over in the bus's one order.
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

    /// Sends `message` to every member of `room`, on every node.
    fn publish<'a>(&'a self, room: &'a str, message: &'a Message) -> Publishing<'a>;
}

/// A [`Bus::publish`] under way.
pub(crate) type Publishing<'a> = Pin<Box<dyn Future<Output = Result<(), Undelivered>> + Send + 'a>>;

/// The rooms of this node, as a bus sees them.
pub(crate) trait Local: Send + Sync {
    /// The rooms with members here (those the node must be subscribed to).
    fn names(&self) -> Vec<String>;

    /// Marks this node's subscription to `names` as in place.
    fn mark_subscribed(&self, names: &[String]);

    /// Hands a message that came from the bus to `room`'s members on this node.
    fn deliver(&self, room: &str, message: Message);
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
                 nobody received this message, send it again later",
            ),
        }
    }
}
