//! The settings a reload cannot apply: they are held by sockets, open files or tasks started
//! once. A reload that changes one keeps the old value and names it, so the operator knows to
//! restart instead of believing the change took effect.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::{Config, StateBackend};
use crate::loopback_congestion::LoopbackCongestion;

/// What the running process started with, among the settings only a restart changes.
pub struct Fixed {
    listen: SocketAddr,
    tls_on: bool,
    /// Compared through `Debug`: limits and log settings are plain values without `PartialEq`.
    limits: String,
    shutdown_grace: std::time::Duration,
    workers: Option<std::num::NonZeroUsize>,
    io_uring: bool,
    loopback_congestion: LoopbackCongestion,
    state_path: PathBuf,
    /// Embedded or Redis, with the Redis URL (password included) and its settings.
    state_backend: StateBackend,
    /// `use_flush_interval` and `compact_after_bytes`: the state store's background task reads
    /// them when it starts.
    state_maintenance: (std::time::Duration, u64),
    log: String,
    admin_listen: Option<SocketAddr>,
    /// The admin API copies its body limit when it starts listening.
    admin_max_body_bytes: Option<usize>,
    /// Each client's name, scopes and token: the admin API's clients are read once.
    admin_clients: Vec<(String, Vec<String>, Vec<u8>)>,
}

impl Fixed {
    pub fn of(config: &Config) -> Fixed {
        Fixed {
            listen: config.server.listen,
            tls_on: config.server.tls.is_some(),
            limits: format!("{:?}", config.server.limits),
            shutdown_grace: config.server.shutdown_grace,
            workers: config.server.workers,
            io_uring: config.server.io_uring,
            loopback_congestion: config.server.loopback_congestion.clone(),
            state_path: config.state.path.clone(),
            state_backend: config.state.backend.clone(),
            state_maintenance: (
                config.state.use_flush_interval,
                config.state.compact_after_bytes,
            ),
            log: format!(
                "{:?} {:?} {}",
                config.log.format, config.log.access, config.log.buffer
            ),
            admin_listen: config.admin.as_ref().map(|admin| admin.listen),
            admin_max_body_bytes: config.admin.as_ref().map(|admin| admin.max_body_bytes),
            admin_clients: admin_clients(config),
        }
    }
}

fn admin_clients(config: &Config) -> Vec<(String, Vec<String>, Vec<u8>)> {
    config
        .admin
        .iter()
        .flat_map(|admin| &admin.clients)
        .map(|client| {
            (
                client.name.clone(),
                client.scopes.clone(),
                client.token.as_bytes().to_vec(),
            )
        })
        .collect()
}

/// The settings `new` changes that only a restart applies, by their config names.
pub fn restart_needed(fixed: &Fixed, new: &Config) -> Vec<&'static str> {
    let now = Fixed::of(new);
    let checks = [
        (fixed.listen != now.listen, "server.listen"),
        (
            fixed.tls_on != now.tls_on,
            "server.tls (turning TLS on or off)",
        ),
        (fixed.limits != now.limits, "server.limits"),
        (
            fixed.shutdown_grace != now.shutdown_grace,
            "server.shutdown_grace",
        ),
        (
            fixed.workers != now.workers,
            "server.workers (the serving threads)",
        ),
        (
            fixed.io_uring != now.io_uring,
            "server.io_uring (set up when each worker starts)",
        ),
        (
            fixed.loopback_congestion != now.loopback_congestion,
            "server.loopback_congestion_control (the workers' and pools' setting, from their start)",
        ),
        (fixed.state_path != now.state_path, "state.path"),
        (
            fixed.state_backend != now.state_backend,
            "state (backend, url, key_prefix, max_staleness, resync_interval)",
        ),
        (
            fixed.state_maintenance != now.state_maintenance,
            "state (use_flush_interval, compact_after_bytes)",
        ),
        (fixed.log != now.log, "log (format, access, buffer)"),
        (fixed.admin_listen != now.admin_listen, "admin.listen"),
        (
            fixed.admin_max_body_bytes != now.admin_max_body_bytes,
            "admin.max_body_bytes",
        ),
        (fixed.admin_clients != now.admin_clients, "admin.clients"),
    ];
    checks
        .into_iter()
        .filter_map(|(changed, name)| changed.then_some(name))
        .collect()
}
