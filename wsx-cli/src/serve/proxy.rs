//! `--trust-proxy`: who the client is when a reverse proxy (nginx) stands in front.
//!
//! Forwarding headers are believed only from the proxies named on the command line; from
//! anyone else they are ignored, as anyone can send them.

use std::net::IpAddr;

use http::HeaderMap;

use crate::net::Network;

/// The client's address: `peer`, unless `peer` is a trusted proxy; then the last address in
/// `X-Forwarded-For` that is not a trusted proxy (walking from the nearest hop), or
/// `X-Real-IP`.
pub(crate) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Network]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    if let Some(last) = hops.iter().rev().find(|ip| !is_trusted(**ip)) {
        return *last;
    }
    if let Some(first) = hops.first() {
        return *first;
    }
    headers
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(peer)
}

/// The Host the client asked for: `X-Forwarded-Host` from a trusted proxy, else `Host`.
pub(crate) fn forwarded_host<'a>(
    peer: IpAddr,
    headers: &'a HeaderMap,
    trusted: &[Network],
) -> Option<&'a str> {
    if !trusted.iter().any(|n| n.contains(peer)) {
        return None;
    }
    let host = headers.get("x-forwarded-host")?.to_str().ok()?;
    // A list when several proxies appended: the first is the client's.
    host.split(',').next().map(str::trim).filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let trusted = ["127.0.0.1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        let forwarded =
            headers(&[("x-forwarded-for", "203.0.113.7"), ("x-real-ip", "203.0.113.8")]);
        // From an untrusted peer: the peer itself, whatever it claims.
        assert_eq!(client_ip(ip("198.51.100.1"), &forwarded, &trusted), ip("198.51.100.1"));
        // From a trusted proxy: the forwarded address.
        assert_eq!(client_ip(ip("127.0.0.1"), &forwarded, &trusted), ip("203.0.113.7"));
        // A chain: the nearest untrusted hop, not the (spoofable) leftmost one.
        let chain = headers(&[
            ("x-forwarded-for", "1.1.1.1, 203.0.113.9"),
            ("x-forwarded-for", "10.0.0.5"),
        ]);
        assert_eq!(client_ip(ip("10.0.0.6"), &chain, &trusted), ip("203.0.113.9"));
        // Only trusted hops: the first.
        let internal = headers(&[("x-forwarded-for", "10.0.0.1, 10.0.0.2")]);
        assert_eq!(client_ip(ip("127.0.0.1"), &internal, &trusted), ip("10.0.0.1"));
        // X-Real-IP alone; nothing usable: the peer.
        let real = headers(&[("x-real-ip", " 192.0.2.4 ")]);
        assert_eq!(client_ip(ip("127.0.0.1"), &real, &trusted), ip("192.0.2.4"));
        let junk = headers(&[("x-real-ip", "somewhere")]);
        assert_eq!(client_ip(ip("127.0.0.1"), &junk, &trusted), ip("127.0.0.1"));
        // Nothing trusted: headers ignored.
        assert_eq!(client_ip(ip("127.0.0.1"), &forwarded, &[]), ip("127.0.0.1"));
    }

    #[test]
    fn forwarded_host_only_from_trusted_proxies() {
        let trusted = ["127.0.0.1".parse().unwrap()];
        let h = headers(&[("x-forwarded-host", "chat.example.com, inner")]);
        assert_eq!(forwarded_host(ip("127.0.0.1"), &h, &trusted), Some("chat.example.com"));
        assert_eq!(forwarded_host(ip("192.0.2.1"), &h, &trusted), None);
        assert_eq!(forwarded_host(ip("127.0.0.1"), &HeaderMap::new(), &trusted), None);
    }
}
