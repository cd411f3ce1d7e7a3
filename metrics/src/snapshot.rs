//! A point-in-time reading of a registry: what every exporter consumes. Storage (the metric
//! cells) never knows how it is encoded; encoders never touch the cells.

use std::sync::Arc;
use std::time::SystemTime;

use crate::distribution::DistributionSnapshot;
use crate::gauge::GaugeValue;

/// The four kinds of metric a UDF can register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricKind {
    Counter,
    Gauge,
    Meter,
    Distribution,
}

impl MetricKind {
    /// Lower-case name used in messages and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Meter => "meter",
            MetricKind::Distribution => "distribution",
        }
    }
}

/// Label pairs of a series, sorted by key.
pub type Labels = Arc<[(String, String)]>;

/// Every family of a registry at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub taken: SystemTime,
    /// How distributions are exported as histograms (the registry's settings).
    pub histograms: Arc<crate::histogram::HistogramOptions>,
    /// Families in name order.
    pub families: Vec<FamilySnapshot>,
}

/// All series of one exported name.
#[derive(Clone, Debug)]
pub struct FamilySnapshot {
    /// Exported base name, e.g. `weir_user_my_group_rows` (suffixes such as `_total` are added
    /// by the encoders).
    pub name: Arc<str>,
    pub help: Arc<str>,
    pub kind: MetricKind,
    pub series: Vec<SeriesSnapshot>,
}

/// One labelled series and its value.
#[derive(Clone, Debug)]
pub struct SeriesSnapshot {
    pub labels: Labels,
    /// The labels pre-rendered in Prometheus syntax without braces: `a="x",b="y"`.
    pub label_text: Arc<str>,
    /// When the series was registered (OTLP start time).
    pub created: SystemTime,
    pub value: SeriesValue,
}

/// The reading of one series.
#[derive(Clone, Debug)]
pub enum SeriesValue {
    Counter { value: i64, monotonic: bool },
    Gauge(GaugeValue),
    Meter { count: u64, rate: f64 },
    Distribution(Box<DistributionSnapshot>),
}
