//! Engine errors as Python exceptions: each [`EngineError`] kind raises its class of
//! `weir.util.exceptions` (PyFlink's names), which also derive from the built-in weir raised
//! before (`ValueError`, `RuntimeError`), so existing `except` clauses keep working.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use weir_engine::error::EngineError;

/// What can become a Python exception here.
pub(crate) trait IntoPyException {
    fn into_py_exception(self) -> PyErr;
}

impl IntoPyException for EngineError {
    fn into_py_exception(self) -> PyErr {
        let class = match &self {
            EngineError::Parse { .. } => "SqlParseException",
            EngineError::NoSuchTable { .. } => "TableNotExistException",
            EngineError::TableExists { .. } => "TableAlreadyExistException",
            EngineError::Type { .. }
            | EngineError::Plan { .. }
            | EngineError::TableOption { .. }
            | EngineError::Config(_) => "ValidationException",
            EngineError::Execution(_) | EngineError::Arrow { .. } => "TableException",
        };
        raise(class, self.to_string())
    }
}

impl IntoPyException for String {
    fn into_py_exception(self) -> PyErr {
        PyValueError::new_err(self)
    }
}

impl IntoPyException for &str {
    fn into_py_exception(self) -> PyErr {
        PyValueError::new_err(self.to_string())
    }
}

impl IntoPyException for arrow_schema::ArrowError {
    fn into_py_exception(self) -> PyErr {
        PyValueError::new_err(self.to_string())
    }
}

/// An exception of class `class` of `weir.util.exceptions` with `message`; the built-in it
/// derives from if that module cannot be imported.
pub(crate) fn raise(class: &str, message: String) -> PyErr {
    Python::attach(|py| {
        let made = py
            .import("weir.util.exceptions")
            .and_then(|m| m.getattr(class))
            .and_then(|c| c.call1((message.clone(),)));
        match made {
            Ok(e) => PyErr::from_value(e),
            Err(_) if class == "TableException" => PyRuntimeError::new_err(message),
            Err(_) => PyValueError::new_err(message),
        }
    })
}
