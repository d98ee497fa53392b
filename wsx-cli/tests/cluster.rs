//! Several `wsx serve` nodes sharing chat rooms through a real Redis, behind a real nginx that
//! runs `deploy/nginx.conf` (ports and read timeout changed). Debian's `redis-server` and `nginx`
//! are started here on free loopback ports and stopped by process id; `.ci/run` installs them.
//! Without them the tests say so and pass, except under `CI=true`, where they fail.

mod common;

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wsx::{CloseCode, Message};

use self::common::{connector, next_data, within, Server};

type Client = wsx::WebSocket<wsx::ClientStream>;

/// The program `name`, from PATH or the sbin directories; `None` (the test is skipped) when
/// missing outside CI.
fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{name} is not installed: .ci/run installs it (apt-get install redis-server nginx)"
        );
        eprintln!("SKIPPED: {name} is not installed (apt-get install redis-server nginx)");
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until `port` accepts connections.
fn wait_for_port(what: &str, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} is not listening on {port} after 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process, killed (SIGKILL) and reaped when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `redis-server` without persistence on a loopback port.
struct Redis {
    program: PathBuf,
    port: u16,
    process: Option<Process>,
}

impl Redis {
    fn start() -> Option<Self> {
        let mut redis =
            Self { program: program("redis-server")?, port: free_port(), process: None };
        redis.restart();
        Some(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again, on the same port) and waits for it to answer PING.
    fn restart(&mut self) {
        let port = self.port.to_string();
        let child = Command::new(&self.program)
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.process = Some(Process(child));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pong = TcpStream::connect(("127.0.0.1", self.port)).ok().and_then(|mut tcp| {
                tcp.write_all(b"PING\r\n").ok()?;
                let mut reply = [0; 7];
                tcp.read_exact(&mut reply).ok()?;
                Some(reply)
            });
            if pong.as_ref() == Some(b"+PONG\r\n") {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server does not answer PING after 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it (SIGKILL: no goodbye to the clients).
    fn kill(&mut self) {
        self.process = None;
    }
}

/// nginx running `deploy/nginx.conf` in front of `nodes`, in its own temporary directory.
struct Nginx {
    port: u16,
    dir: PathBuf,
    _process: Process,
}

impl Nginx {
    fn start(nodes: &[&Server], read_timeout: &str) -> Option<Self> {
        let nginx = program("nginx")?;
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("wsx-nginx-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/nginx.conf");
        let mut conf = std::fs::read_to_string(shipped).unwrap();
        // Each change must apply: the test runs the shipped file, not a look-alike.
        let mut change = |from: &str, to: &str| {
            assert!(conf.contains(from), "deploy/nginx.conf no longer contains {from:?}");
            conf = conf.replacen(from, to, 1);
        };
        let servers: String = nodes
            .iter()
            .map(|n| format!("server {} max_fails=1 fail_timeout=10s;\n        ", n.addr))
            .collect();
        change("server 127.0.0.1:8081 max_fails=1 fail_timeout=10s;\n        ", &servers);
        change("server 127.0.0.1:8082 max_fails=1 fail_timeout=10s;\n", "\n");
        change("listen 8080;", &format!("listen 127.0.0.1:{port};"));
        change("proxy_read_timeout 60s;", &format!("proxy_read_timeout {read_timeout};"));
        change("worker_processes auto;", "worker_processes 1;");
        let d = dir.display();
        change(
            "http {\n",
            &format!(
                "http {{\n    access_log off;\n    client_body_temp_path {d}/body;\n    \
                 proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n    \
                 uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n"
            ),
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let globals = format!("daemon off; pid {d}/nginx.pid; error_log {d}/logs/error.log warn;");
        let child = Command::new(nginx)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .args(["-g", &globals])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx starts");
        let process = Process(child);
        wait_for_port("nginx", port);
        Some(Self { port, dir, _process: process })
    }

    fn url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    /// Stops nginx with SIGTERM, so that its master stops its workers (SIGKILL to the master
    /// would leave them running), waits for it (bounded), then removes its directory.
    fn drop(&mut self) {
        let child = &mut self._process.0;
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        for _ in 0..100 {
            if !matches!(child.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A node sharing rooms through `redis`, named `name`, believing nginx's forwarding headers.
fn node(redis: &Redis, name: &str, extra: &[&str]) -> Server {
    let url = redis.url();
    let mut args = vec!["--redis", &url, "--node", name, "--trust-proxy", "127.0.0.1"];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    wait_until(&format!("{name} subscribed to Redis"), || health(&server).contains("\"ok\""));
    server
}

/// `/healthz` of `server` (blocking; the body only).
fn health(server: &Server) -> String {
    let Ok(mut tcp) = TcpStream::connect(&server.addr) else { return String::new() };
    let request =
        format!("GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", server.addr);
    let mut reply = String::new();
    let _ = tcp.write_all(request.as_bytes()).and_then(|()| tcp.read_to_string(&mut reply));
    reply.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A member of `room` through `url`, and the node that answered (X-Wsx-Node).
async fn join(url: &str) -> (Client, String) {
    let (ws, response) = within("connect", connector().connect(url)).await.expect("connects");
    let node = response.headers()["x-wsx-node"].to_str().unwrap().to_string();
    (ws, node)
}

/// The next `n` data messages as text.
async fn texts(ws: &mut Client, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        match next_data(ws).await {
            Message::Text(t) => out.push(t.to_string()),
            other => panic!("expected a text message, got {other:?}"),
        }
    }
    out
}

/// Members until both nodes have at least `per_node`.
async fn members_on_both(nginx: &Nginx, room: &str, per_node: usize) -> Vec<(Client, String)> {
    let mut members = Vec::new();
    for _ in 0..per_node * 4 {
        members.push(join(&nginx.url(&format!("/chat/{room}"))).await);
        let nodes: Vec<&String> = members.iter().map(|(_, n)| n).collect();
        if ["n1", "n2"].iter().all(|n| nodes.iter().filter(|m| **m == n).count() >= per_node) {
            return members;
        }
    }
    let nodes: Vec<&String> = members.iter().map(|(_, n)| n).collect();
    panic!("nginx did not spread members over both nodes: {nodes:?}");
}

/// Several senders on two nodes at once: every member, on either node, sees every message of
/// the room, its own included, in one and the same order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_behind_nginx_share_a_room_in_one_order() {
    let Some(redis) = Redis::start() else { return };
    let (n1, n2) = (node(&redis, "n1", &[]), node(&redis, "n2", &[]));
    let Some(nginx) = Nginx::start(&[&n1, &n2], "60s") else { return };
    let members = members_on_both(&nginx, "order", 2).await;
    const SENDERS: usize = 3;
    const EACH: usize = 40;
    let mut tasks = Vec::new();
    for (i, (mut ws, node)) in members.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            if i < SENDERS {
                for j in 0..EACH {
                    ws.feed(Message::text(format!("{i}.{j}"))).await.unwrap();
                }
                ws.flush().await.unwrap();
            }
            let seen = texts(&mut ws, SENDERS * EACH).await;
            ws.close(CloseCode::NORMAL, "").await.unwrap();
            (node, seen)
        }));
    }
    let mut orders = Vec::new();
    for task in tasks {
        orders.push(task.await.unwrap());
    }
    let (first_node, first) = &orders[0];
    for (node, order) in &orders {
        assert_eq!(order, first, "a member on {node} saw another order than one on {first_node}");
    }
    // Every message once, each sender's in the order it sent them.
    let unique: BTreeSet<&String> = first.iter().collect();
    assert_eq!(unique.len(), SENDERS * EACH);
    for i in 0..SENDERS {
        let own: Vec<&String> = first.iter().filter(|m| m.starts_with(&format!("{i}."))).collect();
        let expected: Vec<String> = (0..EACH).map(|j| format!("{i}.{j}")).collect();
        assert_eq!(own, expected.iter().collect::<Vec<_>>());
    }
    // The senders really were interleaved across nodes (not one after another).
    let switches = first.windows(2).filter(|w| w[0].split('.').next() != w[1].split('.').next());
    assert!(switches.count() >= 2, "no interleaving at all: {first:?}");
}

/// A node killed: its members see the connection end, reconnect through nginx and land on a
/// node that remains; the members of the other node notice nothing. A node drained (SIGTERM):
/// its members get 1001 and do the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_drained_nodes_send_their_members_to_the_others() {
    let Some(redis) = Redis::start() else { return };
    let (n1, mut n2) = (node(&redis, "n1", &[]), node(&redis, "n2", &[]));
    let n3 = node(&redis, "n3", &[]);
    let Some(nginx) = Nginx::start(&[&n1, &n2, &n3], "60s") else { return };
    let url = nginx.url("/chat/failover");
    let mut members = Vec::new();
    for _ in 0..6 {
        members.push(join(&url).await);
    }
    let on = |members: &[(Client, String)], node: &str| {
        members.iter().filter(|(_, n)| n == node).count()
    };
    assert!(on(&members, "n1") >= 1 && on(&members, "n2") >= 1 && on(&members, "n3") >= 1);

    // Kill n1 (SIGKILL: no Close frame).
    drop(n1);
    let mut survivors = Vec::new();
    for (mut ws, node) in members {
        if node == "n1" {
            let end = within("n1's members see the end", async {
                loop {
                    match ws.recv().await {
                        None | Some(Err(_)) => return,
                        Some(Ok(Message::Close(_))) => return,
                        Some(Ok(_)) => {}
                    }
                }
            });
            end.await;
            let (ws, node) = join(&url).await;
            assert_ne!(node, "n1", "nginx sent a reconnecting member to the dead node");
            survivors.push((ws, node));
        } else {
            survivors.push((ws, node));
        }
    }
    // Everyone, the undisturbed and the reconnected, still shares the room.
    survivors[0].0.send(Message::text("after the kill")).await.unwrap();
    for (ws, node) in &mut survivors {
        assert_eq!(texts(ws, 1).await, ["after the kill"], "member on {node}");
    }

    // Drain n2: 1001 to its members, who come back on n3.
    n2.signal("-TERM");
    let mut remaining = Vec::new();
    for (mut ws, node) in survivors {
        if node == "n2" {
            match next_data(&mut ws).await {
                Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::GOING_AWAY),
                other => panic!("expected Close 1001 from the draining node, got {other:?}"),
            }
            let (ws, node) = join(&url).await;
            assert_eq!(node, "n3");
            remaining.push((ws, node));
        } else {
            remaining.push((ws, node));
        }
    }
    wait_until("n2 exits", || n2.child.try_wait().unwrap().is_some());
    remaining[0].0.send(Message::text("after the drain")).await.unwrap();
    for (ws, node) in &mut remaining {
        assert_eq!(node, "n3");
        assert_eq!(texts(ws, 1).await, ["after the drain"]);
    }
}

/// Waits until every node's /healthz says `status`, then checks its `wsx_broker_up` metric.
async fn broker_state_is(nodes: &[&Server], status: &str, up: u64) {
    for n in nodes {
        let want = format!("\"status\":\"{status}\"");
        wait_until(&format!("{want} in /healthz"), || health(n).contains(&want));
        assert_eq!(n.metric("wsx_broker_up").await, up);
    }
}

/// Redis goes away: nodes stay up and say `degraded`; a room message is refused with a notice
/// to its sender and reaches nobody, not even later; echo goes on. Redis back: delivery resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_keeps_the_outage_policy() {
    let Some(mut redis) = Redis::start() else { return };
    let (n1, n2) = (node(&redis, "n1", &[]), node(&redis, "n2", &[]));
    let (mut a, _) = join(&n1.url("/chat/outage")).await;
    let (mut b, _) = join(&n2.url("/chat/outage")).await;
    a.send(Message::text("before")).await.unwrap();
    assert_eq!(texts(&mut a, 1).await, ["before"]);
    assert_eq!(texts(&mut b, 1).await, ["before"]);

