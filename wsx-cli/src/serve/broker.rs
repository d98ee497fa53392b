//! The Redis broker behind `wsx serve --redis`: the [`Bus`] that makes chat rooms span several
//! nodes, with their offsets, history and presence (docs/rooms.md).
//!
//! - Per room, three keys with the room's name as hash tag (one cluster slot per room):
//!   `PREFIX{ROOM}:meta` (a hash: the epoch and the last offset), `PREFIX{ROOM}:batches` (a
//!   sorted set: the room's last messages, at least `--history`, as the batches they were
//!   published in, scored by their first offset), `PREFIX{ROOM}:who` (a sorted set: the members
//!   present, scored by when their entry expires); and the channel `PREFIX{ROOM}`.
//! - Publishing is one Lua script per batch of consecutive messages to a room ([`PUBLISH`]):
//!   take the next offsets, log the batch, PUBLISH it, in one atomic step, so the log's order and
//!   the live order are the same. A per-node publisher task sends whatever is queued as one
//!   pipeline per round trip (per-sender order kept: one queue, one pipeline at a time); the
//!   queue is bounded, so a sender waits when Redis does not keep up.
//! - Joining is one script ([`JOIN`]): enter the presence list and announce it, read the epoch,
//!   the last offset, the members and what to replay, atomically. The node subscribes to the
//!   room before it runs it, so nothing falls between the replay and the live messages.
//! - Presence: every node refreshes its members' entries every [`PRESENCE_REFRESH`]; an entry
//!   not refreshed for [`PRESENCE_TTL`] (its node died) is removed, with a leave event, by the
//!   next refresh of any node ([`REFRESH`]).
//! - Every node hands a room's events to its members in the order its subscription brings them,
//!   by one task ([`read_pushes`]).
//! - Outage policy: while Redis is unreachable the node keeps serving (echo, pages, open chat
//!   connections), reports `degraded` in `/healthz` and `wsx_broker_up 0` in `/metrics`,
//!   refuses new room members (503) and room messages (each is dropped and its sender told so).
//!   A supervisor reconnects with backoff (100 ms doubling to 5 s) and resubscribes to the rooms
//!   that still have members (and re-enters their presence) before it reports the broker up
//!   again. Members resume with their offsets (docs/rooms.md).

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use redis::{PushKind, Script, Value};
use tokio::sync::{mpsc, oneshot, Notify};
use tracing::{debug, info, warn};
use wsx::Message;

use super::bus::{new_epoch, Bus, Event, Flushing, Joining, Local, Member, Posted, Publishing};
use super::bus::{Replay, Start, Undelivered};
use super::link::{redacted, Link, Target};
use super::rooms::History;

/// How often a healthy connection is checked with PING.
const HEALTH_INTERVAL: Duration = Duration::from_secs(1);
/// Answers slower than this count as an outage.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Reconnect backoff: from the first to the last delay, doubling.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));
/// How often a node refreshes its members' presence entries.
const PRESENCE_REFRESH: Duration = Duration::from_secs(5);
/// How long a presence entry lives without a refresh. The next refresh of any node removes it:
/// a dead node's members leave within PRESENCE_TTL + PRESENCE_REFRESH (docs/rooms.md promises
/// 15 s).
const PRESENCE_TTL: Duration = Duration::from_secs(10);
/// Jobs queued for the publisher before senders wait.
const QUEUE: usize = 4096;
/// Jobs sent in one pipeline at most.
const BATCH: usize = 512;
/// Message bytes published by one script call at most (more: another call in the pipeline).
const GROUP_BYTES: usize = 1 << 20;
/// Messages that came from Redis at once reach the members in batches (one wake-up and one
/// write per member for a batch) of at most this many messages and this many bytes (or one
/// larger message alone). A room's queue holds `--room-backlog` events: a member stalled in a
/// write (for at most `--slow-timeout`) keeps up to this many times more messages alive than
/// with one message per event, but no more bytes than one larger message per event.
const DELIVERY_MESSAGES: usize = 16;
const DELIVERY_BYTES: usize = 16 << 10;

/// Takes the next offsets, appends the messages to the room's log and publishes them (one
/// PUBLISH for all), atomically. KEYS: meta, log. ARGV: channel, a new epoch (used if the room
/// has none), --history, --history-ttl in ms (0: none), the number of messages, the messages
/// (per message its length, `:` and the message as [`encode`]d). Returns the first offset.
/// What it publishes (last: a batch is delivered only once logged), a batch: `M` EPOCH `:`
/// FIRST `:` MS `:` and the messages ([`events`] reads it). The log is a sorted set of these
/// batches, scored by their first offset; a batch goes once the newer ones hold --history
/// messages.
const PUBLISH: &str = r#"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[2]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local n = tonumber(ARGV[5])
local first = redis.call('HINCRBY', KEYS[1], 'top', n) - n + 1
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local batch = string.format('M%s:%d:%d:', epoch, first, now) .. ARGV[6]
local keep = tonumber(ARGV[3])
if keep > 0 then
  redis.call('ZADD', KEYS[2], first, batch)
  local holder = redis.call('ZREVRANGEBYSCORE', KEYS[2], first + n - keep, '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if holder[2] then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. holder[2]) end
end
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  if keep > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
end
redis.call('PUBLISH', ARGV[1], batch)
return first
"#;

/// Enters a member in the presence list (announcing it) and reads where it starts.
/// KEYS: meta, log, who. ARGV: channel, a new epoch, the member (JSON), presence TTL in ms,
/// `live` | `last` | `after`, the count or offset, the member's epoch, --history-ttl in ms.
/// Returns {epoch, top, members, batches}: the logged batches from the one that holds the first
/// offset asked for (all of them when the member's epoch is not the room's).
const JOIN: &str = r#"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[2]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'top', 0)
  local ttl = tonumber(ARGV[8])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
end
local top = redis.call('HGET', KEYS[1], 'top') or '0'
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[3])
redis.call('PEXPIRE', KEYS[3], 2 * tonumber(ARGV[4]))
redis.call('PUBLISH', ARGV[1], 'J' .. ARGV[3])
local present = redis.call('ZRANGEBYSCORE', KEYS[3], now, '+inf')
local from = nil
if ARGV[5] == 'last' then
  from = tonumber(top) - tonumber(ARGV[6]) + 1
