//! The client's side of the opening handshake (RFC 6455 §4.1): [`ClientRequest`] builds the
//! request from a URL, [`ClientHandshake`] checks the server's response.

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri};

use super::{has_token, is_token, Extension, Key, Negotiated, Parsed};
use crate::config::Limits;
use crate::deflate::DeflateConfig;
use crate::error::{HandshakeError, UsageError};

/// How much of a refusal's body an error keeps.
const BODY_PREFIX: usize = 1024;

/// Builds a client's opening request from a `ws://` or `wss://` URL.
///
/// ```
/// use wsx_proto::{ClientRequest, Key};
/// let handshake = ClientRequest::new("ws://example.com:8080/chat?room=1")
///     .origin("http://example.com")
///     .subprotocols(["chat", "superchat"])
///     .build(Key::from_bytes(*b"the sample nonce"))
///     .unwrap();
/// let request = handshake.request();
/// assert_eq!(request.uri(), "/chat?room=1");
/// assert_eq!(request.headers()["host"], "example.com:8080");
/// assert_eq!(request.headers()["sec-websocket-key"], "dGhlIHNhbXBsZSBub25jZQ==");
/// assert_eq!(request.headers()["sec-websocket-protocol"], "chat, superchat");
/// assert!(!handshake.is_secure());
/// ```
#[derive(Debug, Clone)]
pub struct ClientRequest {
    url: String,
    origin: Option<String>,
    subprotocols: Vec<String>,
    extensions: Vec<String>,
    headers: Vec<(String, String)>,
    deflate: Option<DeflateConfig>,
}

impl ClientRequest {
    /// A request for `url`; nothing is checked until [`build`](Self::build).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            origin: None,
            subprotocols: Vec::new(),
            extensions: Vec::new(),
            headers: Vec::new(),
            deflate: None,
        }
    }

    /// Offer permessage-deflate (RFC 7692) on these terms.
    pub fn deflate(mut self, config: Option<DeflateConfig>) -> Self {
        self.deflate = config;
        self
    }

    /// Send an `Origin` header.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// Offer subprotocols, in order of preference.
    pub fn subprotocols<S: Into<String>>(mut self, protocols: impl IntoIterator<Item = S>) -> Self {
        self.subprotocols.extend(protocols.into_iter().map(Into::into));
        self
    }

    /// Offer an extension, e.g. `"permessage-deflate; client_max_window_bits"`.
    pub fn extension(mut self, offer: impl Into<String>) -> Self {
        self.extensions.push(offer.into());
        self
    }

    /// Send an extra header (cookies, authorization, ...).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The request, with `key` as its `Sec-WebSocket-Key` (use [`Key::random`]: a fresh key
    /// for every connection).
    pub fn build(self, key: Key) -> Result<ClientHandshake, UsageError> {
        let bad_url = |why: &str| UsageError::InvalidUrl(format!("{}: {why}", self.url));
        if self.url.contains('#') {
            return Err(bad_url("a WebSocket URL may not have a fragment (RFC 6455 §3)"));
        }
        let uri: Uri = self.url.parse().map_err(|e| bad_url(&format!("{e}")))?;
        let secure = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("ws") => false,
            Some("wss") => true,
            _ => return Err(bad_url("the scheme must be ws or wss")),
        };
        let authority = uri.authority().ok_or_else(|| bad_url("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad_url("user information is not allowed in a WebSocket URL"));
        }
        let host = authority.host().to_string();
        if host.is_empty() {
            return Err(bad_url("no host"));
        }
        let default_port = if secure { 443 } else { 80 };
        let port = authority.port_u16().unwrap_or(default_port);
        let host_header =
            if port == default_port { host.clone() } else { format!("{host}:{port}") };
        let resource = uri.path_and_query().map_or("/", |pq| pq.as_str());
        let resource = if resource.is_empty() { "/" } else { resource };

        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| UsageError::InvalidHeader(format!("bad header name {name:?}")))?;
            headers.append(name, header_value(value)?);
        }
        headers.insert(header::HOST, header_value(&host_header)?);
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::SEC_WEBSOCKET_KEY, header_value(&key.to_string())?);
        headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        if let Some(origin) = &self.origin {
            headers.insert(header::ORIGIN, header_value(origin)?);
        }
        if let Some(bad) = self.subprotocols.iter().find(|p| !is_token(p)) {
            return Err(UsageError::InvalidHeader(format!("subprotocol {bad:?} is not a token")));
        }
        if !self.subprotocols.is_empty() {
            headers.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                header_value(&self.subprotocols.join(", "))?,
            );
        }
        let mut offers = self.extensions.clone();
        if let Some(deflate) = &self.deflate {
            offers.insert(0, deflate.offer());
        }
        let mut offered = Vec::new();
        for offer in &offers {
            let parsed = Extension::parse_list(offer)
                .map_err(|why| UsageError::InvalidHeader(format!("extension {offer:?}: {why}")))?;
            offered.extend(parsed.into_iter().map(|e| e.name().to_string()));
        }
        if !offers.is_empty() {
            headers.insert(header::SEC_WEBSOCKET_EXTENSIONS, header_value(&offers.join(", "))?);
        }

        let mut request = Request::new(());
        *request.uri_mut() = resource.parse().map_err(|_| bad_url("invalid path"))?;
        *request.headers_mut() = headers;
        Ok(ClientHandshake {
            request,
            accept: key.sec_websocket_accept(),
            subprotocols: self.subprotocols,
            extensions: offered,
            deflate: self.deflate,
            host,
            port,
            secure,
        })
    }
}

