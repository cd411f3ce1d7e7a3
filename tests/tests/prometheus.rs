//! A real Prometheus server scrapes the metrics demo; the values read back through Prometheus'
//! query API are exact. `promtool check metrics` judges both exposition formats.

use std::process::Command;
use std::time::Duration;

use weir_e2e::{build_example, http, promtool_check, read_until, Proc, Prometheus};

const THREADS: u64 = 4;
const EVENTS: u64 = 2500;

fn start_demo(extra: &[&str]) -> (Proc, String) {
    let bin = build_example("weir-metrics", "metrics-demo");
    let mut demo = Proc::spawn(
        "metrics-demo",
        Command::new(bin)
            .args(["--port", "0", "--seconds", "120"])
            .args([
                "--threads",
                &THREADS.to_string(),
                "--events",
                &EVENTS.to_string(),
            ])
            .args(extra),
    );
    let mut out = demo.stdout_lines();
    let serving = read_until(&mut out, "the serving line", |l| {
        l.starts_with("serving http://")
    });
    let addr = serving
        .trim_start_matches("serving http://")
        .trim_end_matches("/metrics")
        .to_string();
    read_until(&mut out, "`updates done`", |l| l == "updates done");
    (demo, addr)
}

#[test]
fn prometheus_reads_exact_values_from_the_demo() {
    let (_demo, addr) = start_demo(&[]);
    let prom = Prometheus::start(&[addr.parse().expect("socket address")]);
    let limit = Duration::from_secs(30);
    let n = (THREADS * EVENTS) as f64;

    let events = prom.wait_for_value("sum(weir_user_demo_events_total)", n, limit);
    assert_eq!(events, Some(n), "counter total");
    let per_subtask = prom.query("weir_user_demo_events_total");
    assert_eq!(per_subtask.len(), THREADS as usize);
    for (labels, v) in &per_subtask {
        assert_eq!(*v, EVENTS as f64);
        assert_eq!(labels["job_name"], "metrics-demo");
        assert_eq!(labels["operator"], "generator");
        assert_eq!(
            labels["job"], "weir",
            "the scrape job keeps its own `job` label"
        );
    }

    let meter = prom.wait_for_value("sum(weir_user_demo_io_throughput_total)", n, limit);
    assert_eq!(meter, Some(n), "meter count");
    assert_eq!(
        prom.query("weir_user_demo_io_throughput_rate").len(),
        THREADS as usize
    );

    // Each thread recorded 1..=EVENTS.
    let sum = (THREADS * EVENTS * (EVENTS + 1) / 2) as f64;
    let dist = "weir_user_demo_stage_latency_seconds";
    assert_eq!(
        prom.wait_for_value(&format!("sum({dist}_count)"), n, limit),
        Some(n)
    );
    assert_eq!(
        prom.wait_for_value(&format!("sum({dist}_sum)"), sum, limit),
        Some(sum)
    );
    assert_eq!(
        prom.wait_for_value(&format!("min({dist}_min)"), 1.0, limit),
        Some(1.0)
    );
    assert_eq!(
        prom.wait_for_value(&format!("max({dist}_max)"), EVENTS as f64, limit),
        Some(EVENTS as f64)
    );
    let mean = (EVENTS + 1) as f64 / 2.0;
    assert_eq!(
        prom.wait_for_value(&format!("max({dist}_mean)"), mean, limit),
        Some(mean)
    );
    // Percentiles: values 1..=2500, so p50 ≈ 1250 and p99 ≈ 2475 within the 0.27 % bucket error.
    for (q, want) in [("0.5", 1250.5), ("0.99", 2475.0)] {
        let r = prom.query(&format!("{dist}_window{{quantile=\"{q}\",subtask=\"0\"}}"));
        assert_eq!(r.len(), 1, "quantile {q}");
        assert!(
            ((r[0].1 - want) / want).abs() < 0.003,
            "p{q} = {} (want ≈ {want})",
            r[0].1
        );
    }

    // A float gauge stays a float; a callback gauge is read at scrape time.
    assert_eq!(
        prom.wait_for_value("max(weir_user_demo_queue_fill_ratio)", 0.5, limit),
        Some(0.5)
    );
    assert_eq!(
        prom.query("weir_user_demo_uptime_seconds > 0").len(),
        THREADS as usize
    );

    // Every scrape succeeded (Prometheus asks for OpenMetrics first, so this parsed it).
    let up = prom.query("up");
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].1, 1.0);
}

#[test]
fn promtool_accepts_both_formats() {
    let (_demo, addr) = start_demo(&[]);
    let (status, text) = http("GET", &addr, "/metrics", &[], b"");
    assert_eq!(status, 200);
    assert!(
        text.contains("# TYPE weir_user_demo_events_total counter"),
        "{text}"
    );
    let (code, said) = promtool_check(&text);
    assert_eq!(
        (code, said.as_str()),
        (0, ""),
        "promtool on the text format"
    );

    let (status, om) = http(
        "GET",
        &addr,
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )],
        b"",
    );
    assert_eq!(status, 200);
    assert!(om.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    assert!(
        om.contains("# TYPE weir_user_demo_events counter\nweir_user_demo_events_total{"),
        "{om}"
    );
    // promtool 2.42 lints with the text-format parser, which reads OpenMetrics' counter family
    // name (without `_total`) as another metric and then misses the counters' help. That is
    // the only thing it may say; anything else is a real problem.
    let (_, said) = promtool_check(&om);
    for line in said.lines() {
        assert!(
            line.ends_with("_total no help text"),
            "promtool on OpenMetrics: unexpected complaint `{line}`\n{said}"
        );
    }
    let counters = om.matches(" counter\n").count();
    assert_eq!(said.lines().count(), counters, "{said}");
}

#[test]
fn port_ranges_take_the_first_free_port() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let p = taken.local_addr().expect("addr").port();
    let range = format!("{p}-{}", p + 20);
    let (_demo, addr) = start_demo(&["--set", &format!("metrics.reporter.prom.port={range}")]);
    let port: u16 = addr
        .rsplit(':')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("port");
    assert!(
        port > p && port <= p + 20,
        "{port} not in {range} after the taken {p}"
    );
}
