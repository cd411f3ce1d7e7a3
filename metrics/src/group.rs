//! Metric groups: the scopes a UDF registers its metrics in, as PyFlink's `MetricGroup`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::counter::Counter;
use crate::distribution::Distribution;
use crate::error::{MetricsError, NameKind, Result};
use crate::gauge::{Gauge, GaugeValue};
use crate::meter::Meter;
use crate::name::{
    validate_label_key, validate_label_value, validate_name, validate_user_label_key,
};
use crate::protocol::PathPart;
use crate::registry::{Metric, MetricSpec, Origin, Registry, USER_NAMESPACE};

/// A scope of metrics: a path of group names and a set of variables (labels).
///
/// `add_group(name)` gives a child group (the same child when asked again);
/// `add_key_group(key, value)` is PyFlink's `add_group(key, value)`: `key` joins the metric
/// name and `key="value"` becomes a label, overriding a variable `key` of an outer group for
/// this subtree.
///
/// ```
/// use weir_metrics::Registry;
/// let registry = Registry::default();
/// let root = registry.user_group(&[("job_name", "j"), ("subtask", "0")]).unwrap();
/// let g = root.add_key_group("country", "fr").unwrap();
/// assert_eq!(g.metric_identifier("hits"), "weir_user_country_hits");
/// assert_eq!(g.variables().get("country").map(String::as_str), Some("fr"));
/// let again = root.add_key_group("country", "fr").unwrap();
/// again.counter("hits").unwrap().inc(2);
/// assert_eq!(g.counter("hits").unwrap().count(), 2);
/// ```
#[derive(Clone)]
pub struct MetricGroup {
    registry: Registry,
    node: Arc<GroupNode>,
}

/// A child group: its name, and its value for a key group.
type ChildKey = (String, Option<String>);

/// Child groups a group remembers (see `child`).
const MAX_CACHED_CHILDREN: usize = 10_000;

struct GroupNode {
    namespace: String,
    names: Vec<String>,
    parts: Arc<[PathPart]>,
    labels: BTreeMap<String, String>,
    /// Ids of this group and all its ancestors.
    scopes: Arc<[u64]>,
    children: Mutex<HashMap<ChildKey, Arc<GroupNode>>>,
    /// Metrics of this group the registry refused over the cardinality limit, handed out
    /// again without asking it (and counting a drop) each time: a refused series counts once.
    refused: Mutex<HashMap<String, Metric>>,
}

/// Refused metrics a group remembers.
const MAX_REFUSED: usize = 64;

// Roots of the group tree are made from the registry; defined here so that the registry
// (storage) does not depend on groups (the API over it).
impl Registry {
    /// The root group for one UDF instance's metrics, carrying `labels` (for example
    /// `job_name`, `operator`, `subtask`). Closing it removes its series.
    pub fn user_group(&self, labels: &[(&str, &str)]) -> Result<MetricGroup> {
        MetricGroup::root(self.clone(), USER_NAMESPACE, labels)
    }

    /// A root group for weir's own metrics of one subsystem (`operator`, `job`, `udf`, ...).
    /// `user` is refused: that namespace belongs to UDFs.
    pub fn system_group(&self, subsystem: &str, labels: &[(&str, &str)]) -> Result<MetricGroup> {
        if subsystem == USER_NAMESPACE {
            return Err(MetricsError::InvalidName {
                what: NameKind::Group,
                name: subsystem.into(),
                rule: "the `user` namespace is reserved for UDF metrics; weir's own metrics use another subsystem name",
            });
        }
        MetricGroup::root(self.clone(), subsystem, labels)
    }
}

impl std::fmt::Debug for MetricGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricGroup")
            .field("namespace", &self.node.namespace)
            .field("names", &self.node.names)
            .field("labels", &self.node.labels)
            .finish()
    }
}

