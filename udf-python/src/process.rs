//! Python UDFs in worker processes: the engine side of the worker channel.
//!
//! [`ProcessBackend`] starts one worker (`python -m weir.worker --socket PATH`) per subtask of
//! a UDF operator, connected by a Unix socket in a private (0700, randomly named) directory of
//! the job. Each batch the operator submits is cut into bundles of at most
//! `python.fn-execution.bundle.size` rows and sent at once; results come back in
//! [`Frame::Result`]s that carry the metric updates made while computing them, merged into the
//! registry when the result is accepted.
//!
//! Any way a worker goes away is a dead worker: its socket closes or resets, it sends a frame
//! that cannot be read, or it sends nothing (not even the heartbeats its own thread sends) for
//! `python.worker.heartbeat-timeout` (then it is killed). A new one is started and every bundle
//! that had no result yet is sent again, the first of them traced row by row so that a row that
//! kills its worker is known. A result and its metric updates are accepted together and at most
//! once, so output rows and metric totals stay exact across any number of restarts. When
//! `python.worker.restart.max-attempts` workers in a row die (or fail to start) without
//! returning a result, the job fails, naming the function and row that killed them if known.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::{DataType, SchemaRef};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::UnixListener;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use weir_metrics::remote::{AggregationLevel, RemoteMetrics};
use weir_metrics::{Counter, Distribution};

use crate::channel::{self, Frame, FunctionSpec, Handshake};
use crate::deps::{Deps, DepsConfig};
use weir_engine::error::{EngineError, Result};
use weir_engine::types::type_name;
use weir_engine::udf::{
    aggregate_answer_type, Evaluated, FunctionRunner, Pending, RunnerContext, UdfBackend, UdfCall,
};

/// What the Python SDK stores in a [`crate::udf::UdfRef`]'s payload.
#[derive(Debug)]
pub struct PythonFunction {
    /// The function (or `ScalarFunction` instance), pickled with cloudpickle.
    pub pickled: Vec<u8>,
    /// A pandas or arrow UDF: called once per batch, so its operator's bundles default to
    /// `python.fn-execution.arrow.batch.size` rows.
    pub vectorized: bool,
}

/// Configuration keys read by the process backend (besides the ones workers read).
pub mod keys {
    pub const EXECUTABLE: &str = "python.executable";
    pub const EXECUTION_MODE: &str = "python.execution-mode";
    /// Sent to a thread-mode worker: the job's dependency paths, for `sys.path`.
    pub const THREAD_PATH: &str = "python.internal.thread-path";
    pub const BUNDLE_SIZE: &str = "python.fn-execution.bundle.size";
    pub const ARROW_BATCH_SIZE: &str = "python.fn-execution.arrow.batch.size";
    pub const BUNDLE_TIME: &str = "python.fn-execution.bundle.time";
    pub const MAX_IN_FLIGHT: &str = "python.fn-execution.max-in-flight";
    pub const MAX_RESTARTS: &str = "python.worker.restart.max-attempts";
    pub const START_TIMEOUT: &str = "python.worker.start-timeout";
    pub const HEARTBEAT_TIMEOUT: &str = "python.worker.heartbeat-timeout";
    /// Sent to the worker (milliseconds): how often its heartbeat thread writes.
    pub const HEARTBEAT_INTERVAL: &str = "python.internal.heartbeat-interval";
    /// Sent to the worker: series per metric family it may register.
    pub const CARDINALITY_LIMIT: &str = "python.internal.cardinality-limit";
    /// Sent to the worker: the first component of exported names.
    pub const NAME_PREFIX: &str = "python.internal.name-prefix";
    pub const ON_ERROR: &str = "python.udf.on-error";
    pub const AGGREGATION: &str = "metrics.weir.aggregation-level";
    pub const ASYNC_TIMEOUT: &str = "table.exec.async-scalar.timeout";
    pub const ASYNC_RETRY_DELAY: &str = "table.exec.async-scalar.retry-delay";
}

/// `python.worker.heartbeat-timeout`'s default: long enough for a loaded machine (heartbeats
/// come from a thread of their own, not blocked by a UDF that holds the GIL), short enough that
/// a stopped worker holds a job up for seconds, not minutes.
pub const DEFAULT_HEARTBEAT_TIMEOUT_MS: u64 = 15_000;

/// `python.fn-execution.bundle.size`'s default, Flink's: the most rows per bundle. Bundles are
/// cut smaller by what the worker's rows have cost so far (see [`Driver::bundle_rows`]).
pub const DEFAULT_BUNDLE_SIZE: usize = 100_000;

/// Rows of the bundles sent before any result says what a row costs.
const FIRST_BUNDLE_ROWS: usize = 1_000;

/// What a bundle should take the worker: results (and the metric updates they carry) come
/// back at least this often while rows flow, and per-bundle costs stay small beside it.
const BUNDLE_TARGET_NANOS: f64 = 50e6;

/// The heartbeat timeout of thread-mode workers: never (a year).
const THREAD_SILENCE: Duration = Duration::from_secs(365 * 86_400);

/// Starts a thread-mode worker: a thread of this process's Python interpreter running
/// `weir.worker` over its end of a socket pair, named by the string (for logs). The receiver
/// says how the thread ended. Only the Python package can start one (it has the interpreter).
pub type ThreadStarter = Arc<
    dyn Fn(std::os::unix::net::UnixStream, String) -> std::io::Result<oneshot::Receiver<String>>
        + Send
        + Sync,
>;

impl Options {
    /// How often the worker sends heartbeats: a fifth of the timeout, at most every 2 s.
    fn heartbeat_interval(&self) -> Duration {
        (self.heartbeat_timeout / 5).clamp(Duration::from_millis(10), Duration::from_secs(2))
    }
}

#[derive(Clone, Debug)]
struct Options {
    /// `python.executable` and the job's other dependencies.
    deps: DepsConfig,
    /// `python.execution-mode=thread`: workers are threads of this process's interpreter.
    thread: bool,
    /// Rows of the first bundles, before their cost is known.
    first_bundle: usize,
    bundle_size: usize,
    /// Idle flush interval of the workers; sent to them in ms.
    bundle_time: Duration,
    max_in_flight: usize,
    max_restarts: usize,
    start_timeout: Duration,
    heartbeat_timeout: Duration,
    level: AggregationLevel,
    /// Async scalar functions: each attempt's time limit and the pause between attempts;
    /// sent to the workers in ms.
    async_timeout: Duration,
    async_retry_delay: Duration,
}

