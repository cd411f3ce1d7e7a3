//! The worker side of the worker channel (`python -m weir.worker`): frames over a blocking
//! Unix socket, Arrow columns in and out, and the metric updates of each bundle attached to
//! its result.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_array::{ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use pyo3::exceptions::{PyConnectionError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use weir_engine::types::SqlType;
use weir_metrics::remote::UpdateCollector;
use weir_metrics::{Registry, RegistryOptions};
use weir_udf_python::channel::{self, Frame, DEFAULT_MAX_FRAME, HEADER_LEN};

use crate::arrow_ffi::{conform, from_pyarrow, to_pyarrow};
use crate::convert::{column_to_list, list_to_array};
use crate::metrics::PyMetricGroup;

struct Inner {
    /// The reading half; writes go through [`WorkerChannel::writer`], so that the heartbeat
    /// thread can write while the main thread waits for input.
    stream: UnixStream,
    names: Vec<String>,
    result_types: Vec<DataType>,
}

/// The worker's end of its channel to the engine.
#[pyclass(name = "WorkerChannel", module = "weir._native", frozen)]
pub struct WorkerChannel {
    inner: Mutex<Inner>,
    writer: Arc<Mutex<UnixStream>>,
    /// Made at the handshake, with the engine's cardinality limit. Locked only without the
    /// GIL (gauge callbacks, which take it, are read apart from the collector).
    collector: Mutex<Option<UpdateCollector>>,
    registry: std::sync::OnceLock<Registry>,
}

fn write_frame(stream: &Mutex<UnixStream>, frame: &Frame) -> PyResult<()> {
    let bytes = frame
        .encode()
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    stream
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .write_all(&bytes)
        .map_err(|e| io_err(&format!("writing a {} frame", frame.kind()), e))
}

/// Sends a heartbeat every `interval` from a thread of its own, which never takes the GIL: a
/// UDF busy in Python or native code still answers, a stopped or hung process does not. When
/// the engine is gone (a write fails, or the worker's parent changed because the engine
/// process died) the worker exits at once, even in the middle of a UDF: nobody is waiting for
/// its results.
fn start_heartbeats(writer: Arc<Mutex<UnixStream>>, interval: Duration) {
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    let started = std::time::Instant::now();
    let spawned = std::thread::Builder::new()
        .name("weir-heartbeat".into())
        .spawn(move || loop {
            std::thread::sleep(interval);
            // SAFETY: as above.
            let orphaned = unsafe { libc::getppid() } != parent;
            let millis = started.elapsed().as_millis() as u64;
            if orphaned || write_frame(&writer, &Frame::Heartbeat { millis }).is_err() {
                // SAFETY: _exit ends the process without running anything else; no lock
                // this thread holds can be needed afterwards.
                unsafe { libc::_exit(70) };
            }
        });
    if let Err(e) = spawned {
        eprintln!("weir worker: cannot start the heartbeat thread: {e}");
    }
}

fn io_err(what: &str, e: impl std::fmt::Display) -> PyErr {
    PyConnectionError::new_err(format!("worker channel: {what}: {e}"))
}