    redis.kill();
    broker_state_is(&[&n1, &n2], "degraded", 0).await;
    a.send(Message::text("during")).await.unwrap();
    let notice = texts(&mut a, 1).await.remove(0);
    assert!(notice.contains("\"undelivered\":true") && notice.contains("Redis"), "{notice}");
    // Everything else still works on a node without its broker.
    let (mut echo, _) = join(&n1.url("/echo")).await;
    echo.send(Message::text("still here")).await.unwrap();
    assert_eq!(texts(&mut echo, 1).await, ["still here"]);

    redis.restart();
    broker_state_is(&[&n1, &n2], "ok", 1).await;
    b.send(Message::text("after")).await.unwrap();
    // "during" never arrives, neither to b nor late to a: the next message is "after".
    assert_eq!(texts(&mut a, 1).await, ["after"]);
    assert_eq!(texts(&mut b, 1).await, ["after"]);
    assert_eq!(n1.metric("wsx_room_messages_undelivered_total").await, 1);
    assert_eq!(n2.metric("wsx_room_messages_undelivered_total").await, 0);
    assert!(n1.metric("wsx_broker_outages_total").await >= 1);
}

/// Waits `idle`, answering pings (the client's part of keepalive) but seeing no data;
/// whether the connection is still open at the end.
async fn idle_for(ws: &mut Client, idle: Duration) -> bool {
    let until = tokio::time::Instant::now() + idle;
    loop {
        match tokio::time::timeout_at(until, ws.recv()).await {
            Err(_) => return true,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            Ok(Some(Ok(other))) => panic!("unexpected {other:?} while idle"),
            Ok(None | Some(Err(_))) => return false,
        }
    }
}

