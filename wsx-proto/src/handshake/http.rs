//! HTTP/1.1 heads, bytes to `http` types and back (with `httparse`).
//!
//! Parsing is incremental in the simplest way: call again with more bytes until the head is
//! complete. [`Parsed::len`] says where the head ends, so bytes that followed it in the same
//! read (the first frames) are not lost. Heads are bounded by [`Limits`].

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};

use crate::config::Limits;
use crate::error::HandshakeError;

/// A value parsed from the start of a buffer, and how many bytes it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<T> {
    /// The value.
    pub value: T,
    /// The bytes it took; what follows belongs to the next layer.
    pub len: usize,
}

/// Whether `buf` holds a whole HTTP head (its blank line has arrived), looking only at the
/// bytes after `*scanned`, which it advances. A reader that calls it after every read, and
/// parses only once it is true (or `buf` is over the head limit, to be refused), does linear
/// work however the head is split: a peer that sends a maximum-size head one byte per read
/// does not make it parse the head again for every byte.
///
/// ```
/// use wsx_proto::head_complete;
/// let wire = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
/// let mut scanned = 0;
/// for end in 1..wire.len() {
///     assert!(!head_complete(&wire[..end], &mut scanned));
/// }
/// assert!(head_complete(wire, &mut scanned));
/// ```
pub fn head_complete(buf: &[u8], scanned: &mut usize) -> bool {
    // A blank line is "\n\n" or "\n\r\n" (bare LF is tolerated, as httparse does): look again
    // at the last two bytes seen, which may start one.
    let start = scanned.saturating_sub(2).min(buf.len());
    for i in start..buf.len() {
        if buf[i] == b'\n' {
            match buf.get(i + 1) {
                Some(b'\n') => return true,
                Some(b'\r') if buf.get(i + 2) == Some(&b'\n') => return true,
                _ => {}
            }
        }
    }
    *scanned = buf.len();
    false
}

/// Parses an HTTP/1.1 request head from the start of `buf`.
///
/// `Ok(None)` means the head is not complete yet: call again with more bytes (a reader that
/// gets them in many pieces asks [`head_complete`] first, so that it parses once).
///
/// ```
/// use wsx_proto::{parse_request, Limits};
/// let wire = b"GET /chat HTTP/1.1\r\nHost: example.com\r\n\r\n\x81\x80";
/// let parsed = parse_request(wire, &Limits::default()).unwrap().unwrap();
/// assert_eq!(parsed.value.uri(), "/chat");
/// assert_eq!(&wire[parsed.len..], b"\x81\x80"); // the first frame, handed on
/// assert!(parse_request(&wire[..10], &Limits::default()).unwrap().is_none());
/// ```
pub fn parse_request(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<Parsed<Request<()>>>, HandshakeError> {
    parse_request_with(buf, limits, Bytes::copy_from_slice)
}

/// Like [`parse_request`], but the request's target and header values share `buf`'s memory
/// instead of being copied: no allocation per header. For a server that reads the head into
/// a buffer it can freeze.
///
/// ```
/// use bytes::Bytes;
/// use wsx_proto::{parse_request_shared, Limits};
/// let wire = Bytes::from_static(b"GET /chat HTTP/1.1\r\nHost: example.com\r\n\r\n");
/// let parsed = parse_request_shared(&wire, &Limits::default()).unwrap().unwrap();
/// assert_eq!(parsed.value.headers()["host"], "example.com");
/// assert_eq!(parsed.len, wire.len());
/// ```
pub fn parse_request_shared(
    buf: &Bytes,
    limits: &Limits,
) -> Result<Option<Parsed<Request<()>>>, HandshakeError> {
    parse_request_with(buf, limits, |part| buf.slice_ref(part))
}

/// `share` makes the `Bytes` of a part of `buf`: a copy, or a slice of the same memory.
fn parse_request_with(
    buf: &[u8],
    limits: &Limits,
    share: impl Fn(&[u8]) -> Bytes,
) -> Result<Option<Parsed<Request<()>>>, HandshakeError> {
    let (mut stack, mut heap) = ([httparse::EMPTY_HEADER; STACK_HEADERS], Vec::new());
    let mut req = httparse::Request::new(header_slots(limits, &mut stack, &mut heap));
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > limits.head_size() => {
            return Err(HandshakeError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::HeadTooLarge),
        Err(e) => return Err(HandshakeError::MalformedRequest(e.to_string())),
    };
    if len > limits.head_size() {
        return Err(HandshakeError::HeadTooLarge);
    }
    let bad = HandshakeError::MalformedRequest;
    let method = req.method.unwrap_or_default();
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| bad("invalid method".into()))?;
    let target = req.path.unwrap_or_default();
    let uri = Uri::from_maybe_shared(share(target.as_bytes()))
        .map_err(|_| bad(format!("invalid request target {target:?}")))?;
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version(req.version).map_err(bad)?;
    *request.headers_mut() = http::HeaderMap::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let (name, value) = header(h, &share).map_err(bad)?;
        request.headers_mut().append(name, value);
    }
    Ok(Some(Parsed { value: request, len }))
}

