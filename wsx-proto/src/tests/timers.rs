//! The timers (keepalive, idle, close) driven with made-up time: no sleeps, exact instants.

use std::time::{Duration, Instant};

use super::{queued_close_code, transmitted, Pair};
use crate::*;

const S: Duration = Duration::from_secs(1);

fn timed(config: Config) -> (Pair, Instant) {
    let mut pair = Pair::with_config(config);
    let start = Instant::now();
    assert_eq!(pair.client.handle_timeout(start), None);
    assert_eq!(pair.server.handle_timeout(start), None);
    (pair, start)
}

#[test]
fn no_timer_runs_before_the_clock_starts() {
    let conn = Connection::new(
        Role::Server,
        &Negotiated::default(),
        Config::default().idle_timeout(Some(S)),
    );
    assert_eq!(conn.poll_timeout(), None, "no time known yet");
}

#[test]
fn nothing_is_armed_by_default_while_open() {
    let (pair, _) = timed(Config::default());
    assert_eq!(pair.server.poll_timeout(), None);
    assert_eq!(pair.client.poll_timeout(), None);
}

#[test]
fn keepalive_pings_then_fails_with_1011() {
    let config = Config::default().keepalive(Some(30 * S)).keepalive_timeout(10 * S);
    let (mut pair, t0) = timed(config);
    assert_eq!(pair.server.poll_timeout(), Some(t0 + 30 * S));
    assert_eq!(pair.server.handle_timeout(t0 + 29 * S), None, "early wake: nothing due");
    assert_eq!(pair.server.pending_transmit(), 0);
    assert_eq!(pair.server.handle_timeout(t0 + 30 * S), None);
    let wire = pair.transfer(Role::Server);
    assert_eq!(wire[0], 0x89, "a ping");
    assert_eq!(&wire[2..], b"wsx-keepalive");
    assert_eq!(pair.server.poll_timeout(), Some(t0 + 40 * S), "the ping has 10 s");
    // The client does not answer (its pong is never transferred).
    assert_eq!(pair.server.handle_timeout(t0 + 40 * S), Some(Timeout::Keepalive));
    assert_eq!(queued_close_code(&mut pair.server), Some(1011));
    assert!(pair.server.should_close_tcp());
    assert_eq!(pair.server.poll_timeout(), None, "nothing left to time");
}

#[test]
fn an_answered_keepalive_ping_rearms_from_the_pong() {
    let config = Config::default().keepalive(Some(30 * S)).keepalive_timeout(10 * S);
    let (mut pair, t0) = timed(config);
    pair.server.handle_timeout(t0 + 30 * S);
    pair.transfer(Role::Server);
    pair.drain(Role::Client); // the client's core answers the ping
    pair.transfer(Role::Client);
    assert_eq!(pair.drain(Role::Server), [Ok(Message::Pong("wsx-keepalive".into()))]);
    // The pong's arrival needs the time: the core asks for it at once.
    let asked = pair.server.poll_timeout().unwrap();
    assert!(asked <= t0 + 30 * S, "bytes arrived: the time is wanted now");
    assert_eq!(pair.server.handle_timeout(t0 + 35 * S), None);
    assert_eq!(pair.server.poll_timeout(), Some(t0 + 65 * S), "30 s after the pong");
    assert_eq!(pair.server.handle_timeout(t0 + 64 * S), None);
    assert_eq!(pair.server.pending_transmit(), 0, "not idle long enough for a new ping");
}

#[test]
fn idle_timeout_closes_with_1001_and_traffic_defers_it() {
    let (mut pair, t0) = timed(Config::default().idle_timeout(Some(60 * S)));
    assert_eq!(pair.server.poll_timeout(), Some(t0 + 60 * S));
    pair.client.send(Message::text("still here")).unwrap();
    pair.transfer(Role::Client);
    assert_eq!(pair.server.handle_timeout(t0 + 50 * S), None);
    assert_eq!(pair.server.poll_timeout(), Some(t0 + 110 * S));
    assert_eq!(pair.drain(Role::Server), [Ok(Message::text("still here"))]);
    assert_eq!(pair.server.handle_timeout(t0 + 110 * S), Some(Timeout::Idle));
    assert_eq!(queued_close_code(&mut pair.server), Some(1001));
    assert!(pair.server.should_close_tcp());
}

