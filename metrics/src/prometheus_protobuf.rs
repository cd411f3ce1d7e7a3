//! The Prometheus protobuf exposition format (`io.prometheus.client.MetricFamily`, length-
//! delimited), the only format that carries native histograms.
//!
//! Prometheus asks for it when native histograms are on (`--enable-feature=native-histograms`
//! in 2.x). The messages are declared here with `prost` derives, field for field as in the
//! `client_model` repository's `metrics.proto` (the same schema Prometheus keeps under
//! `prompb/io/prometheus/client`); no crate publishes them for prost, and the handful of
//! messages is smaller than a build step running `protoc`. Only what weir sends is declared
//! (no exemplars, no float histograms): a decoder skips unknown fields either way.
//!
//! Families are the same as in the text formats (see [`crate::prometheus`]); a distribution's
//! histogram `B` carries both its classic buckets and its native buckets, so a scraper without
//! native histograms still reads the classic ones.

use prost::Message;

use crate::buckets::ZERO_THRESHOLD;
use crate::distribution::ALL_TIME_STATS;
use crate::gauge::GaugeValue;
use crate::histogram::{classic_counts, native_buckets};
use crate::snapshot::{FamilySnapshot, MetricKind, SeriesSnapshot, SeriesValue, Snapshot};

/// Content type of the protobuf format.
pub const PROTOBUF_CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// `MetricFamily`.
#[derive(Clone, PartialEq, Message)]
pub struct MetricFamily {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub help: String,
    #[prost(enumeration = "MetricType", tag = "3")]
    pub r#type: i32,
    #[prost(message, repeated, tag = "4")]
    pub metric: Vec<Metric>,
}

/// `MetricType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MetricType {
    Counter = 0,
    Gauge = 1,
    Summary = 2,
    Untyped = 3,
    Histogram = 4,
    GaugeHistogram = 5,
}

/// `Metric`: one series.
#[derive(Clone, PartialEq, Message)]
pub struct Metric {
    #[prost(message, repeated, tag = "1")]
    pub label: Vec<LabelPair>,
    #[prost(message, optional, tag = "2")]
    pub gauge: Option<Gauge>,
    #[prost(message, optional, tag = "3")]
    pub counter: Option<Counter>,
    #[prost(message, optional, tag = "4")]
    pub summary: Option<Summary>,
    #[prost(message, optional, tag = "7")]
    pub histogram: Option<Histogram>,
}

/// `LabelPair`.
#[derive(Clone, PartialEq, Message)]
pub struct LabelPair {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `Gauge`.
#[derive(Clone, PartialEq, Message)]
pub struct Gauge {
    #[prost(double, tag = "1")]
    pub value: f64,
}

/// `Counter`.
#[derive(Clone, PartialEq, Message)]
pub struct Counter {
    #[prost(double, tag = "1")]
    pub value: f64,
}

/// `Quantile`.
#[derive(Clone, PartialEq, Message)]
pub struct Quantile {
    #[prost(double, tag = "1")]
    pub quantile: f64,
    #[prost(double, tag = "2")]
    pub value: f64,
}

/// `Summary`.
#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    #[prost(uint64, tag = "1")]
    pub sample_count: u64,
    #[prost(double, tag = "2")]
    pub sample_sum: f64,
    #[prost(message, repeated, tag = "3")]
    pub quantile: Vec<Quantile>,
}

/// `Histogram`: classic buckets and native (sparse) buckets.
#[derive(Clone, PartialEq, Message)]
pub struct Histogram {
    #[prost(uint64, tag = "1")]
    pub sample_count: u64,
    #[prost(double, tag = "2")]
    pub sample_sum: f64,
    #[prost(message, repeated, tag = "3")]
    pub bucket: Vec<Bucket>,
    #[prost(sint32, tag = "5")]
    pub schema: i32,
    #[prost(double, tag = "6")]
    pub zero_threshold: f64,
    #[prost(uint64, tag = "7")]
    pub zero_count: u64,
    #[prost(message, repeated, tag = "9")]
    pub negative_span: Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "10")]
    pub negative_delta: Vec<i64>,
    #[prost(message, repeated, tag = "12")]
    pub positive_span: Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "13")]
    pub positive_delta: Vec<i64>,
}

/// `Bucket` of a classic histogram.
#[derive(Clone, PartialEq, Message)]
pub struct Bucket {
    #[prost(uint64, tag = "1")]
    pub cumulative_count: u64,
    #[prost(double, tag = "2")]
    pub upper_bound: f64,
}

/// `BucketSpan` of a native histogram.
#[derive(Clone, PartialEq, Message)]
pub struct BucketSpan {
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    #[prost(uint32, tag = "2")]
    pub length: u32,
}

