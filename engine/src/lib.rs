//! weir's streaming engine: Arrow record batches flowing through operators, planned from a
//! Table API or SQL. This crate knows nothing of Prometheus or OTLP: its own metrics go
//! through `weir-metrics`.
//!
//! Built so far: the type system ([`types`]), expressions ([`expr`]), the `datagen` source,
//! the `Calc` operator and a linear [`job::Pipeline`] with backpressure and operator metrics.
//! Parallel subtasks, windows, joins, the Table API and SQL come next.

pub mod agg_ops;
pub mod aggregate;
pub mod channel;
pub mod connectors;
pub mod datagen;
pub mod error;
pub mod expr;
pub mod functions;
pub mod job;
pub mod operator;
pub mod ops;
pub mod plan;
pub mod runtime;
pub mod sql;
pub mod stream;
pub mod table;
pub mod types;
pub mod udf;

pub use error::{EngineError, Result};
