//! Errors, split by whose fault they are.
//!
//! | type | whose fault | what goes on the wire |
//! |---|---|---|
//! | [`ProtocolError`] | the peer broke RFC 6455 after the handshake | a Close frame with [`ProtocolError::close_code`] |
//! | [`HandshakeError`] | the opening handshake is invalid | the HTTP status of [`HandshakeError::status`] (server side), or nothing: the client drops the connection |
//! | [`UsageError`] | the caller misused the API | nothing: the call is refused and the connection is unchanged |

use std::fmt;

use http::{HeaderMap, StatusCode};

use crate::message::CloseCode;

/// The peer violated the WebSocket protocol (RFC 6455 §5, §7).
///
/// The connection has failed: a Close frame carrying [`close_code`](Self::close_code) has been
/// queued (unless the peer vanished) and no further messages will be delivered.
///
/// ```
/// use wsx_proto::{CloseCode, ProtocolError};
/// assert_eq!(ProtocolError::InvalidUtf8.close_code(), CloseCode::INVALID_PAYLOAD);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A client sent a frame without a mask (RFC 6455 §5.1).
    UnmaskedFrame,
    /// A server sent a masked frame (RFC 6455 §5.1).
    MaskedFrame,
    /// An RSV bit was set that no negotiated extension defines (RFC 6455 §5.2).
    ReservedBits,
    /// The frame used a reserved opcode (RFC 6455 §5.2).
    ReservedOpcode(u8),
    /// A control frame carried more than 125 bytes (RFC 6455 §5.5).
    ControlFrameTooLong(u64),
    /// A control frame had FIN clear (RFC 6455 §5.5).
    FragmentedControlFrame,
    /// The 64-bit payload length had its most significant bit set (RFC 6455 §5.2).
    InvalidLength,
    /// A continuation frame arrived with no fragmented message in progress (RFC 6455 §5.4).
    UnexpectedContinuation,
    /// A new text or binary frame arrived inside a fragmented message (RFC 6455 §5.4).
    ExpectedContinuation,
    /// A text message, or a close reason, is not valid UTF-8 (RFC 6455 §8.1).
    InvalidUtf8,
    /// A compressed message is not a valid deflate stream (RFC 7692 §7.2.2).
    InvalidCompressedData,
    /// A Close frame carried a one-byte payload (RFC 6455 §5.5.1).
    InvalidClosePayload,
    /// A Close frame carried a code that may not be sent (RFC 6455 §7.4).
    InvalidCloseCode(u16),
    /// A frame is larger than [`Limits::max_frame_size`](crate::Limits::max_frame_size).
    FrameTooBig {
        /// The frame's payload length, as announced in its header.
        size: u64,
        /// The configured limit.
        max: usize,
    },
    /// A message is larger than [`Limits::max_message_size`](crate::Limits::max_message_size).
    MessageTooBig {
        /// The message size reached with the frame that broke the limit.
        size: u64,
        /// The configured limit.
        max: usize,
    },
    /// The peer closed the TCP connection without a closing handshake (RFC 6455 §7.1.5: 1006).
    UnexpectedEof,
}

impl ProtocolError {
    /// The close code that this violation puts on the wire (or reports, for 1006).
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::InvalidUtf8 | Self::InvalidCompressedData => CloseCode::INVALID_PAYLOAD,
            Self::FrameTooBig { .. } | Self::MessageTooBig { .. } => CloseCode::MESSAGE_TOO_BIG,
            Self::UnexpectedEof => CloseCode::ABNORMAL,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnmaskedFrame => f.write_str("client sent an unmasked frame"),
            Self::MaskedFrame => f.write_str("server sent a masked frame"),
            Self::ReservedBits => f.write_str("reserved bits set without a negotiated extension"),
            Self::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            Self::ControlFrameTooLong(n) => {
                write!(f, "control frame of {n} bytes (at most 125 allowed)")
            }
            Self::FragmentedControlFrame => f.write_str("fragmented control frame"),
            Self::InvalidLength => f.write_str("64-bit payload length with the top bit set"),
            Self::UnexpectedContinuation => {
                f.write_str("continuation frame without a message to continue")
            }
            Self::ExpectedContinuation => {
                f.write_str("new data frame while a fragmented message was in progress")
            }
            Self::InvalidUtf8 => f.write_str("text is not valid UTF-8"),
            Self::InvalidClosePayload => f.write_str("close frame with a one-byte payload"),
            Self::InvalidCompressedData => {
                f.write_str("compressed message is not valid deflate data")
            }
            Self::InvalidCloseCode(c) => write!(f, "close code {c} may not be used"),
            Self::FrameTooBig { size, max } => {
                write!(f, "frame of {size} bytes exceeds the limit of {max}")
            }
            Self::MessageTooBig { size, max } => {
                write!(f, "message of at least {size} bytes exceeds the limit of {max}")
            }
            Self::UnexpectedEof => {
                f.write_str("connection closed without a closing handshake (1006)")
            }
        }
    }
}