impl Inner {
    /// The next frame; `Ok(None)` on timeout (nothing arrived) and `Err` when the engine went
    /// away or sent something malformed.
    fn read(&mut self, timeout: Option<Duration>) -> Result<Option<Frame>, String> {
        let mut header = [0u8; HEADER_LEN];
        self.stream
            .set_read_timeout(timeout)
            .map_err(|e| e.to_string())?;
        let first = loop {
            match self.stream.read(&mut header) {
                Ok(0) => return Err("the engine closed the channel".into()),
                Ok(n) => break n,
                // A signal (SIGCONT after a stop, SIGWINCH ...) interrupts the wait: wait on.
                // Taking it for a closed channel made the worker quit with bundles to do.
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(None)
                }
                Err(e) => return Err(e.to_string()),
            }
        };
        self.stream
            .set_read_timeout(None)
            .map_err(|e| e.to_string())?;
        self.stream
            .read_exact(&mut header[first..])
            .map_err(|e| format!("a frame header was cut: {e}"))?;
        let (tag, len) =
            Frame::decode_header(&header, DEFAULT_MAX_FRAME).map_err(|e| e.to_string())?;
        let mut body = vec![0u8; len];
        self.stream
            .read_exact(&mut body)
            .map_err(|e| format!("a frame body was cut: {e}"))?;
        Frame::decode_body(tag, &body)
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

impl WorkerChannel {
    /// The channel over a connected stream; says hello.
    fn over(stream: UnixStream) -> PyResult<Self> {
        let writer = Arc::new(Mutex::new(
            stream
                .try_clone()
                .map_err(|e| io_err("duplicating the socket", e))?,
        ));
        let inner = Inner {
            stream,
            names: Vec::new(),
            result_types: Vec::new(),
        };
        write_frame(
            &writer,
            &Frame::Hello {
                version: channel::VERSION,
                pid: std::process::id(),
            },
        )?;
        Ok(Self {
            inner: Mutex::new(inner),
            writer,
            collector: Mutex::new(None),
            registry: std::sync::OnceLock::new(),
        })
    }
}

#[pymethods]
impl WorkerChannel {
    /// Connects to the engine's socket and says hello.
    #[new]
    fn new(py: Python<'_>, path: &str) -> PyResult<Self> {
        let stream = py
            .detach(|| UnixStream::connect(path))
            .map_err(|e| io_err(&format!("connecting to {path}"), e))?;
        Self::over(stream)
    }

    /// A thread-mode worker's channel: its end of a socket pair (the descriptor is taken
    /// over, closed with the channel).
    #[staticmethod]
    fn from_fd(fd: i32) -> PyResult<Self> {
        use std::os::fd::FromRawFd;
        // SAFETY: the engine hands this descriptor (one end of a socket pair it made) to the
        // worker thread and uses it no more.
        let stream = unsafe { UnixStream::from_raw_fd(fd) };
        Self::over(stream)
    }

    /// Closes the channel both ways: the engine sees the worker's end, and the worker's
    /// other threads (gauges) stop at their next write.
    fn close(&self) {
        let _ = self
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .shutdown(std::net::Shutdown::Both);
    }

    /// Waits for the handshake: job identity, configuration and the pickled functions.
    fn handshake<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let frame = py.detach(|| self.lock().read(None));
        let h = match frame {
            Ok(Some(Frame::Handshake(h))) => h,
            Ok(Some(other)) => {
                return Err(io_err(
                    "waiting for the handshake",
                    format!("got {}", other.kind()),
                ))
            }
            Ok(None) => unreachable!("no timeout"),
            Err(e) => return Err(io_err("waiting for the handshake", e)),
        };
        let mut types = Vec::new();
        for f in &h.functions {
            let t = SqlType::parse(&f.result_type)
                .map_err(|e| PyValueError::new_err(format!("function `{}`: {e}", f.name)))?;
            types.push(t.data_type);
        }
        {
            let mut inner = self.lock();
            inner.names = h.functions.iter().map(|f| f.name.clone()).collect();
            inner.result_types = types;
        }
        // Series over the limit are refused here, as the engine would: a UDF that makes a
        // series per row keeps a bounded registry and sends a bounded set of definitions.
        let limit = h
            .config
            .get("python.internal.cardinality-limit")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or_else(|| RegistryOptions::default().cardinality_limit);
        let mut options = RegistryOptions {
            cardinality_limit: limit,
            ..RegistryOptions::default()
        };
        if let Some(p) = h.config.get("python.internal.name-prefix") {
            options.prefix = p.clone();
        }
        let registry = Registry::new(options);
        *self.collector.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(UpdateCollector::new(registry.clone()));
        let _ = self.registry.set(registry);
        if let Some(ms) = h
            .config
            .get("python.internal.heartbeat-interval")
            .and_then(|v| v.parse::<u64>().ok())
        {
            start_heartbeats(self.writer.clone(), Duration::from_millis(ms.max(1)));
        }
        let d = PyDict::new(py);
        d.set_item("job", &h.job)?;
        d.set_item("operator", &h.operator)?;
        d.set_item("subtask", h.subtask)?;
        d.set_item("parallelism", h.parallelism)?;
        d.set_item("attempt", h.attempt)?;
        let config = PyDict::new(py);
        for (k, v) in &h.config {
            config.set_item(k, v)?;
        }
        d.set_item("config", config)?;
        let fs = PyList::empty(py);
        for f in &h.functions {
            let fd = PyDict::new(py);
            fd.set_item("name", &f.name)?;
            fd.set_item("payload", PyBytes::new(py, &f.payload))?;
            fd.set_item("args", f.args.clone())?;
            fd.set_item("result_type", &f.result_type)?;
            fs.append(fd)?;
        }
        d.set_item("functions", fs)?;
        Ok(d)
    }

