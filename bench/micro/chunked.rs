//! Question: what does tracking chunked framing cost while forwarding a body, for the two
//! shapes that matter (many small chunks, as streamed TTS audio or SSE produce, and large
//! chunks, as uploads produce), when bytes arrive in 16 KiB reads? Run:
//! `cargo bench --bench chunked`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringproxy::http::chunked::ChunkedTracker;

const READ: usize = 16 * 1024;

/// A chunked body of about `total` bytes of data in chunks of `chunk` bytes, with a short
/// extension on every chunk to exercise the line scanner.
fn body(total: usize, chunk: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(total + total / chunk * 16);
    let data = vec![b'x'; chunk];
    for _ in 0..total / chunk {
        out.extend_from_slice(format!("{chunk:x};seq=1\r\n").as_bytes());
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn track(input: &[u8]) -> usize {
    let mut tracker = ChunkedTracker::new();
    let mut total = 0;
    for read in input.chunks(READ) {
        match tracker.advance(read) {
            Ok(progress) => {
                total += progress.consumed;
                if progress.done {
                    break;
                }
            }
            Err(_) => return 0,
        }
    }
    total
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunked");
    for (name, chunk) in [("small_chunks_64B", 64), ("large_chunks_16KiB", 16 * 1024)] {
        let input = body(1 << 20, chunk);
        assert_eq!(track(&input), input.len());
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(name, |b| b.iter(|| black_box(track(black_box(&input)))));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
