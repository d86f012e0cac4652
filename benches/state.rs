//! Revocation lookup <= 100 ns (hit and miss) with 1 million revoked shares, and replay (open) of
//! a journal holding 1 million revocations <= 2 s; also prints the resident memory once loaded.

use std::hint::black_box;
use std::time::{Duration, Instant};

use casegate::state::{StateSettings, StateStore};
use criterion::{Criterion, criterion_group};

const REVOKED: usize = 1_000_000;
const NOW: i64 = 1_750_000_000;

fn share_id(n: usize) -> String {
    // 22 base64url characters, like a 16-byte jti.
    format!("Vb3m0qf1Zl8wXk{n:08}")
}

fn settings(dir: &std::path::Path) -> StateSettings {
    StateSettings {
        path: dir.to_path_buf(),
        use_flush_interval: Duration::from_secs(2),
        compact_after_bytes: u64::MAX,
        retention_secs: 400 * 24 * 3600,
    }
}

/// Writes 1M revocations through the public API (one group commit per 10k concurrent revokes).
fn fill(dir: &std::path::Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let store = std::sync::Arc::new(StateStore::open(&settings(dir)).expect("open"));
    runtime.block_on(async {
        for chunk in 0..REVOKED / 10_000 {
            let mut tasks = Vec::with_capacity(10_000);
            for n in chunk * 10_000..(chunk + 1) * 10_000 {
                let store = std::sync::Arc::clone(&store);
                tasks.push(tokio::spawn(async move {
                    store.revoke_share(&share_id(n), NOW).await.expect("revoke");
                }));
            }
            for task in tasks {
                task.await.expect("task");
            }
        }
    });
}

fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Set in a child process of this bench: open the directory it names, print the resident memory,
/// exit. A fresh process, so memory the bench's own fill left behind does not count.
const RSS_PROBE: &str = "CASEGATE_STATE_RSS_PROBE";

fn probe_rss(dir: &str) {
    let before = resident_kib().unwrap_or(0);
    let started = Instant::now();
    let store = StateStore::open(&settings(std::path::Path::new(dir))).expect("replay");
    let replay = started.elapsed();
    let after = resident_kib().unwrap_or(0);
    println!(
        "state: a fresh process replayed {REVOKED} revocations in {replay:?}: VmRSS {} MiB \
         ({} MiB before open; target <= 200 MiB)",
        after / 1024,
        before / 1024,
    );
    black_box(&store);
}

fn state(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    fill(dir.path());
    let probe = std::process::Command::new(std::env::current_exe().expect("own path"))
        .env(RSS_PROBE, dir.path())
        .status()
        .expect("rss probe runs");
    assert!(probe.success(), "rss probe failed");

    let store = StateStore::open(&settings(dir.path())).expect("replay");

    c.bench_function("revocation hit (1M revoked)", |b| {
        let mut n = 0usize;
        let ids: Vec<String> = (0..1024).map(|i| share_id(i * 977)).collect();
        b.iter(|| {
            n = (n + 1) & 1023;
            black_box(store.revocation(black_box(&ids[n]), "C-2025-001042", NOW - 10))
        })
    });
    c.bench_function("revocation miss (1M revoked)", |b| {
        let mut n = 0usize;
        let ids: Vec<String> = (0..1024).map(|i| format!("Zq9TnYAVb3m0qf{i:08}")).collect();
        b.iter(|| {
            n = (n + 1) & 1023;
            black_box(store.revocation(black_box(&ids[n]), "C-2025-001042", NOW - 10))
        })
    });
    drop(store);

    let mut group = c.benchmark_group("replay");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("open with 1M revocations", |b| {
        b.iter(|| StateStore::open(&settings(dir.path())).expect("replay"))
    });
    group.finish();
}

criterion_group!(benches, state);

fn main() {
    if let Some(dir) = std::env::var_os(RSS_PROBE) {
        probe_rss(&dir.to_string_lossy());
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