    /// The root of the functions' metric groups.
    fn metric_group(&self) -> PyResult<PyMetricGroup> {
        let g = self
            .registry
            .get()
            .ok_or_else(|| io_err("metric_group", "called before the handshake"))?
            .user_group(&[])
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(PyMetricGroup::new(Some(g)))
    }

    fn ready(&self, py: Python<'_>) -> PyResult<()> {
        self.send_metrics(py)?;
        write_frame(&self.writer, &Frame::Ready)
    }

    /// The next message: `("input", bundle, columns, rows)`, `("flush",)`, `("close",)`, or
    /// `None` when nothing came within `timeout_ms`. Raises `ConnectionError` when the
    /// engine has gone.
    fn next<'py>(&self, py: Python<'py>, timeout_ms: u64) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let timeout = Duration::from_millis(timeout_ms.max(1));
        let frame = py
            .detach(|| self.lock().read(Some(timeout)))
            .map_err(|e| io_err("reading", e))?;
        let Some(frame) = frame else { return Ok(None) };
        Ok(Some(match frame {
            Frame::Input { bundle, batch } => {
                let rows = batch.num_rows();
                let cols = Bound::new(
                    py,
                    Columns {
                        lists: (0..batch.num_columns()).map(|_| None).collect(),
                        batch,
                    },
                )?;
                PyTuple::new(
                    py,
                    [
                        "input".into_pyobject(py)?.into_any(),
                        bundle.into_pyobject(py)?.into_any(),
                        cols.into_any(),
                        rows.into_pyobject(py)?.into_any(),
                    ],
                )?
            }
            Frame::Flush => PyTuple::new(py, ["flush"])?,
            Frame::Close => PyTuple::new(py, ["close"])?,
            Frame::Heartbeat { .. } => PyTuple::new(py, ["heartbeat"])?,
            Frame::Trace { bundle } => PyTuple::new(
                py,
                [
                    "trace".into_pyobject(py)?.into_any(),
                    bundle.into_pyobject(py)?.into_any(),
                ],
            )?,
            other => {
                return Err(io_err(
                    "reading",
                    format!("unexpected {} frame from the engine", other.kind()),
                ))
            }
        }))
    }

    /// Sends one bundle's results (a list per function) with the metric updates made since
    /// the last send. `keep` (a bool per input row) marks the rows not skipped. A value that
    /// does not fit the declared result type raises `ValueError` naming function and row.
    #[pyo3(signature = (bundle, results, rows, worker_nanos, keep = None))]
    fn send_result(
        &self,
        py: Python<'_>,
        bundle: u64,
        results: &Bound<'_, PyList>,
        rows: usize,
        worker_nanos: u64,
        keep: Option<Vec<bool>>,
    ) -> PyResult<()> {
        let (names, types) = {
            let inner = self.lock();
            (inner.names.clone(), inner.result_types.clone())
        };
        if results.len() != types.len() {
            return Err(PyValueError::new_err(format!(
                "{} result lists for {} functions",
                results.len(),
                types.len()
            )));
        }
        let mut fields = Vec::new();
        let mut cols: Vec<ArrayRef> = Vec::new();
        for (i, (list, t)) in results.iter().zip(&types).enumerate() {
            // A vectorized UDF's result is a pyarrow array; a row-at-a-time one's a list.
            let arrow = !list.is_instance_of::<PyList>() && list.hasattr("_export_to_c")?;
            let a = if arrow {
                from_pyarrow(&list).and_then(|a| {
                    conform(a, t).map_err(|e| {
                        PyValueError::new_err(format!("function `{}` returned {e}", names[i]))
                    })
                })?
            } else {
                list_to_array(&list, t).map_err(|e| {
                    PyValueError::new_err(format!(
                        "function `{}` returned a wrong value: {e}",
                        names[i]
                    ))
                })?
            };
            if a.len() != rows {
                return Err(PyValueError::new_err(format!(
                    "function `{}` returned {} values for {rows} rows",
                    names[i],
                    a.len()
                )));
            }
            fields.push(Field::new(format!("r{i}"), t.clone(), true));
            cols.push(a);
        }
        let mut skipped = 0u32;
        if let Some(k) = keep {
            skipped = k.iter().filter(|x| !**x).count() as u32;
            if skipped > 0 {
                fields.push(Field::new("keep", DataType::Boolean, false));
                cols.push(Arc::new(BooleanArray::from(k)));
            }
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        // The bundle's deltas are taken and its result written in one step under the
        // collector's lock, so that definitions a gauge read sends never come after a result
        // that uses them. Gauges are not read here (see `send_gauges`).
        py.detach(|| {
            let mut c = self.collector.lock().unwrap_or_else(|p| p.into_inner());
            let metrics = collect_bytes(c.as_mut(), UpdateCollector::collect_deltas);
            write_frame(
                &self.writer,
                &Frame::Result {
                    bundle,
                    batch,
                    metrics,
                    skipped,
                    worker_nanos,
                },
            )
        })
    }

    /// Sends metric updates made outside bundles (an idle worker, `open()`, `close()`), and
    /// the gauges.
    fn send_metrics(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| {
            let mut c = self.collector.lock().unwrap_or_else(|p| p.into_inner());
            let metrics = collect_bytes(c.as_mut(), UpdateCollector::collect_deltas);
            if metrics.is_empty() {
                return Ok(());
            }
            write_frame(&self.writer, &Frame::Metrics { metrics })
        })?;
        self.send_gauges(py)
    }

    /// Reads the gauges and sends their values. Called by the worker's gauge thread every
    /// `python.fn-execution.bundle.time`, off the bundle path: a slow callback holds up only
    /// that thread. Definitions of new series go first, under the collector's lock.
    fn send_gauges(&self, py: Python<'_>) -> PyResult<()> {
        let reads = py.detach(|| {
            let mut c = self.collector.lock().unwrap_or_else(|p| p.into_inner());
            let Some(c) = c.as_mut() else {
                return Ok(None);
            };
            let (defs, reads) = c.gauges();
            if !defs.is_empty() {
                write_frame(
                    &self.writer,
                    &Frame::Metrics {
                        metrics: defs.encode(),
                    },
                )?;
            }
            Ok::<_, PyErr>(Some(reads))
        })?;
        let Some(reads) = reads else { return Ok(()) };
        // Callbacks take the GIL themselves; nothing is locked while they run.
        let values = py.detach(|| reads.read());
        if values.is_empty() {
            return Ok(());
        }
        py.detach(|| {
            write_frame(
                &self.writer,
                &Frame::Metrics {
                    metrics: values.encode(),
                },
            )
        })
    }

    fn send_log(&self, level: u8, logger: String, message: String) -> PyResult<()> {
        write_frame(
            &self.writer,
            &Frame::Log {
                level,
                logger,
                message,
            },
        )
    }

    /// In a traced bundle: function `function` is about to evaluate row `row`.
    fn progress(&self, bundle: u64, function: u32, row: u32) -> PyResult<()> {
        write_frame(
            &self.writer,
            &Frame::Progress {
                bundle,
                function,
                row,
            },
        )
    }

    #[pyo3(signature = (bundle, function, exception, message, traceback, row))]
    #[allow(clippy::too_many_arguments)]
    fn send_error(
        &self,
        bundle: u64,
        function: String,
        exception: String,
        message: String,
        traceback: String,
        row: String,
    ) -> PyResult<()> {
        write_frame(
            &self.writer,
            &Frame::Error {
                bundle,
                function,
                exception,
                message,
                traceback,
                row,
            },
        )
    }
}

