//! Access control of `wsx serve` (docs/auth.md), on the real binary: token authentication of
//! upgrades (HS256, RS256, ES256; header, query, subprotocol), the expiry of open connections,
//! the rights of the claims, and the rate limits (per chat member, per client address).
//!
//! Most tokens are made here with the `openssl` command (an implementation independent of the
//! server's); `wsx token` makes the others.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsx::{CloseCode, Message};

use self::common::{connector, next_data, within, Server, WSX};

const SECRET: &str = "test-secret-0123456789abcdef-0123456789abcdef";

/// A directory of this test binary's own (keys, secret files).
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsx-access-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The secret in a file, with the trailing newline an editor leaves.
fn secret_file(name: &str) -> PathBuf {
    let path = scratch(name).join("secret");
    std::fs::write(&path, format!("{SECRET}\n")).unwrap();
    path
}

fn now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// `openssl dgst -sha256 -binary ARGS` over `input`.
fn openssl_sha256(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-binary"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl runs");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    output.stdout
}

/// A JWT of `claims` with this header, signed by openssl `dgst ARGS`.
fn openssl_jwt(header: &Value, claims: &Value, args: &[&str]) -> String {
    let header = base64url(header.to_string().as_bytes());
    let input = format!("{header}.{}", base64url(claims.to_string().as_bytes()));
    format!("{input}.{}", base64url(&openssl_sha256(args, input.as_bytes())))
}

/// A JWT of `claims`, signed by openssl with HS256 and `secret`.
fn hs256_with(secret: &str, claims: &Value) -> String {
    let key = format!("key:{secret}");
    openssl_jwt(
        &json!({ "alg": "HS256", "typ": "JWT" }),
        claims,
        &["-mac", "HMAC", "-macopt", &key],
    )
}

fn hs256(claims: &Value) -> String {
    hs256_with(SECRET, claims)
}

/// A JWT of `claims`, signed by openssl with RS256 and the private key `key`.
fn rs256(key: &Path, claims: &Value) -> String {
    openssl_jwt(&json!({ "alg": "RS256", "typ": "JWT" }), claims, &["-sign", key.to_str().unwrap()])
}

/// `wsx token ARGS`.
fn wsx_token(args: &[&str]) -> String {
    let output = Command::new(WSX).arg("token").args(args).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// A key pair made by openssl: (private key PEM, public key PEM).
fn key_pair(dir: &Path, algorithm: &[&str]) -> (PathBuf, PathBuf) {
    let (private, public) = (dir.join("key.pem"), dir.join("public.pem"));
    let made = Command::new("openssl")
        .args(["genpkey", "-out", private.to_str().unwrap()])
        .args(algorithm)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success());
    let out = Command::new("openssl")
        .args(["pkey", "-in", private.to_str().unwrap(), "-pubout", "-out"])
        .arg(&public)
        .status()
        .unwrap();
    assert!(out.success());
    (private, public)
}

/// The error of a refused connection, as text (it names the status).
async fn refused(connector: wsx::Connector, url: &str) -> String {
    match connector.connect(url).await {
        Ok(_) => panic!("{url}: connected, expected a refusal"),
        Err(e) => e.to_string(),
    }
}

fn bearer(token: &str) -> wsx::Connector {
    connector().header("Authorization", format!("Bearer {token}"))
}

