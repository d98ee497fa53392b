//! How a client of the binary reaches its server (`wsx connect`, `wsx bridge`): the library's
//! [`wsx::Connector`] configured from the command line, over TCP (with TLS and proxies, as the
//! library does it) or over a Unix domain socket (`--unix`), behind one trait, [`Dial`], so
//! that the callers are written once for both kinds of stream.

use std::future::Future;
use std::path::PathBuf;

use anyhow::{anyhow, Context as _};
use bytes::BytesMut;
use http::Response;
use tokio::io::{AsyncRead, AsyncWrite};
use wsx::{ClientStream, Config, Connector, Limits, WebSocket};

use crate::args::ClientArgs;

/// Opens WebSocket connections to a URL.
pub(crate) trait Dial: Send + Sync + 'static {
    /// What the connections run over.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Connects and runs the opening handshake; the WebSocket and the server's 101.
    fn dial(
        &self,
        url: &str,
    ) -> impl Future<Output = Result<(WebSocket<Self::Stream>, Response<()>), wsx::Error>> + Send;
}

impl Dial for Connector {
    type Stream = ClientStream;

    async fn dial(&self, url: &str) -> Result<(WebSocket<ClientStream>, Response<()>), wsx::Error> {
        self.connect(url).await
    }
}

/// A connector that reaches its server through a Unix domain socket (`--unix PATH`): the URL
/// only names the request's host and path.
pub(crate) struct Unix {
    connector: Connector,
    path: PathBuf,
}

#[cfg(unix)]
impl Dial for Unix {
    type Stream = tokio::net::UnixStream;

    async fn dial(&self, url: &str) -> Result<(WebSocket<Self::Stream>, Response<()>), wsx::Error> {
        let stream = tokio::net::UnixStream::connect(&self.path).await?;
        self.connector.connect_on(stream, url).await
    }
}

/// The connector of the command line's client options (`verbose`: print the request head on
/// stderr); through `args.unix` when given (ws:// only: there is no TLS over it).
pub(crate) fn connector(args: &ClientArgs, verbose: bool) -> anyhow::Result<Connector> {
    let config = Config::default()
        .limits(Limits::default().max_message_size(args.max_message_size))
        .keepalive(args.ping.filter(|d| !d.is_zero()))
        .deflate((!args.no_deflate).then(wsx::DeflateConfig::default));
    let mut connector =
        Connector::new().config(config).subprotocols(args.protocols.iter().cloned());
    if let Some(origin) = &args.origin {
        connector = connector.origin(origin.clone());
    }
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| anyhow!("header {header:?} must look like \"Name: value\""))?;
        connector = connector.header(name.trim(), value.trim());
    }
    if let Some(ca) = &args.cacert {
        connector =
            connector.tls(wsx::tls::client_config(Some(ca)).context("cannot use --cacert")?);
    }
    if verbose {
        connector = connector.inspect_request(|request| {
            let mut head = BytesMut::new();
            wsx::proto::write_request(request, &mut head);
            print_head("> ", &head);
        });
    }
    Ok(connector)
}

/// A connector that opens its WebSockets over HTTP/2 (`--http2`, RFC 8441): one HTTP/2
/// connection, made at the first dial and again when it is gone, carries them all.
pub(crate) struct Http2 {
    connector: Connector,
    connection: tokio::sync::Mutex<Option<wsx::Http2Connection>>,
}

/// What a WebSocket over HTTP/2 runs over: its stream of the connection.
type H2Stream = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;

impl Dial for Http2 {
    type Stream = H2Stream;

    async fn dial(&self, url: &str) -> Result<(WebSocket<H2Stream>, Response<()>), wsx::Error> {
        let h2 = {
            let mut connection = self.connection.lock().await;
            match connection.as_ref().filter(|c| !c.is_closed()) {
                Some(h2) => h2.clone(),
                None => connection.insert(self.connector.connect_http2(url).await?).clone(),
            }
        };
        h2.open(url).await
    }
}

/// The HTTP/2 dialer of `args` (`--http2`), if asked for.
pub(crate) fn http2(args: &ClientArgs, connector: Connector) -> Option<Http2> {
    args.http2.then(|| Http2 { connector, connection: tokio::sync::Mutex::new(None) })
}

/// The dialer of `args`: over `--unix PATH` when given (for `url`, which must be ws://), else TCP.
pub(crate) fn unix(
    args: &ClientArgs,
    connector: Connector,
    url: &str,
) -> anyhow::Result<Option<Unix>> {
    let Some(path) = args.unix.clone() else { return Ok(None) };
    if !url.starts_with("ws://") {
        anyhow::bail!("--unix: the URL must be ws:// (no TLS over a Unix socket), not {url}");
    }
    Ok(Some(Unix { connector, path }))
}

/// Prints an HTTP head line by line on stderr, each after `prefix`, as the seeds show a
/// handshake.
pub(crate) fn print_head(prefix: &str, head: &[u8]) {
    use std::io::Write as _;
    let text = String::from_utf8_lossy(head);
    let mut err = std::io::stderr().lock();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let _ = writeln!(err, "{prefix}{line}");
    }
    let _ = writeln!(err);
}
