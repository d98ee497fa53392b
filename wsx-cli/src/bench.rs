//! `wsx bench`: a closed-loop load generator. Echo mode: every connection keeps K messages in
//! flight and sends the next one when an echo comes back, timing each round trip. Handshake
//! mode: workers connect, complete the opening handshake and close, over and over. Room mode:
//! members of one chat room (possibly on several nodes), some of which send; each message
//! carries its send time, and every delivery to every member is timed.
//! A progress line is printed each second; the result is a table (or JSON with --json).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinSet;
use wsx::{CloseCode, Config, Connector, DeflateConfig, Limits, Message};

use crate::args::{BenchArgs, BenchMode};

/// A log-linear latency histogram: 64 sub-buckets per power of two (about 1.5 % resolution).
#[derive(Debug, Clone)]
struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

const SUB: u64 = 64;

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    fn new() -> Self {
        Self { counts: vec![0; 64 * SUB as usize], total: 0 }
    }

    fn index(nanos: u64) -> usize {
        let v = nanos.max(1);
        let exp = 63 - v.leading_zeros() as u64;
        if exp < 6 {
            return v as usize;
        }
        let sub = (v >> (exp - 6)) - SUB; // the 6 bits below the leading one
        ((exp - 5) * SUB + sub) as usize
    }

    fn value(index: usize) -> u64 {
        let index = index as u64;
        if index < SUB {
            return index;
        }
        let exp = index / SUB + 5;
        let sub = index % SUB;
        (SUB + sub) << (exp - 6)
    }

    fn record(&mut self, nanos: u64) {
        let last = self.counts.len() - 1;
        self.counts[Self::index(nanos).min(last)] += 1;
        self.total += 1;
    }

    fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }

    /// The value at quantile `q` (0..1), in nanoseconds.
    fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((self.total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value(i);
            }
        }
        Self::value(self.counts.len() - 1)
    }
}

/// What the workers and the progress line share: the counters, the clock's state, and the
/// latencies of the workers that finished.
#[derive(Default)]
struct Shared {
    /// Echoes, handshakes, or deliveries to room members.
    operations: AtomicU64,
    /// Room mode: messages sent (each delivered to every member).
    published: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    /// Set once the warm-up is over: only what happens after it is counted.
    measuring: AtomicBool,
    /// Set when the time is up: workers stop at their next round trip.
    stop: AtomicBool,
    /// The latencies of every worker, merged as each ends.
    histogram: Mutex<Histogram>,
}

impl Shared {
    fn merge(&self, local: &Histogram) {
        self.histogram.lock().unwrap_or_else(|e| e.into_inner()).merge(local);
    }
}

/// What the run measured.
struct Outcome {
    /// Seconds measured.
    elapsed: f64,
    operations: u64,
    /// Operations per second.
    rate: f64,
    /// Payload MB per second.
    mbps: f64,
    /// Room mode: messages sent per second.
    published: f64,
    /// Latency quantiles, in nanoseconds: p50, p99, p99.9.
    latency: (u64, u64, u64),
    errors: u64,
}

fn millis(nanos: u64) -> String {
    format!("{:.3} ms", nanos as f64 / 1e6)
}

/// The mode's name, as --mode and the JSON result spell it.
fn mode_name(mode: BenchMode) -> &'static str {
    match mode {
        BenchMode::Echo => "echo",
        BenchMode::Handshake => "handshake",
        BenchMode::Room => "room",
    }
}

/// What the mode's rate counts.
fn rate_unit(mode: BenchMode) -> &'static str {
    match mode {
        BenchMode::Echo => "msgs/s",
        BenchMode::Handshake => "handshakes/s",
        BenchMode::Room => "deliveries/s",
    }
}

pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    check(&args)?;
    let connector = connector(&args)?;
    let shared = Arc::new(Shared::default());
    // Echo and room modes open every connection before the clock starts.
    let workers = match args.mode {
        BenchMode::Echo => start_echo(&args, &connector, &shared).await?,
        BenchMode::Room => start_room(&args, &connector, &shared).await?,
        BenchMode::Handshake => start_handshake(&args, &connector, &shared),
    };
    let elapsed = measure(&args, &shared).await;
    stop(&shared, workers).await;
    let outcome = outcome(&shared, elapsed);
    if args.json {
        print_json(&args, &outcome);
    } else {
        print_table(&args, &outcome);
    }
    if outcome.operations == 0 {
        let endpoint =
            if args.mode == BenchMode::Room { "a chat room" } else { "an echo endpoint" };
        bail!("no {} completed: is {} {endpoint}?", mode_name(args.mode), args.url);
    }
    Ok(())
}

