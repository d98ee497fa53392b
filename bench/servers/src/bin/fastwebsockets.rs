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
    let port = std::env::args().nth(1).expect("PORT");
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await.unwrap();
    println!("ready");
    while let Ok((tcp, _)) = listener.accept().await {
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service_fn(handle))
                .with_upgrades()
                .await;
        });
    }
}
