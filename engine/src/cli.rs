//! The `weir` command: `weir sql FILE.sql` runs a SQL script (DDL, SET, queries, INSERT INTO,
//! `CREATE FUNCTION ... LANGUAGE PYTHON`) with its metrics served for Prometheus while it runs.
//!
//! One implementation for both ways of getting the command: the cargo binary
//! (`src/bin/weir.rs`, pure SQL) and the one `pip install ./python-sdk` puts on the PATH
//! (`weir.cli`), which passes a [`FunctionLoader`] for Python functions.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::connectors::{PrintSink, PrintTarget};
use crate::runtime::{JobControl, JobGraph};
use crate::session::ProcessSession;
use crate::sql::{split_statements, SqlOutcome};
use crate::table::TableEnvironment;

const USAGE: &str =
    "usage: weir sql FILE.sql [--parallelism N] [--metrics-port PORT] [--set key=value]...
                     [-pyfs FILES] [-pyarch ARCHIVES] [-pyreq FILE[#DIR]] [-pyexec PYTHON]

Runs the statements of FILE.sql in order: CREATE TABLE/VIEW, SET, SELECT (rows printed),
EXPLAIN, CREATE [TEMPORARY] FUNCTION name AS 'module.function' LANGUAGE PYTHON, and
INSERT INTO (run as jobs, all at once, after the script has been read).

  --parallelism N       subtasks per operator (parallelism.default), default 1
  --metrics-port PORT   port of the Prometheus endpoint /metrics (0 = any free port;
                        metrics.reporter.prom.port), default the first free port of
                        9249-9259; a busy explicit port is a warning, the job runs
  --set key=value       any configuration key, e.g. --set execution.runtime-mode=batch
                        or --set metrics.reporters=prom,otel

Python functions (Flink's SQL client options; the keys of docs/python.md):
  -pyfs, --pyFiles FILES           .py/.zip/.whl/.egg files or directories, comma-separated,
                                   importable by the functions (python.files)
  -pyarch, --pyArchives ARCHIVES   zip/tar archives, `path#target`, comma-separated, extracted
                                   into the workers' working directory (python.archives)
  -pyreq, --pyRequirements FILE    requirements installed for the workers, `FILE#cache_dir`
                                   to install offline from cache_dir (python.requirements)
  -pyexec, --pyExecutable PYTHON   the workers' interpreter, also one inside an archive
                                   (python.executable)
  -pyclientexec, --pyClientExecutable PYTHON
                                   the interpreter that prepares them (python.client.executable)
";

/// Registers the functions of `CREATE FUNCTION ... LANGUAGE ...` statements: the Python
/// package's command has one; the cargo binary has none and refuses them.
pub trait FunctionLoader {
    fn create_function(
        &self,
        env: &TableEnvironment,
        name: &str,
        path: &str,
        language: &str,
    ) -> Result<(), String>;
}

struct Args {
    file: String,
    pairs: Vec<(String, String)>,
}

fn parse_args(args: Vec<String>) -> Result<Args, String> {
    let mut it = args.into_iter();
    match it.next().as_deref() {
        Some("sql") => {}
        Some("-h") | Some("--help") | None => return Err(String::new()),
        Some(other) => return Err(format!("unknown command `{other}`")),
    }
    let mut file = None;
    let mut pairs = Vec::new();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--parallelism" | "-p" => pairs.push(("parallelism.default".to_string(), value(&a)?)),
            "--metrics-port" => pairs.push(("metrics.reporter.prom.port".to_string(), value(&a)?)),
            "-pyfs" | "--pyFiles" => pairs.push(("python.files".to_string(), value(&a)?)),
            "-pyarch" | "--pyArchives" => pairs.push(("python.archives".to_string(), value(&a)?)),
            "-pyreq" | "--pyRequirements" => {
                pairs.push(("python.requirements".to_string(), value(&a)?))
            }
            "-pyexec" | "--pyExecutable" => {
                pairs.push(("python.executable".to_string(), value(&a)?))
            }
            "-pyclientexec" | "--pyClientExecutable" => {
                pairs.push(("python.client.executable".to_string(), value(&a)?))
            }
            "--set" | "-D" => {
                let kv = value(&a)?;
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| format!("--set takes key=value, not `{kv}`"))?;
                pairs.push((k.trim().to_string(), v.trim().to_string()));
            }
            "-h" | "--help" => return Err(String::new()),
            f if !f.starts_with('-') && file.is_none() => file = Some(f.to_string()),
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    Ok(Args {
        file: file.ok_or("missing the SQL file")?,
        pairs,
    })
}

/// Runs the command line `args` (without the program's name); returns the exit code.
/// `defaults` are configuration pairs the options and `SET` override (the Python package's
/// interpreter and path); `functions` loads `CREATE FUNCTION`'s functions.
pub fn main(
    args: Vec<String>,
    defaults: Vec<(String, String)>,
    functions: Option<&dyn FunctionLoader>,
) -> u8 {
    let mut args = match parse_args(args) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            print!("{USAGE}");
            return 0;
        }
        Err(e) => {
            eprintln!("weir: {e}\n\n{USAGE}");
            return 2;
        }
    };
    args.pairs.splice(0..0, defaults);
    let session = ProcessSession::global();
    let runtime = match session.runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("weir: {e}");
            return 1;
        }
    };
    match runtime.block_on(run(args, session.clone(), functions)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("weir: error: {e}");
            1
        }
    }
}

