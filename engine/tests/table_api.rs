//! The Rust Table API (which the Python SDK mirrors), EXPLAIN, operator metrics and failure
//! propagation.

use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use weir_engine::expr::{col, lit};
use weir_engine::stream::format_row;
use weir_engine::table::{Session, Slide, Table, TableEnvironment, Tumble};

fn rows(env: &TableEnvironment, t: &Table, rt: &tokio::runtime::Runtime) -> Vec<String> {
    let mut out: Vec<String> = rt
        .block_on(env.collect(t))
        .unwrap()
        .iter()
        .flat_map(|b| (0..b.num_rows()).map(move |i| format_row(b, i).unwrap()))
        .collect();
    out.sort();
    out
}

/// Sum of the BIGINT column `c` over batches.
fn column_sum(batches: &[weir_engine::stream::StreamBatch], c: usize) -> i64 {
    batches
        .iter()
        .map(|b| {
            b.data
                .column(c)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .values()
                .iter()
                .sum::<i64>()
        })
        .sum()
}

/// Sum of every series in the registry's exposition whose line starts with `prefix`.
fn metric_sum(env: &TableEnvironment, prefix: &str) -> f64 {
    weir_metrics::prometheus::encode_text(&env.registry().snapshot())
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn people(env: &TableEnvironment) -> Table {
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, true),
        Field::new("age", DataType::Int64, true),
        Field::new("ms", DataType::Int64, true),
    ]));
    let b = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["ann", "bob", "cy", "dee"])),
            Arc::new(Int64Array::from(vec![31, 25, 31, 47])),
            Arc::new(Int64Array::from(vec![1_000, 2_000, 12_000, 13_000])),
        ],
    )
    .unwrap();
    env.from_batches(schema, vec![b])
}

#[test]
fn relational_operations() {
    let rt = runtime();
    let env = TableEnvironment::in_streaming_mode();
    let t = people(&env);
    let adults = t
        .filter(col("age").gt(30))
        .unwrap()
        .add_columns(vec![(col("age") + 1).alias("next")])
        .unwrap()
        .rename_columns(&[("name", "who")])
        .unwrap()
        .drop_columns(&["ms"])
        .unwrap();
    assert_eq!(
        rows(&env, &adults, &rt),
        ["+I[ann, 31, 32]", "+I[cy, 31, 32]", "+I[dee, 47, 48]"]
    );
    let replaced = t
        .add_or_replace_columns(vec![(col("age") * 2).alias("age")])
        .unwrap()
        .select(vec![col("age")])
        .unwrap();
    assert_eq!(
        rows(&env, &replaced, &rt),
        ["+I[50]", "+I[62]", "+I[62]", "+I[94]"]
    );
    let by_age = t
        .group_by(vec![col("age")])
        .select(vec![col("age"), col("name").count().alias("n")])
        .unwrap();
    assert_eq!(
        rows(&env, &by_age, &rt),
        ["+I[25, 1]", "+I[31, 2]", "+I[47, 1]"]
    );
    let d = t.select(vec![col("age")]).unwrap().distinct().unwrap();
    assert_eq!(rows(&env, &d, &rt).len(), 3);
    let u = t
        .select(vec![col("name")])
        .unwrap()
        .union_all(&t.select(vec![col("name")]).unwrap())
        .unwrap();
    assert_eq!(rows(&env, &u, &rt).len(), 8);
    let sorted = t
        .order_by(vec![col("age").desc(), col("name").asc()])
        .unwrap()
        .limit(2, 1);
    let got: Vec<String> = rt
        .block_on(env.collect(&sorted))
        .unwrap()
        .iter()
        .flat_map(|b| (0..b.num_rows()).map(move |i| format_row(b, i).unwrap()))
        .collect();
    assert_eq!(got, ["+I[ann, 31, 1000]", "+I[cy, 31, 12000]"]);
    let other = t
        .select(vec![col("name").alias("n2"), col("age").alias("a2")])
        .unwrap();
    let j = t
        .join(
            &other,
            col("age")
                .equals(col("a2"))
                .and(col("name").not_equals(col("n2"))),
        )
        .unwrap()
        .select(vec![col("name"), col("n2")])
        .unwrap();
    assert_eq!(rows(&env, &j, &rt), ["+I[ann, cy]", "+I[cy, ann]"]);
    let e = t
        .join(&t, col("age").equals(col("age")))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("both sides have a column `name`"), "{e}");
    let e = t.select(vec![col("nope")]).err().unwrap().to_string();
    assert_eq!(
        e,
        "expression `nope`: no column `nope`; the input has name, age, ms"
    );
    let e = t
        .group_by(vec![col("age")])
        .select(vec![col("name")])
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("`name` is neither grouped nor aggregated"),
        "{e}"
    );
}

