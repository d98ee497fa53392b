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

// Made once, at startup: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the ready server: chat page at /, WebSocket echo at /echo, chat rooms at /chat/ROOM,
    /// /healthz and /metrics.
    Serve(ServeArgs),
    /// Connect to a WebSocket server: stdin lines are sent as text, messages are printed.
    Connect(ConnectArgs),
    /// Carry TCP connections over WebSockets: each connection accepted on --tcp-listen opens a
    /// WebSocket to URL (e.g. to `wsx serve --tcp-forward`), bytes as binary messages both ways.
    Bridge(BridgeArgs),
    /// Load-test a WebSocket echo server: closed-loop echo or handshake rate.
    Bench(BenchArgs),
    /// Mint a JWT for `wsx serve --auth-*` (printed on stdout).
    Token(TokenArgs),
    /// Print a shell completion script for wsx (e.g. `wsx completions bash > /etc/bash_completion.d/wsx`).
    Completions(CompletionsArgs),
    /// Print a man page (roff): wsx(1), or with a subcommand, its own page (`wsx man serve >
    /// wsx-serve.1 && man -l wsx-serve.1`).
    Man(ManArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ManArgs {
    /// The subcommand whose page to print (wsx-SUBCOMMAND(1)); without it, wsx(1).
    #[arg(value_name = "SUBCOMMAND")]
    pub(crate) subcommand: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

/// The signature algorithm of a key pair (`--auth-alg`, `wsx token --alg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum KeyAlg {
    /// RSA PKCS#1 v1.5 with SHA-256 (keys of 2048 to 8192 bits).
    #[value(name = "RS256")]
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    #[value(name = "ES256")]
    Es256,
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct TokenArgs {
    /// Sign with HS256 and the secret in this file (a trailing newline is ignored); without it
    /// and --private-key, the secret is WSX_AUTH_SECRET's value.
    #[arg(long, value_name = "PATH", conflicts_with = "private_key")]
    pub(crate) secret_file: Option<PathBuf>,
    /// Sign with this private key (PEM: PKCS#1 or PKCS#8 for RS256, PKCS#8 for ES256).
    #[arg(long, value_name = "PEM", requires = "alg")]
    pub(crate) private_key: Option<PathBuf>,
    /// The algorithm of --private-key.
    #[arg(long, value_enum, ignore_case = true, value_name = "ALG", requires = "private_key")]
    pub(crate) alg: Option<KeyAlg>,
    /// The user (the `sub` claim).
    #[arg(long, value_name = "USER")]
    pub(crate) sub: String,
    /// A display name (the `name` claim; chat rooms show it instead of `sub`).
    #[arg(long, value_name = "NAME")]
    pub(crate) name: Option<String>,
    /// Rooms the user may join (comma-separated or repeated; `*` for any); none: echo only.
    #[arg(long, value_delimiter = ',', value_name = "ROOM")]
    pub(crate) rooms: Vec<String>,
    /// Rooms the user may write to (the `publish` claim); without it, every room it may join.
    #[arg(long, value_delimiter = ',', value_name = "ROOM", conflicts_with = "read_only")]
    pub(crate) publish: Option<Vec<String>>,
    /// The user may write to no room (an empty `publish` claim).
    #[arg(long)]
    pub(crate) read_only: bool,
    /// How long the token is valid (the `exp` claim).
    #[arg(long, default_value = "1h", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) ttl: Duration,
    /// The `aud` claim (for a server started with --auth-audience).
    #[arg(long, value_name = "AUD")]
    pub(crate) aud: Option<String>,
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
    /// Echo mode: open the WebSockets over HTTP/2 (RFC 8441), --connections of them spread over
    /// --http2-connections HTTP/2 connections.
    #[arg(long)]
    pub(crate) http2: bool,
    /// HTTP/2 connections that carry the WebSockets (--http2).
    #[arg(long, default_value_t = 1, value_name = "M", requires = "http2")]
    pub(crate) http2_connections: usize,
}

#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("program").args(["exec", "exec_dir", "exec_shared"])))]
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
    /// Messages a chat member may fall behind its room (or a client of --exec-shared behind its
    /// program) before it is disconnected (1013).
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub(crate) room_backlog: usize,
    /// Messages kept per chat room for `superchat` members joining with history or resuming
    /// after a disconnect (docs/rooms.md); 0 keeps none. In Redis with --redis, else in memory.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub(crate) history: usize,
    /// Room messages older than this are not replayed, and a room quiet for this long loses
    /// its history (a new epoch); 0 turns it off.
    #[arg(long, default_value = "1h", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) history_ttl: Duration,
    /// Rooms without members whose history is kept in memory (without --redis): the least
    /// recently used beyond it are forgotten.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub(crate) history_rooms: usize,
    /// How long a chat member's (or --exec-shared client's) socket may refuse data before it is
    /// disconnected (1013).
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
    /// Also speak HTTP/2: WebSockets over HTTP/2 (RFC 8441) on every route, many on one
    /// connection. TLS offers h2 by ALPN; plain TCP takes h2c with prior knowledge beside
    /// HTTP/1.1. Off by default: once a server advertises it, browsers open every wss: WebSocket
    /// to that origin over HTTP/2 (docs/http2.md).
    #[arg(long)]
    pub(crate) http2: bool,
    /// Concurrent streams (WebSockets and requests) one HTTP/2 connection may open (--http2).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub(crate) http2_max_streams: u32,
    /// Share chat rooms with other nodes through this Redis (redis://HOST:PORT[/DB]), or a
    /// Redis Cluster (its seed nodes, comma-separated): every member on every node sees a
    /// room's messages in one order, and history and presence live there. Without it, rooms
    /// live in this process only.
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
    /// Require a JWT on every WebSocket upgrade, signed with HS256 and the secret in this file (a
    /// trailing newline is ignored); setting WSX_AUTH_SECRET to the secret itself does the
    /// same. See docs/auth.md.
    #[arg(long, value_name = "PATH", conflicts_with = "auth_public_key")]
    pub(crate) auth_hs256_secret_file: Option<PathBuf>,
    /// Require a JWT on every WebSocket upgrade, signed by the private key of this public key
    /// (PEM), with --auth-alg.
    #[arg(long, value_name = "PEM", requires = "auth_alg")]
    pub(crate) auth_public_key: Option<PathBuf>,
    /// The algorithm of --auth-public-key.
    #[arg(long, value_enum, ignore_case = true, value_name = "ALG", requires = "auth_public_key")]
    pub(crate) auth_alg: Option<KeyAlg>,
    /// Accept only tokens whose `aud` claim names this audience (without it, tokens that carry
    /// an `aud` claim are refused).
    #[arg(long, value_name = "AUD")]
    pub(crate) auth_audience: Option<String>,
    /// Messages one chat member may send into its room (per second, /m: per minute; a burst of
    /// as many); beyond it they are dropped and the sender gets a notice. 0: no limit. The rate
    /// limits do not apply to loopback clients (see --trust-proxy).
    #[arg(long, default_value = "100/s", value_parser = parse_rate, value_name = "MSGS[/s]")]
    pub(crate) room_rate: Rate,
    /// Payload bytes one chat member may send into its room (per second, /m: per minute; a
    /// burst of as many); beyond it messages are dropped with a notice. 0: no limit. Not for
    /// loopback clients.
    #[arg(long, default_value = "1MiB/s", value_parser = parse_bytes_rate, value_name = "BYTES[/s]")]
    pub(crate) room_bytes_rate: Rate,
    /// WebSocket handshakes from one client address (per second, /m: per minute; a burst of as
    /// many; IPv6: per /64; see --trust-proxy; loopback clients are not limited); beyond it,
    /// 429. 0: no limit.
    #[arg(long, default_value = "20/s", value_parser = parse_rate, value_name = "N[/s]")]
    pub(crate) handshake_rate: Rate,
    /// On SIGINT/SIGTERM, how long to wait for clients to answer the 1001 Close.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) shutdown_timeout: Duration,
    /// Serve the files of this directory (GET and HEAD) on every path not otherwise served;
    /// `/` is DIR/index.html when there is one. Nothing outside DIR, no hidden files. See
    /// docs/static.md.
    #[arg(long = "static", value_name = "DIR")]
    pub(crate) static_dir: Option<PathBuf>,
    /// Serve a WebSocket developer console at /devconsole: a page to connect to any ws:// URL,
    /// send messages and watch what comes back.
    #[arg(long)]
    pub(crate) devconsole: bool,
    /// Run this program for every WebSocket upgrade to a path not otherwise served (websocketd
    /// style: one process per connection; text messages are its stdin lines, its stdout lines
    /// are messages). Split like a shell would split it, without running one. See docs/exec.md.
    #[arg(long, value_name = "'CMD ARGS'")]
    pub(crate) exec: Option<String>,
    /// Run the executable DIR/PATH for a WebSocket upgrade to /PATH (404 when there is none;
    /// nothing outside DIR, no hidden files).
    #[arg(long, value_name = "DIR")]
    pub(crate) exec_dir: Option<PathBuf>,
    /// With --exec/--exec-dir: raw bytes both ways, as binary messages (not lines).
    #[arg(long, requires = "program")]
    pub(crate) binary: bool,
    /// With --exec/--exec-dir: also pass this variable of the server's environment to the
    /// program (repeatable; `NAME*` for a prefix). By default only PATH, HOME, LANG, LC_*, TZ
    /// and TMPDIR are.
    #[arg(long, value_name = "NAME", requires = "program")]
    pub(crate) exec_env: Vec<String>,
    /// When a client leaves (--exec) or the server stops (--exec-shared), how long the program
    /// has to exit after its stdin closes, and again after SIGTERM, before SIGKILL.
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) exec_grace: Duration,
    /// Most programs running at once (--exec/--exec-dir); more upgrades are refused with 503.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub(crate) max_forks: usize,
    /// Run this one program for all the WebSocket upgrades to paths not otherwise served: it
    /// learns of clients joining, their messages and their leaving as JSON lines on stdin, and
    /// answers one client, some or all on stdout. Restarted (with backoff) when it exits. See
    /// docs/exec.md.
    #[arg(long, value_name = "'CMD ARGS'", conflicts_with = "binary")]
    pub(crate) exec_shared: Option<String>,
    /// Carry WebSocket upgrades to PATH to the TCP server at HOST:PORT, one TCP connection per
    /// WebSocket, bytes as binary messages both ways (repeatable; e.g. /redis=127.0.0.1:6379).
    #[arg(long, value_parser = parse_forward, value_name = "PATH=HOST:PORT")]
    pub(crate) tcp_forward: Vec<Forward>,
    /// Listen on this Unix domain socket too (a stale socket file left by a server that is
    /// gone is replaced; removed at exit). Its clients count as 127.0.0.1.
    #[arg(long, value_name = "PATH")]
    pub(crate) unix: Option<PathBuf>,
}

