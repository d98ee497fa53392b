//! The client: [`Connector`] resolves, connects (directly or through a proxy), adds TLS for
//! `wss://`, and runs the opening handshake.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use http::Response;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use wsx_proto::{head_complete, ClientHandshake, ClientRequest, Key, Role};

use crate::config::Config;
use crate::error::{Error, Timeout};
use crate::proxy::Proxy;
use crate::stream::ClientStream;
use crate::websocket::WebSocket;

/// A callback that sees each opening request before it is sent.
type RequestHook = Arc<dyn Fn(&http::Request<()>) + Send + Sync>;

/// Where the connector's proxy comes from.
#[derive(Debug, Clone)]
enum ProxyMode {
    /// `https_proxy`, `http_proxy`, `all_proxy`, `no_proxy`, as curl reads them.
    Env,
    Fixed(Proxy),
    None,
}

/// Connects WebSocket clients; configured once, used for many connections.
///
/// It keeps RFC 6455 §4.1's rule: at most one connection per host and port is in the
/// CONNECTING state; further connects to the same place wait until it is open or has failed.
///
/// ```no_run
/// # async fn run() -> Result<(), wsx::Error> {
/// let connector = wsx::Connector::new()
///     .subprotocols(["chat", "superchat"])
///     .origin("http://example.com")
///     .header("Cookie", "session=1");
/// let (ws, response) = connector.connect("ws://127.0.0.1:8080/chat/lobby").await?;
/// println!("{:?} {:?}", response.status(), ws.subprotocol());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Connector {
    config: Config,
    origin: Option<String>,
    subprotocols: Vec<String>,
    headers: Vec<(String, String)>,
    proxy: ProxyMode,
    #[cfg(feature = "rustls")]
    tls: Option<Arc<rustls::ClientConfig>>,
    /// One lock per host and port, held while a connection there is CONNECTING.
    connecting: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    inspect: Option<RequestHook>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("config", &self.config)
            .field("origin", &self.origin)
            .field("subprotocols", &self.subprotocols)
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

impl Default for Connector {
    fn default() -> Self {
        Self::new()
    }
}

impl Connector {
    /// A connector with default configuration, proxies from the environment, and (for
    /// `wss://`) [`tls::client_config`](crate::tls::client_config)`(None)`.
    pub fn new() -> Self {
        Self {
            config: Config::default(),
            origin: None,
            subprotocols: Vec::new(),
            headers: Vec::new(),
            proxy: ProxyMode::Env,
            #[cfg(feature = "rustls")]
            tls: None,
            connecting: Arc::default(),
            inspect: None,
        }
    }

    /// Calls `hook` with each opening request just before it is sent (to log the handshake).
    pub fn inspect_request(
        mut self,
        hook: impl Fn(&http::Request<()>) + Send + Sync + 'static,
    ) -> Self {
        self.inspect = Some(Arc::new(hook));
        self
    }

    /// The configuration its connections get.
    #[cfg_attr(not(feature = "http2"), allow(dead_code))]
    pub(crate) fn config_ref(&self) -> &Config {
        &self.config
    }

    /// Limits and timeouts.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Offer subprotocols, in order of preference.
    pub fn subprotocols<S: Into<String>>(mut self, protocols: impl IntoIterator<Item = S>) -> Self {
        self.subprotocols.extend(protocols.into_iter().map(Into::into));
        self
    }