/// Parses an HTTP/1.1 response head from the start of `buf`; `Ok(None)` when incomplete.
///
/// ```
/// use wsx_proto::{parse_response, Limits};
/// let wire = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
/// let parsed = parse_response(wire, &Limits::default()).unwrap().unwrap();
/// assert_eq!(parsed.value.status(), 101);
/// assert_eq!(parsed.len, wire.len());
/// ```
pub fn parse_response(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<Parsed<Response<()>>>, HandshakeError> {
    let (mut stack, mut heap) = ([httparse::EMPTY_HEADER; STACK_HEADERS], Vec::new());
    let mut res = httparse::Response::new(header_slots(limits, &mut stack, &mut heap));
    let bad = HandshakeError::InvalidResponse;
    let len = match res.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > limits.head_size() => {
            return Err(bad(format!("response head over {} bytes", limits.head_size())))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(bad(e.to_string())),
    };
    if len > limits.head_size() {
        return Err(bad(format!("response head over {} bytes", limits.head_size())));
    }
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::from_u16(res.code.unwrap_or_default())
        .map_err(|_| bad("invalid status code".into()))?;
    *response.version_mut() = version(res.version).map_err(bad)?;
    *response.headers_mut() = http::HeaderMap::with_capacity(res.headers.len());
    for h in res.headers.iter() {
        let (name, value) = header(h, Bytes::copy_from_slice).map_err(bad)?;
        response.headers_mut().append(name, value);
    }
    Ok(Some(Parsed { value: response, len }))
}

/// Header slots kept on the stack for parsing; a higher limit takes them from the heap.
const STACK_HEADERS: usize = 64;

/// `limits.headers()` slots for httparse: on the stack up to [`STACK_HEADERS`], which spares
/// every handshake an allocation.
fn header_slots<'a, 'b>(
    limits: &Limits,
    stack: &'a mut [httparse::Header<'b>; STACK_HEADERS],
    heap: &'a mut Vec<httparse::Header<'b>>,
) -> &'a mut [httparse::Header<'b>] {
    let n = limits.headers();
    if n <= STACK_HEADERS {
        return &mut stack[..n];
    }
    heap.resize(n, httparse::EMPTY_HEADER);
    heap
}

fn version(minor: Option<u8>) -> Result<Version, String> {
    match minor {
        Some(1) => Ok(Version::HTTP_11),
        Some(0) => Ok(Version::HTTP_10),
        _ => Err("unsupported HTTP version".into()),
    }
}

