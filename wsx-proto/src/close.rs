//! The closing handshake (RFC 6455 §5.5.1, §7): the only place where the close state changes.
//!
//! ```text
//!            send_close                     recv_close
//!   Open ───────────────────► CloseSent ───────────────────► Closed(Handshake)
//!     │                                                        ▲
//!     │ recv_close (our echo is queued at once)                │
//!     └────────────────────────────────────────────────────────┤
//!     │ fail(code): the peer broke the protocol, or a timer    │
//!     │   gave up on it; Close(code) queued unless one was sent│
//!     └───────────────────────────────────────────► Closed(Failed)
//!   Open/CloseSent ── recv_eof: TCP ended first ──► Closed(Vanished)   (abnormal, 1006)
//!   Closed(Handshake) ── recv_eof ──► Closed(Handshake), the peer's FIN noted
//! ```
//!
//! Why a connection closed is part of the `Closed` state, so that no combination of flags can
//! say two things at once.
//!
//! Who closes TCP (§7.1.1): once `Closed`, the server closes the TCP connection as soon as its
//! queued bytes are written; a client waits for the server to close it (the close timer of
//! [`Connection`](crate::Connection) bounds the wait), unless the connection failed or the
//! peer vanished, in which case either side just closes.

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

/// The state, with the cause of the end inside `Closed`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Open,
    CloseSent,
    Closed(Cause),
}

/// Why a connection is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cause {
    /// Close frames were exchanged; `received` is the peer's (`None`: one without a code).
    /// `wait_over`: the peer has closed TCP since, or we stopped waiting for it (close timer).
    Handshake { received: Option<CloseFrame>, wait_over: bool },
    /// We failed the connection: the peer broke the protocol, or a timer gave up on it.
    Failed,
    /// The TCP connection ended before the closing handshake completed (1006).
    Vanished,
}

/// The closing handshake of one connection.
#[derive(Debug)]
pub(crate) struct CloseHandshake {
    role: Role,
    state: State,
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
        Self { role, state: State::Open }
    }

    pub(crate) fn state(&self) -> CloseState {
        match self.state {
            State::Open => CloseState::Open,
            State::CloseSent => CloseState::CloseSent,
            State::Closed(_) => CloseState::Closed,
        }
    }

    /// Data and pings may be sent only while open (RFC 6455 §5.5.1: nothing after a Close).
    pub(crate) fn may_send(&self) -> bool {
        self.state == State::Open
    }

    /// Frames from the peer are still processed: nothing was received after its Close, and
    /// nothing after we failed the connection.
    pub(crate) fn may_receive(&self) -> bool {
        !matches!(self.state, State::Closed(_))
    }

    /// The application sends a Close frame.
    pub(crate) fn send_close(&mut self) -> Result<(), UsageError> {
        match self.state {
            State::Open => {
                self.state = State::CloseSent;
                Ok(())
            }
            State::CloseSent | State::Closed(_) => Err(UsageError::Closed),
        }
    }

    /// The peer's Close frame arrived: answer it with the same code (§5.5.1) if we have not
    /// sent one. Ignored once closed (nothing is read after that).
    pub(crate) fn recv_close(&mut self, frame: Option<CloseFrame>) -> Reply {
        let reply = match self.state {
            State::Open => Reply::Close(
                frame.as_ref().map(|f| CloseFrame { code: f.code, reason: Default::default() }),
            ),
            State::CloseSent | State::Closed(_) => Reply::Nothing,
        };
        if self.may_receive() {
            self.state = State::Closed(Cause::Handshake { received: frame, wait_over: false });
        }
        reply
    }

    /// We give up on the connection (the peer broke the protocol, or a timer expired): send
    /// `frame` if no Close was sent yet, then stop. Ignored once closed.
    pub(crate) fn fail(&mut self, frame: CloseFrame) -> Reply {
        let reply = match self.state {
            State::Open => Reply::Close(Some(frame)),
            State::CloseSent | State::Closed(_) => Reply::Nothing,
        };
        if self.may_receive() {
            self.state = State::Closed(Cause::Failed);
        }
        reply
    }

    /// The TCP connection ended. Returns whether that was abnormal (before the closing
    /// handshake completed: 1006).
    pub(crate) fn recv_eof(&mut self) -> bool {
        match &mut self.state {
            State::Open | State::CloseSent => {
                self.state = State::Closed(Cause::Vanished);
                true
            }
            State::Closed(Cause::Handshake { wait_over, .. }) => {
                *wait_over = true;
                false
            }
            State::Closed(Cause::Failed | Cause::Vanished) => false,
        }
    }

    /// Whether this side should now close the TCP connection (once its queued bytes are out).
    pub(crate) fn should_close_tcp(&self) -> bool {
        match &self.state {
            State::Open | State::CloseSent => false,
            State::Closed(Cause::Handshake { wait_over, .. }) => {
                self.role == Role::Server || *wait_over
            }
            State::Closed(Cause::Failed | Cause::Vanished) => true,
        }
    }

    /// The close timer ran out: stop waiting for the peer. Returns whether that was abnormal
    /// (no Close frame came back).
    pub(crate) fn give_up(&mut self) -> bool {
        match &mut self.state {
            State::Closed(Cause::Handshake { wait_over, .. }) => {
                *wait_over = true;
                false
            }
            State::Closed(Cause::Failed | Cause::Vanished) => false,
            State::Open | State::CloseSent => {
                self.state = State::Closed(Cause::Failed);
                true
            }
        }
    }

    /// Whether we are waiting for the peer: for its Close frame, or (a client) for the server
    /// to close TCP after the handshake. This is what the close timer bounds.
    pub(crate) fn awaits_peer(&self) -> bool {
        !self.should_close_tcp() && self.state != State::Open
    }

    /// The Close frame the peer sent, once received.
    pub(crate) fn received(&self) -> Option<&Option<CloseFrame>> {
        match &self.state {
            State::Closed(Cause::Handshake { received, .. }) => Some(received),
            _ => None,
        }
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

    #[test]
    fn giving_up_while_waiting_for_the_peers_close_is_abnormal() {
        let mut c = CloseHandshake::new(Role::Server);
        c.send_close().unwrap();
        assert!(c.awaits_peer());
        assert!(c.give_up(), "no Close came back");
        assert!(c.should_close_tcp() && !c.awaits_peer());
        assert_eq!(c.received(), None);
    }

    #[test]
    fn a_client_that_stops_waiting_for_the_fin_keeps_the_peers_close() {
        let mut c = CloseHandshake::new(Role::Client);
        c.recv_close(Some(frame(1000)));
        assert!(c.awaits_peer(), "the client waits for the server's FIN");
        assert!(!c.give_up(), "the handshake completed: normal");
        assert!(c.should_close_tcp());
        assert_eq!(c.received(), Some(&Some(frame(1000))));
        assert!(!c.recv_eof(), "a late FIN changes nothing");
    }

    #[test]
    fn a_failed_connection_neither_waits_nor_reports_a_close() {
        let mut c = CloseHandshake::new(Role::Client);
        c.fail(frame(1002));
        assert!(!c.awaits_peer() && c.should_close_tcp());
        assert_eq!(c.recv_close(Some(frame(1000))), Reply::Nothing, "nothing is read after");
        assert_eq!(c.received(), None);
        assert!(!c.recv_eof());
    }
}
