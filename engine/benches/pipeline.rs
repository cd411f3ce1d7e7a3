//! Rows per second of a whole pipeline: datagen (BIGINT sequence, no rate limit) -> Calc
//! (`WHERE x % 3 <> 0 AND x > 10`, `SELECT x + 1, x * 2`) -> blackhole, with operator metrics
//! on. One subtask per stage on a two-thread tokio runtime. Prints figures; asserts nothing.
//!
//! `cargo bench -p weir-engine --bench pipeline`

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema};
use weir_engine::datagen::Datagen;
use weir_engine::expr::col;
use weir_engine::job::{Blackhole, Pipeline};
use weir_engine::operator::Calc;
use weir_metrics::Registry;

fn main() {
    const ROWS: i64 = 100_000_000;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let opts: BTreeMap<String, String> = [
            ("fields.x.kind", "sequence".to_string()),
            ("fields.x.start", "1".to_string()),
            ("fields.x.end", ROWS.to_string()),
            ("rows-per-second", "0".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let source = Datagen::new("numbers", schema.clone(), &opts).unwrap();
        let calc = Calc::new(
            "calc",
            &schema,
            Some((col("x") % 3).not_equals(0).and(col("x").gt(10))),
            vec![(col("x") + 1, "a".into()), (col("x") * 2, "b".into())],
        )
        .unwrap();
        let registry = Registry::default();
        let pipeline = Pipeline {
            job_name: "bench".into(),
            source,
            operators: vec![Box::new(calc)],
            sink: Box::new(Blackhole),
        };
        let summary = runtime.block_on(pipeline.run(&registry)).unwrap();
        assert_eq!(summary.rows_read, ROWS as u64);
        best = best.min(summary.elapsed.as_secs_f64());
    }
    println!("## datagen -> filter + projection -> blackhole, BIGINT, metrics on");
    println!("| rows | best of 3 | rows/s |");
    println!("|---|---|---|");
    println!(
        "| {ROWS} | {best:.3} s | {:.1} M |",
        ROWS as f64 / best / 1e6
    );
}
