//! Running a job graph: every node runs as `parallelism` subtasks (tokio tasks). Each subtask
//! has one bounded inbox that all its upstream subtasks send to, so a slow operator slows its
//! producers (backpressure) and multi-input operators cannot deadlock on a full side.
//!
//! Edges are forward (subtask i to subtask i), hash-partitioned by key (keyed operators),
//! rebalanced (round robin) or gathered to one subtask. Watermarks travel in-band; a subtask's
//! watermark is the minimum over its input channels, an ended channel no longer holds it
//! back. Every subtask reports records, batches and bytes in and out, busy and backpressured
//! time ratios, and its watermark through `weir-metrics`.

pub mod job;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{Array, RecordBatch, UInt32Array};
use arrow_row::{RowConverter, SortField};
use arrow_schema::SchemaRef;
use tokio::sync::mpsc;
use weir_metrics::{Counter, Gauge, MetricGroup, Registry};

use crate::error::{EngineError, Result};
use crate::expr::Expr;
use crate::operators::Operator;
use crate::runtime::job::{JobSummary, Sink};
use crate::stream::StreamBatch;
use crate::stream::MAX_BATCH_ROWS;
use crate::udf::{FunctionRunner, Pending, RunnerContext, UdfBackend, UdfCall};

/// Batches that may wait in a subtask's inbox.
const INBOX_BATCHES: usize = 8;

/// A source of batches for one subtask.
pub trait Source: Send {
    /// Up to `max_rows` more rows, or `None` at the end.
    fn next_batch(&mut self, max_rows: usize) -> Result<Option<RecordBatch>>;
    /// Rows per second this subtask may emit; 0 = no limit.
    fn rows_per_second(&self) -> u64 {
        0
    }
}

/// Creates a source's subtasks.
pub trait SourceFactory: Send + Sync {
    /// The table's name.
    fn name(&self) -> &str;
    /// The rows' schema.
    fn schema(&self) -> SchemaRef;
    /// Whether it ends by itself.
    fn is_bounded(&self) -> bool;
    /// The most subtasks it can use (1 for a single file or in-memory values).
    fn max_parallelism(&self) -> usize {
        usize::MAX
    }
    /// Subtask `subtask` of `parallelism`.
    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Source>>;
}

/// Creates a sink's subtasks.
pub trait SinkFactory: Send + Sync {
    /// The table's name.
    fn name(&self) -> &str;
    /// Whether it can take `-U`/`+U`/`-D` rows.
    fn accepts_updates(&self) -> bool;
    /// The most subtasks it can use.
    fn max_parallelism(&self) -> usize {
        usize::MAX
    }
    /// The parallelism its table asks for (`sink.parallelism`), if any.
    fn parallelism(&self) -> Option<usize> {
        None
    }
    /// Subtask `subtask` of `parallelism`.
    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Sink>>;
}

/// Makes an operator instance for a subtask.
pub type OperatorFactory = Arc<dyn Fn(usize) -> Result<Box<dyn Operator>> + Send + Sync>;

/// How rows travel along an edge.
#[derive(Clone, Debug)]
pub enum Partitioning {
    /// Subtask i to subtask i (same parallelism).
    Forward,
    /// By the hash of these key expressions.
    Hash(Vec<Expr>),
    /// Round robin.
    Rebalance,
    /// Everything to subtask 0.
    Single,
}