elseif ARGV[5] == 'after' then
  from = 1
  if ARGV[7] == epoch and tonumber(ARGV[6]) <= tonumber(top) then from = tonumber(ARGV[6]) + 1 end
end
local batches = {}
if from and from <= tonumber(top) then
  local holder = redis.call('ZREVRANGEBYSCORE', KEYS[2], from, '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
  batches = redis.call('ZRANGEBYSCORE', KEYS[2], holder[2] or '-inf', '+inf')
end
return {epoch, top, present, batches}
"#;

/// Takes a member out of the presence list, announcing it (once).
/// KEYS: who. ARGV: channel, the member (JSON).
const LEAVE: &str = r#"
if redis.call('ZREM', KEYS[1], ARGV[2]) == 1 then
  redis.call('PUBLISH', ARGV[1], 'L' .. ARGV[2])
end
return 0
"#;

/// Refreshes a node's members in a room's presence list, and removes (announcing each) the
/// entries nobody refreshed in time. KEYS: who. ARGV: channel, presence TTL in ms, `XX` (only
/// those still there) or `ALL` (after a reconnect: Redis may have lost them), the members.
const REFRESH: &str = r#"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ttl = tonumber(ARGV[2])
for i = 4, #ARGV do
  if ARGV[3] == 'XX' then
    redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[i])
  else
    redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
  end
end
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', now))
for _, m in ipairs(gone) do
  redis.call('ZREM', KEYS[1], m)
  redis.call('PUBLISH', ARGV[1], 'L' .. m)
end
if #ARGV >= 4 then redis.call('PEXPIRE', KEYS[1], 2 * ttl) end
return #gone
"#;

/// What the supervisor is asked to do with a room's subscription.
#[derive(Debug)]
enum Command {
    Subscribe(String),
    Unsubscribe(String),
}

/// What the publisher sends to Redis, in the order queued.
#[derive(Debug)]
enum Job {
    Publish {
        room: String,
        member: Arc<str>,
        payload: Vec<u8>,
    },
    Leave {
        room: String,
        member: String,
    },
    /// `all`: re-enter every member (after a reconnect), not only those still listed.
    Refresh {
        room: String,
        members: Vec<String>,
        all: bool,
    },
    /// Answered once every job queued before it has been sent and answered.
    Flush(oneshot::Sender<()>),
}

/// The scripts (by their SHA-1), and the source of those the publisher runs.
#[derive(Debug)]
struct Scripts {
    publish: Script,
    join: Script,
    leave: Script,
    refresh: Script,
    /// The sources of the scripts the publisher's pipelines run, loaded at the head of each.
    pipelined: [String; 3],
}

impl Scripts {
    /// Our scripts; `sharded`: they SPUBLISH (a Redis Cluster) instead of PUBLISH.
    fn new(sharded: bool) -> Self {
        let code = |code: &str| {
            if sharded {
                code.replace("redis.call('PUBLISH'", "redis.call('SPUBLISH'")
            } else {
                code.to_string()
            }
        };
        let pipelined = [code(PUBLISH), code(LEAVE), code(REFRESH)];
        Self {
            publish: Script::new(&pipelined[0]),
            join: Script::new(&code(JOIN)),
            leave: Script::new(&pipelined[1]),
            refresh: Script::new(&pipelined[2]),
            pipelined,
        }
    }
}

/// A node's link to Redis. Cheap to share; the work happens in tasks ([`Bus::start`]).
#[derive(Debug)]
pub(crate) struct Broker {
    inner: Arc<Inner>,
    commands: mpsc::UnboundedSender<Command>,
    jobs: mpsc::Sender<Job>,
    /// Taken by [`Bus::start`].
    start: Mutex<Option<Start_>>,
}

/// What [`Bus::start`] hands to the tasks it starts.
#[derive(Debug)]
struct Start_ {
    target: Target,
    commands: mpsc::UnboundedReceiver<Command>,
    jobs: mpsc::Receiver<Job>,
}

#[derive(Debug)]
struct Inner {
    /// Key and channel names start with this prefix.
    prefix: String,
    /// A Redis Cluster: sharded channels, and one pipeline per room.
    sharded: bool,
    history: History,
    scripts: Scripts,
    /// Set once the first connection is made.
    manager: Mutex<Option<Link>>,
    up: AtomicBool,
    /// Wakes the supervisor when the push reader sees the connection drop.
    lost: Notify,
    outages: AtomicU64,
    undelivered: AtomicU64,
    /// The publisher's queue, for the presence refresher.
    jobs: mpsc::Sender<Job>,
    /// New epochs are this random prefix and a counter.
    epoch_prefix: String,
    epochs: AtomicU64,
}

