//! Slow clients: connections that trickle a request head byte by byte must neither delay other
//! clients nor live past the header-read timeout (`servers { timeouts { read_header 2s } }`).

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
    fn two_hundred_trickling_clients_neither_delay_others_nor_outlive_the_header_timeout(driver) {
        let origin = Origin::start("o");
        let proxy = Proxy::start(
            &format!(
                "{{\n\tservers {{\n\t\ttimeouts {{\n\t\t\tread_header 2s\n\t\t}}\n\t}}\n}}\n\n:$PORT {{\n\treverse_proxy {}\n}}\n",
                origin.addr
            ),
            driver,
        );
        let started = Instant::now();
        let mut slow: Vec<TcpStream> = (0..SLOW)
            .map(|_| {
                let ClientStream::Plain(s) = proxy.stream();
                s
            })
            .collect();
        for s in &mut slow {
            s.write_all(b"GET /slow HTTP/1.1\r\nHo").unwrap();
        }

        // A trickler thread sends one more header byte on each connection every 100 ms, never
        // finishing a head, until the proxy closes the connection.
        let stop = Arc::new(AtomicBool::new(false));
        let trickler = {
            let stop = stop.clone();
            let writers: Vec<TcpStream> = slow.iter().map(|s| s.try_clone().unwrap()).collect();
            thread::spawn(move || {
                let mut writers: Vec<Option<TcpStream>> = writers.into_iter().map(Some).collect();
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

        // Meanwhile normal clients are served promptly.
        let mut worst = Duration::ZERO;
        for i in 0..10 {
            let t = Instant::now();
            let resp = proxy.connect().get(&proxy.host(), &format!("/normal/{i}"));
            assert_eq!(resp.status, 200);
            worst = worst.max(t.elapsed());
            thread::sleep(Duration::from_millis(100));
        }
        assert!(worst < Duration::from_secs(1), "a normal request took {worst:?} among {SLOW} slow clients");

        // Every slow connection is closed once the 2 s header timeout runs out (allow slack for
        // a loaded machine, but not a second timeout period's worth of it... plus one).
        let deadline = started + Duration::from_secs(6);
        let mut open = 0;
        for s in &mut slow {
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
            if !closed {
                open += 1;
            }
        }
        let took = started.elapsed();
        stop.store(true, Ordering::SeqCst);
        trickler.join().unwrap();
        assert_eq!(open, 0, "{open} of {SLOW} slow connections still open {took:?} after they started");
        assert!(origin.requests_to("/slow").is_empty(), "an incomplete head reached the backend");
        // Closed at the timeout, not before: the earliest close is what timing shows; the normal
        // requests above ran for over a second while all slow connections were still open.
    }
}
