//! Counters for `/metrics`, in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

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
    pub(crate) open: AtomicI64,
    pub(crate) accepted: AtomicU64,
    refused: [AtomicU64; 7],
    pub(crate) messages_in: AtomicU64,
    pub(crate) messages_out: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) slow_disconnects: AtomicU64,
}

impl Metrics {
    pub(crate) fn refused(&self, why: Refusal) {
        self.refused[why as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn received(&self, bytes: usize) {
        self.messages_in.fetch_add(1, Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Relaxed);
    }

    pub(crate) fn sent(&self, bytes: usize) {
        self.messages_out.fetch_add(1, Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Relaxed);
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
            &one(self.open.load(Relaxed).max(0) as u64),
        );
        metric(
            "wsx_handshakes_accepted_total",
            "counter",
            "Opening handshakes accepted.",
            &one(self.accepted.load(Relaxed)),
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
            &one(self.messages_in.load(Relaxed)),
        );
        metric(
            "wsx_messages_sent_total",
            "counter",
            "Data messages sent.",
            &one(self.messages_out.load(Relaxed)),
        );
        metric(
            "wsx_bytes_received_total",
            "counter",
            "Payload bytes received.",
            &one(self.bytes_in.load(Relaxed)),
        );
        metric(
            "wsx_bytes_sent_total",
            "counter",
            "Payload bytes sent.",
            &one(self.bytes_out.load(Relaxed)),
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