/// A room's keys and channel.
struct Keys {
    meta: String,
    log: String,
    who: String,
    channel: String,
}

impl Inner {
    fn keys(&self, room: &str) -> Keys {
        let channel = format!("{}{{{room}}}", self.prefix);
        Keys {
            meta: format!("{channel}:meta"),
            // (`:batches`: development builds kept a `:log` stream, which this one leaves
            // alone rather than meet as the wrong type; see CHANGELOG.)
            log: format!("{channel}:batches"),
            who: format!("{channel}:who"),
            channel,
        }
    }

    fn manager(&self) -> Option<Link> {
        let manager = self.manager.lock().unwrap_or_else(|e| e.into_inner()).clone();
        manager.filter(|_| self.up.load(Relaxed))
    }

    fn ttl_ms(&self) -> u64 {
        self.history.ttl.as_millis() as u64
    }

    /// A new epoch for a room that has none: this node's random prefix and a counter (unique
    /// without a system call per message).
    fn epoch_candidate(&self) -> String {
        format!("{}{:x}", self.epoch_prefix, self.epochs.fetch_add(1, Relaxed))
    }

    /// The commands that run `batch`, each with the number of jobs it covers: consecutive
    /// messages to one room go in one call of the publish script (up to [`GROUP_BYTES`]).
    fn commands(&self, batch: &[&Job]) -> Vec<(redis::Cmd, usize)> {
        let mut commands: Vec<(redis::Cmd, usize)> = Vec::new();
        // The room, messages and count of the publish being gathered.
        let mut open: Option<(&str, Vec<u8>, usize)> = None;
        let close = |commands: &mut Vec<_>, open: &mut Option<(&str, Vec<u8>, usize)>| {
            if let Some((room, messages, count)) = open.take() {
                let mut command = self.publish(room);
                command.arg(count).arg(messages);
                commands.push((command, count));
            }
        };
        for &job in batch {
            let Job::Publish { room, payload, .. } = job else {
                close(&mut commands, &mut open);
                commands.extend(self.command(job).map(|command| (command, 1)));
                continue;
            };
            match &mut open {
                Some((last, messages, count))
                    if last == room && messages.len() + payload.len() <= GROUP_BYTES =>
                {
                    put_message(messages, payload);
                    *count += 1;
                }
                _ => {
                    close(&mut commands, &mut open);
                    let mut messages = Vec::with_capacity(payload.len() + 8);
                    put_message(&mut messages, payload);
                    open = Some((room, messages, 1));
                }
            }
        }
        close(&mut commands, &mut open);
        commands
    }

    /// The publish script's call for `room`, its count and messages to be added.
    fn publish(&self, room: &str) -> redis::Cmd {
        let keys = self.keys(room);
        let mut cmd = evalsha(&self.scripts.publish, &[&keys.meta, &keys.log]);
        cmd.arg(&keys.channel).arg(self.epoch_candidate());
        cmd.arg(self.history.messages).arg(self.ttl_ms());
        cmd
    }

    /// The command that runs `job` (none for a flush or a publish: see [`Inner::commands`]).
    fn command(&self, job: &Job) -> Option<redis::Cmd> {
        let presence_ttl = PRESENCE_TTL.as_millis() as u64;
        Some(match job {
            Job::Flush(_) | Job::Publish { .. } => return None,
            Job::Leave { room, member } => {
                let keys = self.keys(room);
                let mut cmd = evalsha(&self.scripts.leave, &[&keys.who]);
                cmd.arg(&keys.channel).arg(member);
                cmd
            }
            Job::Refresh { room, members, all } => {
                let keys = self.keys(room);
                let mut cmd = evalsha(&self.scripts.refresh, &[&keys.who]);
                cmd.arg(&keys.channel).arg(presence_ttl).arg(if *all { "ALL" } else { "XX" });
                cmd.arg(members);
                cmd
            }
        })
    }
}

/// `EVALSHA` of `script` on `keys` (its arguments to be added).
fn evalsha(script: &Script, keys: &[&str]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys.len()).arg(keys);
    cmd
}

impl Broker {
    /// A broker for the Redis at `urls` (`redis://HOST:PORT[/DB]`, or a cluster's seed nodes,
    /// comma-separated) for the node named `node`, keeping `history`; nothing connects before
    /// [`Bus::start`]. Keys and channels start with `prefix`.
    pub(crate) fn new(
        urls: &str,
        prefix: &str,
        node: &str,
        history: History,
    ) -> anyhow::Result<Self> {
        let target = Target::parse(urls)?;
        let (commands, command_receiver) = mpsc::unbounded_channel();
        let (jobs, job_receiver) = mpsc::channel(QUEUE);
        debug!(
            node,
            "Redis broker for {}",
            urls.split(',').map(redacted).collect::<Vec<_>>().join(",")
        );
        let scripts = Scripts::new(target.sharded());
        Ok(Self {
            inner: Arc::new(Inner {
                prefix: prefix.to_string(),
                sharded: target.sharded(),
                history,
                scripts,
                manager: Mutex::new(None),
                up: AtomicBool::new(false),
                lost: Notify::new(),
                outages: AtomicU64::new(0),
                undelivered: AtomicU64::new(0),
                jobs: jobs.clone(),
                epoch_prefix: new_epoch()[..10].to_string(),
                epochs: AtomicU64::new(0),
            }),
            commands,
            jobs,
            start: Mutex::new(Some(Start_ {
                target,
                commands: command_receiver,
                jobs: job_receiver,
            })),
        })
    }

