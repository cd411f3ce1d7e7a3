//! `weir sql` end to end: a script reads CSV files, aggregates by window and key, joins, and
//! writes CSV files that are compared with what the input implies; a second run is scraped
//! on `/metrics` while it runs; a broken script fails with a clear message.

use std::process::Command;
use std::time::{Duration, Instant};

use weir_e2e::{build_bin, free_port, promtool_check, temp_dir, Proc};

fn lines_of_dir(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("output directory") {
        let text = std::fs::read_to_string(e.expect("entry").path()).expect("output file");
        out.extend(text.lines().map(String::from));
    }
    out.sort();
    out
}

#[test]
fn a_script_writes_the_expected_files() {
    let weir = build_bin("weir-engine", "weir");
    let dir = temp_dir("cli-files");
    // Orders: (order id, user id, amount, event time in ms). One per 500 ms, users 1..3.
    let mut orders = String::new();
    let mut expected_windows = std::collections::BTreeMap::<(i64, i64), (i64, i64)>::new();
    for id in 0..60i64 {
        let user = id % 3 + 1;
        let amount = id * 7 % 50;
        let ts = id * 500;
        orders.push_str(&format!("{id},{user},{amount},{ts}\n"));
        let w = ts / 10_000 * 10_000;
        let e = expected_windows.entry((w, user)).or_default();
        e.0 += 1;
        e.1 += amount;
    }
    std::fs::create_dir_all(dir.join("orders")).unwrap();
    std::fs::write(
        dir.join("orders/a.csv"),
        &orders[..orders.len() / 2 + orders[orders.len() / 2..].find('\n').unwrap() + 1],
    )
    .unwrap();
    std::fs::write(
        dir.join("orders/b.csv"),
        &orders[orders.len() / 2 + orders[orders.len() / 2..].find('\n').unwrap() + 1..],
    )
    .unwrap();
    std::fs::write(dir.join("users.csv"), "1,ann\n2,bob\n3,cy\n").unwrap();
    let script = format!(
        "-- windows per user, joined with user names
CREATE TABLE orders (id BIGINT, user_id BIGINT, amount INT, ms BIGINT,
  ts AS TO_TIMESTAMP_LTZ(ms, 3), WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
  WITH ('connector' = 'filesystem', 'path' = '{d}/orders', 'format' = 'csv');
CREATE TABLE users (user_id BIGINT, name STRING)
  WITH ('connector' = 'filesystem', 'path' = '{d}/users.csv', 'format' = 'csv');
CREATE TABLE per_window (name STRING, window_start TIMESTAMP(3), n BIGINT, total INT)
  WITH ('connector' = 'filesystem', 'path' = '{d}/out', 'format' = 'csv');
CREATE VIEW windows AS
  SELECT user_id, window_start, COUNT(*) AS n, SUM(amount) AS total
  FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '10' SECOND))
  GROUP BY window_start, window_end, user_id;
INSERT INTO per_window
  SELECT u.name, w.window_start, w.n, w.total FROM windows w JOIN users u ON w.user_id = u.user_id;
",
        d = dir.display()
    );
    std::fs::write(dir.join("job.sql"), script).unwrap();
    let out = Command::new(&weir)
        .args([
            "sql",
            dir.join("job.sql").to_str().unwrap(),
            "--parallelism",
            "2",
            "--metrics-port",
            "0",
        ])
        .output()
        .expect("run weir");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "weir failed: {stderr}");
    // 60 orders and 3 users.
    assert!(stderr.contains("finished: 63 rows read"), "{stderr}");
    let names = ["", "ann", "bob", "cy"];
    let mut want: Vec<String> = expected_windows
        .iter()
        .map(|((w, u), (n, total))| {
            format!(
                "{},1970-01-01 00:00:{:02}.000,{n},{total}",
                names[*u as usize],
                w / 1000
            )
        })
        .collect();
    want.sort();
    assert_eq!(lines_of_dir(&dir.join("out")), want);
}

#[test]
fn a_broken_script_fails_with_the_reason() {
    let weir = build_bin("weir-engine", "weir");
    let dir = temp_dir("cli-broken");
    std::fs::write(
        dir.join("bad.sql"),
        "CREATE TABLE t (x BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '-1');",
    )
    .unwrap();
    let out = Command::new(&weir)
        .args([
            "sql",
            dir.join("bad.sql").to_str().unwrap(),
            "--metrics-port",
            "0",
        ])
        .output()
        .expect("run weir");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("weir: error: table `t`, option 'number-of-rows': must not be negative"),
        "{stderr}"
    );
    let out = Command::new(&weir)
        .args(["sql"])
        .output()
        .expect("run weir");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing the SQL file"));
}

