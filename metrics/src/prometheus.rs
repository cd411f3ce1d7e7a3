//! Encoders of a [`Snapshot`] in the Prometheus text format 0.0.4 and in OpenMetrics 1.0.
//!
//! One registry, one encoder: weir's own metrics and the users' go through the same snapshot
//! and the same writer, so the output is always one well-formed text.
//!
//! How each kind is exported (base name `B`, see the registry for how `B` is formed):
//!
//! | kind | families |
//! |---|---|
//! | Counter | `B_total` (counter) |
//! | Gauge | `B` (gauge) |
//! | Meter | `B_total` (counter: events), `B_rate` (gauge: events per second over the meter's span) |
//! | Distribution | `B` (histogram, all time: `B_bucket{le}`, `B_sum`, `B_count`; native buckets in protobuf), `B_window` (summary: `quantile` 0 (window min), 0.5 … 0.999, 1 (window max) over the recent window; `_sum`, `_count` all time), `B_min`, `B_max`, `B_mean` (gauges, all time) |
//!
//! `le` and `quantile` values are written as Prometheus writes them when it reads the protobuf
//! format (`1.0`, `0.001`, `1e+06`), so a series has the same labels whichever format was scraped.

use std::fmt::Write as _;

use crate::distribution::ALL_TIME_STATS;
use crate::gauge::GaugeValue;
use crate::histogram::{classic_counts, HistogramOptions};
pub use crate::name::label_float;
pub use crate::prometheus_protobuf::PROTOBUF_CONTENT_TYPE;
use crate::snapshot::{FamilySnapshot, MetricKind, SeriesValue, Snapshot};

/// Content type of the text format 0.0.4.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of OpenMetrics 1.0.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Which exposition format to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    OpenMetrics,
    /// Length-delimited `io.prometheus.client.MetricFamily` messages: the format of native
    /// histograms.
    Protobuf,
}

impl Format {
    /// The format a scraper asked for in its `Accept` header: the acceptable one with the
    /// highest `q`, protobuf before OpenMetrics before text on a tie; the text format when
    /// nothing (or only `*/*`) is asked for.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let mut best: Option<(f64, u8, Format)> = None;
        for range in accept.unwrap_or("").split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let (mut q, mut proto, mut delimited) = (1.0f64, None, None);
            for p in parts {
                let Some((k, v)) = p.split_once('=') else {
                    continue;
                };
                let v = v.trim().trim_matches('"');
                match k.trim().to_ascii_lowercase().as_str() {
                    "q" => q = v.parse().unwrap_or(0.0),
                    "proto" => proto = Some(v.to_string()),
                    "encoding" => delimited = Some(v.eq_ignore_ascii_case("delimited")),
                    _ => {}
                }
            }
            let format = match media.as_str() {
                "application/vnd.google.protobuf"
                    if proto.as_deref() == Some("io.prometheus.client.MetricFamily")
                        && delimited != Some(false) =>
                {
                    (2, Format::Protobuf)
                }
                "application/openmetrics-text" => (1, Format::OpenMetrics),
                "text/plain" | "*/*" | "text/*" => (0, Format::Text),
                _ => continue,
            };
            if q <= 0.0 || !q.is_finite() {
                continue;
            }
            let better = match best {
                None => true,
                Some((bq, rank, _)) => q > bq || (q == bq && format.0 > rank),
            };
            if better {
                best = Some((q, format.0, format.1));
            }
        }
        best.map(|b| b.2).unwrap_or(Format::Text)
    }

    /// The `Content-Type` of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => TEXT_CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Protobuf => PROTOBUF_CONTENT_TYPE,
        }
    }
}

/// Encodes in any format, as the bytes of a response body.
pub fn encode_bytes(snapshot: &Snapshot, format: Format) -> Vec<u8> {
    match format {
        Format::Protobuf => crate::prometheus_protobuf::encode_protobuf(snapshot),
        text => encode(snapshot, text).into_bytes(),
    }
}

