//! `wsx serve --exec` and `--exec-dir` (docs/exec.md), on the real binary: a program per
//! connection, lines and raw bytes both ways, the CGI environment, the process cap, the close
//! codes of a program's exit, and a client that leaves (EOF, SIGTERM, SIGKILL; no process, zombie
//! or file descriptor left behind). Uses only sh and coreutils.
#![cfg(unix)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsx::{CloseCode, Message};

use self::common::{connector, next_data, within, Server, WSX};

type Ws = wsx::WebSocket<wsx::ClientStream>;

/// A `wsx serve` with `extra` arguments and these variables added to its environment.
fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Server {
    start_logged(extra, env, None)
}

/// The same, its log (stderr) collected in `log` when given.
fn start_logged(extra: &[&str], env: &[(&str, &str)], log: Option<Arc<Mutex<String>>>) -> Server {
    let mut child = Command::new(WSX)
        .args(["serve", "--listen", "127.0.0.1:0", "--log"])
        .arg(std::env::var("WSX_TEST_LOG").unwrap_or_else(|_| "info".into()))
        .args(extra)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(if log.is_some() {
            Stdio::piped()
        } else if std::env::var_os("WSX_TEST_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .expect("the wsx binary starts");
    if let (Some(log), Some(stderr)) = (log, child.stderr.take()) {
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
    }
    Server::from_child(child)
}

fn start(extra: &[&str]) -> Server {
    start_with_env(extra, &[])
}

async fn open(server: &Server, path: &str) -> Ws {
    within("connect", connector().connect(&server.url(path))).await.unwrap().0
}

async fn text(ws: &mut Ws) -> String {
    match next_data(ws).await {
        Message::Text(t) => t.to_string(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// Text messages until the close; the close frame's code and reason.
async fn until_close(ws: &mut Ws) -> (Vec<String>, CloseCode, String) {
    let mut lines = Vec::new();
    loop {
        match next_data(ws).await {
            Message::Text(t) => lines.push(t.to_string()),
            Message::Close(Some(frame)) => return (lines, frame.code, frame.reason.to_string()),
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// The processes whose /proc/PID/stat field `field` (after the command name: 1 = parent,
/// 2 = process group) is `value`, zombies included.
fn processes_where(field: usize, value: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(field).and_then(|f| f.parse::<u32>().ok()) == Some(value) {
            found.push(pid);
        }
    }
    found
}

fn children(pid: u32) -> Vec<u32> {
    processes_where(1, pid)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

/// Waits (up to 20 s) until `done`; how long it took.
async fn until(what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    within(what, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    started.elapsed()
}

#[tokio::test]
async fn echo_through_cat() {
    let server = start(&["--exec", "cat"]);
    let mut ws = open(&server, "/").await;
    for line in ["one", "two", "héllo wörld"] {
        ws.send(Message::text(line)).await.unwrap();
    }
    for line in ["one", "two", "héllo wörld"] {
        assert_eq!(text(&mut ws).await, line);
    }
    // No trailing newline in the message: it still goes in, and comes back, as one line.
    ws.send(Message::text("no newline")).await.unwrap();
    assert_eq!(text(&mut ws).await, "no newline");
    // The other endpoints still work beside the program.
    let mut echo = open(&server, "/echo").await;
    echo.send(Message::binary(vec![1u8, 2])).await.unwrap();
    assert_eq!(next_data(&mut echo).await, Message::binary(vec![1u8, 2]));
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    assert!(server.http_get("/healthz").await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn three_lines_at_once_are_three_messages_then_1000() {
    let server = start(&["--exec", r"printf 'first\nsecond\r\nthird\n'"]);
    let mut ws = open(&server, "/lines").await;
    let (lines, code, _) = until_close(&mut ws).await;
    assert_eq!(lines, ["first", "second", "third"]);
    assert_eq!(code, CloseCode::NORMAL, "exit status 0: 1000 after all of its output");
}

#[tokio::test]
async fn a_failing_program_closes_with_1011_after_its_output() {
    let server = start(&["--exec", "sh -c 'echo one; echo two; exit 3'"]);
    let mut ws = open(&server, "/fail").await;
    let (lines, code, reason) = until_close(&mut ws).await;
    assert_eq!(lines, ["one", "two"]);
    assert_eq!(code, CloseCode::INTERNAL_ERROR);
    assert!(reason.contains("exit status 3"), "{reason}");
    within("metrics", async {
        while server.metric("wsx_exec_exited_total{status=\"failure\"}").await < 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(server.metric("wsx_exec_started_total").await, 1);
    assert_eq!(server.metric("wsx_exec_running").await, 0);
}

#[tokio::test]
async fn binary_mode_is_raw_bytes_both_ways() {
    let server = start(&["--exec", "cat", "--binary"]);
    let mut ws = open(&server, "/raw").await;
    let mut sent = Vec::new();
    for chunk in [vec![0u8, 159, 255, b'\n', 0xc3], vec![b'\n', b'\n', 0xfe, 0], vec![7u8; 100_000]]
    {
        sent.extend_from_slice(&chunk);
        ws.send(Message::binary(chunk)).await.unwrap();
    }
    let mut received = Vec::new();
    while received.len() < sent.len() {
        match next_data(&mut ws).await {
            Message::Binary(bytes) => received.extend_from_slice(&bytes),
            other => panic!("expected binary messages only, got {other:?}"),
        }
    }
    assert_eq!(received, sent, "no newline added, none taken, nothing decoded");
}

#[tokio::test]
async fn the_program_gets_the_cgi_environment_and_nothing_else() {
    let server = start_with_env(
        &["--exec", "env", "--exec-env", "WSX_TEST_ALLOWED"],
        &[("WSX_TEST_SECRET_VAR", "must not leak"), ("WSX_TEST_ALLOWED", "yes")],
    );
    let url = server.url("/some/path?a=1&b=two");
    let (mut ws, _) =
        within("connect", connector().header("X-Custom-Thing", "custom value").connect(&url))
            .await
            .unwrap();
    let local_port = ws.get_ref().tcp().local_addr().unwrap().port();
    let (lines, code, _) = until_close(&mut ws).await;
    assert_eq!(code, CloseCode::NORMAL);
    let env: HashMap<&str, &str> = lines.iter().filter_map(|l| l.split_once('=')).collect();
    let port = server.addr.rsplit_once(':').unwrap().1;
    let local_port = local_port.to_string();
    for (name, value) in [
        ("QUERY_STRING", "a=1&b=two"),
        ("PATH_INFO", "/some/path"),
        ("SCRIPT_NAME", ""),
        ("REQUEST_URI", "/some/path?a=1&b=two"),
        ("REQUEST_METHOD", "GET"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", local_port.as_str()),
        ("SERVER_NAME", "127.0.0.1"),
        ("SERVER_PORT", port),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("HTTP_X_CUSTOM_THING", "custom value"),
        ("HTTP_UPGRADE", "websocket"),
        ("HTTP_HOST", server.addr.as_str()),
        ("WSX_TEST_ALLOWED", "yes"),
    ] {
        assert_eq!(env.get(name).copied(), Some(value), "{name} in {env:#?}");
    }
    assert!(env.get("SERVER_SOFTWARE").is_some_and(|s| s.starts_with("wsx/")), "{env:#?}");
    assert!(env.contains_key("PATH"), "PATH is inherited: {env:#?}");
    for absent in ["WSX_TEST_SECRET_VAR", "HTTPS", "REMOTE_USER", "CARGO_MANIFEST_DIR"] {
        assert!(!env.contains_key(absent), "{absent} must not be set: {env:#?}");
    }
}

#[tokio::test]
async fn remote_user_is_the_tokens_user() {
    let secret = "exec-test-secret-0123456789abcdef-0123456789";
    let server = start_with_env(&["--exec", "env"], &[("WSX_AUTH_SECRET", secret)]);
    let token = Command::new(WSX)
        .args(["token", "--sub", "alice"])
        .env("WSX_AUTH_SECRET", secret)
        .output()
        .unwrap();
    assert!(token.status.success());
    let token = String::from_utf8(token.stdout).unwrap();
    let url = server.url(&format!("/me?access_token={}", token.trim()));
    let (mut ws, _) = within("connect", connector().connect(&url)).await.unwrap();
    let (lines, _, _) = until_close(&mut ws).await;
    assert!(lines.iter().any(|l| l == "REMOTE_USER=alice"), "{lines:#?}");
    assert!(!lines.iter().any(|l| l.starts_with("WSX_AUTH_SECRET")), "{lines:#?}");
    // Without a token, no program starts.
    let err = connector().connect(&server.url("/me")).await.unwrap_err().to_string();
    assert!(err.contains("401"), "{err}");
    assert_eq!(server.metric("wsx_exec_started_total").await, 1);
}

#[tokio::test]
async fn max_forks_refuses_with_503_before_the_101() {
    let server = start(&["--exec", "cat", "--max-forks", "1", "--exec-grace", "200ms"]);
    let mut first = open(&server, "/a").await;
    first.send(Message::text("up")).await.unwrap();
    assert_eq!(text(&mut first).await, "up");
    let err = connector().connect(&server.url("/b")).await.unwrap_err().to_string();
    assert!(err.contains("503"), "{err}");
    assert_eq!(server.metric("wsx_handshakes_rejected_total{reason=\"max_forks\"}").await, 1);
    assert_eq!(server.metric("wsx_exec_running").await, 1);
    // Echo is not a program: not under the cap.
    let _echo = open(&server, "/echo").await;
    first.close(CloseCode::NORMAL, "").await.unwrap();
    // Once the first program is reaped, there is room again.
    within("room for a program again", async {
        while server.metric("wsx_exec_running").await > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let mut again = open(&server, "/c").await;
    again.send(Message::text("again")).await.unwrap();
    assert_eq!(text(&mut again).await, "again");
}

/// A client that leaves: its program gets EOF and exits (cat); nothing is left behind, not a
/// process, a zombie or a file descriptor.
#[tokio::test]
async fn a_client_that_leaves_ends_its_program() {
    let server = start(&["--exec", "cat", "--exec-grace", "500ms"]);
    let pid = server.child.id();
    // One round first: whatever the runtime opens once (for child processes) is open.
    for round in 0..2 {
        let fds_before = open_fds(pid);
        let mut ws = open(&server, "/bye").await;
        ws.send(Message::text("hi")).await.unwrap();
        assert_eq!(text(&mut ws).await, "hi");
        let running = children(pid);
        assert_eq!(running.len(), 1, "one process: {running:?}");
        let cat = running[0];
        if round == 0 {
            drop(ws); // gone without a Close
        } else {
            ws.close(CloseCode::NORMAL, "").await.unwrap();
        }
        let took = until("the program is reaped", || {
            !PathBuf::from(format!("/proc/{cat}")).exists() && children(pid).is_empty()
        })
        .await;
        assert!(took < Duration::from_secs(5), "EOF ends cat at once: {took:?}");
        if round == 1 {
            until("no file descriptor left", || open_fds(pid) <= fds_before).await;
        }
    }
    assert_eq!(server.metric("wsx_exec_exited_total{status=\"success\"}").await, 2);
}

/// A program that ignores EOF and SIGTERM: SIGTERM after the grace period, SIGKILL after as long
/// again, to its whole process group; reaped.
#[tokio::test]
async fn a_program_that_ignores_sigterm_is_killed() {
    let grace = Duration::from_millis(700);
    let server = start(&[
        "--exec",
        "sh -c 'trap \"\" TERM; echo ready; sleep 100'",
        "--exec-grace",
        "700ms",
    ]);
    let pid = server.child.id();
    let mut ws = open(&server, "/stubborn").await;
    assert_eq!(text(&mut ws).await, "ready");
    let shell = children(pid)[0];
    let group = processes_where(2, shell);
    assert!(group.len() >= 2, "sh and sleep in one group: {group:?}");
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    let took = until("the group is gone", || {
        processes_where(2, shell).is_empty() && children(pid).is_empty()
    })
    .await;
    assert!(
        took >= grace * 2 - Duration::from_millis(200),
        "not before two grace periods: {took:?}"
    );
    assert!(took < grace * 2 + Duration::from_secs(5), "{took:?}");
    assert_eq!(server.metric("wsx_exec_exited_total{status=\"signal\"}").await, 1);
    assert_eq!(server.metric("wsx_exec_running").await, 0);
}

/// An upgrade that comes after another request on a kept-alive connection (the hyper path)
/// reaches the program the same way.
#[tokio::test]
async fn an_upgrade_after_a_kept_alive_request_reaches_the_program() {
    let server = start(&["--exec", "sh -c 'echo \"$PATH_INFO $QUERY_STRING\"; cat'"]);
    let mut tcp = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let get = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr);
    tcp.write_all(get.as_bytes()).await.unwrap();
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_string))
        .and_then(|n| n.trim().parse().ok())
        .expect("a Content-Length");
    let mut body = vec![0u8; length];
    tcp.read_exact(&mut body).await.unwrap();
    let upgrade = format!(
        "GET /kept/alive?x=1 HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    tcp.write_all(upgrade.as_bytes()).await.unwrap();
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let mut ws = wsx::WebSocket::from_raw(
        tcp,
        wsx::Role::Client,
        wsx::Negotiated::default(),
        wsx::Config::default(),
    );
    assert_eq!(raw_text(&mut ws).await, "/kept/alive x=1");
    ws.send(Message::text("through hyper")).await.unwrap();
    assert_eq!(raw_text(&mut ws).await, "through hyper");
}

/// The next text message of a WebSocket made over a plain TCP stream.
async fn raw_text(ws: &mut wsx::WebSocket<tokio::net::TcpStream>) -> String {
    loop {
        match within("message", ws.recv()).await.expect("open").expect("no error") {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// A response head, read a byte at a time (what follows it stays unread).
async fn read_head(tcp: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(within("response head", tcp.read_u8()).await.unwrap());
    }
    String::from_utf8(head).unwrap()
}

/// `--exec-dir`: /NAME runs DIR/NAME, with what follows as PATH_INFO; nothing outside DIR runs,
/// however the path is spelled.
#[tokio::test]
async fn exec_dir_maps_paths_to_scripts_and_nothing_else() {
    use std::os::unix::fs::{symlink, PermissionsExt as _};
    let root = std::env::temp_dir().join(format!("wsx-exec-dir-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join("scripts");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let script = |path: PathBuf, body: &str| {
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    script(dir.join("hello"), r#"echo "hello $SCRIPT_NAME $PATH_INFO""#);
    script(dir.join("sub/deep"), r#"echo "deep $SCRIPT_NAME $PATH_INFO""#);
    script(root.join("outside"), "echo escaped");
    symlink(root.join("outside"), dir.join("link")).unwrap();
    let server = start(&["--exec-dir", dir.to_str().unwrap()]);

    let mut ws = open(&server, "/hello").await;
    assert_eq!(text(&mut ws).await, "hello /hello ");
    let mut ws = open(&server, "/sub/deep/more/info").await;
    assert_eq!(text(&mut ws).await, "deep /sub/deep /more/info");
    for path in [
        "/",
        "/missing",
        "/sub",
        "/../outside",
        "/sub/../../outside",
        "/%2e%2e/outside",
        "/sub/%2E%2E/%2e%2e/outside",
        "/..%2foutside",
        "/link",
    ] {
        let status = raw_upgrade_status(&server, path).await;
        assert!(status.starts_with("HTTP/1.1 404"), "{path}: {status}");
    }
    assert_eq!(server.metric("wsx_exec_started_total").await, 2);
    let _ = std::fs::remove_dir_all(root);
}

/// The status line of an upgrade to `path`, sent as it is written (no client normalizes it).
async fn raw_upgrade_status(server: &Server, path: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut tcp).await;
    head.lines().next().unwrap_or_default().to_string()
}

#[test]
fn a_command_line_that_does_not_parse_is_refused_at_startup() {
    let output = Command::new(WSX)
        .args(["serve", "--listen", "127.0.0.1:0", "--exec", "sh -c 'oops"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unterminated"));
    let output = Command::new(WSX)
        .args(["serve", "--listen", "127.0.0.1:0", "--binary"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success(), "--binary needs --exec or --exec-dir");
}

/// The program's stderr lines are in the server's log, with the client's address.
#[tokio::test]
async fn stderr_lines_go_to_the_log() {
    let log = Arc::new(Mutex::new(String::new()));
    let server = start_logged(
        &["--exec", "sh -c 'echo oops-on-stderr >&2; echo done'"],
        &[],
        Some(log.clone()),
    );
    let mut ws = open(&server, "/err").await;
    let local = ws.get_ref().tcp().local_addr().unwrap();
    let (lines, code, _) = until_close(&mut ws).await;
    assert_eq!((lines, code), (vec!["done".to_string()], CloseCode::NORMAL), "stderr is not sent");
    until("the stderr line in the log", || {
        log.lock().unwrap().lines().any(|l| {
            l.contains("INFO")
                && l.contains("program stderr: oops-on-stderr")
                && l.contains(&format!("client={local}"))
        })
    })
    .await;
}

/// With TLS, the program sees HTTPS=on.
#[tokio::test]
async fn https_is_on_with_tls() {
    let dir = std::env::temp_dir().join(format!("wsx-exec-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let server = start(&[
        "--exec",
        "env",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let tls = wsx::tls::client_config(Some(&cert)).unwrap();
    let url = format!("wss://{}/secure", server.addr);
    let (mut ws, _) = within("connect", connector().tls(tls).connect(&url)).await.unwrap();
    let (lines, code, _) = until_close(&mut ws).await;
    assert_eq!(code, CloseCode::NORMAL);
    assert!(lines.iter().any(|l| l == "HTTPS=on"), "{lines:#?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// SIGTERM to the server: the client gets 1001, the program ends, the server exits 0.
#[tokio::test]
async fn server_shutdown_closes_with_1001_and_ends_the_programs() {
    let mut server = start(&["--exec", "cat", "--exec-grace", "300ms"]);
    let pid = server.child.id();
    let mut ws = open(&server, "/stay").await;
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(text(&mut ws).await, "hello");
    let cat = children(pid)[0];
    server.signal("-TERM");
    match next_data(&mut ws).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::GOING_AWAY),
        other => panic!("expected Close 1001, got {other:?}"),
    }
    until("the program is gone", || !PathBuf::from(format!("/proc/{cat}")).exists()).await;
    let status = within("exit", async {
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(status.success(), "{status:?}");
}

/// A program that cannot start: 500 before the 101, counted; plain requests never start one.
#[tokio::test]
async fn a_program_that_cannot_start_is_a_500() {
    let server = start(&["--exec", "/nonexistent/wsx-test-program --flag"]);
    let status = raw_upgrade_status(&server, "/anything").await;
    assert!(status.starts_with("HTTP/1.1 500"), "{status}");
    assert_eq!(server.metric("wsx_handshakes_rejected_total{reason=\"exec_failed\"}").await, 1);
    // Not upgrades: the page, 404 elsewhere; /healthz is /healthz even asked for an upgrade.
    assert!(server.http_get("/").await.starts_with("HTTP/1.1 200"));
    assert!(server.http_get("/anything").await.starts_with("HTTP/1.1 404"));
    assert!(raw_upgrade_status(&server, "/healthz").await.starts_with("HTTP/1.1 200"));
    assert_eq!(server.metric("wsx_exec_started_total").await, 0);
    assert_eq!(server.metric("wsx_exec_running").await, 0);
}
