//! The opening handshake against every MUST of RFC 6455 §4.1 (client) and §4.2 (server), and
//! the requests real clients send (the seeds).

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use proptest::prelude::*;

use crate::*;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

const SAMPLE: &str = "GET /chat HTTP/1.1\r\n\
Host: server.example.com\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Origin: http://example.com\r\n\
Sec-WebSocket-Protocol: chat, superchat\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";

fn upgrade(wire: &str) -> Result<Upgrade, HandshakeError> {
    let parsed = parse_request(wire.as_bytes(), &Limits::default())?.expect("a complete head");
    Upgrade::from_request(&parsed.value)
}

/// The sample request with one header line replaced (or removed, with `None`).
fn sample_with(name: &str, line: Option<&str>) -> String {
    let mut out = String::new();
    for l in SAMPLE.split_inclusive("\r\n") {
        if l.to_ascii_lowercase().starts_with(&format!("{}:", name.to_ascii_lowercase())) {
            if let Some(line) = line {
                out.push_str(line);
                out.push_str("\r\n");
            }
        } else {
            out.push_str(l);
        }
    }
    out
}

fn status(wire: &str) -> Option<StatusCode> {
    match parse_request(wire.as_bytes(), &Limits::default()) {
        Err(e) => e.status(),
        Ok(parsed) => upgrade_status(parsed.expect("a complete head").value),
    }
}

fn upgrade_status(request: http::Request<()>) -> Option<StatusCode> {
    match Upgrade::from_request(&request) {
        Ok(_) => Some(StatusCode::SWITCHING_PROTOCOLS),
        Err(e) => e.status(),
    }
}

// ---- keys and extension lists -------------------------------------------------------------

