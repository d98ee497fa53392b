//! Chat rooms: one ordered stream of messages per room, the same for every member, with
//! positions (offset and epoch), history and presence (docs/rooms.md).
//!
//! In memory (the default), a room's offsets, history and presence live here: a message gets
//! its offset and enters the history under the room's lock, and goes to the members through a
//! tokio broadcast channel in that same order. With a [`Bus`] (`--redis`: `broker.rs`), the
//! bus keeps all three: a member's message is published and never delivered directly; every
//! node, the sender's included, delivers only what the bus brings back, with the offset the bus
//! gave it, into the same local broadcast channel.
//!
//! A joining member subscribes to the local channel first and reads where it starts second, so
//! nothing falls between the two: what it reads ([`Replay`]) ends at the room's last offset
//! `top`, and of what the channel brings it skips what is at most `top` in the same epoch.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use wsx::Message;

use super::bus::{new_epoch, now_ms, Bus, Event, Local, Member, Posted, Replay, Start};
use super::bus::{Undelivered, Undelivered::BrokerDown};

/// How long a member joining a new room waits for the node's subscription to it.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);

/// What the rooms keep of their past (`--history`, `--history-ttl`, `--history-rooms`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct History {
    /// Messages kept per room.
    pub(crate) messages: usize,
    /// Messages older than this are not replayed; a room quiet for this long starts a new
    /// epoch. Zero: no limit.
    pub(crate) ttl: Duration,
    /// Rooms without members whose history is kept in memory (the least recently used
    /// beyond it are forgotten).
    pub(crate) rooms: usize,
}

impl History {
    fn ttl_ms(&self) -> Option<u64> {
        (!self.ttl.is_zero()).then_some(self.ttl.as_millis() as u64)
    }
}

/// The rooms of this node.
#[derive(Debug)]
pub(crate) struct Rooms {
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    backlog: usize,
    history: History,
    /// Member ids are this node's name, a random tag of this process and a counter.
    node: String,
    next_member: AtomicU64,
    bus: Option<Box<dyn Bus>>,
}

/// One room on this node.
#[derive(Debug)]
struct Room {
    sender: broadcast::Sender<Event>,
    /// The messages sent through `sender` so far (an event may carry several), counted under
    /// the state's lock: how far behind a member is, in messages.
    sent: AtomicU64,
    /// Whether this node's subscription to the room is in place (always with no bus).
    subscribed: watch::Sender<bool>,
    state: Mutex<RoomState>,
}

#[derive(Debug)]
struct RoomState {
    /// The members on this node.
    members: Vec<Member>,
    /// Offsets and history, in memory (none with a bus, which keeps them).
    log: Option<Log>,
    /// The member counter at the room's last join, to forget the least recently used.
    used: u64,
}

/// A room's offsets and history in memory.
#[derive(Debug)]
struct Log {
    epoch: Arc<str>,
    top: u64,
    kept: VecDeque<Arc<Posted>>,
    /// When the last message came (ms since the Unix epoch).
    last_ms: u64,
}

/// A member's place in a room; leaving the room when dropped.
#[derive(Debug)]
pub(crate) struct Membership {
    rooms: Arc<Rooms>,
    name: String,
    room: Arc<Room>,
    pub(crate) member: Member,
    subscribed: watch::Receiver<bool>,
    pub(crate) receiver: broadcast::Receiver<Event>,
    /// The room's count of messages sent ([`Room::sent`]) up to the last one received.
    received: u64,
    /// Messages of this epoch up to this offset were replayed (or came before the join).
    seen: Option<(Arc<str>, u64)>,
}

impl Rooms {
    /// Rooms in this process only; member ids start with `node`.
    pub(crate) fn in_memory(backlog: usize, history: History, node: &str) -> Arc<Self> {
        Arc::new(Self::new(backlog, history, node, None))
    }

    /// Rooms shared through `bus` (which this starts).
    pub(crate) fn shared(
        backlog: usize,
        history: History,
        node: &str,
        bus: Box<dyn Bus>,
    ) -> Arc<Self> {
        let rooms = Arc::new(Self::new(backlog, history, node, Some(bus)));
        if let Some(bus) = &rooms.bus {
            let local: Weak<dyn Local> = Arc::<Self>::downgrade(&rooms);
            bus.start(local);
        }
        rooms
    }

