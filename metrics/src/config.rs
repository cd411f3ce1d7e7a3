//! Configuration of the metrics subsystem from string key/value pairs, as the engine and the
//! Python SDK pass them (`get_config().set(key, value)`, `weir sql --set key=value`).
//!
//! Flink's reporter keys are reused where one exists, so a PyFlink job's settings carry over;
//! weir's own settings are under `metrics.weir.*`. Keys outside `metrics.` are not ours and
//! are ignored here; an unknown `metrics.` key or a bad value is an error naming the key and
//! what is accepted. `metrics.reporter.<name>.factory.class` (how Flink picks a reporter
//! implementation) is accepted and ignored.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `metrics.reporters` | `prom` | reporters to run, comma-separated: `prom`, `otel`, `promgateway` (otel and promgateway are also enabled by setting their endpoint) |
//! | `metrics.reporter.prom.host` | `127.0.0.1` | address the `/metrics` endpoint binds to |
//! | `metrics.reporter.prom.port` | `9249-9259` | port, or range `9249-9259` (the first free one is used), or `0` for any free port; unset, a busy 9249 falls back to the next free port of the default range |
//! | `metrics.reporter.otel.exporter.endpoint` | `OTEL_EXPORTER_OTLP_ENDPOINT`, else `http://localhost:4317` (gRPC) / `http://localhost:4318` (HTTP) | OTLP collector URL |
//! | `metrics.reporter.otel.exporter.protocol` | `OTEL_EXPORTER_OTLP_PROTOCOL`, else `gRPC` | `gRPC` or `HTTP` (protobuf to `/v1/metrics`) |
//! | `metrics.reporter.otel.exporter.timeout` | `10 s` | timeout of one export attempt |
//! | `metrics.reporter.otel.interval` | `10 s` | time between exports |
//! | `metrics.reporter.otel.service.name` | `weir` | resource attribute `service.name` |
//! | `metrics.reporter.otel.service.version` | weir's version | resource attribute `service.version` |
//! | `metrics.reporter.promgateway.hostUrl` | none | Pushgateway URL, e.g. `http://localhost:9091` |
//! | `metrics.reporter.promgateway.interval` | `10 s` | time between pushes |
//! | `metrics.reporter.promgateway.jobName` | the job's name | grouping key `job` |
//! | `metrics.reporter.promgateway.groupingKey` | none | more grouping key pairs, `k1=v1;k2=v2` |
//! | `metrics.reporter.promgateway.deleteOnShutdown` | `true` | delete the group when the job ends |
//! | `metrics.weir.cardinality-limit` | `10000` | series per metric family; more are dropped and counted |
//! | `metrics.weir.aggregation-level` | `subtask` | `subtask` (a series per subtask) or `operator` (merged) |
//! | `metrics.weir.name-prefix` | `weir` | first component of every exported name |
//! | `metrics.weir.distribution.window` | `60 s` | window of distribution percentiles |
//! | `metrics.weir.histogram.buckets` | 1, 2.5, 5 per decade, 0.001 to 1000 | classic bucket bounds of every distribution (`none`: no classic buckets) |
//! | `metrics.weir.histogram.buckets.<family>` | the above | classic bounds of one family, by exported name |
//! | `metrics.weir.histogram.native-schema` | `3` | schema of native histograms, -4 to 7 |
//!
//! Durations are written as Flink writes them: `10 s`, `500ms`, `1 min`, `2 h`; a bare number is
//! milliseconds.

use std::time::Duration;

use crate::error::{MetricsError, Result};
use crate::histogram::{parse_bounds, HistogramOptions, MAX_NATIVE_SCHEMA, MIN_NATIVE_SCHEMA};
use crate::registry::{RegistryOptions, DEFAULT_CARDINALITY_LIMIT, DEFAULT_DISTRIBUTION_WINDOW};
use crate::remote::AggregationLevel;

/// OTLP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    Http,
}

/// Settings of the Prometheus endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct PrometheusConfig {
    pub host: String,
    /// First and last port to try.
    pub ports: (u16, u16),
    /// Whether the user chose the port (`metrics.reporter.prom.port`); the default range
    /// is only a preference.
    pub explicit_port: bool,
}

/// The ports tried when `metrics.reporter.prom.port` is not set: Flink's 9249 first, then
/// the next ones, so a second weir process on the machine still gets an endpoint.
pub const DEFAULT_PROMETHEUS_PORTS: (u16, u16) = (9249, 9259);