/// nginx closes a connection that is silent for proxy_read_timeout (2 s here); the node's
/// keepalive pings keep an idle one open. The same wait without keepalive shows that the
/// timeout is real.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_survive_the_proxy_read_timeout_through_keepalive() {
    let Some(redis) = Redis::start() else { return };
    let pinging = node(&redis, "n1", &["--keepalive", "500ms"]);
    let silent = node(&redis, "n2", &["--keepalive", "0"]);
    let Some(to_pinging) = Nginx::start(&[&pinging], "2s") else { return };
    let Some(to_silent) = Nginx::start(&[&silent], "2s") else { return };
    let (mut kept, _) = join(&to_pinging.url("/echo")).await;
    let (mut dropped, _) = join(&to_silent.url("/echo")).await;
    let (kept_open, dropped_open) = tokio::join!(
        idle_for(&mut kept, Duration::from_secs(5)),
        idle_for(&mut dropped, Duration::from_secs(5))
    );
    assert!(!dropped_open, "without keepalive nginx should have closed the idle connection");
    assert!(kept_open, "the keepalive pings did not keep the connection open through nginx");
    kept.send(Message::text("still open")).await.unwrap();
    assert_eq!(texts(&mut kept, 1).await, ["still open"]);
}

/// `wsx bench --mode room` over two nodes: every published message reaches every member
/// (deliveries = members x published, up to the messages in flight at the clock's edges).
#[test]
fn wsx_bench_room_mode_over_two_nodes() {
    let Some(redis) = Redis::start() else { return };
    let (n1, n2) = (node(&redis, "n1", &[]), node(&redis, "n2", &[]));
    let output = Command::new(common::WSX)
        .args(["bench", "--mode", "room", &n1.url("/chat/b"), "--also", &n2.url("/chat/b")])
        .args(["-c", "6", "--senders", "2", "-k", "2", "-d", "1s", "--warmup", "300ms", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let json = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| -> f64 {
        let rest = json.split(&format!("\"{name}\":")).nth(1).unwrap_or_else(|| panic!("{json}"));
        rest.split([',', '}']).next().unwrap().parse().unwrap()
    };
    assert!(json.contains("\"mode\":\"room\"") && field("errors") == 0.0, "{json}");
    let (published, delivered) = (field("published_rate"), field("rate"));
    assert!(published > 0.0, "{json}");
    let fanout = delivered / published;
    assert!(
        (5.0..=7.0).contains(&fanout),
        "6 members, yet {fanout:.2} deliveries per message: {json}"
    );
}