impl Partitioning {
    fn describe(&self) -> String {
        match self {
            Partitioning::Forward => "FORWARD".into(),
            Partitioning::Hash(k) => format!(
                "HASH[{}]",
                k.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Partitioning::Rebalance => "REBALANCE".into(),
            Partitioning::Single => "SINGLETON".into(),
        }
    }
}

/// What a node does.
#[derive(Clone)]
pub enum NodeKind {
    Source {
        factory: Arc<dyn SourceFactory>,
        /// The watermark expression (e.g. `ts - INTERVAL '5' SECOND`), evaluated per batch.
        watermark: Option<Expr>,
    },
    Operator(OperatorFactory),
    /// Python (or other external) functions: argument columns go to a runner, result columns
    /// are appended to the input row.
    Udf {
        backend: Arc<dyn UdfBackend>,
        calls: Vec<UdfCall>,
        /// Input columns that are the arguments.
        arg_columns: Vec<usize>,
    },
    /// An operator whose state is computed by out-of-process functions (Python aggregate
    /// functions): before it processes a batch, what [`Operator::request`] returns goes to a
    /// runner of `calls` and the answer to [`Operator::on_evaluated`], one batch at a time.
    FunctionOperator {
        factory: OperatorFactory,
        backend: Arc<dyn UdfBackend>,
        calls: Vec<UdfCall>,
        /// Schema of the batches [`Operator::request`] makes.
        request_schema: SchemaRef,
    },
    Sink(Arc<dyn SinkFactory>),
}

/// One vertex of the job graph.
#[derive(Clone)]
pub struct Node {
    pub name: String,
    pub kind: NodeKind,
    pub parallelism: usize,
    /// Upstream nodes (indexes into the graph, always lower) and how rows get here.
    pub inputs: Vec<(usize, Partitioning)>,
    /// Schema of what this node emits (the input's for sinks).
    pub schema: SchemaRef,
}

/// A runnable job.
#[derive(Clone)]
pub struct JobGraph {
    pub job_name: String,
    pub nodes: Vec<Node>,
    /// Streaming (watermarks sent while running) or batch mode.
    pub streaming: bool,
    /// The job's configuration, handed to UDF runners.
    pub config: Arc<std::collections::BTreeMap<String, String>>,
}

impl JobGraph {
    /// The graph as text (EXPLAIN's physical part).
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let inputs: Vec<String> = n
                .inputs
                .iter()
                .map(|(u, p)| format!("{} <- [{u}] {}", p.describe(), self.nodes[*u].name))
                .collect();
            s.push_str(&format!("[{i}] {} (parallelism {})", n.name, n.parallelism));
            if !inputs.is_empty() {
                s.push_str(&format!("  {}", inputs.join("; ")));
            }
            s.push('\n');
        }
        s
    }
}

/// What travels between subtasks.
enum Msg {
    Batch(StreamBatch),
    Watermark(i64),
    End,
}

struct Envelope {
    /// Channel index at the receiver (one per upstream subtask and input).
    channel: u32,
    input: u32,
    msg: Msg,
}

/// Sending side of one edge for one producing subtask.
struct EdgeOut {
    senders: Vec<mpsc::Sender<Envelope>>,
    /// This producer's channel id at each receiver.
    channels: Vec<u32>,
    input: u32,
    partitioning: Partitioning,
    converter: Option<RowConverter>,
    next: usize,
}

/// Per-subtask metrics.
#[derive(Clone)]
struct TaskMetrics {
    records_in: Counter,
    records_out: Counter,
    batches_in: Counter,
    batches_out: Counter,
    bytes_in: Counter,
    bytes_out: Counter,
    busy_ratio: Gauge,
    backpressured_ratio: Gauge,
    watermark: Gauge,
    watermark_lag: Gauge,
    group: MetricGroup,
}

fn metric_err(op: &str) -> impl Fn(weir_metrics::MetricsError) -> EngineError + '_ {
    move |e| EngineError::Execution(format!("registering metrics of {op}: {e}"))
}

impl TaskMetrics {
    fn new(registry: &Registry, job: &str, operator: &str, subtask: usize) -> Result<Self> {
        let err = metric_err(operator);
        let st = subtask.to_string();
        let g = registry
            .system_group(
                "operator",
                &[("job_name", job), ("operator", operator), ("subtask", &st)],
            )
            .map_err(&err)?;
        Ok(Self {
            records_in: g
                .counter_with_help("records_in", "Rows received by the operator")
                .map_err(&err)?,
            records_out: g
                .counter_with_help("records_out", "Rows emitted by the operator")
                .map_err(&err)?,
            batches_in: g
                .counter_with_help("batches_in", "Batches received by the operator")
                .map_err(&err)?,
            batches_out: g
                .counter_with_help("batches_out", "Batches emitted by the operator")
                .map_err(&err)?,
            bytes_in: g
                .counter_with_help("bytes_in", "Bytes of Arrow data received by the operator")
                .map_err(&err)?,
            bytes_out: g
                .counter_with_help("bytes_out", "Bytes of Arrow data emitted by the operator")
                .map_err(&err)?,
            busy_ratio: g
                .gauge_with_help(
                    "busy_ratio",
                    "Share of the last second the subtask spent working (0 to 1)",
                )
                .map_err(&err)?,
            backpressured_ratio: g
                .gauge_with_help(
                    "backpressured_ratio",
                    "Share of the last second the subtask waited for room downstream (0 to 1)",
                )
                .map_err(&err)?,
            watermark: g
                .gauge_with_help(
                    "watermark_seconds",
                    "Event-time watermark of the subtask, seconds since the epoch",
                )
                .map_err(&err)?,
            watermark_lag: g
                .gauge_with_help(
                    "watermark_lag_seconds",
                    "Wall clock minus the subtask's watermark",
                )
                .map_err(&err)?,
            group: g,
        })
    }

    fn init(self) -> Self {
        self.busy_ratio.set_f64(0.0);
        self.backpressured_ratio.set_f64(0.0);
        self
    }

