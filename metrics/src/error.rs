//! The one error type of `weir-metrics`. Every variant says what was wrong and where, in words a
//! user can act on.

use std::fmt;

/// What went wrong in the metric model, the update protocol, the configuration or an exporter.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum MetricsError {
    /// A group name, metric name or label key that Prometheus and OTLP cannot carry.
    #[error("{what} `{name}` is not valid: {rule}")]
    InvalidName {
        what: NameKind,
        name: String,
        rule: &'static str,
    },
    /// A label value that cannot be exported.
    #[error("label value {value:?} for key `{key}` is not valid: {rule}")]
    InvalidLabelValue {
        key: String,
        value: String,
        rule: &'static str,
    },
    /// The same exported name is wanted by two different metrics.
    #[error("metric `{name}` clashes: {detail}")]
    Clash { name: String, detail: String },
    /// A malformed or truncated update batch from another process.
    #[error("malformed metric update batch at byte {offset}: {detail}")]
    Decode { offset: usize, detail: String },
    /// A well-formed batch that does not fit what was defined earlier on the same channel.
    #[error("metric update batch rejected: {0}")]
    Protocol(String),
    /// A configuration key or value that weir does not accept.
    #[error("configuration `{key}` = {value:?}: {detail}")]
    Config {
        key: String,
        value: String,
        detail: String,
    },
    /// An exporter could not start or could not deliver.
    #[error("{exporter} exporter: {detail}")]
    Export {
        exporter: &'static str,
        detail: String,
    },
}

/// Which kind of name a validation error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Group,
    Metric,
    LabelKey,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Group => "group name",
            NameKind::Metric => "metric name",
            NameKind::LabelKey => "label key",
        })
    }
}

pub type Result<T, E = MetricsError> = std::result::Result<T, E>;
