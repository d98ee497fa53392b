//! hyper 1.x integration (feature `hyper`): upgrade a request that hyper (or axum) parsed, so one
//! port serves plain HTTP and WebSocket.

use std::future::Future;

use hyper_util::rt::TokioIo;
use wsx_proto::{Accept, HandshakeError, Role, Upgrade};

use crate::accept::{answer, answer_upgrade};
use crate::config::Config;
use crate::error::Error;
use crate::websocket::WebSocket;

/// Whether `request` asks for a WebSocket: an HTTP/1.1 upgrade (`Upgrade: websocket`), or with
/// the `http2` feature an HTTP/2 extended CONNECT with `:protocol websocket` (RFC 8441).
pub fn is_upgrade_request<B>(request: &http::Request<B>) -> bool {
    crate::accept::is_upgrade_request(request) || extended_connect(request).is_some()
}

/// The `:protocol` of an HTTP/2 extended CONNECT (RFC 8441); `None` for anything else.
fn extended_connect<B>(request: &http::Request<B>) -> Option<&str> {
    #[cfg(feature = "http2")]
    if request.method() == http::Method::CONNECT {
        return request.extensions().get::<hyper::ext::Protocol>().map(|p| p.as_str());
    }
    let _ = request;
    None
}

/// The WebSocket a hyper upgrade yields.
pub type HyperWebSocket = WebSocket<TokioIo<hyper::upgrade::Upgraded>>;

/// Checks `request` as an upgrade and lets `decide` answer it (the same decision step as
/// [`Acceptor`](crate::Acceptor)'s). On success, returns the `101`
/// response to give hyper and a future that resolves to the WebSocket once hyper has sent the
/// response (spawn it). On failure, answer with
/// [`HandshakeError::to_response`].
///
/// With the `http2` feature, an HTTP/2 extended CONNECT (RFC 8441: a hyper HTTP/2 server built
/// with `enable_connect_protocol()`) is checked by [`Upgrade::from_connect`] and answered
/// `200`; the WebSocket then runs on that one stream, the connection's other streams going on
/// beside it.
///
/// ```no_run
/// use http_body_util::Full;
/// use bytes::Bytes;
/// async fn handle(mut req: http::Request<hyper::body::Incoming>)
///     -> Result<http::Response<Full<Bytes>>, std::convert::Infallible> {
///     if !wsx::hyper::is_upgrade_request(&req) {
///         return Ok(http::Response::new(Full::from("hello over plain HTTP\n")));
///     }
///     match wsx::hyper::upgrade(&mut req, wsx::Config::default(), |_, _| Ok(wsx::Accept::new())) {
///         Ok((response, websocket)) => {
///             tokio::spawn(async move {
///                 let Ok(mut ws) = websocket.await else { return };
///                 while let Some(Ok(m)) = ws.recv().await {
///                     if !m.is_control() && ws.send(m).await.is_err() { break }
///                 }
///             });
///             Ok(response)
///         }
///         Err(refusal) => {
///             let r = refusal.to_response().expect("request errors have a status");
///             Ok(r.map(Full::from))
///         }
///     }
/// }
/// ```
pub fn upgrade<B, R, F>(
    request: &mut http::Request<B>,
    config: Config,
    decide: F,
) -> Result<
    (http::Response<R>, impl Future<Output = Result<HyperWebSocket, Error>> + Send + 'static),
    HandshakeError,
>
where
    R: Default,
    F: FnOnce(&http::Request<()>, &Upgrade) -> Result<Accept, HandshakeError>,
{
    // The head is lent to the checks and the decision, not copied: the headers move over and
    // back (one handshake, not one header map, per connection).
    let mut head = http::Request::new(());
    *head.method_mut() = request.method().clone();
    *head.uri_mut() = request.uri().clone();
    *head.version_mut() = request.version();
    *head.headers_mut() = std::mem::take(request.headers_mut());
    let answered = match extended_connect(request) {
        Some(protocol) => Upgrade::from_connect(&head, Some(protocol))
            .and_then(|u| answer(u, &head, &config, decide)),
        None => answer_upgrade(&head, &config, decide),
    };
    *request.headers_mut() = std::mem::take(head.headers_mut());
    let (response, negotiated) = answered?.into_parts();
    let on_upgrade = hyper::upgrade::on(request);
    let websocket = async move {
        let upgraded = on_upgrade.await.map_err(|e| Error::Io(std::io::Error::other(e)))?;
        Ok(WebSocket::from_raw(TokioIo::new(upgraded), Role::Server, negotiated, config))
    };
    let (parts, ()) = response.into_parts();
    Ok((http::Response::from_parts(parts, R::default()), websocket))
}