#[tokio::test]
async fn hs256_tokens_in_a_header_the_query_or_a_subprotocol() {
    let secret = secret_file("hs256");
    let server = Server::start(&["--auth-hs256-secret-file", secret.to_str().unwrap()]);
    let lobby = server.url("/chat/lobby");
    let alice = json!({ "sub": "alice", "rooms": ["lobby"], "exp": now() + 600 });
    let good = hs256(&alice);

    // Refused before any upgrade: no token, a forged one, an expired one, another room.
    let err = refused(connector(), &lobby).await;
    assert!(err.contains("401"), "no token: {err}");
    let forged = hs256_with("another secret of the same length, or not", &alice);
    assert!(refused(bearer(&forged), &lobby).await.contains("401"), "bad signature");
    let expired = hs256(&json!({ "sub": "alice", "rooms": ["lobby"], "exp": now() - 10 }));
    assert!(refused(bearer(&expired), &lobby).await.contains("401"), "expired");
    let err = refused(bearer(&good), &server.url("/chat/elsewhere")).await;
    assert!(err.contains("403"), "another room: {err}");
    let unsigned =
        format!("{}.{}.", base64url(br#"{"alg":"none"}"#), base64url(alice.to_string().as_bytes()));
    assert!(refused(bearer(&unsigned), &lobby).await.contains("401"), "alg none");

    // Accepted: in the header, in the query, in a subprotocol entry.
    let (mut ws, _) = bearer(&good).connect(&lobby).await.unwrap();
    ws.send(Message::text("via header")).await.unwrap();
    assert_eq!(next_data(&mut ws).await, Message::text("via header"));
    let (mut ws, _) = connector().connect(&format!("{lobby}?access_token={good}")).await.unwrap();
    ws.send(Message::text("via query")).await.unwrap();
    assert_eq!(next_data(&mut ws).await, Message::text("via query"));
    let entry = format!("access_token.{good}");
    let (mut ws, _) = connector().subprotocols(["chat", &entry]).connect(&lobby).await.unwrap();
    assert_eq!(ws.subprotocol(), Some("chat"), "the real subprotocol, never the token");
    ws.send(Message::text("via subprotocol")).await.unwrap();
    assert_eq!(next_data(&mut ws).await, Message::text("via subprotocol"));
    let (ws, _) = connector().subprotocols([&entry]).connect(&server.url("/echo")).await.unwrap();
    assert_eq!(ws.subprotocol(), None, "nothing to choose: none, not the token entry");

    for (reason, n) in
        [("auth_missing", 1), ("auth_invalid", 2), ("auth_expired", 1), ("auth_forbidden", 1)]
    {
        let metric = format!("wsx_handshakes_rejected_total{{reason=\"{reason}\"}}");
        assert_eq!(server.metric(&metric).await, n, "{metric}");
    }
}

/// The upgrade that comes later on a kept-alive connection (hyper's path) is checked too.
#[tokio::test]
async fn a_later_upgrade_on_a_kept_alive_connection_needs_a_token_too() {
    let secret = secret_file("later");
    let server = Server::start(&["--auth-hs256-secret-file", secret.to_str().unwrap()]);
    let token = hs256(&json!({ "sub": "bob", "rooms": "*", "exp": now() + 600 }));
    let upgrade = |auth: &str| {
        format!(
            "GET /echo HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{auth}\r\n",
            server.addr
        )
    };
    let health = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr);
    for (auth, status) in [
        (String::new(), "HTTP/1.1 401"),
        (format!("Authorization: Bearer {token}\r\n"), "HTTP/1.1 101"),
    ] {
        let mut tcp = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
        tcp.write_all(format!("{health}{}", upgrade(&auth)).as_bytes()).await.unwrap();
        let mut reply = Vec::new();
        within("two responses", async {
            while String::from_utf8_lossy(&reply).matches("HTTP/1.1 ").count() < 2 {
                let mut buf = [0; 4096];
                let n = tcp.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&reply));
                reply.extend_from_slice(&buf[..n]);
            }
        })
        .await;
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        let second = &reply[reply[1..].find("HTTP/1.1 ").unwrap() + 1..];
        assert!(second.starts_with(status), "{reply}");
    }
}

#[tokio::test]
async fn a_connection_is_closed_with_1008_when_its_token_expires() {
    let secret = secret_file("expiry");
    let server = Server::start(&["--auth-hs256-secret-file", secret.to_str().unwrap()]);
    let started = Instant::now();
    let token = hs256(&json!({ "sub": "carol", "rooms": ["r"], "exp": now() + 2 }));
    let (mut chat, _) = bearer(&token).connect(&server.url("/chat/r")).await.unwrap();
    let (mut echo, _) = bearer(&token).connect(&server.url("/echo")).await.unwrap();
    echo.send(Message::text("still valid")).await.unwrap();
    assert_eq!(next_data(&mut echo).await, Message::text("still valid"));
    for ws in [&mut chat, &mut echo] {
        match next_data(ws).await {
            Message::Close(Some(frame)) => {
                assert_eq!(frame.code, CloseCode::POLICY_VIOLATION);
                assert_eq!(frame.reason, "token expired");
            }
            other => panic!("expected Close 1008, got {other:?}"),
        }
    }
    // `exp` is in whole seconds: closed 1 to 2 s after the token was made, not at once.
    assert!(started.elapsed() >= Duration::from_millis(900), "{:?}", started.elapsed());
    assert_eq!(server.metric("wsx_policy_closes_total{reason=\"token_expired\"}").await, 2);
}

