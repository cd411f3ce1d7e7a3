//! The Prometheus scrape endpoint: `GET /metrics` in the text format 0.0.4, OpenMetrics 1.0 or
//! the protobuf format (native histograms), as the scraper's `Accept` asks.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{MetricsError, Result};
use crate::prometheus::{encode_bytes, Format};

/// How long a connection may take to send a request head, and stay idle between requests.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
use crate::registry::Registry;

/// A running `/metrics` endpoint.
pub struct PrometheusServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

async fn respond(registry: Registry, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: &str| {
        Response::builder()
            .status(status)
            .header(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("static response")
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    match req.uri().path() {
        "/metrics" => {
            let accept = req
                .headers()
                .get(hyper::header::ACCEPT)
                .and_then(|v| v.to_str().ok());
            let format = Format::negotiate(accept);
            // Off the async threads: gauge callbacks may wait (a Python callback needs the GIL)
            // and a large registry takes milliseconds to render.
            let body = match tokio::task::spawn_blocking(move || {
                encode_bytes(&registry.snapshot(), format)
            })
            .await
            {
                Ok(body) => body,
                Err(e) => {
                    return text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &format!("rendering metrics failed: {e}\n"),
                    )
                }
            };
            Response::builder()
                .header(hyper::header::CONTENT_TYPE, format.content_type())
                .body(Full::new(Bytes::from(body)))
                .expect("static response")
        }
        "/" => text(StatusCode::OK, "weir metrics: see /metrics\n"),
        _ => text(StatusCode::NOT_FOUND, "not found: weir serves /metrics\n"),
    }
}

impl PrometheusServer {
    /// Binds the first free port of `ports` on `host` and serves until `stopped` turns true.
    pub fn start(
        registry: Registry,
        host: &str,
        ports: (u16, u16),
        mut stopped: watch::Receiver<bool>,
    ) -> Result<Self> {
        let mut last_err = None;
        let mut bound = None;
        for port in ports.0..=ports.1 {
            match std::net::TcpListener::bind((host, port)) {
                Ok(l) => {
                    bound = Some(l);
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        let listener = bound.ok_or_else(|| MetricsError::Export {
            exporter: "Prometheus",
            detail: format!(
                "no free port in {}-{} on {host} (metrics.reporter.prom.port): {}",
                ports.0,
                ports.1,
                last_err.map(|e| e.to_string()).unwrap_or_default()
            ),
        })?;
        let err = |e: std::io::Error| MetricsError::Export {
            exporter: "Prometheus",
            detail: e.to_string(),
        };
        listener.set_nonblocking(true).map_err(err)?;
        let addr = listener.local_addr().map_err(err)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| MetricsError::Export {
            exporter: "Prometheus",
            detail: "the endpoint must be started inside a tokio runtime".into(),
        })?;
        let _entered = runtime.enter();
        let listener = tokio::net::TcpListener::from_std(listener).map_err(err)?;
        tracing::info!("serving Prometheus metrics at http://{addr}/metrics");
        let task = tokio::spawn(async move {
            // Accepting fails at the file-descriptor limit (EMFILE) until a descriptor is free:
            // back off (10 ms doubling to 1 s) and log once per streak, not once per try.
            let mut failing: Option<(u64, Duration)> = None;
            loop {
                let stream = tokio::select! {
                    r = listener.accept() => match r {
                        Ok((s, _)) => {
                            if let Some((n, _)) = failing.take() {
                                tracing::warn!("accepting scrape connections again after {n} failures");
                            }
                            s
                        }
                        Err(e) => {
                            let (n, wait) = match failing {
                                None => {
                                    tracing::warn!(
                                        "accepting a scrape connection failed: {e}; retrying with \
                                         backoff (logged again when it recovers)"
                                    );
                                    (1, Duration::from_millis(10))
                                }
                                Some((n, w)) => (n + 1, (w * 2).min(Duration::from_secs(1))),
                            };
                            failing = Some((n, wait));
                            tokio::select! {
                                _ = tokio::time::sleep(wait) => {}
                                _ = stopped.changed() => break,
                            }
                            continue;
                        }
                    },
                    _ = stopped.changed() => break,
                };
                let registry = registry.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let registry = registry.clone();
                        async move { Ok::<_, Infallible>(respond(registry, req).await) }
                    });
                    // A connection that sends no complete request head within the timeout
                    // (a slow client, or a kept-alive one gone idle) is closed.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(Self { addr, task })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits until the server has stopped.
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}
