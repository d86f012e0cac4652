//! Every metric casegate exports, in one [`Metrics`] set shared by the public listener, the
//! gateway snapshot and the admin API, rendered as Prometheus text on the admin `GET /metrics`.
//!
//! Hand-written rather than a client crate: the set is fixed, every label value is known at
//! compile time, so each series is one atomic in an array indexed by an enum (`labels.rs`) and
//! recording is a relaxed add with no lock, map lookup or allocation. The series every request
//! records are kept once per thread slot (`per_thread.rs`) and summed when rendered. The README's
//! "Metrics and health" section lists every name, type and label.

mod connections;
mod decision;
mod labels;
mod per_thread;
mod primitives;
mod text;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use connections::{ConnectionGauge, TunnelGauge};
pub use labels::{Decision, Outcome, Protocol, StateWrite, UpstreamClass};
use per_thread::PerThread;
pub use primitives::{Counter, Gauge, Histogram, LATENCY_BUCKETS};
pub use text::CONTENT_TYPE;

/// The whole set. One per process: it outlives gateway snapshots, so counters keep counting.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests, upstream responses and their durations: what every request records, counted
    /// apart by each thread.
    per_thread: PerThread,
    open_connections: [Gauge; Protocol::ALL.len()],
    link_exchanges: Counter,
    /// Connections opened to the upstream (kept ones carry many requests each).
    upstream_connections_opened: Counter,
    /// Response body bytes moved socket to socket by `splice(2)` (large bodies over plain
    /// HTTP/1), which never entered casegate.
    spliced_bytes: Counter,
    codes_sent: Counter,
    codes_verified: Counter,
    codes_failed: Counter,
    state_writes: [[Counter; Outcome::ALL.len()]; StateWrite::ALL.len()],
    state_write_duration: Histogram,
    reloads: [Counter; Outcome::ALL.len()],
    /// Whether the last reload was refused: the file on disk is not what runs, and stays so
    /// until a reload succeeds. Alerting on this catches a broken edit nobody noticed.
    last_reload_failed: AtomicBool,
    /// Whether the last successful reload left settings that only a restart applies: the file
    /// on disk is valid but not wholly in force.
    restart_pending: AtomicBool,
    /// The access log's own count of lines it had to drop (a worker's shelf full or the sink failing),
    /// read at render time; unset when no access log was started.
    access_log_dropped: OnceLock<Arc<AtomicU64>>,
    /// The workers' own counts of the connections each serves, read at render time; unset
    /// until the public listener's workers start.
    worker_connections: OnceLock<Arc<dyn WorkerConnections>>,
}

/// Where the connections each worker serves are counted ([`crate::server::balance`]).
pub trait WorkerConnections: std::fmt::Debug + Send + Sync {
    /// Each worker's open connections, in worker order.
    fn open_per_worker(&self) -> Vec<usize>;
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// One request on the public listener: its decision, its whole duration, and how long of it
    /// was spent waiting for the upstream (`None` when the upstream failed, whose wait is unknown).
    pub fn record_request(
        &self,
        decision: Decision,
        total: Duration,
        upstream_wait: Option<Duration>,
    ) {
        let mine = self.per_thread.mine();
        mine.count_request(decision);
        mine.observe_request(total);
        if let Some(wait) = upstream_wait {
            mine.observe_gateway(total.saturating_sub(wait));
        }
    }

    /// A request refused for its head alone (over a limit, or unreadable), answered before the
    /// gateway's path: counted as `bad_request`, taking no time worth a histogram bucket.
    pub fn record_refused_head(&self) {
        self.record_request(Decision::BadRequest, Duration::ZERO, Some(Duration::ZERO));
    }

    pub fn record_upstream(&self, class: UpstreamClass) {
        self.per_thread.mine().count_upstream_response(class);
    }

    /// A new connection to the upstream: rare while the pool keeps them, so one shared counter.
    pub fn record_upstream_connection_opened(&self) {
        self.upstream_connections_opened.inc();
    }

    /// Body bytes a large response moved from the upstream's socket to the client's in the kernel:
    /// counted once a body's splice ends, so rare and shared.
    pub fn record_spliced(&self, bytes: u64) {
        self.spliced_bytes.add(bytes);
    }

    pub fn record_link_exchange(&self) {
        self.link_exchanges.inc();
    }

    pub fn record_code_sent(&self) {
        self.codes_sent.inc();
    }

    pub fn record_code_verified(&self) {
        self.codes_verified.inc();
    }

    /// A wrong code, or a guess refused because the tries or the rate are used up.
    pub fn record_code_failed(&self) {
        self.codes_failed.inc();
    }

    pub fn record_state_write(&self, write: StateWrite, outcome: Outcome, took: Duration) {
        self.state_writes[write as usize][outcome as usize].inc();
        self.state_write_duration.observe(took);
    }

    pub fn record_reload(&self, outcome: Outcome) {
        self.reloads[outcome as usize].inc();
        self.last_reload_failed
            .store(outcome == Outcome::Failed, Ordering::Relaxed);
    }

    /// After a successful reload: whether it named settings that need a restart.
    pub fn record_restart_pending(&self, pending: bool) {
        self.restart_pending.store(pending, Ordering::Relaxed);
    }

    /// Exports the access log's count of dropped lines as `casegate_access_log_dropped_total`.
    /// The first source given counts; the access log lives as long as the process.
    pub fn count_access_log_drops_from(&self, dropped: Arc<AtomicU64>) {
        let _ = self.access_log_dropped.set(dropped);
    }

    /// Exports each worker's open connections as `casegate_worker_connections`. The first
    /// source given counts: the workers start once per process.
    pub fn count_worker_connections_from(&self, workers: Arc<dyn WorkerConnections>) {
        let _ = self.worker_connections.set(workers);
    }

    fn worker_connections(&self) -> Vec<usize> {
        self.worker_connections
            .get()
            .map_or_else(Vec::new, |workers| workers.open_per_worker())
    }

    fn access_log_dropped(&self) -> u64 {
        self.access_log_dropped
            .get()
            .map_or(0, |dropped| dropped.load(Ordering::Relaxed))
    }

    fn open_connections(&self, protocol: Protocol) -> &Gauge {
        &self.open_connections[protocol as usize]
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    pub fn render(&self) -> String {
        text::render(self)
    }

    /// How many requests were counted under `decision` (for tests and the start-up checks).
    pub fn requests(&self, decision: Decision) -> u64 {
        self.per_thread.requests(decision)
    }
}

/// Times a state-store write at its call site and counts it by outcome.
pub async fn timed_state_write<T, E>(
    metrics: &Metrics,
    write: StateWrite,
    operation: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let started = std::time::Instant::now();
    let result = operation.await;
    let outcome = match result {
        Ok(_) => Outcome::Ok,
        Err(_) => Outcome::Failed,
    };
    metrics.record_state_write(write, outcome, started.elapsed());
    result
}
