//! Configuration: [`Limits`] that keep memory bounded, and [`Config`] for a [`Connection`](crate::Connection).

use std::time::Duration;

use crate::timers::Timeouts;

/// Size limits, with defaults that are safe on the open internet.
///
/// ```
/// use wsx_proto::Limits;
/// let limits = Limits::default().max_message_size(64 << 20);
/// assert_eq!(limits.message_size(), 64 << 20);
/// assert_eq!(limits.frame_size(), 64 << 20); // the frame limit follows the message limit
/// let limits = limits.max_frame_size(1 << 20);
/// assert_eq!(limits.frame_size(), 1 << 20); // unless it is set on its own
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `None`: the same as the message limit.
    max_frame_size: Option<usize>,
    max_message_size: usize,
    max_head_size: usize,
    max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_size: None,
            max_message_size: 16 << 20,
            max_head_size: 8 << 10,
            max_headers: 64,
        }
    }
}

impl Limits {
    /// The largest frame payload accepted (default: the message limit); larger frames fail
    /// the connection with 1009 as soon as their header arrives. With permessage-deflate, a
    /// compressed frame may exceed it by deflate's worst-case expansion
    /// ([`compressed_size`](Self::compressed_size)): the limit is on what it inflates to.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = Some(bytes);
        self
    }

    /// The largest message accepted, all fragments together (default 16 MiB); exceeding it fails
    /// the connection with 1009 before the excess is buffered.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// The largest handshake head (request or response line plus headers) accepted
    /// (default 8 KiB); a larger request is answered with 431.
    pub fn max_head_size(mut self, bytes: usize) -> Self {
        self.max_head_size = bytes;
        self
    }

    /// The most handshake headers accepted (default 64); more are answered with 431.
    pub fn max_headers(mut self, count: usize) -> Self {
        self.max_headers = count;
        self
    }

    /// The effective frame limit: the frame limit if one was set, and never more than the
    /// message limit.
    pub fn frame_size(&self) -> usize {
        self.max_frame_size.map_or(self.max_message_size, |f| f.min(self.max_message_size))
    }

    /// What `size` bytes may take on the wire once compressed by any peer's deflate: an
    /// incompressible input grows, by 5 bytes per 64 KiB stored block with zlib, and by up to
    /// 1/8 with fixed Huffman codes. Compressed frames and messages are measured against this
    /// bound of the frame and message limits; what they inflate to is measured against the
    /// limits themselves.
    pub fn compressed_size(size: usize) -> usize {
        size.saturating_add(size / 8).saturating_add(1024)
    }

    /// The message limit.
    pub fn message_size(&self) -> usize {
        self.max_message_size
    }

    /// The handshake head limit in bytes.
    pub fn head_size(&self) -> usize {
        self.max_head_size
    }

    /// The handshake header-count limit.
    pub fn headers(&self) -> usize {
        self.max_headers
    }
}

/// Configuration of a [`Connection`](crate::Connection).
///
/// ```
/// use wsx_proto::{Config, Limits};
/// let config = Config::default()
///     .limits(Limits::default().max_message_size(64 << 10))
///     .dangerous_rng_seed([7; 32]); // deterministic masking keys, for tests
/// # let _ = config;
/// ```
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub(crate) limits: Limits,
    pub(crate) rng_seed: Option<[u8; 32]>,
    pub(crate) timeouts: Timeouts,
}

impl Config {
    /// Send a ping after this long without receiving anything (default: off). A peer that then
    /// sends nothing for [`keepalive_timeout`](Self::keepalive_timeout) is closed with 1011.
    pub fn keepalive(mut self, interval: Option<Duration>) -> Self {
        self.timeouts.set_keepalive(interval);
        self
    }

    /// How long a keepalive ping may go unanswered (default 20 s).
    pub fn keepalive_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.set_keepalive_timeout(timeout);
        self
    }

    /// Close with 1001 after this long without receiving anything (default: off).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeouts.set_idle(timeout);
        self
    }

    /// How long to wait for the peer's Close frame after ours, and (a client) for the server
    /// to close TCP after the closing handshake (default 5 s); then the connection is dropped.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.set_close(timeout);
        self
    }

    /// The keepalive interval, if keepalive is on.
    pub fn keepalive_interval(&self) -> Option<Duration> {
        self.timeouts.keepalive()
    }

    /// Size limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Seed for the masking-key generator (clients only). Without a seed the generator is seeded
    /// once per connection from the operating system.
    ///
    /// Dangerous: a fixed seed makes masking keys predictable, which defeats what masking is
    /// for (RFC 6455 §10.3: an attacker who can predict the keys can shape the bytes an
    /// intermediary sees). For tests that assert exact bytes only.
    pub fn dangerous_rng_seed(mut self, seed: [u8; 32]) -> Self {
        self.rng_seed = Some(seed);
        self
    }

    /// The configured limits.
    pub fn limits_ref(&self) -> &Limits {
        &self.limits
    }
}
