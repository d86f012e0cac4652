//! `casegate serve`: load the config, start the gateway, stop gracefully on SIGTERM or SIGINT
//! (see `stop.rs`); SIGHUP is logged, not obeyed, until hot reload exists (see `hangup.rs`).

use std::path::Path;
use std::process::ExitCode;

use tracing::error;

use super::hangup::warn_on_reload_requests;
use super::stop::{StopSignals, Stopped, run_until_stopped};
use super::{print_config_errors, runtime};

pub fn run(path: &Path) -> ExitCode {
    let config = match casegate::config::load(path) {
        Ok(config) => config,
        Err(errors) => {
            print_config_errors(&errors);
            return ExitCode::FAILURE;
        }
    };
    super::apply_log_level(&config.log.level);
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let stopped = runtime.block_on(async {
        // Listening before the gateway starts: from its first connection on, a stop is graceful.
        let mut signals = match StopSignals::listen() {
            Ok(signals) => signals,
            Err(error) => {
                error!(%error, "cannot listen for SIGTERM and SIGINT; not starting");
                return Err(());
            }
        };
        if let Err(error) = warn_on_reload_requests() {
            error!(%error, "cannot listen for SIGHUP; not starting");
            return Err(());
        }
        let running = match casegate::start(&config).await {
            Ok(running) => running,
            Err(error) => {
                error!(%error, "cannot start");
                return Err(());
            }
        };
        Ok(run_until_stopped(running, &mut signals, config.server.shutdown_grace).await)
    });
    match stopped {
        Ok(stopped @ Stopped::Gracefully) => stopped.exit_code(),
        Ok(stopped @ Stopped::Forced) => {
            // Dropping the runtime would wait for blocking tasks (state-store writes) to finish.
            runtime.shutdown_background();
            stopped.exit_code()
        }
        Err(()) => ExitCode::FAILURE,
    }
}