    fn saw(&self, b: &StreamBatch) {
        self.records_in.inc(b.num_rows() as i64);
        self.batches_in.inc(1);
        self.bytes_in.inc(b.data.get_array_memory_size() as i64);
    }

    fn emitted(&self, b: &StreamBatch) {
        self.records_out.inc(b.num_rows() as i64);
        self.batches_out.inc(1);
        self.bytes_out.inc(b.data.get_array_memory_size() as i64);
    }

    fn watermark(&self, wm: i64) {
        if wm == i64::MIN || wm == i64::MAX {
            return;
        }
        self.watermark.set_f64(wm as f64 / 1000.0);
        let lag = (crate::expr::functions::now_millis() - wm) as f64 / 1000.0;
        self.watermark_lag.set_f64(lag);
    }
}

/// Busy and backpressure time of a subtask, turned into ratios about once a second.
struct Clock {
    window_start: Instant,
    busy: Duration,
    blocked: Duration,
}

impl Clock {
    fn new() -> Self {
        Self {
            window_start: Instant::now(),
            busy: Duration::ZERO,
            blocked: Duration::ZERO,
        }
    }

    fn maybe_report(&mut self, m: &TaskMetrics, force: bool) {
        let elapsed = self.window_start.elapsed();
        if elapsed >= Duration::from_secs(1) || (force && elapsed > Duration::from_millis(10)) {
            let e = elapsed.as_secs_f64();
            m.busy_ratio.set_f64((self.busy.as_secs_f64() / e).min(1.0));
            m.backpressured_ratio
                .set_f64((self.blocked.as_secs_f64() / e).min(1.0));
            self.busy = Duration::ZERO;
            self.blocked = Duration::ZERO;
            self.window_start = Instant::now();
        }
    }
}

/// The sending half of a subtask.
struct Outputs {
    edges: Vec<EdgeOut>,
    metrics: TaskMetrics,
}

impl Outputs {
    /// Sends a batch along every edge; false when every receiver has gone.
    async fn batch(&mut self, b: StreamBatch, clock: &mut Clock) -> Result<bool> {
        if b.num_rows() == 0 {
            return Ok(true);
        }
        self.metrics.emitted(&b);
        let mut open = false;
        let started = Instant::now();
        let edges = self.edges.len();
        for ei in 0..edges {
            let e = &mut self.edges[ei];
            let targets = e.senders.len();
            let parts: Vec<(usize, StreamBatch)> = match &e.partitioning {
                // Forward edges were turned into Single (one receiver) or Rebalance when built.
                Partitioning::Forward | Partitioning::Single => vec![(0, b.clone())],
                Partitioning::Rebalance => {
                    e.next = (e.next + 1) % targets;
                    vec![(e.next, b.clone())]
                }
                Partitioning::Hash(_) if targets == 1 => vec![(0, b.clone())],
                Partitioning::Hash(keys) => {
                    let n = b.num_rows();
                    let cols = keys
                        .iter()
                        .map(|k| k.evaluate(&b.data)?.into_array(n))
                        .collect::<Result<Vec<_>>>()?;
                    if e.converter.is_none() {
                        e.converter = Some(
                            RowConverter::new(
                                cols.iter()
                                    .map(|c| SortField::new(c.data_type().clone()))
                                    .collect(),
                            )
                            .map_err(|source| EngineError::Arrow {
                                context: "partitioning".into(),
                                source,
                            })?,
                        );
                    }
                    let conv = e
                        .converter
                        .as_ref()
                        .ok_or_else(|| EngineError::Execution("no converter".into()))?;
                    let rows =
                        conv.convert_columns(&cols)
                            .map_err(|source| EngineError::Arrow {
                                context: "partitioning".into(),
                                source,
                            })?;
                    let mut idx: Vec<Vec<u32>> = vec![Vec::new(); targets];
                    for i in 0..n {
                        let h = crate::operators::state::hash_bytes(rows.row(i).as_ref());
                        idx[(h % targets as u64) as usize].push(i as u32);
                    }
                    let mut parts = Vec::new();
                    for (t, ix) in idx.into_iter().enumerate() {
                        if ix.is_empty() {
                            continue;
                        }
                        if ix.len() == n {
                            parts.push((t, b.clone()));
                            continue;
                        }
                        parts.push((t, b.take(&UInt32Array::from(ix))?));
                    }
                    parts
                }
            };
            for (t, part) in parts {
                let env = Envelope {
                    channel: e.channels[t],
                    input: e.input,
                    msg: Msg::Batch(part),
                };
                open |= e.senders[t].send(env).await.is_ok();
            }
        }
        clock.blocked += started.elapsed();
        Ok(open || edges == 0)
    }

