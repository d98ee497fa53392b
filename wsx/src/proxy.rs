//! Proxies for the client: HTTP `CONNECT` (RFC 9110 §9.3.6) and SOCKS5 (RFC 1928, with the
//! username/password authentication of RFC 1929). The client asks the proxy to open the TCP
//! connection, then speaks WebSocket (or TLS, end to end) through the tunnel.

use std::net::IpAddr;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::BytesMut;
use http::{StatusCode, Uri};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use wsx_proto::{head_complete, parse_response, Limits};

use crate::error::Error;

/// A proxy: an HTTP proxy reached with `CONNECT`, or a SOCKS5 proxy.
///
/// ```
/// let proxy = wsx::Proxy::new("http://user:secret@proxy.example:3128").unwrap();
/// assert_eq!(proxy.to_string(), "proxy.example:3128");
/// // SOCKS5: socks5h:// lets the proxy resolve the host name, socks5:// resolves it here.
/// let proxy = wsx::Proxy::new("socks5h://user:secret@proxy.example").unwrap();
/// assert_eq!(proxy.to_string(), "proxy.example:1080");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    host: String,
    port: u16,
    kind: Kind,
}

#[derive(Clone, PartialEq, Eq)]
enum Kind {
    /// HTTP `CONNECT`, with `Basic ...` for `Proxy-Authorization`.
    Http { auth: Option<String> },
    /// SOCKS5; `remote_dns` for `socks5h://` (the proxy resolves the host name).
    Socks5 { remote_dns: bool, auth: Option<socks5::Credentials> },
}

impl Kind {
    fn scheme(&self) -> &'static str {
        match self {
            Self::Http { .. } => "http",
            Self::Socks5 { remote_dns: false, .. } => "socks5",
            Self::Socks5 { remote_dns: true, .. } => "socks5h",
        }
    }

    fn has_auth(&self) -> bool {
        match self {
            Self::Http { auth } => auth.is_some(),
            Self::Socks5 { auth, .. } => auth.is_some(),
        }
    }
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the credentials.
        let (scheme, auth) = (self.kind.scheme(), self.kind.has_auth());
        write!(f, "Proxy({scheme}://{}:{}, auth: {auth})", self.host, self.port)
    }
}

impl std::fmt::Display for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl Proxy {
    /// A proxy from a URL: `http://host:3128` or `http://user:pass@host:3128` (`http://` is
    /// assumed when no scheme is given, as curl does), `socks5://[user:pass@]host:1080` (the
    /// host name of each connection is resolved here and the proxy is given its address), or
    /// `socks5h://[user:pass@]host:1080` (the proxy is given the host name and resolves it; an
    /// IP address is sent as an address either way).
    /// The port defaults to 1080. Credentials are percent-decoded; for SOCKS5 they are sent
    /// with RFC 1929's username/password method (a user name of 1 to 255 bytes, a password of
    /// at most 255). `https://` and `socks4://` proxies are refused.
    pub fn new(url: &str) -> Result<Self, Error> {
        let shown = without_userinfo(url);
        let bad = |why: &str| Error::Proxy { proxy: shown.clone(), reason: why.to_string() };
        let with_scheme =
            if url.contains("://") { url.to_string() } else { format!("http://{url}") };
        let uri: Uri = with_scheme.parse().map_err(|_| bad("not a valid proxy URL"))?;
        let scheme = match uri.scheme_str() {
            Some(scheme) => scheme.to_ascii_lowercase(),
            None => return Err(bad("not a valid proxy URL")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        let (userinfo, hostport) = match authority.as_str().rsplit_once('@') {
            Some((user, rest)) => (Some(user), rest),
            None => (None, authority.as_str()),
        };
        let kind = match scheme.as_str() {
            "http" => Kind::Http {
                auth: userinfo.map(|u| format!("Basic {}", BASE64.encode(percent_decode(u)))),
            },
            "socks5" | "socks5h" => Kind::Socks5 {
                remote_dns: scheme == "socks5h",
                auth: userinfo.map(socks5::Credentials::from_userinfo).transpose().map_err(bad)?,
            },
            "socks4" | "socks4a" => {
                return Err(bad(&format!(
                    "{scheme}:// proxies are not supported: use socks5:// or socks5h://"
                )))
            }
            other => {
                return Err(bad(&format!(
                    "{other}:// proxies are not supported, only http://, socks5:// and socks5h://"
                )))
            }
        };
        let host_uri: Uri =
            format!("http://{hostport}").parse().map_err(|_| bad("not a valid proxy host"))?;
        let host = host_uri.host().ok_or_else(|| bad("no host"))?.to_string();
        let port = host_uri.port_u16().unwrap_or(1080);
        Ok(Self { host, port, kind })
    }

    /// The proxy the environment names for a connection to `host` (curl's rules): none if
    /// `no_proxy`/`NO_PROXY` matches the host (`*`, a name, or a domain suffix); else for
    /// `wss://` `https_proxy`/`HTTPS_PROXY`, for `ws://` `http_proxy` (lowercase only, as curl),
    /// then `all_proxy`/`ALL_PROXY`. Each may hold any URL that [`Proxy::new`] takes, such as
    /// `socks5h://host:1080`.
    pub fn from_env(secure: bool, host: &str) -> Result<Option<Self>, Error> {
        Self::from_vars(|name| std::env::var(name).ok(), secure, host)
    }

    pub(crate) fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        secure: bool,
        host: &str,
    ) -> Result<Option<Self>, Error> {
        let get =
            |names: &[&str]| names.iter().filter_map(|n| var(n)).find(|v| !v.trim().is_empty());
        if let Some(no_proxy) = get(&["no_proxy", "NO_PROXY"]) {
            if no_proxy_matches(&no_proxy, host) {
                return Ok(None);
            }
        }
        let names: &[&str] = if secure {
            &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
        } else {
            &["http_proxy", "all_proxy", "ALL_PROXY"]
        };
        get(names).map(|url| Self::new(url.trim())).transpose()
    }

    /// The proxy's address, for `TcpStream::connect`.
    pub(crate) fn addr(&self) -> (String, u16) {
        (self.host.trim_start_matches('[').trim_end_matches(']').to_string(), self.port)
    }

    /// Opens a tunnel to `host:port` through an established connection to the proxy. `host` is
    /// a name or an IP address without brackets.
    pub(crate) async fn tunnel<S>(&self, io: &mut S, host: &str, port: u16) -> Result<(), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match &self.kind {
            Kind::Http { auth } => self.http_connect(io, auth.as_deref(), host, port).await,
            Kind::Socks5 { remote_dns, auth } => {
                let target = match host.parse::<IpAddr>() {
                    Ok(ip) => socks5::Target::Ip(ip),
                    Err(_) if *remote_dns => socks5::Target::Domain(host),
                    Err(_) => socks5::Target::Ip(resolve_one(host, port).await?),
                };
                socks5::handshake(io, auth.as_ref(), &target, port).await.map_err(|e| {
                    let shown = if host.contains(':') { format!("[{host}]") } else { host.into() };
                    Error::Proxy {
                        proxy: self.to_string(),
                        reason: format!("SOCKS5 tunnel to {shown}:{port}: {e}"),
                    }
                })
            }
        }
    }

