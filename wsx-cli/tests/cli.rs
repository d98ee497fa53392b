//! The `wsx` binary itself, started on a free loopback port by each test and stopped by its
//! process id.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsx::{CloseCode, Message};

use self::common::{connector, next_data, within, Server, WSX};

#[tokio::test]
async fn echo_keeps_text_text_and_binary_binary() {
    let server = Server::start(&[]);
    let (mut ws, _) = connector().connect(&server.url("/echo")).await.unwrap();
    ws.send(Message::text("héllo")).await.unwrap();
    assert_eq!(next_data(&mut ws).await, Message::text("héllo"));
    ws.send(Message::binary(vec![0u8, 159, 255])).await.unwrap();
    assert_eq!(next_data(&mut ws).await, Message::binary(vec![0u8, 159, 255]));
    ws.send(Message::binary(vec![7u8; 1 << 20])).await.unwrap();
    assert_eq!(next_data(&mut ws).await.len(), 1 << 20);
    ws.close(CloseCode::NORMAL, "").await.unwrap();
}

#[tokio::test]
async fn rooms_deliver_everything_to_everyone_in_one_order() {
    let server = Server::start(&[]);
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(
            connector().subprotocols(["chat"]).connect(&server.url("/chat/r1")).await.unwrap().0,
        );
    }
    let (mut other_room, _) = connector().connect(&server.url("/chat/r2")).await.unwrap();
    // wait until all three are members: each sees its own hello
    let per_member = 20;
    let mut senders = Vec::new();
    for (i, mut ws) in members.into_iter().enumerate() {
        senders.push(tokio::spawn(async move {
            for n in 0..per_member {
                ws.send(Message::text(format!("member{i}-{n}"))).await.unwrap();
            }
            let mut seen = Vec::new();
            while seen.len() < 3 * per_member {
                match next_data(&mut ws).await {
                    Message::Text(t) => seen.push(t.to_string()),
                    other => panic!("unexpected {other:?}"),
                }
            }
            seen
        }));
    }
    let mut orders = Vec::new();
    for s in senders {
        orders.push(within("room delivery", s).await.unwrap());
    }
    for order in &orders[1..] {
        assert_eq!(order, &orders[0], "every member sees the same order");
    }
    for i in 0..3 {
        let mine: Vec<_> =
            orders[0].iter().filter(|m| m.starts_with(&format!("member{i}-"))).collect();
        assert_eq!(mine.len(), per_member, "all of member{i}'s messages, the sender included");
        let expected: Vec<String> = (0..per_member).map(|n| format!("member{i}-{n}")).collect();
        assert_eq!(mine, expected.iter().collect::<Vec<_>>(), "each sender's order is kept");
    }
    // the other room saw none of it
    other_room.send(Message::text("only r2")).await.unwrap();
    assert_eq!(next_data(&mut other_room).await, Message::text("only r2"));
}

