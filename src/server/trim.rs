//! Giving the memory parked connections freed back to the system.
//!
//! A parked HTTP/1 connection (`connection.rs`) frees hyper's 16 KiB of buffers, but glibc's
//! malloc keeps freed memory that sits between live allocations (the connections' tasks) for
//! reuse: 10,000 parked connections still weighed 176 MiB resident. `malloc_trim` hands every
//! whole free page back. It walks the heap (milliseconds for hundreds of MiB), so it runs on a
//! thread of its own, at most once a second, and only after connections were parked.

use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Connections parked since the process started.
static PARKED: AtomicU64 = AtomicU64::new(0);
static TRIMMER: Once = Once::new();
const TRIM_INTERVAL: Duration = Duration::from_secs(1);

/// Counts a parked connection; starts the trimming thread on the first.
pub fn connection_parked() {
    PARKED.fetch_add(1, Ordering::Relaxed);
    TRIMMER.call_once(|| {
        let started = std::thread::Builder::new()
            .name("casegate-trim".into())
            .spawn(trim_after_parking);
        if let Err(error) = started {
            tracing::warn!(%error, "cannot start the memory-trimming thread; parked connections' buffers stay allocated");
        }
    });
}

fn trim_after_parking() {
    let mut trimmed_at = 0;
    loop {
        std::thread::sleep(TRIM_INTERVAL);
        let parked = PARKED.load(Ordering::Relaxed);
        if parked != trimmed_at {
            trimmed_at = parked;
            release_free_pages();
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_pages() {
    unsafe extern "C" {
        /// glibc: releases free memory at the top of the heap and, since 2.8, every whole free
        /// page inside it (`madvise(MADV_DONTNEED)`), in every arena. Takes and returns plain
        /// integers; never touches memory the caller owns.
        fn malloc_trim(pad: usize) -> i32;
    }
    // SAFETY: malloc_trim has no preconditions; it only takes glibc's own arena locks.
    unsafe {
        malloc_trim(0);
    }
}

/// Other C libraries have no `malloc_trim`; their freed memory stays with the process.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_pages() {}