    async fn http_connect<S>(
        &self,
        io: &mut S,
        auth: Option<&str>,
        host: &str,
        port: u16,
    ) -> Result<(), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let target = format!("{host}:{port}");
        let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(auth) = auth {
            request.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
        }
        request.push_str("\r\n");
        let failed = |reason: String| Error::Proxy { proxy: self.to_string(), reason };
        io.write_all(request.as_bytes()).await.map_err(|e| failed(format!("write failed: {e}")))?;
        let mut buf = BytesMut::with_capacity(1024);
        let limits = Limits::default();
        let mut scanned = 0;
        loop {
            if io.read_buf(&mut buf).await.map_err(|e| failed(format!("read failed: {e}")))? == 0 {
                return Err(failed("closed the connection before answering CONNECT".into()));
            }
            if !head_complete(&buf, &mut scanned) && buf.len() <= limits.head_size() {
                continue; // parsed once its blank line is here
            }
            let parsed = parse_response(&buf, &limits)
                .map_err(|e| failed(format!("invalid answer to CONNECT: {e}")))?;
            let Some(parsed) = parsed else { continue };
            let status = parsed.value.status();
            if !status.is_success() {
                let hint = if status == StatusCode::PROXY_AUTHENTICATION_REQUIRED {
                    " (give credentials as http://user:password@host:port)"
                } else {
                    ""
                };
                return Err(failed(format!("refused CONNECT {target} with {status}{hint}")));
            }
            if parsed.len != buf.len() {
                return Err(failed("sent bytes after its answer to CONNECT".into()));
            }
            return Ok(());
        }
    }
}

/// The first address of `host` (for `socks5://`, which resolves names here).
async fn resolve_one(host: &str, port: u16) -> Result<IpAddr, Error> {
    let target = format!("{host}:{port}");
    let mut addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| Error::Connect { target: target.clone(), source })?;
    addrs.next().map(|addr| addr.ip()).ok_or_else(|| Error::Connect {
        target,
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address found"),
    })
}

