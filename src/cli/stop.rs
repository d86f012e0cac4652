//! Stopping a running gateway on a signal, as systemd and a person at a terminal expect: the first
//! SIGTERM or SIGINT stops gracefully (no new connections, requests in flight finish within
//! `[server] shutdown_grace`, the state store is flushed); a second one during that wait gives up
//! on them and exits at once.

use std::process::ExitCode;
use std::time::Duration;

use casegate::RunningGateway;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing::{error, info};

/// SIGTERM (systemd's stop, `kill`) and SIGINT (Ctrl-C), listened for from creation on.
///
/// Both streams live for the whole run, so a second signal arriving while the first is being
/// handled is queued here rather than missed (or, worse, left to the default action).
pub struct StopSignals {
    terminate: Signal,
    interrupt: Signal,
}

impl StopSignals {
    /// Starts listening. Must be called inside the runtime.
    pub fn listen() -> std::io::Result<StopSignals> {
        Ok(StopSignals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Resolves with the name of the next stop signal.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

/// How a run ended after its stop signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Everything in flight finished (or the grace ran out) and the store was flushed: exit 0.
    Gracefully,
    /// A second signal cut the graceful stop short: exit at once, non-zero.
    Forced,
}

impl Stopped {
    pub fn exit_code(self) -> ExitCode {
        match self {
            Stopped::Gracefully => ExitCode::SUCCESS,
            Stopped::Forced => ExitCode::FAILURE,
        }
    }
}

/// Waits for a stop signal, then stops `running` gracefully unless a second signal comes first.
pub async fn run_until_stopped(
    running: RunningGateway,
    signals: &mut StopSignals,
    grace: Duration,
) -> Stopped {
    let first = signals.next().await;
    info!(
        signal = first,
        ?grace,
        "stopping: no new connections; requests in flight may finish within the grace; \
         a second signal exits at once"
    );
    tokio::select! {
        () = running.shutdown() => {
            info!("stopped gracefully");
            Stopped::Gracefully
        }
        second = signals.next() => {
            error!(
                signal = second,
                "second stop signal: exiting at once; requests still in flight are cut off and \
                 uses not yet written to the state store are lost"
            );
            Stopped::Forced
        }
    }
}