    /// Queues `message` for the publisher.
    async fn queue(
        &self,
        room: &str,
        member: &Arc<str>,
        message: Message,
    ) -> Result<(), Undelivered> {
        if !self.is_up() {
            self.inner.undelivered.fetch_add(1, Relaxed);
            return Err(Undelivered::BrokerDown);
        }
        let job = Job::Publish {
            room: room.to_string(),
            member: member.clone(),
            payload: encode(&message),
        };
        self.jobs.send(job).await.map_err(|_| Undelivered::BrokerDown)
    }

    /// Runs the join script for `member` of `room` starting at `start`.
    async fn join_now(
        &self,
        room: &str,
        member: &Member,
        start: &Start,
    ) -> Result<Replay, Undelivered> {
        let Some(mut manager) = self.inner.manager() else { return Err(Undelivered::BrokerDown) };
        let keys = self.inner.keys(room);
        let (mode, n, epoch) = match start {
            Start::Live => ("live", 0, ""),
            Start::Last(n) => ("last", *n, ""),
            Start::After { epoch, offset } => ("after", *offset, epoch.as_str()),
        };
        let mut invocation = self.inner.scripts.join.prepare_invoke();
        invocation.key(&keys.meta).key(&keys.log).key(&keys.who);
        invocation.arg(&keys.channel).arg(self.inner.epoch_candidate()).arg(member.to_json());
        invocation.arg(PRESENCE_TTL.as_millis() as u64).arg(mode).arg(n).arg(epoch);
        invocation.arg(self.inner.ttl_ms());
        let joined =
            tokio::time::timeout(RESPONSE_TIMEOUT, invocation.invoke_async::<Value>(&mut manager));
        match joined.await {
            Ok(Ok(value)) => {
                parse_join(value, start, self.inner.history.messages).ok_or_else(|| {
                    warn!(room, "the join script answered something unexpected");
                    Undelivered::BrokerDown
                })
            }
            Ok(Err(e)) => {
                warn!(room, "join failed: {e}");
                Err(Undelivered::BrokerDown)
            }
            Err(_) => {
                self.inner.went_down("a join timed out");
                Err(Undelivered::BrokerDown)
            }
        }
    }
}

/// The join script's answer for a member starting at `start`: {epoch, top, members, batches},
/// the batches' messages from the first one `start` asks for, of the last `keep` (--history:
/// the log's oldest batch may hold older ones).
fn parse_join(value: Value, start: &Start, keep: usize) -> Option<Replay> {
    let Value::Array(parts) = value else { return None };
    let [epoch, top, present, batches]: [Value; 4] = parts.try_into().ok()?;
    let epoch: Arc<str> = text(&epoch)?.into();
    let top: u64 = text(&top)?.parse().ok()?;
    let Value::Array(present) = present else { return None };
    let presence = present.iter().filter_map(|m| Member::from_json(bytes(m)?)).collect();
    let Value::Array(batches) = batches else { return None };
    let from = match start {
        Start::Live => top + 1,
        Start::Last(n) => top.saturating_sub(*n) + 1,
        Start::After { epoch: theirs, offset } if **theirs == *epoch && *offset <= top => {
            offset + 1
        }
        Start::After { .. } => 1,
    }
    .max((top + 1).saturating_sub(keep as u64));
    // Only what runs without a gap to the top is replayed (a gap: what the log does not hold
    // as it should, a batch of another epoch or one that does not parse, which only another
    // program's writes could leave): the member is then told where its replay starts, never
    // given a sequence with a hole.
    let mut posted: Vec<Arc<Posted>> = Vec::new();
    for batch in batches {
        let batch = match batch {
            Value::BulkString(batch) if batch.first() == Some(&b'M') => {
                messages(Bytes::from(batch).slice(1..))
            }
            _ => None,
        };
        for p in batch.unwrap_or_default() {
            if p.offset >= from && p.offset <= top && p.epoch == epoch {
                if posted.last().is_some_and(|last| last.offset + 1 != p.offset) {
                    posted.clear();
                }
                posted.push(p);
            }
        }
    }
    if posted.last().is_some_and(|last| last.offset != top) {
        posted.clear();
    }
    Some(Replay { epoch, top, posted, presence })
}

/// A bulk or simple string's bytes.
fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// A string value as UTF-8 (numbers too).
fn text(value: &Value) -> Option<&str> {
    std::str::from_utf8(bytes(value)?).ok()
}

