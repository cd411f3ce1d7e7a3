//! Native metric objects for Python: PyFlink's `MetricGroup`, `Counter`, `Gauge`, `Meter` and
//! `Distribution`, recording straight into `weir-metrics` structures. An update is one method
//! call on a Rust object: no dictionary lookup, no label handling.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyInt};
use weir_metrics::{GaugeValue, MetricGroup};

fn metric_err(e: weir_metrics::MetricsError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// A scope of metrics (`ctx.get_metric_group()`); a disabled group
/// (`python.metric.enabled=false`) hands out metrics that record nothing.
#[pyclass(name = "MetricGroup", module = "weir.metrics", frozen)]
pub struct PyMetricGroup {
    pub inner: Option<MetricGroup>,
}

impl PyMetricGroup {
    pub fn new(inner: Option<MetricGroup>) -> Self {
        Self { inner }
    }
}

#[pymethods]
impl PyMetricGroup {
    /// A group whose metrics record nothing (`python.metric.enabled=false`).
    #[staticmethod]
    fn disabled() -> PyMetricGroup {
        PyMetricGroup::new(None)
    }

    /// `add_group(name)` adds a scope; `add_group(key, value)` adds a key scope and the label
    /// `key="value"`.
    #[pyo3(signature = (name, extra = None))]
    fn add_group(&self, name: &str, extra: Option<&str>) -> PyResult<PyMetricGroup> {
        let Some(g) = &self.inner else {
            return Ok(PyMetricGroup::new(None));
        };
        let child = match extra {
            None => g.add_group(name),
            Some(v) => g.add_key_group(name, v),
        }
        .map_err(metric_err)?;
        Ok(PyMetricGroup::new(Some(child)))
    }

    fn counter(&self, name: &str) -> PyResult<PyCounter> {
        Ok(PyCounter {
            inner: match &self.inner {
                Some(g) => Some(g.counter(name).map_err(metric_err)?),
                None => None,
            },
        })
    }

    /// `gauge(name, obj)`: `obj` is called at each collection and returns an int or a float.
    /// Without `obj`, the returned gauge is set with `set(value)`.
    #[pyo3(signature = (name, obj = None))]
    fn gauge(&self, name: &str, obj: Option<Py<PyAny>>) -> PyResult<PyGauge> {
        let Some(g) = &self.inner else {
            return Ok(PyGauge { inner: None });
        };
        let gauge = match obj {
            None => g.gauge(name).map_err(metric_err)?,
            Some(f) => {
                let label = g.metric_identifier(name);
                // A failure is logged once per failing streak by the metrics crate.
                g.gauge_fn(name, move || {
                    Python::attach(|py| {
                        let v = f
                            .call0(py)
                            .map_err(|e| format!("gauge `{label}` raised {e}"))?;
                        gauge_value(v.bind(py))
                            .map_err(|t| format!("gauge `{label}` returned a {t}, not a number"))
                    })
                })
                .map_err(metric_err)?
            }
        };
        Ok(PyGauge { inner: Some(gauge) })
    }

    /// `meter(name, time_span_in_seconds=60)`.
    #[pyo3(signature = (name, time_span_in_seconds = 60))]
    fn meter(&self, name: &str, time_span_in_seconds: u32) -> PyResult<PyMeter> {
        Ok(PyMeter {
            inner: match &self.inner {
                Some(g) => Some(g.meter(name, time_span_in_seconds).map_err(metric_err)?),
                None => None,
            },
        })
    }

    fn distribution(&self, name: &str) -> PyResult<PyDistribution> {
        Ok(PyDistribution {
            inner: match &self.inner {
                Some(g) => Some(g.distribution(name).map_err(metric_err)?),
                None => None,
            },
        })
    }

    /// The scope's components, as Flink lists them: `add_group("key", "value")` adds both
    /// `key` and `value`.
    fn get_scope_components(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(g) = &self.inner {
            for p in g.path() {
                out.push(p.name.clone());
                if let Some(v) = &p.value {
                    out.push(v.clone());
                }
            }
        }
        out
    }

    /// The labels this scope adds (`{"key": "value"}`).
    fn get_all_variables<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        if let Some(g) = &self.inner {
            for (k, v) in g.variables() {
                d.set_item(k, v)?;
            }
        }
        Ok(d)
    }

    /// The exported name of a metric `name` in this scope.
    fn get_metric_identifier(&self, name: &str) -> String {
        match &self.inner {
            Some(g) => g.metric_identifier(name),
            None => name.to_string(),
        }
    }

    /// False for the group of `python.metric.enabled=false`.
    #[getter]
    fn enabled(&self) -> bool {
        self.inner.is_some()
    }
}