fn header(
    h: &httparse::Header<'_>,
    share: impl Fn(&[u8]) -> Bytes,
) -> Result<(HeaderName, HeaderValue), String> {
    let name = HeaderName::from_bytes(h.name.as_bytes())
        .map_err(|_| format!("invalid header name {:?}", h.name))?;
    let value = HeaderValue::from_maybe_shared(share(h.value))
        .map_err(|_| format!("invalid value in header {}", h.name))?;
    Ok((name, value))
}

/// Writes a request head (request line, headers, empty line).
///
/// ```
/// use bytes::BytesMut;
/// let request = http::Request::get("/chat").header("Host", "example.com").body(()).unwrap();
/// let mut out = BytesMut::new();
/// wsx_proto::write_request(&request, &mut out);
/// assert_eq!(&out[..], b"GET /chat HTTP/1.1\r\nHost: example.com\r\n\r\n");
/// ```
pub fn write_request(request: &Request<()>, dst: &mut BytesMut) {
    dst.put_slice(request.method().as_str().as_bytes());
    dst.put_u8(b' ');
    match request.uri().path_and_query() {
        Some(pq) if request.uri().scheme().is_none() => dst.put_slice(pq.as_str().as_bytes()),
        _ => dst.put_slice(request.uri().to_string().as_bytes()),
    }
    dst.put_slice(b" HTTP/1.1\r\n");
    write_headers(request.headers(), dst);
    dst.put_slice(b"\r\n");
}

/// Writes a response head (status line, headers, empty line), e.g. the `101` of
/// [`Upgrade::respond`](crate::Upgrade::respond).
///
/// ```
/// use bytes::BytesMut;
/// let response = http::Response::builder().status(101).header("Upgrade", "websocket").body(()).unwrap();
/// let mut out = BytesMut::new();
/// wsx_proto::write_response(&response, &mut out);
/// assert_eq!(&out[..], &b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"[..]);
/// ```
pub fn write_response(response: &Response<()>, dst: &mut BytesMut) {
    write_status_and_headers(response.status(), response.headers(), dst);
    dst.put_slice(b"\r\n");
}

