//! Chat rooms: one ordered broadcast per room. Every member, the sender included, receives the
//! room's messages in the one order in which the room's channel took them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;
use wsx::Message;

/// The rooms that have members.
#[derive(Debug)]
pub(crate) struct Rooms {
    rooms: Mutex<HashMap<String, broadcast::Sender<Message>>>,
    backlog: usize,
}

/// A member's place in a room; leaving the room when dropped.
#[derive(Debug)]
pub(crate) struct Membership {
    rooms: Arc<Rooms>,
    name: String,
    pub(crate) sender: broadcast::Sender<Message>,
    pub(crate) receiver: broadcast::Receiver<Message>,
}

impl Rooms {
    pub(crate) fn new(backlog: usize) -> Self {
        Self { rooms: Mutex::default(), backlog: backlog.max(1) }
    }

    /// Joins `name`, creating the room if it is new.
    pub(crate) fn join(self: &Arc<Self>, name: &str) -> Membership {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let sender = rooms
            .entry(name.to_string())
            .or_insert_with(|| broadcast::channel(self.backlog).0)
            .clone();
        let receiver = sender.subscribe();
        Membership { rooms: self.clone(), name: name.to_string(), sender, receiver }
    }

    /// Rooms with at least one member.
    pub(crate) fn count(&self) -> usize {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut rooms = self.rooms.rooms.lock().unwrap_or_else(|e| e.into_inner());
        // This member's receiver is still alive here: the room is empty when it is the last.
        if self.sender.receiver_count() <= 1 {
            rooms.remove(&self.name);
        }
    }
}
