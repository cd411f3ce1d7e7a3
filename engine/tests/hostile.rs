//! Hostile input to the engine: generated queries thousands of levels deep or wide, limits
//! that would otherwise abort on allocation, and input that used to give a silent wrong
//! answer. Each case gives the right result or an error that names what is wrong; none may
//! crash the process (a stack overflow here aborts the whole test binary). Queries run on the
//! process session's runtime, as `weir sql` and Python jobs do, from a test thread with the
//! default 2 MiB stack.

use weir_engine::session::ProcessSession;
use weir_engine::sql::SqlOutcome;
use weir_engine::stream::format_row;
use weir_engine::table::TableEnvironment;

const TEN_ROWS: &str = "CREATE TABLE t (x BIGINT) WITH ('connector' = 'datagen',
    'number-of-rows' = '10', 'fields.x.kind' = 'sequence', 'fields.x.start' = '1',
    'fields.x.end' = '10')";

fn env() -> TableEnvironment {
    let env = TableEnvironment::in_streaming_mode();
    env.execute_sql(TEN_ROWS).expect("source table");
    env
}

/// The rows of a query, as `+I[...]` strings, sorted; or the error's text.
fn rows(env: &TableEnvironment, sql: &str) -> Result<Vec<String>, String> {
    let t = match env.execute_sql(sql).map_err(|e| e.to_string())? {
        SqlOutcome::Query(t) => t,
        _ => return Err("not a query".into()),
    };
    let session = ProcessSession::global();
    let rt = session.runtime().map_err(|e| e.to_string())?;
    let batches = rt.block_on(env.collect(&t)).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for b in &batches {
        for i in 0..b.num_rows() {
            out.push(format_row(b, i).map_err(|e| e.to_string())?);
        }
    }
    out.sort();
    Ok(out)
}

fn error_of(env: &TableEnvironment, sql: &str) -> String {
    match rows(env, sql) {
        Ok(r) => panic!("expected an error from {:.80}..., got rows {r:?}", sql),
        Err(e) => e,
    }
}

#[test]
fn an_in_list_of_10000_literals_works() {
    let list: Vec<String> = (5..10_005).map(|i| i.to_string()).collect();
    let got = rows(
        &env(),
        &format!("SELECT x FROM t WHERE x IN ({})", list.join(", ")),
    )
    .unwrap();
    assert_eq!(got, ["+I[10]", "+I[5]", "+I[6]", "+I[7]", "+I[8]", "+I[9]"]);
    let got = rows(
        &env(),
        &format!("SELECT x FROM t WHERE x NOT IN ({})", list.join(", ")),
    )
    .unwrap();
    assert_eq!(got, ["+I[1]", "+I[2]", "+I[3]", "+I[4]"]);
}

#[test]
fn two_thousand_chained_additions_work() {
    let sum = vec!["x"; 2000].join(" + ");
    let got = rows(&env(), &format!("SELECT {sum} FROM t WHERE x = 3")).unwrap();
    assert_eq!(got, ["+I[6000]"]);
}

#[test]
fn three_thousand_ands_work() {
    let cond: Vec<String> = (0..3000).map(|i| format!("x > {}", i % 5)).collect();
    let got = rows(
        &env(),
        &format!("SELECT x FROM t WHERE {}", cond.join(" AND ")),
    )
    .unwrap();
    assert_eq!(got.len(), 6, "{got:?}"); // x > 4: 5..=10
    let cond: Vec<String> = (0..3000).map(|i| format!("x = {}", 100 + i)).collect();
    let got = rows(
        &env(),
        &format!("SELECT x FROM t WHERE {} OR x = 7", cond.join(" OR ")),
    )
    .unwrap();
    assert_eq!(got, ["+I[7]"]);
}

#[test]
fn nesting_deeper_than_the_parser_allows_is_an_error_that_says_so() {
    let deep = format!("SELECT {}x{} FROM t", "(".repeat(5000), ")".repeat(5000));
    let e = error_of(&env(), &deep);
    assert!(e.contains("more than 1000 levels deep"), "{e}");
    // Within the limit it works.
    let ok = format!(
        "SELECT {}x{} FROM t WHERE x = 2",
        "(".repeat(500),
        ")".repeat(500)
    );
    assert_eq!(rows(&env(), &ok).unwrap(), ["+I[2]"]);
}

