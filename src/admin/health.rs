//! The operator's endpoints on the admin listener: `GET /metrics`, `GET /healthz` and
//! `GET /readyz`. They need no bearer token: they are scraped by Prometheus and the load balancer
//! from the internal network the admin listener is bound to, and they show no share, case or
//! secret. Any other method on them is 405.
//!
//! Readiness asks three questions: is a config loaded (the gateway exists, so yes), does the
//! upstream accept a TCP connection within a second, and can the state store still write (no
//! journal write has failed, and a probe file can be written in its directory). With the Redis
//! backend the last question is how current the shared state is: fresh is ready; stale but
//! within `max_staleness` is ready and "degraded" (guests are still served); past it is not
//! ready (guests are refused). The answer is cached for a second, so a scraper polling hard
//! costs at most one probe a second.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Method, Response, StatusCode};
use serde::Serialize;
use tokio::sync::Mutex;

use super::respond::{self, ApiBody};
use crate::gateway::Gateway;
use crate::metrics;
use crate::reload::Snapshot;
use crate::state::{Freshness, StateStore};

/// How long the upstream may take to accept a connection before it counts as unreachable.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a readiness answer is reused.
const READINESS_CACHE: Duration = Duration::from_secs(1);
/// Written and removed in the state directory; `.tmp`, so a store opening after a crash in
/// between removes it as a leftover.
const PROBE_FILE: &str = "readyz-probe.tmp";

/// An operator endpoint, served before (and without) authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpsRoute {
    Metrics,
    Health,
    Ready,
}

