//! The engine inside the Python driver process: a table environment, its tables, and the
//! jobs it runs on a tokio runtime while Python waits with the GIL released.

use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use weir_engine::runtime::job::JobSummary;
use weir_engine::runtime::job::Sink;
use weir_engine::runtime::{JobControl, JobGraph, SinkFactory};
use weir_engine::session::ProcessSession;
use weir_engine::sql::SqlOutcome;
use weir_engine::stream::StreamBatch;
use weir_engine::table::{Table as EngineTable, TableEnvironment};
use weir_engine::types::{type_name, SqlType};
use weir_engine::udf::{FunctionKind, UdfRef};
use weir_udf_python::process::{ProcessBackend, PythonFunction};

use crate::convert::{list_items, value_to_py, values_to_array};
use crate::errors::{raise, IntoPyException};
use crate::plan::{exprs, group_window, PyExpr};

fn err(e: impl IntoPyException) -> PyErr {
    e.into_py_exception()
}

/// A table environment of the process session (which owns the runtime, the metric registry
/// and the reporters), with its Python worker backend.
#[pyclass(name = "Env", module = "weir._native", frozen)]
pub struct Env {
    env: TableEnvironment,
    backend: Arc<ProcessBackend>,
}

/// Shows the session's warnings (settings that cannot change any more, a busy port) as
/// Python warnings, where the user's code runs.
fn warn_all(py: Python<'_>, warnings: Vec<String>) -> PyResult<()> {
    for w in warnings {
        PyErr::warn(
            py,
            &py.get_type::<pyo3::exceptions::PyUserWarning>(),
            &std::ffi::CString::new(w.replace('\0', " ")).unwrap_or_default(),
            2,
        )?;
    }
    Ok(())
}

/// Registers a pickled Python function in `env` (see `Env.register_python_function`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn register_python(
    env: &TableEnvironment,
    backend: Arc<ProcessBackend>,
    name: &str,
    pickled: Vec<u8>,
    result_type: &str,
    display_name: Option<&str>,
    vectorized: bool,
    kind: &str,
) -> PyResult<()> {
    let t = SqlType::parse(result_type).map_err(err)?;
    let kind = match kind {
        "scalar" => FunctionKind::Scalar,
        "table" => FunctionKind::Table,
        "aggregate" => FunctionKind::Aggregate,
        "pandas_aggregate" => FunctionKind::VectorizedAggregate,
        "table_aggregate" => FunctionKind::TableAggregate,
        other => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "unknown function kind {other:?}"
            )))
        }
    };
    env.create_temporary_function(
        name,
        Arc::new(UdfRef {
            name: display_name.unwrap_or(name).to_string(),
            result_type: t.data_type,
            kind,
            payload: Arc::new(PythonFunction {
                pickled,
                vectorized,
            }),
            backend,
        }),
    );
    Ok(())
}

/// Stops the process's reporters after their last export (at interpreter exit).
#[pyfunction]
pub fn shutdown(py: Python<'_>) {
    // Thread-mode functions first: they must be out of Python before it finalizes.
    crate::worker::stop_threads(py);
    stop_reporters(py, &ProcessSession::global());
    // Jobs still running at exit (cancelled by a signal) never unwind: their workers see
    // their sockets go and exit; the directories go now.
    weir_udf_python::process::remove_socket_dirs();
}

fn stop_reporters(py: Python<'_>, session: &ProcessSession) {
    if let Ok(rt) = session.runtime() {
        py.detach(|| {
            rt.block_on(async {
                let _ =
                    tokio::time::timeout(Duration::from_secs(15), session.stop_reporters()).await;
            })
        });
    }
}

// PyFlink's names (`from_path`, `from_elements`) win over Rust's conventions.
#[allow(clippy::wrong_self_convention)]
#[pymethods]
impl Env {
    #[new]
    fn new(streaming: bool) -> PyResult<Self> {
        let session = ProcessSession::global();
        session
            .runtime()
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        Ok(Self {
            env: TableEnvironment::with_session(streaming, session),
            backend: ProcessBackend::with_threads(crate::worker::thread_starter()),
        })
    }