    async fn broadcast(&mut self, wm: Option<i64>) {
        for e in &mut self.edges {
            for (t, s) in e.senders.iter().enumerate() {
                let msg = match wm {
                    Some(w) => Msg::Watermark(w),
                    None => Msg::End,
                };
                let _ = s
                    .send(Envelope {
                        channel: e.channels[t],
                        input: e.input,
                        msg,
                    })
                    .await;
            }
        }
    }
}

/// Tracks the watermark over input channels.
struct Watermarks {
    marks: Vec<i64>,
    ended: Vec<bool>,
    current: i64,
}

impl Watermarks {
    fn new(channels: usize) -> Self {
        Self {
            marks: vec![i64::MIN; channels],
            ended: vec![false; channels],
            current: i64::MIN,
        }
    }

    /// The combined watermark if it advanced.
    fn update(&mut self, channel: usize, wm: Option<i64>) -> Option<i64> {
        match wm {
            Some(w) => self.marks[channel] = self.marks[channel].max(w),
            None => self.ended[channel] = true,
        }
        let min = self
            .marks
            .iter()
            .zip(&self.ended)
            .filter(|(_, e)| !**e)
            .map(|(m, _)| *m)
            .min();
        let combined = match min {
            Some(m) => m,
            // Every channel ended: whatever the highest mark was stands.
            None => self
                .marks
                .iter()
                .copied()
                .max()
                .unwrap_or(i64::MIN)
                .max(self.current),
        };
        if combined > self.current {
            self.current = combined;
            Some(combined)
        } else {
            None
        }
    }

    fn all_ended(&self) -> bool {
        self.ended.iter().all(|e| *e)
    }
}

/// Running job state shared with its handle.
pub struct JobControl {
    cancelled: AtomicBool,
    pub rows_read: AtomicU64,
    pub rows_written: AtomicU64,
    /// Highest watermark the sinks have seen (ms; `i64::MIN` before the first).
    pub watermark: std::sync::atomic::AtomicI64,
}

impl JobControl {
    /// Asks every source to stop; the job then ends cleanly.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
}

impl Default for JobControl {
    fn default() -> Self {
        Self {
            cancelled: AtomicBool::new(false),
            rows_read: AtomicU64::new(0),
            rows_written: AtomicU64::new(0),
            watermark: std::sync::atomic::AtomicI64::new(i64::MIN),
        }
    }
}

type Task = tokio::task::JoinHandle<Result<()>>;

impl JobGraph {
    /// Runs the job to its end (bounded input, cancellation or the first error) on the
    /// current tokio runtime.
    pub async fn run(self, registry: &Registry) -> Result<JobSummary> {
        self.run_with(registry, Arc::new(JobControl::default()))
            .await
    }