/// Writes a response with a body, such as a refusal from
/// [`HandshakeError::to_response`]; a `Content-Length` header is added if missing.
///
/// ```
/// use bytes::BytesMut;
/// let response = http::Response::builder().status(403).body("origin not allowed\n").unwrap();
/// let mut out = BytesMut::new();
/// wsx_proto::write_response_with_body(&response, &mut out);
/// assert_eq!(&out[..], &b"HTTP/1.1 403 Forbidden\r\nContent-Length: 19\r\n\r\norigin not allowed\n"[..]);
/// ```
pub fn write_response_with_body<B: AsRef<[u8]>>(response: &Response<B>, dst: &mut BytesMut) {
    write_status_and_headers(response.status(), response.headers(), dst);
    let body = response.body().as_ref();
    if !response.headers().contains_key(http::header::CONTENT_LENGTH) {
        dst.put_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    dst.put_slice(b"\r\n");
    dst.put_slice(body);
}

fn write_status_and_headers(status: StatusCode, headers: &http::HeaderMap, dst: &mut BytesMut) {
    dst.put_slice(b"HTTP/1.1 ");
    dst.put_slice(status.as_str().as_bytes());
    dst.put_u8(b' ');
    dst.put_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    dst.put_slice(b"\r\n");
    write_headers(headers, dst);
}

fn write_headers(headers: &http::HeaderMap, dst: &mut BytesMut) {
    for (name, value) in headers {
        write_name(name.as_str(), dst);
        dst.put_slice(b": ");
        dst.put_slice(value.as_bytes());
        dst.put_slice(b"\r\n");
    }
}

/// Header names are case-insensitive, but some peers are not: write them as the RFCs spell
/// them (`Sec-WebSocket-Key`, `Upgrade`), not in the `http` crate's lowercase.
fn write_name(name: &str, dst: &mut BytesMut) {
    let rest = match name.strip_prefix("sec-websocket-") {
        Some(rest) => {
            dst.put_slice(b"Sec-WebSocket-");
            rest
        }
        None => name,
    };
    let mut upper = true;
    for b in rest.bytes() {
        dst.put_u8(if upper { b.to_ascii_uppercase() } else { b });
        upper = b == b'-';
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_parse_equals_a_copying_one_without_copies() {
        let wire = Bytes::from_static(
            b"GET /chat?room=1 HTTP/1.1\r\nHost: h\r\nX-One: a\r\nX-One: b\r\n\r\nrest",
        );
        let copied = parse_request(&wire, &Limits::default()).unwrap().unwrap();
        let shared = parse_request_shared(&wire, &Limits::default()).unwrap().unwrap();
        assert_eq!(shared.len, copied.len);
        assert_eq!(&wire[shared.len..], b"rest");
        assert_eq!(shared.value.uri(), copied.value.uri());
        assert_eq!(shared.value.headers(), copied.value.headers());
        let within = |p: *const u8| wire.as_ptr_range().contains(&p);
        for value in shared.value.headers().values() {
            assert!(within(value.as_bytes().as_ptr()), "{value:?} was copied");
        }
        for value in copied.value.headers().values() {
            assert!(!within(value.as_bytes().as_ptr()));
        }
        // Incomplete and malformed heads answer the same.
        let cut = wire.slice(..20);
        assert!(parse_request_shared(&cut, &Limits::default()).unwrap().is_none());
        let bad = Bytes::from_static(b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n");
        assert_eq!(
            parse_request_shared(&bad, &Limits::default()).unwrap_err().to_string(),
            parse_request(&bad, &Limits::default()).unwrap_err().to_string()
        );
    }

    #[test]
    fn head_limits_give_431() {
        let limits = Limits::default().max_head_size(64).max_headers(2);
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(100));
        assert_eq!(
            parse_request(long.as_bytes(), &limits).unwrap_err(),
            HandshakeError::HeadTooLarge
        );
        // still incomplete but already too long
        assert_eq!(
            parse_request(&long.as_bytes()[..70], &limits).unwrap_err(),
            HandshakeError::HeadTooLarge
        );
        let many = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert_eq!(
            parse_request(many.as_bytes(), &limits).unwrap_err(),
            HandshakeError::HeadTooLarge
        );
        assert_eq!(
            HandshakeError::HeadTooLarge.status(),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
    }

    #[test]
    fn malformed_requests_are_400() {
        for wire in [
            &b"GET / HTTP/1.1\r\nHost : x\r\n\r\n"[..], // space before the colon (RFC 9112 §5.1)
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET\x01 / HTTP/1.1\r\n\r\n",
        ] {
            let err = parse_request(wire, &Limits::default()).unwrap_err();
            assert_eq!(err.status(), Some(StatusCode::BAD_REQUEST), "{err}");
        }
    }

    #[test]
    fn absolute_form_target_is_kept() {
        let wire =
            b"GET ws://172.22.9.1:8301/x/websocket HTTP/1.1\r\nHost: 172.22.9.1:8301\r\n\r\n";
        let parsed = parse_request(wire, &Limits::default()).unwrap().unwrap();
        assert_eq!(parsed.value.uri().path(), "/x/websocket");
        assert_eq!(parsed.value.uri().host(), Some("172.22.9.1"));
    }

    #[test]
    fn every_split_parses_the_same() {
        let wire = b"GET /chat?room=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\r\nrest";
        let whole = parse_request(wire, &Limits::default()).unwrap().unwrap();
        for n in 0..wire.len() {
            match parse_request(&wire[..n], &Limits::default()).unwrap() {
                None => assert!(n < whole.len),
                Some(p) => {
                    assert_eq!(p.len, whole.len);
                    assert_eq!(p.value.uri(), whole.value.uri());
                    assert_eq!(p.value.headers(), whole.value.headers());
                }
            }
        }
    }
}
