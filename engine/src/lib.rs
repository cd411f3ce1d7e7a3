//! weir's streaming engine: Arrow record batches flowing through operators, planned from a
//! Table API or SQL. This crate knows nothing of Prometheus or OTLP: its own metrics go
//! through `weir-metrics`.
//!
//! SQL ([`sql`]) and the Table API ([`table`]) build a logical plan ([`plan`]) that runs as a
//! parallel job graph ([`runtime`]) of operators on record batches. Functions outside the
//! engine (Python UDFs) plug in through [`udf`]; the Python worker backend is the crate
//! `weir-udf-python`.

pub mod cli;
pub mod connectors;
pub mod error;
pub mod expr;
pub mod operators;
pub mod options;
pub mod physical;
pub mod plan;
pub mod runtime;
pub mod session;
pub mod sql;
pub mod stack;
pub mod stream;
pub mod table;
pub mod types;
pub mod udf;

pub use error::{EngineError, Result};
