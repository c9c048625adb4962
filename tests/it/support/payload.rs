//! Deterministic payloads and their checksums.
//!
//! Bodies are generated from their offset rather than stored, so a 50 MB download needs no
//! fixture and a misplaced, dropped or duplicated block changes the SHA-256. The generator never
//! repeats within 16 GiB (a counter, scrambled so that bytes are not mostly zero).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use sha2::{Digest, Sha256};

/// Fill `buf` with the pattern bytes that start at stream offset `offset`.
pub fn fill(offset: u64, buf: &mut [u8]) {
    for (i, byte) in buf.iter_mut().enumerate() {
        let pos = offset + i as u64;
        let word = ((pos / 4) as u32).wrapping_mul(0x9E37_79B1) ^ 0x5bd1_e995;
        *byte = word.to_be_bytes()[(pos % 4) as usize];
    }
}

/// The first `len` pattern bytes.
pub fn pattern(len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    fill(0, &mut buf);
    buf
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// SHA-256 of the first `len` pattern bytes, computed once per length for the whole binary.
pub fn pattern_sha256(len: u64) -> String {
    static CACHE: OnceLock<Mutex<HashMap<u64, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(sum) = cache.lock().unwrap().get(&len) {
        return sum.clone();
    }
    let mut hasher = Hasher::default();
    let mut buf = vec![0; 1 << 16];
    let mut offset = 0u64;
    while offset < len {
        let n = buf.len().min((len - offset) as usize);
        fill(offset, &mut buf[..n]);
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
    let sum = hasher.finish();
    cache.lock().unwrap().insert(len, sum.clone());
    sum
}

/// An incremental SHA-256 that also counts bytes.
#[derive(Default)]
pub struct Hasher {
    inner: Sha256,
    pub len: u64,
}

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
        self.len += bytes.len() as u64;
    }

    pub fn finish(self) -> String {
        hex(&self.inner.finalize())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A small deterministic PRNG (xorshift64*) so that message sizes and contents are the same on
/// every run and a failure can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Log-uniform in `lo..=hi`: small and large sizes equally likely per order of magnitude.
    pub fn log_range(&mut self, lo: u64, hi: u64) -> u64 {
        let (l, h) = ((lo as f64).ln(), (hi as f64).ln());
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((l + (h - l) * unit).exp().round() as u64).clamp(lo, hi)
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}
