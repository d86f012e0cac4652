//! Hot reload: re-read the config file, build and validate the whole new snapshot (gateway,
//! mailer, TLS certificate), then swap it in for new requests and connections. A config that
//! fails anywhere changes nothing; every problem is logged, counted and returned.
//!
//! What a reload cannot change without rebinding a socket or reopening a file another part of
//! the process holds (listen addresses, the state path, TLS on or off, the access log) keeps its
//! old value and is named in [`Reloaded::restart_needed`]: reload never rebinds sockets.

mod restart;
mod snapshot;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Mutex;
use tokio_rustls::TlsAcceptor;
use tracing::{error, info, warn};

pub use snapshot::{Held, Kept, Snapshot, WorkerSnapshot};

use self::restart::{Fixed, restart_needed};
use crate::config::{self, ConfigErrors};
use crate::gateway::{BuildError, Gateway};
use crate::mail::{MailError, Mailer};
use crate::metrics::Outcome;
use crate::server::tls::{self, TlsError};

/// What a successful reload put in force.
#[derive(Debug)]
pub struct Reloaded {
    /// Settings that changed in the file but keep their old value until a restart.
    pub restart_needed: Vec<&'static str>,
    /// `[log] level`, put in force once the reload has been logged at the old level (a reload
    /// to `warn` would otherwise hide its own "config reloaded").
    log_level: String,
}

/// Why a reload changed nothing.
#[derive(Debug)]
pub enum ReloadError {
    /// The file could not be read or is not a valid config (every problem, with its position).
    Config(ConfigErrors),
    Build(BuildError),
    Mail(MailError),
    Tls(TlsError),
}

impl ReloadError {
    /// One line per problem, as `casegate check` prints them.
    pub fn problems(&self) -> Vec<String> {
        match self {
            ReloadError::Config(errors) => {
                errors.problems().iter().map(|p| p.to_string()).collect()
            }
            ReloadError::Build(error) => vec![error.to_string()],
            ReloadError::Mail(error) => vec![format!("mail: {error}")],
            ReloadError::Tls(error) => vec![format!("TLS: {error}")],
        }
    }
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problems().join("; "))
    }
}

impl std::error::Error for ReloadError {}

/// Re-reads one config file and swaps what it describes into the running gateway.
pub struct Reloader {
    path: PathBuf,
    gateway: Arc<Snapshot<Gateway>>,
    /// `None` when the listener serves plain HTTP; turning TLS on or off needs a restart.
    tls: Option<Arc<Snapshot<TlsAcceptor>>>,
    /// What the running process was started with and cannot change; behind the lock that also
    /// makes a SIGHUP and an API call wait for each other instead of racing to swap.
    fixed: Mutex<Fixed>,
}

impl Reloader {
    pub fn new(
        path: PathBuf,
        started_with: &config::Config,
        gateway: Arc<Snapshot<Gateway>>,
        tls: Option<Arc<Snapshot<TlsAcceptor>>>,
    ) -> Reloader {
        Reloader {
            path,
            gateway,
            tls,
            fixed: Mutex::new(Fixed::of(started_with)),
        }
    }

    /// Reloads once, logs the outcome and counts it in `casegate_reloads_total`.
    pub async fn reload(&self) -> Result<Reloaded, ReloadError> {
        let fixed = self.fixed.lock().await;
        let metrics = Arc::clone(self.gateway.current().metrics());
        let outcome = self.build_and_swap(&fixed).await;
        match &outcome {
            Ok(reloaded) => {
                metrics.record_reload(Outcome::Ok);
                metrics.record_restart_pending(!reloaded.restart_needed.is_empty());
                info!(path = %self.path.display(), "config reloaded; new requests use it");
                for setting in &reloaded.restart_needed {
                    warn!(
                        setting,
                        "config reload: this setting changed but needs a restart; the old value stays in force"
                    );
                }
                crate::process_log::apply_level(&reloaded.log_level);
            }
            Err(error) => {
                metrics.record_reload(Outcome::Failed);
                let problems = error.problems();
                error!(path = %self.path.display(), problems = problems.len(), "config reload failed; the old config stays in force");
                for problem in problems {
                    error!("config reload: {problem}");
                }
            }
        }
        outcome
    }

    async fn build_and_swap(&self, fixed: &Fixed) -> Result<Reloaded, ReloadError> {
        let path = self.path.clone();
        // Reading the file, key files and certificates is blocking I/O.
        let config = tokio::task::spawn_blocking(move || config::load(&path))
            .await
            .map_err(|join| ReloadError::Config(ConfigErrors::whole_file(&self.path, join)))?
            .map_err(ReloadError::Config)?;
        let mailer = match &config.mail {
            Some(mail) => Some(Mailer::new(mail).map_err(ReloadError::Mail)?),
            None => None,
        };
        let gateway = self
            .gateway
            .current()
            .rebuild(&config, mailer)
            .map_err(ReloadError::Build)?;
        let acceptor = match (&self.tls, &config.server.tls) {
            (Some(_), Some(files)) => {
                Some(tls::acceptor(&files.cert, &files.key).map_err(ReloadError::Tls)?)
            }
            _ => None,
        };
        // Everything is built: from here on nothing fails, so the swap is all or nothing.
        self.gateway.replace(Arc::new(gateway));
        if let (Some(snapshot), Some(acceptor)) = (&self.tls, acceptor) {
            snapshot.replace(Arc::new(acceptor));
        }
        Ok(Reloaded {
            restart_needed: restart_needed(fixed, &config),
            log_level: config.log.level,
        })
    }
}