/// Settings of the OTLP exporter.
#[derive(Clone, Debug, PartialEq)]
pub struct OtlpConfig {
    /// Full URL the export goes to (for HTTP including `/v1/metrics`).
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    pub interval: Duration,
    pub timeout: Duration,
    pub service_name: String,
    pub service_version: String,
}

/// Settings of the Pushgateway exporter.
#[derive(Clone, Debug, PartialEq)]
pub struct PushgatewayConfig {
    pub host_url: String,
    pub interval: Duration,
    pub job_name: Option<String>,
    pub grouping_key: Vec<(String, String)>,
    pub delete_on_shutdown: bool,
}

/// Everything the metrics subsystem can be told.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsConfig {
    pub prometheus: Option<PrometheusConfig>,
    pub otlp: Option<OtlpConfig>,
    pub pushgateway: Option<PushgatewayConfig>,
    pub cardinality_limit: usize,
    pub aggregation_level: AggregationLevel,
    pub name_prefix: String,
    pub distribution_window: Duration,
    pub histograms: HistogramOptions,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig::from_pairs_with_env(std::iter::empty::<(&str, &str)>(), |_| None)
            .expect("defaults are valid")
    }
}

/// Every key this module accepts.
pub const KEYS: &[&str] = &[
    "metrics.reporters",
    "metrics.reporter.prom.host",
    "metrics.reporter.prom.port",
    "metrics.reporter.otel.exporter.endpoint",
    "metrics.reporter.otel.exporter.protocol",
    "metrics.reporter.otel.exporter.timeout",
    "metrics.reporter.otel.interval",
    "metrics.reporter.otel.service.name",
    "metrics.reporter.otel.service.version",
    "metrics.reporter.promgateway.hostUrl",
    "metrics.reporter.promgateway.interval",
    "metrics.reporter.promgateway.jobName",
    "metrics.reporter.promgateway.groupingKey",
    "metrics.reporter.promgateway.deleteOnShutdown",
    "metrics.weir.cardinality-limit",
    "metrics.weir.aggregation-level",
    "metrics.weir.name-prefix",
    "metrics.weir.distribution.window",
    "metrics.weir.histogram.buckets",
    "metrics.weir.histogram.native-schema",
];

/// Prefix of the per-family classic bucket keys:
/// `metrics.weir.histogram.buckets.<exported family name>`.
pub const FAMILY_BUCKETS_PREFIX: &str = "metrics.weir.histogram.buckets.";

fn bad(key: &str, value: &str, detail: impl Into<String>) -> MetricsError {
    MetricsError::Config {
        key: key.into(),
        value: value.into(),
        detail: detail.into(),
    }
}

/// Parses a Flink-style duration: `10 s`, `500ms`, `1 min`, `2 h`, or a bare number of ms.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let ms = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => n,
        "s" | "sec" | "secs" | "second" | "seconds" => n.checked_mul(1000)?,
        "m" | "min" | "mins" | "minute" | "minutes" => n.checked_mul(60_000)?,
        "h" | "hour" | "hours" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(key, v, "expected `true` or `false`")),
    }
}

fn parse_ports(key: &str, v: &str) -> Result<(u16, u16)> {
    let err = || {
        bad(key, v, "expected a port (`9249`), a range (`9249-9259`) of ports 1 to 65535, low to high, or `0` for any free port")
    };
    let (a, b) = match v.split_once('-') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (v.trim(), v.trim()),
    };
    let a: u16 = a.parse().map_err(|_| err())?;
    let b: u16 = b.parse().map_err(|_| err())?;
    // A single `0` asks the OS for any free port (tests, several jobs on one host).
    if (a == 0 && b != 0) || b < a {
        return Err(err());
    }
    Ok((a, b))
}

fn check_url(key: &str, v: &str) -> Result<String> {
    if let Some(rest) = v.strip_prefix("http://") {
        if rest.is_empty() {
            return Err(bad(key, v, "the URL has no host"));
        }
        Ok(v.trim_end_matches('/').to_string())
    } else if v.starts_with("https://") {
        Err(bad(key, v, "https is not supported yet: run the collector or gateway on a plain http:// address (for example a local agent)"))
    } else {
        Err(bad(
            key,
            v,
            "expected a URL such as `http://localhost:4317`",
        ))
    }
}

