//! `wsx serve --http2` against the known HTTP/2 attack classes, written as raw frames over h2c:
//! rapid reset (CVE-2023-44487), a CONTINUATION flood (CVE-2024-27316 and kin), SETTINGS and
//! PING floods. The defences are hyper's and h2's, as `wsx serve` configures them; the tests
//! check what a server must do: the abusive connection is ended (GOAWAY or closed) or kept in
//! bounds, the server's memory stays bounded, and other clients are served all along.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Server;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// One frame: 24-bit length, type, flags, stream id, payload (RFC 9113 §4.1).
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// HPACK for `GET http://authority/path`: indexed :method GET and :scheme http, literal
/// :path and :authority (never indexed, no Huffman).
fn get(path: &str, authority: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86];
    for (index, value) in [(4u8, path), (1u8, authority)] {
        block.push(0x10 | index);
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    block
}

/// A connection that has sent the preface and an empty SETTINGS frame.
fn connect(server: &Server) -> TcpStream {
    let mut tcp = TcpStream::connect(&server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    tcp.write_all(PREFACE).unwrap();
    tcp.write_all(&frame(SETTINGS, 0, 0, &[])).unwrap();
    tcp
}

/// Writes `bytes` until done or the server stops taking them (it closed, or it does not read);
/// whether everything was written.
fn write_all_or_stop(tcp: &mut TcpStream, bytes: &[u8]) -> bool {
    tcp.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(bytes).is_ok()
}

/// Reads what the server sends for up to `wait`: whether it sent a GOAWAY, and whether it
/// closed the connection.
fn goaway_or_close(tcp: &mut TcpStream, wait: Duration) -> (bool, bool) {
    let deadline = Instant::now() + wait;
    let mut seen = Vec::new();
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline {
        match tcp.read(&mut buf) {
            Ok(0) => return (has_goaway(&seen), true),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (has_goaway(&seen), true),
        }
        if has_goaway(&seen) {
            return (true, false);
        }
    }
    (has_goaway(&seen), false)
}

/// Whether the frames in `bytes` (from the start of the connection) include a GOAWAY.
fn has_goaway(bytes: &[u8]) -> bool {
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let len = (usize::from(bytes[at]) << 16)
            | (usize::from(bytes[at + 1]) << 8)
            | usize::from(bytes[at + 2]);
        if bytes[at + 3] == GOAWAY {
            return true;
        }
        at += 9 + len;
    }
    false
}

/// The server's resident memory, in KiB.
fn rss_kib(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A fresh client is served: `/healthz` over HTTP/1.1 answers 200.
fn still_serving(server: &Server) {
    let mut tcp = TcpStream::connect(&server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(tcp, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut reply = String::new();
    let _ = tcp.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "the server stopped serving: {reply:?}");
}

fn h2_server() -> Server {
    Server::start(&["--http2", "--keepalive", "0"])
}

#[test]
fn rapid_reset_is_cut_short() {
    let server = h2_server();
    let mut tcp = connect(&server);
    let block = get("/healthz", &server.addr);
    let mut burst = Vec::new();
    for i in 0..20_000u32 {
        let stream = 2 * i + 1;
        burst.extend(frame(HEADERS, END_HEADERS | END_STREAM, stream, &block));
        burst.extend(frame(RST_STREAM, 0, stream, &8u32.to_be_bytes())); // CANCEL
    }
    write_all_or_stop(&mut tcp, &burst);
    let (goaway, closed) = goaway_or_close(&mut tcp, Duration::from_secs(10));
    assert!(goaway || closed, "20,000 streams opened and reset: the connection went on");
    still_serving(&server);
}

#[test]
fn a_continuation_flood_is_refused() {
    let server = h2_server();
    let before = rss_kib(&server);
    let mut tcp = connect(&server);
    tcp.write_all(&frame(HEADERS, 0, 1, &get("/healthz", &server.addr))).unwrap();
    // Endless CONTINUATION frames of literal headers, never END_HEADERS: 64 MiB offered.
    let mut header = vec![0x00, 0x01, b'x', 0x7f, 0x81, 0x7f];
    header.extend(std::iter::repeat_n(b'a', 254));
    let chunk: Vec<u8> = std::iter::repeat_n(header, 60).flatten().collect();
    let one = frame(CONTINUATION, 0, 1, &chunk);
    let mut sent = 0usize;
    while sent < 64 << 20 && write_all_or_stop(&mut tcp, &one) {
        sent += one.len();
    }
    let (goaway, closed) = goaway_or_close(&mut tcp, Duration::from_secs(10));
    assert!(goaway || closed, "{sent} bytes of CONTINUATION frames: the connection went on");
    let grown = rss_kib(&server).saturating_sub(before);
    assert!(grown < 32 * 1024, "the server grew by {grown} KiB holding a header block");
    still_serving(&server);
}

#[test]
fn settings_and_ping_floods_stay_bounded() {
    let server = h2_server();
    let before = rss_kib(&server);
    for (kind, payload) in [(SETTINGS, vec![0u8, 3, 0, 0, 0, 100]), (PING, vec![7u8; 8])] {
        let mut tcp = connect(&server);
        // Every one of these asks for an answer (an ACK); this client never reads them.
        let one = frame(kind, 0, 0, &payload);
        let burst: Vec<u8> = std::iter::repeat_n(one, 100_000).flatten().collect();
        let all_taken = write_all_or_stop(&mut tcp, &burst);
        let (goaway, closed) = goaway_or_close(&mut tcp, Duration::from_secs(2));
        // Either the server cut the connection, or it stopped reading once its answers were
        // not read (TCP backpressure): in both cases what it holds is bounded.
        eprintln!("flood of type {kind}: all taken {all_taken}, GOAWAY {goaway}, closed {closed}");
        still_serving(&server);
    }
    let grown = rss_kib(&server).saturating_sub(before);
    assert!(grown < 32 * 1024, "the server grew by {grown} KiB answering floods");
}

#[test]
fn a_well_behaved_h2_client_is_served_alongside() {
    // The frames above are right: a GET with them is answered.
    let server = h2_server();
    let mut tcp = connect(&server);
    tcp.write_all(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &get("/healthz", &server.addr)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !String::from_utf8_lossy(&seen).contains("\"status\"") {
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    assert!(
        String::from_utf8_lossy(&seen).contains("\"status\":\"ok\""),
        "no answer to a plain GET"
    );
}