#[test]
fn parallelism_lengths_and_ranges_have_limits_with_clear_errors() {
    let env = env();
    for bad in ["100000000", "0", "two"] {
        let e = env
            .execute_sql(&format!("SET 'parallelism.default' = '{bad}'"))
            .err()
            .unwrap_or_else(|| panic!("SET of parallelism {bad} was accepted"))
            .to_string();
        assert!(
            e.contains("parallelism.default") && e.contains("from 1 to 1024") && e.contains(bad),
            "{e}"
        );
    }
    env.execute_sql("SET 'parallelism.default' = '2'").unwrap();
    assert_eq!(rows(&env, "SELECT x FROM t WHERE x < 3").unwrap().len(), 2);

    let cases = [
        (
            "CREATE TABLE p (x BIGINT) WITH ('connector' = 'datagen', 'scan.parallelism' = '1000000000')",
            "from 1 to 1024",
        ),
        (
            "CREATE TABLE l (s STRING) WITH ('connector' = 'datagen', 'fields.s.length' = '100000000000')",
            "fields.s.length",
        ),
        (
            "CREATE TABLE m (x BIGINT) WITH ('connector' = 'datagen', 'fields.x.min' = '10', 'fields.x.max' = '1')",
            "min 10 is greater than max 1",
        ),
        (
            "CREATE TABLE v (s VARCHAR(2147483648)) WITH ('connector' = 'datagen')",
            "the length must be from 1 to 2147483647",
        ),
        (
            "CREATE TABLE v0 (s VARCHAR(0)) WITH ('connector' = 'datagen')",
            "the length must be from 1 to 2147483647",
        ),
    ];
    for (ddl, want) in cases {
        let name = ddl.split_whitespace().nth(2).unwrap();
        let e = match env.execute_sql(ddl) {
            Err(e) => e.to_string(),
            Ok(_) => error_of(&env, &format!("SELECT * FROM {name}")),
        };
        assert!(e.contains(want), "{ddl}: {e}");
    }
}

#[test]
fn what_used_to_be_silently_wrong_is_an_error_or_right() {
    let env = env();
    let e = error_of(&env, "SELECT SUBSTRING('hello') FROM t");
    assert!(e.contains("SUBSTRING needs a start position"), "{e}");
    assert_eq!(
        rows(
            &env,
            "SELECT SUBSTRING('hello' FROM 2 FOR 3) FROM t WHERE x = 1"
        )
        .unwrap(),
        ["+I[ell]"]
    );
    // CAST fails the job as in Flink; TRY_CAST gives NULL.
    let e = error_of(&env, "SELECT CAST('abc' AS INT) FROM t");
    assert!(e.contains("Cannot cast string 'abc'"), "{e}");
    assert_eq!(
        rows(
            &env,
            "SELECT TRY_CAST('abc' AS INT), TRY_CAST('12' AS INT) FROM t WHERE x = 1"
        )
        .unwrap(),
        ["+I[null, 12]"]
    );
    // Integer literals: exact while an exact type holds them, else an error.
    assert_eq!(
        rows(&env, "SELECT 12345678901234567890 + 1 FROM t WHERE x = 1").unwrap(),
        ["+I[12345678901234567891]"]
    );
    let e = error_of(
        &env,
        "SELECT 123456789012345678901234567890123456789012 FROM t",
    );
    assert!(e.contains("42 digits") && e.contains("DECIMAL(38)"), "{e}");
}

#[test]
fn csv_errors_name_the_right_line_and_an_open_quote_is_not_swallowed() {
    let dir = std::env::temp_dir().join(format!("weir-hostile-csv-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("q")).unwrap();
    std::fs::create_dir_all(dir.join("v")).unwrap();
    std::fs::write(dir.join("q/a.csv"), "1,ok\n2,\"open\n3,lost\n4,lost\n").unwrap();
    std::fs::write(dir.join("v/a.csv"), "1,a\n2,b\nthree,c\n4,d\n").unwrap();
    let env = env();
    for (name, sub) in [("q", "q"), ("v", "v")] {
        env.execute_sql(&format!(
            "CREATE TABLE {name} (a BIGINT, b STRING) WITH ('connector' = 'filesystem', \
             'path' = '{}', 'format' = 'csv')",
            dir.join(sub).display()
        ))
        .unwrap();
    }
    let e = error_of(&env, "SELECT * FROM q");
    assert!(
        e.contains("line 2: a quoted field opens here and is never closed"),
        "{e}"
    );
    let e = error_of(&env, "SELECT * FROM v");
    assert!(e.contains("'three'") && e.contains("at line 3"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