    /// As [`JobGraph::run`], observable and cancellable through `control`.
    pub async fn run_with(
        self,
        registry: &Registry,
        control: Arc<JobControl>,
    ) -> Result<JobSummary> {
        let started = Instant::now();
        let job = self.job_name.clone();
        let nodes = &self.nodes;
        // Inboxes: one per subtask of every node but sources.
        let mut inboxes: Vec<Vec<Option<mpsc::Receiver<Envelope>>>> = Vec::new();
        let mut senders: Vec<Vec<mpsc::Sender<Envelope>>> = Vec::new();
        for n in nodes {
            let (mut tx, mut rx) = (Vec::new(), Vec::new());
            for _ in 0..n.parallelism {
                let (s, r) = mpsc::channel(INBOX_BATCHES);
                tx.push(s);
                rx.push(Some(r));
            }
            senders.push(tx);
            inboxes.push(rx);
        }
        // Channel layout at each receiving subtask: for each input edge, which channel ids
        // its producers use.
        let mut channel_count: Vec<Vec<u32>> =
            nodes.iter().map(|n| vec![0; n.parallelism]).collect();
        // outputs[node][subtask] = edges
        let mut outputs: Vec<Vec<Vec<EdgeOut>>> = nodes
            .iter()
            .map(|n| (0..n.parallelism).map(|_| Vec::new()).collect())
            .collect();
        for (ci, consumer) in nodes.iter().enumerate() {
            for (input_idx, (pi, part)) in consumer.inputs.iter().enumerate() {
                let producer = &nodes[*pi];
                let forward = matches!(part, Partitioning::Forward)
                    && producer.parallelism == consumer.parallelism;
                let part = match part {
                    Partitioning::Forward if !forward => Partitioning::Rebalance,
                    // Keys are evaluated on the producer's batches: bound to its schema.
                    Partitioning::Hash(keys) => Partitioning::Hash(
                        keys.iter()
                            .map(|k| crate::expr::bind(k, &producer.schema))
                            .collect::<Result<_>>()?,
                    ),
                    p => p.clone(),
                };
                #[allow(clippy::needless_range_loop)]
                for ps in 0..producer.parallelism {
                    let mut edge = EdgeOut {
                        senders: Vec::new(),
                        channels: Vec::new(),
                        input: input_idx as u32,
                        partitioning: part.clone(),
                        converter: None,
                        next: ps,
                    };
                    let targets: Vec<usize> = match (&part, forward) {
                        (_, true) => vec![ps],
                        (Partitioning::Single, _) => vec![0],
                        _ => (0..consumer.parallelism).collect(),
                    };
                    for cs in targets {
                        let id = channel_count[ci][cs];
                        channel_count[ci][cs] += 1;
                        edge.senders.push(senders[ci][cs].clone());
                        edge.channels.push(id);
                    }
                    if forward {
                        // One receiver: index 0 of this edge's senders.
                        edge.partitioning = Partitioning::Single;
                    }
                    outputs[*pi][ps].push(edge);
                }
            }
        }
        drop(senders);

        let mut tasks: Vec<(String, Task)> = Vec::new();
        for (ni, node) in nodes.iter().enumerate() {
            for st in 0..node.parallelism {
                let metrics = TaskMetrics::new(registry, &job, &node.name, st)?.init();
                let out = Outputs {
                    edges: std::mem::take(&mut outputs[ni][st]),
                    metrics: metrics.clone(),
                };
                let inbox = inboxes[ni][st].take();
                let channels = channel_count[ni][st] as usize;
                let control = control.clone();
                let streaming = self.streaming;
                let task: Task = match &node.kind {
                    NodeKind::Source { factory, watermark } => {
                        let source = factory.create(st, node.parallelism)?;
                        let wm = watermark
                            .as_ref()
                            .map(|w| crate::expr::bind(w, &node.schema))
                            .transpose()?;
                        let name = node.name.clone();
                        tokio::spawn(run_source(name, source, wm, out, control, streaming))
                    }
                    NodeKind::Operator(f) => {
                        // Building an operator clones its bound expressions, which recurses
                        // per level of nesting: done with room for deep ones.
                        let mut op = crate::stack::deep(|| f(st))?;
                        op.open(&metrics.group)?;
                        let inbox = inbox
                            .ok_or_else(|| EngineError::Execution("inbox taken twice".into()))?;
                        tokio::spawn(run_operator(op, None, inbox, channels, out))
                    }
                    NodeKind::FunctionOperator {
                        factory,
                        backend,
                        calls,
                        request_schema,
                    } => {
                        let mut op = crate::stack::deep(|| factory(st))?;
                        op.open(&metrics.group)?;
                        let ctx = RunnerContext {
                            job_name: job.clone(),
                            operator: node.name.clone(),
                            subtask: st,
                            parallelism: node.parallelism,
                            registry: registry.clone(),
                            config: self.config.clone(),
                        };
                        let runner = backend.start(&ctx, calls, request_schema.clone())?;
                        let inbox = inbox
                            .ok_or_else(|| EngineError::Execution("inbox taken twice".into()))?;
                        tokio::spawn(run_operator(op, Some(runner), inbox, channels, out))
                    }
                    NodeKind::Udf {
                        backend,
                        calls,
                        arg_columns,
                    } => {
                        let ctx = RunnerContext {
                            job_name: job.clone(),
                            operator: node.name.clone(),
                            subtask: st,
                            parallelism: node.parallelism,
                            registry: registry.clone(),
                            config: self.config.clone(),
                        };
                        let input_schema = nodes[node.inputs[0].0].schema.clone();
                        let arg_schema =
                            Arc::new(input_schema.project(arg_columns).map_err(|source| {
                                EngineError::Arrow {
                                    context: node.name.clone(),
                                    source,
                                }
                            })?);
                        let runner = backend.start(&ctx, calls, arg_schema)?;
                        let inbox = inbox
                            .ok_or_else(|| EngineError::Execution("inbox taken twice".into()))?;
                        tokio::spawn(run_udf(
                            node.name.clone(),
                            runner,
                            arg_columns.clone(),
                            node.schema.clone(),
                            inbox,
                            channels,
                            out,
                        ))
                    }
                    NodeKind::Sink(f) => {
                        let sink = f.create(st, node.parallelism)?;
                        let inbox = inbox
                            .ok_or_else(|| EngineError::Execution("inbox taken twice".into()))?;
                        tokio::spawn(run_sink(sink, inbox, channels, metrics, control))
                    }
                };
                tasks.push((format!("{} (subtask {st})", node.name), task));
            }
        }

        let mut first_error: Option<EngineError> = None;
        for (name, t) in tasks {
            let r = t.await;
            let err = match r {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(e) => Some(EngineError::Execution(format!(
                    "{name} of job {job} crashed: {e}"
                ))),
            };
            if let Some(e) = err {
                control.cancel();
                if first_error.is_none() {
                    first_error = Some(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(JobSummary {
                rows_read: control.rows_read.load(Ordering::Relaxed),
                rows_written: control.rows_written.load(Ordering::Relaxed),
                elapsed: started.elapsed(),
            }),
        }
    }
}

async fn run_source(
    name: String,
    mut source: Box<dyn Source>,
    watermark: Option<Expr>,
    mut out: Outputs,
    control: Arc<JobControl>,
    streaming: bool,
) -> Result<()> {
    let rps = source.rows_per_second();
    let batch_rows = if rps == 0 {
        MAX_BATCH_ROWS
    } else {
        (rps as usize / 10).clamp(1, MAX_BATCH_ROWS)
    };
    let begun = Instant::now();
    let mut emitted: u64 = 0;
    let mut wm = i64::MIN;
    let mut clock = Clock::new();
    loop {
        if control.is_cancelled() {
            break;
        }
        let t0 = Instant::now();
        let next = source.next_batch(batch_rows);
        let data = match next {
            Ok(Some(d)) => d,
            Ok(None) => break,
            Err(e) => {
                out.broadcast(None).await;
                return Err(e);
            }
        };
        let b = StreamBatch::inserts(data);
        let n = b.num_rows() as u64;
        emitted += n;
        control.rows_read.fetch_add(n, Ordering::Relaxed);
        let next_wm = match (&watermark, streaming) {
            (Some(w), true) if n > 0 => max_millis(w, &b.data, &name)?,
            _ => None,
        };
        clock.busy += t0.elapsed();
        if !out.batch(b, &mut clock).await? {
            break;
        }
        if let Some(w) = next_wm {
            if w > wm {
                wm = w;
                out.metrics.watermark(wm);
                out.broadcast(Some(wm)).await;
            }
        }
        clock.maybe_report(&out.metrics, false);
        if rps > 0 {
            let due = begun + Duration::from_secs_f64(emitted as f64 / rps as f64);
            tokio::time::sleep_until(due.into()).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
    // End of input: fire every window downstream, then end.
    out.broadcast(Some(i64::MAX)).await;
    out.broadcast(None).await;
    clock.maybe_report(&out.metrics, true);
    Ok(())
}

/// The largest value of a timestamp expression on a batch, in ms.
fn max_millis(e: &Expr, b: &RecordBatch, context: &str) -> Result<Option<i64>> {
    let v = e.evaluate(b)?.into_array(b.num_rows())?;
    let ms = crate::operators::millis_of(&v, context)?;
    Ok(arrow_arith::aggregate::max(&ms))
}

/// Sends what `op` asks for before a batch to `runner` and hands it the answer: one batch at
/// a time, since the next batch's request may need what this answer changes.
async fn evaluate_for(
    op: &mut dyn Operator,
    runner: Option<&mut Box<dyn FunctionRunner>>,
    input: usize,
    batch: &StreamBatch,
) -> Result<()> {
    let Some(runner) = runner else {
        return Ok(());
    };
    let Some(request) = op.request(input, batch)? else {
        return Ok(());
    };
    answer(op, runner, request).await
}

/// Sends `request` to `runner`, alone, and hands `op` the answer.
async fn answer(
    op: &mut dyn Operator,
    runner: &mut Box<dyn FunctionRunner>,
    request: arrow_array::RecordBatch,
) -> Result<()> {
    let pending = runner.submit(request)?;
    runner.flush()?;
    let answer = pending.await.map_err(|_| {
        EngineError::Execution(format!("{}: the function runner went away", op.name()))
    })??;
    op.on_evaluated(answer)
}

/// Sends what `op` asks for before it fires at `wm` (`None`: before it finishes) to `runner`
/// and hands it the answer.
async fn evaluate_fire(
    op: &mut dyn Operator,
    runner: Option<&mut Box<dyn FunctionRunner>>,
    wm: Option<i64>,
) -> Result<()> {
    let Some(runner) = runner else {
        return Ok(());
    };
    let Some(request) = op.fire_request(wm)? else {
        return Ok(());
    };
    answer(op, runner, request).await
}

async fn run_operator(
    mut op: Box<dyn Operator>,
    mut runner: Option<Box<dyn FunctionRunner>>,
    mut inbox: mpsc::Receiver<Envelope>,
    channels: usize,
    mut out: Outputs,
) -> Result<()> {
    let mut marks = Watermarks::new(channels);
    let mut buf = Vec::new();
    let mut clock = Clock::new();
    let timer_every = op.timer_interval();
    let mut ticker = tokio::time::interval(timer_every.unwrap_or(Duration::from_secs(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result: Result<()> = async {
        if channels == 0 {
            evaluate_fire(op.as_mut(), runner.as_mut(), None).await?;
            op.finish(&mut buf)?;
            for b in buf.drain(..) {
                out.batch(b, &mut clock).await?;
            }
            return Ok(());
        }
        loop {
            let env = tokio::select! {
                env = inbox.recv() => env,
                _ = ticker.tick() => {
                    let t0 = Instant::now();
                    if timer_every.is_some() {
                        let now = crate::expr::functions::now_millis();
                        evaluate_fire(op.as_mut(), runner.as_mut(), Some(now)).await?;
                        op.on_timer(now, &mut buf)?;
                    }
                    clock.busy += t0.elapsed();
                    for b in buf.drain(..) {
                        out.batch(b, &mut clock).await?;
                    }
                    clock.maybe_report(&out.metrics, false);
                    if marks.current > i64::MIN {
                        out.metrics.watermark(marks.current);
                    }
                    continue;
                }
            };
            let Some(env) = env else { break };
            let t0 = Instant::now();
            match env.msg {
                Msg::Batch(b) => {
                    out.metrics.saw(&b);
                    evaluate_for(op.as_mut(), runner.as_mut(), env.input as usize, &b).await?;
                    op.process_input(env.input as usize, b, &mut buf)?;
                }
                Msg::Watermark(w) => {
                    if let Some(w) = marks.update(env.channel as usize, Some(w)) {
                        evaluate_fire(op.as_mut(), runner.as_mut(), Some(w)).await?;
                        let fwd = op.on_watermark(w, &mut buf)?;
                        clock.busy += t0.elapsed();
                        for b in buf.drain(..) {
                            out.batch(b, &mut clock).await?;
                        }
                        out.metrics.watermark(fwd);
                        out.broadcast(Some(fwd)).await;
                        continue;
                    }
                }
                Msg::End => {
                    if let Some(w) = marks.update(env.channel as usize, None) {
                        evaluate_fire(op.as_mut(), runner.as_mut(), Some(w)).await?;
                        let fwd = op.on_watermark(w, &mut buf)?;
                        for b in buf.drain(..) {
                            out.batch(b, &mut clock).await?;
                        }
                        out.broadcast(Some(fwd)).await;
                    }
                    if marks.all_ended() {
                        break;
                    }
                }
            }
            clock.busy += t0.elapsed();
            let mut open = true;
            for b in buf.drain(..) {
                open &= out.batch(b, &mut clock).await?;
            }
            clock.maybe_report(&out.metrics, false);
            if !open || op.is_done() {
                // Nobody listens any more, or the operator has all it wants: stop the input.
                inbox.close();
                evaluate_fire(op.as_mut(), runner.as_mut(), None).await?;
                let t0 = Instant::now();
                op.finish(&mut buf)?;
                clock.busy += t0.elapsed();
                for b in buf.drain(..) {
                    out.batch(b, &mut clock).await?;
                }
                out.broadcast(Some(i64::MAX)).await;
                return Ok(());
            }
        }
        evaluate_fire(op.as_mut(), runner.as_mut(), None).await?;
        let t0 = Instant::now();
        op.finish(&mut buf)?;
        clock.busy += t0.elapsed();
        for b in buf.drain(..) {
            out.batch(b, &mut clock).await?;
        }
        Ok(())
    }
    .await;
    if let Some(mut r) = runner {
        let _ = r.close();
        if result.is_ok() {
            if let Some(done) = r.finished() {
                let _ = tokio::time::timeout(crate::udf::FINISH_TIMEOUT, done).await;
            }
        }
    }
    // Downstream ends whether this subtask succeeded or failed (the error is reported by the
    // job); the final watermark has been forwarded with End.
    out.broadcast(None).await;
    clock.maybe_report(&out.metrics, true);
    result
}

async fn run_udf(
    name: String,
    mut runner: Box<dyn FunctionRunner>,
    arg_columns: Vec<usize>,
    schema: SchemaRef,
    mut inbox: mpsc::Receiver<Envelope>,
    channels: usize,
    mut out: Outputs,
) -> Result<()> {
    let mut marks = Watermarks::new(channels);
    let mut clock = Clock::new();
    let max_in_flight = runner.max_in_flight().max(1);
    let tick_every = runner.tick_interval();
    let mut ticker = tokio::time::interval(tick_every.unwrap_or(Duration::from_secs(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut in_flight: VecDeque<(StreamBatch, Pending)> = VecDeque::new();
    let arrow = |source| EngineError::Arrow {
        context: name.clone(),
        source,
    };
    let combine = |input: StreamBatch, results: crate::udf::Evaluated| -> Result<StreamBatch> {
        let input = match &results.keep {
            Some(keep) => input.filter(keep)?,
            None => input,
        };
        let mut cols = input.data.columns().to_vec();
        cols.extend(results.columns);
        let data =
            RecordBatch::try_new(schema.clone(), cols).map_err(|source| EngineError::Arrow {
                context: format!(
                    "{name}: the functions' results do not fit the declared result types"
                ),
                source,
            })?;
        Ok(StreamBatch {
            data,
            kinds: input.kinds,
        })
    };
    let result: Result<()> = async {
        if channels == 0 {
            return Ok(());
        }
        loop {
            // Wait for input while there is room, else for the oldest result.
            let have_room = in_flight.len() < max_in_flight;
            tokio::select! {
                biased;
                r = async { in_flight.front_mut().map(|f| &mut f.1).expect("checked").await }, if !in_flight.is_empty() => {
                    let (input, _) = in_flight.pop_front().expect("checked");
                    let cols = r.map_err(|_| EngineError::Execution(format!("{name}: the function runner went away")))??;
                    let b = combine(input, cols)?;
                    out.batch(b, &mut clock).await?;
                }
                env = inbox.recv(), if have_room => {
                    let Some(env) = env else { break };
                    match env.msg {
                        Msg::Batch(b) => {
                            out.metrics.saw(&b);
                            let args = b.data.project(&arg_columns).map_err(arrow)?;
                            let t0 = Instant::now();
                            let p = runner.submit(args)?;
                            clock.busy += t0.elapsed();
                            in_flight.push_back((b, p));
                        }
                        msg => {
                            // Results stay in order with watermarks and the end: drain first.
                            if !in_flight.is_empty() {
                                runner.flush()?;
                            }
                            while let Some((input, p)) = in_flight.pop_front() {
                                let cols = p.await.map_err(|_| EngineError::Execution(format!("{name}: the function runner went away")))??;
                                let b = combine(input, cols)?;
                                out.batch(b, &mut clock).await?;
                            }
                            let wm = match msg { Msg::Watermark(w) => Some(w), _ => None };
                            if let Some(w) = marks.update(env.channel as usize, wm) {
                                out.metrics.watermark(w);
                                out.broadcast(Some(w)).await;
                            }
                            if marks.all_ended() {
                                break;
                            }
                        }
                    }
                }
                _ = ticker.tick() => {
                    if tick_every.is_some() {
                        runner.tick()?;
                    }
                    clock.maybe_report(&out.metrics, false);
                }
            }
        }
        if !in_flight.is_empty() {
            runner.flush()?;
        }
        while let Some((input, p)) = in_flight.pop_front() {
            let cols = p
                .await
                .map_err(|_| EngineError::Execution(format!("{name}: the function runner went away")))??;
            let b = combine(input, cols)?;
            out.batch(b, &mut clock).await?;
        }
        runner.close()?;
        if let Some(done) = runner.finished() {
            let _ = tokio::time::timeout(crate::udf::FINISH_TIMEOUT, done).await;
        }
        Ok(())
    }
    .await;
    if result.is_err() {
        let _ = runner.close();
    }
    out.broadcast(None).await;
    clock.maybe_report(&out.metrics, true);
    result
}

async fn run_sink(
    mut sink: Box<dyn Sink>,
    mut inbox: mpsc::Receiver<Envelope>,
    channels: usize,
    metrics: TaskMetrics,
    control: Arc<JobControl>,
) -> Result<()> {
    let mut marks = Watermarks::new(channels);
    let mut clock = Clock::new();
    if channels > 0 {
        while let Some(env) = inbox.recv().await {
            match env.msg {
                Msg::Batch(b) => {
                    metrics.saw(&b);
                    control
                        .rows_written
                        .fetch_add(b.num_rows() as u64, Ordering::Relaxed);
                    let t0 = Instant::now();
                    sink.write(b)?;
                    clock.busy += t0.elapsed();
                }
                Msg::Watermark(w) => {
                    if let Some(w) = marks.update(env.channel as usize, Some(w)) {
                        metrics.watermark(w);
                        if w != i64::MAX {
                            control.watermark.fetch_max(w, Ordering::Relaxed);
                        }
                    }
                }
                Msg::End => {
                    marks.update(env.channel as usize, None);
                    if marks.all_ended() {
                        break;
                    }
                }
            }
            clock.maybe_report(&metrics, false);
        }
    }
    sink.finish()?;
    clock.maybe_report(&metrics, true);
    Ok(())
}