#[test]
fn group_windows_through_the_table_api() {
    let rt = runtime();
    let env = TableEnvironment::in_batch_mode();
    let t = people(&env)
        .add_columns(vec![Expr::Call(
            Func::ToTimestampLtz,
            vec![col("ms"), lit(3)],
        )
        .alias("ts")])
        .unwrap();
    let tumble = t
        .window(Tumble::over(10_000).on("ts").alias("w"))
        .group_by(vec![col("w"), col("age")])
        .select(vec![
            col("age"),
            col("w").window_start().alias("ws"),
            col("age").count().alias("n"),
        ])
        .unwrap();
    assert_eq!(
        rows(&env, &tumble, &rt),
        [
            "+I[25, 1970-01-01 00:00:00.000, 1]",
            "+I[31, 1970-01-01 00:00:00.000, 1]",
            "+I[31, 1970-01-01 00:00:10.000, 1]",
            "+I[47, 1970-01-01 00:00:10.000, 1]"
        ]
    );
    let slide = t
        .window(Slide::over(20_000).every(10_000).on("ts").alias("w"))
        .group_by(vec![col("w")])
        .select(vec![
            col("w").window_end().alias("we"),
            col("age").sum().alias("s"),
        ])
        .unwrap();
    assert_eq!(
        rows(&env, &slide, &rt),
        [
            "+I[1970-01-01 00:00:10.000, 56]",
            "+I[1970-01-01 00:00:20.000, 134]",
            "+I[1970-01-01 00:00:30.000, 78]"
        ]
    );
    let session = t
        .window(Session::with_gap(5_000).on("ts").alias("w"))
        .group_by(vec![col("w")])
        .select(vec![
            col("w").window_start().alias("s"),
            col("age").max().alias("oldest"),
        ])
        .unwrap();
    assert_eq!(
        rows(&env, &session, &rt),
        [
            "+I[1970-01-01 00:00:01.000, 31]",
            "+I[1970-01-01 00:00:12.000, 47]"
        ]
    );
    let zero = t
        .window(Tumble::over(0).on("ts").alias("w"))
        .group_by(vec![col("w")])
        .select(vec![col("age").count()])
        .unwrap();
    let e = rt.block_on(env.collect(&zero)).unwrap_err().to_string();
    assert_eq!(
        e,
        "expression `TUMBLE(size=[0 s])`: the window's size must be a positive interval, not 0 ms"
    );
    let text = session.explain().unwrap();
    assert!(
        text.contains("WindowAggregate(window=[SESSION(gap=[5 s])], time=[ts]"),
        "{text}"
    );
    assert!(text.contains("== Physical Plan =="), "{text}");
    assert_eq!(
        t.schema_text().unwrap(),
        "(\n  `name` STRING,\n  `age` BIGINT,\n  `ms` BIGINT,\n  `ts` TIMESTAMP_LTZ(3)\n)"
    );
}

use weir_engine::expr::{Expr, Func};