/// The `sub` (or `name`) of the token is the author of a member's messages: a JSON object's
/// `name` is set to it, whatever the client wrote; `publish` limits the rooms it writes to.
#[tokio::test]
async fn names_come_from_the_token_and_publish_rights_are_kept() {
    let secret = secret_file("names");
    let server = Server::start(&["--auth-hs256-secret-file", secret.to_str().unwrap()]);
    let url = server.url("/chat/hall");
    let secret = secret.to_str().unwrap();
    let dave = wsx_token(&["--secret-file", secret, "--sub", "dave", "--rooms", "hall,other"]);
    let reader =
        wsx_token(&["--secret-file", secret, "--sub", "erin", "--rooms", "*", "--read-only"]);
    let (mut d, _) = bearer(&dave).connect(&url).await.unwrap();
    let (mut e, _) = bearer(&reader).connect(&url).await.unwrap();
    d.send(Message::text(r#"{"name":"mallory","text":"hi"}"#)).await.unwrap();
    for ws in [&mut d, &mut e] {
        let Message::Text(text) = next_data(ws).await else { panic!("text") };
        let message: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(message, json!({ "name": "dave", "text": "hi" }));
    }
    e.send(Message::text(r#"{"text":"may I?"}"#)).await.unwrap();
    let Message::Text(text) = next_data(&mut e).await else { panic!("text") };
    let notice: Value = serde_json::from_str(&text).unwrap();
    assert_eq!((&notice["dropped"], &notice["reason"]), (&json!(true), &json!("no_publish")));
    d.send(Message::text("plain")).await.unwrap();
    assert_eq!(next_data(&mut d).await, Message::text("plain"), "erin's message never came");
    assert_eq!(server.metric("wsx_room_messages_dropped_total{reason=\"no_publish\"}").await, 1);
}

#[tokio::test]
async fn rs256_and_es256_with_a_public_key() {
    let dir = scratch("rsa");
    let (private, public) =
        key_pair(&dir, &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]);
    let server =
        Server::start(&["--auth-public-key", public.to_str().unwrap(), "--auth-alg", "RS256"]);
    let url = server.url("/chat/keys");
    let claims = json!({ "sub": "frank", "rooms": ["keys"], "exp": now() + 600 });
    // Signed by openssl, and by `wsx token`.
    let (mut ws, _) = bearer(&rs256(&private, &claims)).connect(&url).await.unwrap();
    ws.send(Message::text("rsa")).await.unwrap();
    assert_eq!(next_data(&mut ws).await, Message::text("rsa"));
    let minted = wsx_token(&[
        "--private-key",
        private.to_str().unwrap(),
        "--alg",
        "RS256",
        "--sub",
        "frank",
        "--rooms",
        "keys",
    ]);
    assert!(bearer(&minted).connect(&url).await.is_ok());
    // Another key pair's signature, and an HS256 token made with the public key as secret.
    let (other, _) =
        key_pair(&scratch("rsa-other"), &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]);
    let err = refused(bearer(&rs256(&other, &claims)), &url).await;
    assert!(err.contains("401"), "{err}");
    let pem = std::fs::read_to_string(&public).unwrap();
    let confused = hs256_with(&pem, &claims);
    assert!(refused(bearer(&confused), &url).await.contains("401"), "algorithm confusion");

    let dir = scratch("ec");
    let (private, public) =
        key_pair(&dir, &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let server =
        Server::start(&["--auth-public-key", public.to_str().unwrap(), "--auth-alg", "es256"]);
    let minted = wsx_token(&[
        "--private-key",
        private.to_str().unwrap(),
        "--alg",
        "ES256",
        "--sub",
        "grace",
        "--rooms",
        "*",
        "--ttl",
        "5m",
    ]);
    let (mut ws, _) = bearer(&minted).connect(&server.url("/chat/any")).await.unwrap();
    ws.send(Message::text("ec")).await.unwrap();
    assert_eq!(next_data(&mut ws).await, Message::text("ec"));
    let hs = hs256(&json!({ "sub": "grace", "rooms": "*", "exp": now() + 600 }));
    assert!(refused(bearer(&hs), &server.url("/echo")).await.contains("401"));
}

/// `wsx serve` does not start with a key it cannot read, nor `wsx token` without a key.
#[test]
fn bad_key_configuration_is_reported() {
    let dir = scratch("bad");
    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "not a key").unwrap();
    let output = Command::new(WSX)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--auth-public-key",
            junk.to_str().unwrap(),
            "--auth-alg",
            "RS256",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("auth-public-key"));
    let output = Command::new(WSX)
        .args(["token", "--sub", "x"])
        .env_remove("WSX_AUTH_SECRET")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("WSX_AUTH_SECRET"));
}