/// The client side of SOCKS5 (RFC 1928) `CONNECT`, with no authentication or RFC 1929's
/// username/password. Sans-IO steps (messages built, answers parsed, each parser saying how
/// many bytes it needs) and one driver that reads exactly those bytes, never more: what
/// follows the reply belongs to the tunnel. Time is bounded by the caller (the connect timeout).
mod socks5 {
    use std::net::IpAddr;

    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    const VERSION: u8 = 5;
    const NO_AUTH: u8 = 0x00;
    const USER_PASS: u8 = 0x02;
    const NO_ACCEPTABLE: u8 = 0xff;
    /// RFC 1929's sub-negotiation version.
    const AUTH_VERSION: u8 = 1;
    const CONNECT: u8 = 0x01;
    const ATYP_IPV4: u8 = 1;
    const ATYP_DOMAIN: u8 = 3;
    const ATYP_IPV6: u8 = 4;
    /// The longest reply: a 255-byte domain name.
    pub(super) const MAX_REPLY: usize = 4 + 1 + 255 + 2;

    /// RFC 1929 credentials: a user name of 1 to 255 bytes, a password of at most 255.
    #[derive(Clone, PartialEq, Eq)]
    pub(super) struct Credentials {
        pub(super) username: Vec<u8>,
        pub(super) password: Vec<u8>,
    }

