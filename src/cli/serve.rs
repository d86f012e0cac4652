//! `casegate serve`: load the config, start the gateway, stop gracefully on SIGTERM or SIGINT.

use std::path::Path;
use std::process::ExitCode;

use tracing::{error, info};

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
    runtime.block_on(async {
        let running = match casegate::start(&config).await {
            Ok(running) => running,
            Err(error) => {
                error!(%error, "cannot start");
                return ExitCode::FAILURE;
            }
        };
        wait_for_stop_signal().await;
        info!("stop signal received; finishing requests in flight");
        running.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// Resolves on SIGTERM (systemd's stop) or SIGINT (Ctrl-C).
pub async fn wait_for_stop_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                error!(%error, "cannot listen for SIGTERM; only Ctrl-C will stop casegate");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
