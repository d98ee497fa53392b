//! tokio-websockets echo server: `tokio_websockets PORT`.
use futures_util::{SinkExt, StreamExt};

#[tokio::main]
async fn main() {
    wsx_bench_servers::serve(|tcp| async move {
        let Ok((_, mut ws)) = tokio_websockets::ServerBuilder::new().accept(tcp).await else {
            return;
        };
        while let Some(Ok(message)) = ws.next().await {
            if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
                break;
            }
        }
    })
    .await;
}
