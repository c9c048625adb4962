//! Question: how many MB of text can one core compress per second for `encode`, per coding and
//! level, as the proxy feeds its encoder (16 KiB pieces, each ended with a sync flush so nothing
//! waits in the encoder)? And what does the flush after every piece cost against one
//! compression of the whole body? Input: a JSON-like transcript and a minified-JS-like text,
//! 1 MiB each, the kinds of bodies a speech front's client app and API send.
//! Run: `cargo bench --bench encode`; throughput is criterion's `thrpt` (input bytes).

#![allow(clippy::unwrap_used, reason = "a test or benchmark tool fails by panicking")]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringproxy::config::{Coding, Encode};
use ringproxy::http::encode::StreamEncoder;

const BODY: usize = 1 << 20;
const PIECE: usize = 16 * 1024;

fn transcript() -> Vec<u8> {
    let mut out = Vec::with_capacity(BODY + 128);
    let words = ["the", "model", "streams", "audio", "frames", "to", "every", "client", "now"];
    let mut i = 0usize;
    while out.len() < BODY {
        let word = words[(i * 7 + i / 3) % words.len()];
        let line = format!("{{\"t\":{},\"word\":\"{word}\",\"conf\":0.{:03}}},\n", i * 80, i % 997);
        out.extend_from_slice(line.as_bytes());
        i += 1;
    }
    out.truncate(BODY);
    out
}

fn script() -> Vec<u8> {
    let mut out = Vec::with_capacity(BODY + 128);
    let mut i = 0usize;
    while out.len() < BODY {
        let line = format!(
            "function f{i}(a,b){{return a.length>b?g{}(a.slice({}),b-{}):a.map(x=>x*{})}};",
            i % 113,
            i % 17,
            i % 5,
            i % 31
        );
        out.extend_from_slice(line.as_bytes());
        i += 1;
    }
    out.truncate(BODY);
    out
}

fn encoders(c: &mut Criterion) {
    let settings = [
        ("gzip-1", Coding::Gzip, Encode { gzip_level: 1, ..Encode::default() }),
        ("gzip-5", Coding::Gzip, Encode::default()),
        ("zstd-1", Coding::Zstd, Encode { zstd_level: 1, ..Encode::default() }),
        ("zstd-3", Coding::Zstd, Encode::default()),
    ];
    for (name, body) in [("transcript", transcript()), ("script", script())] {
        let mut group = c.benchmark_group(format!("encode/{name}"));
        group.throughput(Throughput::Bytes(BODY as u64));
        group.sample_size(20);
        for (label, coding, encode) in &settings {
            group.bench_with_input(BenchmarkId::new("flushed", label), &body, |b, body| {
                let mut out = Vec::with_capacity(BODY);
                b.iter(|| {
                    out.clear();
                    let mut encoder = StreamEncoder::new(*coding, encode).unwrap();
                    for piece in body.chunks(PIECE) {
                        encoder.encode(piece, &mut out).unwrap();
                    }
                    encoder.finish(&mut out).unwrap();
                    black_box(out.len())
                });
            });
            group.bench_with_input(BenchmarkId::new("whole", label), &body, |b, body| {
                let mut out = Vec::with_capacity(BODY);
                b.iter(|| {
                    out.clear();
                    let mut encoder = StreamEncoder::new(*coding, encode).unwrap();
                    encoder.encode(body, &mut out).unwrap();
                    encoder.finish(&mut out).unwrap();
                    black_box(out.len())
                });
            });
        }
        group.finish();
    }
}

criterion_group!(benches, encoders);
criterion_main!(benches);
