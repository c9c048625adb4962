//! A slowloris crowd: 1,000 connections trickling request heads (500) and request bodies
//! (500), one byte each every 100 ms, must not delay a normal client's request by more than
//! 50 ms (compared as medians of 20 requests with and without the crowd), on plaintext and
//! TLS. Each trickle is a wake-up, a read and a parse (or a forwarded byte) on a worker; what
//! the test guards is that none of them blocks the worker or grows with the crowd. On TLS each
//! trickled byte is a record of its own (10,000 a second), which is why the test clients'
//! rustls is optimised even in debug builds (Cargo.toml).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::client::ClientStream;
use crate::support::origin::Origin;
use crate::support::{per_driver, Proxy};

const HEAD_TRICKLERS: usize = 500;
const BODY_TRICKLERS: usize = 500;
const ALLOWED_DELAY: Duration = Duration::from_millis(50);

/// Latencies of `n` normal requests, each on a new connection, sorted.
fn normal_requests(proxy: &Proxy, n: usize) -> Vec<Duration> {
    let mut took: Vec<Duration> = (0..n)
        .map(|i| {
            let started = Instant::now();
            let resp = proxy.connect().get(&proxy.host(), &format!("/normal/{i}"));
            assert_eq!(resp.status, 200);
            let t = started.elapsed();
            thread::sleep(Duration::from_millis(20));
            t
        })
        .collect();
    took.sort();
    took
}

per_driver! {
    fn a_thousand_slowloris_connections_delay_a_normal_request_by_less_than_50_ms(setup) {
        let origin = Origin::start("o");
        // Header timeout long enough to outlast the test: the crowd stays the whole time.
        let proxy = Proxy::start(
            &format!(
                "{{\n\tservers {{\n\t\ttimeouts {{\n\t\t\tread_header 60s\n\t\t}}\n\t}}\n}}\n\n$SITE {{\n\treverse_proxy {}\n}}\n",
                origin.addr
            ),
            setup,
        );
        let baseline = normal_requests(&proxy, 20);

        let mut crowd: Vec<ClientStream> = Vec::with_capacity(HEAD_TRICKLERS + BODY_TRICKLERS);
        for _ in 0..HEAD_TRICKLERS {
            let mut s = proxy.stream();
            s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
            crowd.push(s);
        }
        for _ in 0..BODY_TRICKLERS {
            let mut s = proxy.stream();
            let head = format!("POST /sha256 HTTP/1.1\r\nHost: {}\r\nContent-Length: 100000\r\n\r\n", proxy.host());
            s.write_all(head.as_bytes()).unwrap();
            crowd.push(s);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let trickler = {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut sent_rounds = 0u32;
                // A tenth of the crowd every 10 ms, as independent clients would spread out,
                // rather than all 1,000 in one burst.
                let slice = crowd.len().div_ceil(10);
                while !stop.load(Ordering::SeqCst) {
                    for part in crowd.chunks_mut(slice) {
                        for s in part {
                            assert!(s.write_all(b"a").is_ok(), "the proxy closed a trickling connection");
                        }
                        thread::sleep(Duration::from_millis(10));
                    }
                    sent_rounds += 1;
                }
                (crowd, sent_rounds)
            })
        };
        // Let the crowd's trickle reach its steady rate (10,000 bytes a second).
        thread::sleep(Duration::from_millis(500));
        let crowded = normal_requests(&proxy, 20);
        stop.store(true, Ordering::SeqCst);
        let (crowd, rounds) = trickler.join().unwrap();
        assert!(rounds >= 5, "the trickler only sent {rounds} rounds");

        // The median, not the worst: on a shared 2-core machine a single request can lose
        // hundreds of milliseconds to the scheduler with or without the crowd (baselines of
        // 100+ ms worst were seen under load), while a crowd that slowed the workers down
        // would move every request, the median with them.
        let median = |v: &[Duration]| v[v.len() / 2];
        let worst = |v: &[Duration]| v[v.len() - 1];
        let added = median(&crowded).saturating_sub(median(&baseline));
        // The figure the hardening issue asks for, visible with --nocapture.
        eprintln!(
            "slowloris ({setup:?}): median {:?} alone, {:?} with {} trickling connections \
             (worst {:?} / {:?})",
            median(&baseline),
            median(&crowded),
            crowd.len(),
            worst(&baseline),
            worst(&crowded)
        );
        assert!(
            added <= ALLOWED_DELAY,
            "{} slow connections added {added:?} to the median normal request (baseline median \
             {:?}, worst {:?}; crowded median {:?}, worst {:?})",
            crowd.len(),
            median(&baseline),
            worst(&baseline),
            median(&crowded),
            worst(&crowded)
        );
    }
}
