//! permessage-deflate (RFC 7692): what we offer or accept ([`DeflateConfig`]), what was agreed
//! ([`DeflateParams`]), and the negotiation rules of §7.1 for both sides.

pub(crate) mod codec;

use crate::handshake::Extension;

/// The extension's name in `Sec-WebSocket-Extensions`.
pub(crate) const NAME: &str = "permessage-deflate";

/// What this endpoint offers (client) or accepts (server), and how it compresses.
///
/// The defaults are what browsers offer and accept: context takeover and 15-bit windows both
/// ways, level 6 (zlib's default), messages under 64 bytes sent uncompressed.
///
/// To keep memory per connection small, turn context takeover off
/// ([`no_context_takeover`](Self::no_context_takeover)): the compression state is then freed
/// after each message instead of being kept between messages, and smaller windows
/// ([`max_window_bits`](Self::max_window_bits)) shrink it while it exists.
///
/// ```
/// use wsx_proto::DeflateConfig;
/// let small = DeflateConfig::default().no_context_takeover(true).max_window_bits(10).level(1);
/// assert_eq!(small.offer(), "permessage-deflate; server_no_context_takeover; \
///     client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=10");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateConfig {
    no_context_takeover: bool,
    max_window_bits: u8,
    level: u32,
    threshold: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self { no_context_takeover: false, max_window_bits: 15, level: 6, threshold: 64 }
    }
}

impl DeflateConfig {
    /// Ask for (client) or impose (server) no context takeover in both directions: each
    /// message is compressed on its own, and the state is freed between messages.
    pub fn no_context_takeover(mut self, yes: bool) -> Self {
        self.no_context_takeover = yes;
        self
    }

    /// The largest LZ77 window, as a power of two, 9 to 15 (default 15), for both directions.
    /// Values outside are clamped (zlib cannot compress with 8).
    pub fn max_window_bits(mut self, bits: u8) -> Self {
        self.max_window_bits = bits.clamp(9, 15);
        self
    }

    /// Compression level, 0 (none) to 9 (best); default 6.
    pub fn level(mut self, level: u32) -> Self {
        self.level = level.min(9);
        self
    }

    /// Messages shorter than this many bytes are sent uncompressed (default 64).
    pub fn threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }

    /// The client's offer, for `Sec-WebSocket-Extensions`.
    pub fn offer(&self) -> String {
        let mut offer = String::from(NAME);
        if self.no_context_takeover {
            offer.push_str("; server_no_context_takeover; client_no_context_takeover");
        }
        if self.max_window_bits < 15 {
            offer.push_str(&format!("; server_max_window_bits={}", self.max_window_bits));
            offer.push_str(&format!("; client_max_window_bits={}", self.max_window_bits));
        } else {
            // Without a value: the server may pick any window for our compressor.
            offer.push_str("; client_max_window_bits");
        }
        offer
    }

    /// Server side (RFC 7692 §5, §7.1): the first acceptable offer, in the client's order, and
    /// the response to it. Invalid offers are declined, not the connection.
    pub(crate) fn accept(&self, offers: &[Extension]) -> Option<(Extension, DeflateParams)> {
        offers.iter().filter(|o| o.name() == NAME).find_map(|o| self.accept_one(o))
    }

    fn accept_one(&self, offer: &Extension) -> Option<(Extension, DeflateParams)> {
        let p = Params::parse(offer, Side::Offer).ok()?;
        // server_max_window_bits: we compress with at most what the client allows.
        // (An 8-bit window is accepted, but zlib cannot compress with it: we then send every
        // message uncompressed, which RFC 7692 allows, and still inflate the client's.)
        let server_bits = self.max_window_bits.min(p.server_max_window_bits.unwrap_or(15));
        // client_max_window_bits: we may only ask for it if the client offered it.
        let client_bits = match p.client_max_window_bits {
            None => 15,
            Some(offered) => self.max_window_bits.min(offered.unwrap_or(15)),
        };
        let params = DeflateParams {
            server_no_context_takeover: p.server_no_context_takeover || self.no_context_takeover,
            client_no_context_takeover: p.client_no_context_takeover || self.no_context_takeover,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
            level: self.level,
            threshold: self.threshold,
        };
        let mut response = Vec::new();
        if params.server_no_context_takeover {
            response.push(("server_no_context_takeover".to_string(), None));
        }
        if params.client_no_context_takeover {
            response.push(("client_no_context_takeover".to_string(), None));
        }
        if p.server_max_window_bits.is_some() || server_bits < 15 {
            response.push(("server_max_window_bits".to_string(), Some(server_bits.to_string())));
        }
        if p.client_max_window_bits.is_some() && client_bits < 15 {
            response.push(("client_max_window_bits".to_string(), Some(client_bits.to_string())));
        }
        Some((Extension::new(NAME, response), params))
    }

    /// Client side (RFC 7692 §7.1): checks the server's response against our offer.
    pub(crate) fn verify(&self, response: &Extension) -> Result<DeflateParams, String> {
        let p = Params::parse(response, Side::Response)?;
        let server_bits = p.server_max_window_bits.unwrap_or(15);
        if self.max_window_bits < 15 && server_bits > self.max_window_bits {
            return Err(format!(
                "server_max_window_bits={server_bits} is more than the {} offered",
                self.max_window_bits
            ));
        }
        let client_bits = match p.client_max_window_bits {
            None => 15,
            // We always offer client_max_window_bits, so the server may always answer it.
            Some(bits) => bits.unwrap_or(15),
        };
        if client_bits > self.max_window_bits {
            return Err(format!(
                "client_max_window_bits={client_bits} is more than the {} offered",
                self.max_window_bits
            ));
        }
        if self.no_context_takeover && !p.server_no_context_takeover {
            return Err("server_no_context_takeover was offered but not accepted".into());
        }
        Ok(DeflateParams {
            server_no_context_takeover: p.server_no_context_takeover,
            client_no_context_takeover: p.client_no_context_takeover || self.no_context_takeover,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
            level: self.level,
            threshold: self.threshold,
        })
    }
}