#[test]
fn operator_metrics_count_every_row_across_subtasks() {
    let rt = runtime();
    let env = TableEnvironment::in_streaming_mode();
    env.set_config("parallelism.default", "2").unwrap();
    env.set_config("pipeline.name", "counted").unwrap();
    env.execute_sql("CREATE TABLE n (x BIGINT) WITH ('connector' = 'datagen', 'fields.x.kind' = 'sequence', 'fields.x.start' = '1', 'fields.x.end' = '100000', 'rows-per-second' = '0')").unwrap();
    env.execute_sql("CREATE TABLE out (x BIGINT) WITH ('connector' = 'blackhole')")
        .unwrap();
    let weir_engine::sql::SqlOutcome::Insert { job, .. } = env
        .execute_sql("INSERT INTO out SELECT x FROM n WHERE x % 4 = 0")
        .unwrap()
    else {
        panic!("not an insert")
    };
    let summary = rt.block_on(env.run(job)).unwrap();
    assert_eq!((summary.rows_read, summary.rows_written), (100_000, 25_000));
    let text = weir_metrics::prometheus::encode_text(&env.registry().snapshot());
    let sum = |prefix: &str| metric_sum(&env, prefix);
    assert_eq!(
        sum("weir_operator_records_out_total{job_name=\"counted\",operator=\"Source: n\""),
        100_000.0
    );
    assert_eq!(
        sum("weir_operator_records_in_total{job_name=\"counted\",operator=\"Sink: blackhole\""),
        25_000.0
    );
    assert!(text.contains("subtask=\"1\""), "{text}");
}