fn gauge_value(v: &Bound<'_, PyAny>) -> Result<GaugeValue, String> {
    if v.is_instance_of::<PyInt>() {
        if let Ok(i) = v.extract::<i64>() {
            return Ok(GaugeValue::Int(i));
        }
    }
    if v.is_instance_of::<PyFloat>() || v.is_instance_of::<PyInt>() {
        if let Ok(f) = v.extract::<f64>() {
            return Ok(GaugeValue::Float(f));
        }
    }
    if let Ok(f) = v.call_method0("__float__").and_then(|f| f.extract::<f64>()) {
        return Ok(GaugeValue::Float(f));
    }
    Err(v
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into()))
}

#[pyclass(name = "Counter", module = "weir.metrics", frozen)]
pub struct PyCounter {
    inner: Option<weir_metrics::Counter>,
}

#[pymethods]
impl PyCounter {
    #[pyo3(signature = (n = 1))]
    fn inc(&self, n: i64) {
        if let Some(c) = &self.inner {
            c.inc(n);
        }
    }
    #[pyo3(signature = (n = 1))]
    fn dec(&self, n: i64) {
        if let Some(c) = &self.inner {
            c.dec(n);
        }
    }
    /// What this worker counted (the engine adds up all workers).
    fn get_count(&self) -> i64 {
        self.inner.as_ref().map(|c| c.count()).unwrap_or(0)
    }
}

#[pyclass(name = "Gauge", module = "weir.metrics", frozen)]
pub struct PyGauge {
    inner: Option<weir_metrics::Gauge>,
}

#[pymethods]
impl PyGauge {
    /// Sets the value (int or float) of a gauge registered without a callback.
    fn set(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Some(g) = &self.inner {
            if g.is_callback() {
                return Err(PyValueError::new_err(
                    "this gauge reads its callback; it cannot be set",
                ));
            }
            let v = gauge_value(value).map_err(|t| {
                PyValueError::new_err(format!("a gauge takes an int or a float, not a {t}"))
            })?;
            g.set(v);
        }
        Ok(())
    }
    /// The current value (calls the callback), None before the first.
    fn get_value(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let Some(g) = &self.inner else {
            return Ok(py.None());
        };
        match g.value() {
            Ok(Some(GaugeValue::Int(i))) => Ok(i.into_pyobject(py)?.into_any().unbind()),
            Ok(Some(GaugeValue::Float(f))) => Ok(f.into_pyobject(py)?.into_any().unbind()),
            Ok(None) => Ok(py.None()),
            Err(e) => Err(PyValueError::new_err(e)),
        }
    }
}

#[pyclass(name = "Meter", module = "weir.metrics", frozen)]
pub struct PyMeter {
    inner: Option<weir_metrics::Meter>,
}

#[pymethods]
impl PyMeter {
    #[pyo3(signature = (value = 1))]
    fn mark_event(&self, value: u64) {
        if let Some(m) = &self.inner {
            m.mark_event(value);
        }
    }
    fn get_count(&self) -> u64 {
        self.inner.as_ref().map(|m| m.count()).unwrap_or(0)
    }
    /// Events per second over the meter's time span, as this worker saw them.
    fn get_rate(&self) -> f64 {
        self.inner.as_ref().map(|m| m.rate()).unwrap_or(0.0)
    }
}

#[pyclass(name = "Distribution", module = "weir.metrics", frozen)]
pub struct PyDistribution {
    inner: Option<weir_metrics::Distribution>,
}

#[pymethods]
impl PyDistribution {
    /// Records one value (int or float).
    fn update(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Some(d) = &self.inner {
            if let Ok(i) = value.cast::<PyInt>() {
                match i.extract::<i64>() {
                    Ok(v) => d.update_i64(v),
                    Err(_) => d.update_f64(i.extract::<f64>()?),
                }
            } else {
                let v: f64 = value
                    .extract()
                    .map_err(|_| PyValueError::new_err("a distribution takes ints and floats"))?;
                d.update_f64(v);
            }
        }
        Ok(())
    }
}

