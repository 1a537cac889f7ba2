//! Fast deterministic generators: everything the simulator makes up derives from (seed, key).

/// One round of SplitMix64: a strong 64-bit mixer.
#[must_use]
pub fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Mixes two values into one well-distributed seed.
#[must_use]
pub fn mix(a: u64, b: u64) -> u64 {
    splitmix(a ^ splitmix(b))
}

/// A small sequential generator (SplitMix64 stream).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix(self.0)
    }

    /// A value in `0..n` (`n` > 0; returns 0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// An index in `0..n`.
    pub fn index(&mut self, n: usize) -> usize {
        usize::try_from(self.below(n as u64)).unwrap_or(0)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Picks one element of a non-empty slice (the first when empty is impossible).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    /// Fills `out` with random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Writes the bytes of a seekable pseudo-random stream into `out`, starting at `offset`.
///
/// Byte `i` of the stream only depends on `(seed, i)`, so any range can be produced without
/// producing what comes before it.
pub fn stream_bytes(seed: u64, offset: u64, out: &mut [u8]) {
    let mut pos = offset;
    let mut i = 0;
    while i < out.len() {
        let word = splitmix(seed ^ (pos / 8).wrapping_mul(0xA24B_AED4_963E_E407)).to_le_bytes();
        let start = usize::try_from(pos % 8).unwrap_or(0);
        let n = (8 - start).min(out.len() - i);
        out[i..i + n].copy_from_slice(&word[start..start + n]);
        i += n;
        pos += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_is_seekable() {
        let mut whole = vec![0u8; 100];
        stream_bytes(7, 0, &mut whole);
        let mut part = vec![0u8; 37];
        stream_bytes(7, 13, &mut part);
        assert_eq!(&whole[13..50], &part[..]);
        let mut other = vec![0u8; 100];
        stream_bytes(8, 0, &mut other);
        assert_ne!(whole, other);
    }
}
