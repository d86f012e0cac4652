//! Argument definitions and dispatch for the `casegate` binary.

mod check;
mod demo;
mod hangup;
mod mint;
mod serve;
mod share;
mod stop;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// casegate: share one case of a legacy case app through a signed link, read-only, and nothing else.
#[derive(Parser, Debug)]
// `--version` names the build and its commit too (`casegate::build_info`).
#[command(name = "casegate", version = casegate::build_info::version_line(), about)]
pub struct Args {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Run the gateway.
    Serve {
        #[arg(short, long, default_value = "config/casegate.toml")]
        config: PathBuf,
    },
    /// Validate the config and print every problem with file:line; exit 0 when it is valid.
    Check {
        #[arg(short, long, default_value = "config/casegate.toml")]
        config: PathBuf,
    },
    /// Sign a share link with the active key and print its URL.
    Mint(mint::MintArgs),
    /// Print a fresh random 256-bit key, base64url, for [keys.secrets].
    Keygen,
    /// Create, list, show and revoke shares through a running gateway's admin API.
    Share(share::ShareArgs),
    /// Start a demo case app and the gateway in front of it on loopback, and print a link to try.
    Demo {
        /// Port for the gateway (0: any free port).
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
}

pub fn run(args: Args) -> ExitCode {
    match args.command {
        Command::Serve { config } => serve::run(&config),
        Command::Check { config } => check::run(&config),
        Command::Mint(mint_args) => mint::run(&mint_args),
        Command::Keygen => match casegate::share::keys::generate_key() {
            Ok(key) => {
                println!("{key}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("cannot generate a key: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Demo { port } => demo::run(port),
        Command::Share(share_args) => share::run(&share_args),
    }
}

/// The process log's filter, replaceable once the config's `[log] level` is known.
static LOG_FILTER: std::sync::OnceLock<
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>,
> = std::sync::OnceLock::new();

/// Logs go to stderr (journald picks them up) at `info` until the config says otherwise;
/// `RUST_LOG` overrides both.
pub fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(casegate::config::DEFAULT_LOG_LEVEL)
    });
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let _ = LOG_FILTER.set(handle);
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // Colour codes only for a person at a terminal, never into journald or a file.
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .init();
}

/// Applies the config's `[log] level` (already validated), unless `RUST_LOG` is set.
pub fn apply_log_level(level: &str) {
    if std::env::var_os("RUST_LOG").is_some_and(|value| !value.is_empty()) {
        return;
    }
    if let (Some(handle), Ok(filter)) = (
        LOG_FILTER.get(),
        tracing_subscriber::EnvFilter::try_new(level),
    ) {
        let _ = handle.reload(filter);
    }
}

/// Builds the control runtime: signals, the admin API, the state store's maintenance and Redis
/// follower. Guests are served by the workers' own runtimes (`server::workers`), so one thread
/// is enough here.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("casegate-control")
        .enable_all()
        .build()
}

/// Prints every config problem, one per line, as `file:line:column: message`.
fn print_config_errors(errors: &casegate::config::ConfigErrors) {
    eprintln!("{errors}");
}
