//! The `weir` command as `pip install ./python-sdk` installs it (`weir.cli:main`): the engine's
//! one command-line implementation ([`weir_engine::cli`]), with `CREATE FUNCTION ... LANGUAGE
//! PYTHON` loading functions through the Python package and running them in workers.

use std::sync::Arc;

use pyo3::prelude::*;
use weir_engine::cli::FunctionLoader;
use weir_engine::table::TableEnvironment;
use weir_udf_python::process::ProcessBackend;

use crate::env::register_python;

struct PyLoader {
    /// `weir.cli._function(path, language, python_files)` -> the registration's parts.
    load: Py<PyAny>,
    backend: Arc<ProcessBackend>,
}

impl FunctionLoader for PyLoader {
    fn create_function(
        &self,
        env: &TableEnvironment,
        name: &str,
        path: &str,
        language: &str,
    ) -> Result<(), String> {
        let files = env
            .config()
            .get("python.files")
            .cloned()
            .unwrap_or_default();
        Python::attach(|py| {
            let why = |e: PyErr| format!("CREATE FUNCTION {name} AS '{path}': {e}");
            let parts = self.load.call1(py, (path, language, files)).map_err(why)?;
            let (pickled, result_type, vectorized, kind): (Vec<u8>, String, bool, String) =
                parts.extract(py).map_err(why)?;
            register_python(
                env,
                self.backend.clone(),
                name,
                pickled,
                &result_type,
                None,
                vectorized,
                &kind,
            )
            .map_err(why)
        })
    }
}

/// Runs the `weir` command line `args` (without the program's name) with the GIL released;
/// returns its exit code.
#[pyfunction]
pub fn cli_main(
    py: Python<'_>,
    args: Vec<String>,
    defaults: Vec<(String, String)>,
    load: Py<PyAny>,
) -> u8 {
    let loader = PyLoader {
        load,
        backend: ProcessBackend::with_threads(crate::worker::thread_starter()),
    };
    py.detach(|| weir_engine::cli::main(args, defaults, Some(&loader)))
}
