//! The opening handshake (RFC 6455 §4): [`ClientHandshake`] for clients, [`Upgrade`] for servers,
//! and the HTTP/1.1 head codec they share.

mod client;
mod http;
mod server;

pub use self::client::{Accepted, ClientHandshake, ClientRequest};
pub use self::http::{
    head_complete, parse_request, parse_request_shared, parse_response, write_request,
    write_response, write_response_with_body, Parsed,
};
pub use self::server::{Accept, Upgrade};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

/// The GUID appended to the key before hashing (RFC 6455 §1.3).
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A `Sec-WebSocket-Key`: 16 random bytes, sent base64-encoded (RFC 6455 §4.1 item 7).
///
/// ```
/// use wsx_proto::Key;
/// let key = Key::from_bytes(*b"the sample nonce");
/// assert_eq!(key.to_string(), "dGhlIHNhbXBsZSBub25jZQ==");
/// assert_ne!(Key::random(), Key::random());
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Key([u8; 16]);

impl Key {
    /// A fresh key from the operating system's CSPRNG, as each connection needs.
    ///
    /// # Panics
    /// If the operating system has no random source (a broken platform, not a runtime condition).
    pub fn random() -> Self {
        let mut bytes = [0; 16];
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        Self(bytes)
    }

    /// A key from given bytes (for tests: keys must be random and fresh).
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The `Sec-WebSocket-Accept` value a server must answer this key with.
    pub fn sec_websocket_accept(&self) -> String {
        sec_websocket_accept(self.to_string().as_bytes())
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&BASE64.encode(self.0))
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({self})")
    }
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` value:
/// `base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))` (RFC 6455 §4.2.2).
///
/// ```
/// assert_eq!(wsx_proto::sec_websocket_accept(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn sec_websocket_accept(key: &[u8]) -> String {
    BASE64.encode(accept_digest(key))
}

/// The SHA-1 digest behind [`sec_websocket_accept`], before base64.
pub(crate) fn accept_digest(key: &[u8]) -> [u8; 20] {
    let mut sha1 = sha1_smol::Sha1::new();
    sha1.update(key);
    sha1.update(GUID.as_bytes());
    sha1.digest().bytes()
}

/// What the opening handshake agreed on; needed to create a [`Connection`](crate::Connection).
///
/// ```
/// let negotiated = wsx_proto::Negotiated::default();
/// assert_eq!(negotiated.subprotocol(), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Negotiated {
    pub(crate) subprotocol: Option<String>,
    pub(crate) extensions: Vec<String>,
    pub(crate) deflate: Option<crate::deflate::DeflateParams>,
}

impl Negotiated {
    /// The subprotocol the server selected, if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// The extensions in use, as the server's `Sec-WebSocket-Extensions` listed them.
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// The permessage-deflate parameters, if the extension was agreed on.
    pub fn deflate(&self) -> Option<&crate::deflate::DeflateParams> {
        self.deflate.as_ref()
    }
}

/// One extension in a `Sec-WebSocket-Extensions` header: a name and its parameters
/// (RFC 6455 §9.1).
///
/// ```
/// use wsx_proto::Extension;
/// let list = Extension::parse_list("permessage-deflate; client_max_window_bits, x-foo; a=\"1\"").unwrap();
/// assert_eq!(list[0].name(), "permessage-deflate");
/// assert_eq!(list[0].params(), &[("client_max_window_bits".to_string(), None)]);
/// assert_eq!(list[1].params(), &[("a".to_string(), Some("1".to_string()))]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    name: String,
    params: Vec<(String, Option<String>)>,
}

impl Extension {
    pub(crate) fn new(name: &str, params: Vec<(String, Option<String>)>) -> Self {
        Self { name: name.to_string(), params }
    }

    /// The extension's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its parameters in order, values unquoted.
    pub fn params(&self) -> &[(String, Option<String>)] {
        &self.params
    }

    /// Parses `extension-list = 1#extension`, `extension = token *( ";" token [ "=" (token |
    /// quoted-string) ] )`; the text says what is wrong.
    pub fn parse_list(value: &str) -> Result<Vec<Self>, String> {
        let mut out = Vec::new();
        for item in split_list(value, ',')? {
            let mut parts = split_list(item, ';')?.into_iter();
            let name = parts.next().unwrap_or_default();
            if !is_token(name) {
                return Err(format!("extension name {name:?} is not a token"));
            }
            let mut params = Vec::new();
            for param in parts {
                let (key, value) = match param.split_once('=') {
                    None => (param, None),
                    Some((k, v)) => (k.trim_end(), Some(unquote(v.trim_start())?)),
                };
                if !is_token(key) {
                    return Err(format!("parameter name {key:?} is not a token"));
                }
                if let Some(v) = &value {
                    if !is_token(v) {
                        return Err(format!("value {v:?} of parameter {key} is not a token"));
                    }
                }
                params.push((key.to_string(), value));
            }
            out.push(Self { name: name.to_string(), params });
        }
        if out.is_empty() {
            return Err("empty extension list".into());
        }
        Ok(out)
    }
}

impl std::fmt::Display for Extension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        for (k, v) in &self.params {
            match v {
                Some(v) => write!(f, "; {k}={v}")?,
                None => write!(f, "; {k}")?,
            }
        }
        Ok(())
    }
}

/// Splits on `sep` outside quoted strings, trimming optional whitespace and dropping empty
/// elements, as `#rule` lists allow (RFC 9110 §5.6.1).
fn split_list(value: &str, sep: char) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                out.push(value[start..i].trim_matches([' ', '\t']));
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return Err("unterminated quoted string".into());
    }
    out.push(value[start..].trim_matches([' ', '\t']));
    out.retain(|s| !s.is_empty());
    Ok(out)
}

fn unquote(v: &str) -> Result<String, String> {
    let Some(inner) = v.strip_prefix('"') else {
        return Ok(v.to_string());
    };
    let inner = inner.strip_suffix('"').ok_or_else(|| format!("bad quoted string {v:?}"))?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' { chars.next().ok_or("bad escape")? } else { c });
    }
    Ok(out)
}

/// `token = 1*tchar` (RFC 9110 §5.6.2).
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The comma-separated elements of every `name` header, trimmed.
pub(crate) fn header_tokens<'a>(
    headers: &'a ::http::HeaderMap,
    name: &::http::header::HeaderName,
) -> impl Iterator<Item = &'a [u8]> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty())
}

/// Whether any `name` header lists `token`, case-insensitively.
pub(crate) fn has_token(
    headers: &::http::HeaderMap,
    name: &::http::header::HeaderName,
    token: &str,
) -> bool {
    header_tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
}

#[cfg(test)]
mod tests;
