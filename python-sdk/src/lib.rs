//! `weir._native`: the engine, the worker channel and the native metric objects, for the
//! pure Python modules of the `weir` package.

mod arrow_ffi;
mod cli;
mod convert;
mod env;
mod errors;
mod metrics;
mod plan;
mod worker;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    m.add_class::<env::Env>()?;
    m.add_function(wrap_pyfunction!(cli::cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(env::shutdown, m)?)?;
    m.add_class::<env::Table>()?;
    m.add_class::<plan::PyExpr>()?;
    m.add_function(wrap_pyfunction!(plan::call, m)?)?;
    m.add_class::<env::Job>()?;
    m.add_class::<worker::WorkerChannel>()?;
    m.add_class::<worker::Columns>()?;
    m.add_class::<metrics::PyMetricGroup>()?;
    m.add_class::<metrics::PyCounter>()?;
    m.add_class::<metrics::PyGauge>()?;
    m.add_class::<metrics::PyMeter>()?;
    m.add_class::<metrics::PyDistribution>()?;
    metrics::fast::install_all(m.py())?;
    m.add("PROTOCOL_VERSION", weir_udf_python::channel::VERSION)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