#[test]
fn rfc_sample_accept() {
    assert_eq!(sec_websocket_accept(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_eq!(
        Key::from_bytes(*b"the sample nonce").sec_websocket_accept(),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    // the seeds' other pair
    assert_eq!(sec_websocket_accept(b"x3JJHMbDL1EzLkh9GBhXDw=="), "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

#[test]
fn random_keys_are_fresh_and_16_bytes() {
    let a = Key::random();
    let b = Key::random();
    assert_ne!(a, b);
    assert_eq!(BASE64.decode(a.to_string()).unwrap().len(), 16);
}

#[test]
fn extension_lists() {
    let list = Extension::parse_list(
        "permessage-deflate; client_max_window_bits; server_max_window_bits=10, permessage-deflate",
    )
    .unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].params()[1], ("server_max_window_bits".into(), Some("10".into())));
    assert_eq!(
        list[0].to_string(),
        "permessage-deflate; client_max_window_bits; server_max_window_bits=10"
    );
    assert!(Extension::parse_list("").is_err());
    assert!(Extension::parse_list("a b").is_err());
    assert!(Extension::parse_list("a; b=\"x y\"").is_err());
    assert!(Extension::parse_list("a; b=\"open").is_err());
    assert_eq!(
        Extension::parse_list("a;b=\"1,2\"").unwrap_err(),
        "value \"1,2\" of parameter b is not a token"
    );
}

// ---- server: RFC 6455 §4.2.1 ----------------------------------------------------------------

#[test]
fn rfc_sample_request_is_accepted() {
    let up = upgrade(SAMPLE).unwrap();
    assert_eq!(up.host(), "server.example.com");
    assert_eq!(up.origin(), Some("http://example.com"));
    assert_eq!(up.subprotocols(), ["chat", "superchat"]);
    let (response, negotiated) = up.respond(Accept::new().subprotocol(Some("chat"))).unwrap();
    let mut wire = BytesMut::new();
    write_response(&response, &mut wire);
    let text = String::from_utf8(wire.to_vec()).unwrap();
    assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
    assert!(text.contains("Upgrade: websocket\r\n"));
    assert!(text.contains("Connection: Upgrade\r\n"));
    assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert!(text.contains("Sec-WebSocket-Protocol: chat\r\n"));
    assert!(text.ends_with("\r\n\r\n"));
    assert_eq!(negotiated.subprotocol(), Some("chat"));
}

/// §4.2.1 item 1: an HTTP/1.1 or higher GET request.
#[test]
fn must_be_get() {
    let post = SAMPLE.replacen("GET", "POST", 1);
    assert_eq!(status(&post), Some(StatusCode::METHOD_NOT_ALLOWED));
    let err = upgrade(&post).unwrap_err();
    assert_eq!(err.to_response().unwrap().headers()["allow"], "GET");
}

#[test]
fn must_be_http_1_1() {
    let old = SAMPLE.replacen("HTTP/1.1", "HTTP/1.0", 1);
    assert_eq!(upgrade(&old).unwrap_err(), HandshakeError::HttpVersion);
    assert_eq!(status(&old), Some(StatusCode::BAD_REQUEST));
}

/// §4.2.1 item 2: a Host header; RFC 9112 §3.2: exactly one.
#[test]
fn must_have_one_valid_host() {
    assert_eq!(
        upgrade(&sample_with("Host", None)).unwrap_err(),
        HandshakeError::MissingHeader("Host")
    );
    let twice = sample_with("Host", Some("Host: a.example\r\nHost: b.example"));
    assert_eq!(upgrade(&twice).unwrap_err(), HandshakeError::DuplicateHeader("Host"));
    let bad = sample_with("Host", Some("Host: a b"));
    assert_eq!(status(&bad), Some(StatusCode::BAD_REQUEST));
    assert!(upgrade(&sample_with("Host", Some("Host: [::1]:8080"))).is_ok());
}

/// §4.2.1 item 3: `Upgrade` contains `websocket`, case-insensitively. Without it, the request
/// is plain HTTP.
#[test]
fn upgrade_token() {
    assert!(upgrade(&sample_with("Upgrade", Some("Upgrade: WebSocket"))).is_ok());
    assert!(upgrade(&sample_with("Upgrade", Some("Upgrade: foo, websocket"))).is_ok());
    assert_eq!(upgrade(&sample_with("Upgrade", None)).unwrap_err(), HandshakeError::NotUpgrade);
    assert_eq!(
        upgrade(&sample_with("Upgrade", Some("Upgrade: h2c"))).unwrap_err(),
        HandshakeError::NotUpgrade
    );
    let plain = "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(upgrade(plain).unwrap_err(), HandshakeError::NotUpgrade);
}

/// §4.2.1 item 4: `Connection` includes the token `Upgrade`, in a list, case-insensitively.
#[test]
fn connection_token() {
    for ok in
        ["Connection: keep-alive, Upgrade", "Connection: upgrade", "Connection: UPGRADE,close"]
    {
        assert!(upgrade(&sample_with("Connection", Some(ok))).is_ok(), "{ok}");
    }
    let split = sample_with("Connection", Some("Connection: keep-alive\r\nConnection: Upgrade"));
    assert!(upgrade(&split).is_ok(), "tokens from several header lines");
    assert_eq!(
        upgrade(&sample_with("Connection", None)).unwrap_err(),
        HandshakeError::MissingHeader("Connection")
    );
    let wrong = upgrade(&sample_with("Connection", Some("Connection: keep-alive"))).unwrap_err();
    assert_eq!(wrong.status(), Some(StatusCode::BAD_REQUEST));
    assert!(wrong.to_string().contains("Connection"), "the reason names the header: {wrong}");
    let sub = upgrade(&sample_with("Connection", Some("Connection: upgraded"))).unwrap_err();
    assert!(matches!(sub, HandshakeError::InvalidHeader { name: "Connection", .. }));
}

/// §4.2.1 item 5: exactly one `Sec-WebSocket-Key`, base64 of 16 bytes.
#[test]
fn key_is_16_bytes_of_base64() {
    assert_eq!(
        upgrade(&sample_with("Sec-WebSocket-Key", None)).unwrap_err(),
        HandshakeError::MissingHeader("Sec-WebSocket-Key")
    );
    let twice = sample_with(
        "Sec-WebSocket-Key",
        Some("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="),
    );
    assert_eq!(upgrade(&twice).unwrap_err(), HandshakeError::DuplicateHeader("Sec-WebSocket-Key"));
    for bad in [
        "c2hvcnQ=",                 // 5 bytes
        "dGhlIHNhbXBsZSBub25jZSEh", // 18 bytes
        "dGhlIHNhbXBsZSBub25jZQ",   // no padding
        "!!!!!!!!!!!!!!!!!!!!!!==", // not base64
        "dGhlIHNhbXBsZSBub25jZR==", // non-canonical trailing bits
    ] {
        let err =
            upgrade(&sample_with("Sec-WebSocket-Key", Some(&format!("Sec-WebSocket-Key: {bad}"))))
                .unwrap_err();
        assert!(
            matches!(err, HandshakeError::InvalidHeader { name: "Sec-WebSocket-Key", .. }),
            "{bad}: {err}"
        );
        assert_eq!(err.status(), Some(StatusCode::BAD_REQUEST));
    }
}

/// §4.2.1 item 6, §4.4: version 13, else 426 with the version we speak.
#[test]
fn version_13_or_426() {
    for bad in ["8", "7, 8", "14", "13, 8"] {
        let wire =
            sample_with("Sec-WebSocket-Version", Some(&format!("Sec-WebSocket-Version: {bad}")));
        let err = upgrade(&wire).unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::UPGRADE_REQUIRED), "{bad}");
        let response = err.to_response().unwrap();
        assert_eq!(response.headers()["sec-websocket-version"], "13");
        let mut out = BytesMut::new();
        write_response_with_body(&response, &mut out);
        assert!(out.starts_with(b"HTTP/1.1 426 Upgrade Required\r\n"));
    }
    let missing = upgrade(&sample_with("Sec-WebSocket-Version", None)).unwrap_err();
    assert_eq!(missing, HandshakeError::MissingHeader("Sec-WebSocket-Version"));
    assert_eq!(missing.to_response().unwrap().headers()["sec-websocket-version"], "13");
}

/// §4.2.1 items 7-9 and §4.2.2: Origin, subprotocols and extensions are the application's to
/// decide; it may only pick what was offered.
#[test]
fn hooks_origin_subprotocol_extensions() {
    let up = upgrade(SAMPLE).unwrap();
    let err = up.reject_origin();
    assert_eq!(err.status(), Some(StatusCode::FORBIDDEN));
    assert!(err.to_string().contains("http://example.com"));

    assert_eq!(up.choose_subprotocol(["superchat"]), Some("superchat"));
    assert_eq!(up.choose_subprotocol(["other"]), None);
    assert_eq!(
        up.respond(Accept::new().subprotocol(Some("other"))).unwrap_err(),
        UsageError::SubprotocolNotOffered("other".into())
    );
    let (response, negotiated) = up.respond(Accept::new()).unwrap();
    assert!(!response.headers().contains_key("sec-websocket-protocol"), "none selected: no header");
    assert_eq!(negotiated.subprotocol(), None);

    let ext = Extension::parse_list("x-test; a=1").unwrap().remove(0);
    assert_eq!(
        up.respond(Accept::new().extension(ext.clone())).unwrap_err(),
        UsageError::ExtensionNotOffered("x-test".into())
    );
    let offered =
        upgrade(&sample_with("Origin", Some("Sec-WebSocket-Extensions: x-test"))).unwrap();
    assert_eq!(offered.origin(), None);
    let (response, negotiated) = offered
        .respond(
            Accept::new()
                .extension(ext)
                .header(http::header::SET_COOKIE, http::HeaderValue::from_static("session=1")),
        )
        .unwrap();
    assert_eq!(response.headers()["sec-websocket-extensions"], "x-test; a=1");
    assert_eq!(response.headers()["set-cookie"], "session=1");
    assert_eq!(negotiated.extensions(), ["x-test; a=1"]);
}

#[test]
fn malformed_offers_are_400() {
    let proto = sample_with("Sec-WebSocket-Protocol", Some("Sec-WebSocket-Protocol: chat, s p"));
    assert_eq!(status(&proto), Some(StatusCode::BAD_REQUEST));
    let ext = sample_with("Origin", Some("Sec-WebSocket-Extensions: a; b=\"x"));
    assert_eq!(status(&ext), Some(StatusCode::BAD_REQUEST));
    let origins = sample_with("Origin", Some("Origin: http://a\r\nOrigin: http://b"));
    assert_eq!(upgrade(&origins).unwrap_err(), HandshakeError::DuplicateHeader("Origin"));
}

/// Found by the interop suite: Python's websockets sends an empty `Sec-WebSocket-Extensions`
/// header when it offers nothing. That is no offer, not a malformed request.
#[test]
fn interop_python_empty_extensions_header_is_no_offer() {
    let wire = sample_with("Origin", Some("Sec-WebSocket-Extensions: "));
    let up = upgrade(&wire).unwrap();
    assert!(up.extensions().is_empty());
    let response = GOOD_RESPONSE.replace("\r\n\r\n", "\r\nSec-WebSocket-Extensions: \r\n\r\n");
    assert!(client_result(&response).is_ok());
}

/// Refusals carry a one-line plain-text reason that names the header at fault.
#[test]
fn refusals_are_one_line_plain_text() {
    let err = upgrade(&sample_with("Sec-WebSocket-Key", None)).unwrap_err();
    let response = err.to_response().unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.body(), "missing Sec-WebSocket-Key header\n");
    assert_eq!(response.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(response.headers()["connection"], "close");
    assert!(
        HandshakeError::AcceptMismatch.to_response().is_none(),
        "client-side errors have no status"
    );
}

/// The seeds' requests, as real browsers send them, upgrade.
#[test]
fn seed_requests_upgrade() {
    let chrome_70 = "GET ws://172.22.9.1:8301/provier-websocket/389/qjm0qj13/websocket HTTP/1.1\r\n\
Host: 172.22.9.1:8301\r\n\
Connection: Upgrade\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (Macintosh; Intel Mac OS X 10_13_6) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.102 Safari/537.36\r\n\
Upgrade: websocket\r\n\
Origin: http://localhost:9318\r\n\
Sec-WebSocket-Version: 13\r\n\
Accept-Encoding: gzip, deflate\r\n\
Accept-Language: zh-CN,zh;q=0.9,en;q=0.8,zh-TW;q=0.7\r\n\
Sec-WebSocket-Key: UvyGH6jvbDySVThkGrtHUQ==\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";
    let up = upgrade(chrome_70).unwrap();
    assert_eq!(up.extensions()[0].name(), "permessage-deflate");
    assert_eq!(up.origin(), Some("http://localhost:9318"));

    let chrome_81 = "GET /uin=xxxxxxxx&app=xxxxxxxxx&token=XXXXXXXXXXXX HTTP/1.1\r\n\
Host: server.example.cn:443\r\n\
Connection: Upgrade\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_2) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/81.0.4044.138 Safari/537.36\r\n\
Upgrade: websocket\r\n\
Sec-WebSocket-Version: 13\r\n\
Accept-Encoding: gzip, deflate\r\n\
Accept-Language: zh-CN,zh;q=0.9\r\n\
Cookie: user_id=XXXXX\r\n\
Sec-WebSocket-Key: 1/2hTi/+eNURiekpNI4k5Q==\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
Sec-WebSocket-Protocol: binary, base64\r\n\r\n";
    let up = upgrade(chrome_81).unwrap();
    assert_eq!(up.choose_subprotocol(["base64"]), Some("base64"));

    let other = SAMPLE.replace("dGhlIHNhbXBsZSBub25jZQ==", "x3JJHMbDL1EzLkh9GBhXDw==");
    let (response, _) = upgrade(&other).unwrap().respond(Accept::new()).unwrap();
    assert_eq!(response.headers()["sec-websocket-accept"], "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

/// A request whose first frame arrived in the same read: the frame bytes are handed on.
#[test]
fn first_frame_in_the_same_read_is_kept() {
    let mut wire = SAMPLE.as_bytes().to_vec();
    wire.extend_from_slice(&[0x81, 0x82, 0, 0, 0, 0, b'h', b'i']);
    let parsed = parse_request(&wire, &Limits::default()).unwrap().unwrap();
    let (_, negotiated) =
        Upgrade::from_request(&parsed.value).unwrap().respond(Accept::new()).unwrap();
    let mut server = Connection::new(Role::Server, &negotiated, Config::default());
    server.receive(&wire[parsed.len..]);
    assert_eq!(server.next_message().unwrap(), Some(Message::text("hi")));
}

// ---- client: RFC 6455 §4.1 ------------------------------------------------------------------

fn sample_client() -> ClientHandshake {
    ClientRequest::new("ws://server.example.com/chat")
        .subprotocols(["chat", "superchat"])
        .build(Key::from_bytes(*b"the sample nonce"))
        .unwrap()
}

const GOOD_RESPONSE: &str = "HTTP/1.1 101 Switching Protocols\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
Sec-WebSocket-Protocol: chat\r\n\r\n";

fn client_result(response: &str) -> Result<Negotiated, HandshakeError> {
    sample_client()
        .read_response(response.as_bytes(), &Limits::default())
        .map(|done| done.expect("a complete head").value.negotiated)
}

#[test]
fn client_request_has_every_required_header() {
    let hs = ClientRequest::new("ws://example.com/chat?x=1&y=2")
        .origin("http://example.com")
        .extension("permessage-deflate; client_max_window_bits")
        .header("Cookie", "a=b")
        .build(Key::from_bytes(*b"the sample nonce"))
        .unwrap();
    let mut wire = BytesMut::new();
    hs.write_request(&mut wire);
    let text = String::from_utf8(wire.to_vec()).unwrap();
    assert!(text.starts_with("GET /chat?x=1&y=2 HTTP/1.1\r\n"), "{text}");
    for line in [
        "Host: example.com\r\n",
        "Upgrade: websocket\r\n",
        "Connection: Upgrade\r\n",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        "Sec-WebSocket-Version: 13\r\n",
        "Origin: http://example.com\r\n",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
        "Cookie: a=b\r\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in {text}");
    }
    assert!(!text.contains("Sec-WebSocket-Protocol"), "nothing offered, no header");
    // and our own server accepts it
    let parsed = parse_request(&wire, &Limits::default()).unwrap().unwrap();
    assert!(Upgrade::from_request(&parsed.value).is_ok());
}

#[test]
fn client_urls() {
    let key = Key::from_bytes([0; 16]);
    let host = |url: &str| {
        let hs = ClientRequest::new(url).build(key).unwrap();
        (
            hs.request().headers()["host"].to_str().unwrap().to_string(),
            hs.port(),
            hs.is_secure(),
            hs.request().uri().to_string(),
        )
    };
    assert_eq!(host("ws://a.example"), ("a.example".into(), 80, false, "/".into()));
    assert_eq!(host("wss://a.example/x"), ("a.example".into(), 443, true, "/x".into()));
    assert_eq!(host("ws://a.example:443/"), ("a.example:443".into(), 443, false, "/".into()));
    assert_eq!(host("wss://a.example:80"), ("a.example:80".into(), 80, true, "/".into()));
    assert_eq!(host("WS://[::1]:9001/p?q"), ("[::1]:9001".into(), 9001, false, "/p?q".into()));
    for bad in [
        "http://a.example/",
        "ws://a.example/#frag",
        "ws:///path",
        "ws://user@a.example/",
        "a.example",
    ] {
        assert!(
            matches!(ClientRequest::new(bad).build(key), Err(UsageError::InvalidUrl(_))),
            "{bad}"
        );
    }
    assert!(ClientRequest::new("ws://a").subprotocols(["a b"]).build(key).is_err());
    assert!(ClientRequest::new("ws://a").header("Bad Name", "x").build(key).is_err());
}

#[test]
fn client_accepts_the_rfc_response() {
    assert_eq!(client_result(GOOD_RESPONSE).unwrap().subprotocol(), Some("chat"));
    let jetty_case = GOOD_RESPONSE.replace("Upgrade: websocket", "Upgrade: WebSocket");
    assert!(client_result(&jetty_case).is_ok(), "the token is case-insensitive");
}

/// §4.1 item 1: a status other than 101 is an error carrying status, headers and body start.
#[test]
fn client_non_101_keeps_status_headers_and_body() {
    let refusal = "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 19\r\n\r\norigin not allowed\n";
    match client_result(refusal).unwrap_err() {
        HandshakeError::Status { status, headers, body } => {
            assert_eq!(status, StatusCode::FORBIDDEN);
            assert_eq!(headers["content-type"], "text/plain");
            assert_eq!(body, Bytes::from_static(b"origin not allowed\n"));
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = client_result(refusal).unwrap_err();
    assert_eq!(
        err.to_string(),
        "server answered 403 Forbidden instead of 101 Switching Protocols: origin not allowed"
    );
}

/// §4.1 items 2-6.
#[test]
fn client_rejects_bad_responses() {
    let cases = [
        ("Upgrade: websocket\r\n", "Upgrade: h2c\r\n"),
        ("Upgrade: websocket\r\n", ""),
        ("Connection: Upgrade\r\n", "Connection: close\r\n"),
        ("Connection: Upgrade\r\n", ""),
        ("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", ""),
        (
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",
        ),
        ("Sec-WebSocket-Protocol: chat\r\n", "Sec-WebSocket-Protocol: other\r\n"),
        ("Sec-WebSocket-Protocol: chat\r\n", "Sec-WebSocket-Protocol: chat, superchat\r\n"),
        ("Sec-WebSocket-Protocol: chat\r\n", "Sec-WebSocket-Extensions: permessage-deflate\r\n"),
    ];
    for (from, to) in cases {
        let response = GOOD_RESPONSE.replace(from, to);
        let err = client_result(&response).unwrap_err();
        assert_eq!(err.status(), None, "{to:?}: client-side errors close, they send no status");
        assert!(matches!(err, HandshakeError::InvalidResponse(_)), "{to:?}: {err:?}");
    }
    let wrong_accept =
        GOOD_RESPONSE.replace("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "x3JJHMbDL1EzLkh9GBhXDw==");
    assert_eq!(client_result(&wrong_accept).unwrap_err(), HandshakeError::AcceptMismatch);
}

/// A subprotocol header when none was offered is an error.
#[test]
fn client_rejects_a_subprotocol_it_did_not_offer() {
    let hs = ClientRequest::new("ws://server.example.com/chat")
        .build(Key::from_bytes(*b"the sample nonce"))
        .unwrap();
    let err = hs.read_response(GOOD_RESPONSE.as_bytes(), &Limits::default()).unwrap_err();
    assert!(err.to_string().contains("not offered"), "{err}");
    let without = GOOD_RESPONSE.replace("Sec-WebSocket-Protocol: chat\r\n", "");
    let done = hs.read_response(without.as_bytes(), &Limits::default()).unwrap().unwrap();
    assert_eq!(done.value.negotiated.subprotocol(), None);
}

proptest! {
    /// A request built by the client parses back, on the server, the same for every split.
    #[test]
    fn request_roundtrip_any_split(path in "/[a-z0-9/]{0,20}", query in proptest::option::of("[a-z0-9=&]{1,10}"),
                                   protocols in proptest::collection::vec("[a-z]{1,8}", 0..3),
                                   key in any::<[u8; 16]>(), cut in any::<prop::sample::Index>()) {
        let url = match &query {
            Some(q) => format!("ws://h.example:9000{path}?{q}"),
            None => format!("ws://h.example:9000{path}"),
        };
        let hs = ClientRequest::new(url).subprotocols(protocols.clone()).build(Key::from_bytes(key)).unwrap();
        let mut wire = BytesMut::new();
        hs.write_request(&mut wire);
        let cut = cut.index(wire.len());
        prop_assert!(parse_request(&wire[..cut], &Limits::default()).unwrap().is_none());
        let parsed = parse_request(&wire, &Limits::default()).unwrap().unwrap();
        prop_assert_eq!(parsed.len, wire.len());
        let up = Upgrade::from_request(&parsed.value).unwrap();
        prop_assert_eq!(up.subprotocols(), &protocols[..]);
        prop_assert_eq!(up.host(), "h.example:9000");
        let chosen = protocols.first().map(String::as_str);
        let (response, _) = up.respond(Accept::new().subprotocol(chosen)).unwrap();
        let mut answer = BytesMut::new();
        write_response(&response, &mut answer);
        let rcut = cut.min(answer.len() - 1);
        prop_assert!(hs.read_response(&answer[..rcut], &Limits::default()).unwrap().is_none());
        let done = hs.read_response(&answer, &Limits::default()).unwrap().unwrap();
        prop_assert_eq!(done.len, answer.len());
        prop_assert_eq!(done.value.negotiated.subprotocol(), chosen);
    }
}

#[test]
fn header_count_limit_holds_below_and_above_the_stack_slots() {
    let with = |n: usize| {
        let extra: String = (0..n).map(|i| format!("X-H{i}: v\r\n")).collect();
        SAMPLE.replacen("\r\n\r\n", &format!("\r\n{extra}\r\n"), 1)
    };
    let sample_headers = 7;
    for (max, extra, fits) in [
        (64, 64 - sample_headers, true),
        (64, 65 - sample_headers, false),
        (16, 16 - sample_headers, true),
        (16, 17 - sample_headers, false),
        (100, 100 - sample_headers, true), // beyond the stack slots: the heap
        (100, 101 - sample_headers, false),
    ] {
        let limits = Limits::default().max_headers(max);
        let wire = with(extra);
        match parse_request(wire.as_bytes(), &limits) {
            Ok(Some(head)) if fits => {
                assert_eq!(head.value.headers().len(), sample_headers + extra);
                assert_eq!(head.len, wire.len());
            }
            Err(HandshakeError::HeadTooLarge) if !fits => {}
            other => panic!("max {max}, {extra} extra headers: {:?}", other.map(|h| h.is_some())),
        }
        let response = format!("HTTP/1.1 101 Switching Protocols\r\n{}\r\n", {
            let n = if fits { max } else { max + 1 };
            (0..n).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()
        });
        assert_eq!(
            parse_response(response.as_bytes(), &limits).is_ok(),
            fits,
            "response, max {max}"
        );
    }
}

/// An RFC 8441 extended CONNECT as hyper hands it over: method, URI with scheme, authority and
/// path, HTTP/2, and the headers given.
fn connect(uri: &str, headers: &[(&str, &str)]) -> http::Request<()> {
    let mut request = http::Request::connect(uri).version(http::Version::HTTP_2);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(()).unwrap()
}

#[test]
fn rfc8441_extended_connect() {
    let v13 = [("sec-websocket-version", "13")];
    let ok =
        Upgrade::from_connect(&connect("https://h.example:8443/chat?x=1", &v13), Some("websocket"));
    let upgrade = ok.unwrap();
    assert!(upgrade.is_extended_connect());
    assert_eq!(upgrade.host(), "h.example:8443");
    let (response, _) = upgrade.respond(Accept::new()).unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    for absent in ["upgrade", "connection", "sec-websocket-accept"] {
        assert!(response.headers().get(absent).is_none(), "{absent} over HTTP/2");
    }
    // A proxy (HAProxy) may pass the HTTP/1.1 key along: allowed, ignored.
    let with_key =
        [("sec-websocket-version", "13"), ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")];
    assert!(Upgrade::from_connect(&connect("http://h/x", &with_key), Some("websocket")).is_ok());
    // Offers are negotiated as over HTTP/1.1.
    let offers = [
        ("sec-websocket-version", "13"),
        ("sec-websocket-protocol", "chat, superchat"),
        ("sec-websocket-extensions", "permessage-deflate; client_max_window_bits"),
        ("origin", "https://h.example"),
    ];
    let upgrade =
        Upgrade::from_connect(&connect("https://h.example/", &offers), Some("websocket")).unwrap();
    assert_eq!(upgrade.origin(), Some("https://h.example"));
    let accept = Accept::new()
        .subprotocol(upgrade.choose_subprotocol(["superchat"]))
        .deflate(Some(DeflateConfig::default()));
    let (response, negotiated) = upgrade.respond(accept).unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "superchat");
    assert!(response.headers()["sec-websocket-extensions"]
        .to_str()
        .unwrap()
        .starts_with("permessage-deflate"));
    assert_eq!(negotiated.subprotocol(), Some("superchat"));
}

#[test]
fn rfc8441_refusals() {
    let v13 = [("sec-websocket-version", "13")];
    let refused = |request: &http::Request<()>, protocol| {
        Upgrade::from_connect(request, protocol).unwrap_err()
    };
    let plain = connect("https://h/chat", &v13);
    assert!(matches!(refused(&plain, None), HandshakeError::NotUpgrade), "a plain CONNECT");
    assert!(matches!(refused(&plain, Some("webtransport")), HandshakeError::NotUpgrade));
    let get = http::Request::get("https://h/").version(http::Version::HTTP_2).body(()).unwrap();
    assert!(matches!(refused(&get, Some("websocket")), HandshakeError::NotUpgrade));
    let mut h11 = connect("https://h/chat", &v13);
    *h11.version_mut() = http::Version::HTTP_11;
    assert!(matches!(refused(&h11, Some("websocket")), HandshakeError::HttpVersion));
    let authority_only = http::Request::connect("h:443")
        .version(http::Version::HTTP_2)
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    assert!(matches!(
        refused(&authority_only, Some("websocket")),
        HandshakeError::MissingHeader(":scheme")
    ));
    let none = connect("https://h/chat", &[]);
    assert!(matches!(
        refused(&none, Some("websocket")),
        HandshakeError::MissingHeader("Sec-WebSocket-Version")
    ));
    let v8 = connect("https://h/chat", &[("sec-websocket-version", "8")]);
    let error = refused(&v8, Some("websocket"));
    assert_eq!(error.status(), Some(StatusCode::UPGRADE_REQUIRED), "426 and the version we speak");
    let bad = connect(
        "https://h/chat",
        &[("sec-websocket-version", "13"), ("sec-websocket-protocol", "a b")],
    );
    assert_eq!(refused(&bad, Some("websocket")).status(), Some(StatusCode::BAD_REQUEST));
}