#[test]
fn the_cargo_binary_refuses_python_functions_naming_the_one_that_runs_them() {
    let weir = build_bin("weir-engine", "weir");
    let dir = temp_dir("cli-python");
    std::fs::write(
        dir.join("f.sql"),
        "CREATE TEMPORARY FUNCTION shout AS 'm.shout' LANGUAGE PYTHON;",
    )
    .unwrap();
    let out = Command::new(&weir)
        .args(["sql", dir.join("f.sql").to_str().unwrap(), "-pyfs", "m.py"])
        .output()
        .expect("run weir");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("CREATE FUNCTION shout ... LANGUAGE PYTHON: this `weir` was built by cargo")
            && stderr.contains("pip install ./python-sdk"),
        "{stderr}"
    );
    let out = Command::new(&weir)
        .args(["sql", "f.sql", "-pyfs"])
        .output()
        .expect("run weir");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("-pyfs needs a value"));
}

#[test]
fn metrics_are_served_while_the_job_runs() {
    let weir = build_bin("weir-engine", "weir");
    let dir = temp_dir("cli-metrics");
    // About 4 seconds of input at 50,000 rows/s.
    std::fs::write(
        dir.join("live.sql"),
        "CREATE TABLE ticks (n BIGINT, ts AS TO_TIMESTAMP_LTZ(n, 3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
           WITH ('connector' = 'datagen', 'fields.n.kind' = 'sequence', 'fields.n.start' = '1',
                 'fields.n.end' = '200000', 'rows-per-second' = '50000');
         CREATE TABLE sink (window_start TIMESTAMP(3), c BIGINT) WITH ('connector' = 'blackhole');
         INSERT INTO sink SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' SECOND))
           GROUP BY window_start, window_end;",
    )
    .unwrap();
    let port = free_port();
    let mut proc = Proc::spawn(
        "weir",
        Command::new(&weir).args([
            "sql",
            dir.join("live.sql").to_str().unwrap(),
            "--metrics-port",
            &port.to_string(),
            "--set",
            "pipeline.name=live",
        ]),
    );
    let addr = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let mut seen = None;
    while started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(300));
        let Ok((200, text)) = weir_e2e::try_http("GET", &addr, "/metrics", &[], b"") else {
            continue;
        };
        let read: f64 = text
            .lines()
            .filter(|l| {
                l.starts_with(
                    "weir_operator_records_out_total{job_name=\"live\",operator=\"Source: ticks\"",
                )
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if read > 0.0 && read < 200_000.0 && text.contains("weir_operator_watermark_seconds{") {
            seen = Some(text);
            break;
        }
    }
    let text = seen.expect("no /metrics scrape saw the job half way");
    for name in [
        "weir_operator_records_in_total{job_name=\"live\",operator=\"WindowAggregate_",
        "weir_operator_busy_ratio{job_name=\"live\"",
        "weir_operator_backpressured_ratio{job_name=\"live\"",
        "weir_operator_watermark_lag_seconds{job_name=\"live\"",
        "weir_operator_state_keys{job_name=\"live\"",
        "weir_operator_late_records_dropped_total{job_name=\"live\"",
        "weir_job_uptime_seconds{job_name=\"live\"} ",
        "weir_job_running{job_name=\"live\"} 1",
    ] {
        assert!(text.contains(name), "missing {name} in\n{text}");
    }
    let (code, said) = promtool_check(&text);
    assert_eq!(code, 0, "promtool: {said}");
    let status = proc.wait_exit(Duration::from_secs(60));
    assert!(status.success());
}

/// Runs `weir sql script` with stderr read line by line on a thread; returns the process and
/// the lines as they come.
fn spawn_weir_with_stderr(
    weir: &std::path::Path,
    args: &[&str],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut child = Command::new(weir)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start weir");
    let (tx, rx) = std::sync::mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

fn metrics_address(lines: &std::sync::mpsc::Receiver<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(l) = lines.recv_timeout(Duration::from_millis(200)) {
            if let Some(rest) = l.strip_prefix("weir: metrics at http://") {
                return rest.trim_end_matches("/metrics").to_string();
            }
            seen.push(l);
        }
    }
    panic!("weir never said where its metrics are: {seen:?}");
}

const FOUR_SECONDS: &str =
    "CREATE TABLE ticks (n BIGINT) WITH ('connector' = 'datagen', 'fields.n.kind' = 'sequence',
       'fields.n.start' = '1', 'fields.n.end' = '200000', 'rows-per-second' = '50000');
     CREATE TABLE sink (n BIGINT) WITH ('connector' = 'blackhole');
     INSERT INTO sink SELECT n FROM ticks;";