impl std::error::Error for ProtocolError {}

/// The opening handshake failed (RFC 6455 §4).
///
/// On the server side, errors about the client's request know the HTTP status to answer with
/// ([`status`](Self::status)) and can render the whole response ([`to_response`](Self::to_response)).
/// On the client side, errors about the server's response have no status: the client fails the
/// connection by closing it.
///
/// ```
/// use http::StatusCode;
/// use wsx_proto::HandshakeError;
/// let err = HandshakeError::UnsupportedVersion("8".into());
/// assert_eq!(err.status(), Some(StatusCode::UPGRADE_REQUIRED));
/// let response = err.to_response().unwrap();
/// assert_eq!(response.headers()["sec-websocket-version"], "13");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    // --- the client's request (server side) ---
    /// The request is not a WebSocket upgrade (no `Upgrade: websocket`); serve it as plain HTTP.
    NotUpgrade,
    /// The request is not valid HTTP/1.1 (RFC 9112); the text says where.
    MalformedRequest(String),
    /// The request head is larger than [`Limits::max_head_size`](crate::Limits::max_head_size)
    /// or has more headers than [`Limits::max_headers`](crate::Limits::max_headers).
    HeadTooLarge,
    /// The method is not GET (RFC 6455 §4.2.1 item 1).
    MethodNotGet(String),
    /// The HTTP version is below 1.1 (RFC 6455 §4.2.1 item 1).
    HttpVersion,
    /// A required header is missing.
    MissingHeader(&'static str),
    /// A header that must appear once appears several times.
    DuplicateHeader(&'static str),
    /// A header has a value that is not allowed; the text says why.
    InvalidHeader {
        /// The header at fault.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// `Sec-WebSocket-Version` is not 13 (RFC 6455 §4.4): answered with 426 and the version we speak.
    UnsupportedVersion(String),
    /// The application refused the request's Origin (RFC 6455 §4.2.2, §10.2): 403.
    OriginRejected(String),
    /// The application refused the request with this status and reason.
    Rejected {
        /// The status to answer with.
        status: StatusCode,
        /// A one-line reason sent as the response body.
        reason: String,
    },
    // --- the server's response (client side) ---
    /// The server answered with a status other than 101.
    Status {
        /// The status received.
        status: StatusCode,
        /// The response headers.
        headers: Box<HeaderMap>,
        /// The start of the response body, as far as it had arrived (at most 1 KiB).
        body: bytes::Bytes,
    },
    /// The server's response is not valid HTTP/1.1 or breaks RFC 6455 §4.1; the text says where.
    InvalidResponse(String),
    /// `Sec-WebSocket-Accept` does not match the key we sent (RFC 6455 §4.1 item 4).
    AcceptMismatch,
}

impl HandshakeError {
    /// The HTTP status a server answers this request error with; `None` for errors in a
    /// server's response, which the client answers by closing the connection.
    pub fn status(&self) -> Option<StatusCode> {
        Some(match self {
            Self::NotUpgrade | Self::UnsupportedVersion(_) => StatusCode::UPGRADE_REQUIRED,
            Self::MalformedRequest(_)
            | Self::HttpVersion
            | Self::MissingHeader(_)
            | Self::DuplicateHeader(_)
            | Self::InvalidHeader { .. } => StatusCode::BAD_REQUEST,
            Self::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::MethodNotGet(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::OriginRejected(_) => StatusCode::FORBIDDEN,
            Self::Rejected { status, .. } => *status,
            Self::Status { .. } | Self::InvalidResponse(_) | Self::AcceptMismatch => return None,
        })
    }

    /// The complete response a server sends for this request error: the status, a one-line
    /// plain-text reason as the body, `Connection: close`, and the headers the status requires
    /// (`Sec-WebSocket-Version: 13` with 426, `Allow: GET` with 405).
    pub fn to_response(&self) -> Option<http::Response<String>> {
        let status = self.status()?;
        let mut response = http::Response::new(format!("{self}\n"));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(http::header::CONTENT_TYPE, "text/plain; charset=utf-8".parse().ok()?);
        headers.insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
        match self {
            Self::NotUpgrade | Self::UnsupportedVersion(_) => {
                headers.insert(http::header::UPGRADE, http::HeaderValue::from_static("websocket"));
                headers.insert(
                    http::header::SEC_WEBSOCKET_VERSION,
                    http::HeaderValue::from_static("13"),
                );
            }
            Self::MissingHeader(name) if name.eq_ignore_ascii_case("sec-websocket-version") => {
                headers.insert(
                    http::header::SEC_WEBSOCKET_VERSION,
                    http::HeaderValue::from_static("13"),
                );
            }
            Self::MethodNotGet(_) => {
                headers.insert(http::header::ALLOW, http::HeaderValue::from_static("GET"));
            }
            _ => {}
        }
        Some(response)
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotUpgrade => {
                f.write_str("not a WebSocket upgrade: expected 'Upgrade: websocket'")
            }
            Self::MalformedRequest(why) => write!(f, "malformed HTTP request: {why}"),
            Self::HeadTooLarge => {
                f.write_str("request head too large (too many or too long headers)")
            }
            Self::MethodNotGet(m) => {
                write!(f, "method {m} not allowed: a WebSocket upgrade uses GET")
            }
            Self::HttpVersion => {
                f.write_str("HTTP version too old: a WebSocket upgrade needs HTTP/1.1")
            }
            Self::MissingHeader(name) => write!(f, "missing {name} header"),
            Self::DuplicateHeader(name) => write!(f, "{name} header may appear only once"),
            Self::InvalidHeader { name, reason } => write!(f, "invalid {name} header: {reason}"),
            Self::UnsupportedVersion(v) => {
                write!(f, "unsupported Sec-WebSocket-Version {v:?}: this server speaks version 13")
            }
            Self::OriginRejected(origin) => write!(f, "origin {origin:?} is not allowed"),
            Self::Rejected { status, reason } => write!(f, "rejected with {status}: {reason}"),
            Self::Status { status, body, .. } => {
                write!(f, "server answered {status} instead of 101 Switching Protocols")?;
                let text = String::from_utf8_lossy(body);
                let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
                if !line.is_empty() {
                    let short: String = line.chars().take(200).collect();
                    write!(f, ": {short}")?;
                }
                Ok(())
            }
            Self::InvalidResponse(why) => write!(f, "invalid handshake response: {why}"),
            Self::AcceptMismatch => f.write_str("Sec-WebSocket-Accept does not match the key sent"),
        }
    }
}

impl std::error::Error for HandshakeError {}

/// The caller misused the API; the call was refused and nothing changed.
///
/// ```
/// use wsx_proto::{Connection, Message, Negotiated, Role, UsageError};
/// let mut conn = Connection::new(Role::Server, &Negotiated::default(), Default::default());
/// let too_long = Message::Ping(vec![0; 126].into());
/// assert_eq!(conn.send(too_long), Err(UsageError::ControlTooLong(126)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UsageError {
    /// A Close frame has already been sent: nothing more may be sent (RFC 6455 §5.5.1).
    Closed,
    /// A ping, pong or close payload over 125 bytes (RFC 6455 §5.5).
    ControlTooLong(usize),
    /// A close code that may not be sent (1005, 1006, 1015, unassigned ones).
    InvalidCloseCode(u16),
    /// A fragment was sent without a message started, or a message was started inside another.
    Fragmentation(&'static str),
    /// A URL that is not a valid `ws://` or `wss://` URL.
    InvalidUrl(String),
    /// A header name or value that cannot be sent.
    InvalidHeader(String),
    /// The application tried to select a subprotocol that the client did not offer.
    SubprotocolNotOffered(String),
    /// The application tried to accept an extension that the client did not offer.
    ExtensionNotOffered(String),
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => {
                f.write_str("the connection is closing: a Close frame was already sent")
            }
            Self::ControlTooLong(n) => {
                write!(f, "control frame payload of {n} bytes (at most 125 allowed)")
            }
            Self::InvalidCloseCode(c) => write!(f, "close code {c} may not be sent"),
            Self::Fragmentation(why) => write!(f, "invalid fragment sequence: {why}"),
            Self::InvalidUrl(why) => write!(f, "invalid WebSocket URL: {why}"),
            Self::InvalidHeader(why) => write!(f, "invalid header: {why}"),
            Self::SubprotocolNotOffered(p) => {
                write!(f, "subprotocol {p:?} was not offered by the client")
            }
            Self::ExtensionNotOffered(e) => {
                write!(f, "extension {e:?} was not offered by the client")
            }
        }
    }
}

impl std::error::Error for UsageError {}
