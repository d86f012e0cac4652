//! The process log's level. The binary installs the log subscriber and owns its filter; the
//! library only knows the config, so a reload hands `[log] level` to whatever the binary
//! registered here.

use std::sync::OnceLock;

static APPLY_LEVEL: OnceLock<fn(&str)> = OnceLock::new();

/// Registers how a new `[log] level` (already validated) is put in force; the first call wins.
pub fn on_level_change(apply: fn(&str)) {
    let _ = APPLY_LEVEL.set(apply);
}

/// Puts `level` in force, if anything registered how; a process embedding the library without a
/// subscriber of its own has nothing to change.
pub(crate) fn apply_level(level: &str) {
    if let Some(apply) = APPLY_LEVEL.get() {
        apply(level);
    }
}
