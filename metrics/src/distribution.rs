//! Distribution: count, sum, min, max, mean and percentiles of recorded values, as PyFlink's
//! `distribution(name).update(v)` but with floats, negatives and percentiles.
//!
//! What covers which time:
//! - count, sum, mean, min and max are **all time** (since the series was created). That is what
//!   PyFlink users read from a distribution, what Prometheus' `_sum`/`_count` must be (they
//!   are cumulative), and it keeps min and max exact.
//! - percentiles are over a **recent window** (`metrics.weir.distribution.window`, default
//!   60 s): the bucket counts now minus the bucket counts the registry's ticker saved at least
//!   one window ago (it saves every window/6, so the percentiles cover the last 60 to 70 s). A
//!   series younger than the window, or a registry without a ticker, reports percentiles over
//!   all time. Their relative error is at most 0.27 % (the bucket width; see
//!   [`buckets`](crate::buckets)), and they never leave the exact `[min, max]`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::atomic::AtomicF64;
use crate::buckets::{self, AtomicBuckets};

/// Percentiles exported for every distribution.
pub const QUANTILES: [f64; 5] = [0.5, 0.9, 0.95, 0.99, 0.999];

/// Integer-valued floats up to this magnitude are summed exactly as integers.
const EXACT_INT: f64 = 9_007_199_254_740_992.0; // 2^53

/// A distribution's state as plain numbers: the payload of an update (a delta) on the worker
/// channel, and what a snapshot reads. Merging is a commutative monoid: counts and the integer
/// sum add exactly, min/max take the extreme, so any order or grouping of merges gives the same
/// totals. Only `sum_float` (the sum of non-integer values) is subject to float rounding.
#[derive(Clone, Debug, PartialEq)]
pub struct DistributionData {
    pub count: u64,
    /// Sum of integer-valued updates; what would overflow i64 is added to `sum_float` instead.
    pub sum_int: i64,
    /// Sum of the other updates.
    pub sum_float: f64,
    /// `+inf` when empty.
    pub min: f64,
    /// `-inf` when empty.
    pub max: f64,
    /// Values of magnitude below [`buckets::ZERO_THRESHOLD`].
    pub zero: u64,
    /// (bucket index, count) of positive values, ascending index.
    pub positive: Vec<(i32, u64)>,
    /// (bucket index, count) of negative values by magnitude, ascending index.
    pub negative: Vec<(i32, u64)>,
}

impl Default for DistributionData {
    /// The same as [`DistributionData::empty`]: a derived default (min = max = 0) would make
    /// every merge into it report a minimum of at most 0.
    fn default() -> Self {
        Self::empty()
    }
}

impl DistributionData {
    /// An empty distribution: the identity of [`merge`](Self::merge) (min `+inf`, max `-inf`,
    /// so that merging into it keeps the other side's extremes).
    pub fn empty() -> Self {
        Self {
            count: 0,
            sum_int: 0,
            sum_float: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            zero: 0,
            positive: Vec::new(),
            negative: Vec::new(),
        }
    }

    /// The sum of all values.
    pub fn sum(&self) -> f64 {
        self.sum_int as f64 + self.sum_float
    }

    /// The mean, or 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum() / self.count as f64
        }
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &DistributionData) {
        self.count += other.count;
        match self.sum_int.checked_add(other.sum_int) {
            Some(s) => self.sum_int = s,
            None => self.sum_float += other.sum_int as f64,
        }
        self.sum_float += other.sum_float;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.zero += other.zero;
        merge_sparse(&mut self.positive, &other.positive);
        merge_sparse(&mut self.negative, &other.negative);
    }

    /// The value at quantile `q` (0..=1) of the buckets, clamped to `[lo, hi]`; `None` if the
    /// buckets are empty.
    pub fn quantile_within(&self, q: f64, lo: f64, hi: f64) -> Option<f64> {
        let n: u64 = self.zero
            + self.positive.iter().map(|b| b.1).sum::<u64>()
            + self.negative.iter().map(|b| b.1).sum::<u64>();
        if n == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (n - 1) as f64).round() as u64;
        let mut seen = 0u64;
        // Ascending values: large negative magnitudes first, then zero, then positives.
        let neg = self
            .negative
            .iter()
            .rev()
            .map(|&(i, c)| (-buckets::representative(i), c));
        let zero = std::iter::once((0.0, self.zero));
        let pos = self
            .positive
            .iter()
            .map(|&(i, c)| (buckets::representative(i), c));
        for (v, c) in neg.chain(zero).chain(pos) {
            seen += c;
            if c > 0 && seen > rank {
                return Some(v.clamp(lo, hi));
            }
        }
        Some(hi)
    }

    /// Bucket counts of `self` minus those of an earlier state `earlier` of the same series.
    fn buckets_since(&self, earlier: &DistributionData) -> DistributionData {
        DistributionData {
            count: self.count.saturating_sub(earlier.count),
            zero: self.zero.saturating_sub(earlier.zero),
            positive: subtract_sparse(&self.positive, &earlier.positive),
            negative: subtract_sparse(&self.negative, &earlier.negative),
            ..DistributionData::empty()
        }
    }
}

