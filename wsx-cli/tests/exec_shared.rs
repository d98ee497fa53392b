//! `wsx serve --exec-shared` (docs/exec.md): one program for every connection, JSON lines both
//! ways. The documented chat bot (docs/examples/chatbot.py, the same text as in docs/exec.md)
//! with three clients: joins and leaves announced to all, a broadcast, an answer to a single
//! client by id; then the envelope's other forms (binary, close with a code), a program that
//! exits (1011 to its clients, 503 while it restarts, a fresh instance after), the server's stop.
//! Needs python3.
#![cfg(unix)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use wsx::{CloseCode, Message};

use self::common::{connector, kept_alive, next_data, within, Server};

type Ws = wsx::WebSocket<wsx::ClientStream>;

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

async fn open(server: &Server, path: &str) -> Ws {
    within("connect", connector().connect(&server.url(path))).await.unwrap().0
}

async fn text<S>(ws: &mut wsx::WebSocket<S>) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match next_data(ws).await {
        Message::Text(t) => t.to_string(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// The close frame's code and reason (after any data, which must not come).
async fn closed(ws: &mut Ws) -> (u16, String) {
    match next_data(ws).await {
        Message::Close(Some(frame)) => (frame.code.into(), frame.reason.to_string()),
        other => panic!("expected the close, got {other:?}"),
    }
}

#[test]
fn the_documented_bot_is_the_example_file() {
    let doc = std::fs::read_to_string(repository().join("docs/exec.md")).unwrap();
    let start = doc.find("```python\n").expect("a python block in docs/exec.md") + 10;
    let block = &doc[start..start + doc[start..].find("```").unwrap()];
    let file = std::fs::read_to_string(repository().join("docs/examples/chatbot.py")).unwrap();
    assert!(file.ends_with(block), "docs/examples/chatbot.py must end with the block of exec.md");
    assert!(block.lines().count() <= 15, "a short example");
}

#[tokio::test]
async fn three_clients_and_the_documented_chat_bot() {
    let bot = repository().join("docs/examples/chatbot.py");
    let command = format!("python3 {}", bot.display());
    let server = Server::start(&["--exec-shared", &command]);
    let mut a = open(&server, "/chat-bot").await;
    assert_eq!(text(&mut a).await, "* 1 joined");
    let mut b = open(&server, "/chat-bot").await;
    for ws in [&mut a, &mut b] {
        assert_eq!(text(ws).await, "* 2 joined");
    }
    let mut c = open(&server, "/").await;
    for ws in [&mut a, &mut b, &mut c] {
        assert_eq!(text(ws).await, "* 3 joined");
    }
    // A broadcast reaches everyone, its sender included.
    a.send(Message::text("hello")).await.unwrap();
    for ws in [&mut a, &mut b, &mut c] {
        assert_eq!(text(ws).await, "1: hello");
    }
    // An answer addressed to one client by id reaches only it: the others' next message is
    // the broadcast the bot printed after it.
    b.send(Message::text("/whoami")).await.unwrap();
    assert_eq!(text(&mut b).await, "you are 2");
    c.send(Message::text("after")).await.unwrap();
    for ws in [&mut a, &mut b, &mut c] {
        assert_eq!(text(ws).await, "3: after");
    }
    // A binary message reaches the program as base64 (the bot names it).
    a.send(Message::binary(vec![0u8, 1, 2])).await.unwrap();
    for ws in [&mut a, &mut b, &mut c] {
        assert_eq!(text(ws).await, "1: (binary)");
    }
    // Leaving is announced to those who stay.
    c.close(CloseCode::NORMAL, "").await.unwrap();
    for ws in [&mut a, &mut b] {
        assert_eq!(text(ws).await, "* 3 left");
    }
    drop(b);
    assert_eq!(text(&mut a).await, "* 2 left");
    // An upgrade that comes later on a kept-alive connection (hyper's path) joins too.
    let tcp = kept_alive(&server.addr).await;
    let (mut d, _) =
        within("upgrade", connector().connect_on(tcp, &server.url("/"))).await.unwrap();
    assert_eq!(text(&mut a).await, "* 4 joined");
    assert_eq!(text(&mut d).await, "* 4 joined");
    // The other endpoints are unchanged.
    let mut echo = open(&server, "/echo").await;
    echo.send(Message::text("still echo")).await.unwrap();
    assert_eq!(text(&mut echo).await, "still echo");
}

/// A program that answers `bin` with a binary message to its sender, `close` with a close
/// (4001, "asked"), `json` with a JSON object sent as text, `exit` by exiting with status 3,
/// and greets each client with the instance's pid.
const PROGRAM: &str = r#"python3 -u -c '
import json, os, sys
for line in sys.stdin:
    e = json.loads(line)
    who, text = e["id"], e.get("text")
    if e["type"] == "join":
        print(json.dumps({"to": who, "text": "hi from %d" % os.getpid()}))
    elif text == "bin":
        print(json.dumps({"to": [who], "base64": "AAH/"}))
    elif text == "close":
        print(json.dumps({"to": who, "text": "closing you"}))
        print(json.dumps({"close": who, "code": 4001, "reason": "asked"}))
    elif text == "json":
        print(json.dumps({"no": "envelope"}))
        print(json.dumps({"text": json.dumps({"a": 1})}))
    elif text == "exit":
        print("going down")
        sys.exit(3)
'"#;

#[tokio::test]
async fn envelopes_closes_and_restarts() {
    let server = Server::start(&["--exec-shared", PROGRAM]);
    let mut a = open(&server, "/").await;
    let greeting = text(&mut a).await;
    assert!(greeting.starts_with("hi from "), "{greeting}");
    a.send(Message::text("bin")).await.unwrap();
    assert_eq!(next_data(&mut a).await, Message::binary(vec![0u8, 1, 255]));
    // An object that is not an envelope is dropped; a wrapped one arrives as its text.
    a.send(Message::text("json")).await.unwrap();
    assert_eq!(text(&mut a).await, r#"{"a": 1}"#);
    // Closed by the program, after what it sent before.
    a.send(Message::text("close")).await.unwrap();
    assert_eq!(text(&mut a).await, "closing you");
    assert_eq!(closed(&mut a).await, (4001, "asked".to_string()));

    // The program exits: its clients get its last words, then 1011.
    let mut b = open(&server, "/").await;
    let mut c = open(&server, "/").await;
    assert_eq!(text(&mut b).await, greeting);
    assert_eq!(text(&mut c).await, greeting);
    b.send(Message::text("exit")).await.unwrap();
    for ws in [&mut b, &mut c] {
        assert_eq!(text(ws).await, "going down");
        assert_eq!(closed(ws).await, (1011, "program exited with status 3".to_string()));
    }
    // Restarted after a backoff (503 meanwhile): a new instance greets new clients.
    let mut refused = 0;
    let mut d = within("the program is back", async {
        loop {
            match connector().connect(&server.url("/")).await {
                Ok((ws, _)) => return ws,
                Err(e) => {
                    assert!(e.to_string().contains("503"), "{e}");
                    refused += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    })
    .await;
    let again = text(&mut d).await;
    assert!(again.starts_with("hi from ") && again != greeting, "a new instance: {again}");
    assert_eq!(
        server.metric("wsx_handshakes_rejected_total{reason=\"program_down\"}").await,
        refused
    );

    // The server's stop closes the clients with 1001 and ends the program.
    server.signal("-TERM");
    assert_eq!(closed(&mut d).await.0, 1001);
}

#[tokio::test]
async fn a_program_that_cannot_start_stops_the_server() {
    let output = std::process::Command::new(common::WSX)
        .args(["serve", "--listen", "127.0.0.1:0", "--exec-shared", "/nonexistent/program"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--exec-shared: cannot start"));
    let both = std::process::Command::new(common::WSX)
        .args(["serve", "--exec", "cat", "--exec-shared", "cat"])
        .output()
        .unwrap();
    assert!(!both.status.success(), "--exec and --exec-shared conflict");
}
