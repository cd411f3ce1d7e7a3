//! Metrics that live in another process: a worker's [`UpdateCollector`] turns its local metrics
//! into [`UpdateBatch`]es of deltas; the engine's [`RemoteMetrics`] (one per worker channel)
//! merges them into its registry under the operator's labels, at the configured
//! [`AggregationLevel`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::distribution::DistributionData;
use crate::error::{MetricsError, NameKind, Result};
use crate::group::MetricGroup;
use crate::name::{validate_label_key, validate_label_value, validate_name};
use crate::protocol::{Definition, Payload, Update, UpdateBatch};
use crate::registry::{Metric, MetricSpec, Registry, USER_NAMESPACE};
use crate::snapshot::MetricKind;

/// How finely the engine keeps metrics that come from several subtasks of one operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AggregationLevel {
    /// One series per subtask, with a `subtask` label (the default: what Flink users see, and
    /// per-subtask skew stays visible).
    #[default]
    Subtask,
    /// One series per operator: the `subtask` label is dropped and updates of all subtasks are
    /// merged (distribution buckets add, so operator percentiles are exact; a gauge keeps the
    /// most recent value by timestamp).
    Operator,
}

impl AggregationLevel {
    /// Parses `subtask` or `operator`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "subtask" => Some(Self::Subtask),
            "operator" => Some(Self::Operator),
            _ => None,
        }
    }
}

/// Label carrying the subtask index, dropped at [`AggregationLevel::Operator`].
pub const SUBTASK_LABEL: &str = "subtask";

enum Sent {
    Counter(i64),
    Meter(u64),
    Distribution,
    Gauge,
}

/// Worker side: produces the deltas of a registry's user metrics since the previous call.
///
/// The worker's distributions are emptied by each collection (their values now live in the
/// engine); counters and meters keep their local totals, so `get_count()` in a UDF still reads
/// what this worker counted.
pub struct UpdateCollector {
    registry: Registry,
    seen_generation: Option<u64>,
    ids: HashMap<usize, u32>,
    /// Per id: the metric, what was last sent, and its name for messages.
    sent: Vec<(Metric, Sent, String)>,
    /// The registry's own counts of dropped series, per family, and what was last sent.
    drops: Vec<(String, crate::Counter, i64)>,
}

/// The gauges of a collector, to be read apart from it ([`UpdateCollector::gauges`]): reading
/// runs callbacks, which must not hold up the channel.
pub struct GaugeReads(Vec<(u32, crate::Gauge, String)>);

impl GaugeReads {
    /// Reads every gauge now (a failing callback is left out, and logged).
    pub fn read(&self) -> UpdateBatch {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        UpdateBatch {
            updates: self
                .0
                .iter()
                .filter_map(|(id, g, shown)| {
                    g.read_for_export(shown).map(|value| Update {
                        id: *id,
                        payload: Payload::Gauge {
                            value,
                            timestamp_ms: now_ms,
                        },
                    })
                })
                .collect(),
            ..UpdateBatch::default()
        }
    }
}

fn metric_key(m: &Metric) -> usize {
    match m {
        Metric::Counter(c) => Arc::as_ptr(&c.0) as usize,
        Metric::Gauge(g) => Arc::as_ptr(&g.0) as *const u8 as usize,
        Metric::Meter(x) => Arc::as_ptr(&x.0) as usize,
        Metric::Distribution(d) => Arc::as_ptr(&d.0) as usize,
    }
}

