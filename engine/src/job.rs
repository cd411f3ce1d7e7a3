//! Running a pipeline: a source, a chain of operators and a sink, each a tokio task, connected
//! by bounded channels so a slow stage slows the ones before it (backpressure) instead of
//! queueing without end. Each stage counts what passes through it in `weir-metrics`
//! (`weir_operator_records_in_total{job_name, operator, subtask}` and friends).
//!
//! So far: one subtask per stage and a `datagen` source. Parallel subtasks with hash
//! partitioning, watermarks and the other connectors come with the rest of the engine.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use weir_metrics::{Counter, Registry};

use crate::datagen::Datagen;
use crate::error::{EngineError, Result};
use crate::operator::Operator;
use crate::stream::StreamBatch;

/// Rows per batch a source emits when it is not rate-limited.
pub const MAX_BATCH_ROWS: usize = 8192;
/// Batches that may wait in a channel between two stages.
const CHANNEL_BATCHES: usize = 4;

/// Where rows end.
pub trait Sink: Send {
    /// Name shown in metrics and errors.
    fn name(&self) -> &str;
    /// Takes one batch.
    fn write(&mut self, batch: StreamBatch) -> Result<()>;
    /// End of input.
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Discards everything (Flink's `blackhole` connector).
pub struct Blackhole;

impl Sink for Blackhole {
    fn name(&self) -> &str {
        "blackhole"
    }
    fn write(&mut self, _batch: StreamBatch) -> Result<()> {
        Ok(())
    }
}

/// Keeps every batch for the caller.
#[derive(Clone, Default)]
pub struct Collect {
    batches: Arc<Mutex<Vec<StreamBatch>>>,
}

impl Collect {
    /// What has arrived so far.
    pub fn batches(&self) -> Vec<StreamBatch> {
        self.batches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Sink for Collect {
    fn name(&self) -> &str {
        "collect"
    }
    fn write(&mut self, batch: StreamBatch) -> Result<()> {
        self.batches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(batch);
        Ok(())
    }
}

/// A source, operators and a sink.
pub struct Pipeline {
    pub job_name: String,
    pub source: Datagen,
    pub operators: Vec<Box<dyn Operator>>,
    pub sink: Box<dyn Sink>,
}

/// Counters of one stage.
#[derive(Clone)]
struct StageMetrics {
    records_in: Counter,
    records_out: Counter,
    batches_in: Counter,
    batches_out: Counter,
}

impl StageMetrics {
    fn new(registry: &Registry, job: &str, operator: &str) -> Result<Self> {
        let err = |e: weir_metrics::MetricsError| {
            EngineError::Execution(format!("registering metrics of {operator}: {e}"))
        };
        let g = registry
            .system_group(
                "operator",
                &[("job_name", job), ("operator", operator), ("subtask", "0")],
            )
            .map_err(err)?;
        Ok(Self {
            records_in: g
                .counter_with_help("records_in", "Rows received by the operator")
                .map_err(err)?,
            records_out: g
                .counter_with_help("records_out", "Rows emitted by the operator")
                .map_err(err)?,
            batches_in: g
                .counter_with_help("batches_in", "Batches received by the operator")
                .map_err(err)?,
            batches_out: g
                .counter_with_help("batches_out", "Batches emitted by the operator")
                .map_err(err)?,
        })
    }

    fn saw(&self, b: &StreamBatch) {
        self.records_in.inc(b.num_rows() as i64);
        self.batches_in.inc(1);
    }

    fn emitted(&self, b: &StreamBatch) {
        self.records_out.inc(b.num_rows() as i64);
        self.batches_out.inc(1);
    }
}

/// What a finished job reports.
#[derive(Clone, Debug)]
pub struct JobSummary {
    pub rows_read: u64,
    pub rows_written: u64,
    pub elapsed: Duration,
}

/// Sends, treating a closed channel as "the rest of the job has stopped" (its error is
/// reported by the stage that stopped).
async fn send(tx: &mpsc::Sender<StreamBatch>, b: StreamBatch) -> bool {
    tx.send(b).await.is_ok()
}

impl Pipeline {
    /// Runs to the end of a bounded source (or until a stage fails) on the current tokio
    /// runtime; the first error of any stage is returned.
    pub async fn run(self, registry: &Registry) -> Result<JobSummary> {
        let started = Instant::now();
        let job = self.job_name.clone();
        let mut tasks = Vec::new();

        let (tx, mut rx) = mpsc::channel::<StreamBatch>(CHANNEL_BATCHES);
        let source_metrics =
            StageMetrics::new(registry, &job, &format!("source_{}", self.source.table()))?;
        let mut source = self.source;
        tasks.push(tokio::spawn(async move {
            let rps = source.rows_per_second;
            let batch_rows = if rps == 0 {
                MAX_BATCH_ROWS
            } else {
                (rps as usize / 10).clamp(1, MAX_BATCH_ROWS)
            };
            let begun = Instant::now();
            let mut emitted: u64 = 0;
            while let Some(data) = source.next_batch(batch_rows)? {
                let b = StreamBatch::inserts(data);
                emitted += b.num_rows() as u64;
                source_metrics.emitted(&b);
                if !send(&tx, b).await {
                    break;
                }
                if rps > 0 {
                    let due = begun + Duration::from_secs_f64(emitted as f64 / rps as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
            }
            Ok::<u64, EngineError>(emitted)
        }));

        for mut op in self.operators {
            let (tx, next_rx) = mpsc::channel::<StreamBatch>(CHANNEL_BATCHES);
            let metrics = StageMetrics::new(registry, &job, op.name())?;
            let mut input = std::mem::replace(&mut rx, next_rx);
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                let mut open = true;
                while let Some(b) = input.recv().await {
                    metrics.saw(&b);
                    op.process(b, &mut out)?;
                    for b in out.drain(..) {
                        metrics.emitted(&b);
                        open &= send(&tx, b).await;
                    }
                    if !open {
                        return Ok(0);
                    }
                }
                op.finish(&mut out)?;
                for b in out.drain(..) {
                    metrics.emitted(&b);
                    send(&tx, b).await;
                }
                Ok(0)
            }));
        }

        let metrics = StageMetrics::new(registry, &job, &format!("sink_{}", self.sink.name()))?;
        let mut sink = self.sink;
        let sink_task = tokio::spawn(async move {
            let mut written = 0u64;
            while let Some(b) = rx.recv().await {
                metrics.saw(&b);
                written += b.num_rows() as u64;
                sink.write(b)?;
            }
            sink.finish()?;
            Ok::<u64, EngineError>(written)
        });

        let mut first_error = None;
        let mut rows_read = 0;
        for (i, t) in tasks.into_iter().enumerate() {
            match t.await {
                Ok(Ok(n)) if i == 0 => rows_read = n,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => first_error = first_error.or(Some(e)),
                Err(e) => {
                    first_error = first_error.or(Some(EngineError::Execution(format!(
                        "a stage of job {job} crashed: {e}"
                    ))))
                }
            }
        }
        let rows_written = match sink_task.await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(first_error.unwrap_or(e)),
            Err(e) => {
                return Err(EngineError::Execution(format!(
                    "the sink of job {job} crashed: {e}"
                )))
            }
        };
        match first_error {
            Some(e) => Err(e),
            None => Ok(JobSummary {
                rows_read,
                rows_written,
                elapsed: started.elapsed(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::col;
    use crate::operator::Calc;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_schema::{DataType, Field, Schema};
    use std::collections::BTreeMap;

    fn sequence(n: i64) -> Datagen {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let opts: BTreeMap<String, String> = [
            ("fields.x.kind", "sequence"),
            ("fields.x.start", "1"),
            ("fields.x.end", &n.to_string()),
            ("rows-per-second", "0"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Datagen::new("numbers", schema, &opts).unwrap()
    }

    #[tokio::test]
    async fn filter_and_project_exactly_and_count_rows() {
        let source = sequence(100_000);
        let calc = Calc::new(
            "calc",
            &source.schema(),
            Some((col("x") % 2).equals(0)),
            vec![(col("x") + 1, "y".into())],
        )
        .unwrap();
        let sink = Collect::default();
        let registry = Registry::default();
        let summary = Pipeline {
            job_name: "evens".into(),
            source,
            operators: vec![Box::new(calc)],
            sink: Box::new(sink.clone()),
        }
        .run(&registry)
        .await
        .unwrap();
        assert_eq!((summary.rows_read, summary.rows_written), (100_000, 50_000));
        let sum: i64 = sink
            .batches()
            .iter()
            .map(|b| {
                b.data
                    .column(0)
                    .as_primitive::<Int64Type>()
                    .values()
                    .iter()
                    .sum::<i64>()
            })
            .sum();
        // y = x + 1 for even x in 1..=100000: sum of evens (2 + ... + 100000) plus 50000.
        assert_eq!(sum, 2_500_050_000 + 50_000);
        let text = weir_metrics::prometheus::encode_text(&registry.snapshot());
        assert!(text.contains("weir_operator_records_in_total{job_name=\"evens\",operator=\"calc\",subtask=\"0\"} 100000\n"), "{text}");
        assert!(text.contains("weir_operator_records_out_total{job_name=\"evens\",operator=\"calc\",subtask=\"0\"} 50000\n"), "{text}");
        assert!(text.contains("weir_operator_records_in_total{job_name=\"evens\",operator=\"sink_collect\",subtask=\"0\"} 50000\n"), "{text}");
    }

    struct Failing;
    impl Sink for Failing {
        fn name(&self) -> &str {
            "failing"
        }
        fn write(&mut self, _b: StreamBatch) -> Result<()> {
            Err(EngineError::Execution(
                "sink `failing` refused a batch".into(),
            ))
        }
    }

    #[tokio::test]
    async fn a_failing_stage_stops_the_job_with_its_error() {
        let registry = Registry::default();
        let e = Pipeline {
            job_name: "j".into(),
            source: sequence(1_000_000),
            operators: vec![],
            sink: Box::new(Failing),
        }
        .run(&registry)
        .await
        .unwrap_err();
        assert_eq!(e.to_string(), "sink `failing` refused a batch");
    }
}