/// Encodes `snapshot` as length-delimited `MetricFamily` messages.
pub fn encode_protobuf(snapshot: &Snapshot) -> Vec<u8> {
    let mut out = Vec::new();
    for fam in &snapshot.families {
        if fam.series.is_empty() {
            continue;
        }
        for mf in families(snapshot, fam) {
            if mf.metric.is_empty() {
                continue;
            }
            mf.encode_length_delimited(&mut out)
                .expect("a Vec grows as needed");
        }
    }
    out
}

/// Decodes what [`encode_protobuf`] wrote (tests and tools).
pub fn decode_protobuf(mut bytes: &[u8]) -> Result<Vec<MetricFamily>, prost::DecodeError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        out.push(MetricFamily::decode_length_delimited(&mut bytes)?);
    }
    Ok(out)
}

fn labels(s: &SeriesSnapshot) -> Vec<LabelPair> {
    s.labels
        .iter()
        .map(|(k, v)| LabelPair {
            name: k.clone(),
            value: v.clone(),
        })
        .collect()
}

fn family(name: String, help: String, kind: MetricType, metric: Vec<Metric>) -> MetricFamily {
    MetricFamily {
        name,
        help,
        r#type: kind as i32,
        metric,
    }
}

fn metric(s: &SeriesSnapshot) -> Metric {
    Metric {
        label: labels(s),
        gauge: None,
        counter: None,
        summary: None,
        histogram: None,
    }
}

fn gauge(s: &SeriesSnapshot, value: f64) -> Metric {
    Metric {
        gauge: Some(Gauge { value }),
        ..metric(s)
    }
}

fn counter(s: &SeriesSnapshot, value: f64) -> Metric {
    Metric {
        counter: Some(Counter { value }),
        ..metric(s)
    }
}