impl MetricGroup {
    pub(crate) fn root(
        registry: Registry,
        namespace: &str,
        labels: &[(&str, &str)],
    ) -> Result<Self> {
        validate_name(NameKind::Group, namespace)?;
        let mut map = BTreeMap::new();
        for (k, v) in labels {
            validate_label_key(k)?;
            validate_label_value(k, v)?;
            map.insert(k.to_string(), v.to_string());
        }
        let id = registry.new_scope_id();
        Ok(MetricGroup {
            registry,
            node: Arc::new(GroupNode {
                namespace: namespace.to_string(),
                names: Vec::new(),
                parts: Arc::from(Vec::new()),
                labels: map,
                scopes: Arc::from(vec![id]),
                children: Mutex::new(HashMap::new()),
                refused: Mutex::new(HashMap::new()),
            }),
        })
    }

    fn child(&self, name: &str, value: Option<&str>) -> Result<MetricGroup> {
        validate_name(NameKind::Group, name)?;
        if let Some(v) = value {
            validate_user_label_key(name)?;
            validate_label_value(name, v)?;
        }
        let make = || {
            let mut names = self.node.names.clone();
            names.push(name.to_string());
            let mut labels = self.node.labels.clone();
            if let Some(v) = value {
                labels.insert(name.to_string(), v.to_string());
            }
            let mut parts = self.node.parts.to_vec();
            parts.push(PathPart {
                name: name.to_string(),
                value: value.map(str::to_string),
            });
            let mut scopes = self.node.scopes.to_vec();
            scopes.push(self.registry.new_scope_id());
            Arc::new(GroupNode {
                namespace: self.node.namespace.clone(),
                names,
                parts: parts.into(),
                labels,
                scopes: scopes.into(),
                children: Mutex::new(HashMap::new()),
                refused: Mutex::new(HashMap::new()),
            })
        };
        let mut children = self.node.children.lock().unwrap_or_else(|p| p.into_inner());
        let key = (name.to_string(), value.map(str::to_string));
        let node = match children.get(&key) {
            Some(n) => n.clone(),
            // A group keeps its first children for reuse; past that (a key group per row,
            // say) a child is made afresh each time, so memory stays bounded. Its series are
            // found again by their labels, so nothing changes for the caller.
            None if children.len() >= MAX_CACHED_CHILDREN => make(),
            None => children.entry(key).or_insert_with(make).clone(),
        };
        Ok(MetricGroup {
            registry: self.registry.clone(),
            node,
        })
    }

    /// The child group `name`.
    pub fn add_group(&self, name: &str) -> Result<MetricGroup> {
        self.child(name, None)
    }

    /// A key group with a value: `key` joins the metric name, `key="value"` becomes a label.
    pub fn add_key_group(&self, key: &str, value: &str) -> Result<MetricGroup> {
        self.child(key, Some(value))
    }

