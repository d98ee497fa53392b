//! fastwebsockets echo server (through hyper, as its docs show): `fastwebsockets PORT`.
use fastwebsockets::{upgrade, FragmentCollector, OpCode};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

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

#[tokio::main]
async fn main() {
    wsx_bench_servers::serve(|tcp| async move {
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(tcp), service_fn(handle))
            .with_upgrades()
            .await;
    })
    .await;
}
