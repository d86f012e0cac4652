//! `casegate serve`: load the config, start the gateway, stop gracefully on SIGTERM or SIGINT
//! (see `stop.rs`); reload the config file on SIGHUP (see `hangup.rs`).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use tracing::error;

use super::hangup;
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
    // A reload applies `[log] level` again, through the same function.
    casegate::process_log::on_level_change(super::apply_log_level);
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
        let hangups = match hangup::listen() {
            Ok(hangups) => hangups,
            Err(error) => {
                error!(%error, "cannot listen for SIGHUP; not starting");
                return Err(());
            }
        };
        let running = match casegate::start_from_file(&config, path).await {
            Ok(running) => running,
            Err(error) => {
                error!(%error, "cannot start");
                return Err(());
            }
        };
        if let Some(reloader) = running.reloader() {
            hangup::reload_on_hangup(hangups, Arc::clone(reloader));
        }
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