impl Options {
    fn from_config(config: &BTreeMap<String, String>) -> Result<Self> {
        let o = weir_engine::options::Options::config(config);
        let bundle_size = o
            .at_least(keys::BUNDLE_SIZE, 1)?
            .unwrap_or(DEFAULT_BUNDLE_SIZE as u64);
        // Read by the workers; checked here so a bad value fails the job before they start.
        o.at_least(keys::ARROW_BATCH_SIZE, 1)?;
        o.choice(keys::ON_ERROR, &["fail", "skip"], "`fail` or `skip`")?;
        o.bool("python.metric.enabled")?;
        // Read by the workers for async scalar functions.
        o.at_least("table.exec.async-scalar.max-concurrent-operations", 1)?;
        o.at_least("table.exec.async-scalar.max-attempts", 1)?;
        o.choice(
            "table.exec.async-scalar.retry-strategy",
            &["FIXED_DELAY", "NO_RETRY"],
            "`FIXED_DELAY` or `NO_RETRY`",
        )?;
        o.choice(
            keys::EXECUTION_MODE,
            &["process", "thread"],
            "`process` or `thread`",
        )?;
        let thread = o.get(keys::EXECUTION_MODE).map(str::trim) == Some("thread");
        let level = match o.get(keys::AGGREGATION) {
            None => AggregationLevel::default(),
            Some(v) => AggregationLevel::parse(v)
                .ok_or_else(|| o.invalid(keys::AGGREGATION, v, "`subtask` or `operator`"))?,
        };
        let ms = |key: &str, default: u64| -> Result<Duration> {
            Ok(o.duration(key)?.unwrap_or(Duration::from_millis(default)))
        };
        let positive = |key: &str, d: Duration| -> Result<Duration> {
            if d.is_zero() {
                return Err(o.invalid(key, o.get(key).unwrap_or("0"), "a duration above zero"));
            }
            Ok(d)
        };
        let python = o.get(keys::EXECUTABLE).unwrap_or("python3").to_string();
        Ok(Self {
            deps: DepsConfig::from_config(config, &python)?,
            thread,
            first_bundle: FIRST_BUNDLE_ROWS,
            bundle_size: bundle_size as usize,
            bundle_time: ms(keys::BUNDLE_TIME, 1000)?,
            max_in_flight: o.at_least(keys::MAX_IN_FLIGHT, 1)?.unwrap_or(4) as usize,
            max_restarts: o.number::<u64>(keys::MAX_RESTARTS)?.unwrap_or(5) as usize,
            start_timeout: positive(keys::START_TIMEOUT, ms(keys::START_TIMEOUT, 60_000)?)?,
            // A thread of this process stops only with it: there is nothing to wait for.
            heartbeat_timeout: if thread {
                THREAD_SILENCE
            } else {
                positive(
                    keys::HEARTBEAT_TIMEOUT,
                    ms(keys::HEARTBEAT_TIMEOUT, DEFAULT_HEARTBEAT_TIMEOUT_MS)?,
                )?
            },
            level,
            async_timeout: positive(keys::ASYNC_TIMEOUT, ms(keys::ASYNC_TIMEOUT, 180_000)?)?,
            async_retry_delay: ms(keys::ASYNC_RETRY_DELAY, 100)?,
        })
    }
}

struct JobDir {
    path: PathBuf,
    /// The job's dependencies, prepared by the first of its workers to start.
    deps: tokio::sync::OnceCell<std::result::Result<Deps, String>>,
}

