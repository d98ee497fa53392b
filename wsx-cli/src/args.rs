//! Command-line arguments (clap derive) and the parsers for sizes and durations.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// wsx: a WebSocket server and client.
#[derive(Debug, Parser)]
#[command(name = "wsx", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// Log level or filter (e.g. `debug`, `wsx=trace`); overrides RUST_LOG.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub(crate) log: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the ready server: chat page at /, WebSocket echo at /echo, chat rooms at /chat/ROOM,
    /// /healthz and /metrics.
    Serve(ServeArgs),
    /// Connect to a WebSocket server: stdin lines are sent as text, messages are printed.
    Connect(ConnectArgs),
    /// Load-test a WebSocket echo server: closed-loop echo or handshake rate.
    Bench(BenchArgs),
}

/// What `wsx bench` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BenchMode {
    /// Each connection keeps --in-flight messages outstanding and sends one per echo received.
    Echo,
    /// Each worker opens a connection, completes the handshake, closes it, and starts again.
    Handshake,
    /// Chat room fan-out: --connections members of one room (spread over URL and --also), the
    /// first --senders of them each keep --in-flight messages in flight; every delivery to every
    /// member is timed from its send.
    Room,
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct BenchArgs {
    /// The ws:// or wss:// URL of an echo endpoint (e.g. wsx serve's /echo), or of a chat room
    /// (/chat/ROOM) with --mode room.
    pub(crate) url: String,
    /// More URLs of the same room on other nodes (room mode; repeatable): members are spread
    /// over URL and these in turn.
    #[arg(long, value_name = "URL")]
    pub(crate) also: Vec<String>,
    /// Members that send (room mode).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub(crate) senders: usize,
    /// What to measure.
    #[arg(long, value_enum, default_value = "echo")]
    pub(crate) mode: BenchMode,
    /// Connections (echo) or concurrent workers (handshake).
    #[arg(short = 'c', long, default_value_t = 100, value_name = "N")]
    pub(crate) connections: usize,
    /// Message size (suffixes: KiB, MiB, ...).
    #[arg(short = 's', long, default_value = "16", value_parser = parse_size, value_name = "BYTES")]
    pub(crate) size: usize,
    /// Messages in flight per connection.
    #[arg(short = 'k', long, default_value_t = 1, value_name = "K")]
    pub(crate) in_flight: usize,
    /// How long to measure, after the warm-up.
    #[arg(short = 'd', long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) duration: Duration,
    /// Load before measuring starts (not counted).
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) warmup: Duration,
    /// Send text messages instead of binary.
    #[arg(long)]
    pub(crate) text: bool,
    /// Offer permessage-deflate.
    #[arg(long)]
    pub(crate) deflate: bool,
    /// Trust the CA certificates in this PEM file for wss://.
    #[arg(long, value_name = "PEM")]
    pub(crate) cacert: Option<PathBuf>,
    /// Print the final result as one JSON object on stdout (for scripts).
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub(crate) listen: SocketAddr,
    /// Allow WebSocket connections from this Origin as well (repeatable; `*` allows any).
    /// By default only requests without Origin, or whose Origin matches the Host, are accepted.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub(crate) allow_origin: Vec<String>,
    /// PEM certificate chain: serve https:// and wss:// (needs --tls-key).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Largest message accepted, in bytes (suffixes: KiB, MiB, GiB, KB, MB, GB).
    #[arg(long, default_value = "16MiB", value_parser = parse_size, value_name = "BYTES")]
    pub(crate) max_message_size: usize,
    /// Most WebSocket connections open at once; more are refused with 503.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub(crate) max_connections: usize,
    /// Close connections that receive nothing for this long (1001); 0 turns it off.
    #[arg(long, default_value = "0", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) idle_timeout: Duration,
    /// Ping idle connections this often (shorter than nginx's 60 s proxy_read_timeout); 0 turns
    /// it off. Peers that do not answer are closed with 1011.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) keepalive: Duration,
    /// Drop clients that have not completed the opening handshake in this time.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) handshake_timeout: Duration,
    /// Messages a chat member may fall behind its room before it is disconnected (1013).
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub(crate) room_backlog: usize,
    /// How long a chat member's socket may refuse data before it is disconnected (1013).
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) slow_timeout: Duration,
    /// Do not accept permessage-deflate (accepted by default, as browsers offer it).
    #[arg(long, conflicts_with = "deflate_takeover")]
    pub(crate) no_deflate: bool,
    /// Let permessage-deflate keep its state between messages (context takeover): better
    /// compression of small similar messages, but about 350 KB per connection that has sent or
    /// received a compressed message (the default frees it after each message: ~4 KB idle).
    #[arg(long)]
    pub(crate) deflate_takeover: bool,
    /// Share chat rooms with other nodes through this Redis (redis://HOST:PORT[/DB]): every
    /// member on every node sees a room's messages in one order. Without it, rooms live in this
    /// process only.
    #[arg(long, env = "WSX_REDIS", value_name = "URL")]
    pub(crate) redis: Option<String>,
    /// Prefix of the Redis pub/sub channels (one per room): deployments sharing one Redis need
    /// different prefixes (pub/sub ignores the database number).
    #[arg(long, default_value = "wsx:room:", value_name = "PREFIX", requires = "redis")]
    pub(crate) redis_prefix: String,
    /// This node's name, in the X-Wsx-Node response header and /healthz (default: host:port).
    #[arg(long, env = "WSX_NODE", value_name = "NAME")]
    pub(crate) node: Option<String>,
    /// Believe X-Forwarded-For / X-Real-IP / X-Forwarded-Host from these proxies (address or
    /// CIDR network, repeatable; e.g. 127.0.0.1 for nginx on the same host): logs and the
    /// per-client limit then use the client's address, the Origin check the forwarded host.
    #[arg(long = "trust-proxy", value_name = "ADDR[/BITS]")]
    pub(crate) trust_proxy: Vec<crate::net::Network>,
    /// Most WebSocket connections from one client address (see --trust-proxy); 0: no limit.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(crate) max_per_client: usize,
    /// On SIGINT/SIGTERM, how long to wait for clients to answer the 1001 Close.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) shutdown_timeout: Duration,
}

