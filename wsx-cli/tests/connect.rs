//! `wsx connect`'s options as people use them in a terminal: `--no-close`, `--timestamp`,
//! `--base64`, `--binary-prefix`, `--jsonrpc`, `--reconnect`, and the interactive mode under a
//! pseudo-terminal; each against a real `wsx serve` on a free loopback port.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Server, WSX};

const WAIT: Duration = Duration::from_secs(20);

/// A running `wsx connect`: its stdin, its stdout lines and its stderr as they come.
struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

fn lines_of(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Client {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(WSX)
            .arg("connect")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the wsx binary starts");
        let stdout = lines_of(child.stdout.take().unwrap());
        let stderr = lines_of(child.stderr.take().unwrap());
        Self { stdin: child.stdin.take(), child, stdout, stderr }
    }

    fn send(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    fn end_stdin(&mut self) {
        self.stdin = None;
    }

    fn line(&self) -> String {
        self.stdout.recv_timeout(WAIT).unwrap_or_else(|_| {
            panic!("no line on stdout in {WAIT:?}; stderr: {:?}", self.stderr_now())
        })
    }

    /// Waits for a stderr line containing `text`; returns every line seen.
    fn stderr_until(&self, text: &str) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(text);
                    seen.push(line);
                    if found {
                        return seen;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no {text:?} on stderr in {WAIT:?}: {seen:?}");
    }

    fn stderr_now(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args([signal, &pid]).status().unwrap().success());
    }

    fn running_after(&mut self, pause: Duration) -> bool {
        std::thread::sleep(pause);
        self.child.try_wait().unwrap().is_none()
    }

    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "wsx connect still running after {WAIT:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `-n`: stdin's end does not close; the server's close (1000, its program ended) does.
#[test]
fn no_close_keeps_listening_until_the_server_closes() {
    let server = Server::start(&["--exec", "sh -c 'sleep 1; echo late'"]);
    let mut client = Client::start(&["-n", &server.url("/")]);
    client.end_stdin();
    assert_eq!(client.line(), "late");
    let status = client.wait();
    assert!(status.success(), "{status:?}: {:?}", client.stderr_now());

    // Without -n, stdin's end closes at once: the late line never comes.
    let mut client = Client::start(&[&server.url("/")]);
    client.end_stdin();
    assert!(client.wait().success());
    assert!(client.stdout.try_recv().is_err());
}

/// `-n`: Ctrl-C (SIGINT) closes with 1000 (exit status 0).
#[test]
fn no_close_ends_on_sigint_with_1000() {
    let server = Server::start(&["--exec", "sh -c 'echo hi; sleep 30'"]);
    let mut client = Client::start(&["--no-close", &server.url("/")]);
    client.end_stdin();
    assert_eq!(client.line(), "hi");
    assert!(client.running_after(Duration::from_millis(300)));
    client.signal("-INT");
    let status = client.wait();
    assert!(status.success(), "{status:?}: {:?}", client.stderr_now());
}

fn is_rfc3339_utc(stamp: &str) -> bool {
    let b = stamp.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
    b.len() == 24
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..23)
        && b[23] == b'Z'
}

#[test]
fn timestamp_prefixes_each_line_received() {
    let server = Server::start(&[]);
    let mut client = Client::start(&["--timestamp", &server.url("/echo")]);
    client.send("hello there\n");
    let line = client.line();
    let (stamp, rest) = line.split_once(' ').unwrap();
    assert!(is_rfc3339_utc(stamp), "{line:?}");
    assert_eq!(rest, "hello there");
    client.end_stdin();
    assert!(client.wait().success());
}

#[test]
fn base64_lines_are_binary_messages_both_ways() {
    let server = Server::start(&[]);
    let mut client = Client::start(&["--base64", &server.url("/echo")]);
    client.send("AAGf/w==\nnot base64!\naGk=\n");
    assert_eq!(client.line(), "AAGf/w==");
    assert_eq!(client.line(), "aGk=");
    client.end_stdin();
    assert!(client.wait().success());
    let stderr = client.stderr_now().join("\n");
    assert!(stderr.contains("not base64"), "{stderr}");
}