/// The per-row metric updates (`Counter.inc`, `Meter.mark_event`, `Distribution.update`) as
/// plain CPython methods (`METH_FASTCALL | METH_KEYWORDS`) in place of pyo3's: a UDF makes
/// them once per row or more, and pyo3's general call path (argument description, thread-local
/// bookkeeping) was about half of each call (docs/performance.md). Behaviour, arguments and
/// errors are the pyo3 methods' (which stay the reference, and serve everything else).
pub(crate) mod fast {
    use std::ffi::{c_char, CStr};
    use std::os::raw::c_int;

    use pyo3::ffi;
    use pyo3::prelude::*;
    use pyo3::types::PyType;

    use super::{PyCounter, PyDistribution, PyMeter};

    /// The one argument of `name(arg=default)`, positional or by keyword `kw`: Ok(None) when
    /// absent, Err(()) with a Python error set when the call does not fit.
    unsafe fn one_arg(
        name: &str,
        kw: &CStr,
        args: *const *mut ffi::PyObject,
        nargsf: ffi::Py_ssize_t,
        kwnames: *mut ffi::PyObject,
    ) -> Result<Option<*mut ffi::PyObject>, ()> {
        let npos = ffi::PyVectorcall_NARGS(nargsf as usize);
        let nkw = if kwnames.is_null() {
            0
        } else {
            ffi::PyTuple_GET_SIZE(kwnames)
        };
        if npos + nkw > 1 {
            let msg = format!("{name}() takes at most 1 argument ({} given)\0", npos + nkw);
            ffi::PyErr_SetString(ffi::PyExc_TypeError, msg.as_ptr() as *const c_char);
            return Err(());
        }
        if npos == 1 {
            return Ok(Some(*args));
        }
        if nkw == 1 {
            let key = ffi::PyTuple_GET_ITEM(kwnames, 0);
            if ffi::PyUnicode_CompareWithASCIIString(key, kw.as_ptr()) != 0 {
                let msg = format!("{name}() got an unexpected keyword argument\0");
                ffi::PyErr_SetString(ffi::PyExc_TypeError, msg.as_ptr() as *const c_char);
                return Err(());
            }
            return Ok(Some(*args));
        }
        Ok(None)
    }

    /// An int argument as i64 (a TypeError or OverflowError set otherwise).
    unsafe fn int_arg(o: *mut ffi::PyObject) -> Result<i64, ()> {
        if ffi::PyLong_Check(o) == 0 {
            ffi::PyErr_SetString(ffi::PyExc_TypeError, c"an integer is required".as_ptr());
            return Err(());
        }
        let v = ffi::PyLong_AsLongLong(o);
        if v == -1 && !ffi::PyErr_Occurred().is_null() {
            return Err(());
        }
        Ok(v)
    }

    unsafe fn none() -> *mut ffi::PyObject {
        ffi::Py_IncRef(ffi::Py_None());
        ffi::Py_None()
    }