impl UpdateCollector {
    /// Collects from the `user` namespace of `registry`.
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            seen_generation: None,
            ids: HashMap::new(),
            sent: Vec::new(),
            drops: Vec::new(),
        }
    }

    /// The definitions of new metrics and the changes since the last call, gauges read too
    /// (a failing callback is left out).
    pub fn collect(&mut self) -> UpdateBatch {
        let mut batch = self.collect_deltas();
        let (defs, gauges) = self.gauges();
        batch.definitions.extend(defs.definitions);
        batch.updates.extend(gauges.read().updates);
        batch
    }

    /// The definitions of new metrics and what counters, meters and distributions changed
    /// since the last call, plus series dropped over the cardinality limit; no gauge is read.
    /// This is what a bundle's result carries.
    pub fn collect_deltas(&mut self) -> UpdateBatch {
        let mut batch = UpdateBatch::default();
        self.define_new(&mut batch);
        for (id, (metric, sent, _)) in self.sent.iter_mut().enumerate() {
            let id = id as u32;
            let payload = match (metric, sent) {
                (Metric::Counter(c), Sent::Counter(prev)) => {
                    let now = c.count();
                    let d = now.wrapping_sub(*prev);
                    *prev = now;
                    (d != 0).then_some(Payload::Counter(d))
                }
                (Metric::Meter(m), Sent::Meter(prev)) => {
                    let now = m.count();
                    let d = now.wrapping_sub(*prev);
                    *prev = now;
                    (d != 0).then_some(Payload::Meter(d))
                }
                (Metric::Distribution(dist), Sent::Distribution) => {
                    let d = dist.take_delta();
                    (d.count != 0).then_some(Payload::Distribution(d))
                }
                _ => None,
            };
            if let Some(payload) = payload {
                batch.updates.push(Update { id, payload });
            }
        }
        for (family, counter, sent) in &mut self.drops {
            let now = counter.count();
            if now > *sent {
                batch.dropped.push((family.clone(), (now - *sent) as u64));
                *sent = now;
            }
        }
        batch
    }

    /// The definitions of new metrics (to be sent before any value of theirs) and the gauges
    /// to read, apart from this collector, when values are wanted.
    pub fn gauges(&mut self) -> (UpdateBatch, GaugeReads) {
        let mut batch = UpdateBatch::default();
        self.define_new(&mut batch);
        let gauges = self
            .sent
            .iter()
            .enumerate()
            .filter_map(|(id, (m, _, shown))| match m {
                Metric::Gauge(g) => Some((id as u32, g.clone(), shown.clone())),
                _ => None,
            })
            .collect();
        (batch, GaugeReads(gauges))
    }

    /// Definitions for the series registered since the last look.
    fn define_new(&mut self, batch: &mut UpdateBatch) {
        let generation = self.registry.generation();
        if self.seen_generation != Some(generation) {
            self.seen_generation = Some(generation);
            for info in self.registry.series_in(USER_NAMESPACE) {
                let key = metric_key(&info.metric);
                if self.ids.contains_key(&key) {
                    continue;
                }
                let id = self.sent.len() as u32;
                self.ids.insert(key, id);
                let kind = info.metric.kind();
                let path_labels: Vec<&str> = info
                    .parts
                    .iter()
                    .filter(|p| p.value.is_some())
                    .map(|p| p.name.as_str())
                    .collect();
                batch.definitions.push(Definition {
                    id,
                    kind,
                    path: info.parts.to_vec(),
                    name: info.name.to_string(),
                    labels: info
                        .labels
                        .iter()
                        .filter(|(k, _)| !path_labels.contains(&k.as_str()))
                        .cloned()
                        .collect(),
                    meter_span_secs: info.meter_span_secs,
                });
                let sent = match kind {
                    MetricKind::Counter => Sent::Counter(0),
                    MetricKind::Meter => Sent::Meter(0),
                    MetricKind::Distribution => Sent::Distribution,
                    MetricKind::Gauge => Sent::Gauge,
                };
                let mut shown = String::from("`");
                for p in info.parts.iter() {
                    shown.push_str(&p.name);
                    shown.push('.');
                }
                shown.push_str(&info.name);
                shown.push('`');
                self.sent.push((info.metric, sent, shown));
            }
            for info in self.registry.series_in("metrics") {
                let (Metric::Counter(c), Some(family)) = (
                    &info.metric,
                    info.labels
                        .iter()
                        .find(|(k, _)| k == "metric")
                        .map(|(_, v)| v),
                ) else {
                    continue;
                };
                if &*info.name == "series_dropped"
                    && !self.drops.iter().any(|(f, _, _)| f == family)
                {
                    self.drops.push((family.clone(), c.clone(), 0));
                }
            }
        }
    }
}

/// Engine side: the metrics of one worker channel, merged into the engine's registry.
///
/// ```
/// use weir_metrics::{Registry, remote::{AggregationLevel, RemoteMetrics, UpdateCollector}};
/// // In the worker:
/// let worker = Registry::default();
/// let rows = worker.user_group(&[]).unwrap().counter("rows").unwrap();
/// let mut collector = UpdateCollector::new(worker);
/// rows.inc(5);
/// let bytes = collector.collect().encode();
/// // In the engine:
/// let engine = Registry::default();
/// let labels = [("job_name", "j"), ("operator", "f"), ("subtask", "0")];
/// let mut remote = RemoteMetrics::new(&engine, &labels, AggregationLevel::Subtask).unwrap();
/// remote.apply_bytes(&bytes).unwrap();
/// let text = weir_metrics::prometheus::encode_text(&engine.snapshot());
/// assert!(text.contains(r#"weir_user_rows_total{job_name="j",operator="f",subtask="0"} 5"#));
/// ```
pub struct RemoteMetrics {
    registry: Registry,
    root: MetricGroup,
    table: HashMap<u32, Metric>,
}

impl RemoteMetrics {
    /// Metrics of one worker, registered under `labels` (the `subtask` label is dropped at
    /// [`AggregationLevel::Operator`]).
    pub fn new(
        registry: &Registry,
        labels: &[(&str, &str)],
        level: AggregationLevel,
    ) -> Result<Self> {
        let labels: Vec<(&str, &str)> = labels
            .iter()
            .copied()
            .filter(|(k, _)| level == AggregationLevel::Subtask || *k != SUBTASK_LABEL)
            .collect();
        Ok(Self {
            registry: registry.clone(),
            root: registry.user_group(&labels)?,
            table: HashMap::new(),
        })
    }

