//! Runs the data-driven SQL tests in `tests/sql/*.test`.
//!
//! Format (readable without this runner):
//!
//! ```text
//! # a comment
//! statement ok
//! CREATE TABLE t (...) WITH (...)
//!
//! statement error <text the error message must contain>
//! SELECT nope FROM t
//!
//! query [ordered]
//! SELECT ...
//! ----
//! +I[1, a]
//! ```
//!
//! A `query` runs to the end of its (bounded) input and compares every row with its change
//! kind, as Flink's `print` shows them; rows are compared as a sorted list unless `ordered`.
//! `statement ok` on an `INSERT` runs the job to the end. `${TMP}` is a fresh directory per
//! file. Blocks are separated by blank lines. The user-defined functions `split_words` (a
//! table function) and `rsum` (an aggregate) are registered in every file (`rust_udfs`).

use std::path::{Path, PathBuf};

mod rust_udfs;

use weir_engine::sql::SqlOutcome;
use weir_engine::stream::format_row;
use weir_engine::table::TableEnvironment;

struct Failure {
    file: String,
    line: usize,
    message: String,
}

fn run_file(path: &Path, rt: &tokio::runtime::Runtime) -> Vec<Failure> {
    let text = std::fs::read_to_string(path).expect("test file");
    let tmp = std::env::temp_dir().join(format!(
        "weir-sqllogic-{}-{}",
        path.file_stem().and_then(|s| s.to_str()).unwrap_or("x"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let text = text.replace("${TMP}", tmp.to_str().expect("utf-8 temp path"));
    let env = TableEnvironment::in_streaming_mode();
    rust_udfs::register(&env);
    let mut failures = Vec::new();
    let file = path
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or("?")
        .to_string();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        if line.is_empty() || line.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i + 1;
        let header = line.to_string();
        i += 1;
        let mut sql = Vec::new();
        while i < lines.len() && !lines[i].trim().is_empty() && lines[i].trim() != "----" {
            sql.push(lines[i]);
            i += 1;
        }
        let mut expected = Vec::new();
        if i < lines.len() && lines[i].trim() == "----" {
            i += 1;
            while i < lines.len() && !lines[i].trim().is_empty() {
                expected.push(lines[i].trim().to_string());
                i += 1;
            }
        }
        let sql = sql.join("\n");
        let mut fail = |message: String| {
            failures.push(Failure {
                file: file.clone(),
                line: start,
                message,
            })
        };
        let outcome = env.execute_sql(&sql);
        if let Some(want) = header.strip_prefix("statement error") {
            match outcome {
                Ok(SqlOutcome::Insert { job, .. }) => match rt.block_on(env.run(job)) {
                    Ok(_) => fail(format!(
                        "expected an error containing {want:?}, the job succeeded"
                    )),
                    Err(e) if e.to_string().contains(want.trim()) => {}
                    Err(e) => fail(format!(
                        "expected an error containing {:?}, got: {e}",
                        want.trim()
                    )),
                },
                Ok(SqlOutcome::Query(t)) => match rt.block_on(env.collect(&t)) {
                    Ok(_) => fail(format!(
                        "expected an error containing {want:?}, the query succeeded"
                    )),
                    Err(e) if e.to_string().contains(want.trim()) => {}
                    Err(e) => fail(format!(
                        "expected an error containing {:?}, got: {e}",
                        want.trim()
                    )),
                },
                Ok(_) => fail(format!(
                    "expected an error containing {want:?}, it succeeded"
                )),
                Err(e) if e.to_string().contains(want.trim()) => {}
                Err(e) => fail(format!(
                    "expected an error containing {:?}, got: {e}",
                    want.trim()
                )),
            }
            continue;
        }
        if header == "statement ok" {
            match outcome {
                Ok(SqlOutcome::Insert { job, .. }) => {
                    if let Err(e) = rt.block_on(env.run(job)) {
                        fail(format!("the job failed: {e}"));
                    }
                }
                Ok(_) => {}
                Err(e) => fail(format!("failed: {e}")),
            }
            continue;
        }
        if header.starts_with("query") {
            let ordered = header.contains("ordered");
            let got = match outcome {
                Ok(SqlOutcome::Query(t)) => match rt.block_on(env.collect(&t)) {
                    Ok(batches) => {
                        let mut rows = Vec::new();
                        for b in &batches {
                            for r in 0..b.num_rows() {
                                rows.push(format_row(b, r).expect("formatting"));
                            }
                        }
                        rows
                    }
                    Err(e) => {
                        fail(format!("the query failed: {e}"));
                        continue;
                    }
                },
                Ok(SqlOutcome::Text(t)) => t
                    .lines()
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty())
                    .collect(),
                Ok(_) => {
                    fail("not a query".into());
                    continue;
                }
                Err(e) => {
                    fail(format!("planning failed: {e}"));
                    continue;
                }
            };
            let (mut got, mut want) = (got, expected);
            if !ordered {
                got.sort();
                want.sort();
            }
            if got != want {
                fail(format!(
                    "rows differ\n  expected:\n    {}\n  got:\n    {}",
                    want.join("\n    "),
                    got.join("\n    ")
                ));
            }
            continue;
        }
        fail(format!("unknown block `{header}`"));
    }
    let _ = std::fs::remove_dir_all(&tmp);
    failures
}

#[test]
fn sql_files() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sql");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/sql")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "test"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no test files in {}", dir.display());
    let only = std::env::var("WEIR_SQL_TEST").ok();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut failures = Vec::new();
    let mut ran = 0;
    for f in &files {
        if only
            .as_ref()
            .is_some_and(|o| !f.to_string_lossy().contains(o.as_str()))
        {
            continue;
        }
        ran += 1;
        failures.extend(run_file(f, &rt));
    }
    assert!(ran > 0, "no file matched WEIR_SQL_TEST");
    if !failures.is_empty() {
        let text: Vec<String> = failures
            .iter()
            .map(|f| format!("{}:{}: {}", f.file, f.line, f.message))
            .collect();
        panic!("{} failing blocks:\n{}", failures.len(), text.join("\n\n"));
    }
}