fn header_value(value: &str) -> Result<HeaderValue, UsageError> {
    HeaderValue::from_str(value)
        .map_err(|_| UsageError::InvalidHeader(format!("bad header value {value:?}")))
}

/// The server's `101` response, checked, and what it agreed on.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The response as received.
    pub response: Response<()>,
    /// The subprotocol and extensions agreed on.
    pub negotiated: Negotiated,
}

/// A client's opening handshake in flight: the request to send and what the response must say.
///
/// ```
/// use wsx_proto::{ClientRequest, Key, Limits};
/// let handshake = ClientRequest::new("ws://server.example.com/chat")
///     .subprotocols(["chat"])
///     .build(Key::from_bytes(*b"the sample nonce"))
///     .unwrap();
/// let response = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
///     Sec-WebSocket-Protocol: chat\r\n\r\n\x81\x00";
/// let done = handshake.read_response(response, &Limits::default()).unwrap().unwrap();
/// assert_eq!(done.value.negotiated.subprotocol(), Some("chat"));
/// assert_eq!(&response[done.len..], b"\x81\x00"); // a first frame that came along
/// ```
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    request: Request<()>,
    accept: String,
    subprotocols: Vec<String>,
    extensions: Vec<String>,
    deflate: Option<DeflateConfig>,
    host: String,
    port: u16,
    secure: bool,
}

impl ClientHandshake {
    /// The request to send (origin-form target, all headers).
    pub fn request(&self) -> &Request<()> {
        &self.request
    }

    /// Appends the request's bytes to `dst`.
    pub fn write_request(&self, dst: &mut BytesMut) {
        super::write_request(&self.request, dst);
    }

    /// The same request as an HTTP/2 extended CONNECT (RFC 8441 §4): method CONNECT, the full
    /// URI (`:scheme`, `:authority`, `:path`), HTTP/2, and the headers without those HTTP/2
    /// forbids or RFC 8441 drops (`Host`, `Upgrade`, `Connection`, `Sec-WebSocket-Key`). The
    /// caller adds `:protocol = websocket` (hyper: the `hyper::ext::Protocol` extension);
    /// [`ClientHandshake::verify`] checks the answer.
    ///
    /// ```
    /// use wsx_proto::{ClientRequest, Key};
    /// let handshake = ClientRequest::new("wss://example.com/chat?room=1")
    ///     .subprotocols(["chat"])
    ///     .build(Key::random())
    ///     .unwrap();
    /// let request = handshake.extended_connect_request();
    /// assert_eq!(request.method(), http::Method::CONNECT);
    /// assert_eq!(request.uri(), "https://example.com/chat?room=1");
    /// assert!(request.headers().get("sec-websocket-key").is_none());
    /// assert_eq!(request.headers()["sec-websocket-version"], "13");
    /// ```
    pub fn extended_connect_request(&self) -> Request<()> {
        let scheme = if self.secure { "https" } else { "http" };
        let authority = &self.request.headers()[header::HOST];
        let authority = String::from_utf8_lossy(authority.as_bytes());
        let uri = format!("{scheme}://{authority}{}", self.request.uri());
        let mut request = Request::new(());
        *request.method_mut() = http::Method::CONNECT;
        *request.version_mut() = http::Version::HTTP_2;
        *request.uri_mut() = uri.parse().expect("made of a valid authority and path");
        let mut headers = self.request.headers().clone();
        for name in [header::HOST, header::UPGRADE, header::CONNECTION, header::SEC_WEBSOCKET_KEY] {
            headers.remove(name);
        }
        *request.headers_mut() = headers;
        request
    }

