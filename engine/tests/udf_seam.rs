//! The seam Python UDFs plug into: a backend whose runner answers batches asynchronously on
//! its own thread, out of order, with several batches in flight.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use arrow_schema::{DataType, SchemaRef};
use tokio::sync::oneshot;
use weir_engine::error::{EngineError, Result};
use weir_engine::expr::{col, Expr};
use weir_engine::table::TableEnvironment;
use weir_engine::udf::{
    Evaluated, FunctionRunner, Pending, RunnerContext, UdfBackend, UdfCall, UdfRef,
};

/// Multiplies its argument by 10 on a worker thread; answers every other batch late, so
/// results complete out of order. Fails on a negative input.
struct TimesTen {
    max_seen_in_flight: Arc<AtomicUsize>,
}

type Reply = oneshot::Sender<Result<Evaluated>>;

enum Work {
    Batch(RecordBatch, Reply),
    Flush,
}

struct Runner {
    tx: Option<mpsc::Sender<Work>>,
    in_flight: Arc<AtomicUsize>,
    max_seen: Arc<AtomicUsize>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl UdfBackend for TimesTen {
    fn start(
        &self,
        ctx: &RunnerContext,
        calls: &[UdfCall],
        args: SchemaRef,
    ) -> Result<Box<dyn FunctionRunner>> {
        assert_eq!(calls.len(), 1);
        assert_eq!(args.fields().len(), 1, "only the argument column travels");
        assert!(ctx.subtask < ctx.parallelism);
        let (tx, rx) = mpsc::channel::<Work>();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let done = in_flight.clone();
        let worker = std::thread::spawn(move || {
            let mut held: Option<(Vec<ArrayRef>, Reply)> = None;
            let mut i = 0;
            for work in rx {
                let (batch, reply) = match work {
                    Work::Batch(b, r) => (b, r),
                    Work::Flush => {
                        if let Some((cols, reply)) = held.take() {
                            let _ = reply.send(Ok(Evaluated::all(cols)));
                            done.fetch_sub(1, Ordering::SeqCst);
                        }
                        continue;
                    }
                };
                i += 1;
                let x = batch.column(0).as_primitive::<Int64Type>();
                let result = if x.iter().flatten().any(|v| v < 0) {
                    Err(EngineError::Execution("times_ten: negative input".into()))
                } else {
                    Ok(vec![
                        Arc::new(x.iter().map(|v| v.map(|v| v * 10)).collect::<Int64Array>())
                            as ArrayRef,
                    ])
                };
                std::thread::sleep(Duration::from_millis(2));
                match (i % 2, result) {
                    (0, Ok(cols)) => held = Some((cols, reply)),
                    (_, r) => {
                        let _ = reply.send(r.map(Evaluated::all));
                        done.fetch_sub(1, Ordering::SeqCst);
                        if let Some((cols, reply)) = held.take() {
                            let _ = reply.send(Ok(Evaluated::all(cols)));
                            done.fetch_sub(1, Ordering::SeqCst);
                        }
                    }
                }
            }
            if let Some((cols, reply)) = held.take() {
                let _ = reply.send(Ok(Evaluated::all(cols)));
            }
        });
        Ok(Box::new(Runner {
            tx: Some(tx),
            in_flight,
            max_seen: self.max_seen_in_flight.clone(),
            worker: Some(worker),
        }))
    }
}

impl FunctionRunner for Runner {
    fn submit(&mut self, args: RecordBatch) -> Result<Pending> {
        let (reply, pending) = oneshot::channel();
        let n = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_seen.fetch_max(n, Ordering::SeqCst);
        self.tx
            .as_ref()
            .ok_or_else(|| EngineError::Execution("closed".into()))?
            .send(Work::Batch(args, reply))
            .map_err(|_| EngineError::Execution("worker gone".into()))?;
        Ok(pending)
    }
    fn flush(&mut self) -> Result<()> {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Work::Flush);
        }
        Ok(())
    }
    fn max_in_flight(&self) -> usize {
        3
    }
    fn close(&mut self) -> Result<()> {
        self.tx.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
        Ok(())
    }
}

fn udf(backend: Arc<TimesTen>) -> Arc<UdfRef> {
    Arc::new(UdfRef {
        name: "times_ten".into(),
        result_type: DataType::Int64,
        kind: weir_engine::udf::FunctionKind::Scalar,
        payload: Arc::new(()),
        backend,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_come_back_in_order_with_batches_in_flight() {
    let backend = Arc::new(TimesTen {
        max_seen_in_flight: Arc::new(AtomicUsize::new(0)),
    });
    let env = TableEnvironment::in_streaming_mode();
    env.set_config("parallelism.default", "2").unwrap();
    env.execute_sql(
        "CREATE TABLE n (x BIGINT) WITH ('connector' = 'datagen', 'fields.x.kind' = 'sequence', \
         'fields.x.start' = '1', 'fields.x.end' = '100000', 'rows-per-second' = '0')",
    )
    .unwrap();
    env.create_temporary_function("times_ten", udf(backend.clone()));
    // From SQL and from the Table API; the UDF's argument is an expression.
    let t = env
        .sql_query("SELECT x, times_ten(x + 1) AS y FROM n WHERE x % 2 = 0")
        .unwrap();
    let plan = t.explain().unwrap();
    assert!(plan.contains("PythonCalc[times_ten]"), "{plan}");
    let rows = env.collect(&t).await.unwrap();
    let mut n = 0;
    for b in &rows {
        let x = b.data.column(0).as_primitive::<Int64Type>();
        let y = b.data.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            assert_eq!(
                y.value(i),
                (x.value(i) + 1) * 10,
                "row {i}: results matched to the wrong rows"
            );
            n += 1;
        }
    }
    assert_eq!(n, 50_000);
    assert!(
        backend.max_seen_in_flight.load(Ordering::SeqCst) > 1,
        "batches were not overlapped"
    );

    let t2 = env
        .from_path("n")
        .unwrap()
        .select(vec![
            col("x"),
            Expr::Udf(udf(backend.clone()), vec![col("x")]).alias("y"),
        ])
        .unwrap();
    let total: i64 = env
        .collect(&t2)
        .await
        .unwrap()
        .iter()
        .map(|b| {
            b.data
                .column(1)
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .sum::<i64>()
        })
        .sum();
    assert_eq!(total, 10 * 100_000 * 100_001 / 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_function_fails_the_job_with_its_message() {
    let backend = Arc::new(TimesTen {
        max_seen_in_flight: Arc::new(AtomicUsize::new(0)),
    });
    let env = TableEnvironment::in_streaming_mode();
    env.execute_sql(
        "CREATE TABLE n (x BIGINT) WITH ('connector' = 'datagen', 'fields.x.kind' = 'sequence', \
         'fields.x.start' = '-5', 'fields.x.end' = '5', 'rows-per-second' = '0')",
    )
    .unwrap();
    env.create_temporary_function("times_ten", udf(backend));
    let t = env.sql_query("SELECT times_ten(x) FROM n").unwrap();
    let e = tokio::time::timeout(Duration::from_secs(30), env.collect(&t))
        .await
        .expect("the job hangs")
        .unwrap_err();
    assert_eq!(e.to_string(), "times_ten: negative input");
}
