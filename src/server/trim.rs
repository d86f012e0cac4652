//! Giving the memory parked connections freed back to the system.
//!
//! A parked HTTP/1 connection (`connection.rs`) frees hyper's 16 KiB of buffers, but the allocator
//! keeps freed memory for reuse (with glibc's malloc, 10,000 parked connections still weighed
//! 176 MiB resident). mimalloc returns free pages to the system by itself after a short delay;
//! `mi_collect` asks it to do so now, for what it can reach from here. It walks the heaps, so it runs
//! on a thread of its own, at most once a second, and only after connections were parked. 10,000
//! parked connections: 58 MiB resident (benches/load/idle_connections.sh).

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

fn release_free_pages() {
    // SAFETY: mi_collect takes a flag and has no preconditions; it frees and decommits only
    // memory mimalloc itself holds as free, on the calling thread's heap and the abandoned ones.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
}