fn merge_sparse(into: &mut Vec<(i32, u64)>, other: &[(i32, u64)]) {
    if other.is_empty() {
        return;
    }
    let mut out = Vec::with_capacity(into.len() + other.len());
    let (mut a, mut b) = (into.iter().peekable(), other.iter().peekable());
    loop {
        match (a.peek(), b.peek()) {
            (Some(&&(ia, ca)), Some(&&(ib, cb))) => {
                if ia == ib {
                    out.push((ia, ca + cb));
                    a.next();
                    b.next();
                } else if ia < ib {
                    out.push((ia, ca));
                    a.next();
                } else {
                    out.push((ib, cb));
                    b.next();
                }
            }
            (Some(&&x), None) => {
                out.push(x);
                a.next();
            }
            (None, Some(&&x)) => {
                out.push(x);
                b.next();
            }
            (None, None) => break,
        }
    }
    *into = out;
}

fn subtract_sparse(now: &[(i32, u64)], earlier: &[(i32, u64)]) -> Vec<(i32, u64)> {
    let mut out = Vec::with_capacity(now.len());
    let mut e = earlier.iter().peekable();
    for &(i, c) in now {
        while e.peek().is_some_and(|&&(j, _)| j < i) {
            e.next();
        }
        let before = match e.peek() {
            Some(&&(j, c0)) if j == i => c0,
            _ => 0,
        };
        if c > before {
            out.push((i, c - before));
        }
    }
    out
}

/// What an exporter reads of a distribution.
#[derive(Clone, Debug, PartialEq)]
pub struct DistributionSnapshot {
    /// All-time state, including the buckets (OTLP exponential histogram).
    pub data: DistributionData,
    /// `(q, value)` for each of [`QUANTILES`], over the recent window; empty when no value was
    /// recorded in the window.
    pub quantiles: Vec<(f64, f64)>,
    /// Smallest and largest value estimated over the window (quantiles 0 and 1).
    pub window_min_max: Option<(f64, f64)>,
}

/// Reads one statistic of a distribution.
pub type Stat = fn(&DistributionData) -> f64;

/// The all-time statistics a distribution exports beside its histogram, in the Prometheus
/// formats: name suffix, what it is (for the help text), its value.
pub const ALL_TIME_STATS: [(&str, &str, Stat); 3] = [
    ("_min", "smallest value, all time", |d| d.min),
    ("_max", "largest value, all time", |d| d.max),
    ("_mean", "mean value, all time", |d| d.mean()),
];

impl DistributionSnapshot {
    /// The window's quantiles, with its min and max as quantiles 0 and 1.
    pub fn window_quantiles(&self) -> Vec<(f64, f64)> {
        let mut out = Vec::with_capacity(self.quantiles.len() + 2);
        if let Some((lo, _)) = self.window_min_max {
            out.push((0.0, lo));
        }
        out.extend(self.quantiles.iter().copied());
        if let Some((_, hi)) = self.window_min_max {
            out.push((1.0, hi));
        }
        out
    }
}

/// Values and their count, sum, min, max, mean and percentiles.
///
/// ```
/// let d = weir_metrics::Distribution::default();
/// d.update_i64(10);
/// d.update_i64(2);
/// let s = d.data();
/// assert_eq!((s.count, s.sum(), s.min, s.max, s.mean()), (2, 12.0, 2.0, 10.0, 6.0));
/// ```
#[derive(Clone, Default)]
pub struct Distribution(pub(crate) Arc<DistributionCell>);

