//! Histograms derived from a distribution's exponential buckets, for scrapers that aggregate:
//! classic histograms (`le` buckets) and Prometheus native histograms.
//!
//! Nothing here costs anything per update: a [`Distribution`](crate::Distribution) already
//! keeps all-time bucket counts at OpenTelemetry's scale 7 (see [`crate::buckets`]); both
//! histogram forms are computed from those counts when an exporter reads them.
//!
//! - **Classic buckets.** The count at bound `b` is the number of values whose scale-7 bucket
//!   lies at or below the bucket holding `b`. A value equal to a bound is always counted in it
//!   (integer values on round bounds are common); a value less than 0.55 % (one scale-7
//!   bucket) above a bound may be counted in it too. Counts are cumulative and monotone in `b`, as Prometheus requires.
//! - **Native buckets.** Prometheus' schema `s` has bucket boundaries `2^(k * 2^-s)`, the same
//!   family as OTLP's scale; scale 7 is schema 7, and a lower schema merges `2^(7-s)` adjacent
//!   buckets. Prometheus numbers the bucket `(base^(i-1), base^i]` as `i`, OpenTelemetry the
//!   bucket `(base^i, base^(i+1)]`: the indexes differ by one.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::buckets::{self, SCALE};
use crate::distribution::DistributionData;

/// Default bounds of classic histograms: 1, 2.5, 5 per decade from 0.001 to 1000 (19 bounds,
/// 20 series with `+Inf`): milliseconds to minutes when the unit is seconds, and the usual
/// spread of sizes and counts otherwise.
pub const DEFAULT_BOUNDS: [f64; 19] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0,
    100.0, 250.0, 500.0, 1000.0,
];

/// Default schema of native histograms: 8 buckets per power of two, bucket width 9 %, so a
/// quantile is within about 4.5 % (what Prometheus' client libraries use by default).
pub const DEFAULT_NATIVE_SCHEMA: i32 = 3;
/// Lowest schema Prometheus accepts.
pub const MIN_NATIVE_SCHEMA: i32 = -4;
/// Highest schema weir can serve: its buckets are at scale 7.
pub const MAX_NATIVE_SCHEMA: i32 = SCALE;

/// How distributions are exported as histograms.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramOptions {
    /// Classic bounds of every family without its own (empty: no classic buckets, only
    /// `_sum` and `_count`).
    pub bounds: Arc<[f64]>,
    /// Classic bounds by exported family name (`weir_user_latency_seconds`).
    pub family_bounds: BTreeMap<String, Arc<[f64]>>,
    /// Schema of native histograms.
    pub native_schema: i32,
}

impl Default for HistogramOptions {
    fn default() -> Self {
        Self {
            bounds: DEFAULT_BOUNDS.as_slice().into(),
            family_bounds: BTreeMap::new(),
            native_schema: DEFAULT_NATIVE_SCHEMA,
        }
    }
}

impl HistogramOptions {
    /// The classic bounds of the distribution family `family` (its base name).
    pub fn bounds_for(&self, family: &str) -> &[f64] {
        self.family_bounds.get(family).unwrap_or(&self.bounds)
    }
}

/// Parses a list of bucket bounds: finite numbers, comma-separated, strictly increasing;
/// `none` or an empty list turns classic buckets off. On error, says what is wrong.
pub fn parse_bounds(v: &str) -> Result<Arc<[f64]>, String> {
    let v = v.trim();
    if v.is_empty() || v.eq_ignore_ascii_case("none") {
        return Ok(Arc::from([]));
    }
    let mut out: Vec<f64> = Vec::new();
    for part in v.split(',') {
        let p = part.trim();
        let b: f64 = p.parse().map_err(|_| {
            format!("`{p}` is not a number; expected bounds such as `0.01,0.1,1,10`")
        })?;
        if !b.is_finite() {
            return Err(format!(
                "`{p}` is not finite; the `+Inf` bucket is always added"
            ));
        }
        if let Some(&last) = out.last() {
            if b <= last {
                return Err(format!("bounds must increase: `{p}` follows `{last}`"));
            }
        }
        out.push(b);
    }
    if out.len() > 1000 {
        return Err(format!(
            "{} bounds is too many (at most 1000: each is a series)",
            out.len()
        ));
    }
    Ok(out.into())
}

