//! [`PacedStreams`]: many live WebSockets through the proxy, each sending a frame at a steady
//! pace and checking its echo byte for byte, the way audio clients keep a voice front busy.
//! The reload and graceful-stop tests run them across the events they test and then read
//! the tally: frames lost, sockets closed, the longest stall of a round trip.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tungstenite::{Message, WebSocket};

use super::client::ClientStream;
use super::proxy::Proxy;
use super::ws::ws_connect;

/// What the streams saw, summed over every socket.
#[derive(Debug, Default)]
pub struct Tally {
    pub sent: usize,
    pub echoed: usize,
    /// The first few things that went wrong (a closed socket, a wrong echo).
    pub errors: Vec<String>,
    /// The longest time one frame took to come back.
    pub longest_round_trip: Duration,
}

pub struct PacedStreams {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Tally>>,
}

/// Bytes of each frame: 10 ms of 8 kHz 16-bit audio.
const FRAME_BYTES: usize = 160;

impl PacedStreams {
    /// Open `streams` WebSockets to `path` (all open before any frame is sent), spread over
    /// `threads` client threads, each socket sending one frame every `every`.
    pub fn start(proxy: &Proxy, streams: usize, threads: usize, every: Duration) -> PacedStreams {
        let connect =
            |id: usize| ws_connect(proxy.stream(), &proxy.host(), &format!("/stream/{id}"));
        Self::start_with(connect, streams, threads, every)
    }

    /// As [`PacedStreams::start`], with sockets from `connect(id)`.
    pub fn start_with(
        mut connect: impl FnMut(usize) -> WebSocket<ClientStream>,
        streams: usize,
        threads: usize,
        every: Duration,
    ) -> PacedStreams {
        let stop = Arc::new(AtomicBool::new(false));
        let mut groups: Vec<Vec<(usize, WebSocket<ClientStream>)>> =
            (0..threads).map(|_| Vec::new()).collect();
        for id in 0..streams {
            groups[id % threads].push((id, connect(id)));
        }
        let started = Arc::new(Barrier::new(threads));
        let threads = groups
            .into_iter()
            .map(|group| {
                let (stop, started) = (stop.clone(), started.clone());
                thread::spawn(move || run_group(group, every, &stop, &started))
            })
            .collect();
        PacedStreams { stop, threads }
    }

    /// Stop sending, close every socket cleanly, and sum what was seen.
    pub fn stop(self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        let mut total = Tally::default();
        for thread in self.threads {
            let tally = thread.join().expect("a stream thread panicked");
            total.sent += tally.sent;
            total.echoed += tally.echoed;
            total.longest_round_trip = total.longest_round_trip.max(tally.longest_round_trip);
            total.errors.extend(tally.errors.into_iter().take(5));
        }
        total
    }
}

fn frame(id: usize, seq: usize) -> Vec<u8> {
    let mut bytes = vec![(id % 251) as u8; FRAME_BYTES];
    bytes[..8].copy_from_slice(&(id as u32).to_be_bytes().repeat(2));
    bytes[8..16].copy_from_slice(&(seq as u64).to_be_bytes());
    bytes
}

fn run_group(
    mut group: Vec<(usize, WebSocket<ClientStream>)>,
    every: Duration,
    stop: &AtomicBool,
    started: &Barrier,
) -> Tally {
    let mut tally = Tally::default();
    let mut alive = vec![true; group.len()];
    started.wait();
    let mut seq = 0;
    let mut next = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let sent_at = Instant::now();
        for (k, (id, ws)) in group.iter_mut().enumerate() {
            if !alive[k] {
                continue;
            }
            match ws.send(Message::Binary(frame(*id, seq))) {
                Ok(()) => tally.sent += 1,
                Err(e) => {
                    alive[k] = false;
                    tally.errors.push(format!("stream {id}: send {seq}: {e}"));
                }
            }
        }
        for (k, (id, ws)) in group.iter_mut().enumerate() {
            if !alive[k] {
                continue;
            }
            match next_data(ws) {
                Ok(Message::Binary(got)) if got == frame(*id, seq) => tally.echoed += 1,
                Ok(other) => {
                    alive[k] = false;
                    tally.errors.push(format!("stream {id}: frame {seq} came back as {other:?}"));
                }
                Err(e) => {
                    alive[k] = false;
                    tally.errors.push(format!("stream {id}: read {seq}: {e}"));
                }
            }
        }
        tally.longest_round_trip = tally.longest_round_trip.max(sent_at.elapsed());
        seq += 1;
        next += every;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
    }
    for (k, (_, ws)) in group.iter_mut().enumerate() {
        if alive[k] {
            let _ = ws.close(None);
            let _ = ws.flush();
        }
    }
    tally
}

/// The next data frame (control frames skipped).
fn next_data(ws: &mut WebSocket<ClientStream>) -> Result<Message, String> {
    loop {
        let msg = ws.read().map_err(|e| e.to_string())?;
        if matches!(msg, Message::Text(_) | Message::Binary(_) | Message::Close(_)) {
            return Ok(msg);
        }
    }
}