fn families(snapshot: &Snapshot, fam: &FamilySnapshot) -> Vec<MetricFamily> {
    let name = &*fam.name;
    let help = fam.help.to_string();
    match fam.kind {
        MetricKind::Counter => {
            let ms = fam
                .series
                .iter()
                .filter_map(|s| match s.value {
                    SeriesValue::Counter { value, .. } => Some(counter(s, value as f64)),
                    _ => None,
                })
                .collect();
            vec![family(
                format!("{name}_total"),
                help,
                MetricType::Counter,
                ms,
            )]
        }
        MetricKind::Gauge => {
            let ms = fam
                .series
                .iter()
                .filter_map(|s| match s.value {
                    SeriesValue::Gauge(GaugeValue::Int(i)) => Some(gauge(s, i as f64)),
                    SeriesValue::Gauge(GaugeValue::Float(f)) => Some(gauge(s, f)),
                    _ => None,
                })
                .collect();
            vec![family(name.to_string(), help, MetricType::Gauge, ms)]
        }
        MetricKind::Meter => {
            let (mut counts, mut rates) = (Vec::new(), Vec::new());
            for s in &fam.series {
                if let SeriesValue::Meter { count, rate } = s.value {
                    counts.push(counter(s, count as f64));
                    rates.push(gauge(s, rate));
                }
            }
            vec![
                family(
                    format!("{name}_total"),
                    help.clone(),
                    MetricType::Counter,
                    counts,
                ),
                family(
                    format!("{name}_rate"),
                    format!("{help} (events per second over the meter's time span)"),
                    MetricType::Gauge,
                    rates,
                ),
            ]
        }
        MetricKind::Distribution => {
            let dists: Vec<_> = fam
                .series
                .iter()
                .filter_map(|s| match &s.value {
                    SeriesValue::Distribution(d) => Some((s, &**d)),
                    _ => None,
                })
                .collect();
            let opts = &snapshot.histograms;
            let bounds = opts.bounds_for(name);
            let hists = dists
                .iter()
                .map(|(s, d)| {
                    let data = &d.data;
                    let bucket = bounds
                        .iter()
                        .zip(classic_counts(data, bounds))
                        .map(|(&upper_bound, cumulative_count)| Bucket {
                            cumulative_count,
                            upper_bound,
                        })
                        .collect();
                    let pos = native_buckets(&data.positive, opts.native_schema);
                    let neg = native_buckets(&data.negative, opts.native_schema);
                    let span = |v: Vec<(i32, u32)>| {
                        v.into_iter()
                            .map(|(offset, length)| BucketSpan { offset, length })
                            .collect::<Vec<_>>()
                    };
                    Metric {
                        histogram: Some(Histogram {
                            sample_count: data.count,
                            sample_sum: data.sum(),
                            bucket,
                            schema: opts.native_schema,
                            // Non-zero: that is what marks the histogram as native, also while
                            // it is empty.
                            zero_threshold: ZERO_THRESHOLD,
                            zero_count: data.zero,
                            negative_span: span(neg.spans),
                            negative_delta: neg.deltas,
                            positive_span: span(pos.spans),
                            positive_delta: pos.deltas,
                        }),
                        ..metric(s)
                    }
                })
                .collect();
            let mut out = vec![family(
                name.to_string(),
                format!("{help} (all time)"),
                MetricType::Histogram,
                hists,
            )];
            let window = dists
                .iter()
                .map(|(s, d)| Metric {
                    summary: Some(Summary {
                        sample_count: d.data.count,
                        sample_sum: d.data.sum(),
                        quantile: d
                            .window_quantiles()
                            .into_iter()
                            .map(|(quantile, value)| Quantile { quantile, value })
                            .collect(),
                    }),
                    ..metric(s)
                })
                .collect();
            out.push(family(
                format!("{name}_window"),
                format!("{help} (quantiles over the recent window, 0 and 1 its min and max; sum and count all time)"),
                MetricType::Summary,
                window,
            ));
            for (suffix, what, get) in ALL_TIME_STATS {
                let ms = dists
                    .iter()
                    .filter(|(_, d)| d.data.count > 0)
                    .map(|(s, d)| gauge(s, get(&d.data)))
                    .collect();
                out.push(family(
                    format!("{name}{suffix}"),
                    format!("{help} ({what})"),
                    MetricType::Gauge,
                    ms,
                ));
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Registry;

    #[test]
    fn every_family_round_trips_and_histograms_are_native_and_classic() {
        let r = Registry::default();
        let g = r
            .user_group(&[("job_name", "j"), ("operator", "o"), ("subtask", "0")])
            .unwrap();
        g.counter("rows").unwrap().inc(7);
        g.meter("hits", 60).unwrap().mark_event(3);
        g.gauge("fill").unwrap().set_f64(0.25);
        let d = g.distribution("lat").unwrap();
        for v in [0.0, 0.75, 1.0, 1.5, 2.0, 3.0, 100.0, -2.0] {
            d.update_f64(v);
        }
        let fams = decode_protobuf(&encode_protobuf(&r.snapshot())).unwrap();
        let by_name = |n: &str| {
            fams.iter().find(|f| f.name == n).unwrap_or_else(|| {
                panic!(
                    "{n} missing from {:?}",
                    fams.iter().map(|f| &f.name).collect::<Vec<_>>()
                )
            })
        };
        let c = by_name("weir_user_rows_total");
        assert_eq!(c.r#type, MetricType::Counter as i32);
        assert_eq!(c.metric[0].counter.as_ref().unwrap().value, 7.0);
        let labels: Vec<_> = c.metric[0]
            .label
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(
            labels,
            [("job_name", "j"), ("operator", "o"), ("subtask", "0")]
        );
        assert_eq!(
            by_name("weir_user_hits_total").metric[0]
                .counter
                .as_ref()
                .unwrap()
                .value,
            3.0
        );
        assert_eq!(
            by_name("weir_user_fill").metric[0]
                .gauge
                .as_ref()
                .unwrap()
                .value,
            0.25
        );
        // The window's quantiles, 0 and 1 the window's min and max; sum and count all time.
        let w = by_name("weir_user_lat_window");
        assert_eq!(w.r#type, MetricType::Summary as i32);
        let s = w.metric[0].summary.clone().unwrap();
        assert_eq!((s.sample_count, s.sample_sum), (8, 106.25));
        assert_eq!(s.quantile.len(), 7);
        assert_eq!((s.quantile[0].quantile, s.quantile[0].value), (0.0, -2.0));
        assert_eq!((s.quantile[6].quantile, s.quantile[6].value), (1.0, 100.0));
        assert_eq!(
            by_name("weir_user_lat_min").metric[0]
                .gauge
                .as_ref()
                .unwrap()
                .value,
            -2.0
        );
        let h = by_name("weir_user_lat");
        assert_eq!(h.r#type, MetricType::Histogram as i32);
        let h = h.metric[0].histogram.clone().unwrap();
        assert_eq!((h.sample_count, h.schema, h.zero_count), (8, 3, 1));
        assert!(h.zero_threshold > 0.0);
        // Classic: cumulative at the default bounds.
        let at = |b: f64| {
            h.bucket
                .iter()
                .find(|x| x.upper_bound == b)
                .unwrap()
                .cumulative_count
        };
        assert_eq!(
            (at(0.5), at(1.0), at(2.5), at(5.0), at(100.0)),
            (2, 4, 6, 7, 8)
        );
        // Native: positive counts add up to the positive values; one negative bucket.
        let absolute = |d: &[i64]| {
            d.iter()
                .scan(0i64, |c, x| {
                    *c += x;
                    Some(*c)
                })
                .sum::<i64>()
        };
        assert_eq!(absolute(&h.positive_delta), 6);
        assert_eq!(absolute(&h.negative_delta), 1);
        assert_eq!(
            h.negative_span,
            vec![BucketSpan {
                offset: 8,
                length: 1
            }]
        );
    }
}
