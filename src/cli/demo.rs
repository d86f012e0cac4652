//! `casegate demo`: a newcomer's first run. Starts the built-in demo case app and the real gateway in
//! front of it on loopback, with a fresh key and a fresh state directory (removed at exit), and prints
//! links to try. The gateway is started from an ordinary config (config/demo.toml, embedded) through
//! the same `config::parse` and `start` as `serve`. Its admin API listens on loopback too, with one
//! client whose token is generated for the run and printed, so `casegate share` can be tried.

use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use casegate::gateway::{LinkMinter, ShareRequest};
use casegate::share::keys::{RandomnessUnavailable, generate_key};
use tokio::net::TcpListener;
use tracing::error;

use super::stop::{StopSignals, run_until_stopped};
use super::{print_config_errors, runtime};

const DEMO_CONFIG: &str = include_str!("../../config/demo.toml");

pub fn run(port: u16) -> ExitCode {
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(demo(port))
}

async fn demo(port: u16) -> ExitCode {
    let app_listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot bind the demo app on loopback: {error}");
            return ExitCode::FAILURE;
        }
    };
    let gateway_listener = match bind_gateway(port).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot bind the gateway on loopback: {error}");
            return ExitCode::FAILURE;
        }
    };
    let secrets = match DemoSecrets::generate() {
        Ok(secrets) => secrets,
        Err(error) => {
            eprintln!("cannot generate the demo's key and admin token: {error}");
            return ExitCode::FAILURE;
        }
    };
    let state_dir = match fresh_state_dir() {
        Ok(dir) => dir,
        Err(error) => {
            eprintln!("cannot create a state directory for the demo: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = demo_with_state(app_listener, gateway_listener, port, &state_dir, &secrets).await;
    if let Err(error) = std::fs::remove_dir_all(&state_dir) {
        eprintln!(
            "cannot remove the demo's state directory {}: {error}",
            state_dir.display()
        );
    }
    code
}

/// What each demo run generates afresh.
struct DemoSecrets {
    link_key: String,
    /// The demo admin client's bearer token.
    admin_token: String,
}

impl DemoSecrets {
    fn generate() -> Result<DemoSecrets, RandomnessUnavailable> {
        Ok(DemoSecrets {
            link_key: generate_key()?,
            admin_token: generate_key()?,
        })
    }
}

async fn demo_with_state(
    app_listener: TcpListener,
    gateway_listener: TcpListener,
    requested_port: u16,
    state_dir: &Path,
    secrets: &DemoSecrets,
) -> ExitCode {
    let (Ok(app_addr), Ok(gateway_addr)) =
        (app_listener.local_addr(), gateway_listener.local_addr())
    else {
        eprintln!("cannot read the bound addresses");
        return ExitCode::FAILURE;
    };
    // Quoted as TOML quotes strings, whatever characters the temp dir's path holds.
    let state_path = toml::Value::String(state_dir.display().to_string()).to_string();
    let text = DEMO_CONFIG
        .replace("{gateway_addr}", &gateway_addr.to_string())
        .replace("{app_addr}", &app_addr.to_string())
        .replace(
            "{admin_addr}",
            &admin_addr(requested_port, gateway_addr).to_string(),
        )
        .replace("\"{state_dir}\"", &state_path);
    let env = |name: &str| match name {
        "CASEGATE_DEMO_KEY" => Some(secrets.link_key.clone()),
        "CASEGATE_DEMO_ADMIN_TOKEN" => Some(secrets.admin_token.clone()),
        _ => None,
    };
    let config = match casegate::config::parse(Path::new("config/demo.toml"), &text, &env) {
        Ok(config) => config,
        Err(errors) => {
            print_config_errors(&errors);
            return ExitCode::FAILURE;
        }
    };
    let app = match casegate::demo::spawn_demo_app(app_listener).await {
        Ok(app) => app,
        Err(error) => {
            eprintln!("cannot start the demo app: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut signals = match StopSignals::listen() {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("cannot listen for SIGTERM and SIGINT: {error}");
            return ExitCode::FAILURE;
        }
    };
    let running = match casegate::start_on(gateway_listener, &config).await {
        Ok(running) => running,
        Err(error) => {
            eprintln!("cannot start the gateway: {error}");
            return ExitCode::FAILURE;
        }
    };
    let minter = LinkMinter::new(&config);
    let now = casegate::clock::unix_now();
    let links = ["view", "guest"].map(|scope| {
        minter.mint_link(
            &ShareRequest {
                case: "42",
                scope,
                ttl: None,
                email: None,
                lang: Some("en"),
            },
            now,
        )
    });
    let ([Ok(view), Ok(guest)], Some(admin)) = (links, running.admin_addr) else {
        eprintln!("cannot mint the demo links or find the admin API");
        running.shutdown().await;
        return ExitCode::FAILURE;
    };
    print_welcome(&Welcome {
        gateway: gateway_addr,
        app: app_addr,
        admin,
        admin_token: &secrets.admin_token,
        view_url: &view.url,
        guest_url: &guest.url,
    });
    let stopped = run_until_stopped(running, &mut signals, config.server.shutdown_grace).await;
    drop(app);
    stopped.exit_code()
}

/// A new, empty directory under the system temp dir, mode 0700; creating fails rather than reuse
/// one.
fn fresh_state_dir() -> std::io::Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("casegate-demo-{}-{nanos}", std::process::id()));
    // Created private here, as the store creates its own (the store leaves the mode of a
    // directory that already exists alone).
    std::fs::DirBuilder::new()
        .mode(casegate::state::PRIVATE_DIR)
        .create(&dir)?;
    Ok(dir)
}

/// The admin API's address: the port after the gateway's, or any free one when `--port 0` asked
/// for any port or that one is taken.
fn admin_addr(requested_port: u16, gateway: SocketAddr) -> SocketAddr {
    // Only probed here: the gateway binds it moments later. Should another program take the port
    // in between, the start fails with a message naming the address.
    let port = gateway
        .port()
        .checked_add(1)
        .filter(|&port| {
            requested_port != 0 && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        })
        .unwrap_or(0);
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The requested port, or any free one when it is taken (a second demo, another service).
async fn bind_gateway(port: u16) -> std::io::Result<TcpListener> {
    match TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => Ok(listener),
        Err(_) if port != 0 => TcpListener::bind("127.0.0.1:0").await,
        Err(error) => Err(error),
    }
}

/// Where everything of this run is, and what a newcomer needs to try it.
struct Welcome<'a> {
    gateway: SocketAddr,
    app: SocketAddr,
    admin: SocketAddr,
    admin_token: &'a str,
    view_url: &'a str,
    guest_url: &'a str,
}