/// How binary messages are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BinaryFormat {
    /// Lowercase hex digits.
    Hex,
    /// The bytes themselves.
    Raw,
    /// Standard base64 (with padding).
    Base64,
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ConnectArgs {
    /// The ws:// or wss:// URL.
    pub(crate) url: String,
    /// How to reach the server.
    #[command(flatten)]
    pub(crate) client: ClientArgs,
    /// How to print binary messages.
    #[arg(long, value_enum, default_value = "hex")]
    pub(crate) binary: BinaryFormat,
    /// Print the opening handshake (request and response headers) on stderr.
    #[arg(short, long)]
    pub(crate) verbose: bool,
    /// Keep listening after stdin ends: close (1000) only when the server closes, or on Ctrl-C.
    #[arg(short = 'n', long)]
    pub(crate) no_close: bool,
    /// Start each line received with its arrival time (RFC 3339, UTC, milliseconds).
    #[arg(long)]
    pub(crate) timestamp: bool,
    /// Binary messages both ways as base64 lines: each stdin line is decoded and sent as a
    /// binary message (same as --binary base64 for what is received).
    #[arg(long, conflicts_with_all = ["binary", "binary_prefix", "jsonrpc"])]
    pub(crate) base64: bool,
    /// Stdin lines that start with PREFIX (e.g. `b:`) are sent as binary messages (the rest
    /// decoded per --binary: hex, base64 or raw), the others as text; binary messages received
    /// are printed after PREFIX.
    #[arg(long, value_name = "PREFIX", conflicts_with = "jsonrpc")]
    pub(crate) binary_prefix: Option<String>,
    /// Send each stdin line `METHOD [JSON PARAMS]` as a JSON-RPC 2.0 call with an increasing id
    /// (e.g. for the Chrome DevTools protocol).
    #[arg(long)]
    pub(crate) jsonrpc: bool,
    /// Wire this program's stdin and stdout to the connection instead of the terminal: its
    /// stdout lines are sent as text messages, messages received are lines on its stdin; wsx
    /// exits when it does (closing with 1000, or 1011 for a failure) or when the connection
    /// closes (the program then gets EOF). Split like a shell would split it, without one.
    #[arg(long, value_name = "'CMD ARGS'", conflicts_with_all = ["base64", "binary_prefix", "jsonrpc", "reconnect"])]
    pub(crate) exec: Option<String>,
    /// With --exec: raw bytes both ways as binary messages (not lines).
    #[arg(long, requires = "exec")]
    pub(crate) exec_binary: bool,
    /// When the connection is lost (not a normal close, not stdin's end), connect again with
    /// backoff (100 ms doubling to 10 s, with jitter); lines read meanwhile are sent after.
    #[arg(long)]
    pub(crate) reconnect: bool,
}

