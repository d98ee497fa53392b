//! The closing handshake (RFC 6455 §5.5.1, §7): the only place where the close state changes.
//!
//! ```text
//!            send_close                     recv_close
//!   Open ───────────────────► CloseSent ───────────────────► Closed
//!     │                                                        ▲
//!     │ recv_close (our echo is queued at once)                │
//!     └────────────────────────────────────────────────────────┤
//!     │ fail(code): the peer broke the protocol,               │
//!     │   Close(code) queued unless one was sent               │
//!     └────────────────────────────────────────────────────────┤
//!   any ── recv_eof: the TCP connection ended ─────────────────┘
//!          (before the handshake completed: abnormal, 1006)
//! ```
//!
//! Who closes TCP (§7.1.1): once `Closed`, the server closes the TCP connection as soon as its
//! queued bytes are written; a client waits for the server to close it (the I/O layer bounds the
//! wait with a timeout), unless the connection failed, in which case either side just closes.

use crate::error::UsageError;
use crate::message::CloseFrame;
use crate::Role;

/// Where a connection stands in the closing handshake.
///
/// ```
/// use wsx_proto::{CloseCode, CloseState, Connection, Message, Negotiated, Role};
/// let mut conn = Connection::new(Role::Server, &Negotiated::default(), Default::default());
/// assert_eq!(conn.close_state(), CloseState::Open);
/// conn.send(Message::close(CloseCode::NORMAL, "bye")).unwrap();
/// assert_eq!(conn.close_state(), CloseState::CloseSent);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseState {
    /// Data flows both ways.
    Open,
    /// We sent a Close frame and wait for the peer's; incoming messages are still delivered.
    CloseSent,
    /// No more frames will be sent or delivered.
    Closed,
}

/// The closing handshake of one connection.
#[derive(Debug)]
pub(crate) struct CloseHandshake {
    role: Role,
    state: CloseState,
    /// The Close frame received from the peer (`Some(None)`: one without a code).
    received: Option<Option<CloseFrame>>,
    /// We failed the connection because the peer broke the protocol.
    failed: bool,
    /// The TCP connection has ended.
    eof: bool,
}

/// What the caller must do after a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Nothing to send.
    Nothing,
    /// Queue a Close frame with this payload.
    Close(Option<CloseFrame>),
}

impl CloseHandshake {
    pub(crate) fn new(role: Role) -> Self {
        Self { role, state: CloseState::Open, received: None, failed: false, eof: false }
    }

    pub(crate) fn state(&self) -> CloseState {
        self.state
    }

    /// Data and pings may be sent only while open (RFC 6455 §5.5.1: nothing after a Close).
    pub(crate) fn may_send(&self) -> bool {
        self.state == CloseState::Open
    }

    /// Frames from the peer are still processed: nothing was received after its Close, and
    /// nothing after we failed the connection.
    pub(crate) fn may_receive(&self) -> bool {
        self.state != CloseState::Closed
    }

    /// The application sends a Close frame.
    pub(crate) fn send_close(&mut self) -> Result<(), UsageError> {
        match self.state {
            CloseState::Open => {
                self.state = CloseState::CloseSent;
                Ok(())
            }
            CloseState::CloseSent | CloseState::Closed => Err(UsageError::Closed),
        }
    }

    /// The peer's Close frame arrived: answer it with the same code (§5.5.1) if we have not
    /// sent one.
    pub(crate) fn recv_close(&mut self, frame: Option<CloseFrame>) -> Reply {
        let reply = match self.state {
            CloseState::Open => Reply::Close(
                frame.as_ref().map(|f| CloseFrame { code: f.code, reason: Default::default() }),
            ),
            CloseState::CloseSent | CloseState::Closed => Reply::Nothing,
        };
        if self.state != CloseState::Closed {
            self.received = Some(frame);
            self.state = CloseState::Closed;
        }
        reply
    }

    /// The peer broke the protocol: send `frame` if no Close was sent yet, then stop.
    pub(crate) fn fail(&mut self, frame: CloseFrame) -> Reply {
        let reply = match self.state {
            CloseState::Open => Reply::Close(Some(frame)),
            CloseState::CloseSent | CloseState::Closed => Reply::Nothing,
        };
        self.failed = true;
        self.state = CloseState::Closed;
        reply
    }

    /// The TCP connection ended. Returns whether that was abnormal (before the closing
    /// handshake completed: 1006).
    pub(crate) fn recv_eof(&mut self) -> bool {
        let abnormal = self.received.is_none() && !self.failed;
        self.eof = true;
        self.state = CloseState::Closed;
        abnormal
    }

    /// Whether this side should now close the TCP connection (once its queued bytes are out).
    pub(crate) fn should_close_tcp(&self) -> bool {
        self.state == CloseState::Closed && (self.role == Role::Server || self.failed || self.eof)
    }

    /// The Close frame the peer sent, once received.
    pub(crate) fn received(&self) -> Option<&Option<CloseFrame>> {
        self.received.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::CloseCode;

    fn frame(code: u16) -> CloseFrame {
        CloseFrame { code: code.into(), reason: "why".into() }
    }

    #[test]
    fn we_close_first() {
        let mut c = CloseHandshake::new(Role::Client);
        c.send_close().unwrap();
        assert_eq!(c.state(), CloseState::CloseSent);
        assert!(!c.may_send());
        assert!(c.may_receive(), "messages still arrive until the peer's Close");
        assert_eq!(c.send_close(), Err(UsageError::Closed));
        assert_eq!(c.recv_close(Some(frame(1000))), Reply::Nothing);
        assert_eq!(c.state(), CloseState::Closed);
        assert!(!c.should_close_tcp(), "the client waits for the server to close TCP");
        assert!(!c.recv_eof(), "EOF after the handshake is normal");
        assert!(c.should_close_tcp());
    }

    #[test]
    fn peer_closes_first_and_gets_its_code_echoed() {
        let mut c = CloseHandshake::new(Role::Server);
        let reply = c.recv_close(Some(frame(4000)));
        assert_eq!(reply, Reply::Close(Some(CloseFrame { code: 4000.into(), reason: "".into() })));
        assert_eq!(c.state(), CloseState::Closed);
        assert!(!c.may_receive() && !c.may_send());
        assert!(c.should_close_tcp(), "the server closes TCP first");
        assert_eq!(c.received(), Some(&Some(frame(4000))));
    }

    #[test]
    fn close_without_code_is_echoed_without_code() {
        let mut c = CloseHandshake::new(Role::Server);
        assert_eq!(c.recv_close(None), Reply::Close(None));
    }

    #[test]
    fn failing_sends_one_close() {
        let mut c = CloseHandshake::new(Role::Client);
        let f = CloseFrame { code: CloseCode::PROTOCOL_ERROR, reason: "".into() };
        assert_eq!(c.fail(f.clone()), Reply::Close(Some(f.clone())));
        assert!(c.should_close_tcp(), "after failing, a client closes TCP itself");
        let mut c = CloseHandshake::new(Role::Client);
        c.send_close().unwrap();
        assert_eq!(c.fail(f), Reply::Nothing, "a Close was already sent");
    }

    #[test]
    fn vanished_peer_is_abnormal() {
        let mut c = CloseHandshake::new(Role::Server);
        assert!(c.recv_eof());
        let mut c = CloseHandshake::new(Role::Server);
        c.send_close().unwrap();
        assert!(c.recv_eof(), "no Close came back");
    }
}
