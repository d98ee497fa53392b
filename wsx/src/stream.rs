//! [`ClientStream`]: what a client connection runs over. One type whatever the features, so
//! that turning `rustls` on anywhere in a dependency graph does not change what
//! [`connect`](crate::connect) returns.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A client connection: plain TCP for `ws://`, TLS over TCP for `wss://` (feature `rustls`).
#[derive(Debug)]
pub struct ClientStream {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Plain(TcpStream),
    #[cfg(feature = "rustls")]
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl ClientStream {
    pub(crate) fn plain(tcp: TcpStream) -> Self {
        Self { inner: Inner::Plain(tcp) }
    }

    #[cfg(feature = "rustls")]
    pub(crate) fn tls(tls: tokio_rustls::client::TlsStream<TcpStream>) -> Self {
        Self { inner: Inner::Tls(Box::new(tls)) }
    }

    /// Whether the connection is encrypted (`wss://`).
    pub fn is_tls(&self) -> bool {
        !matches!(self.inner, Inner::Plain(_))
    }

    /// The protocol the TLS handshake agreed on by ALPN (`h2`), if any.
    #[cfg_attr(not(feature = "http2"), allow(dead_code))]
    pub(crate) fn alpn(&self) -> Option<&[u8]> {
        match &self.inner {
            Inner::Plain(_) => None,
            #[cfg(feature = "rustls")]
            Inner::Tls(tls) => tls.get_ref().1.alpn_protocol(),
        }
    }

    /// The TCP connection underneath (for addresses and socket options).
    pub fn tcp(&self) -> &TcpStream {
        match &self.inner {
            Inner::Plain(tcp) => tcp,
            #[cfg(feature = "rustls")]
            Inner::Tls(tls) => tls.get_ref().0,
        }
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match &mut $self.get_mut().inner {
            Inner::Plain($s) => {
                let $s = Pin::new($s);
                $e
            }
            #[cfg(feature = "rustls")]
            Inner::Tls($s) => {
                let $s = Pin::new(&mut **$s);
                $e
            }
        }
    };
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Inner::Plain(s) => s.is_write_vectored(),
            #[cfg(feature = "rustls")]
            Inner::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
}
