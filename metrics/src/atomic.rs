//! Lock-free f64 cells on top of `AtomicU64`, for sums and extremes updated from many threads.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// An `f64` that can be added to, or lowered/raised to a bound, without a lock.
#[derive(Debug)]
pub(crate) struct AtomicF64(AtomicU64);

impl AtomicF64 {
    pub(crate) fn new(v: f64) -> Self {
        Self(AtomicU64::new(v.to_bits()))
    }

    pub(crate) fn load(&self) -> f64 {
        f64::from_bits(self.0.load(Relaxed))
    }

    pub(crate) fn store(&self, v: f64) {
        self.0.store(v.to_bits(), Relaxed)
    }

    pub(crate) fn swap(&self, v: f64) -> f64 {
        f64::from_bits(self.0.swap(v.to_bits(), Relaxed))
    }

    pub(crate) fn add(&self, v: f64) {
        let mut cur = self.0.load(Relaxed);
        loop {
            let new = (f64::from_bits(cur) + v).to_bits();
            match self.0.compare_exchange_weak(cur, new, Relaxed, Relaxed) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Lowers the cell to `v` if `v` is smaller. The common case (not a new minimum) is one load.
    pub(crate) fn fetch_min(&self, v: f64) {
        let mut cur = self.0.load(Relaxed);
        while v < f64::from_bits(cur) {
            match self
                .0
                .compare_exchange_weak(cur, v.to_bits(), Relaxed, Relaxed)
            {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Raises the cell to `v` if `v` is larger.
    pub(crate) fn fetch_max(&self, v: f64) {
        let mut cur = self.0.load(Relaxed);
        while v > f64::from_bits(cur) {
            match self
                .0
                .compare_exchange_weak(cur, v.to_bits(), Relaxed, Relaxed)
            {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn concurrent_add_min_max() {
        let sum = Arc::new(AtomicF64::new(0.0));
        let min = Arc::new(AtomicF64::new(f64::INFINITY));
        let max = Arc::new(AtomicF64::new(f64::NEG_INFINITY));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (sum, min, max) = (sum.clone(), min.clone(), max.clone());
                std::thread::spawn(move || {
                    for i in 0..10_000 {
                        let v = (t * 10_000 + i) as f64;
                        sum.add(1.0);
                        min.fetch_min(v);
                        max.fetch_max(v);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(sum.load(), 40_000.0);
        assert_eq!(min.load(), 0.0);
        assert_eq!(max.load(), 39_999.0);
    }
}