/// Over --room-rate or --room-bytes-rate, messages are dropped and the sender gets one notice
/// per run of dropped messages; the room goes on. (Behind a trusted proxy: loopback clients
/// are not limited.)
#[tokio::test]
async fn the_room_rate_limits_drop_with_one_notice() {
    let limits = ["--room-rate", "5/m", "--room-bytes-rate", "1500/m"];
    let server = Server::start(&[&["--trust-proxy", "127.0.0.1"][..], &limits].concat());
    let url = server.url("/chat/fast");
    let member = |ip: &str| connector().header("X-Forwarded-For", ip.to_string());
    let (mut fast, _) = member("203.0.113.20").connect(&url).await.unwrap();
    let (mut other, _) = member("203.0.113.21").connect(&url).await.unwrap();
    let count = 30;
    for n in 0..count {
        fast.send(Message::text(format!("m{n}"))).await.unwrap();
    }
    let dropped = "wsx_room_messages_dropped_total{reason=\"rate\"}";
    within("all counted", async {
        while server.metric(dropped).await < count - 5 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(server.metric(dropped).await, count - 5, "a burst of 5, then 1 every 12 s");
    // The sender: its 5 messages back from the room, and one notice.
    let (mut passed, mut notices) = (Vec::new(), 0);
    for _ in 0..6 {
        let Message::Text(text) = next_data(&mut fast).await else { panic!("text") };
        if text.starts_with('{') {
            let notice: Value = serde_json::from_str(&text).unwrap();
            assert_eq!((&notice["dropped"], &notice["reason"]), (&json!(true), &json!("rate")));
            notices += 1;
        } else {
            passed.push(text.to_string());
        }
    }
    assert_eq!(passed, ["m0", "m1", "m2", "m3", "m4"]);
    assert_eq!(notices, 1, "one notice for a run of dropped messages");
    // The other member: the same 5, then its own message (its own limits).
    for n in 0..5 {
        assert_eq!(next_data(&mut other).await, Message::text(format!("m{n}")));
    }
    other.send(Message::text("x".repeat(1000))).await.unwrap();
    assert_eq!(next_data(&mut other).await.len(), 1000);
    // 500 bytes left: a second message of 1000 is dropped, with a notice.
    other.send(Message::text("y".repeat(1000))).await.unwrap();
    let Message::Text(text) = next_data(&mut other).await else { panic!("text") };
    assert!(text.contains("\"reason\":\"rate\""), "{text}");
    assert_eq!(server.metric(dropped).await, count - 5 + 1);
}

/// Over --handshake-rate from one client address: 429 with Retry-After before any upgrade.
#[tokio::test]
async fn the_handshake_rate_per_address_answers_429() {
    let server = Server::start(&["--trust-proxy", "127.0.0.1", "--handshake-rate", "3/m"]);
    let url = server.url("/echo");
    let from = |ip: &str| connector().header("X-Forwarded-For", ip.to_string());
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(from("203.0.113.30").connect(&url).await.unwrap().0);
    }
    let err = refused(from("203.0.113.30"), &url).await;
    assert!(err.contains("429"), "{err}");
    // The answer, raw: Retry-After in whole seconds (one handshake every 20 s).
    let mut tcp = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let request = format!(
        "GET /echo HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         X-Forwarded-For: 203.0.113.30\r\n\r\n",
        server.addr
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut reply = String::new();
    within("429", tcp.read_to_string(&mut reply)).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 429"), "{reply}");
    let retry_after = reply
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("retry-after: ").map(str::to_string))
        .unwrap_or_else(|| panic!("no Retry-After: {reply}"));
    assert!((15..=20).contains(&retry_after.trim().parse::<u64>().unwrap()), "{reply}");
    // Another address, and loopback clients, are not held back.
    assert!(from("203.0.113.31").connect(&url).await.is_ok());
    for _ in 0..10 {
        assert!(connector().connect(&url).await.is_ok());
    }
    assert_eq!(server.metric("wsx_handshakes_rejected_total{reason=\"handshake_rate\"}").await, 2);
}