/// Encodes in the text format 0.0.4.
pub fn encode_text(snapshot: &Snapshot) -> String {
    encode(snapshot, Format::Text)
}

/// Encodes in OpenMetrics 1.0 (ends with `# EOF`).
pub fn encode_openmetrics(snapshot: &Snapshot) -> String {
    encode(snapshot, Format::OpenMetrics)
}

/// Encodes in `format` (a text format; [`encode_bytes`] also writes protobuf).
pub fn encode(snapshot: &Snapshot, format: Format) -> String {
    debug_assert!(
        format != Format::Protobuf,
        "protobuf is written by encode_bytes"
    );
    let series: usize = snapshot.families.iter().map(|f| f.series.len()).sum();
    let mut w = Writer {
        out: String::with_capacity(series * 96 + 1024),
        format,
        histograms: &snapshot.histograms,
    };
    for fam in &snapshot.families {
        if fam.series.is_empty() {
            continue;
        }
        w.family(fam);
    }
    if format == Format::OpenMetrics {
        w.out.push_str("# EOF\n");
    }
    w.out
}

struct Writer<'a> {
    out: String,
    format: Format,
    histograms: &'a HistogramOptions,
}

impl Writer<'_> {
    fn header(&mut self, family: &str, kind: &str, help: &str) {
        let om = self.format == Format::OpenMetrics;
        // OpenMetrics names a counter family without `_total`; the text format names it as
        // its sample.
        let family = if om && kind == "counter" {
            family.strip_suffix("_total").unwrap_or(family)
        } else {
            family
        };
        self.out.push_str("# HELP ");
        self.out.push_str(family);
        self.out.push(' ');
        for c in help.chars() {
            match c {
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                '"' if om => self.out.push_str("\\\""),
                c => self.out.push(c),
            }
        }
        self.out.push_str("\n# TYPE ");
        self.out.push_str(family);
        self.out.push(' ');
        self.out.push_str(kind);
        self.out.push('\n');
    }

    fn sample_start(
        &mut self,
        name: &str,
        suffix: &str,
        labels: &str,
        extra: Option<(&str, &str)>,
    ) {
        self.out.push_str(name);
        self.out.push_str(suffix);
        if !labels.is_empty() || extra.is_some() {
            self.out.push('{');
            self.out.push_str(labels);
            if let Some((k, v)) = extra {
                if !labels.is_empty() {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                self.out.push_str(v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
    }

    fn int(&mut self, v: i64) {
        self.out.push_str(itoa::Buffer::new().format(v));
        self.out.push('\n');
    }

    fn uint(&mut self, v: u64) {
        self.out.push_str(itoa::Buffer::new().format(v));
        self.out.push('\n');
    }

    fn float(&mut self, v: f64) {
        if v.is_nan() {
            self.out.push_str("NaN");
        } else if v.is_infinite() {
            self.out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        } else if v.fract() == 0.0 && v.abs() < 1e15 {
            let _ = write!(self.out, "{}", v as i64);
        } else {
            self.out.push_str(ryu::Buffer::new().format_finite(v));
        }
        self.out.push('\n');
    }

    fn family(&mut self, fam: &FamilySnapshot) {
        let name = &*fam.name;
        match fam.kind {
            MetricKind::Counter => {
                let total = format!("{name}_total");
                self.header(&total, "counter", &fam.help);
                for s in &fam.series {
                    if let SeriesValue::Counter { value, .. } = s.value {
                        self.sample_start(name, "_total", &s.label_text, None);
                        self.int(value);
                    }
                }
            }
            MetricKind::Gauge => {
                self.header(name, "gauge", &fam.help);
                for s in &fam.series {
                    if let SeriesValue::Gauge(v) = s.value {
                        self.sample_start(name, "", &s.label_text, None);
                        match v {
                            GaugeValue::Int(i) => self.int(i),
                            GaugeValue::Float(f) => self.float(f),
                        }
                    }
                }
            }
            MetricKind::Meter => {
                self.header(&format!("{name}_total"), "counter", &fam.help);
                for s in &fam.series {
                    if let SeriesValue::Meter { count, .. } = s.value {
                        self.sample_start(name, "_total", &s.label_text, None);
                        self.uint(count);
                    }
                }
                let help = format!(
                    "{} (events per second over the meter's time span)",
                    fam.help
                );
                self.header(&format!("{name}_rate"), "gauge", &help);
                for s in &fam.series {
                    if let SeriesValue::Meter { rate, .. } = s.value {
                        self.sample_start(name, "_rate", &s.label_text, None);
                        self.float(rate);
                    }
                }
            }
            MetricKind::Distribution => self.distribution(fam),
        }
    }

    fn distribution(&mut self, fam: &FamilySnapshot) {
        let name = &*fam.name;
        let dists = || {
            fam.series.iter().filter_map(|s| match &s.value {
                SeriesValue::Distribution(d) => Some((&*s.label_text, &**d)),
                _ => None,
            })
        };
        // `B`: the histogram, all time (classic buckets; native ones only exist in protobuf).
        self.header(name, "histogram", &format!("{} (all time)", fam.help));
        let bounds = self.histograms.bounds_for(name);
        let les: Vec<String> = bounds.iter().map(|&b| label_float(b)).collect();
        for (labels, d) in dists() {
            for (le, n) in les.iter().zip(classic_counts(&d.data, bounds)) {
                self.sample_start(name, "_bucket", labels, Some(("le", le)));
                self.uint(n);
            }
            self.sample_start(name, "_bucket", labels, Some(("le", "+Inf")));
            self.uint(d.data.count);
            self.sample_start(name, "_sum", labels, None);
            self.float(d.data.sum());
            self.sample_start(name, "_count", labels, None);
            self.uint(d.data.count);
        }
        // `B_window`: a summary, as Prometheus' client libraries make one: quantiles over the
        // recent window (exact to 0.27 %; 0 and 1 are the window's min and max), `_sum` and
        // `_count` all time.
        let window = format!("{name}_window");
        self.header(
            &window,
            "summary",
            &format!(
                "{} (quantiles over the recent window, 0 and 1 its min and max; sum and count all time)",
                fam.help
            ),
        );
        for (labels, d) in dists() {
            for (q, v) in d.window_quantiles() {
                let qs = label_float(q);
                self.sample_start(&window, "", labels, Some(("quantile", &qs)));
                self.float(v);
            }
            self.sample_start(&window, "_sum", labels, None);
            self.float(d.data.sum());
            self.sample_start(&window, "_count", labels, None);
            self.uint(d.data.count);
        }
        for (suffix, what, get) in ALL_TIME_STATS {
            if !dists().any(|(_, d)| d.data.count > 0) {
                continue;
            }
            self.header(
                &format!("{name}{suffix}"),
                "gauge",
                &format!("{} ({what})", fam.help),
            );
            for (labels, d) in dists() {
                if d.data.count > 0 {
                    self.sample_start(name, suffix, labels, None);
                    self.float(get(&d.data));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_q_values() {
        let prom_native = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        let prom_om = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prom_native)), Format::Protobuf);
        assert_eq!(Format::negotiate(Some(prom_om)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(
            Format::negotiate(Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text")),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some("text/plain;q=0.9,application/openmetrics-text;q=0.5")),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0,text/plain;q=0.1")),
            Format::Text
        );
    }

    #[test]
    fn label_floats_are_written_as_prometheus_writes_them() {
        let cases = [
            (0.0, "0.0"),
            (1.0, "1.0"),
            (0.001, "0.001"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (2.5, "2.5"),
            (1000.0, "1000.0"),
            (123456.0, "123456.0"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (-0.5, "-0.5"),
            (f64::INFINITY, "+Inf"),
        ];
        for (v, want) in cases {
            assert_eq!(label_float(v), want, "{v}");
        }
    }
}