/// How binary messages are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BinaryFormat {
    /// Lowercase hex digits.
    Hex,
    /// The bytes themselves.
    Raw,
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ConnectArgs {
    /// The ws:// or wss:// URL.
    pub(crate) url: String,
    /// Offer a subprotocol (repeatable, in order of preference).
    #[arg(short = 'p', long = "protocol", value_name = "PROTOCOL")]
    pub(crate) protocols: Vec<String>,
    /// Send an extra header, as "Name: value" (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub(crate) headers: Vec<String>,
    /// Send this Origin header.
    #[arg(long, value_name = "ORIGIN")]
    pub(crate) origin: Option<String>,
    /// Trust the CA certificates in this PEM file for wss:// (besides the built-in roots).
    #[arg(long, value_name = "PEM")]
    pub(crate) cacert: Option<PathBuf>,
    /// Send a keepalive ping this often (e.g. 30s); off by default.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) ping: Option<Duration>,
    /// How to print binary messages.
    #[arg(long, value_enum, default_value = "hex")]
    pub(crate) binary: BinaryFormat,
    /// Largest message accepted (suffixes: KiB, MiB, GiB, KB, MB, GB).
    #[arg(long, default_value = "16MiB", value_parser = parse_size, value_name = "BYTES")]
    pub(crate) max_message_size: usize,
    /// Do not offer permessage-deflate (offered by default).
    #[arg(long)]
    pub(crate) no_deflate: bool,
    /// Print the opening handshake (request and response headers) on stderr.
    #[arg(short, long)]
    pub(crate) verbose: bool,
}

/// A number and the unit after it: `"1.5 KiB"` is `(1.5, "KiB")`.
fn number_and_unit<'a>(text: &'a str, example: &str) -> Result<(f64, &'a str), String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number = number.parse().map_err(|_| format!("{text:?} is not {example}"))?;
    Ok((number, unit.trim()))
}

/// `1048576`, `64MiB`, `1.5 KiB`, `10MB`, ...
pub(crate) fn parse_size(text: &str) -> Result<usize, String> {
    let (number, unit) = number_and_unit(text, "a size such as 1048576 or 64MiB")?;
    let factor: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        other => {
            return Err(format!("unknown size unit {other:?} (use B, KiB, MiB, GiB, KB, MB or GB)"))
        }
    };
    let bytes = number * factor;
    if !(bytes.is_finite() && bytes >= 0.0 && bytes <= usize::MAX as f64) {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(bytes as usize)
}

/// `30` (seconds), `30s`, `500ms`, `5m`, `1h`; `0` is zero (off, where the flag says so).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = number_and_unit(text, "a duration such as 30s or 500ms")?;
    let seconds = match unit {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        other => return Err(format!("unknown duration unit {other:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("67108864"), Ok(64 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("64 mib"), Ok(64 << 20));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5 parsecs").unwrap_err().contains("unknown size unit"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("soon").is_err());
    }
}