#[test]
fn set_statements_of_the_script_configure_the_metrics() {
    let weir = build_bin("weir-engine", "weir");
    let dir = temp_dir("cli-set");
    let port = free_port();
    let script = dir.join("setkeys.sql");
    std::fs::write(
        &script,
        format!(
            "SET 'metrics.weir.name-prefix' = 'acme';\nSET 'metrics.weir.cardinality-limit' = '1';\nSET 'metrics.reporter.prom.port' = '{port}';\n{FOUR_SECONDS}"
        ),
    )
    .unwrap();
    let (mut child, lines) = spawn_weir_with_stderr(&weir, &["sql", script.to_str().unwrap()]);
    let addr = metrics_address(&lines);
    assert_eq!(addr, format!("127.0.0.1:{port}"), "the SET port is used");
    let started = Instant::now();
    let mut text = String::new();
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok((200, t)) = weir_e2e::try_http("GET", &addr, "/metrics", &[], b"") {
            if t.contains("acme_operator_records_out_total{job_name=\"setkeys\"")
                && t.contains(
                    "acme_metrics_series_dropped_total{metric=\"acme_operator_records_out\"}",
                )
            {
                text = t;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        text.contains("acme_job_uptime_seconds{job_name=\"setkeys\"}"),
        "{text}"
    );
    // A limit of one series per family: the source's records_out is kept, the sink's is
    // dropped and counted.
    let kept = text
        .lines()
        .filter(|l| l.starts_with("acme_operator_records_out_total{"))
        .count();
    assert_eq!(kept, 1, "SET cardinality-limit ignored: {text}");
    let unprefixed: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.starts_with("weir_"))
        .collect();
    assert!(
        unprefixed.is_empty(),
        "SET name-prefix ignored: {unprefixed:?}"
    );
    assert!(child.wait().unwrap().success());
}

#[test]
fn two_scripts_at_once_with_the_default_port_both_run_and_serve_metrics() {
    let weir = build_bin("weir-engine", "weir");
    let dir = temp_dir("cli-two");
    let script = dir.join("twice.sql");
    std::fs::write(&script, FOUR_SECONDS).unwrap();
    let (mut a, a_lines) = spawn_weir_with_stderr(&weir, &["sql", script.to_str().unwrap()]);
    let (mut b, b_lines) = spawn_weir_with_stderr(&weir, &["sql", script.to_str().unwrap()]);
    let (addr_a, addr_b) = (metrics_address(&a_lines), metrics_address(&b_lines));
    assert_ne!(addr_a, addr_b);
    for addr in [&addr_a, &addr_b] {
        let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
        assert!((9249..=9259).contains(&port), "{addr}");
        let (code, text) = weir_e2e::http_get(addr, "/metrics");
        assert_eq!(code, 200);
        assert!(
            text.contains("weir_job_running{job_name=\"twice\"} 1"),
            "{text}"
        );
    }
    assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
}

/// At the file-descriptor limit the `/metrics` accept loop backs off and logs once per streak;
/// connections that send nothing are closed after the header timeout, which ends the streak.
#[test]
fn the_metrics_endpoint_survives_the_descriptor_limit_and_idle_connections() {
    let weir = build_bin("weir-engine", "weir");
    let dir = temp_dir("cli-fd-limit");
    let script = dir.join("long.sql");
    std::fs::write(
        &script,
        "CREATE TABLE ticks (n BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '1000');
         CREATE TABLE sink (n BIGINT) WITH ('connector' = 'blackhole');
         INSERT INTO sink SELECT n FROM ticks;",
    )
    .unwrap();
    let sh = std::path::Path::new("/bin/sh");
    let (mut child, lines) = spawn_weir_with_stderr(
        sh,
        &[
            "-c",
            "ulimit -n 64 && exec \"$0\" sql \"$1\" --metrics-port 0",
            weir.to_str().unwrap(),
            script.to_str().unwrap(),
        ],
    );
    let addr = metrics_address(&lines);
    // More idle connections than the process has descriptors left.
    let conns: Vec<std::net::TcpStream> = (0..120)
        .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
        .collect();
    assert!(conns.len() >= 100, "{} connections", conns.len());
    let deadline = Instant::now() + Duration::from_secs(weir_metrics_header_timeout() + 15);
    let mut failures = 0;
    let mut recovered = false;
    while Instant::now() < deadline && !recovered {
        if let Ok(l) = lines.recv_timeout(Duration::from_millis(200)) {
            failures += usize::from(l.contains("accepting a scrape connection failed"));
            recovered |= l.contains("accepting scrape connections again");
        }
    }
    assert_eq!(failures, 1, "one warning per streak");
    assert!(recovered, "the idle connections were never closed");
    let (status, _) = weir_e2e::http_get(&addr, "/metrics");
    assert_eq!(status, 200);
    // The idle ones were closed by the server: reading gives EOF, not a hang.
    let mut c = &conns[0];
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(std::io::Read::read(&mut c, &mut buf).unwrap_or(0), 0);
    let _ = child.kill();
    let _ = child.wait();
}

fn weir_metrics_header_timeout() -> u64 {
    10
}