#[tokio::test]
async fn healthz_metrics_and_the_page() {
    let server = Server::start(&["--node", "alpha"]);
    let health = server.http_get("/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.to_ascii_lowercase().contains("x-wsx-node: alpha\r\n"), "{health}");
    assert!(
        health.ends_with(
            "{\"status\":\"ok\",\"node\":\"alpha\",\"broker\":\"memory\",\"broker_up\":true,\
             \"connections\":0,\"rooms\":0}\n"
        ),
        "{health}"
    );
    let page = server.http_get("/").await;
    assert!(page.starts_with("HTTP/1.1 200") && page.contains("<title>wsx chat</title>"));
    let (_a, _) = connector().connect(&server.url("/chat/m")).await.unwrap();
    let (mut b, _) = connector().connect(&server.url("/echo")).await.unwrap();
    b.send(Message::text("12345")).await.unwrap();
    next_data(&mut b).await;
    let _ = connector().origin("http://evil.example").connect(&server.url("/echo")).await;
    assert_eq!(server.metric("wsx_connections_open").await, 2);
    assert_eq!(server.metric("wsx_rooms").await, 1);
    assert_eq!(server.metric("wsx_handshakes_accepted_total").await, 2);
    assert_eq!(server.metric("wsx_handshakes_rejected_total{reason=\"origin\"}").await, 1);
    assert_eq!(server.metric("wsx_messages_received_total").await, 1);
    assert_eq!(server.metric("wsx_bytes_sent_total").await, 5);
    let metrics = server.http_get("/metrics").await;
    assert!(metrics.contains("# TYPE wsx_connections_open gauge"));
}

#[tokio::test]
async fn origin_policy() {
    let server = Server::start(&[]);
    let url = server.url("/echo");
    assert!(connector().connect(&url).await.is_ok(), "no Origin: a non-browser client");
    let same = format!("http://{}", server.addr);
    assert!(connector().origin(same).connect(&url).await.is_ok(), "Origin matches Host");
    let err = connector().origin("http://evil.example").connect(&url).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");

    let open = Server::start(&["--allow-origin", "https://app.example"]);
    let url = open.url("/echo");
    assert!(connector().origin("https://app.example").connect(&url).await.is_ok());
    assert!(connector().origin("https://other.example").connect(&url).await.is_err());
    let any = Server::start(&["--allow-origin", "*"]);
    assert!(connector().origin("https://other.example").connect(&any.url("/echo")).await.is_ok());
}

/// Forwarding headers count only from --trust-proxy addresses: for the per-client limit and
/// for the Origin check (X-Forwarded-Host).
#[tokio::test]
async fn forwarding_headers_are_believed_only_from_trusted_proxies() {
    let forwarded = |ip: &str| connector().header("X-Forwarded-For", ip.to_string());
    let trusting = Server::start(&["--trust-proxy", "127.0.0.0/8", "--max-per-client", "1"]);
    let url = trusting.url("/echo");
    let (_one, _) = forwarded("203.0.113.1").connect(&url).await.unwrap();
    let err = forwarded("203.0.113.1").connect(&url).await.unwrap_err().to_string();
    assert!(err.contains("429"), "{err}");
    let (_other, _) = forwarded("203.0.113.2").connect(&url).await.unwrap();
    assert_eq!(trusting.metric("wsx_handshakes_rejected_total{reason=\"client_limit\"}").await, 1);
    // The Origin check compares with the host the client asked the proxy for.
    let behind =
        connector().header("X-Forwarded-Host", "chat.example").origin("https://chat.example");
    assert!(behind.connect(&url).await.is_ok());

    // Not trusted: the headers are ignored (every connection is from 127.0.0.1).
    let plain = Server::start(&["--max-per-client", "1"]);
    let url = plain.url("/echo");
    let (_one, _) = forwarded("203.0.113.1").connect(&url).await.unwrap();
    let err = forwarded("203.0.113.2").connect(&url).await.unwrap_err().to_string();
    assert!(err.contains("429"), "{err}");
    let untrusting = Server::start(&[]);
    let behind =
        connector().header("X-Forwarded-Host", "chat.example").origin("https://chat.example");
    let err = behind.connect(&untrusting.url("/echo")).await.unwrap_err().to_string();
    assert!(err.contains("403"), "{err}");
}

#[tokio::test]
async fn subprotocols_are_negotiated_in_the_clients_order() {
    let server = Server::start(&[]);
    let url = server.url("/chat/p");
    let (ws, _) = connector().subprotocols(["superchat", "chat"]).connect(&url).await.unwrap();
    assert_eq!(ws.subprotocol(), Some("superchat"));
    let (ws, _) = connector().subprotocols(["mqtt", "chat"]).connect(&url).await.unwrap();
    assert_eq!(ws.subprotocol(), Some("chat"));
    let (ws, _) = connector().subprotocols(["mqtt"]).connect(&url).await.unwrap();
    assert_eq!(ws.subprotocol(), None);
}

#[tokio::test]
async fn graceful_shutdown_sends_1001_and_exits_0() {
    let mut server = Server::start(&[]);
    let (mut a, _) = connector().connect(&server.url("/echo")).await.unwrap();
    let (mut b, _) = connector().connect(&server.url("/chat/bye")).await.unwrap();
    a.send(Message::text("x")).await.unwrap();
    next_data(&mut a).await;
    server.signal("-TERM");
    for ws in [&mut a, &mut b] {
        match next_data(ws).await {
            Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::GOING_AWAY),
            other => panic!("expected Close 1001, got {other:?}"),
        }
    }
    let status = within("exit", async {
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(status.success(), "{status:?}");
}

/// A member that does not read is disconnected (1013); the others go on.
#[tokio::test]
async fn slow_member_is_disconnected_and_the_room_goes_on() {
    let server = Server::start(&["--room-backlog", "8", "--slow-timeout", "1s"]);
    // the slow member: a raw handshake, then it never reads
    let mut slow = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let request = format!(
        "GET /chat/busy HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    slow.write_all(request.as_bytes()).await.unwrap();
    let (fast, _) = connector().connect(&server.url("/chat/busy")).await.unwrap();
    let (mut rx, mut tx) = fast.split();
    let payload = Message::binary(vec![1u8; 64 * 1024]);
    let count = 200; // 12.5 MiB: more than the slow member's socket buffers hold
    let writer = tokio::spawn(async move {
        use futures_util::SinkExt;
        for _ in 0..count {
            tx.send(payload.clone()).await.unwrap();
        }
        tx
    });
    let reader = tokio::spawn(async move {
        use futures_util::StreamExt;
        let mut got = 0;
        while got < count {
            match within("room message", rx.next()).await.expect("open").expect("no error") {
                Message::Binary(_) => got += 1,
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        got
    });
    assert_eq!(within("the fast member gets everything", reader).await.unwrap(), count);
    within("writer", writer).await.unwrap();
    within("slow disconnect counted", async {
        while server.metric("wsx_slow_disconnects_total").await < 1 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    drop(slow);
}

#[test]
fn wsx_connect_piped_against_wsx_serve() {
    let server = Server::start(&[]);
    let mut client = Command::new(WSX)
        .args(["connect", &server.url("/echo")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    client.stdin.take().unwrap().write_all(b"first line\nsecond line\n").unwrap();
    let output = client.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "first line\nsecond line\n");

    // a refusal names the cause and fails
    let output = Command::new(WSX)
        .args(["connect", "--origin", "http://evil.example", &server.url("/echo")])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("403 Forbidden"), "{stderr}");
    assert!(stderr.contains("evil.example"), "{stderr}");

    // -v prints the handshake as the seeds show it
    let output = Command::new(WSX)
        .args(["connect", "-v", "-p", "chat", &server.url("/chat/v")])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("> GET /chat/v HTTP/1.1"), "{stderr}");
    assert!(stderr.contains("> Sec-WebSocket-Protocol: chat"), "{stderr}");
    assert!(stderr.contains("< HTTP/1.1 101 Switching Protocols"), "{stderr}");
    assert!(stderr.contains("< Sec-WebSocket-Protocol: chat"), "{stderr}");
    assert!(stderr.contains("> Sec-WebSocket-Extensions: permessage-deflate"), "offered: {stderr}");
    assert!(
        stderr.contains("< Sec-WebSocket-Extensions: permessage-deflate"),
        "accepted: {stderr}"
    );
    assert!(output.status.success(), "{stderr}");

    // nothing listening: a connection error that says so
    let output = Command::new(WSX)
        .args(["connect", "ws://127.0.0.1:1/"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot connect to 127.0.0.1:1"));
}

/// `--tls-cert`/`--tls-key`: https:// and wss:// on the same port, checked with `wsx connect
/// --cacert` and the library.
#[tokio::test]
async fn tls_serves_https_and_wss() {
    let dir = std::env::temp_dir().join(format!("wsx-cli-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let server =
        Server::start(&["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    let url = format!("wss://{}/echo", server.addr);

    let tls = wsx::tls::client_config(Some(&cert)).unwrap();
    let (mut ws, _) = connector().tls(tls).connect(&url).await.unwrap();
    ws.send(Message::text("over TLS")).await.unwrap();
    assert_eq!(next_data(&mut ws).await, Message::text("over TLS"));

    let mut client = Command::new(WSX)
        .args(["connect", "--cacert", cert.to_str().unwrap(), &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    client.stdin.take().unwrap().write_all(b"secure line\n").unwrap();
    let output = client.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "secure line\n");

    // without the CA: a TLS error that says so
    let output = Command::new(WSX).args(["connect", &url]).stdin(Stdio::null()).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("TLS error"));
    let _ = std::fs::remove_dir_all(dir);
}

/// SIGHUP reloads the certificate: new handshakes get the new one, an open connection keeps
/// working, a broken file keeps the old one, and the server does not stop.
#[tokio::test]
async fn sighup_reloads_the_tls_certificate() {
    let dir = std::env::temp_dir().join(format!("wsx-cli-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let issue = |name: &str| {
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
        let ca = dir.join(name);
        std::fs::write(&ca, certified.cert.pem()).unwrap();
        ca
    };
    // A fresh client configuration per connection: no TLS session to resume (a resumed session
    // skips the certificate, legitimately).
    let trusting = |ca: &std::path::Path| wsx::tls::client_config(Some(ca)).unwrap();
    let first = issue("first.pem");
    let server =
        Server::start(&["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    let url = format!("wss://{}/echo", server.addr);
    let (mut open, _) = connector().tls(trusting(&first)).connect(&url).await.unwrap();

    let second = issue("second.pem");
    server.signal("-HUP");
    // The reload happens on the server's own time: wait (bounded) until it shows.
    let mut reloaded = false;
    for _ in 0..100 {
        if connector().tls(trusting(&second)).connect(&url).await.is_ok() {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reloaded, "the new certificate is served after SIGHUP");
    assert!(connector().tls(trusting(&first)).connect(&url).await.is_err(), "the old one is gone");
    open.send(Message::text("still here")).await.unwrap();
    assert_eq!(next_data(&mut open).await, Message::text("still here"));

    std::fs::write(&key, "not a key").unwrap();
    server.signal("-HUP");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (mut ws, _) = connector().tls(trusting(&second)).connect(&url).await.unwrap();
    ws.send(Message::text("kept")).await.unwrap();
    assert_eq!(next_data(&mut ws).await, Message::text("kept"));
    let _ = std::fs::remove_dir_all(dir);
}

/// Sends raw bytes and returns the status line of the answer ("" if the server just closed).
async fn raw_status(addr: &str, request: &[u8]) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = tcp.write_all(request).await;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while !reply.windows(4).any(|w| w == b"\r\n\r\n") {
        match within("answer", tcp.read(&mut buf)).await {
            Ok(0) | Err(_) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&reply).to_string();
    text.lines().next().unwrap_or("").to_string()
}

/// Reads from `tcp` until `buf` holds `n` bytes past a complete response head; the head.
async fn read_head_and(tcp: &mut tokio::net::TcpStream, buf: &mut Vec<u8>, n: usize) -> String {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            if buf.len() >= end + 4 + n {
                let head = String::from_utf8_lossy(&buf[..end + 4]).to_string();
                buf.drain(..end + 4);
                return head;
            }
        }
        let read = within("the server's answer", tcp.read(&mut chunk)).await.unwrap();
        assert!(read > 0, "the server closed the connection; so far: {buf:?}");
        buf.extend_from_slice(&chunk[..read]);
    }
}

/// A masked client text frame.
fn client_text(payload: &[u8]) -> Vec<u8> {
    let mask = [0x11, 0x22, 0x33, 0x44];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Upgrades are answered on the connection itself (no hyper): whatever arrives with the head
/// is kept, a head in pieces is waited for, refusals say which node and close; an upgrade
/// after a plain request on a kept-alive connection still works (through hyper).
#[tokio::test]
async fn upgrades_are_answered_whatever_arrives_with_them() {
    let server = Server::start(&["--node", "n1"]);
    let upgrade = "GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
                   Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                   Sec-WebSocket-Version: 13\r\n\r\n";
    let echoed = |payload: &[u8]| {
        let mut frame = vec![0x81, payload.len() as u8];
        frame.extend_from_slice(payload);
        frame
    };

    // The head and two frames in one write: both frames are echoed.
    let mut tcp = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let mut wire = upgrade.as_bytes().to_vec();
    wire.extend(client_text(b"first"));
    wire.extend(client_text(b"second"));
    tcp.write_all(&wire).await.unwrap();
    let mut buf = Vec::new();
    let head = read_head_and(&mut tcp, &mut buf, 14).await;
    assert!(head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{head}");
    assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "{head}");
    assert!(head.to_ascii_lowercase().contains("x-wsx-node: n1\r\n"), "{head}");
    assert_eq!(buf, [echoed(b"first"), echoed(b"second")].concat());

    // The head in pieces, a pause between them.
    let mut tcp = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    for piece in upgrade.as_bytes().chunks(7) {
        tcp.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tcp.write_all(&client_text(b"late")).await.unwrap();
    let mut buf = Vec::new();
    let head = read_head_and(&mut tcp, &mut buf, 6).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(buf, echoed(b"late"));

    // A refusal: its status, the node, and the connection closes after it.
    let mut tcp = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    tcp.write_all(upgrade.replace("Version: 13", "Version: 8").as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    within("the refusal and the close", tcp.read_to_end(&mut reply)).await.unwrap();
    let reply = String::from_utf8_lossy(&reply).to_ascii_lowercase();
    assert!(reply.starts_with("http/1.1 426 upgrade required\r\n"), "{reply}");
    assert!(reply.contains("sec-websocket-version: 13\r\n"), "{reply}");
    assert!(reply.contains("x-wsx-node: n1\r\n") && reply.contains("connection: close"), "{reply}");

    // A plain request first, then the upgrade on the same connection.
    let mut tcp = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let head = read_head_and(&mut tcp, &mut buf, 0).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_string))
        .expect("a content-length")
        .parse()
        .unwrap();
    while buf.len() < length {
        let mut chunk = [0u8; 1024];
        let n = within("the body", tcp.read(&mut chunk)).await.unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    }
    buf.drain(..length);
    tcp.write_all(upgrade.as_bytes()).await.unwrap();
    tcp.write_all(&client_text(b"again")).await.unwrap();
    let head = read_head_and(&mut tcp, &mut buf, 7).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(buf, echoed(b"again"));
    assert_eq!(server.metric("wsx_handshakes_accepted_total").await, 3);
}

/// The opening handshake as real clients send it (the seeds), and every way a request is
/// refused (RFC 6455 §4.2.1, §4.4; RFC 9112), each with its status, against the binary.
#[tokio::test]
async fn handshake_acceptance_and_refusal_suite() {
    // --allow-origin: the seeds' pages come from other origins than the server's Host.
    let server = Server::start(&["--allow-origin", "*", "--handshake-timeout", "1s"]);
    let key = "Sec-WebSocket-Key: UvyGH6jvbDySVThkGrtHUQ==\r\n";
    let good = |extra: &str, skip: &str| {
        let mut lines = vec![
            "Host: 127.0.0.1".to_string(),
            "Upgrade: websocket".into(),
            "Connection: Upgrade".into(),
            key.trim_end().to_string(),
            "Sec-WebSocket-Version: 13".into(),
        ];
        lines.retain(|l| skip.is_empty() || !l.starts_with(skip));
        format!("GET /echo HTTP/1.1\r\n{}\r\n{extra}\r\n", lines.join("\r\n"))
    };
    let seeds = [
        // seed 1: Chrome 70 through a proxy, absolute-form target, deflate offer
        "GET ws://172.22.9.1:8301/echo HTTP/1.1\r\nHost: 172.22.9.1:8301\r\nConnection: Upgrade\r\n\
         Pragma: no-cache\r\nCache-Control: no-cache\r\nUser-Agent: Mozilla/5.0 Chrome/70.0.3538.102\r\n\
         Upgrade: websocket\r\nOrigin: http://localhost:9318\r\nSec-WebSocket-Version: 13\r\n\
         Accept-Encoding: gzip, deflate\r\nAccept-Language: zh-CN,zh;q=0.9,en;q=0.8,zh-TW;q=0.7\r\n\
         Sec-WebSocket-Key: UvyGH6jvbDySVThkGrtHUQ==\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
        // seed 3: Chrome 81 with a cookie and subprotocols
        "GET /chat/seed HTTP/1.1\r\nHost: server.example.cn:443\r\nConnection: Upgrade\r\n\
         Pragma: no-cache\r\nCache-Control: no-cache\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Cookie: user_id=XXXXX\r\nSec-WebSocket-Key: 1/2hTi/+eNURiekpNI4k5Q==\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
         Sec-WebSocket-Protocol: binary, base64\r\n\r\n",
        // the RFC's own sample (seeds 0, 1, 3)
        "GET /chat/sample HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
    ];
    for seed in seeds {
        let status = raw_status(&server.addr, seed.as_bytes()).await;
        assert_eq!(status, "HTTP/1.1 101 Switching Protocols", "{seed}");
    }
    let many_headers: String = (0..70).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases: Vec<(String, &str)> = vec![
        (good("", ""), "HTTP/1.1 101 Switching Protocols"),
        (good("Connection: keep-alive\r\n", "Connection"), "HTTP/1.1 400 Bad Request"),
        (
            good("Connection: keep-alive, Upgrade\r\n", "Connection"),
            "HTTP/1.1 101 Switching Protocols",
        ),
        (good("", "Host"), "HTTP/1.1 400 Bad Request"),
        (good("Host: other\r\n", ""), "HTTP/1.1 400 Bad Request"),
        (good("", "Sec-WebSocket-Key"), "HTTP/1.1 400 Bad Request"),
        (good("Sec-WebSocket-Key: c2hvcnQ=\r\n", "Sec-WebSocket-Key"), "HTTP/1.1 400 Bad Request"),
        (good(key, ""), "HTTP/1.1 400 Bad Request"),
        (
            good("Sec-WebSocket-Version: 8\r\n", "Sec-WebSocket-Version"),
            "HTTP/1.1 426 Upgrade Required",
        ),
        (good("", "Sec-WebSocket-Version"), "HTTP/1.1 400 Bad Request"),
        (good("Upgrade: h2c\r\n", "Upgrade"), "HTTP/1.1 426 Upgrade Required"),
        (good("", "Upgrade"), "HTTP/1.1 426 Upgrade Required"),
        (good("Origin: http://a\r\nOrigin: http://b\r\n", ""), "HTTP/1.1 400 Bad Request"),
        (good("Sec-WebSocket-Protocol: a b\r\n", ""), "HTTP/1.1 400 Bad Request"),
        (good("", "").replacen("GET", "POST", 1), "HTTP/1.1 405 Method Not Allowed"),
        // hyper answers HTTP/1.0 in kind
        (good("", "").replacen("HTTP/1.1", "HTTP/1.0", 1), "HTTP/1.0 400 Bad Request"),
        (
            good(&format!("X-Big: {}\r\n", "a".repeat(9000)), ""),
            "HTTP/1.1 431 Request Header Fields Too Large",
        ),
        (good(&many_headers, ""), "HTTP/1.1 431 Request Header Fields Too Large"),
        (good("", "").replace("/echo", "/nope"), "HTTP/1.1 404 Not Found"),
        ("GET /echo HTTP/1.1\r\nHost : x\r\n\r\n".to_string(), "HTTP/1.1 400 Bad Request"),
    ];
    for (request, expected) in &cases {
        let status = raw_status(&server.addr, request.as_bytes()).await;
        assert_eq!(&status, expected, "request:\n{request}");
    }
    // A client that stalls halfway is dropped at the handshake timeout (1 s here).
    let stalled = raw_status(&server.addr, b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgr").await;
    assert!(stalled.is_empty() || stalled.contains("408"), "{stalled}");
}

/// `wsx bench` against `wsx serve`: both modes run, bounded in time, and report a rate.
#[test]
fn wsx_bench_against_wsx_serve() {
    let server = Server::start(&[]);
    let output = Command::new(WSX)
        .args([
            "bench",
            &server.url("/echo"),
            "-c",
            "4",
            "-k",
            "4",
            "-d",
            "1s",
            "--warmup",
            "200ms",
        ])
        .args(["--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let json = String::from_utf8_lossy(&output.stdout);
    assert!(json.contains("\"mode\":\"echo\"") && json.contains("\"errors\":0"), "{json}");
    let ops: u64 =
        json.split("\"operations\":").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
    assert!(ops > 0, "{json}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("msgs/s"), "a progress line");

    let output = Command::new(WSX)
        .args(["bench", &server.url("/echo"), "--mode", "handshake", "-c", "2", "-d", "1s"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("handshakes/s"));

    // nothing to measure against: a clear error
    let output =
        Command::new(WSX).args(["bench", "ws://127.0.0.1:1/", "-d", "1s"]).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot connect"));
}
