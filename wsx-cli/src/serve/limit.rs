//! Rate limits as token buckets, with time passed in: messages and bytes one chat member sends
//! into its room (`--room-rate`, `--room-bytes-rate`: [`RoomRate`]) and handshakes per client
//! address (`--handshake-rate`: [`Handshakes`], a table of bounded size). Imports only the
//! [`Rate`] of the command line.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::args::Rate;

/// A token bucket: refills at `rate.per_second` up to `rate.burst`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket {
    level: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket for `rate`.
    pub(crate) fn full(rate: Rate, now: Instant) -> Self {
        Self { level: rate.burst, at: now }
    }

    /// The level at `now`, refilled since the last take.
    fn level(&self, rate: Rate, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.level + elapsed * rate.per_second).min(rate.burst)
    }

    /// Takes `cost` at `now`, or says how long until it could. A cost larger than the whole
    /// bucket (a big message) is taken from a full bucket and leaves it in debt, so the
    /// average stays at the rate and nothing is refused for ever.
    pub(crate) fn take(&mut self, rate: Rate, cost: f64, now: Instant) -> Result<(), Duration> {
        let level = self.level(rate, now);
        let needed = cost.min(rate.burst);
        if level >= needed {
            self.level = level - cost;
            self.at = now;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((needed - level) / rate.per_second))
        }
    }

    /// Whether the bucket is full again at `now` (as good as a new one).
    fn is_full(&self, rate: Rate, now: Instant) -> bool {
        self.level(rate, now) >= rate.burst
    }
}

/// The room limits of one chat member: messages and payload bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RoomRate {
    messages: Option<(Rate, Bucket)>,
    bytes: Option<(Rate, Bucket)>,
}

impl RoomRate {
    /// Limits of `messages` and `bytes` (`None` or off: no limit).
    pub(crate) fn new(messages: Option<Rate>, bytes: Option<Rate>, now: Instant) -> Self {
        let bucket = |rate: Option<Rate>| {
            rate.filter(|r| r.is_on()).map(|rate| (rate, Bucket::full(rate, now)))
        };
        Self { messages: bucket(messages), bytes: bucket(bytes) }
    }

    /// Whether a message of `len` bytes may go into the room at `now` (it is then counted).
    pub(crate) fn allow(&mut self, len: usize, now: Instant) -> bool {
        // Tried on copies first: a refused message takes from neither bucket.
        let fits = |limit: Option<(Rate, Bucket)>, cost: f64| {
            limit.is_none_or(|(rate, mut bucket)| bucket.take(rate, cost, now).is_ok())
        };
        if !(fits(self.messages, 1.0) && fits(self.bytes, len as f64)) {
            return false;
        }
        for (limit, cost) in [(&mut self.messages, 1.0), (&mut self.bytes, len as f64)] {
            if let Some((rate, bucket)) = limit {
                let _ = bucket.take(*rate, cost, now);
            }
        }
        true
    }
}

/// Addresses remembered at most: beyond it, idle ones are forgotten (a full bucket is as good
/// as none), and if none is idle, an arbitrary one.
const MAX_ADDRESSES: usize = 65_536;

/// Handshakes per client address (an IPv6 address counts as its /64: one host usually holds a
/// whole /64).
#[derive(Debug)]
pub(crate) struct Handshakes {
    rate: Rate,
    table: Mutex<Table>,
}

#[derive(Debug)]
struct Table {
    buckets: HashMap<IpAddr, Bucket>,
    capacity: usize,
    swept: Option<Instant>,
}

impl Handshakes {
    /// `rate` handshakes per address (off: no limit).
    pub(crate) fn new(rate: Rate) -> Self {
        Self::with_capacity(rate, MAX_ADDRESSES)
    }

    fn with_capacity(rate: Rate, capacity: usize) -> Self {
        let table = Table { buckets: HashMap::new(), capacity, swept: None };
        Self { rate, table: Mutex::new(table) }
    }

    /// Counts a handshake from `client` at `now`; `Err(wait)` when it is over the rate.
    pub(crate) fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        if !self.rate.is_on() {
            return Ok(());
        }
        let key = match client {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
                IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into())
            }
            IpAddr::V6(v6) => {
                IpAddr::V4(v6.to_ipv4_mapped().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED))
            }
            v4 => v4,
        };
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if !table.buckets.contains_key(&key) && table.buckets.len() >= table.capacity {
            table.make_room(self.rate, now);
        }
        let rate = self.rate;
        table.buckets.entry(key).or_insert_with(|| Bucket::full(rate, now)).take(rate, 1.0, now)
    }

    /// Addresses remembered now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.lock().unwrap().buckets.len()
    }
}

