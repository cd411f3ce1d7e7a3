//! The process session: what a process has once, however many table environments it creates. It owns
//! the metric registry, the reporters (the `/metrics` endpoint, OTLP, Pushgateway), the tokio
//! runtime jobs run on, and the record of the jobs it ran, so that the `weir` command and the
//! Python SDK behave the same and two environments of one program never fight over a port.
//!
//! - **Process-wide settings** (every `metrics.*` key but `metrics.weir.aggregation-level`)
//!   take effect from the first environment that needs the registry (its first job, or
//!   `start_metrics()`); a later environment asking for another value gets a warning naming
//!   the key, never a silent change.
//! - **Job names**: `pipeline.name` when set; otherwise a name that says what the job does
//!   (`insert-into_<table>`, `collect`), with `-2`, `-3` ... appended when this process already
//!   has a job of that name, so two jobs' series never mix.
//! - **Finished jobs stay scrapeable**: their series stay exported until their environment is
//!   closed, or until more than [`RETAINED_FINISHED_JOBS`] jobs have finished (the oldest go
//!   first), so a short job can still be scraped after it ended.
//! - **Reporters never fail a job**: a busy default port falls back to the next free one of
//!   9249-9259; an explicitly set port that is busy is reported as a warning naming the key
//!   and the job runs without the endpoint, as Flink's reporters do.
//!
//! ```
//! use weir_engine::session::ProcessSession;
//! use weir_engine::table::TableEnvironment;
//!
//! let session = ProcessSession::new();
//! let (a, b) = (
//!     TableEnvironment::with_session(true, session.clone()),
//!     TableEnvironment::with_session(false, session.clone()),
//! );
//! // One registry for both environments.
//! assert!(a.registry().same_as(&b.registry()));
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use weir_metrics::config::MetricsConfig;
use weir_metrics::export::Reporters;
use weir_metrics::{Counter, Gauge, GaugeValue, Registry};

use crate::error::{EngineError, Result};
use crate::runtime::job::JobSummary;
use crate::runtime::{JobControl, JobGraph};

/// How many finished jobs keep their series exported (the oldest are removed first).
pub const RETAINED_FINISHED_JOBS: usize = 16;

/// The configuration key of the job name (Flink's).
const JOB_NAME: &str = "pipeline.name";

/// Metric keys that belong to one job, not to the process.
const PER_JOB_METRIC_KEYS: &[&str] = &["metrics.weir.aggregation-level"];

fn process_wide(key: &str) -> bool {
    key.starts_with("metrics.") && !PER_JOB_METRIC_KEYS.contains(&key)
}

/// One process's registry, reporters, runtime and jobs. Cheap to clone: clones share all.
#[derive(Clone)]
pub struct ProcessSession {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    runtime: OnceLock<std::result::Result<tokio::runtime::Runtime, String>>,
    next_env: AtomicU64,
}

#[derive(Default)]
struct State {
    metrics: Option<Metrics>,
    /// (key, value) pairs already warned about.
    warned: BTreeSet<(String, String)>,
    reporters: Option<Reporters>,
    open_envs: BTreeSet<u64>,
    jobs: Vec<JobRecord>,
    /// Order in which jobs finished (names), oldest first.
    finished: Vec<String>,
}

struct Metrics {
    registry: Registry,
    /// The process-wide keys as the first environment set them.
    pairs: BTreeMap<String, String>,
    config: MetricsConfig,
}

struct JobRecord {
    name: String,
    env: u64,
    /// Runs under this name now (the `weir` command runs a script's INSERTs as one job).
    active: usize,
    started: Instant,
    ended: Arc<Mutex<Option<Duration>>>,
    running: Gauge,
    _restarts: Counter,
    _uptime: Gauge,
}

/// An environment's membership of a session; see [`ProcessSession::open_env`].
pub type EnvId = u64;

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn metrics_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Execution(format!("metrics: {e}"))
}