/// Refuses arguments that make no run.
fn check(args: &BenchArgs) -> anyhow::Result<()> {
    if args.connections == 0 || args.in_flight == 0 {
        bail!("--connections and --in-flight must be at least 1");
    }
    if args.mode == BenchMode::Room && !(1..=args.connections).contains(&args.senders) {
        bail!("--senders must be between 1 and --connections ({})", args.connections);
    }
    if args.mode != BenchMode::Room && !args.also.is_empty() {
        bail!("--also is for --mode room");
    }
    if args.http2 && (args.mode != BenchMode::Echo || args.http2_connections == 0) {
        bail!("--http2 is for --mode echo, over at least one HTTP/2 connection");
    }
    Ok(())
}

/// The client every worker connects with.
fn connector(args: &BenchArgs) -> anyhow::Result<Connector> {
    let mut config =
        Config::default().limits(Limits::default().max_message_size(args.size.max(1 << 20)));
    if args.deflate {
        config = config.deflate(Some(DeflateConfig::default()));
    }
    let mut connector = Connector::new().no_proxy().config(config);
    if let Some(ca) = &args.cacert {
        connector =
            connector.tls(wsx::tls::client_config(Some(ca)).context("cannot use --cacert")?);
    }
    Ok(connector)
}

/// Echo mode: opens every connection, then starts one worker on each.
async fn start_echo(
    args: &BenchArgs,
    connector: &Connector,
    shared: &Arc<Shared>,
) -> anyhow::Result<JoinSet<()>> {
    let payload = if args.text {
        Message::text("x".repeat(args.size))
    } else {
        Message::Binary(Bytes::from(vec![0x5a; args.size]))
    };
    let mut workers = JoinSet::new();
    if args.http2 {
        let m = args.http2_connections;
        eprintln!(
            "opening {} WebSockets over {m} HTTP/2 connections to {} ...",
            args.connections, args.url
        );
        let mut h2 = Vec::with_capacity(m);
        for _ in 0..m {
            let connection = connector.connect_http2(&args.url).await;
            h2.push(
                connection
                    .with_context(|| format!("cannot connect to {} over HTTP/2", args.url))?,
            );
        }
        for i in 0..args.connections {
            let (ws, _) = h2[i % m]
                .open(&args.url)
                .await
                .with_context(|| format!("cannot open a WebSocket to {} over HTTP/2", args.url))?;
            spawn_echo(&mut workers, ws, &payload, args.in_flight, shared);
        }
        return Ok(workers);
    }
    eprintln!("opening {} connections to {} ...", args.connections, args.url);
    let mut sockets = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let (ws, _) = connector
            .connect(&args.url)
            .await
            .with_context(|| format!("cannot connect to {}", args.url))?;
        sockets.push(ws);
    }
    for ws in sockets {
        spawn_echo(&mut workers, ws, &payload, args.in_flight, shared);
    }
    Ok(workers)
}

/// Starts an echo worker on `ws`.
fn spawn_echo<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    workers: &mut JoinSet<()>,
    ws: wsx::WebSocket<S>,
    payload: &Message,
    in_flight: usize,
    shared: &Arc<Shared>,
) {
    let (shared, payload) = (shared.clone(), payload.clone());
    workers.spawn(async move {
        match echo_worker(ws, payload, in_flight, &shared).await {
            Ok(local) => shared.merge(&local),
            Err(_) => {
                shared.errors.fetch_add(1, Relaxed);
            }
        }
    });
}

/// Room mode: opens every member's connection (spread over URL and --also), then starts one
/// worker on each; the first --senders send.
async fn start_room(
    args: &BenchArgs,
    connector: &Connector,
    shared: &Arc<Shared>,
) -> anyhow::Result<JoinSet<()>> {
    let urls: Vec<&String> = std::iter::once(&args.url).chain(&args.also).collect();
    eprintln!("opening {} room members over {} URL(s) ...", args.connections, urls.len());
    let mut members = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        let url = urls[i % urls.len()];
        let (ws, _) =
            connector.connect(url).await.with_context(|| format!("cannot connect to {url}"))?;
        members.push(ws);
    }
    let base = Instant::now();
    let mut workers = JoinSet::new();
    for (id, ws) in members.into_iter().enumerate() {
        let shared = shared.clone();
        let sends = (id < args.senders).then_some((args.in_flight, args.size));
        workers.spawn(async move {
            let member = RoomMember { id, sends, base };
            match member.run(ws, &shared).await {
                Ok(local) => shared.merge(&local),
                Err(_) => {
                    shared.errors.fetch_add(1, Relaxed);
                }
            }
        });
    }
    Ok(workers)
}

