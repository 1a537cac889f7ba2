//! Content-defined chunking (FastCDC with normalised chunking and a gear hash).
//!
//! A stream is cut where the rolling gear hash of the last bytes matches a mask, so an insertion
//! moves only the boundaries near it and identical regions of different streams give identical
//! chunks. Streams no longer than [`ChunkParams::single_blob_limit`] are one chunk.

use std::io::{self, Read};

/// Sizes of the chunker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkParams {
    /// No chunk is shorter than this (except the last one of a stream).
    pub min: usize,
    /// The average chunk size aimed at (a power of two).
    pub avg: usize,
    /// No chunk is longer than this.
    pub max: usize,
    /// Streams up to this length are stored as one blob without chunking.
    pub single_blob_limit: usize,
}

impl ChunkParams {
    /// The repository's default: 256 KiB … 1 MiB average … 4 MiB; streams up to 1 MiB whole.
    pub const DEFAULT: Self = Self {
        min: 256 * 1024,
        avg: 1024 * 1024,
        max: 4 * 1024 * 1024,
        single_blob_limit: 1024 * 1024,
    };

    fn masks(&self) -> (u64, u64) {
        let bits = usize::BITS - self.avg.max(2).leading_zeros() - 1;
        // Normalised chunking (level 2): harder to cut before the average, easier after it.
        let hard = top_bits(bits + 2);
        let easy = top_bits(bits.saturating_sub(2).max(1));
        (hard, easy)
    }
}

impl Default for ChunkParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

fn top_bits(n: u32) -> u64 {
    let n = n.min(63);
    ((1u64 << n) - 1) << (64 - n)
}

const fn gear_table() -> [u64; 256] {
    // SplitMix64 from a fixed seed: a fixed, well-mixed table (part of the repository format).
    let mut t = [0u64; 256];
    let mut state: u64 = 0x6261_636b_686f_6d65;
    let mut i = 0;
    while i < 256 {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        t[i] = z ^ (z >> 31);
        i += 1;
    }
    t
}

static GEAR: [u64; 256] = gear_table();

/// Length of the first chunk of `data` (`data` is everything still to be chunked, or at least
/// `params.max` bytes of it).
#[must_use]
pub fn cut_point(data: &[u8], params: &ChunkParams) -> usize {
    let n = data.len();
    if n <= params.min {
        return n;
    }
    let end = n.min(params.max);
    let normal = params.avg.min(end);
    let (hard, easy) = params.masks();
    let mut h: u64 = 0;
    let mut i = params.min;
    while i < normal {
        h = (h << 1).wrapping_add(GEAR[usize::from(data[i])]);
        if h & hard == 0 {
            return i + 1;
        }
        i += 1;
    }
    while i < end {
        h = (h << 1).wrapping_add(GEAR[usize::from(data[i])]);
        if h & easy == 0 {
            return i + 1;
        }
        i += 1;
    }
    end
}

/// Splits a stream into chunks with bounded memory (about `2 × params.max`).
pub struct Chunker<R> {
    reader: R,
    params: ChunkParams,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    first: bool,
}

impl<R: Read> Chunker<R> {
    /// A chunker over `reader`.
    pub fn new(reader: R, params: ChunkParams) -> Self {
        Self::with_buffer(reader, params, Vec::new())
    }

    /// A chunker that reuses `buf` (see [`Chunker::into_buffer`]) instead of allocating.
    pub fn with_buffer(reader: R, params: ChunkParams, mut buf: Vec<u8>) -> Self {
        let cap = params.max.max(params.single_blob_limit) + 1;
        buf.resize(cap, 0);
        Self {
            reader,
            params,
            buf,
            start: 0,
            end: 0,
            eof: false,
            first: true,
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while !self.eof && self.end < self.buf.len() {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Gives the buffer back for reuse.
    #[must_use]
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    /// The next chunk, or `None` at the end of the stream. An empty stream gives one empty chunk.
    pub fn next_chunk(&mut self) -> io::Result<Option<&[u8]>> {
        if self.end - self.start < self.buf.len() && !self.eof {
            self.fill()?;
        }
        let avail = self.end - self.start;
        if avail == 0 {
            if self.first {
                self.first = false;
                return Ok(Some(&self.buf[0..0]));
            }
            return Ok(None);
        }
        let len = if self.first && self.eof && avail <= self.params.single_blob_limit {
            avail
        } else {
            cut_point(&self.buf[self.start..self.end], &self.params)
        };
        self.first = false;
        let s = self.start;
        self.start += len;
        Ok(Some(&self.buf[s..s + len]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SMALL: ChunkParams = ChunkParams {
        min: 64,
        avg: 256,
        max: 1024,
        single_blob_limit: 128,
    };

    fn chunks(data: &[u8], p: ChunkParams) -> Vec<Vec<u8>> {
        let mut c = Chunker::new(data, p);
        let mut out = Vec::new();
        while let Some(x) = c.next_chunk().unwrap() {
            out.push(x.to_vec());
        }
        out
    }

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn default_params_give_about_one_mib_chunks() {
        let data = pseudo_random(24 << 20, 7);
        let c = chunks(&data, ChunkParams::DEFAULT);
        let avg = data.len() / c.len();
        assert!(c.len() > 8, "{} chunks", c.len());
        assert!((512 << 10..2 << 20).contains(&avg), "average {avg}");
        assert!(c.iter().all(|x| x.len() <= 4 << 20));
    }

    #[test]
    fn empty_and_small_streams_are_one_chunk() {
        assert_eq!(chunks(b"", SMALL), vec![Vec::<u8>::new()]);
        assert_eq!(chunks(&[5; 100], SMALL).len(), 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn concatenated_chunks_equal_input(len in 0usize..20_000, seed in any::<u64>()) {
            let data = pseudo_random(len, seed | 1);
            let c = chunks(&data, SMALL);
            prop_assert_eq!(c.concat(), data.clone());
            for (i, x) in c.iter().enumerate() {
                prop_assert!(x.len() <= SMALL.max);
                if i + 1 < c.len() {
                    prop_assert!(x.len() >= SMALL.min);
                }
            }
        }

        #[test]
        fn insertion_shifts_only_nearby_boundaries(
            seed in any::<u64>(),
            at in 0usize..16_000,
            insert in proptest::collection::vec(any::<u8>(), 1..200),
        ) {
            let data = pseudo_random(32_000, seed | 1);
            let mut changed = data[..at].to_vec();
            changed.extend_from_slice(&insert);
            changed.extend_from_slice(&data[at..]);
            let a = chunks(&data, SMALL);
            let b = chunks(&changed, SMALL);
            // Chunks that end before the insertion are identical.
            let mut pos = 0;
            for (x, y) in a.iter().zip(&b) {
                if pos + x.len() >= at { break; }
                prop_assert_eq!(x, y);
                pos += x.len();
            }
            // Boundaries well after the insertion are the same, shifted by its length.
            let ends = |c: &[Vec<u8>], shift: usize| {
                let mut p = 0;
                c.iter().map(|x| { p += x.len(); p.wrapping_sub(shift) }).collect::<Vec<_>>()
            };
            let ea: std::collections::HashSet<usize> = ends(&a, 0).into_iter().filter(|&e| e > at + 4 * SMALL.max).collect();
            let eb: std::collections::HashSet<usize> = ends(&b, insert.len()).into_iter().filter(|&e| e > at + 4 * SMALL.max && e < data.len()).collect();
            let common = ea.intersection(&eb).count();
            prop_assert!(ea.is_empty() || common * 10 >= ea.len() * 8, "{} of {} boundaries kept", common, ea.len());
        }
    }
}
