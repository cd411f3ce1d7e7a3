//! The registry: every exported family and series, the naming scheme, clash detection, the
//! cardinality limit and scope removal. Registration takes a lock; updates through the
//! returned handles never do.
//!
//! # Naming scheme
//! An exported name is `<prefix>_<namespace>_<group>_..._<name>`, joined with `_`:
//! - `prefix` is `metrics.weir.name-prefix` (default `weir`);
//! - `namespace` is `user` for everything a UDF registers, and the subsystem (`operator`,
//!   `job`, `udf`, `metrics`, ...) for weir's own metrics. weir never registers its own metrics
//!   under `user`, so user metrics cannot collide with the engine's.
//! - each `add_group(name)` adds `name`; `add_group(key, value)` adds `key` to the name and
//!   `key="value"` to the labels.
//!
//! `ctx.get_metric_group().add_group("parser").add_group("lang", "en").counter("rows")` in a
//! UDF is exported as `weir_user_parser_lang_rows_total{lang="en",job_name=..,operator=..,subtask=..}`.
//!
//! Units are part of the metric name the user chooses (`latency_ms`); weir adds only the
//! suffixes Prometheus defines (`_total`, `_sum`, `_count`) and its own `_rate`, `_min`, `_max`,
//! `_mean` (see the Prometheus encoder).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use crate::counter::Counter;
use crate::distribution::Distribution;
use crate::error::{MetricsError, NameKind, Result};
use crate::gauge::Gauge;
use crate::histogram::HistogramOptions;
use crate::meter::Meter;
use crate::name::{validate_label_key, validate_label_value, validate_name};
use crate::protocol::PathPart;
use crate::snapshot::{FamilySnapshot, Labels, MetricKind, SeriesSnapshot, SeriesValue, Snapshot};

/// Default limit of series per family.
pub const DEFAULT_CARDINALITY_LIMIT: usize = 10_000;
/// Default window of distribution percentiles.
pub const DEFAULT_DISTRIBUTION_WINDOW: Duration = Duration::from_secs(60);
/// The namespace of user metrics.
pub const USER_NAMESPACE: &str = "user";

/// Settings of a registry.
#[derive(Clone, Debug)]
pub struct RegistryOptions {
    /// First component of every exported name.
    pub prefix: String,
    /// Series per family beyond which new series are dropped.
    pub cardinality_limit: usize,
    /// Window of distribution percentiles.
    pub distribution_window: Duration,
    /// How distributions are exported as histograms.
    pub histograms: Arc<HistogramOptions>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            prefix: "weir".into(),
            cardinality_limit: DEFAULT_CARDINALITY_LIMIT,
            distribution_window: DEFAULT_DISTRIBUTION_WINDOW,
            histograms: Arc::default(),
        }
    }
}

/// A registered metric handle of any kind.
#[derive(Clone, Debug)]
pub enum Metric {
    Counter(Counter),
    Gauge(Gauge),
    Meter(Meter),
    Distribution(Distribution),
}

impl Metric {
    /// Its kind.
    pub fn kind(&self) -> MetricKind {
        match self {
            Metric::Counter(_) => MetricKind::Counter,
            Metric::Gauge(_) => MetricKind::Gauge,
            Metric::Meter(_) => MetricKind::Meter,
            Metric::Distribution(_) => MetricKind::Distribution,
        }
    }
}

/// What to create when a series is registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricSpec {
    Counter,
    Gauge,
    Meter { span_secs: u32 },
    Distribution,
}

impl MetricSpec {
    pub fn kind(self) -> MetricKind {
        match self {
            MetricSpec::Counter => MetricKind::Counter,
            MetricSpec::Gauge => MetricKind::Gauge,
            MetricSpec::Meter { .. } => MetricKind::Meter,
            MetricSpec::Distribution => MetricKind::Distribution,
        }
    }

    fn create(self) -> Metric {
        match self {
            MetricSpec::Counter => Metric::Counter(Counter::default()),
            MetricSpec::Gauge => Metric::Gauge(Gauge::default()),
            MetricSpec::Meter { span_secs } => Metric::Meter(Meter::new(span_secs)),
            MetricSpec::Distribution => Metric::Distribution(Distribution::default()),
        }
    }
}