#[test]
fn binary_prefix_mixes_text_and_binary() {
    let server = Server::start(&[]);
    let mut client = Client::start(&["--binary-prefix", "b:", &server.url("/echo")]);
    client.send("b:00ff10\nplain text\nb:zz\n");
    assert_eq!(client.line(), "b:00ff10", "binary, echoed as binary");
    assert_eq!(client.line(), "plain text");
    client.end_stdin();
    assert!(client.wait().success());
    assert!(client.stderr_now().join("\n").contains("not hex"));

    let mut client =
        Client::start(&["--binary-prefix", "b:", "--binary", "base64", &server.url("/echo")]);
    client.send("b:aGk=\nhi\n");
    assert_eq!(client.line(), "b:aGk=");
    assert_eq!(client.line(), "hi");
    client.end_stdin();
    assert!(client.wait().success());
}

#[test]
fn jsonrpc_wraps_lines_as_calls_with_increasing_ids() {
    let server = Server::start(&[]);
    let mut client = Client::start(&["--jsonrpc", &server.url("/echo")]);
    client.send("Page.navigate {\"url\": \"about:blank\"}\nRuntime.enable\nBad {x\nLast []\n");
    assert_eq!(
        client.line(),
        r#"{"jsonrpc":"2.0","id":1,"method":"Page.navigate","params":{"url":"about:blank"}}"#
    );
    assert_eq!(client.line(), r#"{"jsonrpc":"2.0","id":2,"method":"Runtime.enable"}"#);
    assert_eq!(client.line(), r#"{"jsonrpc":"2.0","id":3,"method":"Last","params":[]}"#);
    client.end_stdin();
    assert!(client.wait().success());
    assert!(client.stderr_now().join("\n").contains("not JSON"));
}

/// A free loopback port (bound, then released).
fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// `wsx serve` on a given address, killed when dropped.
struct FixedServer(Child);

impl FixedServer {
    fn start(addr: &str) -> Self {
        Self::start_with(addr, &[])
    }

    fn start_with(addr: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(WSX)
            .args(["serve", "--listen", addr])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        assert!(first.contains(addr), "{first}");
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Self(child)
    }

    fn stop(mut self) {
        let pid = self.0.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let _ = self.0.wait();
    }
}

impl Drop for FixedServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `--reconnect`: the server goes away (1001) and comes back; the line typed meanwhile is sent
/// on the new connection.
#[test]
fn reconnect_after_the_server_comes_back() {
    let addr = free_addr();
    let server = FixedServer::start(&addr);
    let url = format!("ws://{addr}/echo");
    let mut client = Client::start(&["--reconnect", &url]);
    client.send("one\n");
    assert_eq!(client.line(), "one");
    server.stop();
    let seen = client.stderr_until("reconnecting in");
    assert!(seen.iter().any(|l| l.contains("1001")), "{seen:?}");
    client.send("two\n");
    std::thread::sleep(Duration::from_millis(300));
    let server = FixedServer::start(&addr);
    client.stderr_until("reconnected");
    assert_eq!(client.line(), "two");
    client.end_stdin();
    let status = client.wait();
    assert!(status.success(), "{status:?}");

    // Without --reconnect, the server's going away ends the client (not a normal close).
    let mut client = Client::start(&[&url]);
    client.send("three\n");
    assert_eq!(client.line(), "three");
    server.stop();
    assert!(!client.wait().success());
}

/// `--reconnect` in a `superchat` room resumes from the last offset it received: the messages
/// sent while it was away arrive once, nothing it had already seen comes again. Two nodes on one
/// Redis (the room's history outlives the node the client was on).
#[test]
fn reconnect_resumes_a_superchat_room() {
    let Some(redis) = redis_server() else { return };
    let redis_url = format!("redis://{}", redis.1);
    let (a, b) = (free_addr(), free_addr());
    let node_a = FixedServer::start_with(&a, &["--redis", &redis_url]);
    let _node_b = FixedServer::start_with(&b, &["--redis", &redis_url]);
    let mut reader =
        Client::start(&["--reconnect", "-p", "superchat", &format!("ws://{a}/chat/r?name=cli")]);
    assert!(reader.line().contains(r#""type":"welcome""#));
    reader.send("one\n");
    assert!(reader.line().contains(r#""offset":1,"text":"one""#));
    node_a.stop();
    reader.stderr_until("reconnecting in");
    let mut writer = Client::start(&[&format!("ws://{b}/chat/r")]);
    for text in ["two", "three"] {
        writer.send(&format!("{text}\n"));
        assert_eq!(writer.line(), text);
    }
    let _node_a = FixedServer::start_with(&a, &["--redis", &redis_url]);
    reader.stderr_until("reconnected");
    let welcome = reader.line();
    assert!(welcome.contains(r#""recovered":true"#), "{welcome}");
    assert!(reader.line().contains(r#""offset":2,"text":"two""#));
    assert!(reader.line().contains(r#""offset":3,"text":"three""#));
    writer.send("four\n");
    let next = reader.line();
    assert!(next.contains(r#""offset":4,"text":"four""#), "nothing twice: {next}");
    writer.end_stdin();
    reader.end_stdin();
    assert!(reader.wait().success());
}

/// A `redis-server` without persistence on a free loopback port (killed when dropped); `None`
/// (the test skipped) when it is not installed, outside CI.
fn redis_server() -> Option<(FixedChild, String)> {
    let installed = Command::new("redis-server").arg("--version").output().is_ok();
    if !installed {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "redis-server is not installed");
        eprintln!("SKIPPED: redis-server is not installed (apt-get install redis-server)");
        return None;
    }
    let addr = free_addr();
    let port = addr.rsplit(':').next().unwrap().to_string();
    let child = Command::new("redis-server")
        .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "redis-server is not listening on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((FixedChild(child), addr))
}

/// A child process killed and reaped when dropped.
struct FixedChild(Child);

impl Drop for FixedChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Under a pseudo-terminal (`script`): a prompt, `<` for what arrives, the close shown; Ctrl-D
/// closes with 1000 (exit status 0). NO_COLOR: no escape sequences for colours.
#[test]
fn interactive_prompt_under_a_pseudo_terminal() {
    let server = Server::start(&[]);
    let command = format!("{WSX} connect {}", server.url("/echo"));
    let mut script = Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux script");
    let mut stdin = script.stdin.take().unwrap();
    let output = script.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut output = output;
        let mut buf = [0u8; 4096];
        while let Ok(n) = output.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut screen = String::new();
    let wait_for = |text: &str, screen: &mut String| {
        let deadline = Instant::now() + WAIT;
        while !screen.contains(text) {
            let left = deadline.checked_duration_since(Instant::now()).unwrap_or_default();
            match rx.recv_timeout(left) {
                Ok(bytes) => screen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => panic!("no {text:?} on the terminal in {WAIT:?}: {screen:?}"),
            }
        }
    };
    wait_for("> ", &mut screen);
    stdin.write_all(b"hello terminal\r").unwrap();
    stdin.flush().unwrap();
    wait_for("< hello terminal", &mut screen);
    stdin.write_all(b"\x04").unwrap();
    stdin.flush().unwrap();
    wait_for("< close 1000", &mut screen);
    assert!(screen.contains("> close 1000"), "{screen:?}");
    assert!(!screen.contains("\x1b[32m"), "NO_COLOR: {screen:?}");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = script.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "still running: {screen:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(stdin);
    assert!(status.success(), "{status:?}: {screen:?}");
}
