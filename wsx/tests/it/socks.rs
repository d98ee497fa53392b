//! SOCKS5 proxies, against a real SOCKS5 server that is not ours: Debian's `microsocks`
//! (RFC 1928 with RFC 1929's username/password; it logs each target as the client named it),
//! started here as a child process on a free loopback port, with or without credentials, and
//! stopped by its process id. `.ci/run` installs it. Without it the tests say so and pass,
//! except under `CI=true`, where they fail.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;
use wsx::{Config, Error, Message, Proxy, Timeout};

use crate::util::*;

/// `microsocks`, from PATH or /usr/bin; `None` (the test is skipped) when missing outside CI.
fn microsocks_program() -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/usr/local/bin".into()])
        .map(|dir| dir.join("microsocks"))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "microsocks is not installed: .ci/run installs it (apt-get install microsocks)"
        );
        eprintln!("SKIPPED: microsocks is not installed (apt-get install microsocks)");
    }
    found
}

/// A running microsocks, killed (SIGKILL, by its pid) and reaped when dropped.
struct Socks {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Socks {
    /// Starts microsocks on a free loopback port; `credentials` (user, password) are required
    /// when given.
    async fn start(credentials: Option<(&str, &str)>) -> Option<Self> {
        let program = microsocks_program()?;
        for _ in 0..5 {
            let port =
                std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let log = std::env::temp_dir()
                .join(format!("wsx-test-microsocks-{}-{port}.log", std::process::id()));
            let mut command = Command::new(&program);
            command.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
            if let Some((user, password)) = credentials {
                command.args(["-u", user, "-P", password]);
            }
            let child = command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("microsocks starts");
            let mut socks = Self { child, port, log };
            if socks.wait_until_listening().await {
                return Some(socks);
            }
            // The port was taken in the meantime: another one.
        }
        panic!("microsocks did not start in 5 tries");
    }

    /// Whether it listens (false: it exited, as when its port is taken).
    async fn wait_until_listening(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return true;
            }
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            assert!(Instant::now() < deadline, "microsocks is not listening after 10 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn url(&self, scheme: &str, userinfo: &str) -> String {
        format!("{scheme}://{userinfo}127.0.0.1:{}", self.port)
    }

    /// What it logged: a line `client[N] IP: connected to TARGET:PORT` per tunnel, with the
    /// target as the client sent it (a name for socks5h, an address for socks5).
    fn log(&self) -> String {
        let mut text = String::new();
        std::fs::File::open(&self.log).unwrap().read_to_string(&mut text).unwrap();
        text
    }
}

impl Drop for Socks {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Whether `localhost` resolves to 127.0.0.1 first here (the echo servers listen there only).
async fn localhost_is_127_0_0_1() -> bool {
    let first = tokio::net::lookup_host(("localhost", 80)).await.ok().and_then(|mut a| a.next());
    let yes = first.is_some_and(|addr| addr.ip() == std::net::Ipv4Addr::LOCALHOST);
    if !yes {
        eprintln!("SKIPPED (in part): localhost does not resolve to 127.0.0.1 first here");
    }
    yes
}

/// A `wss://` echo server whose certificate names `localhost`; its port and the CA file.
async fn wss_localhost_echo() -> (u16, PathBuf) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (listener, addr) = listener().await;
    let ca = std::env::temp_dir().join(format!(
        "wsx-test-socks-ca-{}-{}.pem",
        std::process::id(),
        addr.port()
    ));
    std::fs::write(&ca, certified.cert.pem()).unwrap();
    let chain = vec![CertificateDer::from(certified.cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let acceptor = TlsAcceptor::from(wsx::tls::server_config_from(chain, key).unwrap());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                if let Ok(ws) = wsx::Acceptor::new().accept(tls).await {
                    echo_ws(ws).await;
                }
            });
        }
    });
    (addr.port(), ca)
}

async fn echo_through(proxy: Proxy, url: &str, tls: Option<Arc<rustls::ClientConfig>>) {
    let mut connector = wsx::Connector::new().proxy(proxy);
    if let Some(tls) = tls {
        connector = connector.tls(tls);
    }
    let (mut ws, _) = within("connect through SOCKS5", connector.connect(url)).await.unwrap();
    for message in [Message::text("through socks"), Message::binary(vec![7u8; 70_000])] {
        ws.send(message.clone()).await.unwrap();
        assert_eq!(within("echo", ws.recv()).await.unwrap().unwrap(), message);
    }
}

fn socks_reason(err: &Error) -> &str {
    match err {
        Error::Proxy { reason, .. } => reason,
        other => panic!("expected a proxy error, got {other}"),
    }
}

#[tokio::test]
async fn ws_through_socks5_without_auth() {
    let Some(socks) = Socks::start(None).await else { return };
    let url = echo_server(Config::default()).await;
    echo_through(Proxy::new(&socks.url("socks5", "")).unwrap(), &url, None).await;
    let target = url.trim_start_matches("ws://");
    assert!(socks.log().contains(&format!("connected to {target}")), "{}", socks.log());
}

#[tokio::test]
async fn ws_through_socks5_with_auth() {
    let Some(socks) = Socks::start(Some(("wsx user", "pa:ss@1"))).await else { return };
    let url = echo_server(Config::default()).await;
    let proxy = Proxy::new(&socks.url("socks5", "wsx%20user:pa%3Ass%401@")).unwrap();
    echo_through(proxy, &url, None).await;
}

