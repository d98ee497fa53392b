//! The floor: answers the upgrade, then echoes frames with the least work a valid server can do
//! (parse the header, unmask, write back unmasked); no UTF-8 checks, no limits, no assembly.
//! `raw PORT`; with BENCH_TLS_CERT/BENCH_TLS_KEY, the same over TLS (a TLS echo floor).
use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsx_bench_servers::{Echo, Stream};

#[derive(Clone, Copy)]
struct Raw;

impl Echo for Raw {
    async fn echo<S: Stream>(self, mut tcp: S) {
        {
            let mut buf = Vec::with_capacity(64 * 1024);
            let mut chunk = vec![0u8; 64 * 1024];
            // The request head.
            let head_end = loop {
                let Ok(n) = tcp.read(&mut chunk).await else { return };
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
            let Some(key) = head.lines().find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("sec-websocket-key").then(|| value.trim().to_string())
            }) else {
                return;
            };
            let mut sha = sha1_smol::Sha1::new();
            sha.update(key.as_bytes());
            sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
            let accept = base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes());
            let response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            );
            // (flush: a no-op on TCP; over TLS it sends what rustls may still hold)
            if tcp.write_all(response.as_bytes()).await.is_err() || tcp.flush().await.is_err() {
                return;
            }
            buf.drain(..head_end);
            let mut out = Vec::with_capacity(64 * 1024);
            loop {
                // Echo every complete frame in the buffer, in one write.
                let mut at = 0;
                while let Some((header, len)) = parse(&buf[at..]) {
                    let (op, masked_len, key, payload_len) = header;
                    if at + masked_len + payload_len > buf.len() {
                        break;
                    }
                    let payload = &mut buf[at + len..at + len + payload_len];
                    for (i, b) in payload.iter_mut().enumerate() {
                        *b ^= key[i & 3];
                    }
                    if op == 0x8 {
                        return;
                    }
                    out.push(0x80 | op);
                    match payload_len {
                        n @ 0..=125 => out.push(n as u8),
                        n @ 126..=65535 => {
                            out.push(126);
                            out.extend_from_slice(&(n as u16).to_be_bytes());
                        }
                        n => {
                            out.push(127);
                            out.extend_from_slice(&(n as u64).to_be_bytes());
                        }
                    }
                    out.extend_from_slice(&buf[at + len..at + len + payload_len]);
                    at += len + payload_len;
                }
                buf.drain(..at);
                if !out.is_empty() {
                    if tcp.write_all(&out).await.is_err() || tcp.flush().await.is_err() {
                        return;
                    }
                    out.clear();
                }
                let Ok(n) = tcp.read(&mut chunk).await else { return };
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
}

#[tokio::main]
async fn main() {
    wsx_bench_servers::serve(Raw).await;
}

/// (opcode, header length, mask key, payload length) and the header length.
type Header = (u8, usize, [u8; 4], usize);

fn parse(b: &[u8]) -> Option<(Header, usize)> {
    if b.len() < 2 {
        return None;
    }
    let op = b[0] & 0x0f;
    let (len, mut at) = match b[1] & 0x7f {
        126 => (u16::from_be_bytes([*b.get(2)?, *b.get(3)?]) as usize, 4),
        127 => (u64::from_be_bytes(b.get(2..10)?.try_into().ok()?) as usize, 10),
        n => (n as usize, 2),
    };
    let key: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    at += 4;
    Some(((op, at, key, len), at))
}
