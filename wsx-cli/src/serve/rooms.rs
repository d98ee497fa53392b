//! Chat rooms: one ordered stream of messages per room, the same for every member.
//!
//! In memory (the default), a room is a tokio broadcast channel: its order is the order in which
//! the channel took the messages. With a [`Bus`] (`--redis`: `broker.rs`), a room also is a
//! channel of the bus: a member's message is published and never delivered directly; every node,
//! the sender's included, delivers only what its subscription brings back, into the same local
//! broadcast channel. The bus sends one room's messages to every node in one order (Redis: the
//! order in which it executed the PUBLISHes), so members on every node see one and the same
//! order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use wsx::Message;

use super::bus::{Bus, Local, Undelivered};

/// How long a member joining a new room waits for the node's subscription to it.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);

/// The rooms that have members on this node.
#[derive(Debug)]
pub(crate) struct Rooms {
    rooms: Mutex<HashMap<String, Room>>,
    backlog: usize,
    bus: Option<Box<dyn Bus>>,
}

/// One room on this node.
#[derive(Debug)]
struct Room {
    sender: broadcast::Sender<Message>,
    /// Whether this node's subscription to the room is in place (always with no bus).
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

impl Rooms {
    /// Rooms in this process only.
    pub(crate) fn in_memory(backlog: usize) -> Arc<Self> {
        Arc::new(Self { rooms: Mutex::default(), backlog: backlog.max(1), bus: None })
    }

    /// Rooms shared through `bus` (which this starts).
    pub(crate) fn shared(backlog: usize, bus: Box<dyn Bus>) -> Arc<Self> {
        let rooms =
            Arc::new(Self { rooms: Mutex::default(), backlog: backlog.max(1), bus: Some(bus) });
        if let Some(bus) = &rooms.bus {
            let local: Weak<dyn Local> = Arc::<Self>::downgrade(&rooms);
            bus.start(local);
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
            let (subscribed, _) = watch::channel(self.bus.is_none());
            if let Some(bus) = &self.bus {
                // Under the lock: subscribe and unsubscribe requests keep the map's order.
                bus.subscribe(name);
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

    /// The bus, if rooms are shared.
    pub(crate) fn bus(&self) -> Option<&dyn Bus> {
        self.bus.as_deref()
    }
}

impl Local for Rooms {
    fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn mark_subscribed(&self, names: &[String]) {
        let rooms = self.lock();
        for name in names {
            if let Some(room) = rooms.get(name) {
                room.subscribed.send_replace(true);
            }
        }
    }

    fn deliver(&self, name: &str, message: Message) {
        if let Some(room) = self.lock().get(name) {
            let _ = room.sender.send(message);
        }
    }
}

impl Membership {
    /// Waits (briefly) until this node receives the room's messages from the bus, so that a
    /// new member's first message comes back to it. Immediate without a bus.
    pub(crate) async fn ready(&mut self) {
        let bus_up = self.rooms.bus.as_ref().is_none_or(|bus| bus.is_up());
        if bus_up {
            let _ = tokio::time::timeout(SUBSCRIBE_WAIT, self.subscribed.wait_for(|s| *s)).await;
        }
    }

    /// Sends `message` to every member of the room, this one included.
    pub(crate) async fn publish(&self, message: Message) -> Result<(), Undelivered> {
        match &self.rooms.bus {
            None => {
                // The room's channel puts every message in one order for all members.
                let _ = self.sender.send(message);
                Ok(())
            }
            Some(bus) => bus.publish(&self.name, &message).await,
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut rooms = self.rooms.lock();
        // This member's receiver is still alive here: the room is empty when it is the last.
        if self.sender.receiver_count() <= 1 {
            rooms.remove(&self.name);
            if let Some(bus) = &self.rooms.bus {
                bus.unsubscribe(&self.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::bus::Publishing;

    /// A bus that records requests and brings every message straight back.
    #[derive(Debug, Default)]
    struct Loopback {
        local: Mutex<Option<Weak<dyn Local>>>,
        requests: Mutex<Vec<String>>,
    }

    impl Bus for Arc<Loopback> {
        fn name(&self) -> &'static str {
            "loopback"
        }
        fn start(&self, local: Weak<dyn Local>) {
            *self.local.lock().unwrap() = Some(local);
        }
        fn is_up(&self) -> bool {
            true
        }
        fn outages(&self) -> u64 {
            0
        }
        fn undelivered(&self) -> u64 {
            0
        }
        fn subscribe(&self, room: &str) {
            self.requests.lock().unwrap().push(format!("+{room}"));
        }
        fn unsubscribe(&self, room: &str) {
            self.requests.lock().unwrap().push(format!("-{room}"));
        }
        fn publish<'a>(&'a self, room: &'a str, message: &'a Message) -> Publishing<'a> {
            let local = self.local.lock().unwrap().as_ref().and_then(Weak::upgrade);
            let local = local.expect("started");
            local.deliver(room, message.clone());
            Box::pin(async { Ok(()) })
        }
    }

    #[tokio::test]
    async fn a_bus_carries_the_rooms_messages() {
        let bus = Arc::new(Loopback::default());
        let rooms = Rooms::shared(8, Box::new(bus.clone()));
        let mut a = rooms.join("r");
        let mut b = rooms.join("r");
        assert_eq!(*bus.requests.lock().unwrap(), ["+r"], "one subscription per room");
        assert_eq!(rooms.names(), ["r"]);
        assert!(!*a.subscribed.borrow(), "not subscribed before the bus says so");
        rooms.mark_subscribed(&["r".to_string()]);
        a.ready().await;
        a.publish(Message::text("hi")).await.unwrap();
        assert_eq!(a.receiver.recv().await.unwrap(), Message::text("hi"));
        assert_eq!(b.receiver.recv().await.unwrap(), Message::text("hi"));
        drop((a, b));
        assert_eq!(*bus.requests.lock().unwrap(), ["+r", "-r"], "unsubscribed with the last");
        assert_eq!(rooms.count(), 0);
    }
}
