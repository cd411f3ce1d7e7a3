//! OTLP push: a [`Snapshot`] becomes an `ExportMetricsServiceRequest` (built directly from the
//! official protos, so pre-aggregated values and summaries go out exactly), sent over gRPC or
//! HTTP/protobuf.
//!
//! | kind | OTLP metrics (cumulative temporality, start time = series creation) |
//! |---|---|
//! | Counter | `B`: Sum, monotonic unless the counter ever went down |
//! | Gauge | `B`: Gauge |
//! | Meter | `B`: monotonic Sum of events; `B_rate`: Gauge, events per second over the span |
//! | Distribution | `B`: exponential histogram, scale 7, all time, exact min/max; `B_window`: Summary (count and sum all time, quantile 0 = window min, 0.5 … 0.999, 1 = window max) |

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
    summary_data_point::ValueAtQuantile, AggregationTemporality, ExponentialHistogram,
    ExponentialHistogramDataPoint, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    Sum, Summary, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use tonic::transport::{Channel, Endpoint};

use super::http_client;
use crate::buckets;
use crate::config::{OtlpConfig, OtlpProtocol};
use crate::gauge::GaugeValue;
use crate::snapshot::{MetricKind, SeriesSnapshot, SeriesValue, Snapshot};

/// Resource attributes of every export.
#[derive(Clone, Debug)]
pub struct ResourceInfo {
    pub service_name: String,
    pub service_version: String,
    pub job_name: String,
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.to_string()))
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn attributes(s: &SeriesSnapshot) -> Vec<KeyValue> {
    s.labels.iter().map(|(k, v)| string_kv(k, v)).collect()
}

fn number_point(s: &SeriesSnapshot, now: u64, value: number_data_point::Value) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attributes(s),
        start_time_unix_nano: nanos(s.created),
        time_unix_nano: now,
        value: Some(value),
        ..Default::default()
    }
}

fn metric(name: String, description: &str, data: Data) -> Metric {
    Metric {
        name,
        description: description.to_string(),
        data: Some(data),
        ..Default::default()
    }
}

fn cumulative() -> i32 {
    AggregationTemporality::Cumulative as i32
}

/// Turns consecutive bucket indices with counts into OTLP's offset + dense counts.
fn dense(sparse: &[(i32, u64)]) -> Option<Buckets> {
    let first = sparse.first()?.0;
    let last = sparse.last()?.0;
    let mut counts = vec![0u64; (last - first + 1) as usize];
    for &(i, c) in sparse {
        counts[(i - first) as usize] = c;
    }
    Some(Buckets {
        offset: first,
        bucket_counts: counts,
    })
}

