//! `config/casegate.service` agrees with the binary and the shipped config: it starts `casegate
//! serve` on the documented paths, gives the state directory as the only writable path, and leaves
//! systemd's stop timeout above the graceful stop it must not cut short. (`systemd-analyze verify`
//! checks the unit's syntax where systemd is installed; this needs nothing but the files.)

use std::path::Path;
use std::time::Duration;

use casegate::config::{self, parse_duration};

/// Stands in for every `{ env = ... }` secret of the shipped config.
const KEY: &str = "Y2FzZWdhdGUtaW50ZWdyYXRpb24tdGVzdC1rZXktMzJi";

/// The admin API drains for up to 10 s (src/admin/listener.rs), alongside the main listener.
const ADMIN_DRAIN: Duration = Duration::from_secs(10);

/// `(section, key, value)` for every assignment in a systemd unit, in file order (keys repeat).
fn assignments(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not `Key=value`: {line:?}", number + 1));
        assert!(
            !section.is_empty(),
            "line {}: outside a section",
            number + 1
        );
        out.push((
            section.clone(),
            key.trim().to_owned(),
            value.trim().to_owned(),
        ));
    }
    out
}

fn unit() -> Vec<(String, String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/casegate.service");
    assignments(&std::fs::read_to_string(path).expect("config/casegate.service"))
}

/// The single value of `section.key`.
fn value<'a>(unit: &'a [(String, String, String)], section: &str, key: &str) -> &'a str {
    let found: Vec<&str> = unit
        .iter()
        .filter(|(s, k, _)| s == section && k == key)
        .map(|(_, _, v)| v.as_str())
        .collect();
    assert_eq!(found.len(), 1, "[{section}] {key}: {found:?}");
    found[0]
}

#[test]
fn the_unit_starts_serve_as_its_own_user_with_the_documented_paths() {
    let unit = unit();
    let sections: Vec<&str> = unit.iter().map(|(s, _, _)| s.as_str()).collect();
    assert!(
        sections
            .iter()
            .all(|s| ["Unit", "Service", "Install"].contains(s))
    );
    assert_eq!(
        value(&unit, "Service", "ExecStart"),
        "/usr/local/bin/casegate serve --config /etc/casegate/casegate.toml"
    );
    assert_eq!(
        value(&unit, "Service", "ExecReload"),
        "/bin/kill -HUP $MAINPID"
    );
    assert_eq!(value(&unit, "Service", "User"), "casegate");
    assert_eq!(value(&unit, "Service", "DynamicUser"), "no");
    assert_eq!(value(&unit, "Service", "Type"), "exec");
    assert_eq!(
        value(&unit, "Service", "EnvironmentFile"),
        "/etc/casegate/env"
    );
    assert_eq!(value(&unit, "Install", "WantedBy"), "multi-user.target");
}

#[test]
fn only_the_state_directory_is_writable_and_no_privilege_is_kept() {
    let unit = unit();
    assert_eq!(value(&unit, "Service", "ProtectSystem"), "strict");
    assert_eq!(value(&unit, "Service", "StateDirectory"), "casegate");
    assert_eq!(
        value(&unit, "Service", "ReadWritePaths"),
        "/var/lib/casegate"
    );
    assert_eq!(value(&unit, "Service", "NoNewPrivileges"), "yes");
    assert_eq!(value(&unit, "Service", "CapabilityBoundingSet"), "");
    assert_eq!(value(&unit, "Service", "AmbientCapabilities"), "");
    assert_eq!(
        value(&unit, "Service", "RestrictAddressFamilies"),
        "AF_INET AF_INET6 AF_UNIX"
    );
    for key in [
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
    ] {
        assert_eq!(value(&unit, "Service", key), "yes", "{key}");
    }
    let filters: Vec<&str> = unit
        .iter()
        .filter(|(_, k, _)| k == "SystemCallFilter")
        .map(|(_, _, v)| v.as_str())
        .collect();
    assert_eq!(filters.first(), Some(&"@system-service"));
    // io_uring for the write batch: setting up a ring and entering it, nothing more (no
    // registered files or buffers, no io_uring_register).
    assert_eq!(
        filters.last(),
        Some(&"io_uring_setup io_uring_enter"),
        "the unit should allow exactly the two io_uring calls the write batch makes"
    );
}

#[test]
fn systemd_waits_longer_than_the_shipped_graceful_stop() {
    let unit = unit();
    let timeout = value(&unit, "Service", "TimeoutStopSec");
    let timeout = parse_duration(timeout).unwrap_or_else(|e| panic!("{timeout:?}: {e}"));
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/casegate.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let shipped = config::parse(&path, &text, &|_| Some(KEY.to_owned()))
        .unwrap_or_else(|errors| panic!("{errors}"));
    let graceful = shipped.server.shutdown_grace.max(ADMIN_DRAIN);
    assert!(
        timeout >= graceful + Duration::from_secs(5),
        "TimeoutStopSec={timeout:?} leaves no room after a {graceful:?} graceful stop"
    );
}
