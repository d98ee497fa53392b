//! Frame-header parsing and message decoding, with UTF-8 validation measured against
//! `std::str::from_utf8` and against the same bytes as binary.
//!
//! `cargo bench -p wsx-proto --bench decode`
#![allow(missing_docs)] // criterion's macros generate undocumented functions

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use wsx_proto::{Config, Connection, FrameHeader, Limits, Message, Negotiated, OpCode, Role};

fn header(len: u64, mask: bool) -> Vec<u8> {
    let h = FrameHeader {
        fin: true,
        rsv1: false,
        opcode: OpCode::Binary,
        mask: mask.then_some([1, 2, 3, 4]),
        payload_len: len,
    };
    let mut out = Vec::new();
    h.encode(&mut out);
    out
}

fn frame_header(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_header_decode");
    for (name, len, mask) in
        [("2B", 5, false), ("8B_masked", 300, true), ("14B_masked", 1 << 20, true)]
    {
        let wire = header(len, mask);
        group.bench_function(name, |b| b.iter(|| FrameHeader::decode(black_box(&wire))));
    }
    group.finish();
}

/// A client's wire bytes for `message`, split into fragments of `fragment` bytes.
fn client_wire(payload: &[u8], opcode: OpCode, fragment: usize) -> Vec<u8> {
    let mut client = Connection::new(
        Role::Client,
        &Negotiated::default(),
        Config::default().dangerous_rng_seed([3; 32]),
    );
    let chunks: Vec<&[u8]> = payload.chunks(fragment).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let op = if i == 0 { opcode } else { OpCode::Continuation };
        client
            .send_fragment(op, bytes::Bytes::copy_from_slice(chunk), i + 1 == chunks.len())
            .unwrap();
    }
    let mut wire = Vec::new();
    while let Some(b) = client.next_transmit() {
        wire.extend_from_slice(&b);
    }
    wire
}

fn decode_message(c: &mut Criterion) {
    let size = 1 << 20;
    // Mostly ASCII with some multi-byte characters, as chat text is.
    let unit = "Hello, wörld — κόσμε! ";
    let text = unit.repeat(size / unit.len());
    let text = text.as_bytes();
    let mut group = c.benchmark_group("decode_1MiB");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("std_from_utf8", |b| {
        b.iter(|| std::str::from_utf8(black_box(text)).is_ok())
    });
    let limits = Limits::default().max_message_size(4 << 20);
    for (name, opcode, fragment, read) in [
        ("binary_1_frame", OpCode::Binary, size, 64 * 1024),
        ("text_1_frame", OpCode::Text, size, 64 * 1024),
        ("binary_16KiB_fragments", OpCode::Binary, 16 * 1024, 64 * 1024),
        ("text_16KiB_fragments", OpCode::Text, 16 * 1024, 64 * 1024),
    ] {
        let wire = client_wire(text, opcode, fragment);
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || {
                    Connection::new(
                        Role::Server,
                        &Negotiated::default(),
                        Config::default().limits(limits),
                    )
                },
                |server| {
                    let mut got = None;
                    for chunk in wire.chunks(read) {
                        server.receive(chunk);
                        while let Some(m) = server.next_message().unwrap() {
                            got = Some(m);
                        }
                    }
                    assert!(matches!(got, Some(Message::Text(_) | Message::Binary(_))));
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// What the core does per message of an echo server with one small message in flight: receive
/// a client's 16 B frame, decode it, queue the echo, hand the bytes to the socket.
fn echo_small(c: &mut Criterion) {
    let wire = client_wire(&[7u8; 16], OpCode::Binary, 16);
    let mut server = Connection::new(Role::Server, &Negotiated::default(), Config::default());
    c.bench_function("echo_16B", |b| {
        b.iter(|| {
            server.receive(black_box(&wire));
            let message = server.next_message().unwrap().unwrap();
            server.send(message).unwrap();
            assert_eq!(server.next_message(), Ok(None));
            let out = server.next_transmit().unwrap();
            black_box(out);
        })
    });
}

criterion_group!(benches, frame_header, decode_message, echo_small);
criterion_main!(benches);