/// Cumulative counts of values `<= b` for each bound `b` of `bounds` (ascending). The `+Inf`
/// bucket is `data.count`. Costs a binary search per bound over prefix sums of the buckets.
pub fn classic_counts(data: &DistributionData, bounds: &[f64]) -> Vec<u64> {
    let prefix = |v: &[(i32, u64)]| -> Vec<u64> {
        let mut acc = 0u64;
        v.iter()
            .map(|(_, n)| {
                acc = acc.saturating_add(*n);
                acc
            })
            .collect()
    };
    let (pos, neg) = (prefix(&data.positive), prefix(&data.negative));
    let neg_total = neg.last().copied().unwrap_or(0);
    // Values in buckets with index <= top (positives), or >= bottom (negatives, by magnitude).
    let pos_upto = |top: i32| -> u64 {
        match data.positive.partition_point(|(i, _)| *i <= top) {
            0 => 0,
            k => pos[k - 1],
        }
    };
    let neg_from = |bottom: i32| -> u64 {
        match data.negative.partition_point(|(i, _)| *i < bottom) {
            0 => neg_total,
            k => neg_total - neg[k - 1],
        }
    };
    bounds
        .iter()
        .map(|&b| {
            if b >= 0.0 {
                let mut n = neg_total.saturating_add(data.zero);
                if b >= buckets::ZERO_THRESHOLD {
                    n = n.saturating_add(pos_upto(buckets::index_of(b)));
                }
                n
            } else if -b < buckets::ZERO_THRESHOLD {
                // Between -threshold and 0: the negatives not counted as zero.
                neg_total
            } else {
                neg_from(buckets::index_of(-b))
            }
        })
        .collect()
}

/// A native histogram's buckets in Prometheus' sparse layout.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NativeBuckets {
    /// (offset, length): the first offset is the first index, later ones the gap since the
    /// previous span's end.
    pub spans: Vec<(i32, u32)>,
    /// The first count, then each count minus the previous one.
    pub deltas: Vec<i64>,
}

