//! Deterministic payloads and their checksums.
//!
//! Bodies are generated from their offset rather than stored, so a 50 MB download needs no
//! fixture and a misplaced, dropped or duplicated block changes the SHA-256. The generator never
//! repeats within 16 GiB (a counter, scrambled so that bytes are not mostly zero).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use sha2::{Digest, Sha256};

/// Pattern blocks are this long; block `k` is a random base block rotated by `k * 7919`.
const BLOCK: usize = 1 << 20;

/// The random base block, stored twice in a row so that any rotation is one contiguous slice.
fn base() -> &'static [u8] {
    static BASE: OnceLock<Vec<u8>> = OnceLock::new();
    BASE.get_or_init(|| {
        let mut block = Rng::new(0x0123_4567_89ab_cdef).bytes(BLOCK);
        block.extend_from_within(..);
        block
    })
}

/// Fill `buf` with the pattern bytes that start at stream offset `offset`.
///
/// Built from `memcpy`s of a random block: tests run unoptimised, and a 50 MB body is generated
/// several times per test. Rotations differ for every block below 2^20 blocks (7919 is odd),
/// so no two blocks of a body under 1 TiB are equal.
pub fn fill(offset: u64, buf: &mut [u8]) {
    let base = base();
    let mut done = 0;
    while done < buf.len() {
        let pos = offset + done as u64;
        let within = (pos % BLOCK as u64) as usize;
        let rotation = ((pos / BLOCK as u64).wrapping_mul(7919) % BLOCK as u64) as usize;
        let n = (BLOCK - within).min(buf.len() - done);
        let start = rotation + within;
        buf[done..done + n].copy_from_slice(&base[start..start + n]);
        done += n;
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

#[cfg(test)]
mod tests {
    #[test]
    fn pattern_is_the_same_whatever_the_offset_and_length_of_each_fill() {
        let whole = super::pattern(3 * super::BLOCK + 100);
        for start in (0..9).chain([super::BLOCK - 3, 2 * super::BLOCK - 1]) {
            for len in [0, 1, 2, 3, 4, 5, 7, 13, 100] {
                let mut part = vec![0; len];
                super::fill(start as u64, &mut part);
                assert_eq!(part, whole[start..start + len], "offset {start} len {len}");
            }
        }
        let mut part = vec![0; super::BLOCK + 10];
        super::fill(super::BLOCK as u64 - 5, &mut part);
        assert_eq!(part, whole[super::BLOCK - 5..2 * super::BLOCK + 5]);
        assert_ne!(whole[..super::BLOCK], whole[super::BLOCK..2 * super::BLOCK], "blocks differ");
    }
}