    fn new(backlog: usize, history: History, node: &str, bus: Option<Box<dyn Bus>>) -> Self {
        Self {
            rooms: Mutex::default(),
            backlog: backlog.max(1),
            history,
            // A restarted node does not reuse its predecessor's ids (whose presence entries may
            // still be listed for a while): a random tag per process.
            node: format!("{node}-{}", &new_epoch()[..4]),
            next_member: AtomicU64::new(1),
            bus,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Room>>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins `room` as `name`, creating the room (and subscribing to it) if it is new here.
    /// The member receives every message from here on; [`Membership::enter`] says where it
    /// starts.
    pub(crate) fn join(self: &Arc<Self>, room_name: &str, name: &str) -> Membership {
        let id = format!("{}-{}", self.node, self.next_member.fetch_add(1, Relaxed));
        let member = Member { id: id.into(), name: name.to_string() };
        let mut rooms = self.lock();
        let used = self.next_member.load(Relaxed);
        let room = match rooms.get(room_name) {
            Some(room) => room.clone(),
            None => {
                self.forget_beyond_limit(&mut rooms);
                let room = self.open(room_name);
                rooms.insert(room_name.to_string(), room.clone());
                room
            }
        };
        let mut state = room.lock();
        state.used = used;
        if self.bus.is_none() {
            // Those already here hear of the newcomer; the newcomer finds itself in the list.
            room.send(&state, Event::Joined(Arc::new(member.clone())));
        }
        state.members.push(member.clone());
        let receiver = room.sender.subscribe();
        let received = room.sent.load(Relaxed);
        drop(state);
        Membership {
            rooms: self.clone(),
            name: room_name.to_string(),
            subscribed: room.subscribed.subscribe(),
            receiver,
            received,
            room,
            member,
            seen: None,
        }
    }

    /// A new room (under the map's lock: subscribe and unsubscribe requests keep its order).
    fn open(&self, name: &str) -> Arc<Room> {
        let (subscribed, _) = watch::channel(self.bus.is_none());
        if let Some(bus) = &self.bus {
            bus.subscribe(name);
        }
        let log = self.bus.is_none().then(|| Log::new(now_ms()));
        let state = RoomState { members: Vec::new(), log, used: 0 };
        Arc::new(Room {
            sender: broadcast::channel(self.backlog).0,
            sent: AtomicU64::new(0),
            subscribed,
            state: Mutex::new(state),
        })
    }

    /// Makes room for one more: forgets the least recently used rooms without members beyond
    /// `--history-rooms`.
    fn forget_beyond_limit(&self, rooms: &mut HashMap<String, Arc<Room>>) {
        while rooms.len() >= self.history.rooms.max(1) {
            let idle = rooms
                .iter()
                .filter(|(_, room)| room.sender.receiver_count() == 0)
                .min_by_key(|(_, room)| room.lock().used)
                .map(|(name, _)| name.clone());
            let Some(name) = idle else { return };
            rooms.remove(&name);
        }
    }

    /// Rooms with at least one member.
    pub(crate) fn count(&self) -> usize {
        self.lock().values().filter(|room| room.sender.receiver_count() > 0).count()
    }

    /// The bus, if rooms are shared.
    pub(crate) fn bus(&self) -> Option<&dyn Bus> {
        self.bus.as_deref()
    }
}

impl Room {
    fn lock(&self) -> MutexGuard<'_, RoomState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `event` to the members, counting its messages (`_state`: the room's lock, held).
    fn send(&self, _state: &MutexGuard<'_, RoomState>, event: Event) {
        self.sent.fetch_add(event.posted().len() as u64, Relaxed);
        let _ = self.sender.send(event);
    }
}

impl Log {
    fn new(now: u64) -> Self {
        Self { epoch: new_epoch().into(), top: 0, kept: VecDeque::new(), last_ms: now }
    }

    /// Drops what `history` no longer keeps at `now`; a room quiet for longer than the TTL
    /// loses its history and starts a new epoch.
    fn expire(&mut self, history: &History, now: u64) {
        let Some(ttl) = history.ttl_ms() else { return };
        if self.top > 0 && now.saturating_sub(self.last_ms) > ttl {
            *self = Self::new(now);
        }
        while self.kept.front().is_some_and(|p| now.saturating_sub(p.at_ms) > ttl) {
            self.kept.pop_front();
        }
    }

    /// `message` at the next offset, kept as `history` says.
    fn append(&mut self, message: Message, history: &History, now: u64) -> Arc<Posted> {
        self.expire(history, now);
        self.top += 1;
        self.last_ms = now;
        let posted = Arc::new(Posted::new(self.epoch.clone(), self.top, message, now));
        if history.messages > 0 {
            if self.kept.len() == history.messages {
                self.kept.pop_front();
            }
            self.kept.push_back(posted.clone());
        }
        posted
    }

