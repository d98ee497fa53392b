//! What every benchmark server shares: bind 127.0.0.1:PORT (the first argument), say `ready`,
//! and run `connection` for each accepted TCP connection, with TCP_NODELAY, in its own task.

use std::future::Future;

use tokio::net::TcpStream;

/// Serves forever; `connection` is the library-specific echo.
pub async fn serve<F, Fut>(connection: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let port = std::env::args().nth(1).expect("usage: SERVER PORT");
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await.unwrap();
    println!("ready");
    while let Ok((tcp, _)) = listener.accept().await {
        let _ = tcp.set_nodelay(true);
        tokio::spawn(connection(tcp));
    }
}