impl Drop for JobDir {
    fn drop(&mut self) {
        live_dirs().remove(&self.path);
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

static DIR_SEQ: AtomicU64 = AtomicU64::new(0);

/// 64 bits from the operating system's randomness (std's hash keys are seeded from it).
fn random_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(DIR_SEQ.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// A new directory only this user can enter, named unpredictably (`weir-<job>-<random>`), so
/// no other user can place or guess a socket in it; `create` fails rather than reuse a name.
fn private_dir(job: &str) -> std::io::Result<PathBuf> {
    let safe: String = job
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    loop {
        let path = std::env::temp_dir().join(format!("weir-{safe}-{:016x}", random_suffix()));
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
            Ok(()) => {
                live_dirs().insert(path.clone());
                return Ok(path);
            }
        }
    }
}

/// The socket directories this process has open, for [`remove_socket_dirs`].
fn live_dirs() -> std::sync::MutexGuard<'static, std::collections::BTreeSet<PathBuf>> {
    static DIRS: Mutex<std::collections::BTreeSet<PathBuf>> =
        Mutex::new(std::collections::BTreeSet::new());
    DIRS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Removes every socket directory of this process: for exits that do not unwind the jobs
/// (a signal handler, `atexit`). Workers notice their socket closing and exit.
pub fn remove_socket_dirs() {
    // Taken out first: the lock is not held while the directories are removed.
    let dirs = std::mem::take(&mut *live_dirs());
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Runs Python functions in worker processes (the default `python.execution-mode=process`).
#[derive(Default)]
pub struct ProcessBackend {
    dirs: Mutex<HashMap<String, Weak<JobDir>>>,
    threads: Option<ThreadStarter>,
}

impl ProcessBackend {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A backend that also runs `python.execution-mode=thread` jobs, with `starter`.
    pub fn with_threads(starter: ThreadStarter) -> Arc<Self> {
        Arc::new(Self {
            threads: Some(starter),
            ..Self::default()
        })
    }

    /// The directory of a job's workers: shared by its subtasks, not by another job of the
    /// same name with other dependencies.
    fn job_dir(&self, job: &str, deps: &DepsConfig) -> Result<Arc<JobDir>> {
        let mut dirs = self.dirs.lock().unwrap_or_else(|p| p.into_inner());
        dirs.retain(|_, d| d.strong_count() > 0);
        let key = format!("{job}\0{}", deps.key());
        if let Some(d) = dirs.get(&key).and_then(Weak::upgrade) {
            return Ok(d);
        }
        let path = private_dir(job).map_err(|e| {
            EngineError::Execution(format!(
                "cannot create a directory for the Python workers' sockets in {}: {e}",
                std::env::temp_dir().display()
            ))
        })?;
        let d = Arc::new(JobDir {
            path,
            deps: tokio::sync::OnceCell::new(),
        });
        dirs.insert(key, Arc::downgrade(&d));
        Ok(d)
    }
}

impl UdfBackend for ProcessBackend {
    fn start(
        &self,
        ctx: &RunnerContext,
        calls: &[UdfCall],
        _args_schema: SchemaRef,
    ) -> Result<Box<dyn FunctionRunner>> {
        let mut opts = Options::from_config(&ctx.config)?;
        if opts.thread && self.threads.is_none() {
            return Err(EngineError::Config(
                "python.execution-mode = 'thread' runs functions on the interpreter of a Python \
                 process: run the job from Python (`import weir`) or with the `weir` command \
                 `pip install ./python-sdk` installs"
                    .into(),
            ));
        }
        let mut functions = Vec::new();
        let mut vectorized = false;
        let mut aggregate = false;
        let mut result_types = Vec::new();
        for c in calls {
            let f = c
                .udf
                .payload
                .downcast_ref::<PythonFunction>()
                .ok_or_else(|| {
                    EngineError::Execution(format!(
                        "function `{}` is not a Python function but was given to the Python runner",
                        c.udf.name
                    ))
                })?;
            vectorized |= f.vectorized;
            // An aggregate function answers with its accumulator and value per group.
            let result_type = if c.udf.kind.is_aggregate() {
                aggregate = true;
                aggregate_answer_type(&c.udf.result_type)
            } else {
                c.udf.result_type.clone()
            };
            functions.push(FunctionSpec {
                name: c.udf.name.clone(),
                payload: f.pickled.clone(),
                args: c.args.iter().map(|&a| a as u32).collect(),
                result_type: type_name(&result_type),
            });
            result_types.push(result_type);
        }
        // A request of an aggregate operator carries each group's accumulator on its first row
        // only: it must reach one worker whole, as one bundle.
        if aggregate {
            opts.bundle_size = usize::MAX;
        }
        // Small bundles cost a vectorized UDF a call and two conversions each: its first
        // bundles are a whole Arrow batch (`arrow.batch.size`, Flink's default 10,000) unless
        // the bundle size is set lower. Measured in docs/performance.md.
        if vectorized {
            let o = weir_engine::options::Options::config(&ctx.config);
            let batch = o.at_least(keys::ARROW_BATCH_SIZE, 1)?.unwrap_or(10_000) as usize;
            opts.first_bundle = batch;
        }
        let who = format!(
            "Python worker of `{}` subtask {} in job `{}`",
            ctx.operator, ctx.subtask, ctx.job_name
        );
        let st = ctx.subtask.to_string();
        let labels = [
            ("job_name", ctx.job_name.as_str()),
            ("operator", ctx.operator.as_str()),
            ("subtask", st.as_str()),
        ];
        let remote = RemoteMetrics::new(&ctx.registry, &labels, opts.level)
            .map_err(|e| EngineError::Execution(format!("{who}: {e}")))?;
        let sys = SysMetrics::new(&ctx.registry, &labels)
            .map_err(|e| EngineError::Execution(format!("{who}: registering metrics: {e}")))?;
        let dir = self.job_dir(&ctx.job_name, &opts.deps)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let driver = Driver {
            who,
            opts: opts.clone(),
            handshake: Handshake {
                job: ctx.job_name.clone(),
                operator: ctx.operator.clone(),
                subtask: ctx.subtask as u32,
                parallelism: ctx.parallelism as u32,
                attempt: 0,
                config: {
                    // The worker reads durations as plain milliseconds: one parser, here.
                    let mut c = (*ctx.config).clone();
                    c.insert(
                        keys::BUNDLE_TIME.to_string(),
                        opts.bundle_time.as_millis().to_string(),
                    );
                    // A thread has nobody to prove it is alive to.
                    if !opts.thread {
                        c.insert(
                            keys::HEARTBEAT_INTERVAL.to_string(),
                            opts.heartbeat_interval().as_millis().to_string(),
                        );
                    }
                    c.insert(
                        keys::ASYNC_TIMEOUT.to_string(),
                        opts.async_timeout.as_millis().to_string(),
                    );
                    c.insert(
                        keys::ASYNC_RETRY_DELAY.to_string(),
                        opts.async_retry_delay.as_millis().to_string(),
                    );
                    // The worker refuses series over the engine's limit itself: memory and
                    // time stay bounded where the series are made, and it reports the count.
                    c.insert(
                        keys::CARDINALITY_LIMIT.to_string(),
                        ctx.registry.options().cardinality_limit.to_string(),
                    );
                    // Names the worker reports (dropped series) are the engine's names.
                    c.insert(
                        keys::NAME_PREFIX.to_string(),
                        ctx.registry.options().prefix.clone(),
                    );
                    c
                },
                functions,
            },
            result_types,
            dir,
            remote,
            remote_labels: (
                ctx.registry.clone(),
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                opts.level,
            ),
            sys,
            pending: BTreeMap::new(),
            parents: HashMap::new(),
            threads: self.threads.clone(),
            row_nanos: None,
            next_bundle: 0,
            next_parent: 0,
            failed_attempts: 0,
            progress: None,
            log_budget: LogBudget::new(),
            fatal: None,
            socket_seq: 0,
        };
        let (done_tx, done_rx) = oneshot::channel();
        tokio::spawn(async move {
            driver.run(rx).await;
            let _ = done_tx.send(());
        });
        Ok(Box::new(ProcessRunner {
            tx,
            max_in_flight: opts.max_in_flight,
            done: Some(done_rx),
        }))
    }
}

enum Cmd {
    Submit(RecordBatch, oneshot::Sender<Result<Evaluated>>),
    Close,
}

struct ProcessRunner {
    tx: mpsc::UnboundedSender<Cmd>,
    max_in_flight: usize,
    /// Resolves when the driver has stopped its worker and applied its last metrics.
    done: Option<oneshot::Receiver<()>>,
}

impl FunctionRunner for ProcessRunner {
    fn submit(&mut self, args: RecordBatch) -> Result<Pending> {
        let (reply, pending) = oneshot::channel();
        self.tx
            .send(Cmd::Submit(args, reply))
            .map_err(|_| EngineError::Execution("the Python worker driver has stopped".into()))?;
        Ok(pending)
    }
    fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }
    fn close(&mut self) -> Result<()> {
        let _ = self.tx.send(Cmd::Close);
        Ok(())
    }
    fn finished(&mut self) -> Option<oneshot::Receiver<()>> {
        self.done.take()
    }
}

/// System metrics of one UDF operator subtask (`weir_python_udf_*`).
struct SysMetrics {
    rows: Counter,
    skipped: Counter,
    bundles: Counter,
    bundle_rows: Distribution,
    bundle_seconds: Distribution,
    wait_seconds: Distribution,
    restarts: Counter,
    bytes_sent: Counter,
    bytes_received: Counter,
}

impl SysMetrics {
    fn new(
        registry: &weir_metrics::Registry,
        labels: &[(&str, &str)],
    ) -> weir_metrics::Result<Self> {
        let g = registry.system_group("python_udf", labels)?;
        Ok(Self {
            rows: g.counter_with_help("rows", "Rows evaluated by the Python functions")?,
            skipped: g.counter_with_help(
                "errors",
                "Rows on which a Python function raised (skipped with python.udf.on-error=skip)",
            )?,
            bundles: g.counter_with_help("bundles", "Bundles evaluated by the worker")?,
            bundle_rows: g.distribution("bundle_rows")?,
            bundle_seconds: g.distribution("bundle_seconds")?,
            wait_seconds: g.distribution("wait_seconds")?,
            restarts: g.counter_with_help(
                "worker_restarts",
                "Python workers started again after one died",
            )?,
            bytes_sent: g.counter_with_help("sent_bytes", "Bytes sent to the Python worker")?,
            bytes_received: g
                .counter_with_help("received_bytes", "Bytes received from the Python worker")?,
        })
    }
}

struct Parent {
    parts: Vec<Option<RecordBatch>>,
    remaining: usize,
    reply: oneshot::Sender<Result<Evaluated>>,
}

struct Bundle {
    parent: u64,
    part: usize,
    batch: RecordBatch,
    sent: Instant,
}

/// Frames read ahead of the driver: a worker that floods the channel waits for the driver.
const FRAMES_AHEAD: usize = 64;

/// One running worker process.
/// What runs a worker: a process of its own, or (`python.execution-mode=thread`) a thread of
/// this process's interpreter, which cannot be killed.
enum Host {
    Process(Child),
    Thread {
        ended: Option<oneshot::Receiver<String>>,
        how: Option<String>,
    },
}

impl Host {
    fn start_kill(&mut self) {
        if let Host::Process(c) = self {
            let _ = c.start_kill();
        }
    }

    /// Waits for it to end; how it ended.
    async fn wait(&mut self) -> std::io::Result<String> {
        match self {
            Host::Process(c) => c.wait().await.map(describe_exit),
            Host::Thread { ended, how } => {
                if let Some(rx) = ended.take() {
                    *how = Some(rx.await.unwrap_or_else(|_| "ended".into()));
                }
                Ok(how.clone().unwrap_or_default())
            }
        }
    }
}

struct Worker {
    host: Host,
    pid: Option<u32>,
    out: mpsc::UnboundedSender<Frame>,
    frames: mpsc::Receiver<std::result::Result<Frame, String>>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    socket: PathBuf,
    /// When the last frame came (the heartbeat timeout counts from here).
    last_frame: Instant,
}

impl Worker {
    fn tail(&self) -> String {
        let t = self.stderr_tail.lock().unwrap_or_else(|p| p.into_inner());
        if t.is_empty() {
            String::new()
        } else {
            format!(
                "; its last output:\n{}",
                t.iter().cloned().collect::<Vec<_>>().join("\n")
            )
        }
    }

    /// Why it went away: its exit status (waits briefly for it).
    async fn exit_reason(&mut self) -> String {
        match tokio::time::timeout(Duration::from_secs(2), self.host.wait()).await {
            Ok(Ok(how)) => how,
            Ok(Err(e)) => format!("could not be waited for: {e}"),
            Err(_) => {
                self.host.start_kill();
                "closed its channel but did not exit (killed)".into()
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn describe_exit(st: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => {
            let name = match s {
                6 => " (SIGABRT)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV)",
                15 => " (SIGTERM)",
                _ => "",
            };
            format!("was killed by signal {s}{name}")
        }
        _ => "ended".into(),
    }
}

/// A row that was being evaluated when a traced worker died.
struct Suspect {
    bundle: u64,
    function: u32,
    row: u32,
}

/// A reason a worker could not be used.
enum Failure {
    /// It died or could not start: try another.
    Died(String),
    /// The function failed or the channel broke: the job fails.
    Fatal(EngineError),
}

struct Driver {
    who: String,
    opts: Options,
    handshake: Handshake,
    result_types: Vec<DataType>,
    dir: Arc<JobDir>,
    remote: RemoteMetrics,
    /// To start a fresh `RemoteMetrics` for each new worker (metric ids are per channel).
    remote_labels: (
        weir_metrics::Registry,
        Vec<(String, String)>,
        AggregationLevel,
    ),
    sys: SysMetrics,
    pending: BTreeMap<u64, Bundle>,
    parents: HashMap<u64, Parent>,
    next_bundle: u64,
    next_parent: u64,
    /// Workers in a row that died or failed to start without returning a result.
    failed_attempts: usize,
    /// The row a traced worker reported last (cleared when its bundle's result comes).
    progress: Option<Suspect>,
    /// Lines of worker output allowed through now, and how many were held back.
    log_budget: LogBudget,
    fatal: Option<String>,
    socket_seq: u32,
    /// Starts thread-mode workers (set when `opts.thread`).
    threads: Option<ThreadStarter>,
    /// What a row has cost the worker lately (nanoseconds), once a result said.
    row_nanos: Option<f64>,
}

pub(crate) fn log_line(level: &str, who: &str, message: &str) {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
    eprintln!("{now} {level:<5} [{who}] {message}");
}

fn level_name(level: u8) -> &'static str {
    match level {
        0..=10 => "DEBUG",
        11..=20 => "INFO",
        21..=30 => "WARN",
        31..=40 => "ERROR",
        _ => "CRIT",
    }
}

/// Longest line of worker output kept; the rest of a longer line is dropped (and said so).
const MAX_LINE: usize = 4096;

fn clip_line(line: &str) -> std::borrow::Cow<'_, str> {
    if line.len() <= MAX_LINE {
        return line.into();
    }
    let mut end = MAX_LINE;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... (line of {} bytes cut)", &line[..end], line.len()).into()
}

/// A rate limit on the lines a worker makes the engine log: a burst of `BURST` lines, then
/// `PER_SECOND` a second; lines over it are counted, and the count is logged when lines are
/// allowed again, so a UDF that prints on every row cannot flood the log or the memory.
struct LogBudget {
    tokens: f64,
    at: Instant,
    held_back: u64,
}

impl LogBudget {
    const BURST: f64 = 200.0;
    const PER_SECOND: f64 = 50.0;

    fn new() -> Self {
        Self {
            tokens: Self::BURST,
            at: Instant::now(),
            held_back: 0,
        }
    }

    fn line(&mut self, level: &str, who: &str, line: impl AsRef<str>) {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * Self::PER_SECOND)
            .min(Self::BURST);
        self.at = now;
        if self.tokens < 1.0 {
            self.held_back += 1;
            return;
        }
        self.tokens -= 1.0;
        if self.held_back > 0 {
            log_line(
                "WARN",
                who,
                &format!(
                    "{} lines of worker output were not logged (more than {} a second)",
                    self.held_back,
                    Self::PER_SECOND
                ),
            );
            self.held_back = 0;
        }
        log_line(level, who, line.as_ref());
    }
}

/// Logs a worker's stdout or stderr line by line, rate-limited, lines cut at [`MAX_LINE`];
/// keeps the last lines in `tail` for messages about its death.
async fn forward_lines(
    stream: impl AsyncRead + Unpin,
    who: String,
    level: &'static str,
    tail: Option<Arc<Mutex<VecDeque<String>>>>,
) {
    let mut r = BufReader::new(stream);
    let mut budget = LogBudget::new();
    let mut line = Vec::new();
    let mut cut = 0usize;
    loop {
        let buf = match r.fill_buf().await {
            Ok(b) if !b.is_empty() => b,
            _ => break,
        };
        let (chunk, ends) = match buf.iter().position(|&c| c == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        let room = MAX_LINE.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        cut += chunk.len().saturating_sub(room);
        let used = ends.unwrap_or(buf.len());
        r.consume(used);
        if ends.is_none() {
            continue;
        }
        let mut text = String::from_utf8_lossy(&line).into_owned();
        if cut > 0 {
            text.push_str(&format!("... ({cut} more bytes of this line cut)"));
        }
        line.clear();
        cut = 0;
        budget.line(level, &who, &text);
        if let Some(t) = &tail {
            let mut t = t.lock().unwrap_or_else(|p| p.into_inner());
            if t.len() == 20 {
                t.pop_front();
            }
            t.push_back(text);
        }
    }
    if !line.is_empty() {
        budget.line(level, &who, String::from_utf8_lossy(&line));
    }
}

impl Driver {
    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
        let mut worker: Option<Worker> = None;
        let mut closing = false;
        loop {
            if worker.is_none() && self.fatal.is_none() && (!self.pending.is_empty() || !closing) {
                match self.start_worker().await {
                    Ok(w) => worker = Some(w),
                    Err(Failure::Fatal(e)) => self.fail(e.to_string()),
                    Err(Failure::Died(why)) => {
                        let why = format!("{}: {why}", self.who);
                        if let Err(e) = self.count_death(&why) {
                            self.fail(e);
                        }
                        continue;
                    }
                }
            }
            if closing && (self.pending.is_empty() || self.fatal.is_some()) {
                break;
            }
            let silence = self.opts.heartbeat_timeout;
            let event = match worker.as_mut() {
                Some(w) => tokio::select! {
                    cmd = cmds.recv() => Event::Cmd(cmd),
                    f = w.frames.recv() => Event::Frame(f),
                    // A frame that came while this task was not running is not silence.
                    _ = tokio::time::sleep_until((w.last_frame + silence).into()) => {
                        match w.frames.try_recv() {
                            Ok(f) => Event::Frame(Some(f)),
                            Err(_) => Event::Silent,
                        }
                    }
                },
                None => Event::Cmd(cmds.recv().await),
            };
            match event {
                Event::Cmd(None) | Event::Cmd(Some(Cmd::Close)) => closing = true,
                Event::Cmd(Some(Cmd::Submit(batch, reply))) => {
                    if let Some(f) = &self.fatal {
                        let _ = reply.send(Err(EngineError::Execution(f.clone())));
                        continue;
                    }
                    let ids = self.add(batch, reply);
                    if let Some(w) = &worker {
                        for id in ids {
                            self.send(w, id);
                        }
                    }
                }
                Event::Frame(Some(Ok(frame))) => {
                    if let Some(w) = worker.as_mut() {
                        w.last_frame = Instant::now();
                    }
                    if let Err(e) = self.on_frame(frame) {
                        self.fail(e.to_string());
                        if let Some(w) = worker.take() {
                            self.stop(w).await;
                        }
                    }
                }
                Event::Frame(Some(Err(e))) => {
                    // A frame that cannot be read (reset, cut, garbage, over the limit): the
                    // worker is not trusted any more. Killed, replaced; its unanswered bundles
                    // are sent again.
                    let mut w = worker.take().expect("frames come from a worker");
                    let why = if e.starts_with("malformed") {
                        w.host.start_kill();
                        let _ = w.exit_reason().await;
                        format!("sent what cannot be read ({e}) and was killed")
                    } else {
                        // A reset or a cut: the worker is going away; its exit says why.
                        w.exit_reason().await
                    };
                    self.died(&self.gone(&w, &why), closing);
                }
                Event::Frame(None) => {
                    let mut w = worker.take().expect("frames come from a worker");
                    let why = w.exit_reason().await;
                    self.died(&self.gone(&w, &why), closing);
                }
                Event::Silent => {
                    let mut w = worker.take().expect("silence comes from a worker");
                    w.host.start_kill();
                    let _ = w.exit_reason().await;
                    let why = format!(
                        "sent nothing, not even a heartbeat, for {silence:?} \
                         (python.worker.heartbeat-timeout): it is stopped or hung, and was killed"
                    );
                    self.died(&self.gone(&w, &why), closing);
                }
            }
        }
        if let Some(w) = worker.take() {
            self.stop(w).await;
        }
    }

    /// What is said about a worker that went away: who, its pid, why, its last output.
    fn gone(&self, w: &Worker, why: &str) -> String {
        match w.pid {
            Some(pid) => format!("{} (pid {pid}) {why}{}", self.who, w.tail()),
            None => format!("{} (a thread) {why}{}", self.who, w.tail()),
        }
    }

    /// A worker that was running went away.
    fn died(&mut self, why: &str, closing: bool) {
        if closing && self.pending.is_empty() {
            return;
        }
        if let Err(e) = self.count_death(why) {
            self.fail(e);
        }
    }

    /// Counts a death; an error when too many workers in a row died without a result.
    fn count_death(&mut self, why: &str) -> std::result::Result<(), String> {
        self.failed_attempts += 1;
        let culprit = self.culprit();
        let why = match &culprit {
            Some(c) => format!("{c}: {why}"),
            None => why.to_string(),
        };
        if self.failed_attempts > self.opts.max_restarts {
            return Err(format!(
                "{why}\n{} Python workers in a row ended without returning a result \
                 (python.worker.restart.max-attempts = {}); the job fails",
                self.failed_attempts, self.opts.max_restarts
            ));
        }
        log_line(
            "WARN",
            &self.who,
            &format!(
                "{why}; starting a new worker and sending again the {} bundles without a result",
                self.pending.len()
            ),
        );
        self.sys.restarts.inc(1);
        self.handshake.attempt += 1;
        Ok(())
    }

    /// The function and input row a traced worker was evaluating when it died, as text.
    fn culprit(&self) -> Option<String> {
        let p = self.progress.as_ref()?;
        let b = self.pending.get(&p.bundle)?;
        let f = self.handshake.functions.get(p.function as usize)?;
        let row = p.row as usize;
        if row >= b.batch.num_rows() {
            return None;
        }
        let args: Vec<usize> = f.args.iter().map(|&a| a as usize).collect();
        let values = b
            .batch
            .project(&args)
            .ok()
            .and_then(|cols| weir_engine::stream::format_values(&cols, row).ok())?;
        let quoted: Vec<String> = values
            .iter()
            .zip(&args)
            .map(|(v, &a)| match b.batch.column(a).data_type() {
                DataType::Utf8 | DataType::LargeUtf8 if !b.batch.column(a).is_null(row) => {
                    format!("'{v}'")
                }
                _ => v.clone(),
            })
            .collect();
        let tuple = match quoted.len() {
            1 => format!("({},)", quoted[0]),
            _ => format!("({})", quoted.join(", ")),
        };
        Some(format!(
            "Python function `{}` took its worker down on input row {tuple}",
            f.name
        ))
    }

    fn fail(&mut self, message: String) {
        if self.fatal.is_none() {
            self.fatal = Some(message.clone());
        }
        self.pending.clear();
        for (_, p) in self.parents.drain() {
            let _ = p.reply.send(Err(EngineError::Execution(message.clone())));
        }
    }

    /// Cuts a batch into bundles; returns their ids.
    fn add(&mut self, batch: RecordBatch, reply: oneshot::Sender<Result<Evaluated>>) -> Vec<u64> {
        let parent = self.next_parent;
        self.next_parent += 1;
        let rows = batch.num_rows();
        let size = self.bundle_rows();
        let n = rows.div_ceil(size).max(1);
        let mut ids = Vec::with_capacity(n);
        for part in 0..n {
            let off = part * size;
            let len = size.min(rows - off.min(rows));
            let id = self.next_bundle;
            self.next_bundle += 1;
            self.pending.insert(
                id,
                Bundle {
                    parent,
                    part,
                    batch: batch.slice(off.min(rows), len),
                    sent: Instant::now(),
                },
            );
            ids.push(id);
        }
        self.parents.insert(
            parent,
            Parent {
                parts: vec![None; n],
                remaining: n,
                reply,
            },
        );
        ids
    }

    /// Rows per bundle now: `python.fn-execution.bundle.size` at most, and as many as the
    /// worker evaluates in about [`BUNDLE_TARGET_NANOS`] by what its rows cost so far, so a
    /// fast function gets big bundles (few frames, few wake-ups) and a slow one small bundles
    /// (results and metrics keep coming). An aggregate request is never cut.
    fn bundle_rows(&self) -> usize {
        let max = self.opts.bundle_size;
        if max == usize::MAX {
            return max;
        }
        match self.row_nanos {
            None => max.min(self.opts.first_bundle),
            Some(ns) => ((BUNDLE_TARGET_NANOS / ns.max(1.0)) as usize).clamp(1, max),
        }
    }

    fn send(&mut self, w: &Worker, id: u64) {
        if let Some(b) = self.pending.get_mut(&id) {
            b.sent = Instant::now();
            let _ = w.out.send(Frame::Input {
                bundle: id,
                batch: b.batch.clone(),
            });
        }
    }

    fn on_frame(&mut self, frame: Frame) -> Result<()> {
        match frame {
            Frame::Result {
                bundle,
                batch,
                metrics,
                skipped,
                worker_nanos,
            } => self.on_result(bundle, batch, &metrics, skipped, worker_nanos),
            Frame::Metrics { metrics } => self.apply_metrics(&metrics),
            Frame::Log {
                level,
                logger,
                message,
            } => {
                let text = if logger.is_empty() {
                    message
                } else {
                    format!("{logger}: {message}")
                };
                for line in text.lines() {
                    self.log_budget
                        .line(level_name(level), &self.who, clip_line(line));
                }
                Ok(())
            }
            Frame::Progress {
                bundle,
                function,
                row,
            } => {
                self.progress = Some(Suspect {
                    bundle,
                    function,
                    row,
                });
                Ok(())
            }
            Frame::Error {
                bundle: _,
                function,
                exception,
                message,
                traceback,
                row,
            } => {
                let row = if row.is_empty() {
                    String::new()
                } else {
                    format!("\ninput row: {row}")
                };
                Err(EngineError::Execution(format!(
                    "Python function `{function}` raised {exception}: {message}{row}\n{traceback}",
                )))
            }
            Frame::Heartbeat { .. } => Ok(()),
            other => Err(EngineError::Execution(format!(
                "{}: unexpected {} frame from the worker",
                self.who,
                other.kind()
            ))),
        }
    }

    fn apply_metrics(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.remote.apply_bytes(bytes).map_err(|e| {
            EngineError::Execution(format!("{}: metric updates refused: {e}", self.who))
        })
    }

    fn on_result(
        &mut self,
        bundle: u64,
        batch: RecordBatch,
        metrics: &[u8],
        skipped: u32,
        worker_nanos: u64,
    ) -> Result<()> {
        let Some(b) = self.pending.get(&bundle) else {
            return Err(EngineError::Execution(format!(
                "{}: a result for bundle {bundle}, which is not waiting for one",
                self.who
            )));
        };
        let rows = b.batch.num_rows();
        let calls = self.result_types.len();
        let who = self.who.clone();
        let bad = move |detail: String| {
            EngineError::Execution(format!("{who}: result of bundle {bundle}: {detail}"))
        };
        let want_cols = calls + usize::from(skipped > 0);
        if batch.num_columns() != want_cols || batch.num_rows() != rows {
            return Err(bad(format!(
                "{} columns of {} rows, expected {want_cols} of {rows}",
                batch.num_columns(),
                batch.num_rows()
            )));
        }
        if skipped > 0 {
            let keep = batch
                .column(calls)
                .as_any()
                .downcast_ref::<BooleanArray>()
                .filter(|k| k.null_count() == 0)
                .ok_or_else(|| bad("the kept-rows column is not a boolean per input row".into()))?;
            let kept = keep.true_count();
            if kept + skipped as usize != rows {
                return Err(bad(format!(
                    "{kept} rows kept and {skipped} skipped out of {rows}"
                )));
            }
        }
        for (i, t) in self.result_types.iter().enumerate() {
            if batch.column(i).data_type() != t {
                return Err(bad(format!(
                    "column {i} is {} but the function returns {}",
                    type_name(batch.column(i).data_type()),
                    type_name(t)
                )));
            }
        }
        // Accepted: the metrics made while computing it count now, once.
        self.apply_metrics(metrics)?;
        let b = self.pending.remove(&bundle).expect("checked above");
        self.failed_attempts = 0;
        if self.progress.as_ref().is_some_and(|p| p.bundle == bundle) {
            self.progress = None;
        }
        self.sys.rows.inc(rows as i64);
        self.sys.skipped.inc(i64::from(skipped));
        self.sys.bundles.inc(1);
        self.sys.bundle_rows.update_i64(rows as i64);
        let worker = worker_nanos as f64 / 1e9;
        self.sys.bundle_seconds.update_f64(worker);
        if rows > 0 {
            // A moving average of what a row costs the worker, for the next bundles' size.
            let ns = worker_nanos as f64 / rows as f64;
            self.row_nanos = Some(match self.row_nanos {
                None => ns,
                Some(old) => 0.7 * old + 0.3 * ns,
            });
        }
        let round_trip = b.sent.elapsed().as_secs_f64();
        self.sys
            .wait_seconds
            .update_f64((round_trip - worker).max(0.0));
        let parent = self
            .parents
            .get_mut(&b.parent)
            .expect("a bundle has a parent");
        parent.parts[b.part] = Some(batch);
        parent.remaining -= 1;
        if parent.remaining == 0 {
            let p = self.parents.remove(&b.parent).expect("present");
            let out = assemble(p.parts.into_iter().flatten().collect(), calls);
            let _ = p.reply.send(out.map_err(|e| bad(e.to_string())));
        }
        Ok(())
    }

    async fn start_worker(&mut self) -> std::result::Result<Worker, Failure> {
        let fatal = |m: String| Failure::Fatal(EngineError::Execution(m));
        let deps = self
            .dir
            .deps
            .get_or_init(|| self.opts.deps.prepare(&self.dir.path))
            .await
            .clone()
            .map_err(|e| fatal(format!("{}: {e}", self.who)))?;
        let (stream, mut w) = if self.opts.thread {
            self.start_thread(&deps)?
        } else {
            self.start_process(&deps).await?
        };
        let deadline = self.opts.start_timeout;
        let (mut rd, mut wr) = stream.into_split();
        let (ftx, frx) = mpsc::channel(FRAMES_AHEAD);
        let received = self.sys.bytes_received.clone();
        tokio::spawn(async move {
            loop {
                match channel::read_frame(&mut rd, channel::DEFAULT_MAX_FRAME).await {
                    Ok(Some((f, n))) => {
                        received.inc(n as i64);
                        if ftx.send(Ok(f)).await.is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = ftx.send(Err(e.to_string())).await;
                        break;
                    }
                }
            }
        });
        let (otx, mut orx) = mpsc::unbounded_channel::<Frame>();
        let sent = self.sys.bytes_sent.clone();
        tokio::spawn(async move {
            while let Some(f) = orx.recv().await {
                match channel::write_frame(&mut wr, &f).await {
                    Ok(n) => sent.inc(n as i64),
                    Err(_) => break,
                }
            }
        });
        w.out = otx;
        w.frames = frx;

        // A new channel: the worker numbers its metrics from scratch. The series are found
        // again by their labels, so totals go on.
        let (registry, labels, level) = &self.remote_labels;
        let labels: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.remote = RemoteMetrics::new(registry, &labels, *level)
            .map_err(|e| fatal(format!("{}: {e}", self.who)))?;

        // Hello, handshake, ready.
        match self.next_starting(&mut w, "saying hello", deadline).await? {
            Frame::Hello { version, .. } if version == channel::VERSION => {}
            Frame::Hello { version, .. } => {
                return Err(fatal(format!(
                    "{} speaks protocol version {version}, the engine {}: install the same \
                     weir in python.executable's environment",
                    self.who,
                    channel::VERSION
                )))
            }
            other => {
                return Err(fatal(format!(
                    "{}: expected hello, got {}",
                    self.who,
                    other.kind()
                )))
            }
        }
        let _ = w.out.send(Frame::Handshake(self.handshake.clone()));
        match self
            .next_starting(&mut w, "opening the functions", deadline)
            .await?
        {
            Frame::Ready => {}
            other => {
                return Err(fatal(format!(
                    "{}: expected ready, got {}",
                    self.who,
                    other.kind()
                )))
            }
        }
        // Replay what has no result yet, in order; after a death, the first of them row by
        // row with progress reports (the one the dead worker was on).
        let ids: Vec<u64> = self.pending.keys().copied().collect();
        if self.handshake.attempt > 0 {
            if let Some(&first) = ids.first() {
                let _ = w.out.send(Frame::Trace { bundle: first });
            }
        }
        for id in ids {
            self.send(&w, id);
        }
        w.last_frame = Instant::now();
        Ok(w)
    }

    /// The next frame of a starting worker that is not a log, metrics, error or heartbeat
    /// (those are handled as usual); `stage` says what the worker is doing, for messages.
    /// A worker process (`python -m weir.worker`) connected to a socket of the job's directory.
    async fn start_process(
        &mut self,
        deps: &Deps,
    ) -> std::result::Result<(tokio::net::UnixStream, Worker), Failure> {
        let fatal = |m: String| Failure::Fatal(EngineError::Execution(m));
        self.socket_seq += 1;
        let socket = self.dir.path.join(format!(
            "{}-{}-{}.sock",
            self.handshake.subtask,
            self.socket_seq,
            DIR_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let listener = UnixListener::bind(&socket).map_err(|e| {
            fatal(format!(
                "{}: cannot listen on {}: {e}",
                self.who,
                socket.display()
            ))
        })?;
        let mut pythonpath = deps.path.join(":");
        if let Some(p) = std::env::var_os("PYTHONPATH").filter(|p| !p.is_empty()) {
            if !pythonpath.is_empty() {
                pythonpath.push(':');
            }
            pythonpath.push_str(&p.to_string_lossy());
        }
        let mut command = Command::new(&deps.python);
        if !pythonpath.is_empty() {
            command.env("PYTHONPATH", pythonpath);
        }
        let mut child = command
            .current_dir(&deps.cwd)
            .arg("-m")
            .arg("weir.worker")
            .arg("--socket")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                fatal(format!(
                    "{}: cannot start `{} -m weir.worker` (python.executable): {e}",
                    self.who, deps.python
                ))
            })?;
        let pid = child.id();
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let who = format!("{} pid {}", self.who, pid.unwrap_or(0));
        if let Some(out) = child.stdout.take() {
            tokio::spawn(forward_lines(out, who.clone(), "INFO", None));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(forward_lines(err, who.clone(), "WARN", Some(tail.clone())));
        }
        let mut w = Worker {
            host: Host::Process(child),
            pid,
            out: mpsc::unbounded_channel().0,
            frames: mpsc::channel(1).1,
            stderr_tail: tail,
            socket,
            last_frame: Instant::now(),
        };
        let deadline = self.opts.start_timeout;
        let accepted = tokio::select! {
            a = tokio::time::timeout(deadline, listener.accept()) => a,
            st = w.host.wait() => {
                let why = st.unwrap_or_else(|e| e.to_string());
                // Give the output forwarders a moment to catch the last lines.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let tail = w.tail();
                // Another start would fail the same way: say what to do at once.
                if tail.contains("No module named 'weir'") {
                    return Err(fatal(format!(
                        "{}: `{}` (python.executable) cannot import weir: install weir-stream in that environment{tail}",
                        self.who, deps.python
                    )));
                }
                return Err(Failure::Died(format!("the worker {why} before connecting{tail}")));
            }
        };
        let stream = match accepted {
            Ok(Ok((s, _))) => s,
            Ok(Err(e)) => {
                return Err(fatal(format!(
                    "{}: accepting its connection: {e}",
                    self.who
                )))
            }
            Err(_) => {
                w.host.start_kill();
                return Err(Failure::Died(format!(
                    "the worker did not connect within {deadline:?} (python.worker.start-timeout){}",
                    w.tail()
                )));
            }
        };
        Ok((stream, w))
    }

    /// A thread-mode worker: a thread of this process's interpreter on one end of a socket
    /// pair, with the job's dependency paths for its `sys.path`.
    fn start_thread(
        &mut self,
        deps: &Deps,
    ) -> std::result::Result<(tokio::net::UnixStream, Worker), Failure> {
        let fatal = |m: String| Failure::Fatal(EngineError::Execution(m));
        let starter = self
            .threads
            .clone()
            .expect("checked when the runner started");
        let (mine, theirs) = std::os::unix::net::UnixStream::pair()
            .map_err(|e| fatal(format!("{}: a socket pair: {e}", self.who)))?;
        let stream = mine
            .set_nonblocking(true)
            .and_then(|()| tokio::net::UnixStream::from_std(mine))
            .map_err(|e| fatal(format!("{}: a socket pair: {e}", self.who)))?;
        let ended = starter(theirs, self.who.clone())
            .map_err(|e| fatal(format!("{}: cannot start its thread: {e}", self.who)))?;
        // The working directory too, as a worker process has it first on its path (`-m`):
        // packages in archives import the same way in both modes.
        let mut path = deps.path.clone();
        path.push(deps.cwd.display().to_string());
        self.handshake
            .config
            .insert(keys::THREAD_PATH.to_string(), path.join("\n"));
        let w = Worker {
            host: Host::Thread {
                ended: Some(ended),
                how: None,
            },
            pid: None,
            out: mpsc::unbounded_channel().0,
            frames: mpsc::channel(1).1,
            stderr_tail: Arc::default(),
            socket: PathBuf::new(),
            last_frame: Instant::now(),
        };
        Ok((stream, w))
    }

    async fn next_starting(
        &mut self,
        w: &mut Worker,
        stage: &str,
        deadline: Duration,
    ) -> std::result::Result<Frame, Failure> {
        loop {
            match tokio::time::timeout(deadline, w.frames.recv()).await {
                Ok(Some(Ok(
                    frame @ (Frame::Log { .. }
                    | Frame::Metrics { .. }
                    | Frame::Error { .. }
                    | Frame::Heartbeat { .. }),
                ))) => self.on_frame(frame).map_err(Failure::Fatal)?,
                Ok(Some(Ok(frame))) => return Ok(frame),
                Ok(Some(Err(e))) => {
                    w.host.start_kill();
                    let why = w.exit_reason().await;
                    return Err(Failure::Died(format!(
                        "the channel broke while {stage} ({e}); the worker {why}{}",
                        w.tail()
                    )));
                }
                Ok(None) => {
                    let why = w.exit_reason().await;
                    return Err(Failure::Died(format!(
                        "the worker {why} while {stage}{}",
                        w.tail()
                    )));
                }
                Err(_) => {
                    w.host.start_kill();
                    return Err(Failure::Died(format!(
                        "the worker did not finish {stage} within {deadline:?} \
                         (python.worker.start-timeout), and was killed{}",
                        w.tail()
                    )));
                }
            }
        }
    }
}

enum Event {
    Cmd(Option<Cmd>),
    Frame(Option<std::result::Result<Frame, String>>),
    /// Nothing from the worker for `python.worker.heartbeat-timeout`.
    Silent,
}

impl Driver {
    /// Asks a worker to close its functions and exit; kills it if it does not. What it sends
    /// while closing (the metrics its `close()` made, the last gauge values, logs) counts.
    async fn stop(&mut self, mut w: Worker) {
        let _ = w.out.send(Frame::Close);
        let drain = async {
            while let Some(f) = w.frames.recv().await {
                match f {
                    Ok(frame @ (Frame::Log { .. } | Frame::Metrics { .. })) => {
                        if let Err(e) = self.on_frame(frame) {
                            log_line("WARN", &self.who, &format!("while closing: {e}"));
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
        if tokio::time::timeout(Duration::from_secs(1), w.host.wait())
            .await
            .is_err()
        {
            w.host.start_kill();
        }
    }
}

/// One result column per call over all parts, and the kept rows if any part skipped some
/// (then the columns hold only the kept rows).
fn assemble(parts: Vec<RecordBatch>, calls: usize) -> std::result::Result<Evaluated, String> {
    let concat = |c: usize| -> std::result::Result<ArrayRef, String> {
        if parts.len() == 1 {
            return Ok(parts[0].column(c).clone());
        }
        let cols: Vec<&dyn Array> = parts.iter().map(|p| p.column(c).as_ref()).collect();
        arrow_select::concat::concat(&cols).map_err(|e| e.to_string())
    };
    let mut columns = (0..calls)
        .map(concat)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if !parts.iter().any(|p| p.num_columns() > calls) {
        return Ok(Evaluated::all(columns));
    }
    let mut mask = Vec::new();
    for p in &parts {
        match p.columns().get(calls) {
            Some(k) => {
                let k = k
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .ok_or("kept-rows column is not boolean")?;
                mask.extend(k.iter().map(|v| v.unwrap_or(false)));
            }
            None => mask.extend(std::iter::repeat_n(true, p.num_rows())),
        }
    }
    let keep = BooleanArray::from(mask);
    for c in columns.iter_mut() {
        *c = arrow_select::filter::filter(c.as_ref(), &keep).map_err(|e| e.to_string())?;
    }
    Ok(Evaluated {
        columns,
        keep: Some(keep),
    })
}

#[cfg(test)]
fn is_private(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.permissions().mode() & 0o777 == 0o700)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_with_clear_errors() {
        let mut c = BTreeMap::new();
        let o = Options::from_config(&c).unwrap();
        assert_eq!(o.bundle_size, DEFAULT_BUNDLE_SIZE);
        assert_eq!(o.deps.python, "python3");
        c.insert(keys::BUNDLE_SIZE.to_string(), "abc".to_string());
        let e = Options::from_config(&c).unwrap_err().to_string();
        assert!(
            e.contains("python.fn-execution.bundle.size") && e.contains("abc"),
            "{e}"
        );
        c.insert(keys::BUNDLE_SIZE.to_string(), "10".to_string());
        c.insert(keys::HEARTBEAT_TIMEOUT.to_string(), "2 min".to_string());
        c.insert(keys::BUNDLE_TIME.to_string(), "2 s".to_string());
        let o = Options::from_config(&c).unwrap();
        assert_eq!(o.heartbeat_timeout, Duration::from_secs(120));
        assert_eq!(o.heartbeat_interval(), Duration::from_secs(2));
        assert_eq!(
            Options::from_config(&c).unwrap().bundle_time,
            Duration::from_secs(2)
        );
        for (key, bad) in [
            (keys::ON_ERROR, "ignore"),
            (keys::MAX_IN_FLIGHT, "0"),
            (keys::HEARTBEAT_TIMEOUT, "0"),
            (keys::START_TIMEOUT, "0 s"),
            ("python.metric.enabled", "maybe"),
        ] {
            let mut c = c.clone();
            c.insert(key.to_string(), bad.to_string());
            let e = Options::from_config(&c).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn private_dirs_are_0700() {
        let b = ProcessBackend::default();
        let d = b.job_dir("my job/1", &DepsConfig::default()).unwrap();
        assert!(is_private(&d.path));
        assert!(d.path.starts_with(std::env::temp_dir()));
        let again = b.job_dir("my job/1", &DepsConfig::default()).unwrap();
        assert_eq!(d.path, again.path, "one directory per job");
        let p = d.path.clone();
        drop(d);
        drop(again);
        assert!(!p.exists(), "removed with its last worker");
    }

    #[test]
    fn assemble_keeps_order_and_masks() {
        use arrow_array::{cast::AsArray, types::Int64Type, Int64Array};
        use arrow_schema::{Field, Schema};
        let s1 = Arc::new(Schema::new(vec![Field::new("r", DataType::Int64, true)]));
        let s2 = Arc::new(Schema::new(vec![
            Field::new("r", DataType::Int64, true),
            Field::new("keep", DataType::Boolean, false),
        ]));
        let a = RecordBatch::try_new(s1, vec![Arc::new(Int64Array::from(vec![1, 2]))]).unwrap();
        // Second part: 3 input rows, the middle one skipped (NULL in the result).
        let b = RecordBatch::try_new(
            s2,
            vec![
                Arc::new(Int64Array::from(vec![Some(3), None, Some(5)])),
                Arc::new(BooleanArray::from(vec![true, false, true])),
            ],
        )
        .unwrap();
        let e = assemble(vec![a.clone(), b], 1).unwrap();
        let keep: Vec<bool> = e.keep.unwrap().iter().map(|v| v.unwrap()).collect();
        assert_eq!(keep, [true, true, true, false, true]);
        let r: Vec<i64> = e.columns[0].as_primitive::<Int64Type>().values().to_vec();
        assert_eq!(r, [1, 2, 3, 5]);
        let all = assemble(vec![a.clone(), a], 1).unwrap();
        assert!(all.keep.is_none());
        assert_eq!(all.columns[0].len(), 4);
    }
}