/// What the handshake agreed on for permessage-deflate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: u8,
    client_max_window_bits: u8,
    level: u32,
    threshold: usize,
}

impl DeflateParams {
    /// The server compresses each message on its own.
    pub fn server_no_context_takeover(&self) -> bool {
        self.server_no_context_takeover
    }

    /// The client compresses each message on its own.
    pub fn client_no_context_takeover(&self) -> bool {
        self.client_no_context_takeover
    }

    /// The server's LZ77 window, as a power of two.
    pub fn server_max_window_bits(&self) -> u8 {
        self.server_max_window_bits
    }

    /// The client's LZ77 window, as a power of two.
    pub fn client_max_window_bits(&self) -> u8 {
        self.client_max_window_bits
    }

    /// For one side: (compress window, compress without takeover, decompress window,
    /// decompress without takeover).
    pub(crate) fn for_role(&self, role: crate::Role) -> ((u8, bool), (u8, bool)) {
        let server = (self.server_max_window_bits, self.server_no_context_takeover);
        let client = (self.client_max_window_bits, self.client_no_context_takeover);
        match role {
            crate::Role::Server => (server, client),
            crate::Role::Client => (client, server),
        }
    }

    pub(crate) fn level(&self) -> u32 {
        self.level
    }

    pub(crate) fn threshold(&self) -> usize {
        self.threshold
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Offer,
    Response,
}

/// The four parameters of RFC 7692 §7.1, each at most once.
#[derive(Default)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (allowed in an offer only).
    client_max_window_bits: Option<Option<u8>>,
}

impl Params {
    fn parse(ext: &Extension, side: Side) -> Result<Self, String> {
        let mut p = Self::default();
        let mut seen = Vec::new();
        for (name, value) in ext.params() {
            if seen.contains(&name.as_str()) {
                return Err(format!("{name} appears twice"));
            }
            seen.push(name.as_str());
            let bits = |v: &Option<String>| -> Result<Option<u8>, String> {
                match v {
                    None => Ok(None),
                    Some(v) => match v.parse::<u8>() {
                        // RFC 7692 §7.1.2: 1*DIGIT in 8..15, no leading zeros.
                        Ok(b @ 8..=15) if !v.starts_with('0') => Ok(Some(b)),
                        _ => Err(format!("{name}={v} is not a window size from 8 to 15")),
                    },
                }
            };
            match name.as_str() {
                "server_no_context_takeover" | "client_no_context_takeover" if value.is_some() => {
                    return Err(format!("{name} takes no value"));
                }
                "server_no_context_takeover" => p.server_no_context_takeover = true,
                "client_no_context_takeover" => p.client_no_context_takeover = true,
                "server_max_window_bits" => {
                    p.server_max_window_bits =
                        Some(bits(value)?.ok_or_else(|| format!("{name} needs a value"))?);
                }
                "client_max_window_bits" => {
                    let b = bits(value)?;
                    if side == Side::Response && b.is_none() {
                        return Err(format!("{name} needs a value in a response"));
                    }
                    p.client_max_window_bits = Some(b);
                }
                other => return Err(format!("unknown parameter {other}")),
            }
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests;
