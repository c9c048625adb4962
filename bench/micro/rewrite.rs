//! Question: how long does re-serializing a request head for the upstream and a response head
//! for the client take (hop-by-hop filtering, X-Forwarded-*, header_up/header_down ops, the
//! `header` directive's HSTS block, the head of a response `encode` compresses) when the
//! output buffer is reused, as the connection driver does? Run:
//! `cargo bench --bench rewrite`.

#![allow(clippy::unwrap_used, reason = "a test or benchmark tool fails by panicking")]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use ringproxy::config::{Coding, HeaderOp, Placeholder, ResponseHeaders, Template, TemplatePart};
use ringproxy::http::encode::Reencoding;
use ringproxy::http::head::{parse_request, parse_response};
use ringproxy::http::header_ops::{HeaderMiddleware, ResponseOps};
use ringproxy::http::request::Request;
use ringproxy::http::rewrite::{
    write_encoded_response_head, write_request_head, write_response_head, write_response_head_with,
};
use ringproxy::http::template::ForwardContext;

const REQUEST: &[u8] = b"POST /api/auth/login HTTP/1.1\r\n\
Host: app.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: application/json\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Connection: keep-alive\r\n\
Content-Type: application/json\r\n\
Content-Length: 48\r\n\
Cookie: session=4f2a9c1e7b3d4e5f8a9b0c1d2e3f4a5b\r\n\
X-Forwarded-For: 203.0.113.9\r\n\r\n";

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
Content-Length: 1234\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
Server: gunicorn\r\nSet-Cookie: session=abc; HttpOnly\r\n\r\n";

/// A response `encode` compresses: its length, ranges and strong ETag change with the coding.
const ENCODED: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
Content-Length: 1234\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
ETag: \"33a64df551425fcc55e4d42a148795d9f25f89d4\"\r\nAccept-Ranges: bytes\r\n\
Server: gunicorn\r\nSet-Cookie: session=abc; HttpOnly\r\n\r\n";

fn bench(c: &mut Criterion) {
    let head = parse_request(REQUEST, 65536).unwrap().unwrap();
    let response = parse_response(RESPONSE, head.method, 65536).unwrap().unwrap();
    let encoded = parse_response(ENCODED, head.method, 65536).unwrap().unwrap();
    let request = Request::new(head, REQUEST.to_vec());
    let ctx = ForwardContext {
        request: &request,
        client_ip: "192.0.2.7".parse().unwrap(),
        client_port: 50000,
        trusted_proxy: false,
        scheme: "https",
        upstream_hostport: "localhost:3001",
        strip_prefixes: &[],
    };
    let header_up = vec![HeaderOp::Set {
        name: "X-Real-IP".into(),
        value: Template { parts: vec![TemplatePart::Placeholder(Placeholder::RemoteHost)] },
    }];
    let header_down = vec![HeaderOp::Remove { name: "Server".into() }];
    let literal = |s: &str| Template { parts: vec![TemplatePart::Literal(s.into())] };
    // docs/configuration.md's HSTS block, deferred as a whole because it deletes.
    let hsts = ResponseHeaders {
        immediate: Vec::new(),
        deferred: vec![
            HeaderOp::Set {
                name: "Strict-Transport-Security".into(),
                value: literal("max-age=31536000; includeSubDomains"),
            },
            HeaderOp::Set { name: "X-Content-Type-Options".into(), value: literal("nosniff") },
            HeaderOp::Remove { name: "Server".into() },
        ],
    };
    let gzip = Reencoding { coding: Coding::Gzip, chunked: true };
    let mut out = Vec::with_capacity(4096);

    let mut group = c.benchmark_group("rewrite");
    group.bench_function("request_head/no_ops", |b| {
        b.iter(|| {
            out.clear();
            write_request_head(&ctx, &[], &mut out);
            black_box(out.len())
        })
    });
    group.bench_function("request_head/header_up", |b| {
        b.iter(|| {
            out.clear();
            write_request_head(&ctx, &header_up, &mut out);
            black_box(out.len())
        })
    });
    group.bench_function("response_head/no_ops", |b| {
        b.iter(|| {
            out.clear();
            write_response_head(RESPONSE, &response, &[], &ctx, false, &mut out);
            black_box(out.len())
        })
    });
    group.bench_function("response_head/header_hsts_block", |b| {
        b.iter(|| {
            // Gathered per request, as the connection driver does.
            let headers = HeaderMiddleware::gather(std::iter::once(&hsts));
            let ops = ResponseOps {
                immediate: &headers.immediate,
                down: &[],
                deferred: &headers.deferred,
            };
            out.clear();
            write_response_head_with(RESPONSE, &response, ops, &ctx, false, &mut out);
            black_box(out.len())
        })
    });
    group.bench_function("response_head/header_down", |b| {
        b.iter(|| {
            out.clear();
            write_response_head(RESPONSE, &response, &header_down, &ctx, false, &mut out);
            black_box(out.len())
        })
    });
    group.bench_function("response_head/encoded", |b| {
        b.iter(|| {
            out.clear();
            let ops = ResponseOps::NONE;
            write_encoded_response_head(ENCODED, &encoded, ops, &ctx, false, gzip, &mut out);
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
