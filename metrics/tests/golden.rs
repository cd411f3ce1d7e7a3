//! Golden files for the wire and text formats: the exact bytes weir writes for a fixed
//! snapshot and a fixed update batch. A change to either format shows up as a diff here;
//! regenerate on purpose with `UPDATE_GOLDEN=1 cargo test -p weir-metrics --test golden`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use weir_metrics::protocol::{Definition, PathPart, Payload, Update, UpdateBatch};
use weir_metrics::{
    prometheus, render_labels, Distribution, FamilySnapshot, GaugeValue, Labels, MetricKind,
    SeriesSnapshot, SeriesValue, Snapshot,
};

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    assert_eq!(actual, want, "{name} differs from its golden file");
}

fn series(labels: &[(&str, &str)], value: SeriesValue) -> SeriesSnapshot {
    let labels: Labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    SeriesSnapshot {
        label_text: render_labels(&labels).into(),
        labels,
        created: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        value,
    }
}

fn family(name: &str, kind: MetricKind, series: Vec<SeriesSnapshot>) -> FamilySnapshot {
    FamilySnapshot {
        name: name.into(),
        help: Arc::from(format!("{} {name}", kind.as_str())),
        kind,
        series,
    }
}

fn snapshot() -> Snapshot {
    let base = [
        ("job_name", "wordcount"),
        ("operator", "score"),
        ("subtask", "0"),
    ];
    let d = Distribution::default();
    for v in [1, 2, 3, 4, 100] {
        d.update_i64(v);
    }
    d.update_f64(0.5);
    let dist = d.snapshot(Duration::from_secs(60));
    Snapshot {
        taken: UNIX_EPOCH + Duration::from_secs(1_700_000_100),
        histograms: Default::default(),
        families: vec![
            family(
                "weir_user_rows",
                MetricKind::Counter,
                vec![
                    series(
                        &base,
                        SeriesValue::Counter {
                            value: 1234,
                            monotonic: true,
                        },
                    ),
                    series(
                        &[
                            ("job_name", "wordcount"),
                            ("note", "a \"quoted\" \\ value\nwith a newline"),
                        ],
                        SeriesValue::Counter {
                            value: -2,
                            monotonic: false,
                        },
                    ),
                ],
            ),
            family(
                "weir_user_queue_fill",
                MetricKind::Gauge,
                vec![
                    series(&base, SeriesValue::Gauge(GaugeValue::Float(0.25))),
                    series(&[("subtask", "1")], SeriesValue::Gauge(GaugeValue::Int(-7))),
                    series(
                        &[("subtask", "2")],
                        SeriesValue::Gauge(GaugeValue::Float(f64::NAN)),
                    ),
                ],
            ),
            family(
                "weir_user_parser_tokens",
                MetricKind::Meter,
                vec![series(
                    &base,
                    SeriesValue::Meter {
                        count: 600,
                        rate: 10.0,
                    },
                )],
            ),
            family(
                "weir_user_lang_latency_seconds",
                MetricKind::Distribution,
                vec![series(
                    &[("job_name", "wordcount"), ("lang", "en")],
                    SeriesValue::Distribution(Box::new(dist)),
                )],
            ),
            family("weir_user_empty", MetricKind::Counter, vec![]),
        ],
    }
}

#[test]
fn text_format() {
    golden("exposition.txt", &prometheus::encode_text(&snapshot()));
}

#[test]
fn openmetrics_format() {
    golden(
        "exposition.om.txt",
        &prometheus::encode_openmetrics(&snapshot()),
    );
}

#[test]
fn update_batch_bytes() {
    let d = Distribution::default();
    for v in [10.0, 2.0, -1.5, 0.0] {
        d.update_f64(v);
    }
    let batch = UpdateBatch {
        definitions: vec![
            Definition {
                id: 0,
                kind: MetricKind::Counter,
                path: vec![PathPart {
                    name: "my_group".into(),
                    value: None,
                }],
                name: "rows".into(),
                labels: vec![],
                meter_span_secs: 0,
            },
            Definition {
                id: 1,
                kind: MetricKind::Meter,
                path: vec![PathPart {
                    name: "key".into(),
                    value: Some("value".into()),
                }],
                name: "events".into(),
                labels: vec![],
                meter_span_secs: 60,
            },
            Definition {
                id: 2,
                kind: MetricKind::Distribution,
                path: vec![],
                name: "latency".into(),
                labels: vec![],
                meter_span_secs: 0,
            },
        ],
        updates: vec![
            Update {
                id: 0,
                payload: Payload::Counter(-2),
            },
            Update {
                id: 1,
                payload: Payload::Meter(3),
            },
            Update {
                id: 2,
                payload: Payload::Distribution(d.take_delta()),
            },
            Update {
                id: 3,
                payload: Payload::Gauge {
                    value: GaugeValue::Int(42),
                    timestamp_ms: 1_700_000_000_000,
                },
            },
        ],
        dropped: Vec::new(),
    };
    let bytes = batch.encode();
    let hex: String = bytes
        .chunks(16)
        .map(|c| {
            c.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
                + "\n"
        })
        .collect();
    golden("update_batch.hex", &hex);
    assert_eq!(UpdateBatch::decode(&bytes).unwrap(), batch);
}