/// A collection's encoded bytes (empty when there is nothing, or no collector yet).
fn collect_bytes(
    c: Option<&mut UpdateCollector>,
    f: fn(&mut UpdateCollector) -> weir_metrics::protocol::UpdateBatch,
) -> Vec<u8> {
    match c.map(f) {
        Some(b) if !b.is_empty() => b.encode(),
        _ => Vec::new(),
    }
}

impl WorkerChannel {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The columns of one input bundle, handed to the Python worker as it needs them: `cols[i]`
/// is column `i` as a list of Python values (made once, on first use), `cols.arrow(i)` the same
/// column as a `pyarrow.Array` sharing the bundle's buffers (for vectorized UDFs).
#[pyclass(module = "weir._native")]
pub struct Columns {
    batch: RecordBatch,
    lists: Vec<Option<Py<PyList>>>,
}

#[pymethods]
impl Columns {
    fn __len__(&self) -> usize {
        self.batch.num_columns()
    }

    fn __getitem__(&mut self, py: Python<'_>, i: usize) -> PyResult<Py<PyList>> {
        let Some(slot) = self.lists.get_mut(i) else {
            return Err(pyo3::exceptions::PyIndexError::new_err(format!(
                "column {i} of {}",
                self.batch.num_columns()
            )));
        };
        if let Some(l) = slot {
            return Ok(l.clone_ref(py));
        }
        let l = column_to_list(py, self.batch.column(i).as_ref())?.unbind();
        *slot = Some(l.clone_ref(py));
        Ok(l)
    }

