//! weir's Python UDF backend, apart from the engine (which knows UDFs only through the
//! [`weir_engine::udf`] seam) and used by the Python package:
//!
//! - [`channel`]: the worker channel's frames (versioned, tagged, length-prefixed; Arrow IPC
//!   batches; results carrying their metric updates; checked decoding), both sides;
//! - [`process`]: the engine side, a [`weir_engine::udf::UdfBackend`] that runs one
//!   `python -m weir.worker` process per UDF subtask, with bundles, restart and replay, and
//!   the `weir_python_udf_*` system metrics;
//! - [`deps`]: a job's Python dependencies (`python.files`, `python.archives`,
//!   `python.requirements`), prepared once per job in its private directory.

pub mod channel;
pub mod deps;
pub mod process;