#[tokio::test]
async fn wrong_or_missing_credentials_are_named() {
    let Some(socks) = Socks::start(Some(("user", "right"))).await else { return };
    let url = echo_server(Config::default()).await;
    let proxy = Proxy::new(&socks.url("socks5h", "user:wrong@")).unwrap();
    let err = wsx::Connector::new().proxy(proxy).connect(&url).await.unwrap_err();
    let reason = socks_reason(&err);
    assert!(reason.contains("rejected the user name or password"), "{reason}");
    assert!(err.to_string().starts_with(&format!("proxy 127.0.0.1:{}: SOCKS5", socks.port)));

    let proxy = Proxy::new(&socks.url("socks5h", "")).unwrap();
    let err = wsx::Connector::new().proxy(proxy).connect(&url).await.unwrap_err();
    let reason = socks_reason(&err);
    assert!(reason.contains("requires authentication (give credentials as socks5://"), "{reason}");
}

/// socks5h:// sends the name and the proxy resolves it; socks5:// resolves it here and sends
/// the address. microsocks logs which it was given.
#[tokio::test]
async fn socks5h_resolves_at_the_proxy_and_socks5_here() {
    let Some(socks) = Socks::start(Some(("u", "p"))).await else { return };
    if !localhost_is_127_0_0_1().await {
        return;
    }
    let url = echo_server(Config::default()).await;
    let port = url.rsplit(':').next().unwrap().to_string();
    let by_name = format!("ws://localhost:{port}/");
    echo_through(Proxy::new(&socks.url("socks5h", "u:p@")).unwrap(), &by_name, None).await;
    assert!(socks.log().contains(&format!("connected to localhost:{port}")), "{}", socks.log());
    assert!(!socks.log().contains(&format!("connected to 127.0.0.1:{port}")), "{}", socks.log());
    echo_through(Proxy::new(&socks.url("socks5", "u:p@")).unwrap(), &by_name, None).await;
    assert!(socks.log().contains(&format!("connected to 127.0.0.1:{port}")), "{}", socks.log());
}

/// TLS runs end to end through the tunnel: the certificate names `localhost`, the name the
/// proxy resolved; and by address, with the certificate of `tls.rs`.
#[tokio::test]
async fn wss_through_socks5h() {
    let Some(socks) = Socks::start(Some(("u", "p"))).await else { return };
    let proxy = || Proxy::new(&socks.url("socks5h", "u:p@")).unwrap();
    if localhost_is_127_0_0_1().await {
        let (port, ca) = wss_localhost_echo().await;
        let tls = wsx::tls::client_config(Some(&ca)).unwrap();
        echo_through(proxy(), &format!("wss://localhost:{port}/echo"), Some(tls)).await;
        assert!(socks.log().contains(&format!("connected to localhost:{port}")), "{}", socks.log());
        let _ = std::fs::remove_file(ca);
    }
    let (url, ca) = crate::tls::wss_echo_server(Config::default()).await;
    let tls = wsx::tls::client_config(Some(&ca)).unwrap();
    echo_through(proxy(), &url, Some(tls)).await;
    let _ = std::fs::remove_file(ca);
}

/// What `ALL_PROXY=socks5h://...` gives (`Proxy::from_vars`, unit-tested equal to
/// `Proxy::new` of the same URL) reaches the server.
#[tokio::test]
async fn all_proxy_url_with_socks5h() {
    let Some(socks) = Socks::start(None).await else { return };
    let (url, ca) = crate::tls::wss_echo_server(Config::default()).await;
    let tls = wsx::tls::client_config(Some(&ca)).unwrap();
    echo_through(Proxy::new(&socks.url("socks5h", "")).unwrap(), &url, Some(tls)).await;
    let _ = std::fs::remove_file(ca);
}

/// The proxy's refusal (here: nothing listens at the target) is worded from RFC 1928's code.
#[tokio::test]
async fn refused_target_is_named() {
    let Some(socks) = Socks::start(None).await else { return };
    let closed = listener().await.1; // dropped: nothing listens there now
    let proxy = Proxy::new(&socks.url("socks5", "")).unwrap();
    let err =
        wsx::Connector::new().proxy(proxy).connect(&format!("ws://{closed}/")).await.unwrap_err();
    let reason = socks_reason(&err);
    assert!(
        reason.starts_with(&format!("SOCKS5 tunnel to {closed}: the proxy refused to connect")),
        "{reason}"
    );
    assert!(reason.contains("(reply "), "{reason}");
}

/// A proxy that accepts and never answers: the connect timeout applies to the handshake.
#[tokio::test]
async fn silent_socks_proxy_times_out() {
    let (silent, addr) = listener().await;
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = silent.accept().await {
            held.push(tcp);
        }
    });
    let proxy = Proxy::new(&format!("socks5h://{addr}")).unwrap();
    let config = Config::default().connect_timeout(Duration::from_millis(300));
    let connector = wsx::Connector::new().proxy(proxy).config(config);
    let err = within("timeout", connector.connect("ws://example.invalid/")).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(Timeout::Connect)), "{err}");
    hold.abort();
}
