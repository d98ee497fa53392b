//! `wsx serve --unix PATH` and `wsx connect --unix PATH`: the server on a Unix domain socket
//! beside its TCP port, the library's client over it (`Connector::connect_on` takes any stream),
//! the binary's client over it, and the socket file's life: a stale one replaced, a live one or
//! any other file left alone (the server refuses to start), removed at exit.
#![cfg(unix)]

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::net::UnixStream;
use wsx::{CloseCode, Message};

use self::common::{connector, next_data, within, Server, WSX};

/// A fresh directory for this test's socket files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsx-unix-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A WebSocket to `url`'s path over the Unix socket `path`.
async fn open(path: &Path, url: &str) -> wsx::WebSocket<UnixStream> {
    let stream = within("connect", UnixStream::connect(path)).await.unwrap();
    within("handshake", connector().connect_on(stream, url)).await.unwrap().0
}

#[tokio::test]
async fn echo_exec_and_the_client_over_a_unix_socket() {
    let dir = scratch("serve");
    let socket = dir.join("wsx.sock");
    let socket_arg = socket.to_str().unwrap();
    let server = Server::start(&["--unix", socket_arg, "--exec", "sh -c 'echo $REMOTE_ADDR'"]);
    let mut ws = open(&socket, "ws://localhost/echo").await;
    ws.send(Message::text("over unix")).await.unwrap();
    assert_eq!(next_data(&mut ws).await, Message::text("over unix"));
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    // Its clients count as local ones.
    let mut program = open(&socket, "ws://localhost/anything").await;
    assert_eq!(next_data(&mut program).await, Message::text("127.0.0.1"));
    // TCP still serves.
    assert!(server.http_get("/healthz").await.starts_with("HTTP/1.1 200"));

    // The binary's client: stdin lines out, the echoes on stdout, a normal close at EOF.
    let mut client = Command::new(WSX)
        .args(["connect", "--unix", socket_arg, "ws://localhost/echo"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    client.stdin.take().unwrap().write_all(b"one\ntwo\n").unwrap();
    let output =
        within("wsx connect", tokio::task::spawn_blocking(move || client.wait_with_output()))
            .await
            .unwrap()
            .unwrap();
    assert!(output.status.success());
    assert_eq!(String::from_utf8(output.stdout).unwrap(), "one\ntwo\n");
    let wss = Command::new(WSX)
        .args(["connect", "--unix", socket_arg, "wss://localhost/echo"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&wss.stderr).contains("must be ws://"));

    // SIGTERM: the server stops and takes its socket file with it.
    server.signal("-TERM");
    within("the socket file goes", async {
        while socket.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn stale_sockets_are_replaced_and_nothing_else_is() {
    let dir = scratch("files");
    // A socket file whose server is gone: connecting is refused, so it is replaced.
    let stale = dir.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let server = Server::start(&["--unix", stale.to_str().unwrap()]);
    let mut ws = open(&stale, "ws://localhost/echo").await;
    ws.send(Message::text("fresh")).await.unwrap();
    assert_eq!(next_data(&mut ws).await, Message::text("fresh"));

    // A live socket (that server's) is not taken over.
    let live = Command::new(WSX)
        .args(["serve", "--listen", "127.0.0.1:0", "--unix", stale.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!live.status.success());
    assert!(String::from_utf8_lossy(&live.stderr).contains("listening on it already"));
    drop(server);

    // A file that is not a socket is never removed.
    let file = dir.join("notes.txt");
    std::fs::write(&file, "keep me").unwrap();
    let refused = Command::new(WSX)
        .args(["serve", "--listen", "127.0.0.1:0", "--unix", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not a socket"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    let _ = std::fs::remove_dir_all(dir);
}