    /// Where a member starting at `start` starts.
    fn replay(&mut self, start: &Start, history: &History, now: u64) -> (u64, Vec<Arc<Posted>>) {
        self.expire(history, now);
        let from = match start {
            Start::Live => self.top + 1,
            Start::Last(n) => self.top.saturating_sub(*n) + 1,
            Start::After { epoch, offset } if **epoch == *self.epoch && *offset <= self.top => {
                offset + 1
            }
            // Another epoch (or an offset this one never reached): whatever is still kept.
            Start::After { .. } => 0,
        };
        let posted = self.kept.iter().filter(|p| p.offset >= from).cloned().collect();
        (self.top, posted)
    }
}

impl Local for Rooms {
    fn names(&self) -> Vec<(String, Vec<Member>)> {
        let rooms = self.lock();
        rooms.iter().map(|(name, room)| (name.clone(), room.lock().members.clone())).collect()
    }

    fn mark_subscribed(&self, names: &[String]) {
        let rooms = self.lock();
        for name in names {
            if let Some(room) = rooms.get(name) {
                room.subscribed.send_replace(true);
            }
        }
    }

    fn deliver(&self, name: &str, event: Event) {
        let room = self.lock().get(name).cloned();
        if let Some(room) = room {
            room.send(&room.lock(), event);
        }
    }
}

impl Membership {
    /// Waits until this node receives the room's messages (from the bus: briefly), then reads
    /// where this member starts at `start`, the room's history and presence. With a bus, this
    /// also enters the member in the room's presence list; `Err` when the bus is down.
    pub(crate) async fn enter(&mut self, start: &Start) -> Result<Replay, Undelivered> {
        let replay = match &self.rooms.bus {
            None => {
                let history = &self.rooms.history;
                let mut state = self.room.lock();
                let presence = state.members.clone();
                let log = state.log.as_mut().expect("rooms in memory keep a log");
                let (top, posted) = log.replay(start, history, now_ms());
                Replay { epoch: log.epoch.clone(), top, posted, presence }
            }
            Some(bus) => {
                if !bus.is_up() {
                    return Err(BrokerDown);
                }
                // Without the subscription, what is published after the replay's read could be
                // missed: better refused (and retried) than a silent gap.
                let ready = self.subscribed.wait_for(|s| *s);
                if !matches!(tokio::time::timeout(SUBSCRIBE_WAIT, ready).await, Ok(Ok(_))) {
                    return Err(BrokerDown);
                }
                let mut replay = bus.join(&self.name, &self.member, start).await?;
                if let Some(ttl) = self.rooms.history.ttl_ms() {
                    let now = now_ms();
                    replay.posted.retain(|p| now.saturating_sub(p.at_ms) <= ttl);
                }
                replay
            }
        };
        self.seen = Some((replay.epoch.clone(), replay.top));
        Ok(replay)
    }

    /// The room's name.
    pub(crate) fn room(&self) -> &str {
        &self.name
    }

    /// Counts the messages of `event`, just received: `false` when this member is more than
    /// `--room-backlog` messages behind the room (its queue holds events, and an event from the
    /// bus may carry many).
    pub(crate) fn keeps_up(&mut self, event: &Event) -> bool {
        self.received += event.posted().len() as u64;
        self.room.sent.load(Relaxed).saturating_sub(self.received) <= self.rooms.backlog as u64
    }

    /// Whether `posted` is new to this member: not replayed, not from before it joined.
    pub(crate) fn is_new(&self, posted: &Posted) -> bool {
        match &self.seen {
            Some((epoch, top)) => *epoch != posted.epoch || posted.offset > *top,
            None => true,
        }
    }

