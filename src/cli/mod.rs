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
#[command(name = "casegate", version, about)]
pub struct Args {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Run the gateway.
    Serve {
        #[arg(long, default_value = "config/casegate.toml")]
        config: PathBuf,
    },
    /// Validate the config and print every problem with file:line; exit 0 when it is valid.
    Check {
        #[arg(long, default_value = "config/casegate.toml")]
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

/// Logs go to stderr (journald picks them up); `RUST_LOG` overrides the default `info` level.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into journald or a file.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Builds the async runtime the server runs on.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// Prints every config problem, one per line, as `file:line:column: message`.
fn print_config_errors(errors: &casegate::config::ConfigErrors) {
    eprintln!("{errors}");
}