#[test]
fn close_timeout_gives_up_on_a_silent_peer() {
    let (mut pair, t0) = timed(Config::default().close_timeout(5 * S));
    assert_eq!(pair.server.poll_timeout(), None);
    pair.server.send(Message::close(CloseCode::NORMAL, "bye")).unwrap();
    assert!(pair.server.poll_timeout().unwrap() <= t0, "a close began: the time is wanted");
    assert_eq!(pair.server.handle_timeout(t0 + S), None);
    assert_eq!(pair.server.poll_timeout(), Some(t0 + 6 * S));
    pair.transfer(Role::Server); // the peer never answers
    assert!(!pair.server.should_close_tcp());
    assert_eq!(pair.server.handle_timeout(t0 + 6 * S), Some(Timeout::Close));
    assert!(pair.server.should_close_tcp());
    assert_eq!(pair.server.peer_close(), None, "no Close came back");
}

#[test]
fn a_client_waits_for_the_servers_fin_within_the_close_timeout() {
    let (mut pair, t0) = timed(Config::default().close_timeout(5 * S));
    pair.server.send(Message::close(CloseCode::NORMAL, "")).unwrap();
    pair.transfer(Role::Server);
    pair.drain(Role::Client); // the client echoes; it now waits for the server's FIN
    assert!(!pair.client.should_close_tcp());
    let _ = pair.client.next_transmit();
    assert_eq!(pair.client.handle_timeout(t0 + 2 * S), None, "starts the wait");
    assert_eq!(pair.client.poll_timeout(), Some(t0 + 7 * S));
    assert_eq!(pair.client.handle_timeout(t0 + 7 * S), None, "normal: the handshake completed");
    assert!(pair.client.should_close_tcp(), "the client closes TCP itself after the wait");
    assert!(pair.client.peer_close().is_some());
}

#[test]
fn a_completed_close_disarms_the_close_timer() {
    let (mut pair, t0) = timed(Config::default().close_timeout(5 * S));
    pair.client.send(Message::close(CloseCode::NORMAL, "")).unwrap();
    pair.client.handle_timeout(t0);
    pair.transfer(Role::Client);
    pair.drain(Role::Server);
    assert_eq!(pair.server.poll_timeout(), None, "the server closes TCP: nothing to wait for");
    pair.transfer(Role::Server);
    assert!(pair.server.should_close_tcp());
    pair.drain(Role::Client);
    pair.client.receive_eof();
    assert_eq!(pair.client.next_message(), Ok(None));
    assert!(pair.client.should_close_tcp());
    assert_eq!(pair.client.poll_timeout(), None);
    assert_eq!(pair.client.handle_timeout(t0 + 60 * S), None);
}

#[test]
fn time_never_runs_backwards() {
    let (mut pair, t0) = timed(Config::default().idle_timeout(Some(10 * S)));
    assert_eq!(pair.server.handle_timeout(t0 + 5 * S), None);
    // An earlier instant (a clock that is not monotonic) changes nothing.
    assert_eq!(pair.server.handle_timeout(t0), None);
    assert_eq!(pair.server.poll_timeout(), Some(t0 + 10 * S));
}

#[test]
fn keepalive_stops_once_closing() {
    let config = Config::default().keepalive(Some(30 * S)).close_timeout(100 * S);
    let (mut pair, t0) = timed(config);
    pair.server.send(Message::close(CloseCode::NORMAL, "")).unwrap();
    let _ = pair.server.next_transmit();
    pair.server.handle_timeout(t0);
    assert_eq!(pair.server.poll_timeout(), Some(t0 + 100 * S), "only the close timer");
    assert_eq!(pair.server.handle_timeout(t0 + 31 * S), None);
    assert_eq!(pair.server.pending_transmit(), 0, "no ping after our Close");
}

#[test]
fn wants_read_stops_a_reader_that_outruns_the_application() {
    let mut pair = Pair::new();
    assert!(pair.server.wants_read());
    for _ in 0..300 {
        pair.client.send(Message::binary(vec![0u8; 1024])).unwrap();
    }
    pair.transfer(Role::Client);
    assert!(!pair.server.wants_read(), "300 KiB undecoded: the application must read first");
    assert_eq!(pair.drain(Role::Server).len(), 300);
    assert!(pair.server.wants_read());
}

#[test]
fn wants_read_while_only_more_bytes_complete_a_message() {
    let mut pair = Pair::new();
    pair.client.send(Message::binary(vec![7u8; 512 * 1024])).unwrap();
    let wire = transmitted(&mut pair.client);
    pair.server.receive(&wire[..400 * 1024]);
    assert!(!pair.server.wants_read(), "not asked yet");
    assert_eq!(pair.server.next_message(), Ok(None));
    assert!(pair.server.wants_read(), "the rest of the frame is needed");
    pair.server.receive(&wire[400 * 1024..]);
    assert!(
        matches!(pair.server.next_message(), Ok(Some(Message::Binary(b))) if b.len() == 512 * 1024)
    );
}
