//! weir's streaming engine: Arrow record batches flowing through operators, planned from a
//! Table API or SQL. This crate knows nothing of Prometheus or OTLP: its own metrics go
//! through `weir-metrics`.
//!
//! Built so far: the type system ([`types`]). The operators, the Table API and SQL come next.

pub mod error;
pub mod expr;
pub mod types;

pub use error::{EngineError, Result};
