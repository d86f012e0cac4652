//! `casegate check`: validation only, the same validation `serve` runs, with no side effects.

use std::path::Path;
use std::process::ExitCode;

use super::print_config_errors;

pub fn run(path: &Path) -> ExitCode {
    match casegate::config::load(path) {
        Ok(config) => match casegate::gateway::Gateway::check(&config) {
            Ok(_) => {
                println!("{}: ok", path.display());
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("{}: {error}", path.display());
                ExitCode::FAILURE
            }
        },
        Err(errors) => {
            print_config_errors(&errors);
            ExitCode::FAILURE
        }
    }
}