    /// This group with one more label, without changing the metric names (for labels a worker
    /// attaches to a definition).
    pub fn with_label(&self, key: &str, value: &str) -> Result<MetricGroup> {
        validate_user_label_key(key)?;
        validate_label_value(key, value)?;
        let mut labels = self.node.labels.clone();
        labels.insert(key.to_string(), value.to_string());
        Ok(MetricGroup {
            registry: self.registry.clone(),
            node: Arc::new(GroupNode {
                namespace: self.node.namespace.clone(),
                names: self.node.names.clone(),
                parts: self.node.parts.clone(),
                labels,
                scopes: self.node.scopes.clone(),
                children: Mutex::new(HashMap::new()),
                refused: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The group names from the namespace down, e.g. `["parser", "lang"]`.
    pub fn scope_components(&self) -> &[String] {
        &self.node.names
    }

    /// The path from the namespace down, with the values of key groups.
    pub fn path(&self) -> &[PathPart] {
        &self.node.parts
    }

    /// The variables (labels) of this group.
    pub fn variables(&self) -> &BTreeMap<String, String> {
        &self.node.labels
    }

    /// The namespace: `user` or a subsystem of weir.
    pub fn namespace(&self) -> &str {
        &self.node.namespace
    }

    /// The registry this group belongs to.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The exported base name a metric `name` would have in this group.
    pub fn metric_identifier(&self, name: &str) -> String {
        let mut s = format!("{}_{}", self.registry.options().prefix, self.node.namespace);
        for n in &self.node.names {
            s.push('_');
            s.push_str(n);
        }
        s.push('_');
        s.push_str(name);
        s
    }

    /// Registers a metric of `spec` (or finds the existing one).
    pub fn register(&self, name: &str, spec: MetricSpec) -> Result<Metric> {
        self.register_inner(name, spec, None, None)
    }

    fn register_inner(
        &self,
        name: &str,
        spec: MetricSpec,
        given: Option<Metric>,
        help: Option<&str>,
    ) -> Result<Metric> {
        if given.is_none() {
            let refused = self.node.refused.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(m) = refused.get(name).filter(|m| m.kind() == spec.kind()) {
                return Ok(m.clone());
            }
        }
        let origin = Origin {
            namespace: &self.node.namespace,
            names: &self.node.names,
            parts: &self.node.parts,
            labels: &self.node.labels,
            scopes: &self.node.scopes,
        };
        let (metric, kept) = self
            .registry
            .register_kept(&origin, name, spec, given, help)?;
        if !kept {
            let mut refused = self.node.refused.lock().unwrap_or_else(|p| p.into_inner());
            if refused.len() < MAX_REFUSED {
                refused.insert(name.to_string(), metric.clone());
            }
        }
        Ok(metric)
    }

    /// The counter `name`.
    pub fn counter(&self, name: &str) -> Result<Counter> {
        match self.register(name, MetricSpec::Counter)? {
            Metric::Counter(c) => Ok(c),
            _ => unreachable!("register checks the kind"),
        }
    }

    /// The counter `name`, with a help text (for weir's own metrics).
    pub fn counter_with_help(&self, name: &str, help: &str) -> Result<Counter> {
        match self.register_inner(name, MetricSpec::Counter, None, Some(help))? {
            Metric::Counter(c) => Ok(c),
            _ => unreachable!("register checks the kind"),
        }
    }

    /// A gauge `name` set through its handle.
    pub fn gauge(&self, name: &str) -> Result<Gauge> {
        match self.register(name, MetricSpec::Gauge)? {
            Metric::Gauge(g) => Ok(g),
            _ => unreachable!("register checks the kind"),
        }
    }

    /// A gauge `name` with a help text.
    pub fn gauge_with_help(&self, name: &str, help: &str) -> Result<Gauge> {
        match self.register_inner(name, MetricSpec::Gauge, None, Some(help))? {
            Metric::Gauge(g) => Ok(g),
            _ => unreachable!("register checks the kind"),
        }
    }

    /// A gauge `name` read from `f` at each export (PyFlink's `gauge(name, obj)`). Registering
    /// it again replaces the callback.
    pub fn gauge_fn(
        &self,
        name: &str,
        f: impl Fn() -> std::result::Result<GaugeValue, String> + Send + Sync + 'static,
    ) -> Result<Gauge> {
        let g = Gauge::from_fn(f);
        self.register_inner(
            name,
            MetricSpec::Gauge,
            Some(Metric::Gauge(g.clone())),
            None,
        )?;
        Ok(g)
    }

    /// A meter `name` averaging its rate over `span_secs` seconds (PyFlink's default: 60).
    pub fn meter(&self, name: &str, span_secs: u32) -> Result<Meter> {
        match self.register(name, MetricSpec::Meter { span_secs })? {
            Metric::Meter(m) => Ok(m),
            _ => unreachable!("register checks the kind"),
        }
    }

    /// A distribution `name`.
    pub fn distribution(&self, name: &str) -> Result<Distribution> {
        match self.register(name, MetricSpec::Distribution)? {
            Metric::Distribution(d) => Ok(d),
            _ => unreachable!("register checks the kind"),
        }
    }

    /// The scope id of this group, for [`Registry::remove_scope`].
    pub fn scope_id(&self) -> u64 {
        *self
            .node
            .scopes
            .last()
            .expect("a group has its own scope id")
    }

    /// Removes every series registered in this group and its subgroups from the exports (an
    /// operator or job that ended). Handles keep working but are no longer exported.
    pub fn close(&self) {
        self.registry.remove_scope(self.scope_id());
    }
}
