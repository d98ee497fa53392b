//! The server's side of the opening handshake (RFC 6455 §4.2, and RFC 8441 over HTTP/2):
//! [`Upgrade`], a request proven to be a valid WebSocket upgrade, and [`Accept`], the
//! application's answer.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::header::{self, HeaderName};
use http::uri::Authority;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};

use super::{accept_digest, has_token, header_tokens, is_token, Extension, Negotiated};
use crate::error::{HandshakeError, UsageError};

/// A request that passed every check of RFC 6455 §4.2.1; only [`Upgrade::from_request`] makes
/// one, so holding an `Upgrade` proves the request is valid.
///
/// ```
/// use wsx_proto::{parse_request, Accept, Limits, Upgrade};
/// let wire = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///     Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
///     Sec-WebSocket-Version: 13\r\n\r\n";
/// let request = parse_request(wire, &Limits::default()).unwrap().unwrap().value;
/// let upgrade = Upgrade::from_request(&request).unwrap();
/// assert_eq!(upgrade.origin(), Some("http://example.com"));
/// let chosen = upgrade.choose_subprotocol(["superchat", "chat"]);
/// assert_eq!(chosen, Some("chat")); // the client's preference wins
/// let (response, negotiated) = upgrade.respond(Accept::new().subprotocol(chosen)).unwrap();
/// assert_eq!(response.status(), 101);
/// assert_eq!(response.headers()["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// assert_eq!(negotiated.subprotocol(), Some("chat"));
/// ```
#[derive(Debug, Clone)]
pub struct Upgrade {
    /// The Sec-WebSocket-Accept value (28 characters of base64); none over HTTP/2 (RFC 8441:
    /// no key, no accept).
    accept: Option<[u8; 28]>,
    host: Authority,
    origin: Option<String>,
    subprotocols: Vec<String>,
    extensions: Vec<Extension>,
}

impl Upgrade {
    /// Checks a request against RFC 6455 §4.2.1. A request without `Upgrade: websocket` is
    /// [`HandshakeError::NotUpgrade`]: plain HTTP, for the application to serve.
    pub fn from_request(request: &Request<()>) -> Result<Self, HandshakeError> {
        let headers = request.headers();
        if !has_token(headers, &header::UPGRADE, "websocket") {
            return Err(HandshakeError::NotUpgrade);
        }
        if request.method() != Method::GET {
            return Err(HandshakeError::MethodNotGet(request.method().to_string()));
        }
        if request.version() < Version::HTTP_11 {
            return Err(HandshakeError::HttpVersion);
        }
        let host = one(headers, &header::HOST, "Host")?;
        let host = host
            .to_str()
            .ok()
            .and_then(|h| h.parse::<Authority>().ok().filter(|a| a.as_str() == h))
            .ok_or_else(|| invalid("Host", "not a valid host[:port]"))?;
        version_13(headers)?;
        if headers.get(header::CONNECTION).is_none() {
            return Err(HandshakeError::MissingHeader("Connection"));
        }
        if !has_token(headers, &header::CONNECTION, "upgrade") {
            return Err(invalid("Connection", "must contain the token 'Upgrade'"));
        }
        let key = one(headers, &header::SEC_WEBSOCKET_KEY, "Sec-WebSocket-Key")?;
        // 24 characters of base64 decode to at most 18 bytes.
        let decoded = BASE64.decode_slice(key.as_bytes(), &mut [0; 18]);
        if key.len() != 24 || !matches!(decoded, Ok(16)) {
            return Err(invalid("Sec-WebSocket-Key", "must be 16 bytes in base64"));
        }
        let mut accept = [0; 28];
        let digest = accept_digest(key.as_bytes());
        BASE64.encode_slice(digest, &mut accept).expect("20 bytes are 28 characters of base64");
        let (origin, subprotocols, extensions) = offers(headers)?;
        Ok(Self { accept: Some(accept), host, origin, subprotocols, extensions })
    }

