//! Counter: a signed 64-bit count, as PyFlink's `Counter` (negative increments are allowed).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};
use std::sync::Arc;

/// A count of events. Cloning gives another handle to the same count.
///
/// `inc` and `dec` are one atomic add: no lock, no label lookup.
///
/// ```
/// let c = weir_metrics::Counter::default();
/// c.inc(1);
/// c.inc(5);
/// c.dec(2);
/// assert_eq!(c.count(), 4);
/// ```
///
/// A counter may go down (PyFlink allows `dec` and negative `inc`). Prometheus reads any
/// decrease of a counter as a restart of the process and `rate()`/`increase()` then count the
/// new value from zero, so a counter that goes down shows a spike in those queries. weir still
/// exports it as a counter in Prometheus; over OTLP it becomes a non-monotonic sum as soon as it
/// has gone down once. Use a gauge for values that move both ways.
/// Below this (in magnitude) counts and increments take the plain atomic add.
pub(crate) const FAST: u64 = 1 << 60;

#[derive(Clone, Debug, Default)]
pub struct Counter(pub(crate) Arc<CounterCell>);

#[derive(Debug, Default)]
pub(crate) struct CounterCell {
    value: AtomicI64,
    went_down: AtomicBool,
}

impl Counter {
    /// Adds `n` (which may be negative). At `i64::MAX` (or `MIN`) the count stays there: it
    /// saturates instead of wrapping to a value of the other sign.
    #[inline]
    pub fn inc(&self, n: i64) {
        if n < 0 {
            self.0.went_down.store(true, Relaxed);
        }
        let v = &self.0.value;
        // Far from the bounds (any count a job reaches) a plain atomic add; near them a
        // compare-and-swap that saturates. A few racing adds below 2^60 cannot reach 2^63.
        if n.unsigned_abs() < FAST && v.load(Relaxed).unsigned_abs() < FAST {
            v.fetch_add(n, Relaxed);
        } else {
            let _ = v.fetch_update(Relaxed, Relaxed, |c| Some(c.saturating_add(n)));
        }
    }

    /// Subtracts `n`.
    #[inline]
    pub fn dec(&self, n: i64) {
        self.inc(n.wrapping_neg())
    }

    /// The current count.
    pub fn count(&self) -> i64 {
        self.0.value.load(Relaxed)
    }

    /// Whether the counter has ever been decreased (then it is not monotonic).
    pub fn went_down(&self) -> bool {
        self.0.went_down.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturates_instead_of_wrapping() {
        let c = Counter::default();
        c.inc(i64::MAX);
        c.inc(5);
        assert_eq!(c.count(), i64::MAX);
        c.dec(i64::MAX);
        assert_eq!(c.count(), 0);
        let d = Counter::default();
        d.inc(i64::MIN);
        d.inc(-1);
        assert_eq!(d.count(), i64::MIN);
    }

    #[test]
    fn negative_counts_as_pyflink() {
        let c = Counter::default();
        c.inc(-2);
        assert_eq!(c.count(), -2);
        assert!(c.went_down());
        let d = Counter::default();
        d.inc(3);
        assert!(!d.went_down());
    }
}