    unsafe extern "C" fn counter_inc(
        slf: *mut ffi::PyObject,
        args: *const *mut ffi::PyObject,
        nargsf: ffi::Py_ssize_t,
        kwnames: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject {
        let n = match one_arg("inc", c"n", args, nargsf, kwnames) {
            Err(()) => return std::ptr::null_mut(),
            Ok(None) => 1,
            Ok(Some(o)) => match int_arg(o) {
                Ok(v) => v,
                Err(()) => return std::ptr::null_mut(),
            },
        };
        // SAFETY: the method descriptor checked that `slf` is a Counter; the GIL is held.
        let py = Python::assume_attached();
        let c = pyo3::Borrowed::from_ptr(py, slf).cast_unchecked::<PyCounter>();
        if let Some(c) = &c.get().inner {
            c.inc(n);
        }
        none()
    }

    unsafe extern "C" fn meter_mark_event(
        slf: *mut ffi::PyObject,
        args: *const *mut ffi::PyObject,
        nargsf: ffi::Py_ssize_t,
        kwnames: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject {
        let n = match one_arg("mark_event", c"value", args, nargsf, kwnames) {
            Err(()) => return std::ptr::null_mut(),
            Ok(None) => 1,
            Ok(Some(o)) => {
                if ffi::PyLong_Check(o) == 0 {
                    ffi::PyErr_SetString(ffi::PyExc_TypeError, c"an integer is required".as_ptr());
                    return std::ptr::null_mut();
                }
                let v = ffi::PyLong_AsUnsignedLongLong(o);
                if v == u64::MAX && !ffi::PyErr_Occurred().is_null() {
                    return std::ptr::null_mut();
                }
                v
            }
        };
        // SAFETY: as in counter_inc.
        let py = Python::assume_attached();
        let m = pyo3::Borrowed::from_ptr(py, slf).cast_unchecked::<PyMeter>();
        if let Some(m) = &m.get().inner {
            m.mark_event(n);
        }
        none()
    }

    unsafe extern "C" fn distribution_update(
        slf: *mut ffi::PyObject,
        args: *const *mut ffi::PyObject,
        nargsf: ffi::Py_ssize_t,
        kwnames: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject {
        let value = match one_arg("update", c"value", args, nargsf, kwnames) {
            Err(()) => return std::ptr::null_mut(),
            Ok(Some(o)) => o,
            Ok(None) => {
                ffi::PyErr_SetString(
                    ffi::PyExc_TypeError,
                    c"update() missing 1 required positional argument: 'value'".as_ptr(),
                );
                return std::ptr::null_mut();
            }
        };
        // SAFETY: as in counter_inc.
        let py = Python::assume_attached();
        let d = pyo3::Borrowed::from_ptr(py, slf).cast_unchecked::<PyDistribution>();
        let Some(d) = &d.get().inner else {
            return none();
        };
        if ffi::PyLong_Check(value) != 0 {
            let mut overflow: c_int = 0;
            let v = ffi::PyLong_AsLongLongAndOverflow(value, &mut overflow);
            if overflow == 0 && (v != -1 || ffi::PyErr_Occurred().is_null()) {
                d.update_i64(v);
                return none();
            }
            ffi::PyErr_Clear();
            let f = ffi::PyLong_AsDouble(value);
            if f == -1.0 && !ffi::PyErr_Occurred().is_null() {
                return std::ptr::null_mut();
            }
            d.update_f64(f);
            return none();
        }
        let f = ffi::PyFloat_AsDouble(value);
        if f == -1.0 && !ffi::PyErr_Occurred().is_null() {
            ffi::PyErr_Clear();
            ffi::PyErr_SetString(
                ffi::PyExc_ValueError,
                c"a distribution takes ints and floats".as_ptr(),
            );
            return std::ptr::null_mut();
        }
        d.update_f64(f);
        none()
    }

    /// Puts `f` on `ty` as method `name`, over pyo3's.
    fn install(
        ty: &Bound<'_, PyType>,
        name: &'static CStr,
        f: ffi::PyCFunctionFastWithKeywords,
    ) -> PyResult<()> {
        let def = Box::leak(Box::new(ffi::PyMethodDef {
            ml_name: name.as_ptr(),
            ml_meth: ffi::PyMethodDefPointer {
                PyCFunctionFastWithKeywords: f,
            },
            ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
            ml_doc: std::ptr::null(),
        }));
        let py = ty.py();
        // SAFETY: the type is a live heap type of this module; the method table lives for
        // the process; the descriptor is put in the type's dict (as a class body would) and
        // the type's method cache is told.
        unsafe {
            let tp = ty.as_type_ptr();
            let descr = ffi::PyDescr_NewMethod(tp, def);
            if descr.is_null() {
                return Err(PyErr::fetch(py));
            }
            let dict = (*tp).tp_dict;
            let r = ffi::PyDict_SetItemString(dict, name.as_ptr(), descr);
            ffi::Py_DecRef(descr);
            if r != 0 {
                return Err(PyErr::fetch(py));
            }
            ffi::PyType_Modified(tp);
        }
        Ok(())
    }

    pub(crate) fn install_all(py: Python<'_>) -> PyResult<()> {
        install(&py.get_type::<PyCounter>(), c"inc", counter_inc)?;
        install(&py.get_type::<PyMeter>(), c"mark_event", meter_mark_event)?;
        install(
            &py.get_type::<PyDistribution>(),
            c"update",
            distribution_update,
        )?;
        Ok(())
    }
}
