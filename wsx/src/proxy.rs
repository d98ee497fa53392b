//! HTTP `CONNECT` proxies (RFC 9110 §9.3.6): a client behind a proxy asks it to open the TCP
//! connection, then speaks WebSocket (or TLS) through the tunnel.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::BytesMut;
use http::{StatusCode, Uri};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use wsx_proto::{head_complete, parse_response, Limits};

use crate::error::Error;

/// An HTTP proxy reached with `CONNECT`.
///
/// ```
/// let proxy = wsx::Proxy::new("http://user:secret@proxy.example:3128").unwrap();
/// assert_eq!(proxy.to_string(), "proxy.example:3128");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    host: String,
    port: u16,
    /// `Basic ...` for `Proxy-Authorization`.
    auth: Option<String>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the credentials.
        write!(f, "Proxy({}:{}, auth: {})", self.host, self.port, self.auth.is_some())
    }
}

impl std::fmt::Display for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl Proxy {
    /// A proxy from a URL such as `http://host:3128` or `http://user:pass@host:3128`
    /// (`http://` is assumed when no scheme is given, as curl does).
    pub fn new(url: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::Proxy { proxy: url.to_string(), reason: why.to_string() };
        let with_scheme =
            if url.contains("://") { url.to_string() } else { format!("http://{url}") };
        let uri: Uri = with_scheme.parse().map_err(|_| bad("not a valid proxy URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(bad(&format!("{other}:// proxies are not supported, only http://")))
            }
            None => return Err(bad("not a valid proxy URL")),
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        let (userinfo, hostport) = match authority.as_str().rsplit_once('@') {
            Some((user, rest)) => (Some(user), rest),
            None => (None, authority.as_str()),
        };
        let host_uri: Uri =
            format!("http://{hostport}").parse().map_err(|_| bad("not a valid proxy host"))?;
        let host = host_uri.host().ok_or_else(|| bad("no host"))?.to_string();
        let port = host_uri.port_u16().unwrap_or(1080);
        let auth = userinfo.map(|u| format!("Basic {}", BASE64.encode(percent_decode(u))));
        Ok(Self { host, port, auth })
    }

    /// The proxy the environment names for a connection to `host` (curl's rules): none if
    /// `no_proxy`/`NO_PROXY` matches the host (`*`, a name, or a domain suffix); else for
    /// `wss://` `https_proxy`/`HTTPS_PROXY`, for `ws://` `http_proxy` (lowercase only, as curl),
    /// then `all_proxy`/`ALL_PROXY`.
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

    /// Opens a tunnel to `host:port` through an established connection to the proxy.
    pub(crate) async fn tunnel<S>(&self, io: &mut S, host: &str, port: u16) -> Result<(), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let target = format!("{host}:{port}");
        let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(auth) = &self.auth {
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
    use super::*;

    /// Credentials cannot inject lines into the CONNECT request: they travel base64-encoded,
    /// and a proxy URL with CR/LF in it is refused.
    #[test]
    fn proxy_credentials_and_hosts_cannot_inject_lines() {
        let proxy = Proxy::new("http://user:p%0d%0aX-Evil:%201@proxy:3128").unwrap();
        let auth = proxy.auth.as_deref().unwrap();
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
        assert_eq!(p.auth.as_deref(), Some(&*format!("Basic {}", BASE64.encode("us@er:p:ss"))));
        assert_eq!(p.addr(), ("proxy.example".into(), 3128));
        assert_eq!(Proxy::new("proxy.example").unwrap().port, 1080);
        assert!(format!("{p:?}").contains("auth: true") && !format!("{p:?}").contains("p:ss"));
        let err = Proxy::new("socks5://p:1080").unwrap_err().to_string();
        assert!(err.contains("socks5:// proxies are not supported"), "{err}");
    }
}