    /// A literal written in SQL (`TIMESTAMP '2026-01-01 10:00:00'`, `12.34`).
    fn parse_literal(&self, text: &str) -> PyResult<PyExpr> {
        let empty = arrow_schema::Schema::empty();
        let mut parsed =
            weir_engine::sql::parse_expressions(&self.env, &empty, text).map_err(err)?;
        match parsed.len() {
            1 => Ok(parsed.remove(0).into()),
            _ => Err(err(format!("`{text}` is not one literal"))),
        }
    }

    fn is_streaming(&self) -> bool {
        self.env.is_streaming()
    }

    fn set_config(&self, key: &str, value: &str) -> PyResult<()> {
        self.env.set_config(key, value).map_err(err)
    }

    fn get_config(&self, key: &str) -> Option<String> {
        self.env.config().get(key).cloned()
    }

    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in self.env.config() {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// Runs one statement: `("ok", message)`, `("query", Table)`, `("insert", Job)`,
    /// `("text", text)` or `("function", name, path, language)`.
    fn execute_sql<'py>(&self, py: Python<'py>, stmt: &str) -> PyResult<Bound<'py, PyTuple>> {
        let outcome = self.env.execute_sql(stmt).map_err(err)?;
        match outcome {
            SqlOutcome::Ok(m) => PyTuple::new(
                py,
                [
                    "ok".into_pyobject(py)?.into_any(),
                    m.into_pyobject(py)?.into_any(),
                ],
            ),
            SqlOutcome::Text(t) => PyTuple::new(
                py,
                [
                    "text".into_pyobject(py)?.into_any(),
                    t.into_pyobject(py)?.into_any(),
                ],
            ),
            SqlOutcome::Query(t) => PyTuple::new(
                py,
                [
                    "query".into_pyobject(py)?.into_any(),
                    Bound::new(py, Table { t })?.into_any(),
                ],
            ),
            SqlOutcome::Insert { sink, job } => {
                let j = self.start(py, job, None, &sink)?;
                PyTuple::new(
                    py,
                    [
                        "insert".into_pyobject(py)?.into_any(),
                        Bound::new(py, j)?.into_any(),
                    ],
                )
            }
            SqlOutcome::CreateFunction {
                name,
                path,
                language,
            } => PyTuple::new(
                py,
                ["function", name.as_str(), path.as_str(), language.as_str()],
            ),
        }
    }

    fn sql_query(&self, query: &str) -> PyResult<Table> {
        Ok(Table {
            t: self.env.sql_query(query).map_err(err)?,
        })
    }

    fn from_path(&self, name: &str) -> PyResult<Table> {
        Ok(Table {
            t: self.env.from_path(name).map_err(err)?,
        })
    }

    fn create_temporary_view(&self, name: &str, table: &Table) -> PyResult<()> {
        self.env.create_temporary_view(name, &table.t).map_err(err)
    }

    fn drop_temporary_view(&self, name: &str) -> bool {
        self.env.drop(name)
    }

    fn list_tables(&self) -> Vec<String> {
        self.env.list_tables()
    }

    /// A table of literal rows (each a sequence) with column names and type names.
    fn from_rows(
        &self,
        rows: &Bound<'_, PyAny>,
        names: Vec<String>,
        types: Vec<String>,
    ) -> PyResult<Table> {
        if names.len() != types.len() {
            return Err(err("as many names as types are needed"));
        }
        let rows = list_items(rows)?;
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        for (c, (name, ty)) in names.iter().zip(&types).enumerate() {
            let t = SqlType::parse(ty).map_err(err)?;
            let mut values = Vec::with_capacity(rows.len());
            for (r, row) in rows.iter().enumerate() {
                let v = row
                    .get_item(c)
                    .map_err(|_| err(format!("row {r} has fewer than {} fields", names.len())))?;
                values.push(v);
            }
            let a = values_to_array(&values, &t.data_type)
                .map_err(|e| err(format!("column `{name}`: {e}")))?;
            fields.push(Field::new(name, t.data_type.clone(), true));
            columns.push(a);
        }
        let schema = Arc::new(Schema::new(fields));
        let batch = if columns.is_empty() {
            RecordBatch::new_empty(schema.clone())
        } else {
            RecordBatch::try_new(schema.clone(), columns).map_err(err)?
        };
        Ok(Table {
            t: self.env.from_batches(schema, vec![batch]),
        })
    }

    /// Registers a Python function (pickled) returning `result_type` under `name`;
    /// `display_name` (default `name`) is what errors, operators and metrics call it;
    /// `vectorized` for a pandas or arrow UDF (called once per batch); `kind` is `scalar`,
    /// `table` (`result_type` is then `ARRAY<ROW<...>>`: the rows per input row),
    /// `aggregate` or `pandas_aggregate`.
    #[pyo3(signature = (name, pickled, result_type, display_name = None, vectorized = false, kind = "scalar"))]
    fn register_python_function(
        &self,
        name: &str,
        pickled: Vec<u8>,
        result_type: &str,
        display_name: Option<&str>,
        vectorized: bool,
        kind: &str,
    ) -> PyResult<()> {
        register_python(
            &self.env,
            self.backend.clone(),
            name,
            pickled,
            result_type,
            display_name,
            vectorized,
            kind,
        )
    }

    /// Runs `table` into a sink table.
    fn execute_insert(&self, py: Python<'_>, table: &Table, sink: &str) -> PyResult<Job> {
        let graph = self.env.plan_insert(&table.t, sink).map_err(err)?;
        self.start(py, graph, None, sink)
    }

    /// Runs `table` and hands its rows to Python as they come.
    fn execute_collect(&self, py: Python<'_>, table: &Table) -> PyResult<Job> {
        let (tx, rx) = mpsc::channel();
        let graph = self
            .env
            .plan_to(&table.t, Arc::new(ChannelSink(tx)))
            .map_err(err)?;
        self.start(py, graph, Some(rx), "collect")
    }

    /// Where `/metrics` is served (`host:port`), once a job has started the reporters. The
    /// same for every environment of the process.
    fn metrics_address(&self) -> Option<String> {
        self.env.session().metrics_address().map(|a| a.to_string())
    }

    /// Starts the reporters now (they start with the first job otherwise).
    fn start_reporters(&self, py: Python<'_>) -> PyResult<Option<String>> {
        self.ensure_reporters(py)?;
        Ok(self.metrics_address())
    }

    /// The current exposition in Prometheus text format (the whole process's).
    fn metrics_text(&self) -> String {
        weir_metrics::prometheus::encode_text(&self.env.registry().snapshot())
    }

    /// Jobs whose series are exported now (running, or finished and kept).
    fn session_jobs(&self) -> Vec<String> {
        self.env.session().jobs()
    }

    /// Ends this environment: its finished jobs' series leave the exports; the last open
    /// environment also stops the reporters after a last OTLP export / Pushgateway push.
    fn close(&self, py: Python<'_>) {
        let session = self.env.session();
        if session.close_env(self.env.env_id()) {
            stop_reporters(py, session);
        }
    }
}