    /// Decodes and merges a batch.
    pub fn apply_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.apply(&UpdateBatch::decode(bytes)?)
    }

    /// Merges a batch. The batch is checked whole before anything is applied: a batch that
    /// defines an invalid metric or updates an unknown one changes nothing.
    pub fn apply(&mut self, batch: &UpdateBatch) -> Result<()> {
        for (i, d) in batch.definitions.iter().enumerate() {
            if self.table.contains_key(&d.id) || batch.definitions[..i].iter().any(|e| e.id == d.id)
            {
                return Err(MetricsError::Protocol(format!(
                    "metric id {} is defined twice",
                    d.id
                )));
            }
        }
        let kind_of = |id: u32| {
            self.table.get(&id).map(Metric::kind).or_else(|| {
                batch
                    .definitions
                    .iter()
                    .find(|d| d.id == id)
                    .map(|d| d.kind)
            })
        };
        for u in &batch.updates {
            match kind_of(u.id) {
                None => {
                    return Err(MetricsError::Protocol(format!(
                        "update for metric id {} which was never defined on this channel",
                        u.id
                    )))
                }
                Some(k) if k != u.payload.kind() => {
                    return Err(MetricsError::Protocol(format!(
                        "metric id {} is a {} but the update is for a {}",
                        u.id,
                        k.as_str(),
                        u.payload.kind().as_str()
                    )))
                }
                Some(_) => {}
            }
        }
        for d in &batch.definitions {
            validate_definition(d)?;
        }
        let user_prefix = format!("{}_{USER_NAMESPACE}_", self.registry.options().prefix);
        for (family, _) in &batch.dropped {
            if !family.starts_with(&user_prefix) {
                return Err(MetricsError::Protocol(format!(
                    "dropped series reported for `{family}`, which is not a user metric"
                )));
            }
            validate_name(NameKind::Metric, family)?;
        }
        for d in &batch.definitions {
            let m = self.resolve(d)?;
            self.table.insert(d.id, m);
        }
        for Update { id, payload } in &batch.updates {
            merge(&self.table[id], payload);
        }
        for (family, n) in &batch.dropped {
            self.registry.add_dropped(family, *n);
        }
        Ok(())
    }

    fn resolve(&self, d: &Definition) -> Result<Metric> {
        let mut g = self.root.clone();
        for p in &d.path {
            g = match &p.value {
                Some(v) => g.add_key_group(&p.name, v)?,
                None => g.add_group(&p.name)?,
            };
        }
        for (k, v) in &d.labels {
            // Extra labels are applied as key groups would be, without joining the name.
            g = g.with_label(k, v)?;
        }
        let spec = match d.kind {
            MetricKind::Counter => MetricSpec::Counter,
            MetricKind::Gauge => MetricSpec::Gauge,
            MetricKind::Meter => MetricSpec::Meter {
                span_secs: d.meter_span_secs,
            },
            MetricKind::Distribution => MetricSpec::Distribution,
        };
        g.register(&d.name, spec)
    }

    /// Removes this worker's series from the exports. Call it when the operator ends, not when a
    /// worker restarts: a replacement worker's `RemoteMetrics` with the same labels finds the
    /// same series, so totals go on across restarts. At [`AggregationLevel::Operator`] the
    /// series are shared by all subtasks: close them all together.
    pub fn close(&self) {
        self.root.close();
    }
}

/// Checks every name in a definition before anything is registered.
fn validate_definition(d: &Definition) -> Result<()> {
    for p in &d.path {
        validate_name(NameKind::Group, &p.name)?;
        if let Some(v) = &p.value {
            validate_label_key(&p.name)?;
            validate_label_value(&p.name, v)?;
        }
    }
    for (k, v) in &d.labels {
        validate_label_key(k)?;
        validate_label_value(k, v)?;
    }
    validate_name(NameKind::Metric, &d.name)
}

/// Adds one delta into a local metric. Counter and meter deltas add, distribution deltas
/// merge, a gauge takes the value unless it already holds a newer one.
pub fn merge(metric: &Metric, payload: &Payload) {
    match (metric, payload) {
        (Metric::Counter(c), Payload::Counter(d)) => c.inc(*d),
        (Metric::Meter(m), Payload::Meter(n)) => m.mark_event(*n),
        (Metric::Distribution(x), Payload::Distribution(d)) => x.merge(d),
        (
            Metric::Gauge(g),
            Payload::Gauge {
                value,
                timestamp_ms,
            },
        ) => g.set_if_newer(*value, *timestamp_ms),
        _ => {}
    }
}

/// Merges a sequence of distribution deltas into one (used by tests and by the engine when it
/// combines bundles).
pub fn merge_all<'a>(deltas: impl IntoIterator<Item = &'a DistributionData>) -> DistributionData {
    let mut total = DistributionData::empty();
    for d in deltas {
        total.merge(d);
    }
    total
}