impl OpsRoute {
    pub fn parse(path: &str) -> Option<OpsRoute> {
        match path {
            "/metrics" => Some(OpsRoute::Metrics),
            "/healthz" => Some(OpsRoute::Health),
            "/readyz" => Some(OpsRoute::Ready),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
struct Check {
    ok: bool,
    /// Working, but not as it should: the answer's status is then "degraded" (still 200).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    degraded: bool,
    /// How long the shared state store has been silent, when it has been.
    #[serde(skip_serializing_if = "Option::is_none")]
    stale_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

impl Check {
    fn passed() -> Check {
        Check {
            ok: true,
            degraded: false,
            stale_seconds: None,
            problem: None,
        }
    }

    fn failed(problem: String) -> Check {
        Check {
            ok: false,
            degraded: false,
            stale_seconds: None,
            problem: Some(problem),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
struct Checks {
    config: Check,
    upstream: Check,
    state: Check,
}

#[derive(Serialize)]
struct ReadyAnswer<'a> {
    status: &'static str,
    checks: &'a Checks,
}

/// Probes readiness and remembers the last answer for [`READINESS_CACHE`].
pub struct Readiness {
    gateway: Arc<Snapshot<Gateway>>,
    store: Arc<StateStore>,
    /// The lock also makes concurrent scrapes wait for one probe instead of each running one.
    last: Mutex<Option<(Instant, Checks)>>,
}

impl Readiness {
    pub fn new(gateway: Arc<Snapshot<Gateway>>, store: Arc<StateStore>) -> Readiness {
        Readiness {
            gateway,
            store,
            last: Mutex::new(None),
        }
    }

    fn gateway(&self) -> Arc<Gateway> {
        self.gateway.current()
    }

    /// Answers an operator endpoint.
    pub async fn answer(&self, route: OpsRoute, method: &Method) -> Response<ApiBody> {
        if method != Method::GET && method != Method::HEAD {
            return method_not_allowed();
        }
        match route {
            OpsRoute::Metrics => {
                let mut response = Response::new(ApiBody::from(self.gateway().metrics().render()));
                let headers = response.headers_mut();
                headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static(metrics::CONTENT_TYPE),
                );
                headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
            OpsRoute::Health => {
                respond::json(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
            }
            OpsRoute::Ready => {
                let checks = self.checks().await;
                let ready = checks.config.ok && checks.upstream.ok && checks.state.ok;
                let degraded = checks.state.degraded;
                let (status, word) = match (ready, degraded) {
                    (true, false) => (StatusCode::OK, "ok"),
                    (true, true) => (StatusCode::OK, "degraded"),
                    (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
                };
                respond::json(
                    status,
                    &ReadyAnswer {
                        status: word,
                        checks: &checks,
                    },
                )
            }
        }
    }

    async fn checks(&self) -> Checks {
        let mut last = self.last.lock().await;
        if let Some((at, checks)) = last.as_ref()
            && at.elapsed() < READINESS_CACHE
        {
            return checks.clone();
        }
        let checks = Checks {
            // The admin API serves a built gateway: a config was loaded and validated.
            config: Check::passed(),
            upstream: self.upstream_check().await,
            state: self.state_check().await,
        };
        // Every failing check is logged on each fresh evaluation (what a scraper polls), and the
        // way back to ready once, so the log shows when an outage ended.
        for (name, check) in [("upstream", &checks.upstream), ("state", &checks.state)] {
            if let Some(problem) = &check.problem {
                tracing::warn!(check = name, %problem, "not ready");
            }
        }
        let was_ready = last
            .as_ref()
            .is_none_or(|(_, before)| before.upstream.ok && before.state.ok);
        if checks.upstream.ok && checks.state.ok && !was_ready {
            tracing::info!("ready again: the upstream answers and the state store is writable");
        }
        *last = Some((Instant::now(), checks.clone()));
        checks
    }

    async fn upstream_check(&self) -> Check {
        let gateway = self.gateway();
        let (host, port) = gateway.upstream_address();
        let connect = tokio::net::TcpStream::connect((host, port));
        match tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, connect).await {
            Ok(Ok(_stream)) => Check::passed(),
            Ok(Err(error)) => Check::failed(format!(
                "cannot connect to the upstream {host}:{port}: {error}"
            )),
            Err(_) => Check::failed(format!(
                "the upstream {host}:{port} did not accept a connection within {}s",
                UPSTREAM_CONNECT_TIMEOUT.as_secs()
            )),
        }
    }

    async fn state_check(&self) -> Check {
        if self.store.is_shared() {
            return shared_state_check(self.store.freshness(Instant::now()));
        }
        if self.store.has_failed() {
            return Check::failed(
                "a state journal write failed; the store refuses every write until casegate is restarted"
                    .to_owned(),
            );
        }
        let dir = self.store.path().to_path_buf();
        match tokio::task::spawn_blocking(move || probe_writable(&dir)).await {
            Ok(Ok(())) => Check::passed(),
            Ok(Err(problem)) => Check::failed(problem),
            Err(error) => Check::failed(format!("the state probe did not finish: {error}")),
        }
    }
}

/// The shared store is ready while guests are served: degraded once it has been silent for a
/// while, not ready once it has been silent past `max_staleness`.
fn shared_state_check(freshness: Freshness) -> Check {
    match freshness {
        Freshness::Fresh => Check::passed(),
        Freshness::Stale { age } => Check {
            ok: true,
            degraded: true,
            stale_seconds: Some(age.as_secs_f64()),
            problem: Some(format!(
                "no word from Redis for {:.1}s; serving guests on the last-known revocations until [state] max_staleness",
                age.as_secs_f64()
            )),
        },
        Freshness::TooStale { age } => Check {
            stale_seconds: Some(age.as_secs_f64()),
            ..Check::failed(format!(
                "no word from Redis for {:.1}s, past [state] max_staleness; guests are refused until it answers",
                age.as_secs_f64()
            ))
        },
    }
}

/// Writes, syncs and removes a small file in the state directory: what a journal write needs
/// (the directory is there, writable, on a file system with room).
fn probe_writable(dir: &Path) -> Result<(), String> {
    let probe: PathBuf = dir.join(PROBE_FILE);
    let attempt = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&probe)?;
        file.write_all(b"ready\n")?;
        file.sync_all()?;
        std::fs::remove_file(&probe)
    };
    attempt().map_err(|error| {
        format!(
            "the state directory {} is not writable: {error}",
            dir.display()
        )
    })
}

fn method_not_allowed() -> Response<ApiBody> {
    respond::error(&super::ApiError::MethodNotAllowed { allow: "GET, HEAD" })
}