/// Where a registration comes from: the group's name path, labels and scopes.
pub(crate) struct Origin<'a> {
    pub namespace: &'a str,
    pub names: &'a [String],
    pub parts: &'a Arc<[PathPart]>,
    pub labels: &'a BTreeMap<String, String>,
    pub scopes: &'a Arc<[u64]>,
}

/// A series and where it was registered (what a worker sends as its definition).
#[derive(Clone, Debug)]
pub struct SeriesInfo {
    pub parts: Arc<[PathPart]>,
    pub name: Arc<str>,
    pub labels: Labels,
    pub meter_span_secs: u32,
    pub metric: Metric,
}

/// One series as stored.
pub struct Series {
    parts: Arc<[PathPart]>,
    name: Arc<str>,
    labels: Labels,
    label_text: Arc<str>,
    metric: Metric,
    scopes: Arc<[u64]>,
    created: SystemTime,
}

struct Family {
    name: Arc<str>,
    help: Arc<str>,
    kind: MetricKind,
    /// `namespace.group.name`, to tell two different paths that export the same name.
    origin: String,
    meter_span: u32,
    series: Vec<Series>,
    index: HashMap<Labels, usize>,
    over_limit_logged: bool,
}

#[derive(Default)]
struct State {
    families: BTreeMap<Arc<str>, Family>,
    /// Every sample or family name a family exports, mapped to that family's base name.
    reserved: HashMap<String, Arc<str>>,
}

struct Inner {
    options: RegistryOptions,
    state: RwLock<State>,
    next_scope: AtomicU64,
    last_window_rotation: Mutex<Option<Instant>>,
    /// Bumped on every new series, so a worker's collector knows when to look for new ones.
    generation: AtomicU64,
}

/// All metrics of one process, and the one place exporters read from.
///
/// ```
/// use weir_metrics::Registry;
/// let registry = Registry::default();
/// let group = registry.user_group(&[("job_name", "wordcount")]).unwrap();
/// let rows = group.add_group("parser").unwrap().counter("rows").unwrap();
/// rows.inc(1);
/// let snap = registry.snapshot();
/// assert!(snap.families.iter().any(|f| &*f.name == "weir_user_parser_rows"));
/// ```
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new(RegistryOptions::default())
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("options", &self.inner.options)
            .finish()
    }
}

fn sample_names(kind: MetricKind, base: &str) -> Vec<String> {
    let suffixes: &[&str] = match kind {
        MetricKind::Counter => &["", "_total", "_created"],
        MetricKind::Gauge => &[""],
        MetricKind::Meter => &["", "_total", "_created", "_rate"],
        MetricKind::Distribution => &[
            "",
            "_bucket",
            "_sum",
            "_count",
            "_created",
            "_window",
            "_window_sum",
            "_window_count",
            "_window_created",
            "_min",
            "_max",
            "_mean",
        ],
    };
    suffixes.iter().map(|s| format!("{base}{s}")).collect()
}