impl std::fmt::Debug for Distribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Distribution")
            .field("count", &self.0.count.load(Relaxed))
            .finish()
    }
}

pub(crate) struct DistributionCell {
    count: AtomicU64,
    sum_int: AtomicI64,
    sum_float: AtomicF64,
    min: AtomicF64,
    max: AtomicF64,
    /// Extremes since the last `take_delta`, for deltas sent to the engine.
    interval_min: AtomicF64,
    interval_max: AtomicF64,
    zero: AtomicU64,
    positive: AtomicBuckets,
    negative: AtomicBuckets,
    /// (time, bucket state) saved by the ticker, oldest first, for windowed percentiles.
    window: Mutex<VecDeque<(Instant, DistributionData)>>,
}

impl Default for DistributionCell {
    fn default() -> Self {
        Self {
            count: AtomicU64::new(0),
            sum_int: AtomicI64::new(0),
            sum_float: AtomicF64::new(0.0),
            min: AtomicF64::new(f64::INFINITY),
            max: AtomicF64::new(f64::NEG_INFINITY),
            interval_min: AtomicF64::new(f64::INFINITY),
            interval_max: AtomicF64::new(f64::NEG_INFINITY),
            zero: AtomicU64::new(0),
            positive: AtomicBuckets::default(),
            negative: AtomicBuckets::default(),
            window: Mutex::new(VecDeque::new()),
        }
    }
}

impl Distribution {
    /// Records an integer value.
    #[inline]
    pub fn update_i64(&self, v: i64) {
        let c = &*self.0;
        // An integer sum that would overflow i64 goes on in the float sum: the exported sum
        // (their total) loses precision there, it never wraps to a wrong sign. Far from the
        // bounds (any sum a job reaches) a plain atomic add, as for counters.
        let fast = crate::counter::FAST;
        if v.unsigned_abs() < fast && c.sum_int.load(Relaxed).unsigned_abs() < fast {
            c.sum_int.fetch_add(v, Relaxed);
        } else if c
            .sum_int
            .fetch_update(Relaxed, Relaxed, |s| s.checked_add(v))
            .is_err()
        {
            c.sum_float.add(v as f64);
        }
        self.record(v as f64);
    }

    /// Records a value. Integer-valued floats are summed exactly; NaN and infinities are
    /// ignored (they would poison sum and mean for the rest of the series' life).
    #[inline]
    pub fn update_f64(&self, v: f64) {
        if !v.is_finite() {
            return;
        }
        if v.fract() == 0.0 && v.abs() < EXACT_INT {
            self.update_i64(v as i64);
        } else {
            self.0.sum_float.add(v);
            self.record(v);
        }
    }

    #[inline]
    fn record(&self, v: f64) {
        let c = &*self.0;
        c.count.fetch_add(1, Relaxed);
        c.min.fetch_min(v);
        c.max.fetch_max(v);
        c.interval_min.fetch_min(v);
        c.interval_max.fetch_max(v);
        let a = v.abs();
        if a < buckets::ZERO_THRESHOLD {
            c.zero.fetch_add(1, Relaxed);
        } else if v > 0.0 {
            c.positive.add(buckets::index_of(a), 1);
        } else {
            c.negative.add(buckets::index_of(a), 1);
        }
    }

    /// Adds a delta received from another process.
    pub fn merge(&self, d: &DistributionData) {
        let c = &*self.0;
        if d.count == 0 {
            return;
        }
        if c.sum_int
            .fetch_update(Relaxed, Relaxed, |s| s.checked_add(d.sum_int))
            .is_err()
        {
            c.sum_float.add(d.sum_int as f64);
        }
        if d.sum_float != 0.0 {
            c.sum_float.add(d.sum_float);
        }
        c.min.fetch_min(d.min);
        c.max.fetch_max(d.max);
        c.interval_min.fetch_min(d.min);
        c.interval_max.fetch_max(d.max);
        c.zero.fetch_add(d.zero, Relaxed);
        for &(i, n) in &d.positive {
            c.positive.add(i, n);
        }
        for &(i, n) in &d.negative {
            c.negative.add(i, n);
        }
        // Count last, so a concurrent reader never sees more count than buckets.
        c.count.fetch_add(d.count, Relaxed);
    }

