//! fastwebsockets echo server (through hyper, as its docs show): `fastwebsockets PORT` (TLS
//! with BENCH_TLS_CERT/BENCH_TLS_KEY).
//!
//! FragmentCollector has no flush; none is needed over TLS either: tokio-rustls writes the
//! records out within each write, and only a full socket buffer (never, with one 16 B
//! message in flight) could leave bytes in rustls until the next write.
use fastwebsockets::{upgrade, FragmentCollector, OpCode};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use wsx_bench_servers::{Echo, Stream};

async fn handle(
    mut request: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, fastwebsockets::WebSocketError> {
    let (response, fut) = upgrade::upgrade(&mut request)?;
    tokio::spawn(async move {
        let Ok(ws) = fut.await else { return };
        let mut ws = FragmentCollector::new(ws);
        while let Ok(frame) = ws.read_frame().await {
            match frame.opcode {
                OpCode::Close => break,
                OpCode::Text | OpCode::Binary => {
                    if ws.write_frame(frame).await.is_err() {
                        break;
                    }
                }
                _ => {}
            }
        }
    });
    Ok(response)
}

#[derive(Clone, Copy)]
struct Fastwebsockets;

impl Echo for Fastwebsockets {
    async fn echo<S: Stream>(self, stream: S) {
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service_fn(handle))
            .with_upgrades()
            .await;
    }
}

#[tokio::main]
async fn main() {
    wsx_bench_servers::serve(Fastwebsockets).await;
}
