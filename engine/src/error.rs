//! The one error type of `weir-engine`.

/// What went wrong while planning or running a job.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A type name that weir does not know or cannot parse.
    #[error("type `{text}` is not valid: {detail}")]
    Type { text: String, detail: String },
    /// An expression that cannot be planned (unknown column or function, type mismatch).
    #[error("expression `{expr}`: {detail}")]
    Plan { expr: String, detail: String },
    /// SQL text that does not parse.
    #[error("SQL `{expr}` does not parse: {detail}")]
    Parse { expr: String, detail: String },
    /// A table or view that is not registered.
    #[error("expression `{expr}`: {detail}")]
    NoSuchTable { expr: String, detail: String },
    /// A table or view created under a name that is taken.
    #[error("expression `{expr}`: {detail}")]
    TableExists { expr: String, detail: String },
    /// A connector option that is unknown, missing or has a bad value.
    #[error("table `{table}`, option '{key}': {detail}")]
    TableOption {
        table: String,
        key: String,
        detail: String,
    },
    /// A configuration value that is not accepted (the message names the key and the value).
    #[error("{0}")]
    Config(String),
    /// A failure while evaluating data.
    #[error("{0}")]
    Execution(String),
    /// An error of Arrow's kernels, with where it happened.
    #[error("{context}: {source}")]
    Arrow {
        context: String,
        #[source]
        source: arrow_schema::ArrowError,
    },
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