async fn run(
    args: Args,
    session: ProcessSession,
    functions: Option<&dyn FunctionLoader>,
) -> Result<u8, String> {
    let script = std::fs::read_to_string(&args.file)
        .map_err(|e| format!("cannot read {}: {e}", args.file))?;
    let env = TableEnvironment::with_session(true, session.clone());
    for (k, v) in &args.pairs {
        env.set_config(k, v).map_err(|e| e.to_string())?;
    }
    let job_name = std::path::Path::new(&args.file)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("weir-sql")
        .to_string();
    if !env.config().contains_key("pipeline.name") {
        env.set_config("pipeline.name", &job_name)
            .map_err(|e| e.to_string())?;
    }
    let started = Instant::now();

    let mut jobs: Vec<(String, JobGraph)> = Vec::new();
    for stmt in split_statements(&script) {
        match env.execute_sql(&stmt) {
            Ok(SqlOutcome::Ok(_)) => {}
            Ok(SqlOutcome::Text(t)) => println!("{t}"),
            Ok(SqlOutcome::Insert { sink, job }) => jobs.push((format!("INSERT INTO {sink}"), job)),
            Ok(SqlOutcome::Query(t)) => {
                // A SELECT prints its changelog, as Flink's `print` does.
                let sink = Arc::new(PrintSink {
                    name: "select".into(),
                    identifier: None,
                    target: PrintTarget::Stdout,
                });
                let job = env.plan_to(&t, sink).map_err(|e| e.to_string())?;
                jobs.push(("SELECT".into(), job));
            }
            Ok(SqlOutcome::CreateFunction {
                name,
                path,
                language,
            }) => match functions {
                Some(f) => f.create_function(&env, &name, &path, &language)?,
                None => return Err(format!(
                    "CREATE FUNCTION {name} ... LANGUAGE {language}: this `weir` was built by cargo and runs pure SQL; the one `pip install ./python-sdk` installs runs Python functions"
                )),
            },
            Err(e) => return Err(e.to_string()),
        }
    }
    if jobs.is_empty() {
        return Ok(0);
    }
    // The metric settings are read now, after the script's SET statements.
    for w in session
        .start_reporters(&env.config())
        .map_err(|e| e.to_string())?
    {
        eprintln!("weir: warning: {w}");
    }
    if let Some(addr) = session.metrics_address() {
        eprintln!("weir: metrics at http://{addr}/metrics");
    }
    let control = Arc::new(JobControl::default());
    let mut handles = Vec::new();
    for (what, mut job) in jobs {
        eprintln!("weir: running {what} ({} operators)", job.nodes.len());
        let (ticket, warnings) = session
            .begin_job(env.env_id(), &mut job)
            .map_err(|e| e.to_string())?;
        for w in warnings {
            eprintln!("weir: warning: {w}");
        }
        let c = control.clone();
        handles.push((what, tokio::spawn(ticket.run(job, c))));
    }
    let interactive = std::io::stderr().is_terminal();
    let progress = {
        let c = control.clone();
        tokio::spawn(async move {
            let mut last = (Instant::now(), 0u64, 0u64);
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let (r, w) = (
                    c.rows_read.load(Ordering::Relaxed),
                    c.rows_written.load(Ordering::Relaxed),
                );
                let dt = last.0.elapsed().as_secs_f64().max(1e-9);
                let wm = c.watermark.load(Ordering::Relaxed);
                let wm = if wm == i64::MIN {
                    "-".to_string()
                } else {
                    crate::expr::functions::format_millis(wm)
                };
                if interactive {
                    eprint!(
                        "\r\x1b[2K{:.0} rows/s in, {:.0} rows/s out, {} read, {} written, watermark {}",
                        (r - last.1) as f64 / dt,
                        (w - last.2) as f64 / dt,
                        r,
                        w,
                        wm
                    );
                }
                last = (Instant::now(), r, w);
            }
        })
    };
    let signalled: Arc<Mutex<Option<&'static str>>> = Arc::default();
    let cancel = {
        let c = control.clone();
        let signalled = signalled.clone();
        tokio::spawn(async move {
            // SIGTERM (a service manager, `kill`, a container stopping) ends a job as Ctrl-C
            // does: cancelled, the summary printed, the last export and push made.
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let terminated = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let what = tokio::select! {
                r = tokio::signal::ctrl_c() => if r.is_ok() { "Ctrl-C" } else { return },
                _ = terminated => "SIGTERM",
            };
            eprintln!("\nweir: stopping ({what})");
            *signalled.lock().unwrap_or_else(|p| p.into_inner()) = Some(what);
            c.cancel();
        })
    };
    let mut failed = None;
    let mut cancelled = false;
    for (what, h) in handles {
        match h.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                failed.get_or_insert(format!("{what} failed: {e}"));
            }
            Err(e) => {
                failed.get_or_insert(format!("{what} crashed: {e}"));
            }
        }
    }
    let signal = *signalled.lock().unwrap_or_else(|p| p.into_inner());
    if signal.is_some() {
        cancelled = true;
    }
    progress.abort();
    cancel.abort();
    let elapsed = started.elapsed().as_secs_f64();
    let (r, w) = (
        control.rows_read.load(Ordering::Relaxed),
        control.rows_written.load(Ordering::Relaxed),
    );
    if interactive {
        eprint!("\r\x1b[2K");
    }
    eprintln!(
        "weir: {} {r} rows read, {w} rows written in {elapsed:.2} s ({:.0} rows/s)",
        if failed.is_some() {
            "failed after"
        } else if cancelled {
            "cancelled after"
        } else {
            "finished:"
        },
        r as f64 / elapsed.max(1e-9)
    );
    session.stop_reporters().await;
    match failed {
        Some(e) => Err(e),
        // 128 + the signal's number, as a shell reports a process ended by it.
        None if signal == Some("SIGTERM") => Ok(143),
        None if cancelled => Ok(130),
        None => Ok(0),
    }
}