    /// Column `i` as a `pyarrow.Array` (no copy).
    fn arrow<'py>(&self, py: Python<'py>, i: usize) -> PyResult<Bound<'py, PyAny>> {
        let Some(c) = self.batch.columns().get(i) else {
            return Err(pyo3::exceptions::PyIndexError::new_err(format!(
                "column {i} of {}",
                self.batch.num_columns()
            )));
        };
        to_pyarrow(py, c.as_ref())
    }
}

/// A thread-mode worker's socket and its thread's Python identity (0 until it runs Python).
type LiveThread = (UnixStream, Arc<AtomicU64>);

/// The thread-mode workers alive in this process: a copy of each one's socket (to end it at
/// exit) by number, and a signal when one ends.
struct LiveThreads {
    /// The last number given, and the live workers by number.
    sockets: Mutex<(u64, std::collections::HashMap<u64, LiveThread>)>,
    ended: std::sync::Condvar,
}

fn live_threads() -> &'static LiveThreads {
    static LIVE: std::sync::OnceLock<LiveThreads> = std::sync::OnceLock::new();
    LIVE.get_or_init(|| LiveThreads {
        sockets: Mutex::new((0, std::collections::HashMap::new())),
        ended: std::sync::Condvar::new(),
    })
}

/// Set when the process exits: thread-mode workers are not started any more.
static EXITING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// How long the exit waits for thread-mode functions to return from their current call.
const THREAD_EXIT_WAIT: Duration = Duration::from_secs(10);