/// The options of a WebSocket client (`wsx connect`, `wsx bridge`).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ClientArgs {
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
    /// Largest message accepted (suffixes: KiB, MiB, GiB, KB, MB, GB).
    #[arg(long, default_value = "16MiB", value_parser = parse_size, value_name = "BYTES")]
    pub(crate) max_message_size: usize,
    /// Do not offer permessage-deflate (offered by default).
    #[arg(long)]
    pub(crate) no_deflate: bool,
    /// Connect to the server through this Unix domain socket instead of TCP (the URL still
    /// names the host and path of the request; ws:// only).
    #[arg(long, value_name = "PATH")]
    pub(crate) unix: Option<PathBuf>,
    /// Open WebSockets over HTTP/2 (RFC 8441): wss:// with TLS offering h2, ws:// as
    /// cleartext HTTP/2 with prior knowledge; one HTTP/2 connection carries them all.
    #[arg(long, conflicts_with = "unix")]
    pub(crate) http2: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct BridgeArgs {
    /// The ws:// or wss:// URL that each TCP connection is carried to (e.g. a path of `wsx
    /// serve --tcp-forward`).
    pub(crate) url: String,
    /// Accept TCP connections on this address; each one gets a WebSocket of its own to URL,
    /// its bytes carried as binary messages both ways.
    #[arg(long, value_name = "ADDR")]
    pub(crate) tcp_listen: SocketAddr,
    /// How to reach the server.
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// `--tcp-forward PATH=HOST:PORT`: WebSocket upgrades to PATH are carried to a TCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Forward {
    /// The URL path (`/redis`).
    pub(crate) path: String,
    /// Where its connections go (`127.0.0.1:6379`, or a name and a port).
    pub(crate) target: String,
}