fn print_welcome(welcome: &Welcome<'_>) {
    let Welcome {
        gateway,
        app,
        admin,
        admin_token,
        view_url,
        guest_url,
    } = welcome;
    // Printing an admin token is wrong anywhere else. Here it is this run's own throwaway token,
    // for an API on loopback that dies with the demo, and the newcomer needs it to try the API.
    println!(
        "\
casegate demo
  demo case app (the legacy app, direct): http://{app}
  casegate in front of it:                http://{gateway}
  its admin API:                          http://{admin}

Open this link to case 42 (view-only, valid 24 h):
  {view_url}

What to try:
  * Open the link in a browser: the case page opens and the video plays and seeks.
  * curl -si '{view_url}' | head     -> 303 to /cases/42 with the guest cookie
  * From the case page, follow the link to case 43: refused (another case).
  * Follow the billing link: refused (billing is not shared, with either link).
  * Post a comment: refused (this link is view-only).
  * curl -si http://{gateway}/cases/42   -> 401: no share session, nothing reaches the app.
  * A link that may also comment (scope 'guest'):
    {guest_url}

Share and revoke through the admin API with `casegate share`, from another terminal in this
directory (the token is this demo's own and stops working when it stops):
  export CASEGATE_ADMIN_URL=http://{admin} CASEGATE_ADMIN_TOKEN={admin_token}
  cargo run --release -- share create --case 42 --scope view --ttl 10m && cargo run --release -- share list

Stop with Ctrl-C."
    );
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_demo_state_directory_is_private_and_new() {
        let dir = fresh_state_dir().unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        std::fs::remove_dir(&dir).unwrap();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    }
}
