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
