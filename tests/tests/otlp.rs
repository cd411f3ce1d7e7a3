//! OTLP push to real receivers built on the official protos: a tonic gRPC `MetricsService`
//! and an HTTP handler for `/v1/metrics`. Every kind's data points, the resource attributes,
//! the final export on shutdown, and a dead or silent collector that must not stall anything.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, Metric,
};
use prost::Message;
use tokio::sync::Notify;
use weir_metrics::config::MetricsConfig;
use weir_metrics::export::Reporters;
use weir_metrics::{GaugeValue, Registry};

#[derive(Clone, Default)]
struct Received {
    requests: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
    arrived: Arc<Notify>,
}

impl Received {
    fn push(&self, r: ExportMetricsServiceRequest) {
        self.requests.lock().unwrap().push(r);
        self.arrived.notify_waiters();
    }

    fn all(&self) -> Vec<ExportMetricsServiceRequest> {
        self.requests.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize) {
        let guard = tokio::time::timeout(Duration::from_secs(30), async {
            while self.requests.lock().unwrap().len() < n {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        guard
            .await
            .expect("the receiver got no export (hang guard)");
    }
}

#[tonic::async_trait]
impl MetricsService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

async fn grpc_receiver() -> (Received, String) {
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = MetricsServiceServer::new(received.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (received, format!("http://{addr}"))
}

async fn http_receiver() -> (Received, String) {
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let r = received.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let r = r.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let r = r.clone();
                        async move {
                            let ok = req.uri().path() == "/v1/metrics"
                                && req.headers()["content-type"] == "application/x-protobuf";
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let status = match (ok, ExportMetricsServiceRequest::decode(body)) {
                                (true, Ok(m)) => {
                                    r.push(m);
                                    200
                                }
                                _ => 400,
                            };
                            let answer = ExportMetricsServiceResponse::default().encode_to_vec();
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/x-protobuf")
                                    .body(Full::new(Bytes::from(answer)))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (received, format!("http://{addr}"))
}

fn config(endpoint: &str, protocol: &str, interval: &str) -> MetricsConfig {
    MetricsConfig::from_pairs([
        ("metrics.reporters", "otel"),
        ("metrics.reporter.otel.exporter.endpoint", endpoint),
        ("metrics.reporter.otel.exporter.protocol", protocol),
        ("metrics.reporter.otel.interval", interval),
        ("metrics.reporter.otel.exporter.timeout", "500 ms"),
    ])
    .unwrap()
}

/// One of each kind, with known values.
fn register(registry: &Registry) {
    let g = registry
        .user_group(&[
            ("job_name", "otlp-test"),
            ("operator", "udf"),
            ("subtask", "0"),
        ])
        .unwrap()
        .add_group("my_group")
        .unwrap();
    g.counter("rows").unwrap().inc(5);
    let down = g.counter("balance").unwrap();
    down.inc(3);
    down.dec(5);
    g.gauge("temperature").unwrap().set_f64(21.5);
    g.gauge_fn("queue", || Ok(GaugeValue::Int(7))).unwrap();
    g.meter("events", 60).unwrap().mark_event(3);
    let d = g
        .add_key_group("stage", "parse")
        .unwrap()
        .distribution("latency")
        .unwrap();
    d.update_i64(10);
    d.update_i64(2);
    d.update_f64(-1.5);
}

fn find<'a>(req: &'a ExportMetricsServiceRequest, name: &str) -> &'a Metric {
    req.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no metric {name}"))
}

fn number(p: &opentelemetry_proto::tonic::metrics::v1::NumberDataPoint) -> f64 {
    match p.value {
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        Some(number_data_point::Value::AsDouble(f)) => f,
        None => f64::NAN,
    }
}

fn check_request(req: &ExportMetricsServiceRequest, rows: i64) {
    let rm = &req.resource_metrics[0];
    let attrs: Vec<(String, String)> = rm
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some((kv.key.clone(), s.clone())),
            _ => None,
        })
        .collect();
    assert!(
        attrs.contains(&("service.name".into(), "weir".into())),
        "{attrs:?}"
    );
    assert!(
        attrs.contains(&("weir.job.name".into(), "otlp-test".into())),
        "{attrs:?}"
    );
    let cumulative = AggregationTemporality::Cumulative as i32;

    let Some(Data::Sum(s)) = &find(req, "weir_user_my_group_rows").data else {
        panic!("rows is a Sum")
    };
    assert!(s.is_monotonic);
    assert_eq!(s.aggregation_temporality, cumulative);
    assert_eq!(number(&s.data_points[0]), rows as f64);
    let labels: Vec<_> = s.data_points[0]
        .attributes
        .iter()
        .map(|kv| kv.key.as_str())
        .collect();
    assert_eq!(labels, ["job_name", "operator", "subtask"]);
    assert!(s.data_points[0].start_time_unix_nano > 0);
    assert!(s.data_points[0].time_unix_nano >= s.data_points[0].start_time_unix_nano);

    let Some(Data::Sum(s)) = &find(req, "weir_user_my_group_balance").data else {
        panic!("Sum")
    };
    assert!(
        !s.is_monotonic,
        "a counter that went down is a non-monotonic sum"
    );
    assert_eq!(number(&s.data_points[0]), -2.0);

    let Some(Data::Gauge(g)) = &find(req, "weir_user_my_group_temperature").data else {
        panic!("Gauge")
    };
    assert_eq!(
        g.data_points[0].value,
        Some(number_data_point::Value::AsDouble(21.5))
    );
    let Some(Data::Gauge(g)) = &find(req, "weir_user_my_group_queue").data else {
        panic!("Gauge")
    };
    assert_eq!(
        g.data_points[0].value,
        Some(number_data_point::Value::AsInt(7))
    );

    let Some(Data::Sum(s)) = &find(req, "weir_user_my_group_events").data else {
        panic!("meter Sum")
    };
    assert!(s.is_monotonic);
    assert_eq!(number(&s.data_points[0]), 3.0);
    let Some(Data::Gauge(g)) = &find(req, "weir_user_my_group_events_rate").data else {
        panic!("rate")
    };
    assert!(number(&g.data_points[0]) > 0.0);

    let Some(Data::Summary(s)) = &find(req, "weir_user_my_group_stage_latency_window").data else {
        panic!("Summary")
    };
    let p = &s.data_points[0];
    assert_eq!((p.count, p.sum), (3, 10.5));
    let qs: Vec<f64> = p.quantile_values.iter().map(|q| q.quantile).collect();
    assert_eq!(qs, [0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0]);
    assert_eq!(p.quantile_values[0].value, -1.5, "quantile 0 is the min");
    assert_eq!(p.quantile_values[6].value, 10.0, "quantile 1 is the max");
    assert!(p.attributes.iter().any(|kv| kv.key == "stage"));

    let Some(Data::ExponentialHistogram(h)) = &find(req, "weir_user_my_group_stage_latency").data
    else {
        panic!("ExponentialHistogram")
    };
    assert_eq!(h.aggregation_temporality, cumulative);
    let p = &h.data_points[0];
    assert_eq!(
        (p.count, p.sum, p.min, p.max, p.scale),
        (3, Some(10.5), Some(-1.5), Some(10.0), 7)
    );
    let pos: u64 = p.positive.as_ref().unwrap().bucket_counts.iter().sum();
    let neg: u64 = p.negative.as_ref().unwrap().bucket_counts.iter().sum();
    assert_eq!((pos, neg, p.zero_count), (2, 1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_receiver_gets_every_kind_and_a_final_export() {
    let (received, endpoint) = grpc_receiver().await;
    let registry = Registry::default();
    register(&registry);
    let reporters =
        Reporters::start(&registry, &config(&endpoint, "gRPC", "200 ms"), "otlp-test").unwrap();
    received.wait_for(1).await;
    check_request(&received.all()[0], 5);
    // An update after the last periodic export still arrives: with the final export.
    let rows = registry
        .user_group(&[
            ("job_name", "otlp-test"),
            ("operator", "udf"),
            ("subtask", "0"),
        ])
        .unwrap();
    rows.add_group("my_group")
        .unwrap()
        .counter("rows")
        .unwrap()
        .inc(1);
    reporters.shutdown().await;
    let all = received.all();
    check_request(all.last().unwrap(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_receiver_gets_every_kind() {
    let (received, endpoint) = http_receiver().await;
    let registry = Registry::default();
    register(&registry);
    // The interval is far away: the only export is the final one at shutdown.
    let reporters =
        Reporters::start(&registry, &config(&endpoint, "HTTP", "1 h"), "otlp-test").unwrap();
    reporters.shutdown().await;
    let all = received.all();
    assert_eq!(all.len(), 1, "exactly the final export");
    check_request(&all[0], 5);
}

/// Runs a million counter and distribution updates while the exporter fails; they all land,
/// the failures are counted, and shutdown returns.
async fn updates_go_on_while(endpoint: &str, protocol: &str) {
    let registry = Registry::default();
    let reporters =
        Reporters::start(&registry, &config(endpoint, protocol, "50 ms"), "otlp-test").unwrap();
    let g = registry.user_group(&[]).unwrap();
    let (c, d) = (g.counter("n").unwrap(), g.distribution("v").unwrap());
    let worker = std::thread::spawn(move || {
        for i in 0..1_000_000i64 {
            c.inc(1);
            d.update_i64(i % 1000);
        }
        (c.count(), d.data().count)
    });
    // Wait (bounded) until the exporter has failed at least once.
    let failures = || {
        weir_metrics::prometheus::encode_text(&registry.snapshot())
            .lines()
            .find(|l| l.starts_with("weir_metrics_export_failures_total{exporter=\"otlp\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    tokio::time::timeout(Duration::from_secs(30), async {
        while failures() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the exporter never reported a failure (hang guard)");
    let (n, count) = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || worker.join().unwrap()),
    )
    .await
    .expect("updates stalled while the collector failed (hang guard)")
    .unwrap();
    assert_eq!((n, count), (1_000_000, 1_000_000));
    tokio::time::timeout(Duration::from_secs(30), reporters.shutdown())
        .await
        .expect("shutdown with a dead collector returns (hang guard)");
    assert!(failures() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_grpc_collector_does_not_stall_updates() {
    // Nothing listens on this port.
    let port = weir_e2e::free_port();
    updates_go_on_while(&format!("http://127.0.0.1:{port}"), "gRPC").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_http_collector_does_not_stall_updates() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    updates_go_on_while(&format!("http://{addr}"), "HTTP").await;
}

#[test]
fn starting_outside_a_runtime_is_an_error_not_a_panic() {
    let registry = Registry::default();
    let e = Reporters::start(&registry, &MetricsConfig::default(), "j")
        .err()
        .expect("no runtime");
    assert!(e.to_string().contains("inside a tokio runtime"), "{e}");
}
