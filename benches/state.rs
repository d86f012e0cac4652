//! Revocation lookup <= 100 ns (hit and miss) with 1 million revoked shares, and replay (open) of
//! a journal holding 1 million revocations <= 2 s; also prints the resident memory once loaded.

use std::hint::black_box;
use std::time::{Duration, Instant};

use casegate::state::{StateSettings, StateStore};
use criterion::{Criterion, criterion_group, criterion_main};

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

fn state(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    fill(dir.path());

    let before = resident_kib();
    let started = Instant::now();
    let store = StateStore::open(&settings(dir.path())).expect("replay");
    let replay = started.elapsed();
    let after = resident_kib();
    println!(
        "state: replayed {REVOKED} revocations in {replay:?}; VmRSS {} MiB (before open {} MiB)",
        after.unwrap_or(0) / 1024,
        before.unwrap_or(0) / 1024,
    );

    c.bench_function("revocation hit (1M revoked)", |b| {
        let mut n = 0usize;
        let ids: Vec<String> = (0..1024).map(|i| share_id(i * 977)).collect();
        b.iter(|| {
            n = (n + 1) & 1023;
            black_box(store.revocation(black_box(&ids[n]), "C-2025-001042", NOW - 10))
        })
    });
    c.bench_function("revocation miss (1M revoked)", |b| {
        b.iter(|| {
            black_box(store.revocation(
                black_box("Zq9TnYAVb3m0qf1Zl8wXk2"),
                black_box("C-2025-001042"),
                NOW - 10,
            ))
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
criterion_main!(benches);
