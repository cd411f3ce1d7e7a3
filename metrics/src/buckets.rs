//! Exponential buckets: the histogram behind a [`Distribution`](crate::Distribution).
//!
//! Bucket `i` of a sign holds magnitudes in `(2^(i/128), 2^((i+1)/128)]`: exactly OpenTelemetry's
//! exponential histogram at scale 7, so OTLP export needs no conversion. A value is placed with
//! a relative error of at most 0.27 % (half a bucket). Unlike an HDR histogram (u64 values only)
//! this takes floats and negatives, and merging two histograms is adding bucket counts, which is
//! exact and order-independent.
//!
//! Storage is lock-free: per sign, one lazily allocated chunk of 128 atomic counts per power of
//! two that is actually used, from 2^-32 to 2^64. Magnitudes below 2^-32 count as zero, above
//! 2^64 go to the top bucket.

use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

/// OTLP exponential histogram scale of the buckets.
pub const SCALE: i32 = 7;
const PER_OCTAVE: i32 = 1 << SCALE;
const MIN_OCTAVE: i32 = -32;
const OCTAVES: usize = 96;
/// Smallest bucket index kept.
pub const MIN_INDEX: i32 = MIN_OCTAVE * PER_OCTAVE;
/// Largest bucket index kept.
pub const MAX_INDEX: i32 = (MIN_OCTAVE + OCTAVES as i32) * PER_OCTAVE - 1;
/// Magnitudes below this count as zero.
pub const ZERO_THRESHOLD: f64 = 1.0 / 4_294_967_296.0;

type Chunk = [AtomicU64; PER_OCTAVE as usize];

/// The bucket index of a finite magnitude `v >= ZERO_THRESHOLD`.
///
/// The octave is the float's exponent; the bucket within it comes from a table on the
/// mantissa's top bits and at most one comparison with the bucket bounds (no `log2`: this
/// runs for every distribution update).
#[inline]
pub fn index_of(v: f64) -> i32 {
    let bits = v.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32 - 1023;
    let mantissa = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    let t = tables();
    let mut k = t.first[((bits >> (52 - CELL_BITS)) & ((1 << CELL_BITS) - 1)) as usize] as usize;
    // A cell is narrower than any bucket: it holds at most one bound.
    while mantissa > t.bounds[k] {
        k += 1;
    }
    (exp * PER_OCTAVE + k as i32 - 1).clamp(MIN_INDEX, MAX_INDEX)
}

/// Mantissa bits that pick a table cell: 1,024 cells, each narrower (1/1024) than the smallest
/// bucket of an octave (2^(1/128) - 1 = 0.0054).
const CELL_BITS: u32 = 10;

struct Tables {
    /// `bounds[k] = 2^(k/128)`, the upper bound of sub-bucket `k - 1` as a mantissa in [1, 2].
    bounds: [f64; PER_OCTAVE as usize + 1],
    /// Per cell, the first `k` whose bound is at least the cell's smallest mantissa.
    first: [u8; 1 << CELL_BITS],
}

fn tables() -> &'static Tables {
    static T: std::sync::OnceLock<Tables> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let mut bounds = [0.0; PER_OCTAVE as usize + 1];
        for (k, b) in bounds.iter_mut().enumerate() {
            *b = lower_bound(k as i32);
        }
        let mut first = [0u8; 1 << CELL_BITS];
        let mut k = 0;
        for (c, f) in first.iter_mut().enumerate() {
            let lo = 1.0 + c as f64 / (1u64 << CELL_BITS) as f64;
            while bounds[k] < lo {
                k += 1;
            }
            *f = k as u8;
        }
        Tables { bounds, first }
    })
}

/// The base of the buckets, `2^(1/128)`.
pub fn base() -> f64 {
    2f64.powf(1.0 / PER_OCTAVE as f64)
}

/// Lower bound (exclusive) of bucket `i`.
pub fn lower_bound(i: i32) -> f64 {
    2f64.powf(i as f64 / PER_OCTAVE as f64)
}

/// The value that stands for bucket `i` in quantile estimates: the point of least relative
/// error within the bucket.
pub fn representative(i: i32) -> f64 {
    2.0 * lower_bound(i + 1) / (1.0 + base())
}

/// Atomic counts for one sign.
pub(crate) struct AtomicBuckets {
    chunks: Box<[AtomicPtr<Chunk>]>,
}

impl Default for AtomicBuckets {
    fn default() -> Self {
        Self {
            chunks: (0..OCTAVES)
                .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                .collect(),
        }
    }
}

impl AtomicBuckets {
    #[inline]
    pub(crate) fn add(&self, index: i32, n: u64) {
        let index = index.clamp(MIN_INDEX, MAX_INDEX);
        let octave = (index.div_euclid(PER_OCTAVE) - MIN_OCTAVE) as usize;
        let sub = index.rem_euclid(PER_OCTAVE) as usize;
        let slot = &self.chunks[octave];
        let mut chunk = slot.load(Ordering::Acquire);
        if chunk.is_null() {
            chunk = Self::install(slot);
        }
        // SAFETY: a non-null pointer in a slot was created by `install` from a Box and is only
        // freed in `Drop`, which has `&mut self`.
        unsafe { (*chunk)[sub].fetch_add(n, Ordering::Relaxed) };
    }

