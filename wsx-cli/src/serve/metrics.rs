//! Counters for `/metrics`, in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};

use super::superchat::Resume;

/// Why a handshake was refused, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Origin,
    Capacity,
    BadRequest,
    Version,
    NotFound,
    ShuttingDown,
    ClientLimit,
    /// Over --handshake-rate (429).
    HandshakeRate,
    /// No token, with authentication on (401).
    AuthMissing,
    /// A token that does not verify (401).
    AuthInvalid,
    /// An expired token (401).
    AuthExpired,
    /// A valid token that does not allow the room (403).
    AuthForbidden,
    /// Over --max-forks (503).
    MaxForks,
    /// The program of --exec/--exec-dir could not be started (500).
    ExecFailed,
    /// A chat room whose broker (Redis) is unreachable (503).
    Broker,
    /// The program of --exec-shared is not running (restarting after an exit: 503).
    ProgramDown,
    /// The TCP server of a --tcp-forward path did not accept a connection (502).
    ForwardFailed,
}

impl Refusal {
    const ALL: [Self; 17] = [
        Self::Origin,
        Self::Capacity,
        Self::BadRequest,
        Self::Version,
        Self::NotFound,
        Self::ShuttingDown,
        Self::ClientLimit,
        Self::HandshakeRate,
        Self::AuthMissing,
        Self::AuthInvalid,
        Self::AuthExpired,
        Self::AuthForbidden,
        Self::MaxForks,
        Self::ExecFailed,
        Self::Broker,
        Self::ProgramDown,
        Self::ForwardFailed,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Origin => "origin",
            Self::Capacity => "capacity",
            Self::BadRequest => "bad_request",
            Self::Version => "version",
            Self::NotFound => "not_found",
            Self::ShuttingDown => "shutting_down",
            Self::ClientLimit => "client_limit",
            Self::HandshakeRate => "handshake_rate",
            Self::AuthMissing => "auth_missing",
            Self::AuthInvalid => "auth_invalid",
            Self::AuthExpired => "auth_expired",
            Self::AuthForbidden => "auth_forbidden",
            Self::MaxForks => "max_forks",
            Self::ExecFailed => "exec_failed",
            Self::Broker => "broker",
            Self::ProgramDown => "program_down",
            Self::ForwardFailed => "forward_failed",
        }
    }
}

/// The Redis broker's state, for `/metrics`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BrokerStats {
    pub(crate) up: bool,
    pub(crate) outages: u64,
    pub(crate) undelivered: u64,
}

/// The programs of --exec/--exec-dir, for `/metrics`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExecStats {
    pub(crate) started: u64,
    pub(crate) running: u64,
    /// Exited with status 0.
    pub(crate) succeeded: u64,
    /// Exited with another status.
    pub(crate) failed: u64,
    /// Ended by a signal (SIGKILL or SIGTERM after a client left, or any other).
    pub(crate) signalled: u64,
}

/// Server-wide counters, updated without locks.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// The counters moved for every message and handshake, one shard per thread.
    shards: [Shard; SHARDS],
    refused: [AtomicU64; Refusal::ALL.len()],
    pub(crate) slow_disconnects: AtomicU64,
    /// Room messages dropped over --room-rate or --room-bytes-rate.
    pub(crate) dropped_rate: AtomicU64,
    /// Room messages dropped because the token does not allow writing to the room.
    pub(crate) dropped_no_publish: AtomicU64,
    /// Connections closed (1008) when their token expired.
    pub(crate) token_expired: AtomicU64,
    /// Superchat resumes: complete, history too short, epoch changed.
    pub(crate) resumes: [AtomicU64; 3],
    /// Room messages handed over from the history (joins with history, resumes).
    pub(crate) replayed: AtomicU64,
    /// HTTP/2 connections served (--http2).
    pub(crate) http2_connections: AtomicU64,
    /// WebSockets opened over HTTP/2 (RFC 8441 extended CONNECT streams).
    pub(crate) http2_websockets: AtomicU64,
}

/// Shards of the hot counters: each thread adds to its own cache line (a counter all workers
/// add to would bounce its line between their cores for every message); a read sums them.
const SHARDS: usize = 8;

#[derive(Debug, Default)]
#[repr(align(128))] // a cache line of its own (two, where lines are fetched in pairs)
struct Shard {
    /// Opened minus closed on this thread: negative when more closed here than opened.
    open: AtomicI64,
    accepted: AtomicU64,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

thread_local! {
    /// This thread's shard, given out in turn.
    static SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Relaxed) % SHARDS
    };
}