/// Builds the request for one snapshot.
pub fn build_request(snapshot: &Snapshot, resource: &ResourceInfo) -> ExportMetricsServiceRequest {
    let now = nanos(snapshot.taken);
    let mut metrics = Vec::new();
    for fam in &snapshot.families {
        if fam.series.is_empty() {
            continue;
        }
        let name = fam.name.to_string();
        match fam.kind {
            MetricKind::Counter => {
                let mut monotonic = true;
                let points = fam
                    .series
                    .iter()
                    .filter_map(|s| match s.value {
                        SeriesValue::Counter {
                            value,
                            monotonic: m,
                        } => {
                            monotonic &= m;
                            Some(number_point(s, now, number_data_point::Value::AsInt(value)))
                        }
                        _ => None,
                    })
                    .collect();
                metrics.push(metric(
                    name,
                    &fam.help,
                    Data::Sum(Sum {
                        data_points: points,
                        aggregation_temporality: cumulative(),
                        is_monotonic: monotonic,
                    }),
                ));
            }
            MetricKind::Gauge => {
                let points = fam
                    .series
                    .iter()
                    .filter_map(|s| match s.value {
                        SeriesValue::Gauge(GaugeValue::Int(i)) => {
                            Some(number_point(s, now, number_data_point::Value::AsInt(i)))
                        }
                        SeriesValue::Gauge(GaugeValue::Float(f)) => {
                            Some(number_point(s, now, number_data_point::Value::AsDouble(f)))
                        }
                        _ => None,
                    })
                    .collect();
                metrics.push(metric(
                    name,
                    &fam.help,
                    Data::Gauge(Gauge {
                        data_points: points,
                    }),
                ));
            }
            MetricKind::Meter => {
                let mut counts = Vec::new();
                let mut rates = Vec::new();
                for s in &fam.series {
                    if let SeriesValue::Meter { count, rate } = s.value {
                        counts.push(number_point(
                            s,
                            now,
                            number_data_point::Value::AsInt(count as i64),
                        ));
                        rates.push(number_point(
                            s,
                            now,
                            number_data_point::Value::AsDouble(rate),
                        ));
                    }
                }
                metrics.push(metric(
                    name.clone(),
                    &fam.help,
                    Data::Sum(Sum {
                        data_points: counts,
                        aggregation_temporality: cumulative(),
                        is_monotonic: true,
                    }),
                ));
                metrics.push(metric(
                    format!("{name}_rate"),
                    &format!(
                        "{} (events per second over the meter's time span)",
                        fam.help
                    ),
                    Data::Gauge(Gauge { data_points: rates }),
                ));
            }
            MetricKind::Distribution => {
                let mut summary = Vec::new();
                let mut histogram = Vec::new();
                for s in &fam.series {
                    let SeriesValue::Distribution(d) = &s.value else {
                        continue;
                    };
                    let mut q = Vec::new();
                    if let Some((lo, _)) = d.window_min_max {
                        q.push(ValueAtQuantile {
                            quantile: 0.0,
                            value: lo,
                        });
                    }
                    q.extend(
                        d.quantiles
                            .iter()
                            .map(|&(quantile, value)| ValueAtQuantile { quantile, value }),
                    );
                    if let Some((_, hi)) = d.window_min_max {
                        q.push(ValueAtQuantile {
                            quantile: 1.0,
                            value: hi,
                        });
                    }
                    summary.push(SummaryDataPoint {
                        attributes: attributes(s),
                        start_time_unix_nano: nanos(s.created),
                        time_unix_nano: now,
                        count: d.data.count,
                        sum: d.data.sum(),
                        quantile_values: q,
                        ..Default::default()
                    });
                    let has = d.data.count > 0;
                    histogram.push(ExponentialHistogramDataPoint {
                        attributes: attributes(s),
                        start_time_unix_nano: nanos(s.created),
                        time_unix_nano: now,
                        count: d.data.count,
                        sum: Some(d.data.sum()),
                        scale: buckets::SCALE,
                        zero_count: d.data.zero,
                        zero_threshold: buckets::ZERO_THRESHOLD,
                        positive: dense(&d.data.positive),
                        negative: dense(&d.data.negative),
                        min: has.then_some(d.data.min),
                        max: has.then_some(d.data.max),
                        ..Default::default()
                    });
                }
                metrics.push(metric(
                    name.clone(),
                    &format!("{} (all time)", fam.help),
                    Data::ExponentialHistogram(ExponentialHistogram {
                        data_points: histogram,
                        aggregation_temporality: cumulative(),
                    }),
                ));
                metrics.push(metric(
                    format!("{name}_window"),
                    &format!(
                        "{} (quantiles over the recent window; 0 and 1 are its min and max)",
                        fam.help
                    ),
                    Data::Summary(Summary {
                        data_points: summary,
                    }),
                ));
            }
        }
    }
    let instance = format!(
        "{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into()),
        std::process::id()
    );
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    string_kv("service.name", &resource.service_name),
                    string_kv("service.version", &resource.service_version),
                    string_kv("service.instance.id", &instance),
                    string_kv("weir.job.name", &resource.job_name),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "weir".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Sends requests to one collector.
pub struct OtlpClient {
    endpoint: String,
    timeout: Duration,
    grpc: Option<MetricsServiceClient<Channel>>,
}

impl OtlpClient {
    /// A client for `cfg` (connects lazily, on the first export).
    pub fn new(cfg: &OtlpConfig) -> Result<Self, String> {
        let grpc = match cfg.protocol {
            OtlpProtocol::Grpc => {
                let ep = Endpoint::from_shared(cfg.endpoint.clone())
                    .map_err(|e| format!("invalid OTLP endpoint `{}`: {e}", cfg.endpoint))?
                    .connect_timeout(cfg.timeout)
                    .timeout(cfg.timeout);
                Some(MetricsServiceClient::new(ep.connect_lazy()))
            }
            OtlpProtocol::Http => {
                http_client::Url::parse(&cfg.endpoint)?;
                None
            }
        };
        Ok(Self {
            endpoint: cfg.endpoint.clone(),
            timeout: cfg.timeout,
            grpc,
        })
    }

    /// Sends one request; the error says what failed.
    pub async fn export(&self, req: ExportMetricsServiceRequest) -> Result<(), String> {
        match &self.grpc {
            Some(client) => {
                let mut client = client.clone();
                let fut = client.export(req);
                match tokio::time::timeout(self.timeout, fut).await {
                    Err(_) => Err(format!(
                        "gRPC export to {} timed out after {:?}",
                        self.endpoint, self.timeout
                    )),
                    Ok(Err(status)) => {
                        Err(format!("gRPC export to {} failed: {status}", self.endpoint))
                    }
                    Ok(Ok(resp)) => match resp.into_inner().partial_success {
                        Some(p) if p.rejected_data_points > 0 => Err(format!(
                            "collector at {} rejected {} data points: {}",
                            self.endpoint, p.rejected_data_points, p.error_message
                        )),
                        _ => Ok(()),
                    },
                }
            }
            None => {
                let body = req.encode_to_vec();
                http_client::send_expecting_success(
                    hyper::Method::POST,
                    &self.endpoint,
                    "application/x-protobuf",
                    body,
                    self.timeout,
                )
                .await
            }
        }
    }
}