    /// The host to connect to (IPv6 addresses in brackets, as in the URL).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port to connect to (80 or 443 unless the URL names one).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the URL is `wss://`: the connection must use TLS.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// Parses and checks the server's response from the start of `buf`. `Ok(None)`: the head is
    /// not complete yet. On success, [`Parsed::len`] is where the head ends: bytes after it are
    /// frames.
    pub fn read_response(
        &self,
        buf: &[u8],
        limits: &Limits,
    ) -> Result<Option<Parsed<Accepted>>, HandshakeError> {
        let Some(parsed) = super::parse_response(buf, limits)? else {
            return Ok(None);
        };
        let rest = &buf[parsed.len..];
        let body = Bytes::copy_from_slice(&rest[..rest.len().min(BODY_PREFIX)]);
        let negotiated = self.verify(&parsed.value, body)?;
        Ok(Some(Parsed { value: Accepted { response: parsed.value, negotiated }, len: parsed.len }))
    }

    /// Checks a parsed response against RFC 6455 §4.1 (items 1-6 of "the client MUST ...").
    /// `body` is what arrived after the head, kept in the error if the status is not 101.
    /// A response over HTTP/2 answers an [extended CONNECT](Self::extended_connect_request)
    /// (RFC 8441 §5): a 2xx status, no `Upgrade`/`Connection`/`Sec-WebSocket-Accept`.
    pub fn verify(
        &self,
        response: &Response<()>,
        body: Bytes,
    ) -> Result<Negotiated, HandshakeError> {
        let headers = response.headers();
        let h2 = response.version() == http::Version::HTTP_2;
        let accepted = if h2 {
            response.status().is_success()
        } else {
            response.status() == StatusCode::SWITCHING_PROTOCOLS
        };
        if !accepted {
            return Err(HandshakeError::Status {
                status: response.status(),
                headers: Box::new(headers.clone()),
                body,
            });
        }
        let bad = |why: &str| HandshakeError::InvalidResponse(why.to_string());
        if !h2 {
            if !has_token(headers, &header::UPGRADE, "websocket") {
                return Err(bad("Upgrade header must be 'websocket'"));
            }
            if !has_token(headers, &header::CONNECTION, "upgrade") {
                return Err(bad("Connection header must contain 'Upgrade'"));
            }
            let mut accepts = headers.get_all(header::SEC_WEBSOCKET_ACCEPT).iter();
            match (accepts.next(), accepts.next()) {
                (Some(v), None) if v.as_bytes() == self.accept.as_bytes() => {}
                (None, _) => return Err(bad("missing Sec-WebSocket-Accept header")),
                (Some(_), Some(_)) => return Err(bad("Sec-WebSocket-Accept header repeated")),
                (Some(_), None) => return Err(HandshakeError::AcceptMismatch),
            }
        }
        let mut extensions = Vec::new();
        let mut deflate = None;
        for value in headers.get_all(header::SEC_WEBSOCKET_EXTENSIONS) {
            let value = value.to_str().map_err(|_| bad("Sec-WebSocket-Extensions not ASCII"))?;
            if value.trim().is_empty() {
                continue; // an empty list accepts nothing (RFC 9110 §5.6.1)
            }
            let list = Extension::parse_list(value)
                .map_err(|why| bad(&format!("Sec-WebSocket-Extensions: {why}")))?;
            for ext in list {
                if !self.extensions.iter().any(|offered| offered == ext.name()) {
                    return Err(bad(&format!("extension {} was not offered", ext.name())));
                }
                if extensions.iter().any(|e: &Extension| e.name() == ext.name()) {
                    return Err(bad(&format!("extension {} accepted twice", ext.name())));
                }
                if ext.name() == crate::deflate::NAME {
                    let config = self
                        .deflate
                        .as_ref()
                        .ok_or_else(|| bad("permessage-deflate was accepted but not offered"))?;
                    let params = config
                        .verify(&ext)
                        .map_err(|why| bad(&format!("permessage-deflate response: {why}")))?;
                    deflate = Some(params);
                }
                extensions.push(ext);
            }
        }
        let mut protocols = headers.get_all(header::SEC_WEBSOCKET_PROTOCOL).iter();
        let subprotocol = match (protocols.next(), protocols.next()) {
            (None, _) => None,
            (Some(v), None) => {
                let p = v.to_str().map_err(|_| bad("Sec-WebSocket-Protocol not ASCII"))?;
                if !self.subprotocols.iter().any(|offered| offered == p) {
                    return Err(bad(&format!("subprotocol {p:?} was not offered")));
                }
                Some(p.to_string())
            }
            (Some(_), Some(_)) => return Err(bad("Sec-WebSocket-Protocol header repeated")),
        };
        Ok(Negotiated {
            subprotocol,
            extensions: extensions.iter().map(ToString::to_string).collect(),
            deflate,
        })
    }
}