    impl Credentials {
        /// From a URL's `user[:password]`, percent-decoded.
        pub(super) fn from_userinfo(userinfo: &str) -> Result<Self, &'static str> {
            let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let (username, password) = (super::percent_decode(user), super::percent_decode(pass));
            if username.is_empty() || username.len() > 255 || password.len() > 255 {
                return Err("a SOCKS5 user name has 1 to 255 bytes, a password at most 255");
            }
            Ok(Self { username, password })
        }
    }

    /// Where the tunnel goes.
    #[derive(Debug, Clone, Copy)]
    pub(super) enum Target<'a> {
        Ip(IpAddr),
        /// Resolved by the proxy (`socks5h://`).
        Domain(&'a str),
    }

    /// What went wrong, worded for [`Error::Proxy`](crate::Error::Proxy)'s reason.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(super) enum Failure {
        /// The proxy closed the connection in the middle of `step`.
        Closed(&'static str),
        Io(&'static str, String),
        /// A message of `step` carried `version`.
        Version {
            step: &'static str,
            version: u8,
            expected: u8,
        },
        /// `0xFF`: none of the offered methods is acceptable to the proxy.
        NoAcceptableMethod {
            offered_auth: bool,
        },
        /// The proxy chose a method that was not offered.
        UnofferedMethod(u8),
        /// RFC 1929's status, not 0.
        AuthRejected(u8),
        /// RFC 1928 §6's reply code, not 0.
        Refused(u8),
        UnknownAddressType(u8),
        EmptyDomain,
        HostTooLong,
    }

    impl std::fmt::Display for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                Self::Closed(step) => write!(f, "the proxy closed the connection during {step}"),
                Self::Io(step, e) => write!(f, "{step} failed: {e}"),
                Self::Version { step, version, expected } => write!(
                    f,
                    "not a SOCKS5 proxy? its {step} has version {version}, not {expected}"
                ),
                Self::NoAcceptableMethod { offered_auth: false } => f.write_str(
                    "the proxy requires authentication (give credentials as \
                     socks5://user:password@host:port)",
                ),
                Self::NoAcceptableMethod { offered_auth: true } => {
                    f.write_str("the proxy accepts neither no authentication nor username/password")
                }
                Self::UnofferedMethod(method) => write!(
                    f,
                    "the proxy chose authentication method {method:#04x}, which was not offered"
                ),
                Self::AuthRejected(status) => write!(
                    f,
                    "the proxy rejected the user name or password (RFC 1929 status {status})"
                ),
                Self::Refused(code) => {
                    write!(f, "the proxy refused to connect: {} (reply {code})", reply_text(*code))
                }
                Self::UnknownAddressType(atyp) => {
                    write!(f, "the proxy's reply has an unknown address type {atyp}")
                }
                Self::EmptyDomain => f.write_str("the proxy's reply has an empty domain name"),
                Self::HostTooLong => f.write_str("the host name is longer than 255 bytes"),
            }
        }
    }

    /// RFC 1928 §6's reply codes.
    pub(super) fn reply_text(code: u8) -> &'static str {
        match code {
            0x00 => "succeeded",
            0x01 => "general SOCKS server failure",
            0x02 => "connection not allowed by ruleset",
            0x03 => "network unreachable",
            0x04 => "host unreachable",
            0x05 => "connection refused",
            0x06 => "TTL expired",
            0x07 => "command not supported",
            0x08 => "address type not supported",
            _ => "unassigned reply code",
        }
    }

    /// The client's greeting: the methods it offers.
    pub(super) fn greeting(auth: bool) -> &'static [u8] {
        if auth {
            &[VERSION, 2, NO_AUTH, USER_PASS]
        } else {
            &[VERSION, 1, NO_AUTH]
        }
    }

    /// The proxy's method selection: `Ok(true)` when username/password follows.
    pub(super) fn parse_method(answer: [u8; 2], offered_auth: bool) -> Result<bool, Failure> {
        let [version, method] = answer;
        if version != VERSION {
            let step = "method selection";
            return Err(Failure::Version { step, version, expected: VERSION });
        }
        match method {
            NO_AUTH => Ok(false),
            USER_PASS if offered_auth => Ok(true),
            NO_ACCEPTABLE => Err(Failure::NoAcceptableMethod { offered_auth }),
            other => Err(Failure::UnofferedMethod(other)),
        }
    }

    /// RFC 1929's request.
    pub(super) fn auth_request(credentials: &Credentials) -> Vec<u8> {
        let (user, pass) = (&credentials.username, &credentials.password);
        let mut out = Vec::with_capacity(3 + user.len() + pass.len());
        out.extend([AUTH_VERSION, user.len() as u8]);
        out.extend_from_slice(user);
        out.push(pass.len() as u8);
        out.extend_from_slice(pass);
        out
    }

    /// RFC 1929's answer: status 0 is success.
    pub(super) fn parse_auth(answer: [u8; 2]) -> Result<(), Failure> {
        match answer {
            [AUTH_VERSION, 0] => Ok(()),
            [AUTH_VERSION, status] => Err(Failure::AuthRejected(status)),
            [version, _] => Err(Failure::Version {
                step: "authentication answer",
                version,
                expected: AUTH_VERSION,
            }),
        }
    }

    /// The `CONNECT` request.
    pub(super) fn connect_request(target: &Target<'_>, port: u16) -> Result<Vec<u8>, Failure> {
        let mut out = vec![VERSION, CONNECT, 0];
        match target {
            Target::Ip(IpAddr::V4(ip)) => {
                out.push(ATYP_IPV4);
                out.extend(ip.octets());
            }
            Target::Ip(IpAddr::V6(ip)) => {
                out.push(ATYP_IPV6);
                out.extend(ip.octets());
            }
            Target::Domain(name) => {
                let len = u8::try_from(name.len()).map_err(|_| Failure::HostTooLong)?;
                out.extend([ATYP_DOMAIN, len]);
                out.extend_from_slice(name.as_bytes());
            }
        }
        out.extend(port.to_be_bytes());
        Ok(out)
    }

    /// How long the reply beginning with `buf` is, as far as `buf` tells: the driver reads
    /// until `buf` is that long, and asks again; the reply is whole when the answer is
    /// `buf.len()`. Fails as soon as the bytes show the reply bad or a refusal.
    pub(super) fn reply_len(buf: &[u8]) -> Result<usize, Failure> {
        let Some(&[version, code]) = buf.get(..2) else { return Ok(2) };
        if version != VERSION {
            return Err(Failure::Version { step: "reply", version, expected: VERSION });
        }
        if code != 0 {
            return Err(Failure::Refused(code));
        }
        // RSV (buf[2]) is not checked: it carries nothing.
        let Some(&atyp) = buf.get(3) else { return Ok(4) };
        let len = match atyp {
            ATYP_IPV4 => 4 + 4 + 2,
            ATYP_IPV6 => 4 + 16 + 2,
            ATYP_DOMAIN => match buf.get(4) {
                None => 5,
                Some(0) => return Err(Failure::EmptyDomain),
                Some(&n) => 5 + usize::from(n) + 2,
            },
            other => return Err(Failure::UnknownAddressType(other)),
        };
        debug_assert!(len <= MAX_REPLY);
        Ok(len)
    }

    /// Runs the handshake over a connection to the proxy; on success the connection is the
    /// tunnel to `target:port`.
    pub(super) async fn handshake<S>(
        io: &mut S,
        credentials: Option<&Credentials>,
        target: &Target<'_>,
        port: u16,
    ) -> Result<(), Failure>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let request = connect_request(target, port)?;
        send(io, greeting(credentials.is_some()), "the greeting").await?;
        let mut answer = [0; 2];
        recv(io, &mut answer, "the method selection").await?;
        if parse_method(answer, credentials.is_some())? {
            let credentials = credentials.ok_or(Failure::UnofferedMethod(USER_PASS))?;
            send(io, &auth_request(credentials), "authentication").await?;
            recv(io, &mut answer, "authentication").await?;
            parse_auth(answer)?;
        }
        send(io, &request, "the CONNECT request").await?;
        let mut reply = [0; MAX_REPLY];
        let mut have = 0;
        loop {
            let need = reply_len(&reply[..have])?;
            if need == have {
                return Ok(());
            }
            recv(io, &mut reply[have..need], "the reply to CONNECT").await?;
            have = need;
        }
    }

    async fn send<S>(io: &mut S, bytes: &[u8], step: &'static str) -> Result<(), Failure>
    where
        S: AsyncWrite + Unpin,
    {
        io.write_all(bytes).await.map_err(|e| io_failure(e, step))?;
        io.flush().await.map_err(|e| io_failure(e, step))
    }

    async fn recv<S>(io: &mut S, buf: &mut [u8], step: &'static str) -> Result<(), Failure>
    where
        S: AsyncRead + Unpin,
    {
        io.read_exact(buf).await.map(drop).map_err(|e| io_failure(e, step))
    }

    fn io_failure(e: std::io::Error, step: &'static str) -> Failure {
        match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Failure::Closed(step),
            _ => Failure::Io(step, e.to_string()),
        }
    }
}