impl Default for ProcessSession {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessSession {
    /// A session of its own (tests, embedding several isolated engines).
    pub fn new() -> Self {
        ProcessSession {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                runtime: OnceLock::new(),
                next_env: AtomicU64::new(1),
            }),
        }
    }

    /// A session whose registry is given (its metric settings are the registry's).
    pub fn with_registry(registry: Registry) -> Self {
        let s = Self::new();
        lock(&s.inner.state).metrics = Some(Metrics {
            registry,
            pairs: BTreeMap::new(),
            config: MetricsConfig::default(),
        });
        s
    }

    /// The process's session: what the `weir` command and the Python SDK use.
    pub fn global() -> ProcessSession {
        static GLOBAL: OnceLock<ProcessSession> = OnceLock::new();
        GLOBAL.get_or_init(ProcessSession::new).clone()
    }

    /// The multi-threaded tokio runtime jobs and reporters of this session run on, started
    /// on first use.
    pub fn runtime(&self) -> Result<&tokio::runtime::Runtime> {
        self.inner
            .runtime
            .get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .thread_name("weir")
                    .thread_stack_size(crate::stack::RUNTIME_STACK)
                    .build()
                    .map_err(|e| format!("cannot start the runtime: {e}"))
            })
            .as_ref()
            .map_err(|e| EngineError::Execution(e.clone()))
    }

    /// Registers an environment; [`ProcessSession::close_env`] ends it.
    pub fn open_env(&self) -> EnvId {
        let id = self.inner.next_env.fetch_add(1, Ordering::Relaxed);
        lock(&self.inner.state).open_envs.insert(id);
        id
    }

    /// Ends an environment: the series of its finished jobs stop being exported. Returns
    /// whether it was the last open one (the caller may then stop the reporters).
    pub fn close_env(&self, env: EnvId) -> bool {
        let mut st = lock(&self.inner.state);
        if !st.open_envs.remove(&env) {
            return false;
        }
        let gone: Vec<String> = st
            .jobs
            .iter()
            .filter(|j| j.env == env && j.active == 0)
            .map(|j| j.name.clone())
            .collect();
        for name in gone {
            forget_job(&mut st, &name);
        }
        st.open_envs.is_empty()
    }

    /// The registry, created from `config` the first time; later calls return the same
    /// registry and a warning for every process-wide key `config` sets to another value.
    pub fn registry(&self, config: &BTreeMap<String, String>) -> Result<(Registry, Vec<String>)> {
        let mut st = lock(&self.inner.state);
        self.registry_locked(&mut st, config)
    }

    fn registry_locked(
        &self,
        st: &mut State,
        config: &BTreeMap<String, String>,
    ) -> Result<(Registry, Vec<String>)> {
        let wanted: BTreeMap<String, String> = config
            .iter()
            .filter(|(k, _)| process_wide(k))
            .map(|(k, v)| (k.clone(), v.trim().to_string()))
            .collect();
        if let Some(m) = &st.metrics {
            let registry = m.registry.clone();
            let mut warnings = Vec::new();
            for (k, v) in &wanted {
                let current = m.pairs.get(k);
                if current == Some(v) || !st.warned.insert((k.clone(), v.clone())) {
                    continue;
                }
                let now = match current {
                    Some(c) => format!("`{c}`"),
                    None => "its default".to_string(),
                };
                warnings.push(format!(
                    "configuration key `{k}` = `{v}` is ignored: it belongs to the whole process, whose metrics already use {now} (set by the first environment that started metrics)"
                ));
            }
            return Ok((registry, warnings));
        }
        let parsed = MetricsConfig::from_pairs(&wanted).map_err(metrics_err)?;
        let registry = Registry::new(parsed.registry_options());
        st.metrics = Some(Metrics {
            registry: registry.clone(),
            pairs: wanted,
            config: parsed,
        });
        Ok((registry, Vec::new()))
    }

    /// Starts the reporters the process-wide settings ask for, if they are not running.
    /// Returns warnings (a busy explicit port, conflicting settings); fails only on settings
    /// that are invalid.
    pub fn start_reporters(&self, config: &BTreeMap<String, String>) -> Result<Vec<String>> {
        let mut st = lock(&self.inner.state);
        let (registry, mut warnings) = self.registry_locked(&mut st, config)?;
        if st.reporters.is_some() {
            return Ok(warnings);
        }
        let mut cfg = st
            .metrics
            .as_ref()
            .map(|m| m.config.clone())
            .unwrap_or_default();
        let job = config
            .get(JOB_NAME)
            .cloned()
            .unwrap_or_else(|| "weir".to_string());
        let _entered = self.runtime()?.enter();
        let reporters = match Reporters::start(&registry, &cfg, &job) {
            Ok(r) => r,
            Err(e) if cfg.prometheus.is_some() => {
                let p = cfg.prometheus.take().expect("checked");
                warnings.push(format!(
                    "the Prometheus endpoint is not served: {e}{}; the job runs without it",
                    if p.explicit_port {
                        " (the port is set by `metrics.reporter.prom.port`; unset it to fall back to a free port of 9249-9259, or set 0 for any free port)"
                    } else {
                        ""
                    }
                ));
                Reporters::start(&registry, &cfg, &job).map_err(metrics_err)?
            }
            Err(e) => return Err(metrics_err(e)),
        };
        st.reporters = Some(reporters);
        Ok(warnings)
    }

    /// Where `/metrics` is served, when it is.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        lock(&self.inner.state)
            .reporters
            .as_ref()
            .and_then(|r| r.prometheus_addr())
    }

    /// Stops the reporters after their last export (OTLP, Pushgateway); they start again
    /// with the next job.
    pub async fn stop_reporters(&self) {
        let r = lock(&self.inner.state).reporters.take();
        if let Some(r) = r {
            r.shutdown().await;
        }
    }

    /// Names `graph` (see the module doc) and records it as running in `env`, with its job
    /// metrics (`weir_job_running`, `weir_job_uptime_seconds`, `weir_job_restarts_total`).
    /// Series left by a finished job of the same name are removed first, so a job run
    /// again starts from zero. Reporters are the caller's to start
    /// ([`ProcessSession::start_reporters`]).
    pub fn begin_job(&self, env: EnvId, graph: &mut JobGraph) -> Result<(JobTicket, Vec<String>)> {
        let mut st = lock(&self.inner.state);
        let (registry, mut warnings) = self.registry_locked(&mut st, &graph.config)?;
        let explicit = graph.config.get(JOB_NAME).filter(|n| !n.trim().is_empty());
        let name = match explicit {
            Some(n) => n.trim().to_string(),
            None => {
                let base = graph.job_name.clone();
                let mut name = base.clone();
                let mut n = 1;
                while st.jobs.iter().any(|j| j.name == name) {
                    n += 1;
                    name = format!("{base}-{n}");
                }
                name
            }
        };
        graph.job_name = name.clone();
        match st.jobs.iter().position(|j| j.name == name) {
            Some(i) if st.jobs[i].active > 0 => {
                st.jobs[i].active += 1;
                if st.jobs[i].env != env {
                    warnings.push(format!(
                        "job `{name}` is already running: both runs' series carry job_name=\"{name}\"; set `pipeline.name` to tell them apart"
                    ));
                }
            }
            found => {
                if found.is_some() {
                    forget_job(&mut st, &name);
                }
                let group = registry
                    .system_group("job", &[("job_name", name.as_str())])
                    .map_err(metrics_err)?;
                let started = Instant::now();
                let ended: Arc<Mutex<Option<Duration>>> = Arc::default();
                let e = ended.clone();
                let uptime = group
                    .gauge_fn("uptime_seconds", move || {
                        let end = *e.lock().unwrap_or_else(|p| p.into_inner());
                        Ok(GaugeValue::Float(
                            end.unwrap_or_else(|| started.elapsed()).as_secs_f64(),
                        ))
                    })
                    .map_err(metrics_err)?;
                let running = group
                    .gauge_with_help(
                        "running",
                        "1 while the job runs, 0 once it has finished or failed",
                    )
                    .map_err(metrics_err)?;
                let restarts = group
                    .counter_with_help("restarts", "Times the job restarted after a failure")
                    .map_err(metrics_err)?;
                running.set_i64(1);
                st.jobs.push(JobRecord {
                    name: name.clone(),
                    env,
                    active: 1,
                    started,
                    ended,
                    running,
                    _restarts: restarts,
                    _uptime: uptime,
                });
            }
        }
        Ok((
            JobTicket {
                session: self.clone(),
                name,
                registry,
                done: false,
            },
            warnings,
        ))
    }

    /// Names of the jobs whose series are exported now (running or retained), oldest first.
    pub fn jobs(&self) -> Vec<String> {
        lock(&self.inner.state)
            .jobs
            .iter()
            .map(|j| j.name.clone())
            .collect()
    }

    fn end_job(&self, name: &str) {
        let mut guard = lock(&self.inner.state);
        let st = &mut *guard;
        let Some(j) = st.jobs.iter_mut().find(|j| j.name == name) else {
            return;
        };
        j.active = j.active.saturating_sub(1);
        if j.active > 0 {
            return;
        }
        j.running.set_i64(0);
        *j.ended.lock().unwrap_or_else(|p| p.into_inner()) = Some(j.started.elapsed());
        let env_open = st.open_envs.contains(&j.env);
        st.finished.retain(|n| n != name);
        st.finished.push(name.to_string());
        if !env_open {
            forget_job(st, name);
        }
        while st.finished.len() > RETAINED_FINISHED_JOBS {
            let oldest = st.finished[0].clone();
            forget_job(st, &oldest);
        }
    }
}