    /// Checks an HTTP/2 extended CONNECT (RFC 8441 §4, §5): a WebSocket on one stream of an
    /// HTTP/2 connection. `protocol` is the request's `:protocol` pseudo-header (hyper:
    /// `hyper::ext::Protocol`); the request's URI carries `:scheme`, `:authority` and `:path`.
    /// No `Sec-WebSocket-Key` is needed (a proxy may pass one along: it is ignored);
    /// `Sec-WebSocket-Version: 13`, Origin, subprotocols and extensions are checked as over
    /// HTTP/1.1. A CONNECT for another protocol is [`HandshakeError::NotUpgrade`]. The answer
    /// ([`Upgrade::respond`]) is a `200`.
    ///
    /// ```
    /// use wsx_proto::{Accept, Upgrade};
    /// let request = http::Request::connect("https://example.com/chat")
    ///     .version(http::Version::HTTP_2)
    ///     .header("sec-websocket-version", "13")
    ///     .header("sec-websocket-protocol", "chat")
    ///     .body(())
    ///     .unwrap();
    /// let upgrade = Upgrade::from_connect(&request, Some("websocket")).unwrap();
    /// assert_eq!(upgrade.host(), "example.com");
    /// let (response, negotiated) = upgrade.respond(Accept::new().subprotocol(Some("chat"))).unwrap();
    /// assert_eq!(response.status(), 200);
    /// assert!(response.headers().get("sec-websocket-accept").is_none());
    /// assert_eq!(negotiated.subprotocol(), Some("chat"));
    /// ```
    pub fn from_connect(
        request: &Request<()>,
        protocol: Option<&str>,
    ) -> Result<Self, HandshakeError> {
        if request.method() != Method::CONNECT
            || !protocol.is_some_and(|p| p.eq_ignore_ascii_case("websocket"))
        {
            return Err(HandshakeError::NotUpgrade);
        }
        if request.version() != Version::HTTP_2 {
            return Err(HandshakeError::HttpVersion);
        }
        let uri = request.uri();
        // RFC 8441 §4: an extended CONNECT carries :scheme and :path, unlike a plain CONNECT.
        if uri.scheme().is_none() {
            return Err(HandshakeError::MissingHeader(":scheme"));
        }
        if uri.path_and_query().is_none_or(|p| p.as_str().is_empty()) {
            return Err(HandshakeError::MissingHeader(":path"));
        }
        let host = uri.authority().cloned().ok_or(HandshakeError::MissingHeader(":authority"))?;
        let headers = request.headers();
        version_13(headers)?;
        let (origin, subprotocols, extensions) = offers(headers)?;
        Ok(Self { accept: None, host, origin, subprotocols, extensions })
    }

    /// Whether this upgrade came over HTTP/2 (RFC 8441): answered with `200`, not `101`.
    pub fn is_extended_connect(&self) -> bool {
        self.accept.is_none()
    }
}

/// Checks that `Sec-WebSocket-Version` is 13, the one version we speak (426 otherwise).
fn version_13(headers: &HeaderMap) -> Result<(), HandshakeError> {
    let versions = headers.get_all(header::SEC_WEBSOCKET_VERSION);
    let mut each = versions.iter();
    match (each.next(), each.next()) {
        (None, _) => return Err(HandshakeError::MissingHeader("Sec-WebSocket-Version")),
        (Some(v), None) if v == "13" => {}
        _ => {
            let joined = versions
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(HandshakeError::UnsupportedVersion(joined));
        }
    }
    Ok(())
}

/// What a request offers: its Origin, subprotocols and extensions.
type Offers = (Option<String>, Vec<String>, Vec<Extension>);

/// The Origin, subprotocols and extensions of a request's `headers`, checked.
fn offers(headers: &HeaderMap) -> Result<Offers, HandshakeError> {
    let mut origins = headers.get_all(header::ORIGIN).iter();
    let origin = match (origins.next(), origins.next()) {
        (None, _) => None,
        (Some(v), None) => {
            Some(v.to_str().map_err(|_| invalid("Origin", "not ASCII"))?.to_string())
        }
        (Some(_), Some(_)) => return Err(HandshakeError::DuplicateHeader("Origin")),
    };
    let mut subprotocols = Vec::new();
    for token in header_tokens(headers, &header::SEC_WEBSOCKET_PROTOCOL) {
        let token = std::str::from_utf8(token).ok().filter(|t| is_token(t));
        let token = token.ok_or_else(|| {
            invalid("Sec-WebSocket-Protocol", "must be a comma-separated list of tokens")
        })?;
        subprotocols.push(token.to_string());
    }
    let mut extensions = Vec::new();
    for value in headers.get_all(header::SEC_WEBSOCKET_EXTENSIONS) {
        let value = value.to_str().map_err(|_| invalid("Sec-WebSocket-Extensions", "not ASCII"))?;
        // An empty list (Python's websockets sends one when it offers nothing) is no
        // offer: RFC 9110 §5.6.1 asks recipients to ignore empty list elements.
        if value.trim().is_empty() {
            continue;
        }
        extensions.extend(
            Extension::parse_list(value)
                .map_err(|why| invalid("Sec-WebSocket-Extensions", &why))?,
        );
    }
    Ok((origin, subprotocols, extensions))
}

impl Upgrade {
    /// The `Host` header (over HTTP/2: `:authority`).
    pub fn host(&self) -> &str {
        self.host.as_str()
    }

    /// The `Origin` header, if sent (browsers always send it).
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// The subprotocols the client offered, in its order of preference.
    pub fn subprotocols(&self) -> &[String] {
        &self.subprotocols
    }

    /// The extensions the client offered, in its order of preference.
    pub fn extensions(&self) -> &[Extension] {
        &self.extensions
    }

