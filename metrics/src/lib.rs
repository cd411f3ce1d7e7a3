//! weir's metric model, the protocol that carries metric updates from worker processes, their
//! aggregation, and the exporters (Prometheus pull, OTLP push, Pushgateway push).
//!
//! This crate knows nothing of Arrow, Python or the engine: the engine gives it label values
//! and bytes received from workers; the Python SDK wraps its handles.
//!
//! ```
//! use weir_metrics::Registry;
//! let registry = Registry::default();
//! let udf = registry
//!     .user_group(&[("job_name", "demo"), ("operator", "score"), ("subtask", "0")])
//!     .unwrap();
//! let rows = udf.counter("rows").unwrap();
//! let latency = udf.distribution("latency_ms").unwrap();
//! rows.inc(1);
//! latency.update_f64(0.7);
//! let text = weir_metrics::prometheus::encode_text(&registry.snapshot());
//! assert!(text.contains("weir_user_rows_total{job_name=\"demo\",operator=\"score\",subtask=\"0\"} 1"));
//! ```

mod atomic;
pub mod buckets;
pub mod config;
mod counter;
mod distribution;
mod error;
pub mod export;
mod gauge;
mod group;
pub mod histogram;
mod meter;
pub mod name;
pub mod prometheus;
pub mod prometheus_protobuf;
pub mod protocol;
mod registry;
pub mod remote;
mod snapshot;

pub use counter::Counter;
pub use distribution::{Distribution, DistributionData, DistributionSnapshot, QUANTILES};
pub use error::{MetricsError, NameKind, Result};
pub use gauge::{Gauge, GaugeFn, GaugeValue};
pub use group::MetricGroup;
pub use meter::{Meter, DEFAULT_METER_SPAN_SECS};
pub use registry::{
    render_labels, Metric, MetricSpec, Registry, RegistryOptions, SeriesInfo,
    DEFAULT_CARDINALITY_LIMIT, DEFAULT_DISTRIBUTION_WINDOW, USER_NAMESPACE,
};
pub use snapshot::{FamilySnapshot, Labels, MetricKind, SeriesSnapshot, SeriesValue, Snapshot};
