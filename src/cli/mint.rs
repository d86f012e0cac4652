//! `casegate mint`: sign a share link with the active key and print it (or its details as JSON).

use std::path::PathBuf;
use std::process::ExitCode;

use casegate::gateway::{LinkMinter, ShareRequest};

use super::print_config_errors;

#[derive(clap::Args, Debug)]
pub struct MintArgs {
    #[arg(short, long, default_value = "config/casegate.toml")]
    config: PathBuf,
    /// The case to share.
    #[arg(long)]
    case: String,
    /// The scope (set of allowed routes) the link grants.
    #[arg(long)]
    scope: String,
    /// Lifetime such as 90m, 24h, 7d, or whole seconds (default: links.default_ttl).
    #[arg(long)]
    ttl: Option<String>,
    /// The recipient's email address, carried in the link.
    #[arg(long)]
    email: Option<String>,
    /// The language the case is shown in (e.g. sv-SE).
    #[arg(long)]
    lang: Option<String>,
    /// Print {url, token, share_id, case, scope, expires_at} as JSON instead of the URL.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &MintArgs) -> ExitCode {
    let config = match casegate::config::load(&args.config) {
        Ok(config) => config,
        Err(errors) => {
            print_config_errors(&errors);
            return ExitCode::FAILURE;
        }
    };
    let ttl = match args
        .ttl
        .as_deref()
        .map(casegate::config::parse_ttl)
        .transpose()
    {
        Ok(ttl) => ttl,
        Err(error) => {
            eprintln!("--ttl: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Signing needs no state store: minting works while a gateway holds the store's lock.
    let minter = LinkMinter::new(&config);
    let request = ShareRequest {
        case: &args.case,
        scope: &args.scope,
        ttl,
        email: args.email.as_deref(),
        lang: args.lang.as_deref(),
    };
    match minter.mint_link(&request, casegate::clock::unix_now()) {
        Ok(link) if args.json => match serde_json::to_string(&link) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("cannot encode the link as JSON: {error}");
                ExitCode::FAILURE
            }
        },
        Ok(link) => {
            println!("{}", link.url);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("cannot mint: {error}");
            ExitCode::FAILURE
        }
    }
}
