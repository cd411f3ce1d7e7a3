//! Rows per second of expression evaluation on BIGINT batches: a filter and a projection, the
//! inner loop of a `SELECT x + 1, x * 2 FROM t WHERE x % 3 <> 0 AND x > 10` job. Prints
//! figures; asserts nothing. (The full operator pipeline with datagen comes with the engine.)
//!
//! `cargo bench -p weir-engine --bench expressions`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use weir_engine::expr::{bind, col};

fn main() {
    const BATCH: usize = 8192;
    const ROWS: usize = 50_000_000;
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
    let batches: Vec<RecordBatch> = (0..16)
        .map(|b| {
            let start = (b * BATCH) as i64;
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int64Array::from_iter_values(
                    start..start + BATCH as i64,
                ))],
            )
            .unwrap()
        })
        .collect();
    // Bound once, as operators do: casts inserted, columns by position.
    let filter = bind(&(col("x") % 3).not_equals(0).and(col("x").gt(10)), &schema).unwrap();
    let projections = [col("x") + 1, col("x") * 2].map(|p| bind(&p, &schema).unwrap());

    let mut best = f64::INFINITY;
    let mut kept = 0;
    for _ in 0..5 {
        let t = Instant::now();
        kept = 0;
        for i in 0..ROWS / BATCH {
            let batch = &batches[i % batches.len()];
            let mask = filter
                .evaluate(batch)
                .unwrap()
                .into_array(batch.num_rows())
                .unwrap();
            let mask = mask
                .as_any()
                .downcast_ref::<arrow_array::BooleanArray>()
                .unwrap();
            let filtered = arrow_select::filter::filter_record_batch(batch, mask).unwrap();
            for p in &projections {
                black_box(p.evaluate(&filtered).unwrap());
            }
            kept += filtered.num_rows();
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    let rows = (ROWS / BATCH * BATCH) as f64;
    println!("## filter + projection on BIGINT, one thread, batches of {BATCH} rows");
    println!("| rows in | rows kept | best of 5 | rows/s in |");
    println!("|---|---|---|---|");
    println!(
        "| {rows:.0} | {kept} | {:.3} s | {:.1} M |",
        best,
        rows / best / 1e6
    );
}