#[test]
fn a_bad_input_file_fails_the_job_naming_the_table_and_file() {
    let rt = runtime();
    let env = TableEnvironment::in_streaming_mode();
    let dir = std::env::temp_dir().join(format!("weir-fail-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("in.csv"), "1\n2\nnot-a-number\n").unwrap();
    env.execute_sql(&format!("CREATE TABLE f (x BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv')", dir.join("in.csv").display())).unwrap();
    let t = env.sql_query("SELECT x FROM f").unwrap();
    let e = rt.block_on(env.collect(&t)).unwrap_err().to_string();
    assert!(e.starts_with("table `f`: reading "), "{e}");
    assert!(e.contains("in.csv"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn print_shows_kinds_and_subtasks_and_tables_set_their_parallelism() {
    use weir_engine::connectors::{PrintSink, PrintTarget};
    let rt = runtime();
    let env = TableEnvironment::in_streaming_mode();
    env.set_config("parallelism.default", "2").unwrap();
    env.execute_sql("CREATE TABLE n (x BIGINT) WITH ('connector' = 'datagen', 'fields.x.kind' = 'sequence', 'fields.x.start' = '1', 'fields.x.end' = '4', 'rows-per-second' = '0')").unwrap();
    let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::new(PrintSink {
        name: "print".into(),
        identifier: Some("out".into()),
        target: PrintTarget::Buffer(lines.clone()),
    });
    let t = env
        .sql_query("SELECT x % 2 AS k, COUNT(*) AS n FROM n GROUP BY x % 2")
        .unwrap();
    let job = env.plan_to(&t, sink).unwrap();
    rt.block_on(env.run(job)).unwrap();
    let mut got = lines.lock().unwrap().clone();
    got.sort();
    // Two source subtasks each send one row per key: each key is inserted, then updated;
    // each key lives on one subtask (fixed by the hash), shown as the `out:<n>> ` prefix.
    assert!(
        got.iter()
            .all(|l| l.starts_with("out:1> ") || l.starts_with("out:2> ")),
        "{got:?}"
    );
    let mut rows: Vec<&str> = got.iter().map(|l| &l[7..]).collect();
    rows.sort();
    assert_eq!(
        rows,
        ["+I[0, 1]", "+I[1, 1]", "+U[0, 2]", "+U[1, 2]", "-U[0, 1]", "-U[1, 1]"]
    );

    // scan.parallelism and sink.parallelism override parallelism.default.
    env.execute_sql("CREATE TABLE one_reader (x BIGINT) WITH ('connector' = 'datagen', 'scan.parallelism' = '1', 'number-of-rows' = '10')").unwrap();
    env.execute_sql(
        "CREATE TABLE three (x BIGINT) WITH ('connector' = 'blackhole', 'sink.parallelism' = '3')",
    )
    .unwrap();
    let weir_engine::sql::SqlOutcome::Text(plan) = env
        .execute_sql("EXPLAIN INSERT INTO three SELECT x FROM one_reader")
        .unwrap()
    else {
        panic!("not text")
    };
    assert!(
        plan.contains("Source: one_reader (parallelism 1)"),
        "{plan}"
    );
    assert!(plan.contains("Sink: blackhole (parallelism 3)"), "{plan}");
    let e = env.execute_sql("CREATE TABLE bad (x BIGINT) WITH ('connector' = 'blackhole', 'sink.parallelism' = 'two')").err().unwrap().to_string();
    assert_eq!(e, "table `bad`, option 'sink.parallelism': expected a whole number from 1 to 1024, found 'two'");
}

#[test]
fn cancelling_an_unbounded_job_ends_it_cleanly() {
    use weir_engine::runtime::JobControl;
    let rt = runtime();
    let env = TableEnvironment::in_streaming_mode();
    env.set_config("parallelism.default", "2").unwrap();
    env.execute_sql("CREATE TABLE forever (x BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '1000')").unwrap();
    env.execute_sql("CREATE TABLE out (k BIGINT, n BIGINT) WITH ('connector' = 'blackhole')")
        .unwrap();
    let weir_engine::sql::SqlOutcome::Insert { job, .. } = env
        .execute_sql("INSERT INTO out SELECT x % 7, COUNT(*) FROM forever GROUP BY x % 7")
        .unwrap()
    else {
        panic!("not an insert")
    };
    let control = Arc::new(JobControl::default());
    let c = control.clone();
    let registry = env.registry();
    let summary = rt.block_on(async move {
        let run = tokio::spawn(async move { job.run_with(&registry, c).await });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        control.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(10), run)
            .await
            .expect("cancel hangs")
            .unwrap()
    });
    let s = summary.unwrap();
    assert!(s.rows_read > 0 && s.rows_read < 10_000, "{}", s.rows_read);
}

#[test]
fn late_rows_are_counted_and_processing_time_windows_fire_on_the_clock() {
    let rt = runtime();
    let env = TableEnvironment::in_streaming_mode();
    env.set_config("pipeline.name", "late").unwrap();
    // Row 3 jumps to t = 100 s; rows 4..6 (t = 4..6 s) arrive after their window fired.
    env.execute_sql("CREATE TABLE jumpy (id BIGINT, ts AS TO_TIMESTAMP_LTZ(CASE WHEN id = 3 THEN 100 ELSE id END * 1000, 3), WATERMARK FOR ts AS ts) WITH ('connector' = 'datagen', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '6', 'rows-per-second' = '10')").unwrap();
    let t = env
        .sql_query("SELECT window_start, COUNT(*) AS n FROM TABLE(TUMBLE(TABLE jumpy, DESCRIPTOR(ts), INTERVAL '10' SECOND)) GROUP BY window_start, window_end")
        .unwrap();
    let n = column_sum(&rt.block_on(env.collect(&t)).unwrap(), 1);
    assert_eq!(n, 3);
    let late = metric_sum(
        &env,
        "weir_operator_late_records_dropped_total{job_name=\"late\"",
    );
    assert_eq!(late, 3.0);

    // Processing time: 10 rows over half a second into 100 ms windows on the clock.
    env.execute_sql("CREATE TABLE ticks (id BIGINT, p AS PROCTIME()) WITH ('connector' = 'datagen', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '10', 'rows-per-second' = '20')").unwrap();
    let t = env
        .sql_query("SELECT TUMBLE_START(p, INTERVAL '0.1' SECOND) AS w, COUNT(*) AS n FROM ticks GROUP BY TUMBLE(p, INTERVAL '0.1' SECOND)")
        .unwrap();
    let batches = rt.block_on(env.collect(&t)).unwrap();
    let windows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let n = column_sum(&batches, 1);
    assert_eq!(n, 10);
    assert!(
        windows >= 3,
        "rows spread over {windows} windows of processing time"
    );
}
