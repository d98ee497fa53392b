//! tokio-tungstenite echo server: `tungstenite PORT` (TLS with BENCH_TLS_CERT/BENCH_TLS_KEY).
use futures_util::{SinkExt, StreamExt};
use wsx_bench_servers::{Echo, Stream};

#[derive(Clone, Copy)]
struct Tungstenite;

impl Echo for Tungstenite {
    async fn echo<S: Stream>(self, stream: S) {
        let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { return };
        while let Some(Ok(message)) = ws.next().await {
            if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
                break;
            }
        }
    }
}

#[tokio::main]
async fn main() {
    wsx_bench_servers::serve(Tungstenite).await;
}