/// Renders label pairs as `a="x",b="y"`, escaping as the Prometheus text format requires.
pub fn render_labels(labels: &[(String, String)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(k);
        s.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s
}

impl Registry {
    /// A registry with the given options.
    pub fn new(options: RegistryOptions) -> Self {
        Registry {
            inner: Arc::new(Inner {
                options,
                state: RwLock::new(State::default()),
                next_scope: AtomicU64::new(1),
                last_window_rotation: Mutex::new(None),
                generation: AtomicU64::new(0),
            }),
        }
    }

    /// Whether `other` is this registry (a clone of it), not merely an equal one.
    pub fn same_as(&self, other: &Registry) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Its options.
    pub fn options(&self) -> &RegistryOptions {
        &self.inner.options
    }

    pub(crate) fn new_scope_id(&self) -> u64 {
        self.inner.next_scope.fetch_add(1, Relaxed)
    }

    fn base_name(&self, origin: &Origin<'_>, name: &str) -> String {
        let mut s = format!("{}_{}", self.inner.options.prefix, origin.namespace);
        for n in origin.names {
            let _ = write!(s, "_{n}");
        }
        let _ = write!(s, "_{name}");
        s
    }

    /// Registers (or finds) the series `name` under `origin`. Same name, kind and labels give
    /// the same handle; a different kind, or another path that exports the same name, is an
    /// error. A gauge with a callback replaces the callback of an existing series.
    pub(crate) fn register(
        &self,
        origin: &Origin<'_>,
        name: &str,
        spec: MetricSpec,
        given: Option<Metric>,
        help: Option<&str>,
    ) -> Result<Metric> {
        self.register_kept(origin, name, spec, given, help)
            .map(|(m, _)| m)
    }

    /// As [`Registry::register`], and whether the series was kept (false: refused over the
    /// cardinality limit, counted, and the handle returned is not exported).
    pub(crate) fn register_kept(
        &self,
        origin: &Origin<'_>,
        name: &str,
        spec: MetricSpec,
        given: Option<Metric>,
        help: Option<&str>,
    ) -> Result<(Metric, bool)> {
        validate_name(NameKind::Metric, name)?;
        for (k, v) in origin.labels {
            validate_label_key(k)?;
            validate_label_value(k, v)?;
        }
        let kind = spec.kind();
        let base = self.base_name(origin, name);
        let mut human = origin.namespace.to_string();
        for n in origin.names {
            human.push('.');
            human.push_str(n);
        }
        human.push('.');
        human.push_str(name);
        let labels: Labels = origin
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();

        let mut dropped_family: Option<Arc<str>> = None;
        let result = {
            let mut st = self.inner.state.write().unwrap_or_else(|p| p.into_inner());
            let st = &mut *st;
            if let Some(fam) = st.families.get_mut(base.as_str()) {
                if fam.kind != kind {
                    return Err(MetricsError::Clash {
                        name: base,
                        detail: format!(
                            "`{}` is already registered as a {}; register this {} under another name",
                            fam.origin,
                            fam.kind.as_str(),
                            kind.as_str()
                        ),
                    });
                }
                if fam.origin != human {
                    return Err(MetricsError::Clash {
                        name: base,
                        detail: format!(
                            "`{}` and `{human}` both export this name; rename a group or the metric",
                            fam.origin
                        ),
                    });
                }
                if let MetricSpec::Meter { span_secs } = spec {
                    if span_secs != fam.meter_span {
                        return Err(MetricsError::Clash {
                            name: base,
                            detail: format!(
                                "meter `{human}` already has a time span of {} s, not {span_secs} s",
                                fam.meter_span
                            ),
                        });
                    }
                }
                if let Some(&i) = fam.index.get(&labels) {
                    let s = &mut fam.series[i];
                    if let Some(m) = given {
                        s.metric = m;
                    }
                    return Ok((s.metric.clone(), true));
                }
                // The count of dropped series has one series per family that dropped any:
                // bounded by the number of families, and limiting it would recurse.
                let counts_drops = origin.namespace == "metrics" && name == "series_dropped";
                if fam.series.len() >= self.inner.options.cardinality_limit && !counts_drops {
                    if !fam.over_limit_logged {
                        fam.over_limit_logged = true;
                        tracing::warn!(
                            "metric `{base}` has reached the limit of {} series (metrics.weir.cardinality-limit); new series are dropped, counted in weir_metrics_series_dropped_total",
                            self.inner.options.cardinality_limit
                        );
                    }
                    dropped_family = Some(fam.name.clone());
                    Ok((given.unwrap_or_else(|| spec.create()), false))
                } else {
                    let metric = given.unwrap_or_else(|| spec.create());
                    push_series(fam, origin, name, labels, metric.clone());
                    self.inner.generation.fetch_add(1, Relaxed);
                    Ok((metric, true))
                }
            } else {
                let reserved = sample_names(kind, &base);
                for r in &reserved {
                    if let Some(owner) = st.reserved.get(r) {
                        let other = &st.families[owner];
                        return Err(MetricsError::Clash {
                            name: base.clone(),
                            detail: format!(
                                "the {} `{human}` would export `{r}`, which the {} `{}` already exports; rename one of them",
                                kind.as_str(),
                                other.kind.as_str(),
                                other.origin
                            ),
                        });
                    }
                }
                let base: Arc<str> = base.into();
                for r in reserved {
                    st.reserved.insert(r, base.clone());
                }
                let help = match help {
                    Some(h) => h.to_string(),
                    None => format!("{} {human}", kind.as_str()),
                };
                let mut fam = Family {
                    name: base.clone(),
                    help: help.into(),
                    kind,
                    origin: human,
                    meter_span: match spec {
                        MetricSpec::Meter { span_secs } => span_secs,
                        _ => 0,
                    },
                    series: Vec::new(),
                    index: HashMap::new(),
                    over_limit_logged: false,
                };
                let metric = given.unwrap_or_else(|| spec.create());
                push_series(&mut fam, origin, name, labels, metric.clone());
                self.inner.generation.fetch_add(1, Relaxed);
                st.families.insert(base, fam);
                Ok((metric, true))
            }
        };
        if let Some(fam) = dropped_family {
            self.count_dropped(&fam, 1);
        }
        result
    }

    /// Adds `n` to `weir_metrics_series_dropped_total{metric=family}`: series another registry
    /// (a worker's) refused over its cardinality limit.
    pub fn add_dropped(&self, family: &str, n: u64) {
        if n > 0 {
            self.count_dropped(family, n);
        }
    }

    fn count_dropped(&self, family: &str, n: u64) {
        // Registered here, not through a group: a group kept in the registry would hold the
        // registry and leak it.
        let labels = BTreeMap::from([("metric".to_string(), family.to_string())]);
        let parts: Arc<[PathPart]> = Arc::from(Vec::new());
        let scopes: Arc<[u64]> = Arc::from(vec![self.new_scope_id()]);
        let origin = Origin {
            namespace: "metrics",
            names: &[],
            parts: &parts,
            labels: &labels,
            scopes: &scopes,
        };
        if let Ok(Metric::Counter(c)) = self.register(
            &origin,
            "series_dropped",
            MetricSpec::Counter,
            None,
            Some(
                "Series not registered because their family reached metrics.weir.cardinality-limit",
            ),
        ) {
            c.inc(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Removes every series registered under the scope `id` (a group and its subgroups).
    /// Families left without series disappear, freeing their names.
    pub fn remove_scope(&self, id: u64) {
        self.remove_where(|s| s.scopes.contains(&id));
    }

    /// Removes every series carrying the label `key="value"` (all series of a job that
    /// ended, whatever group registered them). Families left without series disappear.
    /// Returns how many series were removed.
    pub fn remove_labelled(&self, key: &str, value: &str) -> usize {
        self.remove_where(|s| s.labels.iter().any(|(k, v)| k == key && v == value))
    }

    fn remove_where(&self, gone: impl Fn(&Series) -> bool) -> usize {
        let mut st = self.inner.state.write().unwrap_or_else(|p| p.into_inner());
        let st = &mut *st;
        let mut emptied = Vec::new();
        let mut removed = 0;
        for fam in st.families.values_mut() {
            let before = fam.series.len();
            fam.series.retain(|s| !gone(s));
            if fam.series.len() == before {
                continue;
            }
            removed += before - fam.series.len();
            fam.index = fam
                .series
                .iter()
                .enumerate()
                .map(|(i, s)| (s.labels.clone(), i))
                .collect();
            if fam.series.is_empty() {
                emptied.push(fam.name.clone());
            }
        }
        for name in emptied {
            if let Some(fam) = st.families.remove(&name) {
                for r in sample_names(fam.kind, &fam.name) {
                    st.reserved.remove(&r);
                }
            }
        }
        removed
    }

    /// A number that changes whenever a series is registered.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Relaxed)
    }

    /// Every series of the `namespace`, with where it was registered, in registration order
    /// per family.
    pub fn series_in(&self, namespace: &str) -> Vec<SeriesInfo> {
        let st = self.inner.state.read().unwrap_or_else(|p| p.into_inner());
        st.families
            .values()
            .filter(|f| f.origin.split('.').next() == Some(namespace))
            .flat_map(|f| {
                f.series.iter().map(move |s| SeriesInfo {
                    parts: s.parts.clone(),
                    name: s.name.clone(),
                    labels: s.labels.clone(),
                    meter_span_secs: f.meter_span,
                    metric: s.metric.clone(),
                })
            })
            .collect()
    }

    /// Number of series in all families.
    pub fn series_count(&self) -> usize {
        let st = self.inner.state.read().unwrap_or_else(|p| p.into_inner());
        st.families.values().map(|f| f.series.len()).sum()
    }

    /// Periodic upkeep, once a second: samples meters for their rates and saves distribution
    /// states for windowed percentiles. Exporters run it; tests call it with their own clock.
    pub fn tick(&self, now: Instant) {
        let window = self.inner.options.distribution_window;
        let rotate = {
            let mut last = self
                .inner
                .last_window_rotation
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let due = last.is_none_or(|t| now.saturating_duration_since(t) >= window / 6);
            if due {
                *last = Some(now);
            }
            due
        };
        let st = self.inner.state.read().unwrap_or_else(|p| p.into_inner());
        for fam in st.families.values() {
            for s in &fam.series {
                match &s.metric {
                    Metric::Meter(m) => m.sample(now),
                    Metric::Distribution(d) if rotate => d.rotate_window(now, window),
                    _ => {}
                }
            }
        }
    }

    /// Reads every series. Gauge callbacks run after the registry lock is released, so a
    /// callback may itself register metrics.
    pub fn snapshot(&self) -> Snapshot {
        let plan: Vec<FamilyPlan> = {
            let st = self.inner.state.read().unwrap_or_else(|p| p.into_inner());
            st.families
                .values()
                .map(|f| {
                    (
                        f.name.clone(),
                        f.help.clone(),
                        f.kind,
                        f.series
                            .iter()
                            .map(|s| {
                                (
                                    s.labels.clone(),
                                    s.label_text.clone(),
                                    s.created,
                                    s.metric.clone(),
                                )
                            })
                            .collect(),
                    )
                })
                .collect()
        };
        let now = Instant::now();
        let window = self.inner.options.distribution_window;
        let families = plan
            .into_iter()
            .map(|(name, help, kind, series)| {
                let series = series
                    .into_iter()
                    .filter_map(|(labels, label_text, created, metric)| {
                        let value = match &metric {
                            Metric::Counter(c) => SeriesValue::Counter {
                                value: c.count(),
                                monotonic: !c.went_down(),
                            },
                            Metric::Gauge(g) => {
                                let shown = SeriesName(&name, &label_text);
                                SeriesValue::Gauge(g.read_for_export(&shown)?)
                            }
                            Metric::Meter(m) => SeriesValue::Meter {
                                count: m.count(),
                                rate: m.rate_at(now),
                            },
                            Metric::Distribution(d) => {
                                SeriesValue::Distribution(Box::new(d.snapshot_at(now, window)))
                            }
                        };
                        Some(SeriesSnapshot {
                            labels,
                            label_text,
                            created,
                            value,
                        })
                    })
                    .collect();
                FamilySnapshot {
                    name,
                    help,
                    kind,
                    series,
                }
            })
            .collect();
        Snapshot {
            taken: SystemTime::now(),
            histograms: self.inner.options.histograms.clone(),
            families,
        }
    }
}

/// What a snapshot copies of a series under the lock.
type SeriesPlan = (Labels, Arc<str>, SystemTime, Metric);
/// What a snapshot copies of a family under the lock.
type FamilyPlan = (Arc<str>, Arc<str>, MetricKind, Vec<SeriesPlan>);

struct SeriesName<'a>(&'a str, &'a str);

impl std::fmt::Display for SeriesName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}{{{}}}`", self.0, self.1)
    }
}

fn push_series(fam: &mut Family, origin: &Origin<'_>, name: &str, labels: Labels, metric: Metric) {
    let label_text: Arc<str> = render_labels(&labels).into();
    fam.index.insert(labels.clone(), fam.series.len());
    fam.series.push(Series {
        parts: origin.parts.clone(),
        name: name.into(),
        labels,
        label_text,
        metric,
        scopes: origin.scopes.clone(),
        created: SystemTime::now(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prometheus::encode_text;

    fn reg(limit: usize) -> Registry {
        Registry::new(RegistryOptions {
            cardinality_limit: limit,
            ..Default::default()
        })
    }

    #[test]
    fn pyflink_group_paths_and_labels() {
        let r = Registry::default();
        let root = r
            .user_group(&[("job_name", "j"), ("subtask", "0")])
            .unwrap();
        root.add_group("my_group")
            .unwrap()
            .counter("my_counter")
            .unwrap()
            .inc(1);
        let kv = root.add_key_group("key", "value").unwrap();
        kv.counter("my_counter").unwrap().inc(2);
        // A key group may not take a label weir adds: the series would lose weir's value (or
        // carry `quantile` twice, which Prometheus refuses).
        for key in ["subtask", "job_name", "operator", "quantile", "le"] {
            let e = root.add_key_group(key, "7").err().unwrap().to_string();
            assert!(e.contains("is a label weir adds itself"), "{e}");
        }
        let text = encode_text(&r.snapshot());
        assert!(
            text.contains("weir_user_my_group_my_counter_total{job_name=\"j\",subtask=\"0\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "weir_user_key_my_counter_total{job_name=\"j\",key=\"value\",subtask=\"0\"} 2\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn same_name_same_kind_is_the_same_metric() {
        let r = Registry::default();
        let g = r.user_group(&[]).unwrap();
        g.counter("n").unwrap().inc(1);
        g.counter("n").unwrap().inc(1);
        assert_eq!(g.counter("n").unwrap().count(), 2);
        assert_eq!(r.series_count(), 1);
    }

    #[test]
    fn clashes_are_errors_that_say_what_to_change() {
        let r = Registry::default();
        let g = r.user_group(&[]).unwrap();
        g.counter("hits").unwrap();
        let e = g.meter("hits", 60).unwrap_err().to_string();
        assert_eq!(
            e,
            "metric `weir_user_hits` clashes: `user.hits` is already registered as a counter; register this meter under another name"
        );
        // A gauge whose name is one of the distribution's exported names.
        g.distribution("lat").unwrap();
        let e = g.gauge("lat_max").unwrap_err().to_string();
        assert!(e.contains("would export `weir_user_lat_max`, which the distribution `user.lat` already exports"), "{e}");
        // Two paths that join to the same name.
        g.add_group("a_b").unwrap().counter("c").unwrap();
        let e = g
            .add_group("a")
            .unwrap()
            .counter("b_c")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`user.a_b.c` and `user.a.b_c` both export this name"),
            "{e}"
        );
        // Meters with different spans.
        g.meter("m", 60).unwrap();
        assert!(g
            .meter("m", 10)
            .unwrap_err()
            .to_string()
            .contains("time span of 60 s"));
    }

    #[test]
    fn user_metrics_cannot_collide_with_weirs_own() {
        let r = Registry::default();
        assert!(r.system_group("user", &[]).is_err());
        let sys = r.system_group("operator", &[]).unwrap();
        sys.counter("records_in").unwrap();
        // The same words in a UDF land under `user`.
        let u = r.user_group(&[]).unwrap().add_group("operator").unwrap();
        u.counter("records_in").unwrap().inc(1);
        let names: Vec<_> = r
            .snapshot()
            .families
            .iter()
            .map(|f| f.name.to_string())
            .collect();
        assert!(names.contains(&"weir_operator_records_in".to_string()));
        assert!(names.contains(&"weir_user_operator_records_in".to_string()));
    }

    #[test]
    fn invalid_names_are_refused() {
        let r = Registry::default();
        let g = r.user_group(&[]).unwrap();
        let e = g.counter("rows seen").unwrap_err().to_string();
        assert_eq!(
            e,
            "metric name `rows seen` is not valid: use ASCII letters, digits and `_`, starting with a letter, at most 128 characters"
        );
        assert!(g
            .add_group("my-group")
            .unwrap_err()
            .to_string()
            .starts_with("group name `my-group`"));
        assert!(g.add_key_group("k", "").is_err());
        assert!(r.user_group(&[("__name__", "x")]).is_err());
    }

    #[test]
    fn cardinality_limit_drops_and_counts() {
        let r = reg(3);
        let g = r.user_group(&[]).unwrap();
        for i in 0..5 {
            let c = g
                .add_key_group("id", &i.to_string())
                .unwrap()
                .counter("c")
                .unwrap();
            c.inc(1); // dropped handles still work, they are just not exported
            assert_eq!(c.count(), 1);
        }
        let snap = r.snapshot();
        let fam = snap
            .families
            .iter()
            .find(|f| &*f.name == "weir_user_id_c")
            .unwrap();
        assert_eq!(fam.series.len(), 3);
        let text = encode_text(&snap);
        assert!(
            text.contains("weir_metrics_series_dropped_total{metric=\"weir_user_id_c\"} 2\n"),
            "{text}"
        );
    }

    #[test]
    fn the_dropped_series_count_is_never_itself_dropped() {
        // With a limit of 1, the second family that drops a series would need a second
        // series of the dropped count: it must be counted, not dropped (nor recurse).
        let r = reg(1);
        let g = r.user_group(&[]).unwrap();
        for family in ["a", "b", "c"] {
            for i in 0..3 {
                g.add_key_group("id", &i.to_string())
                    .unwrap()
                    .counter(family)
                    .unwrap();
            }
        }
        let text = encode_text(&r.snapshot());
        for family in ["a", "b", "c"] {
            let line = format!(
                "weir_metrics_series_dropped_total{{metric=\"weir_user_id_{family}\"}} 2\n"
            );
            assert!(text.contains(&line), "{line} missing in {text}");
        }
    }

    #[test]
    fn closing_a_scope_removes_its_series_and_frees_names() {
        let r = Registry::default();
        let op1 = r.user_group(&[("operator", "a")]).unwrap();
        let op2 = r.user_group(&[("operator", "b")]).unwrap();
        op1.add_group("g").unwrap().counter("c").unwrap().inc(1);
        op2.add_group("g").unwrap().counter("c").unwrap().inc(1);
        op1.gauge("only_a").unwrap().set_i64(1);
        op1.close();
        let snap = r.snapshot();
        let fam = snap
            .families
            .iter()
            .find(|f| &*f.name == "weir_user_g_c")
            .unwrap();
        assert_eq!(fam.series.len(), 1);
        assert_eq!(&*fam.series[0].label_text, "operator=\"b\"");
        assert!(!snap.families.iter().any(|f| &*f.name == "weir_user_only_a"));
        // The freed name can now be another kind.
        op2.counter("only_a").unwrap();
    }

    #[test]
    fn failing_gauge_is_left_out_of_the_export() {
        let r = Registry::default();
        let g = r.user_group(&[]).unwrap();
        g.gauge_fn("bad", || Err("ZeroDivisionError: division by zero".into()))
            .unwrap();
        g.gauge_fn("good", || Ok(crate::GaugeValue::Float(1.5)))
            .unwrap();
        let text = encode_text(&r.snapshot());
        assert!(!text.contains("weir_user_bad "), "{text}");
        assert!(text.contains("weir_user_good 1.5\n"), "{text}");
    }

    #[test]
    fn a_registry_is_freed_when_its_last_handle_goes() {
        // The fuzzer found a registry kept alive by a group of its own.
        let r = Registry::default();
        let weak = Arc::downgrade(&r.inner);
        r.user_group(&[]).unwrap().counter("c").unwrap();
        drop(r);
        assert!(weak.upgrade().is_none());
    }

    #[test]
    fn tick_drives_meter_rates() {
        let r = Registry::default();
        let m = r.user_group(&[]).unwrap().meter("m", 10).unwrap();
        let t0 = Instant::now();
        for s in 1..=20 {
            m.mark_event(10);
            r.tick(t0 + Duration::from_secs(s));
        }
        let rate = m.rate_at(t0 + Duration::from_secs(20));
        assert!((rate - 10.0).abs() < 1e-9, "{rate}");
    }
}