impl Table {
    /// Frees one place at least: forgets the idle addresses (at most once a second, so that a
    /// table full of busy ones is not scanned for each new one), else an arbitrary one.
    fn make_room(&mut self, rate: Rate, now: Instant) {
        let due =
            self.swept.is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1));
        if due {
            self.swept = Some(now);
            self.buckets.retain(|_, bucket| !bucket.is_full(rate, now));
        }
        if self.buckets.len() >= self.capacity {
            if let Some(any) = self.buckets.keys().next().copied() {
                self.buckets.remove(&any);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn per_second(n: f64) -> Rate {
        Rate { per_second: n, burst: n }
    }

    #[test]
    fn a_bucket_allows_a_burst_then_its_rate() {
        let t0 = Instant::now();
        let rate = per_second(10.0);
        let mut bucket = Bucket::full(rate, t0);
        for _ in 0..10 {
            assert!(bucket.take(rate, 1.0, t0).is_ok());
        }
        let wait = bucket.take(rate, 1.0, t0).unwrap_err();
        assert_eq!(wait, 100 * MS);
        assert!(bucket.take(rate, 1.0, t0 + 99 * MS).is_err());
        assert!(bucket.take(rate, 1.0, t0 + 100 * MS).is_ok());
        // Idle for long: full again, not more.
        let later = t0 + Duration::from_secs(60);
        assert!(bucket.is_full(rate, later));
        for _ in 0..10 {
            assert!(bucket.take(rate, 1.0, later).is_ok());
        }
        assert!(bucket.take(rate, 1.0, later).is_err());
    }

    #[test]
    fn a_rate_per_minute_bursts_its_count_then_waits() {
        let t0 = Instant::now();
        let rate = Rate { per_second: 3.0 / 60.0, burst: 3.0 };
        let mut bucket = Bucket::full(rate, t0);
        assert!((0..3).all(|_| bucket.take(rate, 1.0, t0).is_ok()));
        assert_eq!(bucket.take(rate, 1.0, t0).unwrap_err(), Duration::from_secs(20));
        assert!(bucket.take(rate, 1.0, t0 + Duration::from_secs(20)).is_ok());
    }

    #[test]
    fn a_cost_larger_than_the_bucket_leaves_a_debt() {
        let t0 = Instant::now();
        let rate = per_second(100.0);
        let mut bytes = Bucket::full(rate, t0);
        assert!(bytes.take(rate, 250.0, t0).is_ok(), "from a full bucket");
        // 150 in debt: 2.5 s until 100 are there again.
        assert_eq!(bytes.take(rate, 1000.0, t0 + 2 * 1000 * MS).unwrap_err(), 500 * MS);
        assert!(bytes.take(rate, 1000.0, t0 + 2500 * MS).is_ok());
    }

    #[test]
    fn room_rate_counts_messages_and_bytes_and_only_what_passes() {
        let t0 = Instant::now();
        let mut rate = RoomRate::new(Some(per_second(2.0)), Some(per_second(100.0)), t0);
        assert!(rate.allow(60, t0));
        assert!(!rate.allow(60, t0), "bytes: 40 left");
        assert!(rate.allow(40, t0), "the refused one took nothing");
        assert!(!rate.allow(0, t0), "messages: 2 per second");
        assert!(rate.allow(10, t0 + 500 * MS));
        let mut off = RoomRate::new(Some(per_second(0.0)), None, t0);
        assert!((0..1000).all(|_| off.allow(1 << 20, t0)));
    }

    #[test]
    fn handshakes_per_address_and_per_ipv6_64() {
        let t0 = Instant::now();
        let limit = Handshakes::new(per_second(2.0));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(limit.check(a, t0).is_ok() && limit.check(a, t0).is_ok());
        assert_eq!(limit.check(a, t0).unwrap_err(), 500 * MS);
        assert!(limit.check("192.0.2.2".parse().unwrap(), t0).is_ok(), "another address");
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(limit.check(v6("2001:db8::1"), t0).is_ok());
        assert!(limit.check(v6("2001:db8::2"), t0).is_ok());
        assert!(limit.check(v6("2001:db8::ffff:3"), t0).is_err(), "the same /64");
        assert!(limit.check(v6("2001:db8:0:1::1"), t0).is_ok(), "another /64");
        assert!(limit.check(v6("::ffff:192.0.2.1"), t0).is_err(), "IPv4 as IPv6: the same");
        assert!(Handshakes::new(per_second(0.0)).check(a, t0).is_ok());
    }

    #[test]
    fn the_address_table_stays_bounded() {
        let t0 = Instant::now();
        let limit = Handshakes::with_capacity(per_second(1.0), 100);
        let ip = |n: u32| IpAddr::V4(n.into());
        for n in 0..1000 {
            assert!(limit.check(ip(n), t0).is_ok());
            assert!(limit.len() <= 100);
        }
        // Idle ones are forgotten first: after a second, all are full again.
        let later = t0 + Duration::from_secs(2);
        assert!(limit.check(ip(5000), later).is_ok());
        assert_eq!(limit.len(), 1);
    }
}
