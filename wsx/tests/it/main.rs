//! Integration tests of the tokio layer over real sockets on 127.0.0.1 (one test binary).

mod close;
mod connecting;
mod deflate;
mod echo;
mod handshake;
#[cfg(feature = "http2")]
mod http2;
mod hyper;
mod keepalive;
mod proxy;
mod send_bounds;
mod socks;
mod tls;
mod util;
