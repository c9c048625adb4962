//! Slow clients: connections that trickle a request head byte by byte must neither delay other
//! clients nor live past the header-read timeout (`servers { timeouts { read_header 1s } }`),
//! and an idle keep-alive connection is closed at the idle timeout.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::client::ClientStream;
use crate::support::origin::Origin;
use crate::support::{per_driver, Proxy};

const SLOW: usize = 200;

per_driver! {
    fn two_hundred_trickling_clients_neither_delay_others_nor_outlive_the_header_timeout(setup) {
        let origin = Origin::start("o");
        let proxy = Proxy::start(
            &format!(
                "{{\n\tservers {{\n\t\ttimeouts {{\n\t\t\tread_header 1s\n\t\t}}\n\t}}\n}}\n\n$SITE {{\n\treverse_proxy {}\n}}\n",
                origin.addr
            ),
            setup,
        );
        let started = Instant::now();
        let mut slow: Vec<ClientStream> = (0..SLOW).map(|_| proxy.stream()).collect();
        for s in &mut slow {
            s.write_all(b"GET /slow HTTP/1.1\r\nHo").unwrap();
        }
        // The proxy's close is watched for on the TCP connection underneath (on the TLS leg an
        // alert may come first), so that the trickler can own the client streams.
        let mut watched: Vec<TcpStream> = slow.iter().map(|s| s.tcp().try_clone().unwrap()).collect();
        // TLS handshakes take a moment each: the last header timer starts this much later.
        let all_open = Instant::now();

        // A trickler thread sends one more header byte on each connection every 100 ms (on the
        // TLS leg, a record per byte), never finishing a head, until the proxy closes the
        // connection.
        let stop = Arc::new(AtomicBool::new(false));
        let trickler = {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut writers: Vec<Option<ClientStream>> = slow.into_iter().map(Some).collect();
                let bytes = b"st: x\r\nX-Slow: ";
                let mut step = 0;
                while !stop.load(Ordering::SeqCst) && step < 300 {
                    for w in writers.iter_mut() {
                        let byte = if step < bytes.len() { bytes[step] } else { b'a' };
                        if w.as_mut().is_some_and(|s| s.write_all(&[byte]).is_err()) {
                            *w = None;
                        }
                    }
                    step += 1;
                    thread::sleep(Duration::from_millis(100));
                }
            })
        };

        // Meanwhile normal clients are served promptly (all within half the header timeout, so
        // that the check for early closes below starts before the timeout would run out).
        let mut worst = Duration::ZERO;
        for i in 0..10 {
            let t = Instant::now();
            let resp = proxy.connect().get(&proxy.host(), &format!("/normal/{i}"));
            assert_eq!(resp.status, 200);
            worst = worst.max(t.elapsed());
            thread::sleep(Duration::from_millis(50));
        }
        assert!(worst < Duration::from_secs(1), "a normal request took {worst:?} among {SLOW} slow clients");

        // Every slow connection is closed once the 1 s header timeout runs out: not before
        // (they were sending all along, and a trickle must not extend the timeout either),
        // and not much after (slack for a loaded machine).
        let deadline = all_open + Duration::from_secs(5);
        let mut open = 0;
        let mut earliest_close: Option<Duration> = None;
        for s in &mut watched {
            let mut buf = [0u8; 1024];
            let mut closed = false;
            loop {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                s.set_read_timeout(Some(deadline - now)).unwrap();
                match std::io::Read::read(s, &mut buf) {
                    // A 408 (or any) response may precede the close.
                    Ok(n) if n > 0 => continue,
                    Ok(_) => {
                        closed = true;
                        break;
                    }
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break,
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
            if closed {
                let at = started.elapsed();
                earliest_close = Some(earliest_close.map_or(at, |e| e.min(at)));
            } else {
                open += 1;
            }
        }
        let took = started.elapsed();
        stop.store(true, Ordering::SeqCst);
        trickler.join().unwrap();
        assert_eq!(open, 0, "{open} of {SLOW} slow connections still open {took:?} after they started");
        assert!(origin.requests_to("/slow").is_empty(), "an incomplete head reached the backend");
        // The first close is only looked for after the normal requests (about half a second), so
        // a close before that shows up here as early as they ended.
        let earliest = earliest_close.expect("no slow connection was closed");
        assert!(earliest >= Duration::from_millis(750), "slow clients closed after {earliest:?}, before the 1 s timeout");
    }
}

per_driver! {
    fn idle_keepalive_connection_is_closed_at_the_idle_timeout(setup) {
        let origin = Origin::start("o");
        let proxy = Proxy::start(
            &format!(
                "{{\n\tservers {{\n\t\ttimeouts {{\n\t\t\tidle 500ms\n\t\t}}\n\t}}\n}}\n\n$SITE {{\n\treverse_proxy {}\n}}\n",
                origin.addr
            ),
            setup,
        );
        let mut conn = proxy.connect();
        assert_eq!(conn.get(&proxy.host(), "/first").status, 200);
        let idle_from = Instant::now();
        let _ = conn.expect_closed(Duration::from_secs(4));
        let idle = idle_from.elapsed();
        assert!(idle >= Duration::from_millis(400), "idle connection closed after only {idle:?}");
        // A connection that keeps working is not closed by the idle timeout: it lives twice as
        // long, with pauses well under it.
        let mut busy = proxy.connect();
        for i in 0..6 {
            assert_eq!(busy.get(&proxy.host(), &format!("/busy/{i}")).status, 200);
            thread::sleep(Duration::from_millis(200));
        }
    }
}