    /// The all-time state.
    pub fn data(&self) -> DistributionData {
        let c = &*self.0;
        DistributionData {
            count: c.count.load(Relaxed),
            sum_int: c.sum_int.load(Relaxed),
            sum_float: c.sum_float.load(),
            min: c.min.load(),
            max: c.max.load(),
            zero: c.zero.load(Relaxed),
            positive: c.positive.to_sparse(),
            negative: c.negative.to_sparse(),
        }
    }

    /// Takes everything recorded since the last call, leaving the distribution empty. Used by a
    /// worker process whose distributions exist only to produce deltas for the engine.
    pub fn take_delta(&self) -> DistributionData {
        let c = &*self.0;
        let count = c.count.swap(0, Relaxed);
        let d = DistributionData {
            count,
            sum_int: c.sum_int.swap(0, Relaxed),
            sum_float: c.sum_float.swap(0.0),
            min: c.interval_min.swap(f64::INFINITY),
            max: c.interval_max.swap(f64::NEG_INFINITY),
            zero: c.zero.swap(0, Relaxed),
            positive: c.positive.take_sparse(),
            negative: c.negative.take_sparse(),
        };
        c.min.store(f64::INFINITY);
        c.max.store(f64::NEG_INFINITY);
        d
    }

    /// Saves the current bucket state for windowed percentiles and forgets states older than
    /// needed. Called by the registry's ticker every `window / 6`.
    pub fn rotate_window(&self, now: Instant, window: Duration) {
        let data = self.data();
        let mut w = self.0.window.lock().unwrap_or_else(|p| p.into_inner());
        w.push_back((now, data));
        // Keep the latest state at or before the window's start, and everything after it.
        while w.len() >= 2 && now.saturating_duration_since(w[1].0) >= window {
            w.pop_front();
        }
    }

    /// What exporters read: all-time numbers and percentiles over the last `window`.
    pub fn snapshot(&self, window: Duration) -> DistributionSnapshot {
        self.snapshot_at(Instant::now(), window)
    }

    /// [`snapshot`](Self::snapshot) as of `now`. The baseline is the latest saved state at least
    /// `window` old (so the percentiles cover between one window and one window plus one
    /// rotation period); without one, the series is younger than the window and all of it counts.
    pub fn snapshot_at(&self, now: Instant, window: Duration) -> DistributionSnapshot {
        let data = self.data();
        let w = self.0.window.lock().unwrap_or_else(|p| p.into_inner());
        let baseline = w
            .iter()
            .take_while(|(t, _)| now.saturating_duration_since(*t) >= window)
            .last();
        let has_baseline = baseline.is_some();
        let recent = match baseline {
            Some((_, earlier)) => data.buckets_since(earlier),
            None => data.clone(),
        };
        drop(w);
        let (lo, hi) = (data.min, data.max);
        let quantiles = QUANTILES
            .iter()
            .filter_map(|&q| recent.quantile_within(q, lo, hi).map(|v| (q, v)))
            .collect();
        // Quantiles 0 and 1 of the window: exact when the window covers all of the series'
        // life, and when the window's extreme bucket holds the all-time extreme (the usual case);
        // otherwise the bucket's estimate.
        let window_min_max = match has_baseline {
            false if data.count > 0 => Some((lo, hi)),
            false => None,
            true => recent
                .quantile_within(0.0, lo, hi)
                .zip(recent.quantile_within(1.0, lo, hi))
                .map(|(wlo, whi)| {
                    let same = |a: f64, b: f64| {
                        a.signum() == b.signum()
                            && (a.abs() < buckets::ZERO_THRESHOLD
                                || buckets::index_of(a.abs()) == buckets::index_of(b.abs()))
                    };
                    (
                        if same(wlo, lo) { lo } else { wlo },
                        if same(whi, hi) { hi } else { whi },
                    )
                }),
        };
        DistributionSnapshot {
            data,
            quantiles,
            window_min_max,
        }
    }

