//! A client: sends each line of stdin as a text message and prints what comes back.
//!
//! `cargo run -p wsx --example client -- ws://127.0.0.1:9001/`

use tokio::io::{AsyncBufReadExt, BufReader};
use wsx::{CloseCode, Message};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1).unwrap_or_else(|| "ws://127.0.0.1:9001/".into());
    let (mut ws, response) = wsx::connect(&url).await?;
    eprintln!("connected: {}", response.status());
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => match line? {
                Some(line) => ws.send(Message::text(line)).await?,
                None => break,
            },
            message = ws.recv() => match message {
                Some(Ok(Message::Text(text))) => println!("{text}"),
                Some(Ok(Message::Binary(data))) => println!("<{} bytes>", data.len()),
                Some(Ok(Message::Close(frame))) => eprintln!("server closed: {frame:?}"),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
        }
    }
    ws.close(CloseCode::NORMAL, "").await?;
    Ok(())
}
