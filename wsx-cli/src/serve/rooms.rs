//! Chat rooms: one ordered stream of messages per room, the same for every member.
//!
//! In memory (the default), a room is a tokio broadcast channel: its order is the order in which
//! the channel took the messages. With Redis (`--redis`), a room also is a Redis pub/sub channel
//! (see [`super::broker`]): a member's message is PUBLISHed and never delivered directly; every
//! node, the sender's included, delivers only what its subscription brings back, into the same
//! local broadcast channel. Redis sends one channel's messages to every subscriber in the order it
//! executed the PUBLISHes, so members on every node see one and the same order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use wsx::Message;

use super::broker::Broker;

/// How long a member joining a new room waits for the node's subscription to it.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);

/// The rooms that have members on this node.
#[derive(Debug)]
pub(crate) struct Rooms {
    rooms: Mutex<HashMap<String, Room>>,
    backlog: usize,
    broker: Option<Broker>,
}

/// One room on this node.
#[derive(Debug)]
struct Room {
    sender: broadcast::Sender<Message>,
    /// Whether this node's Redis subscription to the room is in place (always with no broker).
    subscribed: watch::Sender<bool>,
}

/// A member's place in a room; leaving the room when dropped.
#[derive(Debug)]
pub(crate) struct Membership {
    rooms: Arc<Rooms>,
    name: String,
    sender: broadcast::Sender<Message>,
    subscribed: watch::Receiver<bool>,
    pub(crate) receiver: broadcast::Receiver<Message>,
}

/// Why a member's message reached nobody.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Undelivered {
    /// Redis is unreachable (or did not answer the PUBLISH in time).
    BrokerDown,
}

impl std::fmt::Display for Undelivered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BrokerDown => f.write_str(
                "not delivered: the message broker (Redis) is unreachable; \
                 nobody received this message, send it again later",
            ),
        }
    }
}

impl Rooms {
    /// Rooms in this process only.
    pub(crate) fn in_memory(backlog: usize) -> Arc<Self> {
        Arc::new(Self { rooms: Mutex::default(), backlog: backlog.max(1), broker: None })
    }

    /// Rooms shared through `broker` (whose tasks this starts).
    pub(crate) fn with_broker(backlog: usize, broker: Broker) -> Arc<Self> {
        let rooms = Arc::new(Self {
            rooms: Mutex::default(),
            backlog: backlog.max(1),
            broker: Some(broker),
        });
        if let Some(broker) = &rooms.broker {
            broker.start(Arc::downgrade(&rooms));
        }
        rooms
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Room>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins `name`, creating the room (and subscribing to it) if it is new here.
    pub(crate) fn join(self: &Arc<Self>, name: &str) -> Membership {
        let mut rooms = self.lock();
        let room = rooms.entry(name.to_string()).or_insert_with(|| {
            let (subscribed, _) = watch::channel(self.broker.is_none());
            if let Some(broker) = &self.broker {
                // Under the lock: subscribe and unsubscribe requests keep the map's order.
                broker.subscribe(name);
            }
            Room { sender: broadcast::channel(self.backlog).0, subscribed }
        });
        Membership {
            rooms: self.clone(),
            name: name.to_string(),
            sender: room.sender.clone(),
            subscribed: room.subscribed.subscribe(),
            receiver: room.sender.subscribe(),
        }
    }

    /// Rooms with at least one member.
    pub(crate) fn count(&self) -> usize {
        self.lock().len()
    }

    /// The names of the rooms with members (what the node must be subscribed to).
    pub(crate) fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Marks the node's subscription to `names` as in place.
    pub(crate) fn mark_subscribed<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let rooms = self.lock();
        for name in names {
            if let Some(room) = rooms.get(name) {
                room.subscribed.send_replace(true);
            }
        }
    }

    /// Hands a message that came back from the broker to the room's members on this node.
    pub(crate) fn deliver(&self, name: &str, message: Message) {
        if let Some(room) = self.lock().get(name) {
            let _ = room.sender.send(message);
        }
    }

    /// The broker, if rooms are shared.
    pub(crate) fn broker(&self) -> Option<&Broker> {
        self.broker.as_ref()
    }
}

impl Membership {
    /// Waits (briefly) until this node receives the room's messages from the broker, so that a
    /// new member's first message comes back to it. Immediate without a broker.
    pub(crate) async fn ready(&mut self) {
        let broker_up = self.rooms.broker.as_ref().is_none_or(Broker::is_up);
        if broker_up {
            let _ = tokio::time::timeout(SUBSCRIBE_WAIT, self.subscribed.wait_for(|s| *s)).await;
        }
    }

    /// Sends `message` to every member of the room, this one included.
    pub(crate) async fn publish(&self, message: Message) -> Result<(), Undelivered> {
        match &self.rooms.broker {
            None => {
                // The room's channel puts every message in one order for all members.
                let _ = self.sender.send(message);
                Ok(())
            }
            Some(broker) => broker.publish(&self.name, &message).await,
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut rooms = self.rooms.lock();
        // This member's receiver is still alive here: the room is empty when it is the last.
        if self.sender.receiver_count() <= 1 {
            rooms.remove(&self.name);
            if let Some(broker) = &self.rooms.broker {
                broker.unsubscribe(&self.name);
            }
        }
    }
}
