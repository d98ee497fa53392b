//! tokio-tungstenite echo server: `tungstenite PORT`.
use futures_util::{SinkExt, StreamExt};

#[tokio::main]
async fn main() {
    wsx_bench_servers::serve(|tcp| async move {
        let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else { return };
        while let Some(Ok(message)) = ws.next().await {
            if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
                break;
            }
        }
    })
    .await;
}