    /// Sends `message` to every member of the room, this one included.
    pub(crate) async fn publish(&self, message: Message) -> Result<(), Undelivered> {
        match &self.rooms.bus {
            None => {
                let mut state = self.room.lock();
                let log = state.log.as_mut().expect("rooms in memory keep a log");
                let posted = log.append(message, &self.rooms.history, now_ms());
                // Sent under the room's lock: the members get the messages in offset order.
                self.room.send(&state, Event::Posted(posted));
                Ok(())
            }
            Some(bus) => bus.publish(&self.name, &self.member.id, message).await,
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut rooms = self.rooms.lock();
        let mut state = self.room.lock();
        state.members.retain(|m| m.id != self.member.id);
        match &self.rooms.bus {
            None => self.room.send(&state, Event::Left(Arc::new(self.member.clone()))),
            Some(bus) => bus.leave(&self.name, &self.member),
        }
        // This member's receiver is still alive here: the room is empty when it is the last.
        // In memory the room stays for its history (until --history-rooms forgets it).
        if self.room.sender.receiver_count() <= 1 {
            if let Some(bus) = &self.rooms.bus {
                drop(state);
                rooms.remove(&self.name);
                bus.unsubscribe(&self.name);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::serve::bus::{Flushing, Joining, Publishing};

    pub(crate) const HISTORY: History = History { messages: 3, ttl: Duration::ZERO, rooms: 2 };

    fn offsets(posted: &[Arc<Posted>]) -> Vec<u64> {
        posted.iter().map(|p| p.offset).collect()
    }

    async fn next_posted(member: &mut Membership) -> Arc<Posted> {
        loop {
            if let Event::Posted(p) = member.receiver.recv().await.unwrap() {
                return p;
            }
        }
    }

    #[tokio::test]
    async fn offsets_history_and_resume_in_memory() {
        let rooms = Rooms::in_memory(16, HISTORY, "n1");
        let mut a = rooms.join("r", "ada");
        let first = a.enter(&Start::Live).await.unwrap();
        assert_eq!((first.top, first.posted.len()), (0, 0));
        for i in 1..=5 {
            a.publish(Message::text(format!("m{i}"))).await.unwrap();
        }
        assert_eq!(next_posted(&mut a).await.offset, 1, "offsets start at 1");
        let mut b = rooms.join("r", "bob");
        let replay = b.enter(&Start::Last(2)).await.unwrap();
        assert_eq!((replay.top, offsets(&replay.posted)), (5, vec![4, 5]));
        assert_eq!(replay.epoch, first.epoch);
        let names: Vec<_> = replay.presence.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["ada", "bob"]);
        let after = |offset| Start::After { epoch: first.epoch.to_string(), offset };
        let mut c = rooms.join("r", "cy");
        assert_eq!(offsets(&c.enter(&after(3)).await.unwrap().posted), [4, 5], "resumed");
        assert_eq!(offsets(&c.enter(&after(1)).await.unwrap().posted), [3, 4, 5], "3 kept");
        let other = Start::After { epoch: "other".to_string(), offset: 1 };
        assert_eq!(offsets(&c.enter(&other).await.unwrap().posted), [3, 4, 5]);
        let mut d = rooms.join("r", "dee");
        c.publish(Message::text("m6")).await.unwrap();
        assert_eq!(d.enter(&Start::Live).await.unwrap().top, 6);
        let p = next_posted(&mut d).await;
        assert!(!d.is_new(&p), "published between the join and the enter: counted in top");
        c.publish(Message::text("m7")).await.unwrap();
        let p = next_posted(&mut d).await;
        assert_eq!(p.offset, 7);
        assert!(d.is_new(&p));
        assert_eq!(next_posted(&mut b).await.offset, 6, "b's channel: what came after its join");
    }

    #[tokio::test]
    async fn presence_in_memory() {
        let rooms = Rooms::in_memory(16, HISTORY, "n1");
        let mut a = rooms.join("r", "ada");
        a.enter(&Start::Live).await.unwrap();
        let b = rooms.join("r", "bob");
        match a.receiver.recv().await.unwrap() {
            Event::Joined(m) => {
                assert_eq!(m.name, "bob");
                assert!(m.id.starts_with("n1-") && m.id.ends_with("-2"), "{}", m.id);
                let restarted = Rooms::in_memory(16, HISTORY, "n1");
                assert_ne!(m.id, restarted.join("r", "bob").member.id, "not reused");
            }
            other => panic!("{other:?}"),
        }
        drop(b);
        match a.receiver.recv().await.unwrap() {
            Event::Left(m) => assert_eq!(m.name, "bob"),
            other => panic!("{other:?}"),
        }
        assert_eq!(rooms.names()[0].1.len(), 1);
    }

    #[tokio::test]
    async fn quiet_rooms_are_forgotten_beyond_the_limit_and_expire() {
        let rooms = Rooms::in_memory(16, HISTORY, "n1");
        for name in ["a", "b", "c"] {
            let mut m = rooms.join(name, "x");
            m.enter(&Start::Live).await.unwrap();
            m.publish(Message::text("hi")).await.unwrap();
        }
        assert_eq!(rooms.lock().len(), 2, "--history-rooms");
        assert!(!rooms.lock().contains_key("a"), "the least recently used goes");
        assert_eq!(rooms.count(), 0, "no members");

        let history = History { ttl: Duration::from_secs(1), ..HISTORY };
        let mut log = Log::new(1_000);
        let m = |t| Message::text(format!("{t}"));
        log.append(m(1), &history, 1_000);
        log.append(m(2), &history, 1_800);
        let (_, posted) = log.replay(&Start::Last(9), &history, 2_500);
        assert_eq!(offsets(&posted), [2], "older than the TTL: not replayed");
        let epoch = log.epoch.clone();
        let (top, posted) = log.replay(&Start::Last(9), &history, 2_900);
        assert_eq!((top, posted.len()), (0, 0), "quiet for the TTL: history lost");
        assert_ne!(log.epoch, epoch, "a new epoch says so");
    }

    /// A bus that records requests and brings every message straight back.
    #[derive(Debug, Default)]
    struct Loopback {
        local: Mutex<Option<Weak<dyn Local>>>,
        requests: Mutex<Vec<String>>,
        top: AtomicU64,
    }

    impl Loopback {
        fn local(&self) -> Arc<dyn Local> {
            self.local.lock().unwrap().as_ref().and_then(Weak::upgrade).expect("started")
        }
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
        fn publish<'a>(
            &'a self,
            room: &'a str,
            _member: &'a Arc<str>,
            message: Message,
        ) -> Publishing<'a> {
            let offset = self.top.fetch_add(1, Relaxed) + 1;
            let posted = Posted::new("e".into(), offset, message, now_ms());
            self.local().deliver(room, Event::Posted(Arc::new(posted)));
            Box::pin(async { Ok(()) })
        }
        fn join<'a>(&'a self, room: &'a str, member: &'a Member, _: &'a Start) -> Joining<'a> {
            self.requests.lock().unwrap().push(format!("join {room} {}", member.name));
            let top = self.top.load(Relaxed);
            let presence = vec![member.clone()];
            Box::pin(async move { Ok(Replay { epoch: "e".into(), top, posted: vec![], presence }) })
        }
        fn leave(&self, room: &str, member: &Member) {
            self.requests.lock().unwrap().push(format!("leave {room} {}", member.name));
        }
        fn flush(&self) -> Flushing<'_> {
            Box::pin(async {})
        }
    }

