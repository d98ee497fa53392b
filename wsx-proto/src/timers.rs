//! Time-driven policy, with time passed in: keepalive pings, the idle timeout and the close
//! timeout. The core reads no clock: the I/O layer tells it the time with
//! [`Connection::handle_timeout`](crate::Connection::handle_timeout) and asks when to do so
//! next with [`Connection::poll_timeout`](crate::Connection::poll_timeout) (quinn-proto's shape).
//!
//! ```text
//!  nothing received for `keepalive`          ─► Ping queued
//!  … and nothing for `keepalive_timeout` more ─► fail: Close 1011, Timeout::Keepalive
//!  nothing received for `idle`                ─► fail: Close 1001, Timeout::Idle
//!  Close sent (or a client waiting for the server's FIN) for `close` ─► give up, close TCP
//!                                                 (Timeout::Close when no Close came back)
//! ```

use std::time::{Duration, Instant};

/// The timers of a [`Config`](crate::Config), all off by default except the close timeout.
///
/// Kept in whole milliseconds (4 bytes each instead of a `Duration`'s 16, 0 meaning off where a
/// timer can be off): every connection carries them. Up to 49 days; longer saturates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    keepalive: u32,
    keepalive_timeout: u32,
    idle: u32,
    close: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { keepalive: 0, keepalive_timeout: 20_000, idle: 0, close: 5_000 }
    }
}

/// Milliseconds of `d`, at least 1 (a timer that is on never fires at once), saturating.
fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1)
}

fn duration(ms: u32) -> Duration {
    Duration::from_millis(ms.into())
}

impl Timeouts {
    pub(crate) fn set_keepalive(&mut self, interval: Option<Duration>) {
        self.keepalive = interval.map_or(0, millis);
    }

    pub(crate) fn set_keepalive_timeout(&mut self, timeout: Duration) {
        self.keepalive_timeout = millis(timeout);
    }

    pub(crate) fn set_idle(&mut self, timeout: Option<Duration>) {
        self.idle = timeout.map_or(0, millis);
    }

    pub(crate) fn set_close(&mut self, timeout: Duration) {
        self.close = millis(timeout);
    }

    pub(crate) fn keepalive(&self) -> Option<Duration> {
        (self.keepalive > 0).then(|| duration(self.keepalive))
    }

    fn keepalive_timeout(&self) -> Duration {
        duration(self.keepalive_timeout)
    }

    fn idle(&self) -> Option<Duration> {
        (self.idle > 0).then(|| duration(self.idle))
    }

    fn close(&self) -> Duration {
        duration(self.close)
    }
}

/// Which timer ended a connection (returned by
/// [`Connection::handle_timeout`](crate::Connection::handle_timeout)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Timeout {
    /// A keepalive ping went unanswered: closed with 1011.
    Keepalive,
    /// Nothing was received for the idle timeout: closed with 1001.
    Idle,
    /// The peer did not answer our Close frame in time.
    Close,
}

impl Timeout {
    /// What the timeout is, in words (also the reason of the Close frame it sends).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keepalive => "keepalive ping not answered",
            Self::Idle => "idle timeout",
            Self::Close => "no Close frame came back in time",
        }
    }
}

impl std::fmt::Display for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the timers know of time, and what is armed.
#[derive(Debug)]
pub(crate) struct Timers {
    pub(crate) timeouts: Timeouts,
    /// The latest instant the I/O layer told us (`None`: not started).
    now: Option<Instant>,
    /// When something was last received.
    last_received: Option<Instant>,
    /// Bytes arrived since the I/O layer last told us the time: they count as received at the
    /// next [`Timers::advance`].
    unstamped: bool,
    /// A keepalive ping is out.
    ping_sent: bool,
    /// We wait for the peer in the closing handshake until then (`Some(None)`: waiting, the
    /// deadline set at the next `advance`).
    close_deadline: Option<Option<Instant>>,
}

/// What a timer asks of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// Queue a keepalive ping.
    Ping,
    /// Give up on the connection.
    Expired(Timeout),
}

impl Timers {
    pub(crate) fn new(timeouts: Timeouts) -> Self {
        Self {
            timeouts,
            now: None,
            last_received: None,
            unstamped: false,
            ping_sent: false,
            close_deadline: None,
        }
    }

    /// Whether keepalive or the idle timeout watch what is received.
    fn watch_input(&self) -> bool {
        self.timeouts.keepalive > 0 || self.timeouts.idle > 0
    }

    /// Bytes arrived (the time is taken at the next `advance`).
    pub(crate) fn received(&mut self) {
        self.unstamped = true;
        self.ping_sent = false;
    }

    /// The closing handshake waits for the peer from now on (idempotent).
    pub(crate) fn await_peer(&mut self) {
        if self.close_deadline.is_none() {
            self.close_deadline = Some(None);
        }
    }

    /// When the I/O layer must next call `advance`; an instant that has already passed means
    /// "now" (the timers need the time: bytes arrived or a close began since the last call).
    /// `open`: data still flows; `awaiting`: the closing handshake waits for the peer.
    pub(crate) fn next(&self, open: bool, awaiting: bool) -> Option<Instant> {
        let now = self.now?;
        let close = if awaiting { self.close_deadline } else { None };
        if (open && self.unstamped && self.watch_input()) || close == Some(None) {
            return Some(now);
        }
        let mut next = close.flatten();
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        if open {
            let last = self.last_received.unwrap_or(now);
            if let Some(interval) = self.timeouts.keepalive() {
                let wait = if self.ping_sent {
                    interval + self.timeouts.keepalive_timeout()
                } else {
                    interval
                };
                consider(last + wait);
            }
            if let Some(idle) = self.timeouts.idle() {
                consider(last + idle);
            }
        }
        next
    }

    /// The time is `now`: stamp what arrived, arm what waits for it, and say what is due
    /// (`open`: the connection still sends and receives data).
    pub(crate) fn advance(&mut self, now: Instant, open: bool, awaiting: bool) -> Option<Due> {
        let now = self.now.map_or(now, |before| before.max(now)); // never backwards
        self.now = Some(now);
        if self.unstamped || self.last_received.is_none() {
            // The first call starts the clock as if something had just arrived.
            self.last_received = Some(now);
            self.unstamped = false;
        }
        if self.close_deadline == Some(None) {
            self.close_deadline = Some(Some(now + self.timeouts.close()));
        }
        if awaiting && self.close_deadline.flatten().is_some_and(|d| d <= now) {
            return Some(Due::Expired(Timeout::Close));
        }
        if !open {
            return None;
        }
        let idle_for = now - self.last_received.unwrap_or(now);
        if let Some(interval) = self.timeouts.keepalive() {
            if idle_for >= interval + self.timeouts.keepalive_timeout() && self.ping_sent {
                return Some(Due::Expired(Timeout::Keepalive));
            }
            if idle_for >= interval && !self.ping_sent {
                self.ping_sent = true;
                return Some(Due::Ping);
            }
        }
        if self.timeouts.idle().is_some_and(|t| idle_for >= t) {
            return Some(Due::Expired(Timeout::Idle));
        }
        None
    }
}