/// Ends the thread-mode workers before the interpreter finalizes (at exit, with the GIL
/// released): their sockets are shut down, so each returns from its next read and its thread
/// ends. A thread that took the GIL again after finalization began would be ended by Python
/// with `pthread_exit`, which cannot unwind through Rust frames: the process would abort. A
/// function still in a call after [`THREAD_EXIT_WAIT`] is not waited for: the process exits
/// at once (status 70), saying so.
pub fn stop_threads(py: Python<'_>) {
    let live = live_threads();
    // No new ones: a job whose worker this ends would start another.
    EXITING.store(true, std::sync::atomic::Ordering::SeqCst);
    {
        let guard = live.sockets.lock().unwrap_or_else(|p| p.into_inner());
        for (s, ident) in guard.1.values() {
            let _ = s.shutdown(std::net::Shutdown::Both);
            // A function in a long call (or a bundle of them) stops at its next Python
            // instruction: SystemExit, which the worker does not take for the function's
            // error, ends the thread.
            let ident = ident.load(Ordering::SeqCst);
            if ident != 0 {
                // SAFETY: called with the GIL held; the identity is a live thread's (or no
                // thread's, then nothing happens); SystemExit is a valid exception type.
                unsafe {
                    pyo3::ffi::PyThreadState_SetAsyncExc(
                        ident as std::os::raw::c_long,
                        pyo3::ffi::PyExc_SystemExit,
                    );
                }
            }
        }
    }
    let left = py.detach(|| {
        let deadline = std::time::Instant::now() + THREAD_EXIT_WAIT;
        let mut guard = live.sockets.lock().unwrap_or_else(|p| p.into_inner());
        while !guard.1.is_empty() {
            let now = std::time::Instant::now();
            if now >= deadline {
                break;
            }
            guard = live
                .ended
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        guard.1.len()
    });
    if left > 0 {
        eprintln!(
            "weir: {left} thread-mode function(s) still in a call {}s after the exit began; exiting without them",
            THREAD_EXIT_WAIT.as_secs()
        );
        // SAFETY: _exit ends the process; nothing after it runs.
        unsafe { libc::_exit(70) };
    }
}

/// Starts thread-mode workers (`python.execution-mode=thread`): a thread of its own (never one
/// of the engine's runtime) attached to this process's interpreter runs
/// `weir.worker.run_thread(fd)` over its end of the socket pair. The GIL is taken only while
/// Python runs: the channel waits, decodes and encodes without it.
pub fn thread_starter() -> weir_udf_python::process::ThreadStarter {
    Arc::new(|stream: UnixStream, who: String| {
        if EXITING.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::other(
                "the Python interpreter is exiting: no new thread-mode worker",
            ));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let live = live_threads();
        let ident = Arc::new(AtomicU64::new(0));
        let id = {
            let mut guard = live.sockets.lock().unwrap_or_else(|p| p.into_inner());
            guard.0 += 1;
            let id = guard.0;
            guard.1.insert(id, (stream.try_clone()?, ident.clone()));
            id
        };
        let forget = move || {
            let mut guard = live.sockets.lock().unwrap_or_else(|p| p.into_inner());
            guard.1.remove(&id);
            live.ended.notify_all();
        };
        let spawned = std::thread::Builder::new()
            .name("weir-python-udf".into())
            .spawn(move || {
                use std::os::fd::IntoRawFd;
                let fd = stream.into_raw_fd();
                let how = Python::attach(|py| {
                    // Python's identity of this thread (threading.get_ident), for the exit.
                    // SAFETY: PyThread_get_thread_ident has no preconditions.
                    ident.store(
                        unsafe { pyo3::ffi::PyThread_get_thread_ident() } as u64,
                        Ordering::SeqCst,
                    );
                    let run = match py
                        .import("weir.worker")
                        .and_then(|m| m.getattr("run_thread"))
                    {
                        Ok(run) => run,
                        Err(e) => {
                            // Not taken over by a channel: closed here.
                            // SAFETY: the descriptor is this thread's and nothing uses it.
                            unsafe { libc::close(fd) };
                            return format!("could not start: {e}");
                        }
                    };
                    // From here the channel owns the descriptor, also when the call raises.
                    match run.call1((fd, who.as_str())) {
                        Ok(code) => match code.extract::<i32>().unwrap_or(0) {
                            0 => "ended".to_string(),
                            code => format!("ended with status {code}"),
                        },
                        Err(e) => format!("ended by a Python exception: {e}"),
                    }
                });
                forget();
                let _ = tx.send(how);
            });
        if let Err(e) = spawned {
            let mut guard = live.sockets.lock().unwrap_or_else(|p| p.into_inner());
            guard.1.remove(&id);
            return Err(e);
        }
        Ok(rx)
    })
}