/// Removes a finished job's record and every series labelled with its name.
fn forget_job(st: &mut State, name: &str) {
    st.jobs.retain(|j| j.name != name);
    st.finished.retain(|n| n != name);
    if let Some(m) = &st.metrics {
        m.registry.remove_labelled("job_name", name);
    }
}

/// A job recorded as running in a session; [`JobTicket::run`] runs it and records its end.
pub struct JobTicket {
    session: ProcessSession,
    name: String,
    registry: Registry,
    done: bool,
}

impl JobTicket {
    /// The job's name (unique in the session unless `pipeline.name` repeats one).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The registry the job's metrics go to.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Runs `graph` (named by [`ProcessSession::begin_job`]) to its end, then records the end.
    pub async fn run(mut self, graph: JobGraph, control: Arc<JobControl>) -> Result<JobSummary> {
        let r = graph.run_with(&self.registry, control).await;
        self.done = true;
        self.session.end_job(&self.name);
        r
    }
}

impl Drop for JobTicket {
    fn drop(&mut self) {
        if !self.done {
            self.session.end_job(&self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> BTreeMap<String, String> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_first_settings_win_and_a_conflict_warns_once_naming_the_key() {
        let s = ProcessSession::new();
        let (r1, w1) = s
            .registry(&pairs(&[("metrics.weir.name-prefix", "acme")]))
            .unwrap();
        assert!(w1.is_empty());
        assert_eq!(r1.options().prefix, "acme");
        let other = pairs(&[
            ("metrics.weir.name-prefix", "other"),
            ("python.fn-execution.bundle.size", "10"),
        ]);
        let (r2, w2) = s.registry(&other).unwrap();
        assert!(r1.same_as(&r2));
        assert_eq!(w2.len(), 1, "{w2:?}");
        assert!(w2[0].contains("metrics.weir.name-prefix") && w2[0].contains("acme"));
        assert!(s.registry(&other).unwrap().1.is_empty(), "warned once");
        // Setting the same value, or a per-job key, is no conflict.
        let same = pairs(&[
            ("metrics.weir.name-prefix", "acme"),
            ("metrics.weir.aggregation-level", "operator"),
        ]);
        assert!(s.registry(&same).unwrap().1.is_empty());
    }

    #[test]
    fn invalid_metric_settings_are_an_error_naming_the_key() {
        let s = ProcessSession::new();
        let e = s
            .registry(&pairs(&[("metrics.weir.cardinality-limit", "lots")]))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("metrics.weir.cardinality-limit"), "{e}");
    }
}
