//! [`Config`]: the core's configuration (limits; keepalive, idle and close timers, whose policy
//! runs in the core) plus what only the I/O layer uses (handshake and connect timeouts, the
//! write buffer, the deflate offer).

use std::time::Duration;

use wsx_proto::Limits;

/// Configuration of a WebSocket connection in the tokio layer, with safe defaults.
///
/// ```
/// use std::time::Duration;
/// use wsx::{Config, Limits};
/// let config = Config::default()
///     .limits(Limits::default().max_message_size(1 << 20))
///     .keepalive(Some(Duration::from_secs(30)))
///     .handshake_timeout(Duration::from_secs(5));
/// assert_eq!(config.keepalive_interval(), Some(Duration::from_secs(30)));
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) core: wsx_proto::Config,
    pub(crate) limits: Limits,
    pub(crate) handshake_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) write_buffer: usize,
    pub(crate) deflate: Option<wsx_proto::DeflateConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            core: wsx_proto::Config::default(),
            limits: Limits::default(),
            handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            write_buffer: 128 * 1024,
            deflate: None,
        }
    }
}

impl Config {
    /// Frame, message and handshake size limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self.core = self.core.limits(limits);
        self
    }

    /// The opening handshake must complete within this time (default 10 s): a client that sends
    /// half a request and stalls is dropped.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// DNS, TCP, proxy tunnel and TLS must complete within this time (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long to wait for the peer's Close frame, and for a server to close TCP, after we
    /// sent ours (default 5 s); then the connection is dropped.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.core = self.core.close_timeout(timeout);
        self
    }

    /// Send a ping after this long without receiving anything (default: off). A peer that then
    /// sends nothing for [`keepalive_timeout`](Self::keepalive_timeout) is closed with 1011.
    pub fn keepalive(mut self, interval: Option<Duration>) -> Self {
        self.core = self.core.keepalive(interval);
        self
    }

    /// How long a keepalive ping may go unanswered (default 20 s).
    pub fn keepalive_timeout(mut self, timeout: Duration) -> Self {
        self.core = self.core.keepalive_timeout(timeout);
        self
    }

    /// Close with 1001 after this long without receiving anything (default: off).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.core = self.core.idle_timeout(timeout);
        self
    }

    /// Outgoing bytes buffered before [`send`](crate::WebSocket::send) waits for the socket
    /// (default 128 KiB). Messages queued with `feed` leave in one write.
    pub fn write_buffer(mut self, bytes: usize) -> Self {
        self.write_buffer = bytes;
        self
    }

    /// permessage-deflate (RFC 7692): offered by clients, accepted by servers when offered
    /// (default: off; it costs memory per connection, see [`DeflateConfig`](wsx_proto::DeflateConfig)).
    pub fn deflate(mut self, config: Option<wsx_proto::DeflateConfig>) -> Self {
        self.deflate = config;
        self
    }

    /// Seed the masking-key generator. Dangerous: predictable masking keys; for tests only
    /// (see [`wsx_proto::Config::dangerous_rng_seed`]).
    pub fn dangerous_rng_seed(mut self, seed: [u8; 32]) -> Self {
        self.core = self.core.dangerous_rng_seed(seed);
        self
    }

    /// The configured keepalive interval.
    pub fn keepalive_interval(&self) -> Option<Duration> {
        self.core.keepalive_interval()
    }

    /// The configured permessage-deflate, if any.
    pub fn deflate_config(&self) -> Option<wsx_proto::DeflateConfig> {
        self.deflate
    }

    /// The configured limits.
    pub fn limits_ref(&self) -> &Limits {
        &self.limits
    }
}
