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
//! | Distribution | `B` (summary: `quantile` 0 (window min), 0.5 … 0.999, 1 (window max) over the recent window, `B_sum`, `B_count`), `B_min`, `B_max`, `B_mean` (gauges, all time) |

use std::fmt::Write as _;

use crate::distribution::DistributionSnapshot;
use crate::gauge::GaugeValue;
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
}

impl Format {
    /// The format a scraper asked for in its `Accept` header: OpenMetrics when it lists
    /// `application/openmetrics-text`, the text format otherwise.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    /// The `Content-Type` of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => TEXT_CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
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

/// Encodes in `format`.
pub fn encode(snapshot: &Snapshot, format: Format) -> String {
    let series: usize = snapshot.families.iter().map(|f| f.series.len()).sum();
    let mut w = Writer {
        out: String::with_capacity(series * 96 + 1024),
        format,
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

struct Writer {
    out: String,
    format: Format,
}

impl Writer {
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
        let help = format!(
            "{} (quantiles over the recent window; sum and count all time)",
            fam.help
        );
        self.header(name, "summary", &help);
        let mut qbuf = ryu::Buffer::new();
        for (labels, d) in dists() {
            if let Some((lo, _)) = d.window_min_max {
                self.sample_start(name, "", labels, Some(("quantile", "0")));
                self.float(lo);
            }
            for &(q, v) in &d.quantiles {
                let qs = qbuf.format(q).to_string();
                self.sample_start(name, "", labels, Some(("quantile", &qs)));
                self.float(v);
            }
            if let Some((_, hi)) = d.window_min_max {
                self.sample_start(name, "", labels, Some(("quantile", "1")));
                self.float(hi);
            }
            self.sample_start(name, "_sum", labels, None);
            self.float(d.data.sum());
            self.sample_start(name, "_count", labels, None);
            self.uint(d.data.count);
        }
        type Stat = fn(&DistributionSnapshot) -> f64;
        let stats: [(&str, &str, Stat); 3] = [
            ("_min", "smallest value, all time", |d| d.data.min),
            ("_max", "largest value, all time", |d| d.data.max),
            ("_mean", "mean value, all time", |d| d.data.mean()),
        ];
        for (suffix, what, get) in stats {
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
                    self.float(get(d));
                }
            }
        }
    }
}
