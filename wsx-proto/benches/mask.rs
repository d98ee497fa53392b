//! Masking throughput next to `memcpy` of the same buffer, in the same run.
//!
//! `cargo bench -p wsx-proto --bench mask`: compare `mask/N` with `memcpy/N`; the target is at
//! least half of memcpy's throughput.
#![allow(missing_docs)] // criterion's macros generate undocumented functions

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn mask_vs_memcpy(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask_vs_memcpy");
    for size in [64usize, 1024, 16 * 1024, 1024 * 1024] {
        let src = vec![0x5au8; size];
        let mut dst = vec![0u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("memcpy", size), &size, |b, _| {
            b.iter(|| dst.copy_from_slice(black_box(&src)))
        });
        group.bench_with_input(BenchmarkId::new("mask", size), &size, |b, _| {
            b.iter(|| wsx_proto::apply_mask(black_box([1, 2, 3, 4]), black_box(&mut dst)))
        });
        // Unaligned start, odd length: the word loop must not depend on alignment.
        group.bench_with_input(BenchmarkId::new("mask_unaligned", size), &size, |b, _| {
            b.iter(|| wsx_proto::apply_mask(black_box([1, 2, 3, 4]), black_box(&mut dst[1..])))
        });
    }
    group.finish();
}

criterion_group!(benches, mask_vs_memcpy);
criterion_main!(benches);
