//! What a panic leaves behind: one `error` line in the process log and a count in
//! `casegate_panics_total`.
//!
//! A panic is a bug: casegate refuses bad input with an answer, never by panicking (the fuzz
//! targets look for exactly this). When one happens anyway, what it was doing stops and nothing
//! else: a request being handled is answered as an internal error (`caught_panic.rs`),
//! a panic in a connection's own loop closes that connection (the runtime ends its task), one on
//! a thread of its own ends that thread; every other guest goes on. Without a hook of ours,
//! Rust's default one writes the panic's message to stderr as bare text, outside the log's
//! format, and nothing counts it, so an operator alerting on the log's level or on `/metrics`
//! would never hear of it.
//!
//! The message is logged only when it is a string literal of casegate's own source. A message
//! formatted at run time (`unwrap` on an error, `expect`, an index out of range) may quote what
//! the error held, and that can be what a client sent: a link, a cookie, a code. Those are never
//! logged; the place in the source is, and is what a bug report needs.

use std::panic::PanicHookInfo;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::error;

static PANICS: AtomicU64 = AtomicU64::new(0);
static INSTALL: Once = Once::new();

/// Replaces the default panic hook with ours, once for the process. The binary calls it at
/// start; a process embedding the library keeps whatever hook it chose.
pub fn install() {
    INSTALL.call_once(|| std::panic::set_hook(Box::new(report)));
}

/// Panics reported since the process started (0 unless [`install`] was called).
pub fn panics() -> u64 {
    PANICS.load(Ordering::Relaxed)
}

fn report(info: &PanicHookInfo<'_>) {
    PANICS.fetch_add(1, Ordering::Relaxed);
    let thread = std::thread::current();
    let thread = thread.name().unwrap_or("unnamed");
    // `Location` displays as `file:line:column`.
    let location = info
        .location()
        .map_or_else(|| "unknown".to_owned(), ToString::to_string);
    error!(
        thread,
        location,
        panic_message = literal_message(info).unwrap_or(NOT_LOGGED),
        version = crate::build_info::VERSION,
        build = crate::build_info::BUILD,
        commit = crate::build_info::COMMIT,
        "casegate panicked, which is a bug: what it was doing has stopped (a request: answered as \
         an internal error; a connection's loop: that connection closed; other connections go \
         on). Please report the location, the version, the build and the commit"
    );
}

const NOT_LOGGED: &str = "(formatted at run time; not logged, as it may quote what a client sent)";

/// The panic's message when it is a literal of the source, and so holds nothing a client sent.
fn literal_message<'a>(info: &'a PanicHookInfo<'_>) -> Option<&'a str> {
    // std hands a hook `&'static str` only for a message with no formatting arguments; anything
    // formatted arrives as a `String`.
    info.payload().downcast_ref::<&'static str>().copied()
}