    /// A member's lag is counted in messages, also when an event from the bus carries several.
    #[tokio::test]
    async fn the_backlog_counts_messages_not_events() {
        let bus = Arc::new(Loopback::default());
        let rooms = Rooms::shared(8, HISTORY, "n1", Box::new(bus.clone()));
        rooms.mark_subscribed(&["r".to_string()]);
        let (mut fast, mut slow) = (rooms.join("r", "ada"), rooms.join("r", "bob"));
        let batch = |first: u64| -> Event {
            let at = |offset| Arc::new(Posted::new("e".into(), offset, Message::text("m"), 0));
            Event::Batch((first..first + 5).map(at).collect())
        };
        for first in [1, 6, 11] {
            bus.local().deliver("r", batch(first));
            let event = fast.receiver.recv().await.unwrap();
            assert_eq!(event.posted()[0].offset, first);
            assert!(fast.keeps_up(&event), "reads as the messages come");
        }
        let event = slow.receiver.recv().await.unwrap();
        assert!(!slow.keeps_up(&event), "3 events queued, but 10 messages behind");
        let late = rooms.join("r", "cy");
        assert_eq!(late.received, 15, "counted from its join");
    }

    #[tokio::test]
    async fn a_bus_carries_the_rooms_messages() {
        let bus = Arc::new(Loopback::default());
        let rooms = Rooms::shared(8, HISTORY, "n1", Box::new(bus.clone()));
        let mut a = rooms.join("r", "ada");
        let b = rooms.join("r", "bob");
        assert_eq!(*bus.requests.lock().unwrap(), ["+r"], "one subscription per room");
        assert_eq!(rooms.names()[0].0, "r");
        assert!(!*a.subscribed.borrow(), "not subscribed before the bus says so");
        rooms.mark_subscribed(&["r".to_string()]);
        a.publish(Message::text("before")).await.unwrap();
        let replay = a.enter(&Start::Live).await.unwrap();
        assert_eq!(replay.top, 1);
        a.publish(Message::text("hi")).await.unwrap();
        let p = next_posted(&mut a).await;
        assert!(!a.is_new(&p), "published before the join's replay: skipped");
        let p = next_posted(&mut a).await;
        assert!(a.is_new(&p));
        assert_eq!(p.message, Message::text("hi"));
        drop((a, b));
        let requests = bus.requests.lock().unwrap().clone();
        assert_eq!(requests, ["+r", "join r ada", "leave r ada", "leave r bob", "-r"]);
        assert_eq!(rooms.count(), 0);
    }
}