impl Metrics {
    fn shard(&self) -> &Shard {
        &self.shards[SHARD.with(|i| *i)]
    }

    fn sum(&self, counter: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards.iter().map(|s| counter(s).load(Relaxed)).fold(0, u64::wrapping_add)
    }

    pub(crate) fn refused(&self, why: Refusal) {
        self.refused[why as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn accepted(&self) {
        self.shard().accepted.fetch_add(1, Relaxed);
    }

    pub(crate) fn opened(&self) {
        self.shard().open.fetch_add(1, Relaxed);
    }

    pub(crate) fn closed(&self) {
        self.shard().open.fetch_sub(1, Relaxed);
    }

    /// WebSocket connections open now.
    pub(crate) fn open(&self) -> u64 {
        let open: i64 = self.shards.iter().map(|s| s.open.load(Relaxed)).sum();
        open.max(0) as u64
    }

    pub(crate) fn received(&self, bytes: usize) {
        let shard = self.shard();
        shard.messages_in.fetch_add(1, Relaxed);
        shard.bytes_in.fetch_add(bytes as u64, Relaxed);
    }

    pub(crate) fn sent(&self, bytes: usize) {
        let shard = self.shard();
        shard.messages_out.fetch_add(1, Relaxed);
        shard.bytes_out.fetch_add(bytes as u64, Relaxed);
    }

    /// The exposition text: each metric family with its HELP and TYPE lines.
    pub(crate) fn render(
        &self,
        rooms: usize,
        broker: Option<BrokerStats>,
        exec: Option<ExecStats>,
    ) -> String {
        let mut out = Exposition::default();
        self.render_handshakes(&mut out);
        self.render_traffic(&mut out);
        self.render_rooms(&mut out, rooms);
        self.render_policy(&mut out);
        if let Some(broker) = broker {
            render_broker(&mut out, broker);
        }
        if let Some(exec) = exec {
            render_exec(&mut out, exec);
        }
        out.0
    }

    /// Connections open, handshakes accepted and refused (by reason).
    fn render_handshakes(&self, out: &mut Exposition) {
        out.one("wsx_connections_open", GAUGE, "WebSocket connections open now.", self.open());
        out.one(
            "wsx_handshakes_accepted_total",
            COUNTER,
            "Opening handshakes accepted.",
            self.sum(|s| &s.accepted),
        );
        let refused: Vec<(String, u64)> = Refusal::ALL
            .iter()
            .map(|r| {
                (format!("{{reason=\"{}\"}}", r.label()), self.refused[*r as usize].load(Relaxed))
            })
            .collect();
        out.metric(
            "wsx_handshakes_rejected_total",
            COUNTER,
            "Opening handshakes refused, by reason.",
            &refused,
        );
    }

    /// Messages and payload bytes, each way.
    fn render_traffic(&self, out: &mut Exposition) {
        let messages_in = self.sum(|s| &s.messages_in);
        out.one("wsx_messages_received_total", COUNTER, "Data messages received.", messages_in);
        let messages_out = self.sum(|s| &s.messages_out);
        out.one("wsx_messages_sent_total", COUNTER, "Data messages sent.", messages_out);
        let bytes_in = self.sum(|s| &s.bytes_in);
        out.one("wsx_bytes_received_total", COUNTER, "Payload bytes received.", bytes_in);
        let bytes_out = self.sum(|s| &s.bytes_out);
        out.one("wsx_bytes_sent_total", COUNTER, "Payload bytes sent.", bytes_out);
    }

    /// Chat rooms, and members that fell behind theirs.
    fn render_rooms(&self, out: &mut Exposition, rooms: usize) {
        out.one("wsx_rooms", GAUGE, "Chat rooms with at least one member.", rooms as u64);
        out.one(
            "wsx_slow_disconnects_total",
            COUNTER,
            "Chat members disconnected for falling behind their room.",
            self.slow_disconnects.load(Relaxed),
        );
        let resumes = [Resume::Recovered, Resume::TooOld, Resume::Epoch].map(|r| {
            (format!("{{outcome=\"{}\"}}", r.label()), self.resumes[r as usize].load(Relaxed))
        });
        out.metric(
            "wsx_room_resumes_total",
            COUNTER,
            "Superchat members that resumed, by outcome: every missed message replayed, or some \
             lost (the history did not reach back far enough; the room's history was lost).",
            &resumes,
        );
        out.one(
            "wsx_http2_connections_total",
            COUNTER,
            "HTTP/2 connections served (--http2).",
            self.http2_connections.load(Relaxed),
        );
        out.one(
            "wsx_http2_websockets_total",
            COUNTER,
            "WebSockets opened over HTTP/2 (RFC 8441 extended CONNECT).",
            self.http2_websockets.load(Relaxed),
        );
        out.one(
            "wsx_room_replayed_total",
            COUNTER,
            "Room messages handed over from the history (joins with history and resumes).",
            self.replayed.load(Relaxed),
        );
    }
}

impl Metrics {
    /// Room messages dropped by the limits and the tokens' rights, connections closed by them.
    fn render_policy(&self, out: &mut Exposition) {
        let dropped = [("rate", &self.dropped_rate), ("no_publish", &self.dropped_no_publish)]
            .map(|(reason, n)| (format!("{{reason=\"{reason}\"}}"), n.load(Relaxed)));
        out.metric(
            "wsx_room_messages_dropped_total",
            COUNTER,
            "Room messages dropped (sender notified), by reason: over the room rate limits, or \
             the token does not allow writing to the room.",
            &dropped,
        );
        out.metric(
            "wsx_policy_closes_total",
            COUNTER,
            "Connections closed with 1008 (policy violation), by reason.",
            &[("{reason=\"token_expired\"}".to_string(), self.token_expired.load(Relaxed))],
        );
    }
}

/// The Redis broker (only with --redis).
fn render_broker(out: &mut Exposition, broker: BrokerStats) {
    out.one(
        "wsx_broker_up",
        GAUGE,
        "1 while Redis is reachable and this node's room subscriptions are in place.",
        u64::from(broker.up),
    );
    out.one("wsx_broker_outages_total", COUNTER, "Times Redis became unreachable.", broker.outages);
    out.one(
        "wsx_room_messages_undelivered_total",
        COUNTER,
        "Room messages refused (sender notified) because Redis was unreachable.",
        broker.undelivered,
    );
}

/// The programs of --exec/--exec-dir (only with them).
fn render_exec(out: &mut Exposition, exec: ExecStats) {
    out.one("wsx_exec_started_total", COUNTER, "Programs started (--exec).", exec.started);
    out.one("wsx_exec_running", GAUGE, "Programs running now (--exec).", exec.running);
    let exits = [("success", exec.succeeded), ("failure", exec.failed), ("signal", exec.signalled)]
        .map(|(status, n)| (format!("{{status=\"{status}\"}}"), n));
    out.metric(
        "wsx_exec_exited_total",
        COUNTER,
        "Programs that ended (--exec), by how: exit status 0, another status, a signal.",
        &exits,
    );
}

const GAUGE: &str = "gauge";
const COUNTER: &str = "counter";

/// Prometheus exposition text, written one metric family at a time.
#[derive(Default)]
struct Exposition(String);

impl Exposition {
    /// A family: HELP and TYPE, then one sample per label set (`""`: no labels).
    fn metric(&mut self, name: &str, kind: &str, help: &str, values: &[(String, u64)]) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in values {
            let _ = writeln!(self.0, "{name}{labels} {value}");
        }
    }

    /// A family with one sample and no labels.
    fn one(&mut self, name: &str, kind: &str, help: &str, value: u64) {
        self.metric(name, kind, help, &[(String::new(), value)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_from_many_threads_add_up() {
        let metrics = Arc::new(Metrics::default());
        let threads: Vec<_> = (0..SHARDS + 3)
            .map(|i| {
                let metrics = metrics.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        metrics.received(3);
                        metrics.sent(5);
                    }
                    metrics.accepted();
                    metrics.opened();
                    if i % 2 == 0 {
                        metrics.closed();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Closed on another thread than opened: the sum is still right.
        std::thread::spawn({
            let metrics = metrics.clone();
            move || metrics.closed()
        })
        .join()
        .unwrap();
        let n = (SHARDS + 3) as u64;
        let open = n - n.div_ceil(2) - 1;
        assert_eq!(metrics.open(), open);
        let text = metrics.render(0, None, None);
        for line in [
            format!("wsx_connections_open {open}"),
            format!("wsx_handshakes_accepted_total {n}"),
            format!("wsx_messages_received_total {}", n * 1000),
            format!("wsx_messages_sent_total {}", n * 1000),
            format!("wsx_bytes_received_total {}", n * 3000),
            format!("wsx_bytes_sent_total {}", n * 5000),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
    }
}
