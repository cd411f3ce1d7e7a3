//! The exporters and what runs them: the Prometheus `/metrics` endpoint, periodic OTLP and
//! Pushgateway pushes, and the registry's once-a-second tick. [`Reporters::start`] starts what
//! the configuration asks for on the current tokio runtime; [`Reporters::shutdown`] makes the
//! final pushes. Exporters only read snapshots: a slow or dead collector never touches the
//! threads that update metrics.

mod http_client;
pub mod otlp;
pub mod pushgateway;
mod server;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::MetricsConfig;
use crate::counter::Counter;
use crate::error::{MetricsError, Result};
use crate::registry::Registry;

pub use server::PrometheusServer;

/// Attempts per periodic export before the export is given up (the next interval tries again).
const ATTEMPTS: u32 = 3;

/// Counts of one exporter's successes and failures, as weir's own metrics
/// (`weir_metrics_exports_total{exporter=...}`, `weir_metrics_export_failures_total{exporter=...}`).
#[derive(Clone)]
struct ExportCounters {
    ok: Counter,
    failed: Counter,
    name: &'static str,
    failing: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl ExportCounters {
    fn new(registry: &Registry, name: &'static str) -> Result<Self> {
        let g = registry.system_group("metrics", &[("exporter", name)])?;
        Ok(Self {
            ok: g.counter_with_help("exports", "Exports delivered by weir's metric exporters")?,
            failed: g.counter_with_help(
                "export_failures",
                "Exports weir's metric exporters gave up after retries",
            )?,
            name,
            failing: Default::default(),
        })
    }

    fn record(&self, r: &std::result::Result<(), String>) {
        use std::sync::atomic::Ordering::Relaxed;
        match r {
            Ok(()) => {
                self.ok.inc(1);
                if self.failing.swap(false, Relaxed) {
                    tracing::info!("{} export delivered again", self.name);
                }
            }
            Err(e) => {
                self.failed.inc(1);
                if !self.failing.swap(true, Relaxed) {
                    tracing::warn!(
                        "{} export failed (logged once until it recovers): {e}",
                        self.name
                    );
                }
            }
        }
    }
}

/// The running exporters of one process.
pub struct Reporters {
    prometheus: Option<PrometheusServer>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

async fn retrying<F, Fut>(attempts: u32, mut f: F) -> std::result::Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<(), String>>,
{
    let mut last = Ok(());
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 * 4u64.pow(attempt - 1))).await;
        }
        last = f().await;
        match &last {
            Ok(()) => break,
            // A collector that does not answer within the timeout will not answer the next
            // try either: trying again only doubles how long shutdown waits for it.
            Err(e) if e.contains("timed out") => break,
            Err(_) => {}
        }
    }
    last
}

impl Reporters {
    /// Starts the reporters `config` enables, for the job `job_name`. Must be called inside a
    /// tokio runtime. Fails at once when no port of the Prometheus range is free or an
    /// endpoint is invalid.
    pub fn start(registry: &Registry, config: &MetricsConfig, job_name: &str) -> Result<Reporters> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| MetricsError::Export {
            exporter: "reporters",
            detail: "Reporters::start must be called inside a tokio runtime".into(),
        })?;
        let _entered = runtime.enter();
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();

        let prometheus = match &config.prometheus {
            Some(p) => Some(PrometheusServer::start(
                registry.clone(),
                &p.host,
                p.ports,
                stopped.clone(),
            )?),
            None => None,
        };

        // The tick keeps meter rates and distribution windows current.
        {
            let registry = registry.clone();
            let mut stopped = stopped.clone();
            tasks.push(tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        _ = every.tick() => registry.tick(Instant::now()),
                        _ = stopped.changed() => break,
                    }
                }
            }));
        }

        if let Some(cfg) = &config.otlp {
            let client = otlp::OtlpClient::new(cfg).map_err(|detail| MetricsError::Export {
                exporter: "OTLP",
                detail,
            })?;
            let counters = ExportCounters::new(registry, "otlp")?;
            let resource = otlp::ResourceInfo {
                service_name: cfg.service_name.clone(),
                service_version: cfg.service_version.clone(),
                job_name: job_name.to_string(),
            };
            let registry = registry.clone();
            let interval = cfg.interval;
            let mut stopped = stopped.clone();
            tracing::info!(
                "exporting metrics over OTLP ({:?}) to {} every {interval:?}",
                cfg.protocol,
                cfg.endpoint
            );
            tasks.push(tokio::spawn(async move {
                let mut every =
                    tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    let last = tokio::select! {
                        _ = every.tick() => false,
                        _ = stopped.changed() => true,
                    };
                    let attempts = if last { 2 } else { ATTEMPTS };
                    let r = retrying(attempts, || {
                        let (registry, resource) = (registry.clone(), resource.clone());
                        let c = &client;
                        async move {
                            let req = tokio::task::spawn_blocking(move || {
                                otlp::build_request(&registry.snapshot(), &resource)
                            })
                            .await
                            .map_err(|e| format!("building the export failed: {e}"))?;
                            c.export(req).await
                        }
                    })
                    .await;
                    counters.record(&r);
                    if last {
                        break;
                    }
                }
            }));
        }

        if let Some(cfg) = &config.pushgateway {
            let gw = pushgateway::Pushgateway::new(cfg, job_name);
            let counters = ExportCounters::new(registry, "pushgateway")?;
            let registry = registry.clone();
            let interval = cfg.interval;
            let delete = cfg.delete_on_shutdown;
            let mut stopped = stopped.clone();
            tracing::info!("pushing metrics to {} every {interval:?}", gw.url());
            tasks.push(tokio::spawn(async move {
                let mut every = tokio::time::interval(interval);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    let last = tokio::select! {
                        _ = every.tick() => false,
                        _ = stopped.changed() => true,
                    };
                    let r = retrying(if last { 2 } else { ATTEMPTS }, || gw.push(&registry)).await;
                    counters.record(&r);
                    if last {
                        if delete {
                            if let Err(e) = gw.delete().await {
                                tracing::warn!("deleting the Pushgateway group failed: {e}");
                            }
                        }
                        break;
                    }
                }
            }));
        }

        Ok(Reporters {
            prometheus,
            stop,
            tasks,
        })
    }

    /// Where `/metrics` is served, if it is.
    pub fn prometheus_addr(&self) -> Option<SocketAddr> {
        self.prometheus.as_ref().map(|p| p.addr())
    }

    /// Makes the final OTLP export and Pushgateway push (and delete, if configured), then stops
    /// everything. Waits at most for the exporters' own timeouts.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        if let Some(p) = self.prometheus {
            p.stopped().await;
        }
    }
}