    /// Heap bytes used by the histogram.
    pub fn heap_bytes(&self) -> usize {
        self.0.positive.heap_bytes() + self.0.negative.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_never_wrap_and_huge_values_keep_exporting() {
        let d = Distribution::default();
        d.update_i64(i64::MAX);
        d.update_i64(i64::MAX);
        d.update_i64(-1);
        let s = d.snapshot(Duration::from_secs(60));
        assert_eq!(s.data.count, 3);
        let want = 2.0 * i64::MAX as f64 - 1.0;
        assert!(
            (s.data.sum() - want).abs() / want < 1e-12,
            "{}",
            s.data.sum()
        );
        let mut merged = DistributionData::empty();
        merged.merge(&s.data);
        merged.merge(&s.data);
        assert!(merged.sum() > 3.0 * i64::MAX as f64);
        let big = Distribution::default();
        big.update_f64(1e308);
        big.update_f64(1e308);
        let s = big.snapshot(Duration::from_secs(60));
        assert_eq!(s.data.count, 2);
        assert_eq!(s.data.sum(), f64::INFINITY);
        assert_eq!(s.data.max, 1e308);
    }

    #[test]
    fn pyflink_semantics() {
        let d = Distribution::default();
        d.update_i64(10);
        d.update_i64(2);
        let s = d.data();
        assert_eq!(s.count, 2);
        assert_eq!(s.sum(), 12.0);
        assert_eq!(s.min, 2.0);
        assert_eq!(s.max, 10.0);
        assert_eq!(s.mean(), 6.0);
    }

    #[test]
    fn floats_negatives_and_percentiles() {
        let d = Distribution::default();
        for i in 1..=1000 {
            d.update_f64(i as f64 / 10.0 - 50.0); // -49.9 ..= 50.0
        }
        d.update_f64(f64::NAN);
        let s = d.snapshot(Duration::from_secs(60));
        assert_eq!(s.data.count, 1000);
        assert_eq!(s.data.min, -49.9);
        assert_eq!(s.data.max, 50.0);
        assert!((s.data.sum() - 50.0).abs() < 1e-9, "{}", s.data.sum());
        let q = |p: f64| s.quantiles.iter().find(|x| x.0 == p).unwrap().1;
        // True p50 is 0.0 (rank 500 of -49.9..50.0 in 0.1 steps ≈ 0.05); p99 ≈ 49.0.
        assert!(q(0.5).abs() < 0.2, "{}", q(0.5));
        assert!(((q(0.99) - 49.0) / 49.0).abs() < 0.005, "{}", q(0.99));
        assert!(q(0.999) <= 50.0);
    }

    #[test]
    fn window_forgets_old_values() {
        let d = Distribution::default();
        let t0 = Instant::now();
        let w = Duration::from_secs(60);
        for _ in 0..100 {
            d.update_i64(1000);
        }
        d.rotate_window(t0, w);
        for _ in 0..10 {
            d.update_i64(5);
        }
        d.rotate_window(t0 + Duration::from_secs(70), w);
        // Younger than the window: everything counts.
        let s = d.snapshot_at(t0 + Duration::from_secs(30), w);
        let p50 = s.quantiles.iter().find(|x| x.0 == 0.5).unwrap().1;
        assert!((p50 - 1000.0).abs() < 3.0, "{p50}");
        let s = d.snapshot_at(t0 + Duration::from_secs(70), w);
        // The window starts at t0: only the ten 5s are in it; all-time stats keep the 1000s.
        let p99 = s.quantiles.iter().find(|x| x.0 == 0.99).unwrap().1;
        assert!((p99 - 5.0).abs() < 0.02, "{p99}");
        assert_eq!(s.data.max, 1000.0);
        assert_eq!(s.data.count, 110);
    }

    #[test]
    fn merging_into_the_default_keeps_the_extremes() {
        let d = Distribution::default();
        d.update_i64(5);
        d.update_i64(7);
        let mut total = DistributionData::default();
        total.merge(&d.data());
        assert_eq!((total.min, total.max, total.count), (5.0, 7.0, 2));
    }

    #[test]
    fn take_delta_then_merge_is_lossless() {
        let w = Distribution::default();
        let e = Distribution::default();
        for v in [3.5, -2.0, 7.0, 0.0] {
            w.update_f64(v);
        }
        e.merge(&w.take_delta());
        w.update_i64(100);
        e.merge(&w.take_delta());
        let s = e.data();
        assert_eq!(s.count, 5);
        assert_eq!(s.sum(), 108.5);
        assert_eq!((s.min, s.max), (-2.0, 100.0));
        assert_eq!(w.data().count, 0);
    }
}
