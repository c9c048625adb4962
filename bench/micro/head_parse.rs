//! Question: how long does ringproxy take to turn a typical request head into a validated
//! `RequestHead`, and how much of that is httparse itself versus our validation (framing,
//! Host, path normalisation, the owned strings)? Run: `cargo bench --bench head_parse`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringproxy::http::head::{parse_request, parse_response, Method};

const BROWSER_GET: &[u8] = b"GET /api/auth/login?next=%2Fdashboard HTTP/1.1\r\n\
Host: app.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Connection: keep-alive\r\n\
Cookie: session=4f2a9c1e7b3d4e5f8a9b0c1d2e3f4a5b; theme=dark\r\n\
Upgrade-Insecure-Requests: 1\r\n\
Sec-Fetch-Dest: document\r\n\
Sec-Fetch-Mode: navigate\r\n\
Sec-Fetch-Site: same-origin\r\n\r\n";

const WEBSOCKET: &[u8] = b"GET /ws/audio HTTP/1.1\r\nHost: voice.example.com\r\n\
Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: https://voice.example.com\r\n\r\n";

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
Content-Length: 1234\r\nCache-Control: no-store\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\
Vary: Accept-Encoding\r\n\r\n";

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("head_parse");
    group.throughput(Throughput::Bytes(BROWSER_GET.len() as u64));
    group.bench_function("httparse_only/browser_get", |b| {
        b.iter(|| {
            let mut slots = [httparse::EMPTY_HEADER; 128];
            let mut req = httparse::Request::new(&mut slots);
            black_box(req.parse(black_box(BROWSER_GET)).is_ok())
        })
    });
    group.bench_function("parse_request/browser_get", |b| {
        b.iter(|| black_box(parse_request(black_box(BROWSER_GET), 65536)))
    });
    group.throughput(Throughput::Bytes(WEBSOCKET.len() as u64));
    group.bench_function("parse_request/websocket_upgrade", |b| {
        b.iter(|| black_box(parse_request(black_box(WEBSOCKET), 65536)))
    });
    group.throughput(Throughput::Bytes(RESPONSE.len() as u64));
    group.bench_function("parse_response/json_200", |b| {
        b.iter(|| black_box(parse_response(black_box(RESPONSE), Method::Get, 65536)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
