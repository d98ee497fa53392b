//! [`Error`]: everything that can go wrong, one variant per cause; the core's errors are
//! wrapped unchanged.

use std::{fmt, io};

use wsx_proto::{CloseCode, HandshakeError, ProtocolError, UsageError};

/// Which timeout expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Timeout {
    /// Resolving and connecting TCP (and the proxy tunnel, and TLS).
    Connect,
    /// The opening handshake did not complete in time.
    Handshake,
    /// The peer did not answer our Close frame in time.
    Close,
    /// The peer did not answer keepalive pings (we closed with 1011).
    Keepalive,
    /// Nothing was received for the idle timeout (we closed with 1001).
    Idle,
}

/// An error of the tokio layer.
///
/// ```
/// use wsx::{Error, Timeout};
/// let err = Error::Timeout(Timeout::Handshake);
/// assert_eq!(err.to_string(), "timed out: opening handshake");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing the connection failed.
    Io(io::Error),
    /// The TCP connection could not be established (`target` is `host:port`).
    Connect {
        /// What we tried to reach.
        target: String,
        /// Why it failed (DNS, refused, unreachable).
        source: io::Error,
    },
    /// TLS failed (certificate, handshake, configuration).
    Tls(io::Error),
    /// The proxy refused or failed the CONNECT tunnel.
    Proxy {
        /// The proxy, as `host:port`.
        proxy: String,
        /// What went wrong, with the proxy's status line when it answered.
        reason: String,
    },
    /// The opening handshake failed (see [`HandshakeError::status`]).
    Handshake(HandshakeError),
    /// The peer broke the protocol; the Close frame with its code has been sent.
    Protocol(ProtocolError),
    /// The call was refused: misuse of the API.
    Usage(UsageError),
    /// A timeout expired.
    Timeout(Timeout),
    /// The connection is closed; nothing more can be sent or received.
    Closed,
}

impl From<wsx_proto::Timeout> for Timeout {
    fn from(t: wsx_proto::Timeout) -> Self {
        match t {
            wsx_proto::Timeout::Keepalive => Self::Keepalive,
            wsx_proto::Timeout::Idle => Self::Idle,
            _ => Self::Close,
        }
    }
}

impl Error {
    /// The close code that describes how the connection ended, if it ended because of this
    /// error: the protocol violation's code, 1006 for a vanished peer or I/O failure, 1011 for
    /// unanswered keepalive pings, 1001 for an idle timeout.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Self::Protocol(e) => Some(e.close_code()),
            Self::Io(_) => Some(CloseCode::ABNORMAL),
            Self::Timeout(Timeout::Keepalive) => Some(CloseCode::INTERNAL_ERROR),
            Self::Timeout(Timeout::Idle) => Some(CloseCode::GOING_AWAY),
            Self::Timeout(Timeout::Close) => Some(CloseCode::ABNORMAL),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The wrapped error is part of the message, so `source()` skips it and goes on
            // with what caused it: printed as a chain, nothing appears twice (no "I/O error:
            // broken pipe: broken pipe"), and `{e}` alone still says what happened.
            Self::Io(e) => write!(f, "I/O error: {e}"),
            Self::Connect { target, source } => write!(f, "cannot connect to {target}: {source}"),
            Self::Tls(e) => write!(f, "TLS error: {e}"),
            Self::Proxy { proxy, reason } => write!(f, "proxy {proxy}: {reason}"),
            Self::Handshake(e) => write!(f, "handshake failed: {e}"),
            Self::Protocol(e) => write!(f, "protocol error ({}): {e}", e.close_code()),
            Self::Usage(e) => write!(f, "{e}"),
            Self::Timeout(t) => f.write_str(match t {
                Timeout::Connect => "timed out: connecting",
                Timeout::Handshake => "timed out: opening handshake",
                Timeout::Close => "timed out: closing handshake",
                Timeout::Keepalive => "timed out: the peer did not answer keepalive pings",
                Timeout::Idle => "timed out: the connection was idle",
            }),
            Self::Closed => f.write_str("the connection is closed"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) | Self::Tls(e) | Self::Connect { source: e, .. } => e.source(),
            Self::Handshake(e) => e.source(),
            Self::Protocol(e) => e.source(),
            Self::Usage(e) => e.source(),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Self {
        Self::Handshake(e)
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Self::Protocol(e)
    }
}

impl From<UsageError> for Error {
    fn from(e: UsageError) -> Self {
        Self::Usage(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Printed alone or as a chain (what `anyhow` and most loggers do), every cause appears
    /// once.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut out = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            out.push_str(": ");
            out.push_str(&s.to_string());
            source = s.source();
        }
        out
    }

    #[test]
    fn errors_do_not_print_their_source_twice() {
        let io = Error::Io(io::Error::new(io::ErrorKind::BrokenPipe, "broken pipe"));
        assert_eq!(chain(&io), "I/O error: broken pipe");
        assert_eq!(io.to_string(), "I/O error: broken pipe");
        // An I/O error that wraps another error: the wrapped one's message once.
        let tls = Error::Tls(io::Error::other(Error::Closed));
        assert_eq!(chain(&tls), "TLS error: the connection is closed");
        let connect = Error::Connect {
            target: "127.0.0.1:1".into(),
            source: io::Error::new(io::ErrorKind::ConnectionRefused, "connection refused"),
        };
        assert_eq!(chain(&connect), "cannot connect to 127.0.0.1:1: connection refused");
        let protocol = Error::Protocol(ProtocolError::InvalidUtf8);
        assert_eq!(chain(&protocol), protocol.to_string(), "the core's error is the message");
    }
}
