//! Counters for `/metrics`, in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};

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
}

impl Refusal {
    const ALL: [Self; 7] = [
        Self::Origin,
        Self::Capacity,
        Self::BadRequest,
        Self::Version,
        Self::NotFound,
        Self::ShuttingDown,
        Self::ClientLimit,
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

/// Server-wide counters, updated without locks.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// The counters moved for every message and handshake, one shard per thread.
    shards: [Shard; SHARDS],
    refused: [AtomicU64; 7],
    pub(crate) slow_disconnects: AtomicU64,
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

    /// The exposition text.
    pub(crate) fn render(&self, rooms: usize, broker: Option<BrokerStats>) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, values: &[(String, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in values {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let one = |v: u64| vec![(String::new(), v)];
        metric(
            "wsx_connections_open",
            "gauge",
            "WebSocket connections open now.",
            &one(self.open()),
        );
        metric(
            "wsx_handshakes_accepted_total",
            "counter",
            "Opening handshakes accepted.",
            &one(self.sum(|s| &s.accepted)),
        );
        let refused: Vec<(String, u64)> = Refusal::ALL
            .iter()
            .map(|r| {
                (format!("{{reason=\"{}\"}}", r.label()), self.refused[*r as usize].load(Relaxed))
            })
            .collect();
        metric(
            "wsx_handshakes_rejected_total",
            "counter",
            "Opening handshakes refused, by reason.",
            &refused,
        );
        metric(
            "wsx_messages_received_total",
            "counter",
            "Data messages received.",
            &one(self.sum(|s| &s.messages_in)),
        );
        metric(
            "wsx_messages_sent_total",
            "counter",
            "Data messages sent.",
            &one(self.sum(|s| &s.messages_out)),
        );
        metric(
            "wsx_bytes_received_total",
            "counter",
            "Payload bytes received.",
            &one(self.sum(|s| &s.bytes_in)),
        );
        metric(
            "wsx_bytes_sent_total",
            "counter",
            "Payload bytes sent.",
            &one(self.sum(|s| &s.bytes_out)),
        );
        metric("wsx_rooms", "gauge", "Chat rooms with at least one member.", &one(rooms as u64));
        metric(
            "wsx_slow_disconnects_total",
            "counter",
            "Chat members disconnected for falling behind their room.",
            &one(self.slow_disconnects.load(Relaxed)),
        );
        if let Some(broker) = broker {
            metric(
                "wsx_broker_up",
                "gauge",
                "1 while Redis is reachable and this node's room subscriptions are in place.",
                &one(u64::from(broker.up)),
            );
            metric(
                "wsx_broker_outages_total",
                "counter",
                "Times Redis became unreachable.",
                &one(broker.outages),
            );
            metric(
                "wsx_room_messages_undelivered_total",
                "counter",
                "Room messages refused (sender notified) because Redis was unreachable.",
                &one(broker.undelivered),
            );
        }
        out
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
        let text = metrics.render(0, None);
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
