//! The metrics demo: one metric of each kind under nested groups, updated from several threads,
//! served on `/metrics` and optionally pushed over OTLP and to a Pushgateway.
//!
//! ```text
//! cargo run -p weir-metrics --example metrics-demo -- --port 9249 [--otlp URL] [--otlp-protocol grpc|http]
//!     [--pushgateway URL] [--seconds S] [--threads T] [--events N] [--set key=value]...
//! ```
//!
//! Without `--events` each thread updates its metrics continuously (a few thousand times a
//! second) until `--seconds` pass or Ctrl-C. With `--events N` each thread makes exactly `N`
//! iterations and stops, so the totals are known: events = T·N, latency count = T·N with
//! values 1..=N per thread (sum T·N(N+1)/2, min 1, max N), throughput count = T·N. It prints
//! `updates done` when they are all made, then keeps serving until `--seconds` pass.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_metrics::config::MetricsConfig;
use weir_metrics::export::Reporters;
use weir_metrics::{GaugeValue, Registry};

struct Args {
    pairs: Vec<(String, String)>,
    seconds: Option<f64>,
    threads: usize,
    events: Option<u64>,
}

fn usage() -> ! {
    eprintln!(
        "usage: metrics-demo [--port P] [--host H] [--otlp URL] [--otlp-protocol grpc|http] [--pushgateway URL]\n\
         \x20                   [--seconds S] [--threads T] [--events N] [--set key=value]..."
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        pairs: Vec::new(),
        seconds: None,
        threads: 4,
        events: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        let mut set = |k: &str, v: String| a.pairs.push((k.to_string(), v));
        match flag.as_str() {
            "--port" => set("metrics.reporter.prom.port", value()),
            "--host" => set("metrics.reporter.prom.host", value()),
            "--otlp" => set("metrics.reporter.otel.exporter.endpoint", value()),
            "--otlp-protocol" => set("metrics.reporter.otel.exporter.protocol", value()),
            "--pushgateway" => set("metrics.reporter.promgateway.hostUrl", value()),
            "--set" => {
                let kv = value();
                let (k, v) = kv.split_once('=').unwrap_or_else(|| usage());
                set(k, v.to_string());
            }
            "--seconds" => a.seconds = Some(value().parse().unwrap_or_else(|_| usage())),
            "--threads" => a.threads = value().parse().unwrap_or_else(|_| usage()),
            "--events" => a.events = Some(value().parse().unwrap_or_else(|_| usage())),
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    a
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = parse_args();
    let config =
        match MetricsConfig::from_pairs(args.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("metrics-demo: {e}");
                std::process::exit(2);
            }
        };
    let registry = Registry::new(config.registry_options());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let reporters =
        match runtime.block_on(async { Reporters::start(&registry, &config, "metrics-demo") }) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("metrics-demo: {e}");
                std::process::exit(1);
            }
        };
    if let Some(addr) = reporters.prometheus_addr() {
        println!("serving http://{addr}/metrics");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..args.threads)
        .map(|t| {
            let subtask = t.to_string();
            let root = registry
                .user_group(&[
                    ("job_name", "metrics-demo"),
                    ("operator", "generator"),
                    ("subtask", &subtask),
                ])
                .expect("valid labels");
            let demo = root.add_group("demo").expect("valid name");
            let events = demo.counter("events").expect("counter");
            let throughput = demo
                .add_group("io")
                .and_then(|g| g.meter("throughput", 60))
                .expect("meter");
            let latency = demo
                .add_key_group("stage", "parse")
                .and_then(|g| g.distribution("latency_seconds"))
                .expect("distribution");
            let queue = demo.gauge("queue_fill_ratio").expect("gauge");
            let (stop, done, limit) = (stop.clone(), done.clone(), args.events);
            if limit.is_some() {
                queue.set_f64(0.5);
            }
            demo.gauge_fn("uptime_seconds", move || {
                Ok(GaugeValue::Float(started.elapsed().as_secs_f64()))
            })
            .expect("gauge");
            std::thread::spawn(move || {
                let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1);
                let mut i: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    match limit {
                        Some(n) if i >= n => break,
                        Some(_) => {
                            i += 1;
                            events.inc(1);
                            throughput.mark_event(1);
                            latency.update_i64(i as i64);
                        }
                        None => {
                            i += 1;
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            events.inc(1);
                            throughput.mark_event(1);
                            // Log-normal-ish latencies between ~0.1 ms and ~200 ms.
                            let u = (x % 10_000) as f64 / 10_000.0;
                            latency.update_f64(0.0001 * (u * 7.6).exp());
                            queue.set_f64((x % 1000) as f64 / 1000.0);
                            std::thread::sleep(Duration::from_micros(250));
                        }
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();

    runtime.block_on(async {
        if args.events.is_some() {
            while done.load(Ordering::SeqCst) < args.threads as u64 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            println!("updates done");
        }
        let deadline = async {
            match args.seconds {
                Some(s) => tokio::time::sleep(Duration::from_secs_f64(s)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = deadline => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        stop.store(true, Ordering::Relaxed);
        reporters.shutdown().await;
    });
    for t in threads {
        let _ = t.join();
    }
    println!("stopped");
}