impl Bus for Broker {
    fn name(&self) -> &'static str {
        "redis"
    }

    /// Starts the supervisor (connects, subscribes, checks health, reconnects), the reader of
    /// the subscription's messages, which delivers them to `rooms`, the publisher and the
    /// presence refresher.
    fn start(&self, rooms: Weak<dyn Local>) {
        let Some(start) = self.start.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let (pushes, receiver) = mpsc::unbounded_channel();
        tokio::spawn(read_pushes(self.inner.clone(), rooms.clone(), receiver));
        tokio::spawn(publish_jobs(self.inner.clone(), rooms.clone(), start.jobs));
        tokio::spawn(refresh_presence(self.inner.clone(), rooms.clone()));
        let supervisor =
            Supervisor::new(self.inner.clone(), rooms, start.target, start.commands, pushes);
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

    fn publish<'a>(
        &'a self,
        room: &'a str,
        member: &'a Arc<str>,
        message: Message,
    ) -> Publishing<'a> {
        Box::pin(self.queue(room, member, message))
    }

    fn join<'a>(&'a self, room: &'a str, member: &'a Member, start: &'a Start) -> Joining<'a> {
        Box::pin(self.join_now(room, member, start))
    }

    fn flush(&self) -> Flushing<'_> {
        Box::pin(async {
            let (done, flushed) = oneshot::channel();
            if self.jobs.send(Job::Flush(done)).await.is_ok() {
                let _ = flushed.await;
            }
        })
    }

    fn leave(&self, room: &str, member: &Member) {
        let job = Job::Leave { room: room.to_string(), member: member.to_json() };
        // Never waits (a member leaves from a destructor): with the queue full, the entry
        // expires by itself within PRESENCE_TTL.
        if self.jobs.try_send(job).is_err() {
            debug!(room, "leave not queued: its presence entry expires by itself");
        }
    }
}

/// Sends the queued jobs, as many as are queued (up to [`BATCH`]) in one pipeline at a time.
async fn publish_jobs(inner: Arc<Inner>, rooms: Weak<dyn Local>, mut jobs: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(BATCH);
    while jobs.recv_many(&mut batch, BATCH).await > 0 {
        let mut results = run_batch(&inner, &batch).await.into_iter();
        for job in batch.drain(..) {
            match job {
                Job::Flush(done) => {
                    let _ = done.send(());
                }
                Job::Publish { room, member, .. } => {
                    let Some(Err(why)) = results.next() else { continue };
                    inner.undelivered.fetch_add(1, Relaxed);
                    debug!(room, "a message was not published: {why}");
                    if let Some(rooms) = rooms.upgrade() {
                        rooms.deliver(&room, Event::Refused(member));
                    }
                }
                Job::Leave { .. } | Job::Refresh { .. } => {
                    results.next();
                }
            }
        }
    }
}

/// Runs `batch`: as one pipeline on one Redis; on a cluster as one pipeline per room (a room's
/// keys live on one shard), all at once. The result of each job that is not a flush, in order.
async fn run_batch(inner: &Inner, batch: &[Job]) -> Vec<Result<(), String>> {
    if !inner.sharded {
        return run_pipeline(inner, batch.iter()).await;
    }
    let mut rooms: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, job) in batch.iter().enumerate() {
        let room = match job {
            Job::Publish { room, .. } | Job::Leave { room, .. } | Job::Refresh { room, .. } => room,
            Job::Flush(_) => continue,
        };
        match rooms.iter_mut().find(|(r, _)| *r == room) {
            Some((_, jobs)) => jobs.push(i),
            None => rooms.push((room, vec![i])),
        }
    }
    let pipelines =
        rooms.iter().map(|(_, jobs)| run_pipeline(inner, jobs.iter().map(|&i| &batch[i])));
    let mut results: Vec<Option<Result<(), String>>> = batch.iter().map(|_| None).collect();
    for ((_, jobs), outcome) in rooms.iter().zip(futures_util::future::join_all(pipelines).await) {
        for (&i, result) in jobs.iter().zip(outcome) {
            results[i] = Some(result);
        }
    }
    results.into_iter().flatten().collect()
}

/// Runs `jobs` as one pipeline (the scripts loaded first, in the same pipeline: a Redis that
/// restarted meanwhile has them again); the result of each job that is not a flush, in order.
async fn run_pipeline<'a>(
    inner: &Inner,
    jobs: impl Iterator<Item = &'a Job>,
) -> Vec<Result<(), String>> {
    let batch: Vec<&Job> = jobs.collect();
    let commands = inner.commands(&batch);
    let jobs: usize = commands.iter().map(|(_, count)| count).sum();
    if jobs == 0 {
        return Vec::new();
    }
    let failed = |why: &str| (0..jobs).map(|_| Err(why.to_string())).collect();
    let Some(mut manager) = inner.manager() else { return failed("Redis is down") };
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for code in &inner.scripts.pipelined {
        pipe.cmd("SCRIPT").arg("LOAD").arg(code).ignore();
    }
    let counts: Vec<usize> = commands.iter().map(|(_, count)| *count).collect();
    for (command, _) in commands {
        pipe.add_command(command);
    }
    let sent = pipe.query_async::<Vec<redis::RedisResult<Value>>>(&mut manager);
    match tokio::time::timeout(RESPONSE_TIMEOUT, sent).await {
        Ok(Ok(results)) => results
            .into_iter()
            .zip(counts)
            .flat_map(|(r, count)| {
                let r = r.map(drop).map_err(|e| e.to_string());
                std::iter::repeat_n(r, count)
            })
            .collect(),
        Ok(Err(e)) => {
            inner.went_down(&format!("a pipeline failed: {e}"));
            failed(&e.to_string())
        }
        Err(_) => {
            inner.went_down("a pipeline got no answer");
            failed("no answer")
        }
    }
}