    /// The first subprotocol in the client's list that the server supports.
    pub fn choose_subprotocol<'a>(
        &'a self,
        supported: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Option<&'a str> {
        self.subprotocols
            .iter()
            .map(String::as_str)
            .find(|offered| supported.clone().into_iter().any(|s| s == *offered))
    }

    /// Refuses the request because of its Origin: 403 (RFC 6455 §4.2.2 item 4).
    pub fn reject_origin(&self) -> HandshakeError {
        HandshakeError::OriginRejected(self.origin.clone().unwrap_or_default())
    }

    /// The `101 Switching Protocols` response (RFC 6455 §4.2.2 item 5; over HTTP/2, RFC 8441:
    /// `200`, without `Upgrade`, `Connection` and `Sec-WebSocket-Accept`) and what it agrees on.
    ///
    /// Fails if `accept` selects a subprotocol or an extension the client did not offer: the
    /// RFC lets a server pick only among offers.
    pub fn respond(&self, accept: Accept) -> Result<(Response<()>, Negotiated), UsageError> {
        if let Some(p) = &accept.subprotocol {
            if !self.subprotocols.contains(p) {
                return Err(UsageError::SubprotocolNotOffered(p.clone()));
            }
        }
        for ext in &accept.extensions {
            if !self.extensions.iter().any(|offer| offer.name() == ext.name()) {
                return Err(UsageError::ExtensionNotOffered(ext.name().to_string()));
            }
        }
        // permessage-deflate is negotiated here (RFC 7692 §5), not by the application.
        let deflate = accept.deflate.and_then(|config| config.accept(&self.extensions));
        let mut extensions = accept.extensions;
        extensions.retain(|e| e.name() != crate::deflate::NAME);
        if let Some((response, _)) = &deflate {
            extensions.insert(0, response.clone());
        }
        let mut response = Response::new(());
        let headers = response.headers_mut();
        // Sized once: the application's headers and at most five of ours.
        *headers = HeaderMap::with_capacity(accept.headers.len() + 5);
        headers.extend(accept.headers);
        let value = |s: &str| HeaderValue::from_str(s).expect("base64 and tokens are valid values");
        if let Some(accept_value) = &self.accept {
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let headers = response.headers_mut();
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            let accept_value =
                HeaderValue::from_bytes(accept_value).expect("base64 is a valid value");
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept_value);
        }
        let headers = response.headers_mut();
        if let Some(p) = &accept.subprotocol {
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value(p));
        }
        let extensions: Vec<String> = extensions.iter().map(ToString::to_string).collect();
        if !extensions.is_empty() {
            headers.insert(header::SEC_WEBSOCKET_EXTENSIONS, value(&extensions.join(", ")));
        }
        let deflate = deflate.map(|(_, params)| params);
        Ok((response, Negotiated { subprotocol: accept.subprotocol, extensions, deflate }))
    }
}

/// The application's answer to an [`Upgrade`]: the subprotocol, extensions and extra headers.
///
/// ```
/// use wsx_proto::Accept;
/// let accept = Accept::new()
///     .subprotocol(Some("chat"))
///     .header(http::header::SERVER, http::HeaderValue::from_static("wsx"));
/// # let _ = accept;
/// ```
#[derive(Debug, Clone, Default)]
pub struct Accept {
    subprotocol: Option<String>,
    extensions: Vec<Extension>,
    headers: HeaderMap,
    deflate: Option<crate::deflate::DeflateConfig>,
}

impl Accept {
    /// Accept with no subprotocol, no extension, no extra header.
    pub fn new() -> Self {
        Self::default()
    }

    /// Select a subprotocol (one the client offered), or none: then no header is sent.
    pub fn subprotocol(mut self, subprotocol: Option<&str>) -> Self {
        self.subprotocol = subprotocol.map(str::to_string);
        self
    }

    /// Accept permessage-deflate (RFC 7692) if the client offers it acceptably, on these terms.
    pub fn deflate(mut self, config: Option<crate::deflate::DeflateConfig>) -> Self {
        self.deflate = config;
        self
    }

    /// Whether permessage-deflate will be accepted when offered.
    pub fn deflate_config(&self) -> Option<&crate::deflate::DeflateConfig> {
        self.deflate.as_ref()
    }

    /// Accept an extension the client offered, with the parameters to answer with.
    pub fn extension(mut self, extension: Extension) -> Self {
        self.extensions.push(extension);
        self
    }

    /// Add a header to the response (e.g. `Set-Cookie`, `Server`).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }
}

fn invalid(name: &'static str, reason: &str) -> HandshakeError {
    HandshakeError::InvalidHeader { name, reason: reason.to_string() }
}

/// The one value of a header that must appear exactly once.
fn one<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
    display: &'static str,
) -> Result<&'a HeaderValue, HandshakeError> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => Ok(v),
        (None, _) => Err(HandshakeError::MissingHeader(display)),
        (Some(_), Some(_)) => Err(HandshakeError::DuplicateHeader(display)),
    }
}
