//! What every benchmark server shares: bind 127.0.0.1:PORT (the first argument), say `ready`,
//! and run `connection` for each accepted TCP connection, with TCP_NODELAY, in its own task.
//!
//! The accept loop runs where the libraries' examples run it, in `#[tokio::main]`'s thread;
//! with `BENCH_ACCEPT_ON_WORKER=1` it runs on a runtime worker instead, as `wsx serve` does
//! (for comparing handshake rates with that difference taken out).

use std::future::Future;

use tokio::net::TcpStream;

/// Serves forever; `connection` is the library-specific echo.
pub async fn serve<F, Fut>(connection: F)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let port = std::env::args().nth(1).expect("usage: SERVER PORT");
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await.unwrap();
    println!("ready");
    let accept = async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            tokio::spawn(connection(tcp));
        }
    };
    if std::env::var_os("BENCH_ACCEPT_ON_WORKER").is_some_and(|v| v == "1") {
        let _ = tokio::spawn(accept).await;
    } else {
        accept.await;
    }
}
