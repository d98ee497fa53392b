//! An axum app with an ordinary route and a WebSocket route on the same port.
//!
//! `cargo run -p wsx --features hyper --example axum_app` then open ws://127.0.0.1:3000/ws

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use wsx::{Accept, Config, Message};

async fn websocket(mut request: Request) -> Response {
    let upgraded = wsx::hyper::upgrade::<_, Body, _>(&mut request, Config::default(), |_, up| {
        Ok(Accept::new().subprotocol(up.choose_subprotocol(["chat"])))
    });
    match upgraded {
        Ok((response, websocket)) => {
            tokio::spawn(async move {
                let Ok(mut ws) = websocket.await else { return };
                while let Some(Ok(message)) = ws.recv().await {
                    if let Message::Text(text) = message {
                        let reply = Message::text(format!("you said: {text}"));
                        if ws.send(reply).await.is_err() {
                            break;
                        }
                    }
                }
            });
            response
        }
        Err(refusal) => {
            let response = refusal.to_response().expect("request errors have a status");
            response.map(Body::from).into_response()
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = Router::new()
        .route("/", get(|| async { "hello over HTTP\n" }))
        .route("/ws", get(websocket));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("http://127.0.0.1:3000/ and ws://127.0.0.1:3000/ws");
    axum::serve(listener, app).await?;
    Ok(())
}