/// `PATH=HOST:PORT`, PATH starting with `/`.
pub(crate) fn parse_forward(text: &str) -> Result<Forward, String> {
    let bad = || format!("{text:?} is not PATH=HOST:PORT (e.g. /redis=127.0.0.1:6379)");
    let (path, target) = text.split_once('=').ok_or_else(bad)?;
    let (host, port) = target.rsplit_once(':').ok_or_else(bad)?;
    if !path.starts_with('/') || host.is_empty() || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(Forward { path: path.to_string(), target: target.to_string() })
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

/// A rate limit: `per_second` on average, and a `burst` taken at once from a full bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rate {
    pub(crate) per_second: f64,
    pub(crate) burst: f64,
}

impl Rate {
    /// Whether the limit is on (0 turns it off).
    pub(crate) fn is_on(self) -> bool {
        self.per_second > 0.0
    }
}

/// `N`, `N/s`, `N/m` (per minute), `N/h` (per hour), `N` made by `amount`: N per period, and a
/// burst of N (`20/s`: 20 at once, then 20 a second; `3/m`: 3 at once, then one every 20 s).
fn parse_per(text: &str, amount: fn(&str) -> Result<f64, String>) -> Result<Rate, String> {
    let (amount_text, per) = match text.trim().rsplit_once('/') {
        Some((n, unit)) => (n, unit.trim()),
        None => (text, "s"),
    };
    let seconds = match per {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("unknown rate unit /{other} (use /s, /m or /h)")),
    };
    let burst = amount(amount_text)?;
    if burst.is_finite() && burst >= 0.0 {
        Ok(Rate { per_second: burst / seconds, burst })
    } else {
        Err(format!("{text:?} is out of range"))
    }
}

/// Messages or handshakes: `100`, `100/s`, `600/m`; `0` is off.
pub(crate) fn parse_rate(text: &str) -> Result<Rate, String> {
    parse_per(text, |n| {
        n.trim().parse::<f64>().map_err(|_| format!("{n:?} is not a number such as 100"))
    })
}

/// Bytes: `1MiB/s`, `65536`, `10MB/m`; `0` is off.
pub(crate) fn parse_bytes_rate(text: &str) -> Result<Rate, String> {
    parse_per(text, |n| parse_size(n).map(|b| b as f64))
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

    #[test]
    fn rates() {
        let rate = |per_second, burst| Ok(Rate { per_second, burst });
        assert_eq!(parse_rate("100"), rate(100.0, 100.0));
        assert_eq!(parse_rate("100/s"), rate(100.0, 100.0));
        assert_eq!(parse_rate("120/m"), rate(2.0, 120.0));
        assert_eq!(parse_rate("0"), rate(0.0, 0.0));
        assert!(!parse_rate("0/m").unwrap().is_on());
        assert!(parse_rate("-1").is_err());
        assert!(parse_rate("inf").is_err());
        assert!(parse_rate("5/fortnight").is_err());
        assert_eq!(parse_bytes_rate("1MiB/s"), rate(1048576.0, 1048576.0));
        assert_eq!(parse_bytes_rate("64KiB"), rate(65536.0, 65536.0));
    }
}