/// `url` without its credentials, for error messages.
fn without_userinfo(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let rest = match rest[..end].rsplit_once('@') {
        Some((_, host)) => format!("{host}{}", &rest[end..]),
        None => rest.to_string(),
    };
    if scheme.is_empty() {
        rest
    } else {
        format!("{scheme}://{rest}")
    }
}

fn no_proxy_matches(no_proxy: &str, host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    no_proxy.split(',').map(str::trim).filter(|e| !e.is_empty()).any(|entry| {
        if entry == "*" {
            return true;
        }
        let entry = entry.trim_start_matches('.').to_ascii_lowercase();
        let entry = entry.trim_start_matches('[').trim_end_matches(']');
        host == entry || host.ends_with(&format!(".{entry}"))
    })
}

fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::socks5::{Credentials, Failure, Target};
    use super::*;

    fn http_auth(proxy: &Proxy) -> Option<&str> {
        match &proxy.kind {
            Kind::Http { auth } => auth.as_deref(),
            Kind::Socks5 { .. } => panic!("not an HTTP proxy: {proxy:?}"),
        }
    }

    type Socks<'a> = (bool, Option<(&'a [u8], &'a [u8])>);

    fn socks(proxy: &Proxy) -> Socks<'_> {
        match &proxy.kind {
            Kind::Socks5 { remote_dns, auth } => {
                (*remote_dns, auth.as_ref().map(|c| (c.username.as_slice(), c.password.as_slice())))
            }
            Kind::Http { .. } => panic!("not a SOCKS5 proxy: {proxy:?}"),
        }
    }

    /// Credentials cannot inject lines into the CONNECT request: they travel base64-encoded,
    /// and a proxy URL with CR/LF in it is refused.
    #[test]
    fn proxy_credentials_and_hosts_cannot_inject_lines() {
        let proxy = Proxy::new("http://user:p%0d%0aX-Evil:%201@proxy:3128").unwrap();
        let auth = http_auth(&proxy).unwrap();
        assert!(auth.starts_with("Basic ") && !auth.contains(['\r', '\n']), "{auth}");
        assert_eq!(BASE64.decode(&auth["Basic ".len()..]).unwrap(), b"user:p\r\nX-Evil: 1");
        for bad in
            ["http://proxy\r\nX-Evil: 1:3128", "http://us\ner:pw@proxy:3128", "http://pro\0xy:1"]
        {
            assert!(Proxy::new(bad).is_err(), "{bad:?}");
        }
    }

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn curl_rules() {
        let vars =
            [("https_proxy", "http://secure:1"), ("http_proxy", "plain:2"), ("ALL_PROXY", "all:3")];
        let p = |secure, host| {
            Proxy::from_vars(env(&vars), secure, host).unwrap().map(|p| p.to_string())
        };
        assert_eq!(p(true, "a.example"), Some("secure:1".into()));
        assert_eq!(p(false, "a.example"), Some("plain:2".into()));
        let only_all = [("ALL_PROXY", "all:3"), ("HTTP_PROXY", "ignored:4")];
        let p =
            |secure| Proxy::from_vars(env(&only_all), secure, "h").unwrap().map(|p| p.to_string());
        assert_eq!(p(false), Some("all:3".into()), "uppercase HTTP_PROXY is ignored, as curl does");
        assert_eq!(p(true), Some("all:3".into()));
        assert_eq!(Proxy::from_vars(env(&[]), true, "h").unwrap(), None);
    }

    /// `ALL_PROXY` and the scheme-specific variables may name SOCKS5 proxies, as with curl.
    #[test]
    fn socks_proxies_from_the_environment() {
        let vars = [("ALL_PROXY", "socks5h://u%20ser:pw@socks.example:1081")];
        for secure in [false, true] {
            let proxy = Proxy::from_vars(env(&vars), secure, "h").unwrap().unwrap();
            assert_eq!(proxy.to_string(), "socks.example:1081");
            assert_eq!(socks(&proxy), (true, Some((&b"u ser"[..], &b"pw"[..]))));
            assert_eq!(proxy, Proxy::new(vars[0].1).unwrap());
        }
        let vars = [("https_proxy", "socks5://s:1"), ("all_proxy", "http://h:2")];
        let proxy = Proxy::from_vars(env(&vars), true, "h").unwrap().unwrap();
        assert_eq!(socks(&proxy), (false, None));
        let plain = Proxy::from_vars(env(&vars), false, "h").unwrap().unwrap();
        assert_eq!(http_auth(&plain), None);
        let no = [("all_proxy", "socks5h://s:1"), ("no_proxy", "h")];
        assert_eq!(Proxy::from_vars(env(&no), false, "h").unwrap(), None);
        let old = [("all_proxy", "socks4://s:1")];
        let err = Proxy::from_vars(env(&old), false, "h").unwrap_err().to_string();
        assert!(err.contains("socks4:// proxies are not supported: use socks5://"), "{err}");
    }

    #[test]
    fn no_proxy() {
        let vars = [("all_proxy", "p:1"), ("no_proxy", "localhost, .internal.example,10.0.0.1")];
        let p = |host| Proxy::from_vars(env(&vars), false, host).unwrap().is_some();
        assert!(!p("localhost"));
        assert!(!p("db.internal.example"));
        assert!(!p("internal.example"));
        assert!(!p("10.0.0.1"));
        assert!(p("example.com"));
        assert!(p("notinternal.example"));
        let star = [("all_proxy", "p:1"), ("NO_PROXY", "*")];
        assert_eq!(Proxy::from_vars(env(&star), false, "x").unwrap(), None);
    }

    #[test]
    fn proxy_urls() {
        let p = Proxy::new("http://us%40er:p%3Ass@proxy.example:3128").unwrap();
        assert_eq!(http_auth(&p), Some(&*format!("Basic {}", BASE64.encode("us@er:p:ss"))));
        assert_eq!(p.addr(), ("proxy.example".into(), 3128));
        assert_eq!(Proxy::new("proxy.example").unwrap().port, 1080);
        assert!(format!("{p:?}").contains("auth: true") && !format!("{p:?}").contains("p:ss"));
        for (url, why) in [
            ("https://p:1", "https:// proxies are not supported, only http://, socks5://"),
            ("socks4://p:1080", "socks4:// proxies are not supported: use socks5:// or socks5h://"),
            ("socks4a://p:1080", "socks4a:// proxies are not supported"),
        ] {
            let err = Proxy::new(url).unwrap_err().to_string();
            assert!(err.contains(why), "{url}: {err}");
        }
    }

    #[test]
    fn socks_urls() {
        let p = Proxy::new("socks5://us%40er:p%3Ass@[::1]:1081").unwrap();
        assert_eq!(socks(&p), (false, Some((&b"us@er"[..], &b"p:ss"[..]))));
        assert_eq!(p.addr(), ("::1".into(), 1081));
        let debug = format!("{p:?}");
        assert!(debug.contains("socks5://[::1]:1081, auth: true") && !debug.contains("p:ss"));
        let p = Proxy::new("SOCKS5H://socks.example").unwrap();
        assert_eq!((socks(&p), p.addr()), ((true, None), ("socks.example".into(), 1080)));
        assert_eq!(socks(&Proxy::new("socks5h://only-user@s").unwrap()).1.unwrap().1, b"");
        let long = "x".repeat(256);
        for bad in [
            format!("socks5://{long}:pw@s:1"),
            format!("socks5://user:{long}@s:1"),
            "socks5://:pw@s:1".to_string(),
        ] {
            let err = Proxy::new(&bad).unwrap_err().to_string();
            assert!(err.contains("user name has 1 to 255 bytes"), "{err}");
        }
        let err = Proxy::new("socks5://user:secret@[bad").unwrap_err().to_string();
        assert!(!err.contains("secret") && !err.contains("user"), "{err}");
        let err = Proxy::new(&format!("socks5://user:{long}@s:1")).unwrap_err().to_string();
        assert!(err.starts_with("proxy socks5://s:1: ") && !err.contains(&long), "{err}");
        assert_eq!(without_userinfo("u:p@h:1/x@y"), "h:1/x@y");
        assert_eq!(without_userinfo("http://h:1"), "http://h:1");
        let max = "y".repeat(255);
        assert!(Proxy::new(&format!("socks5://{max}:{max}@s")).is_ok());
    }

    #[test]
    fn socks_requests() {
        use socks5::{auth_request, connect_request, greeting};
        assert_eq!(greeting(false), [5, 1, 0]);
        assert_eq!(greeting(true), [5, 2, 0, 2]);
        let credentials = Credentials::from_userinfo("ab:c%00d").unwrap();
        assert_eq!(auth_request(&credentials), b"\x01\x02ab\x03c\0d");
        let ip = |s: &str| Target::Ip(s.parse().unwrap());
        assert_eq!(
            connect_request(&ip("127.0.0.1"), 8080).unwrap(),
            [5, 1, 0, 1, 127, 0, 0, 1, 31, 144]
        );
        let v6 = connect_request(&ip("::1"), 443).unwrap();
        assert_eq!(v6.len(), 4 + 16 + 2);
        assert_eq!((&v6[..4], v6[19], &v6[20..]), (&[5, 1, 0, 4][..], 1, &[1, 187][..]));
        let name = connect_request(&Target::Domain("localhost"), 80).unwrap();
        assert_eq!(name, b"\x05\x01\x00\x03\x09localhost\x00\x50");
        let longest = "a".repeat(255);
        assert_eq!(connect_request(&Target::Domain(&longest), 1).unwrap().len(), 4 + 1 + 255 + 2);
        let too_long = "a".repeat(256);
        assert_eq!(connect_request(&Target::Domain(&too_long), 1), Err(Failure::HostTooLong));
    }

    #[test]
    fn socks_method_and_auth_answers() {
        use socks5::{parse_auth, parse_method};
        assert_eq!(parse_method([5, 0], false), Ok(false));
        assert_eq!(parse_method([5, 0], true), Ok(false));
        assert_eq!(parse_method([5, 2], true), Ok(true));
        assert_eq!(parse_method([5, 2], false), Err(Failure::UnofferedMethod(2)));
        assert_eq!(parse_method([5, 1], true), Err(Failure::UnofferedMethod(1)), "GSSAPI");
        assert_eq!(
            parse_method([5, 0xff], false),
            Err(Failure::NoAcceptableMethod { offered_auth: false })
        );
        let http = parse_method(*b"HT", false).unwrap_err();
        assert!(matches!(http, Failure::Version { version: b'H', expected: 5, .. }), "{http:?}");
        assert_eq!(parse_auth([1, 0]), Ok(()));
        assert_eq!(parse_auth([1, 1]), Err(Failure::AuthRejected(1)));
        assert!(matches!(parse_auth([5, 0]), Err(Failure::Version { version: 5, .. })));
        let hint = Failure::NoAcceptableMethod { offered_auth: false }.to_string();
        assert!(hint.contains("socks5://user:password@host:port"), "{hint}");
        let unoffered = Failure::UnofferedMethod(2).to_string();
        assert!(unoffered.contains("method 0x02, which was not offered"), "{unoffered}");
    }

    /// Replies are measured from their first bytes; every prefix asks for more, never past
    /// the end; hostile ones fail on the byte that shows them bad.
    #[test]
    fn socks_replies() {
        use socks5::{reply_len, MAX_REPLY};
        let v4 = [5, 0, 0, 1, 127, 0, 0, 1, 4, 56];
        let mut v6 = vec![5, 0, 0, 4];
        v6.extend([0; 15].iter().chain(&[1, 0, 80]));
        let mut name = vec![5, 0, 0, 3, 9];
        name.extend(b"localhost\x1f\x90");
        let mut longest = vec![5, 0, 0, 3, 255];
        longest.extend([b'a'; 257]);
        assert_eq!(longest.len(), MAX_REPLY);
        for reply in [&v4[..], &v6, &name, &longest] {
            assert_eq!(reply_len(reply), Ok(reply.len()));
            for cut in 0..reply.len() {
                let need = reply_len(&reply[..cut]).unwrap();
                assert!(need > cut && need <= reply.len(), "{cut} -> {need} of {}", reply.len());
            }
        }
        // Hostile or broken replies.
        let version = reply_len(&[4, 90]).unwrap_err();
        assert!(
            matches!(version, Failure::Version { version: 4, expected: 5, .. }),
            "a SOCKS4 reply"
        );
        assert!(matches!(reply_len(b"HTTP/1.1 200"), Err(Failure::Version { version: b'H', .. })));
        assert_eq!(reply_len(&[5, 0, 0, 2]), Err(Failure::UnknownAddressType(2)));
        assert_eq!(reply_len(&[5, 0, 0, 0xff, 1]), Err(Failure::UnknownAddressType(0xff)));
        assert_eq!(reply_len(&[5, 0, 0, 3, 0, 0, 80]), Err(Failure::EmptyDomain));
        // A refusal is reported from its first two bytes, whatever follows (or does not).
        assert_eq!(reply_len(&[5, 5]), Err(Failure::Refused(5)));
        assert_eq!(reply_len(&[5, 2, 0, 9, 9]), Err(Failure::Refused(2)));
        let texts: Vec<String> = (1..=9).map(|c| Failure::Refused(c).to_string()).collect();
        assert_eq!(
            texts[0],
            "the proxy refused to connect: general SOCKS server failure (reply 1)"
        );
        assert!(texts[1].contains("connection not allowed by ruleset"));
        assert!(texts[2].contains("network unreachable") && texts[3].contains("host unreachable"));
        assert!(texts[4].contains("connection refused") && texts[5].contains("TTL expired"));
        assert!(texts[6].contains("command not supported"));
        assert!(texts[7].contains("address type not supported"));
        assert!(texts[8].contains("unassigned reply code (reply 9)"));
    }

    /// Runs the handshake against a scripted proxy that answers `script` (all at once, after
    /// reading the greeting), then closes. Returns the result, what the client sent, and what
    /// remained unread after the handshake.
    async fn scripted(
        credentials: Option<&str>,
        target: Target<'_>,
        script: &'static [u8],
    ) -> (Result<(), Failure>, Vec<u8>, Vec<u8>) {
        let (mut client, mut server) = tokio::io::duplex(1024);
        let proxy = tokio::spawn(async move {
            let mut sent = vec![0; 2];
            server.read_exact(&mut sent).await.unwrap();
            let mut methods = vec![0; usize::from(sent[1])];
            server.read_exact(&mut methods).await.unwrap();
            sent.extend(methods);
            server.write_all(script).await.unwrap();
            server.shutdown().await.unwrap();
            let _ = server.read_to_end(&mut sent).await;
            sent
        });
        let credentials = credentials.map(|c| Credentials::from_userinfo(c).unwrap());
        let result = socks5::handshake(&mut client, credentials.as_ref(), &target, 80).await;
        let mut rest = Vec::new();
        if result.is_ok() {
            client.read_to_end(&mut rest).await.unwrap();
        }
        drop(client);
        (result, proxy.await.unwrap(), rest)
    }

    #[tokio::test]
    async fn socks_handshake_in_memory() {
        let local = Target::Ip("127.0.0.1".parse().unwrap());
        // No authentication; the tunnel's first bytes stay unread.
        let (result, sent, rest) =
            scripted(None, local, b"\x05\x00\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x50tunnel").await;
        assert_eq!(result, Ok(()));
        assert_eq!(sent, [5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80]);
        assert_eq!(rest, b"tunnel");
        // Username/password, then a reply with a domain name.
        let (result, sent, rest) = scripted(
            Some("u:pw"),
            Target::Domain("h.example"),
            b"\x05\x02\x01\x00\x05\x00\x00\x03\x04host\x00\x50",
        )
        .await;
        assert_eq!(result, Ok(()));
        assert_eq!(&sent[..4], [5, 2, 0, 2]);
        assert_eq!(&sent[4..10], b"\x01\x01u\x02pw");
        assert_eq!(&sent[10..], b"\x05\x01\x00\x03\x09h.example\x00\x50");
        assert!(rest.is_empty());
        // Rejected password: nothing more is sent.
        let (result, sent, _) = scripted(Some("u:bad"), local, b"\x05\x02\x01\x01").await;
        assert_eq!(result, Err(Failure::AuthRejected(1)));
        assert_eq!(sent.len(), 4 + 7);
        // Username/password chosen though not offered.
        let (result, sent, _) = scripted(None, local, b"\x05\x02").await;
        assert_eq!((result, sent.len()), (Err(Failure::UnofferedMethod(2)), 3));
        // Truncated answers: the proxy closes in the middle.
        let (result, ..) = scripted(None, local, b"\x05").await;
        assert_eq!(result, Err(Failure::Closed("the method selection")));
        let (result, ..) = scripted(Some("u:p"), local, b"\x05\x02\x01").await;
        assert_eq!(result, Err(Failure::Closed("authentication")));
        let (result, ..) = scripted(None, local, b"\x05\x00\x05\x00\x00\x01\x7f\x00").await;
        assert_eq!(result, Err(Failure::Closed("the reply to CONNECT")));
        let (result, ..) = scripted(None, local, b"\x05\x00\x05\x00\x00\x03\xffshort").await;
        assert_eq!(result, Err(Failure::Closed("the reply to CONNECT")));
        // A refusal, and a reply of another protocol.
        let (result, ..) = scripted(None, local, b"\x05\x00\x05\x04").await;
        assert_eq!(result, Err(Failure::Refused(4)));
        let (result, ..) = scripted(None, local, b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        assert!(matches!(result, Err(Failure::Version { version: b'H', .. })), "{result:?}");
    }

    /// The reason in `Error::Proxy` names the tunnel's target and the refusal.
    #[tokio::test]
    async fn socks_errors_name_the_target() {
        let proxy = Proxy::new("socks5h://127.0.0.1:1").unwrap();
        let (mut client, mut server) = tokio::io::duplex(1024);
        tokio::spawn(async move {
            let mut greeting = [0; 3];
            server.read_exact(&mut greeting).await.unwrap();
            server.write_all(&[5, 0]).await.unwrap();
            let mut request = [0; 4 + 1 + 9 + 2];
            server.read_exact(&mut request).await.unwrap();
            server.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).await.unwrap();
        });
        let err = proxy.tunnel(&mut client, "localhost", 8080).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "proxy 127.0.0.1:1: SOCKS5 tunnel to localhost:8080: the proxy refused to connect: \
             connection refused (reply 5)"
        );
    }
}
