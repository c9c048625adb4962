//! Connection caps (`limits { max_connections  max_connections_per_ip }`): whether a new client
//! connection may be served, decided at accept, before a byte is read.
//!
//! The counts are shared by all workers (a cap is for the whole proxy), so they are atomics
//! and, per IP, a sharded map: touched once when a connection opens and once when it closes,
//! never per request or per frame.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::config::limits::ConnectionCaps;

/// Shards of the per-IP map: enough that two workers accepting at once rarely meet.
const SHARDS: usize = 32;

/// No cap configured.
const UNCAPPED: usize = usize::MAX;

#[derive(Debug)]
pub struct Admission {
    max_total: AtomicUsize,
    max_per_ip: AtomicUsize,
    total: AtomicUsize,
    per_ip: [Mutex<HashMap<IpAddr, usize>>; SHARDS],
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MaxConnections,
    MaxConnectionsPerIp,
}

/// An admitted connection's place in the counts; released on drop.
#[derive(Debug)]
pub struct Admitted {
    admission: Arc<Admission>,
    /// Set when the connection was counted for its IP (a per-IP cap was in force).
    ip: Option<IpAddr>,
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            max_total: AtomicUsize::new(UNCAPPED),
            max_per_ip: AtomicUsize::new(UNCAPPED),
            total: AtomicUsize::new(0),
            per_ip: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        }
    }
}

impl Admission {
    /// Apply a config's caps (at start and on every reload). Connections already open stay.
    pub fn set(&self, caps: ConnectionCaps) {
        self.max_total.store(caps.max_connections.unwrap_or(UNCAPPED), Ordering::Relaxed);
        self.max_per_ip.store(caps.max_connections_per_ip.unwrap_or(UNCAPPED), Ordering::Relaxed);
    }

    /// Count a new connection from `ip`, or say which cap it would break.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refusal> {
        let mut admitted = self.admit_unplaced()?;
        admitted.place(ip)?;
        Ok(admitted)
    }

    /// Count a new connection under the total cap only, before its address is known (a PROXY
    /// header still to be read): it holds its place in the total while it waits, and
    /// [`Admitted::place`] counts it for its address afterwards.
    pub fn admit_unplaced(self: &Arc<Self>) -> Result<Admitted, Refusal> {
        let max_total = self.max_total.load(Ordering::Relaxed);
        if self.total.fetch_add(1, Ordering::AcqRel) >= max_total {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::MaxConnections);
        }
        Ok(Admitted { admission: self.clone(), ip: None })
    }

    fn shard(&self, ip: IpAddr) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        let hash = match ip {
            IpAddr::V4(v4) => u32::from(v4) as usize,
            IpAddr::V6(v6) => (u128::from(v6) ^ (u128::from(v6) >> 64)) as usize,
        };
        // The maps hold plain counts: a panic elsewhere cannot leave one half-updated.
        self.per_ip[hash.wrapping_mul(0x9E37_79B9) % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Client connections open now (for tests and logs).
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}

/// A dual-stack listener reports IPv4 clients as `::ffff:a.b.c.d`; count them as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

impl Admitted {
    /// Count the connection for `ip` under the per-IP cap (once; a second call is ignored).
    /// On refusal the connection keeps only its place in the total, which dropping releases.
    pub fn place(&mut self, ip: IpAddr) -> Result<(), Refusal> {
        let max_per_ip = self.admission.max_per_ip.load(Ordering::Relaxed);
        if max_per_ip == UNCAPPED || self.ip.is_some() {
            return Ok(());
        }
        let ip = canonical(ip);
        let mut shard = self.admission.shard(ip);
        let count = shard.entry(ip).or_insert(0);
        if *count >= max_per_ip {
            // A cap of 0 refuses everyone: leave no empty entry behind for the address.
            if *count == 0 {
                shard.remove(&ip);
            }
            return Err(Refusal::MaxConnectionsPerIp);
        }
        *count += 1;
        drop(shard);
        self.ip = Some(ip);
        Ok(())
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.admission.total.fetch_sub(1, Ordering::AcqRel);
        if let Some(ip) = self.ip {
            let mut shard = self.admission.shard(ip);
            if let Some(count) = shard.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    shard.remove(&ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_total_cap_refuses_the_next_connection_until_one_closes() {
        let admission = Arc::new(Admission::default());
        admission.set(ConnectionCaps { max_connections: Some(2), max_connections_per_ip: None });
        let a = admission.admit(ip("10.0.0.1")).unwrap();
        let _b = admission.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(admission.admit(ip("10.0.0.3")).unwrap_err(), Refusal::MaxConnections);
        drop(a);
        assert!(admission.admit(ip("10.0.0.3")).is_ok());
    }

    #[test]
    fn the_per_ip_cap_counts_mapped_ipv4_as_ipv4_and_forgets_closed_addresses() {
        let admission = Arc::new(Admission::default());
        admission.set(ConnectionCaps { max_connections: None, max_connections_per_ip: Some(1) });
        let first = admission.admit(ip("192.0.2.7")).unwrap();
        assert_eq!(
            admission.admit(ip("::ffff:192.0.2.7")).unwrap_err(),
            Refusal::MaxConnectionsPerIp
        );
        let _other = admission.admit(ip("192.0.2.8")).unwrap();
        assert_eq!(admission.open(), 2);
        drop(first);
        assert!(admission.per_ip.iter().all(|s| !s.lock().unwrap().contains_key(&ip("192.0.2.7"))));
        assert!(admission.admit(ip("192.0.2.7")).is_ok());
    }

    #[test]
    fn an_unplaced_connection_holds_its_total_place_and_is_capped_by_the_address_it_gets() {
        let admission = Arc::new(Admission::default());
        admission.set(ConnectionCaps { max_connections: Some(2), max_connections_per_ip: Some(1) });
        let mut waiting = admission.admit_unplaced().unwrap();
        let _other = admission.admit(ip("192.0.2.1")).unwrap();
        // The one waiting for its header still counts against the total.
        assert_eq!(admission.admit_unplaced().unwrap_err(), Refusal::MaxConnections);
        assert_eq!(waiting.place(ip("192.0.2.1")).unwrap_err(), Refusal::MaxConnectionsPerIp);
        assert_eq!(admission.open(), 2);
        drop(waiting);
        assert_eq!(admission.open(), 1);
        let mut placed = admission.admit_unplaced().unwrap();
        placed.place(ip("192.0.2.2")).unwrap();
        assert_eq!(admission.admit(ip("192.0.2.2")).unwrap_err(), Refusal::MaxConnections);
        drop(placed);
        assert!(admission.admit(ip("192.0.2.2")).is_ok());
    }

    #[test]
    fn without_caps_everything_is_admitted_and_counted() {
        let admission = Arc::new(Admission::default());
        let held: Vec<_> = (0..1000).map(|_| admission.admit(ip("10.1.1.1")).unwrap()).collect();
        assert_eq!(admission.open(), 1000);
        drop(held);
        assert_eq!(admission.open(), 0);
    }
}
