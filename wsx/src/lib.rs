//! WebSocket client and server over tokio: a thin I/O layer over the sans-IO core
//! [`wsx_proto`]. Nothing protocol-specific is written here.
//!
//! - Client: [`connect`] or a configured [`Connector`] (subprotocols, headers, Origin,
//!   timeouts, limits, proxies, TLS). `wss://` uses rustls.
//! - Server: [`accept`] or an [`Acceptor`] on any `AsyncRead + AsyncWrite` stream, with a
//!   callback that sees the request; [`hyper`] (feature `hyper`) upgrades hyper/axum requests.
//! - [`WebSocket`]: `recv`/`send`/`close`, `Stream` + `Sink`, [`split`](WebSocket::split).
//!
//! ```no_run
//! use wsx::Message;
//! # async fn run() -> Result<(), wsx::Error> {
//! // an echo server
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
//! tokio::spawn(async move {
//!     while let Ok((tcp, _)) = listener.accept().await {
//!         tokio::spawn(async move {
//!             let mut ws = wsx::accept(tcp).await?;
//!             while let Some(message) = ws.recv().await {
//!                 match message? {
//!                     m @ (Message::Text(_) | Message::Binary(_)) => ws.send(m).await?,
//!                     _ => {}
//!                 }
//!             }
//!             Ok::<_, wsx::Error>(())
//!         });
//!     }
//! });
//! // a client
//! let (mut ws, _) = wsx::connect("ws://127.0.0.1:9001/").await?;
//! ws.send(Message::text("hello")).await?;
//! assert_eq!(ws.recv().await.unwrap()?, Message::text("hello"));
//! ws.close(wsx::CloseCode::NORMAL, "bye").await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

/// This crate's README (crates.io's page), compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod accept;
mod config;
mod connect;
mod error;
mod proxy;
mod split;
mod stream;
mod websocket;

#[cfg(feature = "http2")]
mod http2;
#[cfg(feature = "hyper")]
pub mod hyper;
#[cfg(feature = "rustls")]
pub mod tls;

pub use crate::accept::{accept, is_upgrade_request, Acceptor, Answer, Incoming, Rewind};
pub use crate::config::Config;
pub use crate::connect::{connect, Connector};
pub use crate::error::{Error, Timeout};
#[cfg(feature = "http2")]
pub use crate::http2::Http2Connection;
pub use crate::proxy::Proxy;
pub use crate::split::{ReadHalf, WriteHalf};
pub use crate::stream::ClientStream;
pub use crate::websocket::WebSocket;
pub use wsx_proto::{
    Accept, CloseCode, CloseFrame, CloseState, DeflateConfig, HandshakeError, Limits, Message,
    Negotiated, OpCode, Prepared, ProtocolError, Role, Upgrade, UsageError, Utf8Bytes,
};

/// The sans-IO kit underneath: the whole [`wsx_proto`] crate (handshake parsing and writing,
/// [`Connection`](wsx_proto::Connection), frames), for servers and clients that run parts of
/// the protocol themselves. The async vocabulary above is all most programs need.
pub use wsx_proto as proto;
