//! `wsx bench`: a closed-loop load generator. Echo mode: every connection keeps K messages in
//! flight and sends the next one when an echo comes back, timing each round trip. Handshake
//! mode: workers connect, complete the opening handshake and close, over and over.
//! A progress line is printed each second; the result is a table (or JSON with --json).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
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

/// Counters shared by the workers and the progress line.
#[derive(Default)]
struct Totals {
    operations: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
}

fn millis(nanos: u64) -> String {
    format!("{:.3} ms", nanos as f64 / 1e6)
}

pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.connections == 0 || args.in_flight == 0 {
        bail!("--connections and --in-flight must be at least 1");
    }
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
    let totals = Arc::new(Totals::default());
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let histogram = Arc::new(Mutex::new(Histogram::new()));

    // Echo mode opens every connection before the clock starts.
    let mut workers = JoinSet::new();
    match args.mode {
        BenchMode::Echo => {
            let payload = if args.text {
                Message::text("x".repeat(args.size))
            } else {
                Message::Binary(Bytes::from(vec![0x5a; args.size]))
            };
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
                let (totals, measuring, stop, histogram) =
                    (totals.clone(), measuring.clone(), stop.clone(), histogram.clone());
                let (payload, k) = (payload.clone(), args.in_flight);
                workers.spawn(async move {
                    let result = echo_worker(ws, payload, k, &totals, &measuring, &stop).await;
                    if result.is_err() {
                        totals.errors.fetch_add(1, Relaxed);
                    }
                    if let Ok(local) = result {
                        histogram.lock().unwrap_or_else(|e| e.into_inner()).merge(&local);
                    }
                });
            }
        }
        BenchMode::Handshake => {
            for _ in 0..args.connections {
                let (totals, measuring, stop, histogram) =
                    (totals.clone(), measuring.clone(), stop.clone(), histogram.clone());
                let (connector, url) = (connector.clone(), args.url.clone());
                workers.spawn(async move {
                    let local =
                        handshake_worker(&connector, &url, &totals, &measuring, &stop).await;
                    histogram.lock().unwrap_or_else(|e| e.into_inner()).merge(&local);
                });
            }
        }
    }

    tokio::time::sleep(args.warmup).await;
    totals.operations.store(0, Relaxed);
    totals.bytes.store(0, Relaxed);
    measuring.store(true, Relaxed);
    let started = Instant::now();
    let mut last = (0u64, Instant::now());
    let unit = match args.mode {
        BenchMode::Echo => "msgs/s",
        BenchMode::Handshake => "handshakes/s",
    };
    while started.elapsed() < args.duration {
        let left = args.duration.saturating_sub(started.elapsed()).min(Duration::from_secs(1));
        tokio::time::sleep(left).await;
        let ops = totals.operations.load(Relaxed);
        let rate = (ops - last.0) as f64 / last.1.elapsed().as_secs_f64();
        last = (ops, Instant::now());
        eprint!(
            "\r{:>5.1} s  {:>12.0} {unit}  errors {}   ",
            started.elapsed().as_secs_f64(),
            rate,
            totals.errors.load(Relaxed)
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Relaxed);
    eprintln!();
    // Workers stop at their next round trip; one that hangs does not hold the result.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while workers.join_next().await.is_some() {}
    })
    .await;
    workers.abort_all();

    let ops = totals.operations.load(Relaxed);
    let bytes = totals.bytes.load(Relaxed);
    let h = histogram.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let (p50, p99, p999) = (h.quantile(0.5), h.quantile(0.99), h.quantile(0.999));
    let rate = ops as f64 / elapsed;
    let mbps = bytes as f64 / elapsed / 1e6;
    if args.json {
        println!(
            "{{\"mode\":\"{}\",\"connections\":{},\"size\":{},\"in_flight\":{},\"seconds\":{elapsed:.3},\
             \"operations\":{ops},\"rate\":{rate:.1},\"mb_per_s\":{mbps:.3},\"p50_ns\":{p50},\
             \"p99_ns\":{p99},\"p999_ns\":{p999},\"errors\":{}}}",
            if args.mode == BenchMode::Echo { "echo" } else { "handshake" },
            args.connections,
            args.size,
            args.in_flight,
            totals.errors.load(Relaxed)
        );
    } else {
        println!("{:<22} {}", "target", args.url);
        println!(
            "{:<22} {:?}, {} connections, {} B, {} in flight",
            "load", args.mode, args.connections, args.size, args.in_flight
        );
        println!("{:<22} {elapsed:.2} s", "measured");
        println!("{:<22} {rate:.0}", unit);
        if args.mode == BenchMode::Echo {
            println!("{:<22} {mbps:.2} (payload echoed, one way)", "MB/s");
        }
        println!(
            "{:<22} p50 {}  p99 {}  p99.9 {}",
            "latency",
            millis(p50),
            millis(p99),
            millis(p999)
        );
        println!("{:<22} {}", "errors", totals.errors.load(Relaxed));
    }
    if ops == 0 {
        bail!(
            "no {} completed: is {} an echo endpoint?",
            if args.mode == BenchMode::Echo { "echo" } else { "handshake" },
            args.url
        );
    }
    Ok(())
}

async fn echo_worker(
    mut ws: wsx::WebSocket<wsx::ClientStream>,
    payload: Message,
    in_flight: usize,
    totals: &Totals,
    measuring: &AtomicBool,
    stop: &AtomicBool,
) -> anyhow::Result<Histogram> {
    let mut histogram = Histogram::new();
    let mut sent_at = std::collections::VecDeque::with_capacity(in_flight);
    for _ in 0..in_flight {
        ws.feed(payload.clone()).await?;
        sent_at.push_back(Instant::now());
    }
    ws.flush().await?;
    while !stop.load(Relaxed) {
        match ws.recv().await {
            Some(Ok(Message::Text(_) | Message::Binary(_))) => {
                let t = sent_at.pop_front().context("an echo nobody asked for")?;
                if measuring.load(Relaxed) {
                    histogram.record(t.elapsed().as_nanos() as u64);
                    totals.operations.fetch_add(1, Relaxed);
                    totals.bytes.fetch_add(payload.len() as u64, Relaxed);
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

async fn handshake_worker(
    connector: &Connector,
    url: &str,
    totals: &Totals,
    measuring: &AtomicBool,
    stop: &AtomicBool,
) -> Histogram {
    let mut histogram = Histogram::new();
    while !stop.load(Relaxed) {
        let t = Instant::now();
        match connector.connect(url).await {
            Ok((mut ws, _)) => {
                if measuring.load(Relaxed) {
                    histogram.record(t.elapsed().as_nanos() as u64);
                    totals.operations.fetch_add(1, Relaxed);
                }
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), ws.close(CloseCode::NORMAL, ""))
                        .await;
            }
            Err(_) => {
                totals.errors.fetch_add(1, Relaxed);
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