    /// Send an `Origin` header.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// Send an extra header with the request.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Connect through this proxy, whatever the environment says.
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.proxy = ProxyMode::Fixed(proxy);
        self
    }

    /// Connect directly, whatever the environment says.
    pub fn no_proxy(mut self) -> Self {
        self.proxy = ProxyMode::None;
        self
    }

    /// The TLS configuration for `wss://` (for example from
    /// [`tls::client_config`](crate::tls::client_config) with an extra CA file).
    #[cfg(feature = "rustls")]
    pub fn tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Connects to `url` (`ws://` or `wss://`) and runs the opening handshake. Returns the
    /// WebSocket and the server's `101` response.
    pub async fn connect(
        &self,
        url: &str,
    ) -> Result<(WebSocket<ClientStream>, Response<()>), Error> {
        let handshake = self.handshake(url)?;
        self.with_stream(&handshake, false, |stream| self.run_handshake(stream, &handshake)).await
    }

    /// Connects to the server of `handshake` (TCP, through the proxy if any, TLS for `wss://`,
    /// offering only HTTP/2 by ALPN when `h2`) and runs `then` on the stream, holding the
    /// host's CONNECTING lock all along.
    pub(crate) async fn with_stream<T, F, Fut>(
        &self,
        handshake: &ClientHandshake,
        h2: bool,
        then: F,
    ) -> Result<T, Error>
    where
        F: FnOnce(ClientStream) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let host = unbracket(handshake.host()).to_string();
        let port = handshake.port();
        let proxy = match &self.proxy {
            ProxyMode::Env => Proxy::from_env(handshake.is_secure(), &host)?,
            ProxyMode::Fixed(p) => Some(p.clone()),
            ProxyMode::None => None,
        };
        let timeout = self.config.connect_timeout;
        let expired = |_| Error::Timeout(Timeout::Connect);

        // RFC 6455 §4.1: one CONNECTING connection per remote host and port, "even if the
        // remote host is known by another name": direct connections are keyed by address.
        let (addrs, key) = match &proxy {
            Some(_) => (Vec::new(), format!("{}:{port}", host.to_ascii_lowercase())),
            None => {
                let addrs = tokio::time::timeout(timeout, resolve(&host, port))
                    .await
                    .map_err(expired)??;
                let key = addrs[0].to_string();
                (addrs, key)
            }
        };
        let lock = self.connecting_lock(&key);
        let guard = lock.lock().await;
        let result = async {
            let tcp = tokio::time::timeout(timeout, async {
                match &proxy {
                    Some(proxy) => {
                        let (phost, pport) = proxy.addr();
                        let failed = |e: Error| Error::Proxy {
                            proxy: proxy.to_string(),
                            reason: e.to_string(),
                        };
                        let addrs = resolve(&phost, pport).await.map_err(failed)?;
                        let mut tcp =
                            tcp_connect(&addrs, &proxy.to_string()).await.map_err(failed)?;
                        proxy.tunnel(&mut tcp, &host, port).await?;
                        Ok::<_, Error>(tcp)
                    }
                    None => tcp_connect(&addrs, &format!("{host}:{port}")).await,
                }
            })
            .await
            .map_err(expired)??;
            // Small frames should not wait for Nagle's algorithm.
            tcp.set_nodelay(true)?;
            let stream = self.secure(tcp, handshake, &host, h2).await?;
            then(stream).await
        }
        .await;
        drop(guard);
        self.release(&key, lock);
        result
    }

    /// Runs the opening handshake for `url` over a stream that is already connected (and
    /// secured, for `wss://`).
    pub async fn connect_on<S>(
        &self,
        stream: S,
        url: &str,
    ) -> Result<(WebSocket<S>, Response<()>), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let handshake = self.handshake(url)?;
        self.run_handshake(stream, &handshake).await
    }

    pub(crate) fn handshake(&self, url: &str) -> Result<ClientHandshake, Error> {
        let mut request = ClientRequest::new(url)
            .subprotocols(self.subprotocols.iter().cloned())
            .deflate(self.config.deflate);
        if let Some(origin) = &self.origin {
            request = request.origin(origin.clone());
        }
        for (name, value) in &self.headers {
            request = request.header(name.clone(), value.clone());
        }
        Ok(request.build(Key::random())?)
    }

    #[cfg(feature = "rustls")]
    async fn secure(
        &self,
        tcp: TcpStream,
        handshake: &ClientHandshake,
        host: &str,
        h2: bool,
    ) -> Result<ClientStream, Error> {
        if !handshake.is_secure() {
            return Ok(ClientStream::plain(tcp));
        }
        let mut config = match &self.tls {
            Some(config) => config.clone(),
            None => crate::tls::client_config(None)?,
        };
        if h2 {
            let mut with_alpn = (*config).clone();
            with_alpn.alpn_protocols = vec![b"h2".to_vec()];
            config = Arc::new(with_alpn);
        }
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| Error::Tls(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let tls = tokio::time::timeout(self.config.connect_timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| Error::Timeout(Timeout::Connect))?
            .map_err(Error::Tls)?;
        Ok(ClientStream::tls(tls))
    }

    #[cfg(not(feature = "rustls"))]
    async fn secure(
        &self,
        tcp: TcpStream,
        handshake: &ClientHandshake,
        _host: &str,
        _h2: bool,
    ) -> Result<ClientStream, Error> {
        if handshake.is_secure() {
            return Err(Error::Tls(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "wss:// needs the rustls feature",
            )));
        }
        Ok(ClientStream::plain(tcp))
    }

    async fn run_handshake<S>(
        &self,
        mut stream: S,
        handshake: &ClientHandshake,
    ) -> Result<(WebSocket<S>, Response<()>), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let limits = self.config.limits;
        if let Some(hook) = &self.inspect {
            hook(handshake.request());
        }
        let exchange = async {
            let mut buf = BytesMut::with_capacity(1024);
            handshake.write_request(&mut buf);
            stream.write_all(&buf).await?;
            stream.flush().await?;
            buf.clear();
            let mut scanned = 0;
            loop {
                if stream.read_buf(&mut buf).await? == 0 {
                    return Err(Error::Io(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the server closed the connection during the opening handshake",
                    )));
                }
                // Parsed once the blank line is here: linear work however the head is split.
                if !head_complete(&buf, &mut scanned) && buf.len() <= limits.head_size() {
                    continue;
                }
                if let Some(done) = handshake.read_response(&buf, &limits)? {
                    let leftover = buf.split_off(done.len);
                    return Ok((done.value, leftover));
                }
            }
        };
        let (accepted, leftover) = tokio::time::timeout(self.config.handshake_timeout, exchange)
            .await
            .map_err(|_| Error::Timeout(Timeout::Handshake))??;
        let ws = WebSocket::from_partially_read(
            stream,
            Role::Client,
            accepted.negotiated,
            self.config.clone(),
            &leftover,
        );
        Ok((ws, accepted.response))
    }

    fn connecting_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.connecting.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key.to_string()).or_default().clone()
    }

    /// Forgets the lock of `key` when no other connect holds or waits for it.
    fn release(&self, key: &str, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut map = self.connecting.lock().unwrap_or_else(|e| e.into_inner());
        if Arc::strong_count(&lock) == 2 {
            map.remove(key);
        }
    }
}

/// Connects to `url` with a default [`Connector`].
///
/// ```no_run
/// # async fn run() -> Result<(), wsx::Error> {
/// let (mut ws, _response) = wsx::connect("ws://127.0.0.1:8080/echo").await?;
/// ws.send(wsx::Message::text("hello")).await?;
/// # Ok(()) }
/// ```
pub async fn connect(url: &str) -> Result<(WebSocket<ClientStream>, Response<()>), Error> {
    Connector::new().connect(url).await
}

fn unbracket(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Error> {
    let target = format!("{host}:{port}");
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| Error::Connect { target: target.clone(), source })?
        .collect();
    if addrs.is_empty() {
        let source = std::io::Error::new(std::io::ErrorKind::NotFound, "no address found");
        return Err(Error::Connect { target, source });
    }
    Ok(addrs)
}

/// Tries each address in turn; the last error names the target.
async fn tcp_connect(addrs: &[SocketAddr], target: &str) -> Result<TcpStream, Error> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = Some(e),
        }
    }
    let source = last.unwrap_or_else(|| std::io::Error::other("no address to connect to"));
    Err(Error::Connect { target: target.to_string(), source })
}
