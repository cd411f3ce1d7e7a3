//! The demo pushes to a real Pushgateway (Debian `prometheus-pushgateway`): values arrive
//! exactly under the job's grouping key, a final push lands at the end, and the group is
//! deleted on shutdown unless told otherwise.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use weir_e2e::{build_example, free_port, http_get, read_until, require, try_http, Proc};

fn start_gateway() -> (Proc, String) {
    require("prometheus-pushgateway", "prometheus-pushgateway");
    let addr = format!("127.0.0.1:{}", free_port());
    let gw = Proc::spawn(
        "prometheus-pushgateway",
        Command::new("prometheus-pushgateway")
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null()),
    );
    let start = Instant::now();
    while http_get_ok(&addr, "/-/ready") != Some(200) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "pushgateway did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (gw, addr)
}

fn http_get_ok(addr: &str, path: &str) -> Option<u16> {
    try_http("GET", addr, path, &[], b"").ok().map(|r| r.0)
}

/// Lines of the gateway's exposition for `metric` in the `metrics-demo` job group.
fn pushed(addr: &str, metric: &str) -> Vec<String> {
    let (status, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200);
    body.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) && l.contains("job=\"metrics-demo\""))
        .map(str::to_string)
        .collect()
}

fn run_demo(gw: &str, delete_on_shutdown: bool) {
    let bin = build_example("weir-metrics", "metrics-demo");
    let mut demo = Proc::spawn(
        "metrics-demo",
        Command::new(bin).args([
            "--port",
            "0",
            "--threads",
            "2",
            "--events",
            "700",
            "--seconds",
            "2",
            "--pushgateway",
            &format!("http://{gw}"),
            "--set",
            "metrics.reporter.promgateway.interval=300ms",
            "--set",
            &format!("metrics.reporter.promgateway.deleteOnShutdown={delete_on_shutdown}"),
        ]),
    );
    let mut out = demo.stdout_lines();
    read_until(&mut out, "`updates done`", |l| l == "updates done");
    // While the job runs, the periodic push delivers the exact totals.
    let start = Instant::now();
    loop {
        let lines = pushed(gw, "weir_user_demo_events_total");
        if lines.len() == 2 && lines.iter().all(|l| l.ends_with(" 700")) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "pushed: {lines:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let sums = pushed(gw, "weir_user_demo_stage_latency_seconds_sum");
    assert_eq!(sums.len(), 2, "{sums:?}");
    assert!(
        sums.iter()
            .all(|l| l.ends_with(&format!(" {}", 700 * 701 / 2))),
        "{sums:?}"
    );
    let status = demo.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "demo exit: {status}");
    read_until(&mut out, "`stopped`", |l| l == "stopped");
}

#[test]
fn pushes_and_deletes_on_shutdown() {
    let (_gw, addr) = start_gateway();
    run_demo(&addr, true);
    assert!(
        pushed(&addr, "weir_user_demo_events_total").is_empty(),
        "group deleted at shutdown"
    );
}

#[test]
fn keeps_the_final_push_when_asked() {
    let (_gw, addr) = start_gateway();
    run_demo(&addr, false);
    let lines = pushed(&addr, "weir_user_demo_events_total");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.iter().all(|l| l.ends_with(" 700")), "{lines:?}");
    // The push counter of weir's own metrics is there as well.
    let ok = pushed(&addr, "weir_metrics_exports_total");
    assert!(
        ok.iter().any(|l| l.contains("exporter=\"pushgateway\"")),
        "{ok:?}"
    );
}

/// SIGTERM stops `weir sql` as Ctrl-C does: the job is cancelled, the summary printed, and the
/// last push carries exactly the rows the summary reports (the periodic push is too slow to
/// have sent anything before).
#[test]
fn sigterm_of_weir_sql_makes_the_final_push_and_prints_the_summary() {
    use std::io::BufRead;
    let (_gw, gw) = start_gateway();
    let weir = weir_e2e::build_bin("weir-engine", "weir");
    let dir = weir_e2e::temp_dir("cli-sigterm");
    let script = dir.join("long.sql");
    std::fs::write(
        &script,
        "CREATE TABLE ticks (n BIGINT) WITH ('connector' = 'datagen', 'fields.n.kind' = 'sequence',
           'fields.n.start' = '1', 'fields.n.end' = '10000000', 'rows-per-second' = '20000');
         CREATE TABLE sink (n BIGINT) WITH ('connector' = 'blackhole');
         INSERT INTO sink SELECT n FROM ticks;",
    )
    .unwrap();
    let mut child = Command::new(&weir)
        .args([
            "sql",
            script.to_str().unwrap(),
            "--metrics-port",
            "0",
            "--set",
            "pipeline.name=terminated",
            "--set",
            &format!("metrics.reporter.promgateway.hostUrl=http://{gw}"),
            "--set",
            "metrics.reporter.promgateway.jobName=sigterm-test",
            "--set",
            "metrics.reporter.promgateway.interval=10 min",
            "--set",
            "metrics.reporter.promgateway.deleteOnShutdown=false",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start weir");
    let err = std::io::BufReader::new(child.stderr.take().unwrap());
    let lines = std::thread::spawn(move || err.lines().map_while(Result::ok).collect::<Vec<_>>());
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: kill(2) with a pid of our own child.
    assert_eq!(unsafe { libc_kill(child.id() as i32, 15) }, 0);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "weir did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let lines = lines.join().unwrap();
    assert_eq!(status.code(), Some(143), "{lines:?}");
    assert!(
        lines.iter().any(|l| l == "weir: stopping (SIGTERM)"),
        "{lines:?}"
    );
    let summary = lines
        .iter()
        .find(|l| l.starts_with("weir: cancelled after "))
        .unwrap_or_else(|| panic!("no summary in {lines:?}"));
    let read: u64 = summary["weir: cancelled after ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(read > 0 && read < 10_000_000, "{summary}");
    let (status, body) = http_get(&gw, "/metrics");
    assert_eq!(status, 200);
    let pushed: Vec<&str> = body
        .lines()
        .filter(|l| {
            l.starts_with("weir_operator_records_out_total{")
                && l.contains("job=\"sigterm-test\"")
                && l.contains("operator=\"Source: ticks\"")
        })
        .collect();
    assert_eq!(pushed.len(), 1, "{pushed:?}");
    let value: f64 = pushed[0].rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(value as u64, read, "the final push has the summary's rows");
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}