impl Env {
    pub(crate) fn engine(&self) -> &TableEnvironment {
        &self.env
    }

    fn ensure_reporters(&self, py: Python<'_>) -> PyResult<()> {
        let warnings = self
            .env
            .session()
            .start_reporters(&self.env.config())
            .map_err(err)?;
        warn_all(py, warnings)
    }

    fn start(
        &self,
        py: Python<'_>,
        mut graph: JobGraph,
        rows: Option<mpsc::Receiver<StreamBatch>>,
        target: &str,
    ) -> PyResult<Job> {
        self.ensure_reporters(py)?;
        let session = self.env.session();
        let (ticket, warnings) = session
            .begin_job(self.env.env_id(), &mut graph)
            .map_err(err)?;
        warn_all(py, warnings)?;
        let control = Arc::new(JobControl::default());
        let done: Arc<Done> = Arc::new((Mutex::new(None), Condvar::new()));
        let job_name = graph.job_name.clone();
        let (c, d) = (control.clone(), done.clone());
        let rt = session.runtime().map_err(err)?;
        rt.spawn(async move {
            let r = ticket.run(graph, c).await.map_err(|e| e.to_string());
            let (lock, cv) = &*d;
            *lock.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
            cv.notify_all();
        });
        Ok(Job {
            rows: Mutex::new(rows),
            done,
            control,
            job_name,
            target: target.to_string(),
        })
    }
}

type Done = (Mutex<Option<Result<JobSummary, String>>>, Condvar);

/// A running job.
#[pyclass(name = "Job", module = "weir._native", frozen)]
pub struct Job {
    rows: Mutex<Option<mpsc::Receiver<StreamBatch>>>,
    done: Arc<Done>,
    control: Arc<JobControl>,
    job_name: String,
    target: String,
}

