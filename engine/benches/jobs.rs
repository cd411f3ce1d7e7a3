//! Rows per second of whole SQL jobs through the engine (datagen, no rate limit -> operators
//! -> blackhole, operator metrics on), at parallelism 1 and 2 on a two-thread runtime.
//! Prints figures; asserts only that every row was read.
//!
//! `cargo bench -p weir-engine --bench jobs`

use std::time::Instant;

use weir_engine::sql::SqlOutcome;
use weir_engine::table::TableEnvironment;

struct Case {
    name: &'static str,
    rows: u64,
    ddl: &'static [&'static str],
    insert: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "projection + filter (BIGINT)",
        rows: 50_000_000,
        ddl: &[
            "CREATE TABLE n (x BIGINT) WITH ('connector' = 'datagen', 'fields.x.kind' = 'sequence', 'fields.x.start' = '1', 'fields.x.end' = '50000000', 'rows-per-second' = '0')",
            "CREATE TABLE out (a BIGINT, b BIGINT) WITH ('connector' = 'blackhole')",
        ],
        insert: "INSERT INTO out SELECT x + 1, x * 2 FROM n WHERE x % 3 <> 0 AND x > 10",
    },
    Case {
        name: "tumbling window COUNT/SUM by key (1000 keys, 1 s windows of 100k rows)",
        rows: 20_000_000,
        ddl: &[
            "CREATE TABLE e (x BIGINT, k AS x % 1000, ts AS TO_TIMESTAMP_LTZ(x / 100, 3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH ('connector' = 'datagen', 'fields.x.kind' = 'sequence', 'fields.x.start' = '1', 'fields.x.end' = '20000000', 'rows-per-second' = '0')",
            "CREATE TABLE out (k BIGINT, w TIMESTAMP(3), c BIGINT, s BIGINT) WITH ('connector' = 'blackhole')",
        ],
        insert: "INSERT INTO out SELECT k, window_start, COUNT(*), SUM(x) FROM TABLE(TUMBLE(TABLE e, DESCRIPTOR(ts), INTERVAL '1' SECOND)) GROUP BY window_start, window_end, k",
    },
    Case {
        name: "keyed join (10k-row dimension, 2M facts)",
        rows: 2_010_000,
        ddl: &[
            "CREATE TABLE dim (id BIGINT, name STRING) WITH ('connector' = 'datagen', 'fields.id.kind' = 'sequence', 'fields.id.start' = '0', 'fields.id.end' = '9999', 'fields.name.length' = '8', 'rows-per-second' = '0')",
            "CREATE TABLE fact (x BIGINT, k AS x % 10000) WITH ('connector' = 'datagen', 'fields.x.kind' = 'sequence', 'fields.x.start' = '1', 'fields.x.end' = '2000000', 'rows-per-second' = '0')",
            "CREATE TABLE out (x BIGINT, name STRING) WITH ('connector' = 'blackhole')",
        ],
        insert: "INSERT INTO out SELECT f.x, d.name FROM fact f JOIN dim d ON f.k = d.id",
    },
];

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!("| job | parallelism | rows | best of 3 | rows/s | rows/s per subtask |");
    println!("|---|---|---|---|---|---|");
    for case in CASES {
        for p in [1usize, 2] {
            let mut best = f64::INFINITY;
            for _ in 0..3 {
                let env = TableEnvironment::in_streaming_mode();
                env.set_config("parallelism.default", &p.to_string())
                    .expect("config");
                for d in case.ddl {
                    env.execute_sql(d).expect("ddl");
                }
                let SqlOutcome::Insert { job, .. } = env.execute_sql(case.insert).expect("plan")
                else {
                    panic!("not an insert")
                };
                let t = Instant::now();
                let summary = runtime.block_on(env.run(job)).expect("run");
                assert_eq!(summary.rows_read, case.rows);
                best = best.min(t.elapsed().as_secs_f64());
            }
            let rate = case.rows as f64 / best;
            println!(
                "| {} | {p} | {} | {best:.2} s | {:.1} M | {:.1} M |",
                case.name,
                case.rows,
                rate / 1e6,
                rate / 1e6 / p as f64
            );
        }
    }
}
