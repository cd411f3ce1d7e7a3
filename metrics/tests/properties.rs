//! Property tests: merge algebra of metric deltas, and decoding of arbitrary bytes.

use proptest::prelude::*;
use weir_metrics::protocol::{Definition, PathPart, Payload, Update, UpdateBatch};
use weir_metrics::remote::{merge_all, AggregationLevel, RemoteMetrics, UpdateCollector};
use weir_metrics::{Distribution, DistributionData, MetricKind, Registry};

/// A distribution delta as a worker would produce it from integer values.
fn delta_of(values: &[i64]) -> DistributionData {
    let d = Distribution::default();
    for &v in values {
        d.update_i64(v);
    }
    d.take_delta()
}

fn values() -> impl Strategy<Value = Vec<i64>> {
    prop::collection::vec(-1_000_000i64..1_000_000, 0..40)
}

proptest! {
    /// Merging the same deltas in any order or grouping gives the same totals.
    #[test]
    fn distribution_merge_is_order_and_grouping_independent(
        parts in prop::collection::vec(values(), 1..8),
        seed in any::<u64>(),
        split in 0usize..8,
    ) {
        let deltas: Vec<_> = parts.iter().map(|p| delta_of(p)).collect();
        let in_order = merge_all(&deltas);

        let mut shuffled = deltas.clone();
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let split = split.min(shuffled.len());
        let mut left = merge_all(&shuffled[..split]);
        let right = merge_all(&shuffled[split..]);
        left.merge(&right);
        prop_assert_eq!(&in_order, &left);

        // And equal to recording every value into one distribution.
        let all: Vec<i64> = parts.concat();
        let direct = delta_of(&all);
        prop_assert_eq!(in_order.count, direct.count);
        prop_assert_eq!(in_order.sum_int, direct.sum_int);
        prop_assert_eq!(&in_order.positive, &direct.positive);
        prop_assert_eq!(&in_order.negative, &direct.negative);
        prop_assert_eq!(in_order.zero, direct.zero);
        if direct.count > 0 {
            prop_assert_eq!(in_order.min, direct.min);
            prop_assert_eq!(in_order.max, direct.max);
        }
    }

    /// Worker -> bytes -> engine, batch by batch, in any order: the engine's totals equal what
    /// the worker recorded, at both aggregation levels.
    #[test]
    fn remote_totals_are_exact(
        steps in prop::collection::vec((-50i64..50, 0u64..20, values()), 1..10),
        reverse in any::<bool>(),
    ) {
        let worker = Registry::default();
        let g = worker.user_group(&[]).unwrap().add_key_group("k", "v").unwrap();
        let c = g.counter("c").unwrap();
        let m = g.meter("m", 60).unwrap();
        let d = g.distribution("d").unwrap();
        let mut collector = UpdateCollector::new(worker.clone());
        // The first batch carries the definitions, the rest only updates.
        let mut batches = vec![collector.collect()];
        let (mut ct, mut mt, mut all) = (0i64, 0u64, Vec::new());
        for (ci, mi, vs) in &steps {
            c.inc(*ci);
            m.mark_event(*mi);
            for &v in vs { d.update_i64(v); }
            ct += ci; mt += mi; all.extend_from_slice(vs);
            batches.push(collector.collect());
        }
        let defs = batches.remove(0);
        if reverse { batches.reverse(); }
        for level in [AggregationLevel::Subtask, AggregationLevel::Operator] {
            let engine = Registry::default();
            let mut remote = RemoteMetrics::new(&engine, &[("subtask", "0")], level).unwrap();
            remote.apply_bytes(&defs.encode()).unwrap();
            for b in &batches {
                remote.apply_bytes(&b.encode()).unwrap();
            }
            let root = engine
                .user_group(if level == AggregationLevel::Subtask { &[("subtask", "0")] } else { &[] })
                .unwrap()
                .add_key_group("k", "v")
                .unwrap();
            prop_assert_eq!(root.counter("c").unwrap().count(), ct);
            prop_assert_eq!(root.meter("m", 60).unwrap().count(), mt);
            let got = root.distribution("d").unwrap().data();
            let want = delta_of(&all);
            prop_assert_eq!(got.count, want.count);
            prop_assert_eq!(got.sum_int, want.sum_int);
            prop_assert_eq!(got.positive, want.positive);
        }
    }

    /// Decoding never panics, whatever the bytes.
    #[test]
    fn decoding_random_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = UpdateBatch::decode(&bytes);
        let mut with_header = b"WM\x01\x00".to_vec();
        with_header.extend_from_slice(&bytes);
        let _ = UpdateBatch::decode(&with_header);
    }

    /// Corrupting any byte of a valid batch gives an error or a batch that still decodes
    /// consistently; it never panics, and applying it never panics.
    #[test]
    fn corrupted_batches_never_panic(at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = sample().encode();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        if let Ok(b) = UpdateBatch::decode(&bytes) {
            let engine = Registry::default();
            let mut remote = RemoteMetrics::new(&engine, &[], AggregationLevel::Subtask).unwrap();
            let _ = remote.apply(&b);
        }
    }
}

fn sample() -> UpdateBatch {
    UpdateBatch {
        definitions: vec![
            Definition {
                id: 0,
                kind: MetricKind::Distribution,
                path: vec![PathPart {
                    name: "g".into(),
                    value: Some("x".into()),
                }],
                name: "d".into(),
                labels: vec![],
                meter_span_secs: 0,
            },
            Definition {
                id: 1,
                kind: MetricKind::Meter,
                path: vec![],
                name: "m".into(),
                labels: vec![("extra".into(), "1".into())],
                meter_span_secs: 30,
            },
        ],
        updates: vec![
            Update {
                id: 0,
                payload: Payload::Distribution(delta_of(&[1, 5, -3, 0, 1_000_000])),
            },
            Update {
                id: 1,
                payload: Payload::Meter(7),
            },
        ],
        dropped: vec![("weir_user_ids_hits".into(), 7)],
    }
}

#[test]
fn bad_batches_change_nothing() {
    let engine = Registry::default();
    let mut remote = RemoteMetrics::new(&engine, &[], AggregationLevel::Subtask).unwrap();
    // An update for an undefined id, after a valid one in the same batch: nothing is applied.
    let mut b = sample();
    b.updates.push(Update {
        id: 9,
        payload: Payload::Counter(1),
    });
    let e = remote.apply(&b).unwrap_err().to_string();
    assert_eq!(e, "metric update batch rejected: update for metric id 9 which was never defined on this channel");
    assert_eq!(engine.series_count(), 0, "nothing was registered");
    // A definition with an invalid name.
    let mut b = sample();
    b.definitions[1].name = "bad name".into();
    let e = remote.apply(&b).unwrap_err().to_string();
    assert!(e.starts_with("metric name `bad name` is not valid"), "{e}");
    assert_eq!(engine.series_count(), 0, "nothing was registered");
    // A payload of the wrong kind.
    let mut b = sample();
    b.updates[1].payload = Payload::Counter(3);
    let e = remote.apply(&b).unwrap_err().to_string();
    assert_eq!(
        e,
        "metric update batch rejected: metric id 1 is a meter but the update is for a counter"
    );
    // The valid batch then applies.
    remote.apply(&sample()).unwrap();
    let d = engine
        .user_group(&[])
        .unwrap()
        .add_key_group("g", "x")
        .unwrap()
        .distribution("d")
        .unwrap();
    assert_eq!(d.data().count, 5);
    // Defining the same id again on the channel is refused.
    let e = remote.apply(&sample()).unwrap_err().to_string();
    assert!(e.contains("metric id 0 is defined twice"), "{e}");
}
