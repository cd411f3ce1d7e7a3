//! Percentiles that aggregate: a distribution recorded by two subtasks, scraped by two real
//! Prometheus servers, one reading classic histograms (OpenMetrics text), one native histograms
//! (protobuf, `--enable-feature=native-histograms`). The job-wide p50 and p99 computed by
//! Prometheus from the merged histograms must lie in the bucket that holds the exact value.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_e2e::{http_get, Prometheus};
use weir_metrics::config::MetricsConfig;
use weir_metrics::export::PrometheusServer;
use weir_metrics::Registry;

const FAMILY: &str = "weir_user_latency_seconds";
/// Classic bounds of the family, set by its own key: 0.1 s wide buckets up to 2 s.
const BOUNDS: &str = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1,1.1,1.2,1.3,1.4,1.5,1.6,1.7,1.8,1.9,2";

/// Subtask 0 sees 1 ms .. 1 s, subtask 1 sees 2 ms .. 2 s, 1000 values each per round.
fn values(subtask: usize) -> impl Iterator<Item = f64> {
    (1..=1000).map(move |i| i as f64 * 0.001 * (subtask + 1) as f64)
}

fn exact_quantile(q: f64) -> f64 {
    let mut all: Vec<f64> = (0..2).flat_map(values).collect();
    all.sort_by(f64::total_cmp);
    // Prometheus' rank: the value below which a fraction q of the observations lie.
    all[((q * all.len() as f64).ceil() as usize).max(1) - 1]
}

/// Waits until `expr` has one finite value, then `settle` more (a full rate window).
fn settled(prom: &Prometheus, expr: &str, settle: Duration) -> f64 {
    let start = Instant::now();
    loop {
        let r = prom.query(expr);
        if r.len() == 1 && r[0].1.is_finite() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{expr} never had one finite value on {}: {r:?}",
            prom.addr
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    std::thread::sleep(settle);
    let r = prom.query(expr);
    assert_eq!(r.len(), 1, "{expr}: {r:?}");
    r[0].1
}

#[test]
fn job_wide_percentiles_from_classic_and_native_histograms() {
    let bucket_key = format!("metrics.weir.histogram.buckets.{FAMILY}");
    let config = MetricsConfig::from_pairs([(bucket_key.as_str(), BOUNDS)]).expect("config");
    let registry = Registry::new(config.registry_options());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server =
        PrometheusServer::start(registry.clone(), "127.0.0.1", (0, 0), stop_rx).expect("endpoint");
    let addr = server.addr();

    let dists: Vec<_> = (0..2)
        .map(|s| {
            registry
                .user_group(&[
                    ("job_name", "hist"),
                    ("operator", "udf"),
                    ("subtask", &s.to_string()),
                ])
                .unwrap()
                .distribution("latency_seconds")
                .unwrap()
        })
        .collect();
    let running = Arc::new(AtomicBool::new(true));
    let recorder = {
        let running = running.clone();
        std::thread::spawn(move || {
            while running.load(Ordering::Relaxed) {
                for (s, d) in dists.iter().enumerate() {
                    for v in values(s) {
                        d.update_f64(v);
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };

    // What each format serves, before Prometheus reads it.
    let (_, text) = http_get(&addr.to_string(), "/metrics");
    assert!(
        text.contains(&format!(
            "{FAMILY}_bucket{{job_name=\"hist\",operator=\"udf\",subtask=\"1\",le=\"1.5\"}}"
        )),
        "the family's own bounds are used:\n{text}"
    );

    let classic = Prometheus::start(&[addr]);
    let native = Prometheus::start_with(&[addr], &["--enable-feature=native-histograms"]);
    let window = Duration::from_secs(6);
    for q in [0.5, 0.99] {
        let exact = exact_quantile(q);
        let c = settled(
            &classic,
            &format!("histogram_quantile({q}, sum by (le) (rate({FAMILY}_bucket[5s])))"),
            window,
        );
        // Classic: inside the 0.1-wide bucket that holds the exact value.
        let lower = (exact * 10.0).ceil() / 10.0 - 0.1;
        println!(
            "p{}: exact {exact}, classic {c}, bucket ({lower}, {}]",
            q * 100.0,
            lower + 0.1
        );
        assert!(
            c > lower - 1e-9 && c <= lower + 0.1 + 1e-9,
            "classic p{q} = {c}, exact {exact}"
        );
        let n = settled(
            &native,
            &format!("histogram_quantile({q}, sum(rate({FAMILY}[5s])))"),
            window,
        );
        // Native, schema 3: buckets (2^((k-1)/8), 2^(k/8)].
        let k = (exact.log2() * 8.0).ceil();
        let (lo, hi) = (2f64.powf((k - 1.0) / 8.0), 2f64.powf(k / 8.0));
        println!(
            "p{}: exact {exact}, native {n}, bucket ({lo}, {hi}]",
            q * 100.0
        );
        assert!(
            n > lo * (1.0 - 1e-9) && n <= hi * (1.0 + 1e-9),
            "native p{q} = {n}, exact {exact}"
        );
    }
    // The native server holds native histograms, not the classic `_bucket` series; the classic
    // one holds the buckets of both subtasks.
    let native_buckets = native.query(&format!("count({FAMILY}_bucket)"));
    assert!(native_buckets.is_empty(), "{native_buckets:?}");
    let classic_buckets = classic.query(&format!("count({FAMILY}_bucket)"));
    assert_eq!(classic_buckets.len(), 1);
    assert_eq!(
        classic_buckets[0].1,
        2.0 * 21.0,
        "2 subtasks x (20 bounds + Inf)"
    );
    // Counts agree between the two: the native histogram's count is the classic `_count`.
    let nc = native.query(&format!("sum(histogram_count({FAMILY}))"));
    let cc = classic.query(&format!("sum({FAMILY}_count)"));
    assert!(
        nc.len() == 1 && cc.len() == 1 && nc[0].1 > 0.0,
        "{nc:?} {cc:?}"
    );
    running.store(false, Ordering::Relaxed);
    recorder.join().unwrap();
}