impl MetricsConfig {
    /// Reads `pairs`, with `OTEL_EXPORTER_OTLP_*` taken from the process environment.
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        Self::from_pairs_with_env(pairs, |k| std::env::var(k).ok())
    }

    /// Reads `pairs`, with environment variables looked up through `env`.
    pub fn from_pairs_with_env<K: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (K, V)>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let mut get = std::collections::BTreeMap::<String, String>::new();
        for (k, v) in pairs {
            let (k, v) = (k.as_ref(), v.as_ref());
            if !k.starts_with("metrics.") {
                continue;
            }
            if k.starts_with("metrics.reporter.") && k.ends_with(".factory.class") {
                continue;
            }
            let family_key = k
                .strip_prefix(FAMILY_BUCKETS_PREFIX)
                .is_some_and(|f| !f.is_empty());
            if !KEYS.contains(&k) && !family_key {
                let hint = KEYS
                    .iter()
                    .find(|known| known.eq_ignore_ascii_case(k))
                    .map(|known| format!(" (did you mean `{known}`?)"))
                    .unwrap_or_default();
                return Err(bad(
                    k,
                    v,
                    format!(
                        "unknown metrics setting{hint}; the accepted keys are: {}",
                        KEYS.join(", ")
                    ),
                ));
            }
            get.insert(k.to_string(), v.trim().to_string());
        }
        let val = |k: &str| get.get(k).map(String::as_str);
        let duration = |k: &str, default: Duration| -> Result<Duration> {
            match val(k) {
                None => Ok(default),
                Some(v) => parse_duration(v).filter(|d| !d.is_zero()).ok_or_else(|| {
                    bad(
                        k,
                        v,
                        "expected a positive duration such as `10 s`, `500 ms` or `1 min`",
                    )
                }),
            }
        };

        // Values are checked even for a reporter that is off, so a typo never waits for the
        // day the reporter is turned on.
        let otel_interval = duration("metrics.reporter.otel.interval", Duration::from_secs(10))?;
        let otel_timeout = duration(
            "metrics.reporter.otel.exporter.timeout",
            Duration::from_secs(10),
        )?;
        let gw_interval = duration(
            "metrics.reporter.promgateway.interval",
            Duration::from_secs(10),
        )?;
        let delete_on_shutdown = match val("metrics.reporter.promgateway.deleteOnShutdown") {
            Some(v) => parse_bool("metrics.reporter.promgateway.deleteOnShutdown", v)?,
            None => true,
        };
        let protocol = match val("metrics.reporter.otel.exporter.protocol") {
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "grpc" => OtlpProtocol::Grpc,
                "http" | "http/protobuf" => OtlpProtocol::Http,
                _ => {
                    return Err(bad(
                        "metrics.reporter.otel.exporter.protocol",
                        v,
                        "expected `gRPC` or `HTTP`",
                    ))
                }
            },
            None => match env("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref() {
                Some("http/protobuf") => OtlpProtocol::Http,
                _ => OtlpProtocol::Grpc,
            },
        };
        let mut reporters = vec!["prom".to_string()];
        if let Some(v) = val("metrics.reporters") {
            reporters = v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            for r in &reporters {
                if !["prom", "otel", "promgateway"].contains(&r.as_str()) {
                    return Err(bad(
                        "metrics.reporters",
                        v,
                        format!("unknown reporter `{r}`; accepted: prom, otel, promgateway"),
                    ));
                }
            }
        }
        let has = |r: &str| reporters.iter().any(|x| x == r);

        let prometheus = if has("prom") {
            let host = val("metrics.reporter.prom.host")
                .unwrap_or("127.0.0.1")
                .to_string();
            if host.is_empty() || host.contains('/') {
                return Err(bad(
                    "metrics.reporter.prom.host",
                    &host,
                    "expected a host name or IP address",
                ));
            }
            let (ports, explicit_port) = match val("metrics.reporter.prom.port") {
                Some(v) => (parse_ports("metrics.reporter.prom.port", v)?, true),
                None => (DEFAULT_PROMETHEUS_PORTS, false),
            };
            Some(PrometheusConfig {
                host,
                ports,
                explicit_port,
            })
        } else {
            None
        };

        let env_endpoint = env("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|s| !s.is_empty());
        let otel_wanted = has("otel")
            || val("metrics.reporter.otel.exporter.endpoint").is_some()
            || env_endpoint.is_some();
        let otlp = if otel_wanted {
            let key = "metrics.reporter.otel.exporter.endpoint";
            let (endpoint, from_base) = match (val(key), env_endpoint) {
                (Some(v), _) => (check_url(key, v)?, false),
                (None, Some(e)) => (check_url("OTEL_EXPORTER_OTLP_ENDPOINT", &e)?, true),
                (None, None) => match protocol {
                    OtlpProtocol::Grpc => ("http://localhost:4317".to_string(), false),
                    OtlpProtocol::Http => ("http://localhost:4318".to_string(), true),
                },
            };
            // As the OTLP exporter spec says: a base endpoint gets the signal path appended
            // for HTTP; a configured endpoint is taken as it is unless it has no path at all.
            let endpoint = if protocol == OtlpProtocol::Http
                && (from_base || !endpoint.trim_start_matches("http://").contains('/'))
            {
                format!("{endpoint}/v1/metrics")
            } else {
                endpoint
            };
            Some(OtlpConfig {
                endpoint,
                protocol,
                interval: otel_interval,
                timeout: otel_timeout,
                service_name: val("metrics.reporter.otel.service.name")
                    .unwrap_or("weir")
                    .to_string(),
                service_version: val("metrics.reporter.otel.service.version")
                    .unwrap_or(env!("CARGO_PKG_VERSION"))
                    .to_string(),
            })
        } else {
            None
        };

        let gw_key = "metrics.reporter.promgateway.hostUrl";
        let pushgateway = if has("promgateway") || val(gw_key).is_some() {
            let host_url = match val(gw_key) {
                Some(v) => check_url(gw_key, v)?,
                None => {
                    return Err(bad(gw_key, "", "the promgateway reporter needs the Pushgateway's URL, e.g. `http://localhost:9091`"))
                }
            };
            let mut grouping_key = Vec::new();
            if let Some(v) = val("metrics.reporter.promgateway.groupingKey") {
                for pair in v.split(';').filter(|p| !p.trim().is_empty()) {
                    let (k, x) = pair.split_once('=').ok_or_else(|| {
                        bad(
                            "metrics.reporter.promgateway.groupingKey",
                            v,
                            "expected `k1=v1;k2=v2`",
                        )
                    })?;
                    crate::name::validate_label_key(k.trim()).map_err(|e| {
                        bad("metrics.reporter.promgateway.groupingKey", v, e.to_string())
                    })?;
                    grouping_key.push((k.trim().to_string(), x.trim().to_string()));
                }
            }
            Some(PushgatewayConfig {
                host_url,
                interval: gw_interval,
                job_name: val("metrics.reporter.promgateway.jobName").map(str::to_string),
                grouping_key,
                delete_on_shutdown,
            })
        } else {
            None
        };

        let cardinality_limit = match val("metrics.weir.cardinality-limit") {
            Some(v) => v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                bad(
                    "metrics.weir.cardinality-limit",
                    v,
                    "expected a positive whole number",
                )
            })?,
            None => DEFAULT_CARDINALITY_LIMIT,
        };
        let aggregation_level = match val("metrics.weir.aggregation-level") {
            Some(v) => AggregationLevel::parse(v).ok_or_else(|| {
                bad(
                    "metrics.weir.aggregation-level",
                    v,
                    "expected `subtask` or `operator`",
                )
            })?,
            None => AggregationLevel::default(),
        };
        let name_prefix = val("metrics.weir.name-prefix")
            .unwrap_or("weir")
            .to_string();
        crate::name::validate_name(crate::NameKind::Group, &name_prefix)
            .map_err(|e| bad("metrics.weir.name-prefix", &name_prefix, e.to_string()))?;
        let mut histograms = HistogramOptions::default();
        if let Some(v) = val("metrics.weir.histogram.buckets") {
            histograms.bounds =
                parse_bounds(v).map_err(|e| bad("metrics.weir.histogram.buckets", v, e))?;
        }
        for (k, v) in &get {
            if let Some(family) = k.strip_prefix(FAMILY_BUCKETS_PREFIX) {
                crate::name::validate_name(crate::NameKind::Metric, family).map_err(|e| {
                    bad(
                        k,
                        v,
                        format!("`{family}` is not an exported family name: {e}"),
                    )
                })?;
                let bounds = parse_bounds(v).map_err(|e| bad(k, v, e))?;
                histograms.family_bounds.insert(family.to_string(), bounds);
            }
        }
        if let Some(v) = val("metrics.weir.histogram.native-schema") {
            histograms.native_schema = v
                .parse::<i32>()
                .ok()
                .filter(|s| (MIN_NATIVE_SCHEMA..=MAX_NATIVE_SCHEMA).contains(s))
                .ok_or_else(|| {
                    bad(
                        "metrics.weir.histogram.native-schema",
                        v,
                        format!("expected a whole number from {MIN_NATIVE_SCHEMA} to {MAX_NATIVE_SCHEMA} (each step up doubles the buckets per power of two)"),
                    )
                })?;
        }
        Ok(MetricsConfig {
            prometheus,
            otlp,
            pushgateway,
            cardinality_limit,
            aggregation_level,
            name_prefix,
            histograms,
            distribution_window: duration(
                "metrics.weir.distribution.window",
                DEFAULT_DISTRIBUTION_WINDOW,
            )?,
        })
    }

    /// The registry settings this configuration implies.
    pub fn registry_options(&self) -> RegistryOptions {
        RegistryOptions {
            prefix: self.name_prefix.clone(),
            cardinality_limit: self.cardinality_limit,
            distribution_window: self.distribution_window,
            histograms: std::sync::Arc::new(self.histograms.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<MetricsConfig> {
        MetricsConfig::from_pairs_with_env(pairs.iter().copied(), |_| None)
    }

    #[test]
    fn defaults() {
        let c = cfg(&[]).unwrap();
        assert_eq!(
            c.prometheus,
            Some(PrometheusConfig {
                host: "127.0.0.1".into(),
                ports: (9249, 9259),
                explicit_port: false,
            })
        );
        assert!(c.otlp.is_none() && c.pushgateway.is_none());
        assert_eq!(c.cardinality_limit, 10_000);
        assert_eq!(c.aggregation_level, AggregationLevel::Subtask);
        assert_eq!(c.distribution_window, Duration::from_secs(60));
    }

    #[test]
    fn flink_keys_carry_over() {
        let c = cfg(&[
            (
                "metrics.reporter.prom.factory.class",
                "org.apache.flink.metrics.prometheus.PrometheusReporterFactory",
            ),
            ("metrics.reporter.prom.port", "9250-9260"),
            (
                "metrics.reporter.otel.exporter.endpoint",
                "http://collector:4318",
            ),
            ("metrics.reporter.otel.exporter.protocol", "HTTP"),
            ("metrics.reporter.otel.interval", "5 s"),
            (
                "metrics.reporter.promgateway.hostUrl",
                "http://localhost:9091",
            ),
            ("metrics.reporter.promgateway.deleteOnShutdown", "false"),
            (
                "metrics.reporter.promgateway.groupingKey",
                "env=prod;team=ml",
            ),
            ("parallelism.default", "2"),
        ])
        .unwrap();
        assert_eq!(c.prometheus.unwrap().ports, (9250, 9260));
        let o = c.otlp.unwrap();
        assert_eq!(o.endpoint, "http://collector:4318/v1/metrics");
        assert_eq!(o.protocol, OtlpProtocol::Http);
        assert_eq!(o.interval, Duration::from_secs(5));
        let p = c.pushgateway.unwrap();
        assert!(!p.delete_on_shutdown);
        assert_eq!(
            p.grouping_key,
            vec![("env".into(), "prod".into()), ("team".into(), "ml".into())]
        );
    }

    #[test]
    fn env_endpoint_enables_otlp() {
        let c = MetricsConfig::from_pairs_with_env(std::iter::empty::<(&str, &str)>(), |k| {
            (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://127.0.0.1:4317".to_string())
        })
        .unwrap();
        assert_eq!(c.otlp.unwrap().endpoint, "http://127.0.0.1:4317");
    }

    #[test]
    fn errors_name_the_key_and_the_accepted_values() {
        let e = cfg(&[("metrics.reporter.prom.prot", "1")])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "configuration `metrics.reporter.prom.prot` = \"1\": unknown metrics setting"
            ),
            "{e}"
        );
        let e = cfg(&[("metrics.weir.aggregation-level", "job")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected `subtask` or `operator`"), "{e}");
        let e = cfg(&[("metrics.reporter.prom.port", "9260-9250")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("a range (`9249-9259`)"), "{e}");
        let e = cfg(&[("metrics.reporter.otel.interval", "soon")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`metrics.reporter.otel.interval`") && e.contains("positive duration"),
            "{e}"
        );
        let e = cfg(&[("metrics.reporter.otel.exporter.protocol", "udp")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected `gRPC` or `HTTP`"), "{e}");
        let e = cfg(&[("metrics.reporters", "prom,jmx")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown reporter `jmx`"), "{e}");
        let e = cfg(&[("metrics.weir.Cardinality-Limit", "5")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("did you mean `metrics.weir.cardinality-limit`"),
            "{e}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10 s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1 min"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("250"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("ten"), None);
    }
}
