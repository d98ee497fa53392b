//! `wsx connect URL --exec 'CMD ARGS'`: a program's stdout lines go out as messages, messages
//! come in as lines on its stdin, and wsx ends with the program (1000 or 1011, its exit status)
//! or with the connection (the program gets EOF). Against a WebSocket server run by the test
//! (the library's `accept`) on a free loopback port, so both sides are observed.
#![cfg(unix)]

mod common;

use std::process::{Command, ExitStatus, Stdio};

use tokio::net::TcpListener;
use wsx::{CloseCode, Message, WebSocket};

use self::common::{within, WSX};

type ServerWs = WebSocket<tokio::net::TcpStream>;

/// Runs `wsx connect ws://ADDR/ ARGS` against a server that runs `server` on the one connection;
/// wsx's exit status and stdout.
async fn connect_with<F, Fut>(args: &[&str], server: F) -> (ExitStatus, String)
where
    F: FnOnce(ServerWs) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let served = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        server(wsx::accept(tcp).await.unwrap()).await;
    });
    let mut command = Command::new(WSX);
    command.arg("connect").arg(&url).args(args);
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    let output = within("wsx connect ends", tokio::task::spawn_blocking(move || command.output()))
        .await
        .unwrap()
        .unwrap();
    within("the server's side ends", served).await.unwrap();
    (output.status, String::from_utf8(output.stdout).unwrap())
}

/// The next data or close message.
async fn next(ws: &mut ServerWs) -> Message {
    loop {
        match within("a message", ws.recv()).await.expect("open").expect("no error") {
            Message::Ping(_) | Message::Pong(_) => {}
            m => return m,
        }
    }
}

fn close_code(message: &Message) -> u16 {
    match message {
        Message::Close(Some(frame)) => frame.code.into(),
        other => panic!("expected a close, got {other:?}"),
    }
}

#[tokio::test]
async fn lines_both_ways_and_the_program_ends_it() {
    let script = r#"sh -c 'echo hello; read line; echo "got $line"; exit 0'"#;
    let (status, stdout) = connect_with(&["--exec", script], |mut ws| async move {
        assert_eq!(next(&mut ws).await, Message::text("hello"));
        ws.send(Message::text("from the server")).await.unwrap();
        assert_eq!(next(&mut ws).await, Message::text("got from the server"));
        assert_eq!(close_code(&next(&mut ws).await), 1000);
    })
    .await;
    assert!(status.success(), "{status}");
    assert_eq!(stdout, "", "the program's stdout is the connection's, not the terminal's");
}

#[tokio::test]
async fn a_failing_program_closes_with_1011_and_its_status() {
    let (status, _) = connect_with(&["--exec", "sh -c 'echo bye; exit 3'"], |mut ws| async move {
        assert_eq!(next(&mut ws).await, Message::text("bye"));
        let close = next(&mut ws).await;
        assert_eq!(close_code(&close), 1011);
    })
    .await;
    assert_eq!(status.code(), Some(3));
}

#[tokio::test]
async fn the_connection_closing_gives_the_program_eof() {
    // cat exits at EOF on its stdin; the lines it echoed before arrive first.
    let (status, _) = connect_with(&["--exec", "cat"], |mut ws| async move {
        for line in ["one", "two"] {
            ws.send(Message::text(line)).await.unwrap();
            assert_eq!(next(&mut ws).await, Message::text(line));
        }
        within("close", ws.close(CloseCode::NORMAL, "done")).await.unwrap();
    })
    .await;
    assert!(status.success(), "a normal close: {status}");
}

#[tokio::test]
async fn binary_mode_carries_raw_bytes() {
    let script = r"sh -c 'head -c 3; printf \\001\\002\\377'";
    let (status, _) = connect_with(&["--exec", script, "--exec-binary"], |mut ws| async move {
        ws.send(Message::binary(&b"xyz"[..])).await.unwrap();
        // head echoes the 3 bytes, then printf's 3 follow (in one chunk or two).
        let mut got = Vec::new();
        while got.len() < 6 {
            match next(&mut ws).await {
                Message::Binary(bytes) => got.extend_from_slice(&bytes),
                other => panic!("expected binary, got {other:?}"),
            }
        }
        assert_eq!(got, b"xyz\x01\x02\xff");
        assert_eq!(close_code(&next(&mut ws).await), 1000);
    })
    .await;
    assert!(status.success(), "{status}");
}