/// Handshake mode: starts --connections workers that connect and close, over and over.
fn start_handshake(args: &BenchArgs, connector: &Connector, shared: &Arc<Shared>) -> JoinSet<()> {
    let mut workers = JoinSet::new();
    for _ in 0..args.connections {
        let (shared, connector, url) = (shared.clone(), connector.clone(), args.url.clone());
        workers.spawn(async move {
            let local = handshake_worker(&connector, &url, &shared).await;
            shared.merge(&local);
        });
    }
    workers
}

/// Waits out the warm-up, then measures for --duration with a progress line each second; the
/// seconds measured.
async fn measure(args: &BenchArgs, shared: &Shared) -> f64 {
    tokio::time::sleep(args.warmup).await;
    shared.operations.store(0, Relaxed);
    shared.bytes.store(0, Relaxed);
    shared.published.store(0, Relaxed);
    shared.measuring.store(true, Relaxed);
    let started = Instant::now();
    let mut last = (0u64, Instant::now());
    let unit = rate_unit(args.mode);
    while started.elapsed() < args.duration {
        let left = args.duration.saturating_sub(started.elapsed()).min(Duration::from_secs(1));
        tokio::time::sleep(left).await;
        let ops = shared.operations.load(Relaxed);
        let rate = (ops - last.0) as f64 / last.1.elapsed().as_secs_f64();
        last = (ops, Instant::now());
        eprint!(
            "\r{:>5.1} s  {:>12.0} {unit}  errors {}   ",
            started.elapsed().as_secs_f64(),
            rate,
            shared.errors.load(Relaxed)
        );
    }
    started.elapsed().as_secs_f64()
}

/// Stops the workers and waits for them (a few seconds at most).
async fn stop(shared: &Shared, mut workers: JoinSet<()>) {
    shared.stop.store(true, Relaxed);
    eprintln!();
    // Workers stop at their next round trip; one that hangs does not hold the result.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while workers.join_next().await.is_some() {}
    })
    .await;
    workers.abort_all();
}

fn outcome(shared: &Shared, elapsed: f64) -> Outcome {
    let operations = shared.operations.load(Relaxed);
    let bytes = shared.bytes.load(Relaxed);
    let h = shared.histogram.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Outcome {
        elapsed,
        operations,
        rate: operations as f64 / elapsed,
        mbps: bytes as f64 / elapsed / 1e6,
        published: shared.published.load(Relaxed) as f64 / elapsed,
        latency: (h.quantile(0.5), h.quantile(0.99), h.quantile(0.999)),
        errors: shared.errors.load(Relaxed),
    }
}

/// The result as one JSON object on one line (--json).
fn print_json(args: &BenchArgs, outcome: &Outcome) {
    let (p50, p99, p999) = outcome.latency;
    let result = json!({
        "mode": mode_name(args.mode),
        "connections": args.connections,
        "size": args.size,
        "in_flight": args.in_flight,
        "seconds": rounded(outcome.elapsed, 3),
        "operations": outcome.operations,
        "rate": rounded(outcome.rate, 1),
        "mb_per_s": rounded(outcome.mbps, 3),
        "p50_ns": p50,
        "p99_ns": p99,
        "p999_ns": p999,
        "published_rate": rounded(outcome.published, 1),
        "errors": outcome.errors,
    });
    println!("{result}");
}

