//! tokio-tungstenite echo server: `tungstenite PORT`.
use futures_util::{SinkExt, StreamExt};

#[tokio::main]
async fn main() {
    let port = std::env::args().nth(1).expect("PORT");
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await.unwrap();
    println!("ready");
    while let Ok((tcp, _)) = listener.accept().await {
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else { return };
            while let Some(Ok(message)) = ws.next().await {
                if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
                    break;
                }
            }
        });
    }
}