/// Keeps this node's members in their rooms' presence lists, and removes the members of nodes
/// that stopped doing so.
async fn refresh_presence(inner: Arc<Inner>, rooms: Weak<dyn Local>) {
    let mut tick = tokio::time::interval(PRESENCE_REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(local) = rooms.upgrade() else { return };
        let names = local.names();
        drop(local);
        if inner.up.load(Relaxed) {
            refresh(&inner, names, false).await;
        }
    }
}

/// Queues a presence refresh of `names` (`all`: re-enter every member).
async fn refresh(inner: &Inner, names: Vec<(String, Vec<Member>)>, all: bool) {
    for (room, members) in names {
        let members = members.iter().map(Member::to_json).collect();
        if inner.jobs.send(Job::Refresh { room, members, all }).await.is_err() {
            return;
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

/// `message` (as [`encode`]d) in a batch of the publish script: its length, `:` and itself.
fn put_message(batch: &mut Vec<u8>, message: &[u8]) {
    let _ = write!(batch, "{}:", message.len()); // (a Vec takes every write)
    batch.extend_from_slice(message);
}

/// What a room's channel carries: messages from [`PUBLISH`] (`M` EPOCH `:` FIRST `:` MS `:`,
/// then per message LENGTH `:` and the message as [`encode`]d), `J` member (JSON) or `L` member.
/// The messages are slices of `payload`, not copies, handed to the members in batches (see
/// [`batches`]).
fn events(payload: Bytes) -> Option<Vec<Event>> {
    let (&kind, rest) = payload.split_first()?;
    match kind {
        b'M' => Some(batches(messages(payload.slice(1..))?)),
        b'J' => Some(vec![Event::Joined(Arc::new(Member::from_json(rest)?))]),
        b'L' => Some(vec![Event::Left(Arc::new(Member::from_json(rest)?))]),
        _ => None,
    }
}

/// The messages of one [`PUBLISH`] (after its `M`).
fn messages(mut rest: Bytes) -> Option<Vec<Arc<Posted>>> {
    let epoch: Arc<str> = std::str::from_utf8(&field(&mut rest)?).ok()?.into();
    let first = number(&mut rest)?;
    let at = number(&mut rest)?;
    let mut posted = Vec::new();
    while !rest.is_empty() {
        let len = usize::try_from(number(&mut rest)?).ok()?;
        if rest.len() < len {
            return None;
        }
        let message = decode(rest.split_to(len))?;
        let offset = first + posted.len() as u64;
        posted.push(Arc::new(Posted::new(epoch.clone(), offset, message, at)));
    }
    Some(posted)
}

/// `posted` as the members' [`Event::Batch`]es: each of at most [`DELIVERY_MESSAGES`] and
/// [`DELIVERY_BYTES`], or of one larger message.
fn batches(posted: Vec<Arc<Posted>>) -> Vec<Event> {
    let mut events = Vec::new();
    let mut rest = &posted[..];
    while !rest.is_empty() {
        let mut bytes = 0;
        let len = rest
            .iter()
            .take(DELIVERY_MESSAGES)
            .take_while(|p| {
                bytes += p.message.len();
                bytes <= DELIVERY_BYTES
            })
            .count()
            .max(1);
        events.push(Event::Batch(rest[..len].into()));
        rest = &rest[len..];
    }
    events
}

/// The bytes up to the next `:`, taken off the front of `rest` with it.
fn field(rest: &mut Bytes) -> Option<Bytes> {
    let colon = rest.iter().position(|&b| b == b':')?;
    let mut value = rest.split_to(colon + 1);
    value.truncate(colon);
    Some(value)
}

fn number(rest: &mut Bytes) -> Option<u64> {
    std::str::from_utf8(&field(rest)?).ok()?.parse().ok()
}

fn decode(bytes: Bytes) -> Option<Message> {
    let (&kind, _) = bytes.split_first()?;
    let payload = bytes.slice(1..);
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
    target: Target,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Where the connection sends what the subscriptions bring (to [`read_pushes`]).
    pushes: mpsc::UnboundedSender<redis::PushInfo>,
    /// Made at the first successful connect; it reconnects by itself after that.
    manager: Option<Link>,
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
        target: Target,
        commands: mpsc::UnboundedReceiver<Command>,
        pushes: mpsc::UnboundedSender<redis::PushInfo>,
    ) -> Self {
        let mut health = tokio::time::interval(HEALTH_INTERVAL);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (manager, delay, logged_failure) = (None, BACKOFF.0, false);
        Self { inner, rooms, target, commands, pushes, manager, delay, logged_failure, health }
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
                let rooms_only: Vec<String> = names.iter().map(|(n, _)| n.clone()).collect();
                rooms.mark_subscribed(&rooms_only);
                self.inner.up.store(true, Relaxed);
                info!(rooms = names.len(), "Redis reachable: rooms shared through it");
                // Redis may have lost the presence lists (restarted empty): enter them again.
                refresh(&self.inner, names, true).await;
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
    /// here; the rooms subscribed to, with their members.
    async fn resubscribe(
        &mut self,
        rooms: &dyn Local,
    ) -> Result<Vec<(String, Vec<Member>)>, redis::RedisError> {
        let inner = self.inner.clone();
        let manager = self.connect().await?;
        redis::cmd("PING").query_async::<Value>(&mut *manager).await?;
        let names = rooms.names();
        if !names.is_empty() {
            let channels: Vec<String> = names.iter().map(|(n, _)| inner.keys(n).channel).collect();
            manager.subscribe(channels).await?;
        }
        Ok(names)
    }

    /// The connection, made the first time.
    async fn connect(&mut self) -> Result<&mut Link, redis::RedisError> {
        if self.manager.is_none() {
            let made = self.target.connect(self.pushes.clone(), RESPONSE_TIMEOUT).await?;
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
    manager: &mut Link,
    command: Command,
) -> Result<(), String> {
    let channel = |room: &str| inner.keys(room).channel;
    let done = match &command {
        Command::Subscribe(room) => manager.subscribe(vec![channel(room)]).await,
        Command::Unsubscribe(room) => manager.unsubscribe(channel(room)).await,
    };
    debug!(?command, ?done, "subscription change");
    if let (Ok(()), Command::Subscribe(room), Some(rooms)) = (&done, &command, rooms.upgrade()) {
        rooms.mark_subscribed(std::slice::from_ref(room));
    }
    done.map_err(|e| e.to_string())
}

/// The health check: PING, answered in time.
async fn ping(manager: &mut Link) -> Result<(), String> {
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
            PushKind::Message | PushKind::SMessage => {
                let Some(rooms) = rooms.upgrade() else { return };
                let mut data = push.data.into_iter();
                let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) =
                    (data.next(), data.next())
                else {
                    continue;
                };
                let room = channel
                    .strip_prefix(inner.prefix.as_bytes())
                    .and_then(|r| r.strip_prefix(b"{")?.strip_suffix(b"}"))
                    .and_then(|r| std::str::from_utf8(r).ok());
                match (room, events(Bytes::from(payload))) {
                    (Some(room), Some(events)) => {
                        for event in events {
                            rooms.deliver(room, event);
                        }
                    }
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
            assert_eq!(decode(encode(&message).into()), Some(message));
        }
        assert_eq!(decode(Bytes::new()), None);
        assert_eq!(decode(Bytes::from_static(b"x123")), None);
        assert_eq!(decode(Bytes::from_static(b"t\xff")), None, "text must be UTF-8");
    }

    #[test]
    fn channel_events_parse() {
        let mut m = b"Mab12:7:1700000000000:4:ta:b4:b\x00:\xff".to_vec();
        let offsets = |events: Vec<Event>| -> Vec<(u64, Message)> {
            let [Event::Batch(batch)] = &events[..] else { panic!("{events:?}") };
            batch
                .iter()
                .map(|p| {
                    assert_eq!((&*p.epoch, p.at_ms), ("ab12", 1_700_000_000_000));
                    (p.offset, p.message.clone())
                })
                .collect()
        };
        let parsed = offsets(events(m.clone().into()).unwrap());
        let binary = Message::binary(vec![0u8, b':', 0xff]);
        assert_eq!(parsed, [(7, Message::text("a:b")), (8, binary)]);
        m.truncate(m.len() - 1);
        assert!(events(m.into()).is_none(), "a message cut short");
        let member = Member { id: "n1-2".into(), name: "ada".into() };
        let joined = events(format!("J{}", member.to_json()).into()).unwrap();
        assert!(matches!(&joined[..], [Event::Joined(m)] if **m == member));
        assert!(events(Bytes::from_static(b"Lnot json")).is_none());
        assert!(events(Bytes::from_static(b"Mab:x:1:1:t")).is_none());
    }

    /// What came from Redis at once reaches the members in batches bounded in count and bytes.
    #[test]
    fn deliveries_are_bounded_batches() {
        let text = |n: usize| Message::text("x".repeat(n));
        let posted = |sizes: &[usize]| -> Vec<Arc<Posted>> {
            let at = |(i, &n)| Arc::new(Posted::new("e".into(), i as u64 + 1, text(n), 0));
            sizes.iter().enumerate().map(at).collect()
        };
        let shape = |events: Vec<Event>| -> Vec<Vec<u64>> {
            let offsets = |e: &Event| e.posted().iter().map(|p| p.offset).collect();
            assert!(events.iter().all(|e| matches!(e, Event::Batch(_))));
            events.iter().map(offsets).collect()
        };
        let n = 2 * DELIVERY_MESSAGES + 3;
        let small = shape(batches(posted(&vec![10; n])));
        let lens: Vec<usize> = small.iter().map(Vec::len).collect();
        assert_eq!(lens, [DELIVERY_MESSAGES, DELIVERY_MESSAGES, 3]);
        assert_eq!(small.concat(), (1..=n as u64).collect::<Vec<u64>>(), "in order, each once");
        let half = DELIVERY_BYTES / 2;
        let big = shape(batches(posted(&[half, half, 1, 3 * DELIVERY_BYTES, 1])));
        assert_eq!(big, [vec![1, 2], vec![3], vec![4], vec![5]], "a large message: alone");
        assert!(batches(Vec::new()).is_empty());
    }

    /// The join script's batches: the messages from the first one asked for, to the top.
    #[test]
    fn joins_take_their_messages_from_the_logged_batches() {
        let batch = |first: u64, texts: &[&str]| {
            let mut messages = Vec::new();
            for text in texts {
                put_message(&mut messages, &encode(&Message::text(text.to_string())));
            }
            let mut batch = format!("Me1:{first}:1700000000000:").into_bytes();
            batch.extend_from_slice(&messages);
            Value::BulkString(batch)
        };
        let answer = |top: u64| {
            let member = Member { id: "n1-1".into(), name: "ada".into() };
            let present = Value::Array(vec![Value::BulkString(member.to_json().into_bytes())]);
            let batches = Value::Array(vec![batch(3, &["c", "d:", ""]), batch(6, &["f", "g"])]);
            let top = Value::BulkString(top.to_string().into_bytes());
            Value::Array(vec![Value::BulkString(b"e1".to_vec()), top, present, batches])
        };
        let offsets = |start: Start| -> Vec<(u64, Message)> {
            let replay = parse_join(answer(7), &start, 4).unwrap();
            assert_eq!((&*replay.epoch, replay.top, replay.presence.len()), ("e1", 7, 1));
            replay.posted.iter().map(|p| (p.offset, p.message.clone())).collect()
        };
        let after = |epoch: &str, offset| Start::After { epoch: epoch.into(), offset };
        assert_eq!(offsets(Start::Last(2)), [(6, Message::text("f")), (7, Message::text("g"))]);
        let from_four =
            [(4, "d:"), (5, ""), (6, "f"), (7, "g")].map(|(o, t)| (o, Message::text(t)));
        assert_eq!(offsets(Start::Last(4)), from_four);
        assert_eq!(offsets(after("e1", 3)), from_four);
        assert_eq!(offsets(after("e1", 7)), [], "nothing missed");
        assert_eq!(offsets(after("e0", 9)), from_four[..].to_vec(), "another epoch: the last 4");
        assert_eq!(offsets(after("e1", 1)), from_four, "too old: the last 4 (--history)");
        assert_eq!(offsets(Start::Live), []);
        // A batch missing (offsets 5 and 6 never logged): only what follows the gap.
        let Value::Array(mut parts) = answer(7) else { unreachable!() };
        parts[3] = Value::Array(vec![batch(3, &["c", "d"]), batch(7, &["g"])]);
        let replay = parse_join(Value::Array(parts), &Start::Last(4), 4).unwrap();
        assert_eq!(replay.posted.iter().map(|p| p.offset).collect::<Vec<_>>(), [7]);
        // A batch of another epoch (left by another program): a gap, as a missing one.
        let Value::Array(mut parts) = answer(7) else { unreachable!() };
        let stale = Value::BulkString(b"Me0:6:1700000000000:2:tf2:tg".to_vec());
        parts[3] = Value::Array(vec![batch(3, &["c", "d", "e"]), stale]);
        let replay = parse_join(Value::Array(parts), &Start::Last(4), 4).unwrap();
        assert!(replay.posted.is_empty(), "4 and 5 do not reach the top, 6 and 7 are not e1's");
        let replay = parse_join(answer(9), &Start::Last(4), 4).unwrap();
        assert!(replay.posted.is_empty(), "the log ends before the top: nothing to replay");
        let Value::Array(mut parts) = answer(7) else { unreachable!() };
        parts[3] = Value::Array(vec![Value::BulkString(b"Jnot a batch".to_vec())]);
        let replay = parse_join(Value::Array(parts), &Start::Last(1), 5).unwrap();
        assert!(replay.posted.is_empty(), "what does not parse is a gap");
    }

    /// Consecutive messages to a room are one publish call with their count and messages;
    /// any other job closes the group; every job but a flush is counted once, in order.
    #[test]
    fn publishes_group_by_room_in_queue_order() {
        let broker =
            Broker::new("redis://127.0.0.1:1", "p:", "n1", crate::serve::rooms::tests::HISTORY)
                .unwrap();
        let publish = |room: &str, text: &str| Job::Publish {
            room: room.into(),
            member: "m".into(),
            payload: encode(&Message::text(text.to_string())),
        };
        let (flush, _) = oneshot::channel();
        let leave = Job::Leave { room: "a".into(), member: "{}".into() };
        let jobs = [
            publish("a", "1"),
            publish("a", "22"),
            Job::Flush(flush),
            publish("a", "3"),
            publish("b", "4"),
            leave,
            publish("b", "5"),
        ];
        let commands = broker.inner.commands(&jobs.iter().collect::<Vec<_>>());
        let counts: Vec<usize> = commands.iter().map(|(_, count)| *count).collect();
        assert_eq!(counts, [2, 1, 1, 1, 1], "a 1+22 | a 3 | b 4 | leave | b 5");
        let tail = |i: usize| -> Vec<Vec<u8>> {
            let args: Vec<Vec<u8>> = commands[i]
                .0
                .args_iter()
                .map(|arg| match arg {
                    redis::Arg::Simple(bytes) => bytes.to_vec(),
                    _ => Vec::new(),
                })
                .collect();
            args[args.len() - 2..].to_vec()
        };
        assert_eq!(tail(0), [b"2".to_vec(), b"2:t13:t22".to_vec()]);
        assert_eq!(tail(1), [b"1".to_vec(), b"2:t3".to_vec()]);
        assert_eq!(tail(2), [b"1".to_vec(), b"2:t4".to_vec()]);
        assert_eq!(tail(4), [b"1".to_vec(), b"2:t5".to_vec()]);
    }

    #[test]
    fn bad_urls_say_what_to_use() {
        let error =
            Broker::new("http://example", "wsx:room:", "n1", crate::serve::rooms::tests::HISTORY)
                .unwrap_err()
                .to_string();
        assert!(error.contains("redis://HOST:PORT"), "{error}");
    }
}