/// `value` rounded to `decimals` places (the precision that the result states).
fn rounded(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// The result as a table.
fn print_table(args: &BenchArgs, outcome: &Outcome) {
    let Outcome { elapsed, rate, mbps, published, .. } = *outcome;
    println!("{:<22} {}", "target", args.url);
    println!(
        "{:<22} {:?}, {} connections, {} B, {} in flight",
        "load", args.mode, args.connections, args.size, args.in_flight
    );
    println!("{:<22} {elapsed:.2} s", "measured");
    println!("{:<22} {rate:.0}", rate_unit(args.mode));
    if args.mode == BenchMode::Echo {
        println!("{:<22} {mbps:.2} (payload echoed, one way)", "MB/s");
    }
    if args.mode == BenchMode::Room {
        println!(
            "{:<22} {published:.0} (each to {} members)",
            "published msgs/s", args.connections
        );
    }
    let (p50, p99, p999) = outcome.latency;
    println!("{:<22} p50 {}  p99 {}  p99.9 {}", "latency", millis(p50), millis(p99), millis(p999));
    println!("{:<22} {}", "errors", outcome.errors);
}

async fn echo_worker<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: wsx::WebSocket<S>,
    payload: Message,
    in_flight: usize,
    shared: &Shared,
) -> anyhow::Result<Histogram> {
    let mut histogram = Histogram::new();
    let mut sent_at = std::collections::VecDeque::with_capacity(in_flight);
    for _ in 0..in_flight {
        ws.feed(payload.clone()).await?;
        sent_at.push_back(Instant::now());
    }
    ws.flush().await?;
    while !shared.stop.load(Relaxed) {
        match ws.recv().await {
            Some(Ok(Message::Text(_) | Message::Binary(_))) => {
                let t = sent_at.pop_front().context("an echo nobody asked for")?;
                if shared.measuring.load(Relaxed) {
                    histogram.record(t.elapsed().as_nanos() as u64);
                    shared.operations.fetch_add(1, Relaxed);
                    shared.bytes.fetch_add(payload.len() as u64, Relaxed);
                }
                // `feed`: the next `recv` writes every reply due in one write.
                ws.feed(payload.clone()).await?;
                sent_at.push_back(Instant::now());
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => bail!("the server closed the connection"),
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(CloseCode::NORMAL, "")).await;
    Ok(histogram)
}

/// One member of the room in room mode.
struct RoomMember {
    id: usize,
    /// For a sender: messages in flight, and their size.
    sends: Option<(usize, usize)>,
    /// The clock every member reads the send times against.
    base: Instant,
}

impl RoomMember {
    /// `"{id} {nanos since base} "` padded with `x` to `size`.
    fn message(&self, size: usize) -> Message {
        let mut text = format!("{} {} ", self.id, self.base.elapsed().as_nanos());
        if text.len() < size {
            text.extend(std::iter::repeat_n('x', size - text.len()));
        }
        Message::text(text)
    }

    async fn run(
        self,
        mut ws: wsx::WebSocket<wsx::ClientStream>,
        shared: &Shared,
    ) -> anyhow::Result<Histogram> {
        let mut histogram = Histogram::new();
        if let Some((in_flight, size)) = self.sends {
            for _ in 0..in_flight {
                ws.feed(self.message(size)).await?;
            }
            ws.flush().await?;
        }
        while !shared.stop.load(Relaxed) {
            let text = match ws.recv().await {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => bail!("the server closed the connection"),
            };
            let mut fields = text.split(' ');
            let (Some(Ok(from)), Some(Ok(sent))) =
                (fields.next().map(str::parse::<usize>), fields.next().map(str::parse::<u128>))
            else {
                bail!(
                    "a room message that wsx bench did not send: {:?}",
                    &text[..text.len().min(80)]
                );
            };
            if shared.measuring.load(Relaxed) {
                let nanos = self.base.elapsed().as_nanos().saturating_sub(sent);
                histogram.record(nanos as u64);
                shared.operations.fetch_add(1, Relaxed);
                shared.bytes.fetch_add(text.len() as u64, Relaxed);
            }
            // A sender's own message is back: the room has it; send the next.
            if let (true, Some((_, size))) = (from == self.id, self.sends) {
                if shared.measuring.load(Relaxed) {
                    shared.published.fetch_add(1, Relaxed);
                }
                ws.feed(self.message(size)).await?;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(CloseCode::NORMAL, "")).await;
        Ok(histogram)
    }
}

async fn handshake_worker(connector: &Connector, url: &str, shared: &Shared) -> Histogram {
    let mut histogram = Histogram::new();
    while !shared.stop.load(Relaxed) {
        let t = Instant::now();
        match connector.connect(url).await {
            Ok((mut ws, _)) => {
                if shared.measuring.load(Relaxed) {
                    histogram.record(t.elapsed().as_nanos() as u64);
                    shared.operations.fetch_add(1, Relaxed);
                }
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), ws.close(CloseCode::NORMAL, ""))
                        .await;
            }
            Err(_) => {
                shared.errors.fetch_add(1, Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    histogram
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_within_two_percent() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v * 1000); // 1 µs .. 100 ms
        }
        for (q, expected) in [(0.5, 50_000_000.0), (0.99, 99_000_000.0), (0.999, 99_900_000.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - expected).abs() / expected < 0.02, "q{q}: {got} vs {expected}");
        }
        assert_eq!(Histogram::new().quantile(0.5), 0);
        for v in [1u64, 63, 64, 65, 1000, 123_456_789] {
            let back = Histogram::value(Histogram::index(v));
            assert!(back <= v && (v - back) as f64 / v as f64 <= 0.016, "{v} -> {back}");
        }
    }
}
