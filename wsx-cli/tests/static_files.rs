//! `wsx serve --static DIR` and `--devconsole`: the real binary on a free loopback port per test,
//! stopped by its process id, asked with raw HTTP/1.1 requests (so paths reach it unnormalized).

mod common;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsx::{CloseCode, Message};

use self::common::{connector, next_data, within, Server};

/// A response: status, headers (names lowercase), body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `method path` with `headers` on a connection of its own and reads the whole response.
async fn ask(server: &Server, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut tcp = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", server.addr);
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    within("response", tcp.read_to_end(&mut reply)).await.unwrap();
    let end = reply.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| {
        panic!("{method} {path}: no head in {:?}", String::from_utf8_lossy(&reply))
    });
    let head = String::from_utf8(reply[..end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply { status, headers, body: reply[end + 4..].to_vec() }
}

/// A fresh directory under the system's temporary directory, removed when dropped.
struct Tree(PathBuf);

impl Tree {
    fn new(name: &str) -> Self {
        let root = std::env::temp_dir().join(format!("wsx-static-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        Self(root)
    }

    fn write(&self, path: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn path(&self, path: &str) -> PathBuf {
        self.0.join(path)
    }

    fn site(&self) -> String {
        self.path("site").to_str().unwrap().to_string()
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `site/` with a few files, a `secret` beside it, links in and out.
fn site(name: &str) -> Tree {
    let tree = Tree::new(name);
    tree.write("secret", "the secret\n");
    tree.write("site/index.html", "<h1>home</h1>\n");
    tree.write("site/style.css", "body { color: red }\n");
    tree.write("site/app.mjs", "export default 1;\n");
    tree.write("site/data.json", "{}\n");
    tree.write("site/blob.xyz", [0u8, 1, 2, 255]);
    tree.write("site/a/b.txt", "in a\n");
    tree.write("site/sub/index.html", "<h1>sub</h1>\n");
    tree.write("site/noindex/file.txt", "here\n");
    tree.write("site/.env", "PASSWORD=hunter2\n");
    tree.write("site/.git/config", "[core]\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::symlink;
        symlink(tree.path("secret"), tree.path("site/escape")).unwrap();
        symlink(tree.path("."), tree.path("site/up")).unwrap();
        symlink(tree.path("site/style.css"), tree.path("site/alias.css")).unwrap();
        symlink(tree.path("site/.git"), tree.path("site/hidden")).unwrap();
    }
    tree
}

#[tokio::test]
async fn files_with_their_types_heads_and_indexes() {
    let tree = site("types");
    let server = Server::start(&["--static", &tree.site()]);
    let css = ask(&server, "GET", "/style.css", &[]).await;
    assert_eq!(css.status, 200);
    assert_eq!(css.text(), "body { color: red }\n");
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(css.header("content-length"), Some("20"));
    assert_eq!(css.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(css.header("cache-control"), Some("no-cache"));
    assert!(css.header("etag").is_some() && css.header("last-modified").is_some());
    assert!(css.header("x-wsx-node").is_some(), "the node is named, as on every response");
    for (path, content_type) in [
        ("/app.mjs", "text/javascript; charset=utf-8"),
        ("/data.json", "application/json"),
        ("/blob.xyz", "application/octet-stream"),
        ("/a/b.txt", "text/plain; charset=utf-8"),
    ] {
        let reply = ask(&server, "GET", path, &[]).await;
        assert_eq!(
            (reply.status, reply.header("content-type")),
            (200, Some(content_type)),
            "{path}"
        );
    }
    assert_eq!(ask(&server, "GET", "/blob.xyz", &[]).await.body, [0, 1, 2, 255]);

    let head = ask(&server, "HEAD", "/style.css", &[]).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("20"));
    assert_eq!(head.header("content-type"), Some("text/css; charset=utf-8"));
    assert!(head.body.is_empty());

    for path in ["/", "/index.html"] {
        let home = ask(&server, "GET", path, &[]).await;
        assert_eq!((home.status, home.text().as_str()), (200, "<h1>home</h1>\n"), "{path}");
        assert_eq!(home.header("content-type"), Some("text/html; charset=utf-8"));
    }
    let sub = ask(&server, "GET", "/sub/", &[]).await;
    assert_eq!((sub.status, sub.text().as_str()), (200, "<h1>sub</h1>\n"));
    let moved = ask(&server, "GET", "/sub", &[]).await;
    assert_eq!((moved.status, moved.header("location")), (301, Some("/sub/")));
    let moved = ask(&server, "GET", "/sub?x=1", &[]).await;
    assert_eq!((moved.status, moved.header("location")), (301, Some("/sub/?x=1")));
    // A directory without index.html is not listed; a file is not a directory.
    for path in ["/noindex", "/noindex/", "/style.css/", "/missing", "/a/missing.txt"] {
        assert_eq!(ask(&server, "GET", path, &[]).await.status, 404, "{path}");
    }

    for method in ["POST", "PUT", "DELETE"] {
        let refused = ask(&server, method, "/style.css", &[("Content-Length", "0")]).await;
        assert_eq!((refused.status, refused.header("allow")), (405, Some("GET, HEAD")), "{method}");
        let refused = ask(&server, method, "/missing", &[("Content-Length", "0")]).await;
        assert_eq!(refused.status, 405, "{method} on nothing: the same answer");
    }
}

#[tokio::test]
async fn large_files_are_streamed_whole() {
    let tree = site("large");
    let big: Vec<u8> = (0..3 * 1024 * 1024 + 7).map(|i: u32| (i % 251) as u8).collect();
    tree.write("site/big.bin", &big);
    let server = Server::start(&["--static", &tree.site()]);
    let reply = ask(&server, "GET", "/big.bin", &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-length"), Some(big.len().to_string().as_str()));
    assert!(reply.body == big, "{} bytes back", reply.body.len());
}

#[tokio::test]
async fn nothing_outside_the_directory_and_no_hidden_files() {
    let tree = site("escape");
    let server = Server::start(&["--static", &tree.site()]);
    assert_eq!(ask(&server, "GET", "/a/b.txt", &[]).await.status, 200, "the control");
    let mut refused = vec![
        "/../secret",
        "/%2e%2e/secret",
        "/%2E%2E/secret",
        "/a/%2e%2e/%2e%2e/secret",
        "/a/../../secret",
        "/a/../style.css",
        "/..%2fsecret",
        "/a%2fb.txt",
        "/a\\..\\secret",
        "/a%5c..%5csecret",
        "/%00",
        "/style.css%00",
        "/style.css%00.txt",
        "/%zz",
        "//secret",
        "/./style.css",
        "/.env",
        "/%2eenv",
        "/.git/config",
        "/.git/",
    ];
    if cfg!(unix) {
        refused.extend(["/escape", "/up/secret", "/up/site/.env", "/hidden/config"]);
    }
    for path in refused {
        let reply = ask(&server, "GET", path, &[]).await;
        assert_eq!((reply.status, reply.text().as_str()), (404, "not found\n"), "{path}");
    }
    if cfg!(unix) {
        // Links are followed where they end inside the directory, wherever they start.
        for path in ["/alias.css", "/up/site/style.css"] {
            let inside = ask(&server, "GET", path, &[]).await;
            assert_eq!((inside.status, inside.text().as_str()), (200, "body { color: red }\n"));
        }
    }
}

#[tokio::test]
async fn conditional_gets() {
    let tree = site("conditional");
    let server = Server::start(&["--static", &tree.site()]);
    let first = ask(&server, "GET", "/style.css", &[]).await;
    let etag = first.header("etag").unwrap().to_string();
    let modified = first.header("last-modified").unwrap().to_string();
    assert!(modified.ends_with(" GMT"), "{modified}");

    let same = ask(&server, "GET", "/style.css", &[("If-None-Match", &etag)]).await;
    assert_eq!(same.status, 304);
    assert!(same.body.is_empty());
    assert_eq!(same.header("etag"), Some(etag.as_str()));
    let weak = format!("\"other\", W/{etag}");
    assert_eq!(ask(&server, "GET", "/style.css", &[("If-None-Match", &weak)]).await.status, 304);
    let since = ask(&server, "GET", "/style.css", &[("If-Modified-Since", &modified)]).await;
    assert_eq!((since.status, since.body.len()), (304, 0));
    let head = ask(&server, "HEAD", "/style.css", &[("If-None-Match", &etag)]).await;
    assert_eq!(head.status, 304);
    let old = "Thu, 01 Jan 1970 00:00:00 GMT";
    assert_eq!(ask(&server, "GET", "/style.css", &[("If-Modified-Since", old)]).await.status, 200);
    let other = [("If-None-Match", "\"nope\""), ("If-Modified-Since", modified.as_str())];
    assert_eq!(
        ask(&server, "GET", "/style.css", &other).await.status,
        200,
        "If-None-Match wins over If-Modified-Since"
    );

    // The file changes (same size, a later mtime): both validators are stale.
    let path = tree.write("site/style.css", "body { color: blue}\n");
    let later = SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(later).unwrap();
    let changed = ask(&server, "GET", "/style.css", &[("If-None-Match", &etag)]).await;
    assert_eq!((changed.status, changed.text().as_str()), (200, "body { color: blue}\n"));
    assert_ne!(changed.header("etag"), Some(etag.as_str()));
    let changed = ask(&server, "GET", "/style.css", &[("If-Modified-Since", &modified)]).await;
    assert_eq!(changed.status, 200);
}

#[tokio::test]
async fn websocket_routes_health_and_metrics_keep_priority() {
    let tree = site("priority");
    // Files named like the server's own routes: the routes win.
    tree.write("site/echo", "a file\n");
    tree.write("site/healthz", "a file\n");
    tree.write("site/metrics", "a file\n");
    let server = Server::start(&["--static", &tree.site()]);
    let (mut ws, _) = connector().connect(&server.url("/echo")).await.unwrap();
    ws.send(Message::text("still echoed")).await.unwrap();
    assert_eq!(next_data(&mut ws).await, Message::text("still echoed"));
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    let (mut room, _) = connector().connect(&server.url("/chat/lobby")).await.unwrap();
    room.send(Message::text("hi")).await.unwrap();
    assert_eq!(next_data(&mut room).await, Message::text("hi"));
    let health = ask(&server, "GET", "/healthz", &[]).await;
    assert_eq!(health.status, 200);
    assert!(health.text().starts_with("{\"status\":\"ok\""), "{}", health.text());
    let metrics = ask(&server, "GET", "/metrics", &[]).await;
    assert!(metrics.text().contains("# TYPE"), "{}", metrics.text());
    assert_eq!(ask(&server, "GET", "/echo", &[]).await.status, 426, "a plain GET of /echo");
    // An upgrade to a file's path is not served a file (nor a WebSocket).
    let upgrade = connector().connect(&server.url("/style.css")).await;
    assert!(upgrade.is_err());
}

#[tokio::test]
async fn without_index_html_the_chat_page_stays_at_the_root() {
    let tree = Tree::new("noindex");
    tree.write("site/only.txt", "only\n");
    let server = Server::start(&["--static", &tree.site()]);
    let root = ask(&server, "GET", "/", &[]).await;
    assert_eq!(root.status, 200);
    assert!(root.text().contains("<html"), "the chat page: {}", root.text());
    assert_eq!(ask(&server, "GET", "/only.txt", &[]).await.text(), "only\n");
}

#[tokio::test]
async fn a_missing_directory_is_an_error_at_startup() {
    let tree = Tree::new("missing");
    let status = std::process::Command::new(common::WSX)
        .args(["serve", "--listen", "127.0.0.1:0", "--static"])
        .arg(tree.path("nothing-here"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success());
}

#[tokio::test]
async fn the_developer_console_only_when_asked_for() {
    let server = Server::start(&["--devconsole"]);
    let page = ask(&server, "GET", "/devconsole", &[]).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    let html = page.text();
    for part in ["new WebSocket(", "CONNECTING", "CLOSING", "/echo", "event.code", "event.reason"] {
        assert!(html.contains(part), "{part} in the console");
    }
    assert!(!html.contains("<script src") && !html.contains("<link"), "self-contained");
    drop(server);

    let server = Server::start(&[]);
    assert_eq!(ask(&server, "GET", "/devconsole", &[]).await.status, 404);
    let tree = site("console");
    let server = Server::start(&["--static", &tree.site()]);
    assert_eq!(ask(&server, "GET", "/devconsole", &[]).await.status, 404);
}