fn kind_code(b: &StreamBatch, i: usize) -> i8 {
    b.kind(i) as i8
}

#[pymethods]
impl Job {
    #[getter]
    fn job_name(&self) -> &str {
        &self.job_name
    }

    #[getter]
    fn target(&self) -> &str {
        &self.target
    }

    /// The next rows as `[(kind, (values...)), ...]`: an empty list when none came within
    /// `timeout_ms`, `None` when the job has ended and every row was returned. Raises the
    /// job's error when it failed.
    fn next_rows<'py>(
        &self,
        py: Python<'py>,
        timeout_ms: u64,
    ) -> PyResult<Option<Bound<'py, PyList>>> {
        let Some(rx) = self.rows.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return Err(err(
                "this job has no rows to collect (it writes to a table, or another thread is reading)",
            ));
        };
        let (rx, got) = py.detach(move || {
            let got = rx.recv_timeout(Duration::from_millis(timeout_ms));
            (rx, got)
        });
        *self.rows.lock().unwrap_or_else(|p| p.into_inner()) = Some(rx);
        match got {
            Ok(b) => {
                let out = PyList::empty(py);
                for i in 0..b.num_rows() {
                    let values = (0..b.data.num_columns())
                        .map(|c| value_to_py(py, b.data.column(c).as_ref(), i))
                        .collect::<PyResult<Vec<_>>>()?;
                    out.append((kind_code(&b, i), PyTuple::new(py, values)?))?;
                }
                Ok(Some(out))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(Some(PyList::empty(py))),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Every sink has ended: the job is ending; report how.
                self.wait(py, None)?;
                Ok(None)
            }
        }
    }

    /// Waits for the end (at most `timeout` seconds): a summary dict, `None` on timeout.
    /// Raises `RuntimeError` with the job's error when it failed.
    #[pyo3(signature = (timeout = None))]
    fn wait<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let deadline =
            timeout.map(|t| std::time::Instant::now() + Duration::from_secs_f64(t.max(0.0)));
        // Wait in short slices so that Ctrl-C (KeyboardInterrupt) is seen; it cancels the job.
        let r = loop {
            let slice = py.detach(|| {
                let (lock, cv) = &*self.done;
                let g = lock.lock().unwrap_or_else(|p| p.into_inner());
                let (g, _) = cv
                    .wait_timeout_while(g, Duration::from_millis(100), |d| d.is_none())
                    .unwrap_or_else(|p| p.into_inner());
                g.clone()
            });
            if slice.is_some() {
                break slice;
            }
            if let Err(e) = py.check_signals() {
                self.control.cancel();
                return Err(e);
            }
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                break None;
            }
        };
        match r {
            None => Ok(None),
            Some(Ok(s)) => {
                let d = PyDict::new(py);
                d.set_item("rows_read", s.rows_read)?;
                d.set_item("rows_written", s.rows_written)?;
                d.set_item("seconds", s.elapsed.as_secs_f64())?;
                Ok(Some(d))
            }
            Some(Err(e)) => Err(raise(
                "TableException",
                format!("job `{}` failed: {e}", self.job_name),
            )),
        }
    }

    fn is_done(&self) -> bool {
        self.done
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Stops the job (sources stop, what is in flight drains).
    fn cancel(&self) {
        self.control.cancel();
    }

    #[getter]
    fn rows_read(&self) -> u64 {
        self.control
            .rows_read
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A table (a plan) in the driver.
#[pyclass(name = "Table", module = "weir._native", frozen)]
pub struct Table {
    t: EngineTable,
}

impl Table {
    fn of(r: weir_engine::Result<EngineTable>) -> PyResult<Table> {
        r.map(|t| Table { t }).map_err(err)
    }
}

#[pymethods]
impl Table {
    /// Expressions written as SQL text over this table's columns (`"a, b + 1 AS c"`).
    fn parse(&self, text: &str) -> PyResult<Vec<PyExpr>> {
        let schema = self.t.schema().map_err(err)?;
        let parsed =
            weir_engine::sql::parse_expressions(self.t.env(), &schema, text).map_err(err)?;
        Ok(parsed.into_iter().map(PyExpr::from).collect())
    }

    /// A table with no rows and the columns of this table and `right`: what a join
    /// condition written as text is planned over.
    fn join_scope(&self, right: &Table) -> PyResult<Table> {
        let (l, r) = (
            self.t.schema().map_err(err)?,
            right.t.schema().map_err(err)?,
        );
        let fields: Vec<_> = l.fields().iter().chain(r.fields()).cloned().collect();
        let schema = Arc::new(Schema::new(fields));
        Ok(Table {
            t: self.t.env().from_batches(schema, vec![]),
        })
    }

    fn select(&self, fields: Vec<PyRef<'_, PyExpr>>) -> PyResult<Table> {
        Table::of(self.t.select(exprs(fields)))
    }

    fn filter(&self, predicate: &PyExpr) -> PyResult<Table> {
        Table::of(self.t.filter(predicate.e.clone()))
    }

    fn add_columns(&self, fields: Vec<PyRef<'_, PyExpr>>) -> PyResult<Table> {
        Table::of(self.t.add_columns(exprs(fields)))
    }

    fn add_or_replace_columns(&self, fields: Vec<PyRef<'_, PyExpr>>) -> PyResult<Table> {
        Table::of(self.t.add_or_replace_columns(exprs(fields)))
    }

    fn drop_columns(&self, names: Vec<String>) -> PyResult<Table> {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        Table::of(self.t.drop_columns(&names))
    }

    fn rename_columns(&self, renames: Vec<(String, String)>) -> PyResult<Table> {
        let r: Vec<(&str, &str)> = renames
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        Table::of(self.t.rename_columns(&r))
    }

    /// `group_by(keys).select(fields)`; with `window` (kind, size ms, slide ms, time column,
    /// alias) a group window's `window(w).group_by(keys).select(fields)`.
    #[pyo3(signature = (keys, fields, window = None))]
    fn group_by_select(
        &self,
        keys: Vec<PyRef<'_, PyExpr>>,
        fields: Vec<PyRef<'_, PyExpr>>,
        window: Option<(String, i64, Option<i64>, String, String)>,
    ) -> PyResult<Table> {
        let grouped = match window {
            None => self.t.group_by(exprs(keys)),
            Some((kind, size, slide, time, alias)) => self
                .t
                .window(group_window(&kind, size, slide, &time, &alias)?)
                .group_by(exprs(keys)),
        };
        Table::of(grouped.select(exprs(fields)))
    }

    /// `group_by(keys).flat_aggregate(call)`: the keys and the rows the table aggregate
    /// function emits per group (columns named `names`).
    #[pyo3(signature = (keys, call, names = None))]
    fn group_by_flat_aggregate(
        &self,
        keys: Vec<PyRef<'_, PyExpr>>,
        call: &PyExpr,
        names: Option<Vec<String>>,
    ) -> PyResult<Table> {
        Table::of(
            self.t
                .group_by(exprs(keys))
                .flat_aggregate(call.e.clone(), names),
        )
    }

    /// `group_by(keys).aggregate(call)`: the keys and the aggregate's result, a ROW flattened
    /// into its fields (named `names`).
    #[pyo3(signature = (keys, call, names = None, window = None))]
    fn group_by_aggregate(
        &self,
        keys: Vec<PyRef<'_, PyExpr>>,
        call: &PyExpr,
        names: Option<Vec<String>>,
        window: Option<(String, i64, Option<i64>, String, String)>,
    ) -> PyResult<Table> {
        let grouped = match window {
            None => self.t.group_by(exprs(keys)),
            Some((kind, size, slide, time, alias)) => self
                .t
                .window(group_window(&kind, size, slide, &time, &alias)?)
                .group_by(exprs(keys)),
        };
        Table::of(grouped.aggregate(call.e.clone(), names))
    }

    /// `map(call)`: the scalar function's result per row, a ROW flattened into its fields.
    #[pyo3(signature = (call, names = None))]
    fn map(&self, call: &PyExpr, names: Option<Vec<String>>) -> PyResult<Table> {
        Table::of(self.t.map(call.e.clone(), names))
    }

    /// `flat_map(call)`: only the rows the table function yields.
    #[pyo3(signature = (call, names = None))]
    fn flat_map(&self, call: &PyExpr, names: Option<Vec<String>>) -> PyResult<Table> {
        Table::of(self.t.flat_map(call.e.clone(), names))
    }

    /// A join: `kind` is `inner`, `left`, `right` or `full`.
    #[pyo3(signature = (right, condition, kind = "inner"))]
    fn join(&self, right: &Table, condition: &PyExpr, kind: &str) -> PyResult<Table> {
        let c = condition.e.clone();
        Table::of(match kind {
            "inner" => self.t.join(&right.t, c),
            "left" => self.t.left_outer_join(&right.t, c),
            "right" => self.t.right_outer_join(&right.t, c),
            "full" => self.t.full_outer_join(&right.t, c),
            other => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "unknown join kind {other:?}"
                )))
            }
        })
    }

    /// Each row joined with the rows of the table function `call` (names: its columns').
    #[pyo3(signature = (call, names = None, outer = false))]
    fn join_lateral(
        &self,
        call: &PyExpr,
        names: Option<Vec<String>>,
        outer: bool,
    ) -> PyResult<Table> {
        Table::of(self.t.join_lateral(call.e.clone(), names, outer))
    }

    fn union_all(&self, right: &Table) -> PyResult<Table> {
        Table::of(self.t.union_all(&right.t))
    }

    /// A select over an OVER window: `rows` (else RANGE) with `preceding` rows or ms (None:
    /// unbounded) up to the current row.
    #[pyo3(signature = (partition, order, rows, preceding, fields))]
    fn over_select(
        &self,
        partition: Vec<PyRef<'_, PyExpr>>,
        order: &str,
        rows: bool,
        preceding: Option<i64>,
        fields: Vec<PyRef<'_, PyExpr>>,
    ) -> PyResult<Table> {
        Table::of(self.t.over_select(
            exprs(partition),
            order,
            weir_engine::operators::OverFrame { rows, preceding },
            exprs(fields),
        ))
    }

    /// `where(key.in_(values))` with a one-column table.
    fn where_in(&self, key: &PyExpr, values: &Table) -> PyResult<Table> {
        Table::of(self.t.where_in(key.e.clone(), &values.t))
    }

    fn intersect(&self, right: &Table) -> PyResult<Table> {
        Table::of(self.t.intersect(&right.t))
    }

    fn minus(&self, right: &Table) -> PyResult<Table> {
        Table::of(self.t.minus(&right.t))
    }

    fn intersect_all(&self, right: &Table) -> PyResult<Table> {
        Table::of(self.t.intersect_all(&right.t))
    }

    fn minus_all(&self, right: &Table) -> PyResult<Table> {
        Table::of(self.t.minus_all(&right.t))
    }

    fn distinct(&self) -> PyResult<Table> {
        Table::of(self.t.distinct())
    }

    fn order_by(&self, keys: Vec<PyRef<'_, PyExpr>>) -> PyResult<Table> {
        Table::of(self.t.order_by(exprs(keys)))
    }

    fn limit(&self, fetch: usize, offset: usize) -> Table {
        Table {
            t: self.t.limit(fetch, offset),
        }
    }

    /// `[(name, type), ...]`.
    fn schema(&self) -> PyResult<Vec<(String, String)>> {
        let s = self.t.schema().map_err(err)?;
        Ok(s.fields()
            .iter()
            .map(|f| (f.name().clone(), type_name(f.data_type())))
            .collect())
    }

    fn explain(&self) -> PyResult<String> {
        self.t.explain().map_err(err)
    }

    fn schema_text(&self) -> PyResult<String> {
        self.t.schema_text().map_err(err)
    }
}

/// Hands batches to the Python side (`collect()`).
struct ChannelSink(mpsc::Sender<StreamBatch>);

struct ChannelSinkTask(mpsc::Sender<StreamBatch>);

impl SinkFactory for ChannelSink {
    fn name(&self) -> &str {
        "collect"
    }
    fn accepts_updates(&self) -> bool {
        true
    }
    fn max_parallelism(&self) -> usize {
        1
    }
    fn create(&self, _subtask: usize, _parallelism: usize) -> weir_engine::Result<Box<dyn Sink>> {
        Ok(Box::new(ChannelSinkTask(self.0.clone())))
    }
}

impl Sink for ChannelSinkTask {
    fn name(&self) -> &str {
        "collect"
    }
    fn write(&mut self, batch: StreamBatch) -> weir_engine::Result<()> {
        // The Python side may have stopped reading (a `with` block left early): rows are
        // then dropped, not an error.
        let _ = self.0.send(batch);
        Ok(())
    }
}
