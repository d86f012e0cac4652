//! The `casegate` command line: parse arguments, load the config, run. Every subcommand lives in
//! `cli/`; this file only dispatches and sets up logging.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    cli::init_logging();
    // After the log: a panic's report is a line of it.
    casegate::panic_report::install();
    cli::run(args)
}
