//! Benchmarks of weir-metrics. Prints figures; asserts nothing.
//!
//! `cargo bench -p weir-metrics --bench metrics_bench`
//!
//! - update cost through a handle (ns/op), one thread and two threads on the same metric;
//! - the cost of looking the metric up by name each time instead of keeping the handle;
//! - encode / decode / merge throughput of worker update batches;
//! - `/metrics` render time (snapshot + text encoding) for 1k, 10k and 100k series.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_metrics::remote::{AggregationLevel, RemoteMetrics, UpdateCollector};
use weir_metrics::{prometheus, Registry, RegistryOptions};

/// Best of five runs of `f(iters)`, in ns per iteration.
fn best_ns(iters: u64, mut f: impl FnMut(u64)) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            f(iters);
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// ns per op with `threads` threads hammering the same metric.
fn contended(threads: usize, iters: u64, f: impl Fn(u64) + Send + Sync + 'static) -> f64 {
    let f = Arc::new(f);
    let start = Arc::new(std::sync::Barrier::new(threads));
    let t = Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|_| {
            let (f, start) = (f.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                f(iters)
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    // Wall time per op of one thread: what each updater pays.
    t.elapsed().as_nanos() as f64 / iters as f64
}

fn updates() {
    let r = Registry::default();
    let g = r
        .user_group(&[("job_name", "bench"), ("operator", "udf"), ("subtask", "0")])
        .unwrap();
    let c = g.counter("c").unwrap();
    let m = g.meter("m", 60).unwrap();
    let d = g.distribution("d").unwrap();
    let gauge = g.gauge("g").unwrap();
    const N: u64 = 20_000_000;
    println!("## update cost through a handle (ns/op)");
    println!("| metric | 1 thread | 2 threads, same metric |");
    println!("|---|---|---|");
    let c1 = best_ns(N, |n| {
        for _ in 0..n {
            black_box(&c).inc(1);
        }
    });
    let cc = c.clone();
    let c2 = contended(2, N, move |n| {
        for _ in 0..n {
            black_box(&cc).inc(1);
        }
    });
    println!("| counter.inc(1) | {c1:.1} | {c2:.1} |");
    let m1 = best_ns(N, |n| {
        for _ in 0..n {
            black_box(&m).mark_event(1);
        }
    });
    let mc = m.clone();
    let m2 = contended(2, N, move |n| {
        for _ in 0..n {
            black_box(&mc).mark_event(1);
        }
    });
    println!("| meter.mark_event(1) | {m1:.1} | {m2:.1} |");
    let g1 = best_ns(N, |n| {
        for i in 0..n {
            black_box(&gauge).set_f64(i as f64);
        }
    });
    println!("| gauge.set_f64(v) | {g1:.1} | - |");
    let d1 = best_ns(N / 4, |n| {
        for i in 0..n {
            black_box(&d).update_i64((i % 100_000) as i64);
        }
    });
    let dc = d.clone();
    let d2 = contended(2, N / 4, move |n| {
        for i in 0..n {
            black_box(&dc).update_i64((i % 100_000) as i64);
        }
    });
    println!("| distribution.update_i64(v) | {d1:.1} | {d2:.1} |");
    let f1 = best_ns(N / 4, |n| {
        for i in 0..n {
            black_box(&d).update_f64((i % 100_000) as f64 * 0.37);
        }
    });
    println!("| distribution.update_f64(v) | {f1:.1} | - |");
    let lookup = best_ns(200_000, |n| {
        for _ in 0..n {
            g.add_group("grp")
                .unwrap()
                .counter("looked_up")
                .unwrap()
                .inc(1);
        }
    });
    println!("| lookup by name + inc (what handles avoid) | {lookup:.1} | - |");
    println!();
}

fn protocol() {
    // A worker with 50 counters, 25 meters and 25 distributions, each updated per bundle.
    let worker = Registry::default();
    let g = worker.user_group(&[]).unwrap().add_group("udf").unwrap();
    let counters: Vec<_> = (0..50)
        .map(|i| g.counter(&format!("c{i}")).unwrap())
        .collect();
    let meters: Vec<_> = (0..25)
        .map(|i| g.meter(&format!("m{i}"), 60).unwrap())
        .collect();
    let dists: Vec<_> = (0..25)
        .map(|i| g.distribution(&format!("d{i}")).unwrap())
        .collect();
    let mut collector = UpdateCollector::new(worker.clone());
    let defs = collector.collect().encode();
    let bundle = |k: u64| {
        for c in &counters {
            c.inc(1000);
        }
        for m in &meters {
            m.mark_event(1000);
        }
        for d in &dists {
            for v in 0..1000u64 {
                d.update_i64(((v * 7919 + k) % 10_000) as i64);
            }
        }
    };
    bundle(0);
    let batch = collector.collect();
    let bytes = batch.encode();
    println!("## worker update batches (100 metrics: 50 counters, 25 meters, 25 distributions of 1000 values)");
    println!("batch size: {} bytes", bytes.len());
    let enc = best_ns(20_000, |n| {
        let mut out = Vec::with_capacity(bytes.len());
        for _ in 0..n {
            out.clear();
            black_box(&batch).encode_into(&mut out);
        }
    });
    let dec = best_ns(20_000, |n| {
        for _ in 0..n {
            black_box(weir_metrics::protocol::UpdateBatch::decode(black_box(&bytes)).unwrap());
        }
    });
    let engine = Registry::default();
    let mut remote =
        RemoteMetrics::new(&engine, &[("subtask", "0")], AggregationLevel::Subtask).unwrap();
    remote.apply_bytes(&defs).unwrap();
    let merge = best_ns(20_000, |n| {
        for _ in 0..n {
            remote.apply(black_box(&batch)).unwrap();
        }
    });
    let mut k = 1;
    let collect = best_ns(200, |n| {
        for _ in 0..n {
            bundle(k);
            k += 1;
            black_box(collector.collect());
        }
    });
    println!("| step | µs per batch | MB/s |");
    println!("|---|---|---|");
    let mbs = |ns: f64| bytes.len() as f64 / ns * 1e3;
    println!("| encode | {:.2} | {:.0} |", enc / 1e3, mbs(enc));
    println!("| decode | {:.2} | {:.0} |", dec / 1e3, mbs(dec));
    println!(
        "| merge into the engine registry | {:.2} | - |",
        merge / 1e3
    );
    println!("| record 25,000 distribution values + 75 counter/meter updates, then collect | {:.1} | - |", collect / 1e3);
    println!();
}

fn render() {
    println!("## /metrics render (snapshot + text 0.0.4 encoding), counters with 4 labels");
    println!("| series | snapshot ms | encode ms | total ms | series/s | bytes |");
    println!("|---|---|---|---|---|---|");
    for n in [1_000usize, 10_000, 100_000] {
        let r = Registry::new(RegistryOptions {
            cardinality_limit: 1_000_000,
            ..Default::default()
        });
        let g = r
            .user_group(&[("job_name", "bench"), ("operator", "udf")])
            .unwrap();
        for i in 0..n {
            let c = g
                .add_key_group("shard", &(i % 100).to_string())
                .unwrap()
                .with_label("key", &i.to_string())
                .unwrap()
                .counter("requests")
                .unwrap();
            c.inc(i as i64);
        }
        let mut snap_t = Duration::MAX;
        let mut enc_t = Duration::MAX;
        let mut size = 0;
        for _ in 0..5 {
            let t = Instant::now();
            let s = r.snapshot();
            snap_t = snap_t.min(t.elapsed());
            let t = Instant::now();
            let text = prometheus::encode_text(&s);
            enc_t = enc_t.min(t.elapsed());
            size = text.len();
        }
        let total = snap_t + enc_t;
        println!(
            "| {n} | {:.2} | {:.2} | {:.2} | {:.2} M | {size} |",
            snap_t.as_secs_f64() * 1e3,
            enc_t.as_secs_f64() * 1e3,
            total.as_secs_f64() * 1e3,
            n as f64 / total.as_secs_f64() / 1e6
        );
    }
    println!();
}

/// Distributions export a summary, three gauges and a histogram each: what that costs per
/// format, side by side (text and OpenMetrics write classic buckets, protobuf classic and
/// native buckets).
fn render_distributions() {
    println!(
        "## /metrics render of distributions (1,000 values from 1 ms to 10 s each), per format"
    );
    println!("| series | format | encode ms | bytes | bytes/series |");
    println!("|---|---|---|---|---|");
    for n in [100usize, 1_000, 10_000] {
        let r = Registry::new(RegistryOptions {
            cardinality_limit: 1_000_000,
            ..Default::default()
        });
        let g = r
            .user_group(&[("job_name", "bench"), ("operator", "udf")])
            .unwrap();
        for i in 0..n {
            let d = g
                .add_key_group("key", &i.to_string())
                .unwrap()
                .distribution("latency_seconds")
                .unwrap();
            for k in 0..1000u32 {
                d.update_f64(0.001 * 10f64.powf(k as f64 / 250.0));
            }
        }
        let s = r.snapshot();
        for format in [
            prometheus::Format::Text,
            prometheus::Format::OpenMetrics,
            prometheus::Format::Protobuf,
        ] {
            let mut best = Duration::MAX;
            let mut size = 0;
            for _ in 0..5 {
                let t = Instant::now();
                let body = prometheus::encode_bytes(&s, format);
                best = best.min(t.elapsed());
                size = body.len();
            }
            println!(
                "| {n} | {format:?} | {:.2} | {size} | {} |",
                best.as_secs_f64() * 1e3,
                size / n
            );
        }
    }
    println!();
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    updates();
    protocol();
    render();
    render_distributions();
}