    #[cold]
    fn install(slot: &AtomicPtr<Chunk>) -> *mut Chunk {
        let fresh: Box<Chunk> = Box::new(std::array::from_fn(|_| AtomicU64::new(0)));
        let fresh = Box::into_raw(fresh);
        match slot.compare_exchange(
            std::ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => fresh,
            Err(existing) => {
                // SAFETY: `fresh` was never shared.
                drop(unsafe { Box::from_raw(fresh) });
                existing
            }
        }
    }

    /// Non-zero buckets as (index, count), in ascending index order.
    pub(crate) fn to_sparse(&self) -> Vec<(i32, u64)> {
        self.read_sparse(|c| c.load(Ordering::Relaxed))
    }

    /// Reads and zeroes all buckets.
    pub(crate) fn take_sparse(&self) -> Vec<(i32, u64)> {
        self.read_sparse(|c| c.swap(0, Ordering::Relaxed))
    }

    fn read_sparse(&self, read: impl Fn(&AtomicU64) -> u64) -> Vec<(i32, u64)> {
        let mut out = Vec::new();
        for (o, slot) in self.chunks.iter().enumerate() {
            let chunk = slot.load(Ordering::Acquire);
            if chunk.is_null() {
                continue;
            }
            // SAFETY: see `add`.
            let chunk = unsafe { &*chunk };
            for (s, c) in chunk.iter().enumerate() {
                let n = read(c);
                if n != 0 {
                    out.push(((o as i32 + MIN_OCTAVE) * PER_OCTAVE + s as i32, n));
                }
            }
        }
        out
    }

    /// Bytes held by this store.
    pub(crate) fn heap_bytes(&self) -> usize {
        let used = self
            .chunks
            .iter()
            .filter(|s| !s.load(Ordering::Relaxed).is_null())
            .count();
        self.chunks.len() * std::mem::size_of::<AtomicPtr<Chunk>>()
            + used * std::mem::size_of::<Chunk>()
    }
}

impl Drop for AtomicBuckets {
    fn drop(&mut self) {
        for slot in self.chunks.iter() {
            let p = slot.load(Ordering::Acquire);
            if !p.is_null() {
                // SAFETY: created by `install`, never freed elsewhere, and we have `&mut self`.
                drop(unsafe { Box::from_raw(p) });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_matches_otlp_definition() {
        // OTLP: bucket i holds (base^i, base^(i+1)].
        for v in [
            1e-9, 0.001, 0.5, 1.0, 1.5, 2.0, 3.0, 1000.0, 12345.678, 1e15,
        ] {
            let i = index_of(v);
            let lo = lower_bound(i);
            let hi = lower_bound(i + 1);
            assert!(
                lo < v * (1.0 + 1e-12) && v <= hi * (1.0 + 1e-12),
                "{v}: ({lo}, {hi}]"
            );
            let r = representative(i);
            assert!(((r - v) / v).abs() <= 0.0028, "{v} -> {r}");
        }
        assert_eq!(index_of(1.0), -1);
        assert_eq!(index_of(2.0), PER_OCTAVE - 1);
        assert_eq!(index_of(1e300), MAX_INDEX);
    }

    /// The table lookup places every value as the bounds say: in `(2^(i/128), 2^((i+1)/128)]`
    /// with the bounds as `lower_bound` computes them, also right at and beside each bound.
    #[test]
    fn index_agrees_with_the_bounds_everywhere() {
        let check = |v: f64| {
            let i = index_of(v);
            if i == MIN_INDEX || i == MAX_INDEX {
                return;
            }
            let (exp, sub) = (i.div_euclid(PER_OCTAVE), i.rem_euclid(PER_OCTAVE));
            let scale = 2f64.powi(exp);
            let (lo, hi) = (lower_bound(sub) * scale, lower_bound(sub + 1) * scale);
            assert!(lo < v && v <= hi, "{v:e} -> {i}: ({lo:e}, {hi:e}]");
        };
        for k in 0..=PER_OCTAVE {
            for octave in [-20, -1, 0, 1, 7, 40] {
                let b = lower_bound(k) * 2f64.powi(octave);
                for v in [
                    b,
                    f64::from_bits(b.to_bits() - 1),
                    f64::from_bits(b.to_bits() + 1),
                ] {
                    check(v);
                }
            }
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = f64::from_bits((x >> 12) | (1023u64 << 52)) * 2f64.powi((x % 60) as i32 - 30);
            check(v);
        }
    }

    #[test]
    fn sparse_round_trip() {
        let b = AtomicBuckets::default();
        b.add(index_of(3.0), 2);
        b.add(index_of(0.001), 1);
        b.add(index_of(3.0), 1);
        let s = b.to_sparse();
        assert_eq!(s, vec![(index_of(0.001), 1), (index_of(3.0), 3)]);
        assert_eq!(b.take_sparse(), s);
        assert!(b.to_sparse().is_empty());
    }
}