/// Native histogram buckets of schema `schema` from scale-7 sparse buckets (ascending index).
pub fn native_buckets(sparse: &[(i32, u64)], schema: i32) -> NativeBuckets {
    let shift = (SCALE - schema.clamp(MIN_NATIVE_SCHEMA, MAX_NATIVE_SCHEMA)) as u32;
    // Merge into the coarser buckets; arithmetic shift is floor division for negative indexes.
    let mut merged: Vec<(i32, u64)> = Vec::with_capacity(sparse.len());
    for &(i, n) in sparse {
        let j = (i >> shift) + 1;
        match merged.last_mut() {
            Some((last, c)) if *last == j => *c = c.saturating_add(n),
            _ => merged.push((j, n)),
        }
    }
    let mut out = NativeBuckets::default();
    let mut prev_index: Option<i32> = None;
    let mut prev_count = 0i64;
    for (j, n) in merged {
        let n = n.min(i64::MAX as u64) as i64;
        match prev_index {
            Some(p) if j == p + 1 => out.spans.last_mut().expect("a span is open").1 += 1,
            Some(p) => out.spans.push((j - p - 1, 1)),
            None => out.spans.push((j, 1)),
        }
        out.deltas.push(n - prev_count);
        prev_count = n;
        prev_index = Some(j);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Distribution;

    fn data(values: &[f64]) -> DistributionData {
        let d = Distribution::default();
        for &v in values {
            d.update_f64(v);
        }
        d.data()
    }

    #[test]
    fn a_value_on_a_bound_is_counted_in_it() {
        let d = data(&[0.1, 5.0, 10.0, 1000.0, 0.0, -3.0]);
        let c = classic_counts(&d, &[-3.0, -1.0, 0.0, 0.1, 5.0, 9.9, 10.0, 990.0, 1000.0]);
        assert_eq!(c, vec![1, 1, 2, 3, 4, 4, 5, 5, 6]);
    }

    #[test]
    fn classic_counts_are_cumulative_and_close_to_exact() {
        let values: Vec<f64> = (1..=10_000).map(|i| i as f64 * 0.0137).collect();
        let d = data(&values);
        let bounds: Vec<f64> = DEFAULT_BOUNDS.to_vec();
        let c = classic_counts(&d, &bounds);
        assert!(c.windows(2).all(|w| w[0] <= w[1]), "{c:?}");
        for (b, n) in bounds.iter().zip(&c) {
            let exact = values.iter().filter(|v| **v <= *b).count() as u64;
            let slack = values
                .iter()
                .filter(|v| **v > *b && **v <= b * 1.0055)
                .count() as u64;
            assert!(*n >= exact && *n <= exact + slack, "le={b}: {n} vs {exact}");
        }
    }

    #[test]
    fn classic_counts_match_a_count_of_the_values_with_negatives_and_zeros() {
        // A fixed pseudo-random spread over 12 decades of both signs, and exact zeros.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let values: Vec<f64> = (0..20_000)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let mag = 10f64.powf((x % 12_000) as f64 / 1000.0 - 6.0);
                match i % 7 {
                    0 => 0.0,
                    1 | 2 => -mag,
                    _ => mag,
                }
            })
            .collect();
        let d = data(&values);
        let bounds: Vec<f64> = (-30..=30)
            .map(|k| 10f64.powf(k as f64 / 5.0) * if k < 0 { -1.0 } else { 1.0 })
            .collect();
        let mut sorted = bounds.clone();
        sorted.sort_by(f64::total_cmp);
        let got = classic_counts(&d, &sorted);
        assert!(got.windows(2).all(|w| w[0] <= w[1]));
        for (b, n) in sorted.iter().zip(&got) {
            let exact = values.iter().filter(|v| **v <= *b).count() as u64;
            // Values within one scale-7 bucket of the bound may fall on either side.
            let near = values
                .iter()
                .filter(|v| (**v - *b).abs() <= b.abs() * 0.0055)
                .count() as u64;
            assert!(
                n.abs_diff(exact) <= near,
                "le={b}: {n} vs {exact} (near {near})"
            );
        }
    }

    #[test]
    fn native_buckets_at_scale_7_are_the_otlp_buckets_shifted_by_one() {
        let d = data(&[1.0, 1.5, 1.5, 3.0]);
        let nb = native_buckets(&d.positive, 7);
        let idx: Vec<i32> = d.positive.iter().map(|(i, _)| i + 1).collect();
        // Rebuild absolute indexes and counts from spans and deltas.
        let mut got = Vec::new();
        let (mut at, mut count, mut k) = (0i32, 0i64, 0usize);
        for (n, &(off, len)) in nb.spans.iter().enumerate() {
            at = if n == 0 { off } else { at + off };
            for _ in 0..len {
                count += nb.deltas[k];
                k += 1;
                got.push((at, count as u64));
                at += 1;
            }
        }
        let want: Vec<(i32, u64)> = idx
            .into_iter()
            .zip(d.positive.iter().map(|(_, n)| *n))
            .collect();
        assert_eq!(got, want);
        // 1.0 is the upper bound of Prometheus bucket 0 at every schema.
        for schema in MIN_NATIVE_SCHEMA..=MAX_NATIVE_SCHEMA {
            let one = native_buckets(&data(&[1.0]).positive, schema);
            assert_eq!(one.spans, vec![(0, 1)], "schema {schema}");
        }
    }

    #[test]
    fn native_buckets_merge_and_span_gaps() {
        // Schema 0: buckets (0.5,1], (1,2], (2,4] ... are Prometheus indexes 0, 1, 2.
        let d = data(&[0.75, 1.0, 1.5, 2.0, 3.0, 100.0]);
        let nb = native_buckets(&d.positive, 0);
        // (0.5,1]: 2, (1,2]: 2, (2,4]: 1, (64,128]: 1 -> indexes 0,1,2 then 7.
        assert_eq!(nb.spans, vec![(0, 3), (4, 1)]);
        assert_eq!(nb.deltas, vec![2, 0, -1, 0]);
    }

    #[test]
    fn bounds_are_checked() {
        assert_eq!(&*parse_bounds("0.1, 1,10").unwrap(), &[0.1, 1.0, 10.0]);
        assert!(parse_bounds("none").unwrap().is_empty());
        assert!(parse_bounds("1,1").unwrap_err().contains("must increase"));
        assert!(parse_bounds("1,x")
            .unwrap_err()
            .contains("`x` is not a number"));
        assert!(parse_bounds("1,inf").unwrap_err().contains("not finite"));
    }
}
