//! The plain responses of `wsx serve` (text bodies, handshake refusals) and the header that
//! names the node that answered.

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Response, StatusCode};
use wsx::HandshakeError;

/// Which node answered (a constant: a header name made from a string is allocated each time).
pub(super) const X_WSX_NODE: HeaderName = HeaderName::from_static("x-wsx-node");

/// A response of `status` with `body` as `content_type`.
pub(super) fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Bytes> {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The response that refuses a handshake for `error`.
pub(super) fn refusal(error: &HandshakeError) -> Response<Bytes> {
    let response = error.to_response().unwrap_or_else(|| Response::new(error.to_string()));
    response.map(Bytes::from)
}

/// `response`, naming `node` as the node that answered.
pub(super) fn with_node<B>(mut response: Response<B>, node: &HeaderValue) -> Response<B> {
    response.headers_mut().insert(X_WSX_NODE, node.clone());
    response
}
