//! The embedded state store through its public API: durability across reopen, merge rules,
//! statuses, use batching, compaction, the directory lock and corruption handling.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use casegate::state::{
    NewShare, OpenError, Revocation, RevokeOutcome, SeenShare, ShareStatus, StateSettings,
    StateStore,
};

mod common;

use common::log_capture::LogBuffer;

const NOW: i64 = 1_750_000_000;
const DAY: i64 = 24 * 3600;

fn settings(dir: &Path) -> StateSettings {
    StateSettings {
        path: dir.to_path_buf(),
        use_flush_interval: Duration::from_millis(50),
        compact_after_bytes: 64 * 1024 * 1024,
        retention_secs: 30 * DAY,
    }
}

fn open(dir: &Path) -> StateStore {
    StateStore::open(&settings(dir)).expect("store opens")
}

fn new_share(id: &str, case: &str, issued_at: i64) -> NewShare {
    NewShare {
        id: id.to_owned(),
        case: case.to_owned(),
        scope: "read".to_owned(),
        issued_at,
        expires_at: issued_at + 7 * DAY,
        email: Some("recipient@example.org".to_owned()),
        lang: Some("de-CH".to_owned()),
        note: Some("for the insurer".to_owned()),
        created_by: Some("alice".to_owned()),
        client: "case-app".to_owned(),
    }
}

/// Creates the share `id` of `case`, issued at `issued_at` ([`new_share`]); the test fails if the
/// store refuses it.
async fn create_share(store: &StateStore, id: &str, case: &str, issued_at: i64) {
    store
        .create(new_share(id, case, issued_at))
        .await
        .expect("the share is created");
}

fn seen<'a>(id: &'a str, case: &'a str, issued_at: i64) -> SeenShare<'a> {
    SeenShare {
        id,
        case,
        scope: "read",
        issued_at,
        expires_at: issued_at + DAY,
        email: None,
        lang: None,
    }
}

fn journal_path(dir: &Path) -> PathBuf {
    let mut journals: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "cgj"))
        .collect();
    journals.sort();
    journals.pop().expect("a journal")
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn creates_and_revocations_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        create_share(&store, "share-a", "C-1", NOW - 100).await;
        create_share(&store, "share-b", "C-1", NOW - 50).await;
        create_share(&store, "share-c", "C-2", NOW - 10).await;
        assert_eq!(
            store.revoke_share("share-a", NOW).await.unwrap(),
            RevokeOutcome::Revoked
        );
        assert_eq!(store.revoke_case("C-2", NOW + 5).await.unwrap(), NOW + 5);
    }
    let store = open(dir.path());
    assert_eq!(
        store.revocation("share-a", "C-1", NOW - 100),
        Some(Revocation::Share { at: NOW })
    );
    assert_eq!(store.revocation("share-b", "C-1", NOW - 50), None);
    assert_eq!(
        store.revocation("share-c", "C-2", NOW - 10),
        Some(Revocation::Case {
            not_before: NOW + 5
        })
    );
    let a = store.share("share-a", NOW + 10).unwrap();
    assert_eq!(a.status, ShareStatus::Revoked);
    assert_eq!(a.revoked_at, Some(NOW));
    assert_eq!(a.origin, "api");
    assert_eq!(a.note.as_deref(), Some("for the insurer"));
    assert_eq!(a.client.as_deref(), Some("case-app"));
    let b = store.share("share-b", NOW + 10).unwrap();
    assert_eq!(b.status, ShareStatus::Pending);
    assert_eq!(b.remaining_seconds, 7 * DAY - 60);
    assert_eq!(
        store.share("share-c", NOW + 10).unwrap().revoked_at,
        Some(NOW + 5)
    );
    assert_eq!(store.share("never-seen", NOW), None);
}

#[tokio::test]
async fn revoking_twice_reports_already_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    create_share(&store, "share-a", "C-1", NOW - 100).await;
    assert_eq!(
        store.revoke_share("share-a", NOW).await.unwrap(),
        RevokeOutcome::Revoked
    );
    assert_eq!(
        store.revoke_share("share-a", NOW + 1).await.unwrap(),
        RevokeOutcome::AlreadyRevoked
    );
    assert_eq!(
        store.share("share-a", NOW + 2).unwrap().revoked_at,
        Some(NOW)
    );
    create_share(&store, "share-b", "C-2", NOW - 100).await;
    store.revoke_case("C-2", NOW).await.unwrap();
    assert_eq!(
        store.revoke_share("share-b", NOW + 1).await.unwrap(),
        RevokeOutcome::AlreadyRevoked
    );
}

#[tokio::test]
async fn a_case_cut_off_never_moves_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(store.revoke_case("C-1", NOW).await.unwrap(), NOW);
    assert_eq!(store.revoke_case("C-1", NOW - 500).await.unwrap(), NOW);
    assert_eq!(store.revoke_case("C-1", NOW + 7).await.unwrap(), NOW + 7);
    drop(store);
    let store = open(dir.path());
    assert_eq!(
        store.revocation("any", "C-1", NOW + 7),
        Some(Revocation::Case {
            not_before: NOW + 7
        })
    );
    assert_eq!(store.revocation("any", "C-1", NOW + 8), None);
    assert_eq!(store.revocation("any", "C-other", 0), None);
}

#[tokio::test]
async fn an_external_id_revoked_before_it_was_seen_is_listed_without_a_case() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .revoke_share("external-jti-123456", NOW)
        .await
        .unwrap();
    assert_eq!(
        store.revocation("external-jti-123456", "C-9", NOW - 1),
        Some(Revocation::Share { at: NOW })
    );
    let view = store.share("external-jti-123456", NOW).unwrap();
    assert_eq!(view.status, ShareStatus::Revoked);
    assert_eq!(view.case, None);
    assert_eq!(view.origin, "link");
    let listed = store.list(None, Some(ShareStatus::Revoked), NOW);
    assert_eq!(listed.len(), 1);
    assert!(store.list(Some("C-9"), None, NOW).is_empty());
}

#[tokio::test]
async fn statuses_go_pending_active_expired_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    create_share(&store, "share-a", "C-1", NOW).await;
    assert_eq!(
        store.share("share-a", NOW).unwrap().status,
        ShareStatus::Pending
    );
    store.record_open(&seen("share-a", "C-1", NOW), NOW + 1);
    let active = store.share("share-a", NOW + 2).unwrap();
    assert_eq!(active.status, ShareStatus::Active);
    assert_eq!(active.uses, 1);
    assert_eq!(active.first_used_at, Some(NOW + 1));
    let expired = store.share("share-a", NOW + 7 * DAY).unwrap();
    assert_eq!(expired.status, ShareStatus::Expired);
    assert_eq!(expired.remaining_seconds, 0);
    store.revoke_share("share-a", NOW + 3).await.unwrap();
    assert_eq!(
        store.share("share-a", NOW + 7 * DAY).unwrap().status,
        ShareStatus::Revoked
    );
}

#[tokio::test]
async fn uses_are_batched_and_survive_a_flush_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        create_share(&store, "share-a", "C-1", NOW).await;
        store.record_open(&seen("share-a", "C-1", NOW), NOW + 10);
        store.record_open(&seen("share-a", "C-1", NOW), NOW + 5);
        store.record_activity("share-a", NOW + 30);
        // An external token: known from its first use, with the claims it carried.
        store.record_open(
            &SeenShare {
                email: Some("recipient@example.org"),
                lang: Some("sv"),
                ..seen("external-1", "C-7", NOW - 20)
            },
            NOW + 12,
        );
        // Activity under an id nobody knows is not recorded.
        store.record_activity("ghost", NOW + 40);
        let before = std::fs::metadata(journal_path(dir.path())).unwrap().len();
        store.flush().await.unwrap();
        let after = std::fs::metadata(journal_path(dir.path())).unwrap().len();
        assert!(after > before, "the flush wrote use records");
    }
    let store = open(dir.path());
    let a = store.share("share-a", NOW + 60).unwrap();
    assert_eq!(
        (a.uses, a.first_used_at, a.last_used_at),
        (2, Some(NOW + 5), Some(NOW + 30))
    );
    assert_eq!(a.origin, "api");
    let external = store.share("external-1", NOW + 60).unwrap();
    assert_eq!(external.origin, "link");
    assert_eq!(external.case.as_deref(), Some("C-7"));
    assert_eq!(external.created_at, Some(NOW - 20));
    assert_eq!(external.expires_at, Some(NOW - 20 + DAY));
    assert_eq!(external.scope.as_deref(), Some("read"));
    assert_eq!(external.email.as_deref(), Some("recipient@example.org"));
    assert_eq!(external.lang.as_deref(), Some("sv"));
    assert_eq!(external.status, ShareStatus::Active);
    assert_eq!(store.share("ghost", NOW), None);
}

#[tokio::test]
async fn one_flush_writes_one_record_per_share_however_many_uses() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    create_share(&store, "share-a", "C-1", NOW).await;
    store.record_open(&seen("share-a", "C-1", NOW), NOW);
    store.flush().await.unwrap();
    let one_use = std::fs::metadata(journal_path(dir.path())).unwrap().len();
    for n in 0..1000 {
        store.record_open(&seen("share-a", "C-1", NOW), NOW + n);
        store.record_activity("share-a", NOW + n);
    }
    store.flush().await.unwrap();
    let thousand = std::fs::metadata(journal_path(dir.path())).unwrap().len();
    assert_eq!(store.share("share-a", NOW).unwrap().uses, 1001);
    // The second flush wrote as much as the first: one record, not a thousand.
    let first_flush = {
        let fresh = tempfile::tempdir().unwrap();
        let other = open(fresh.path());
        create_share(&other, "share-a", "C-1", NOW).await;
        let created = std::fs::metadata(journal_path(fresh.path())).unwrap().len();
        other.record_open(&seen("share-a", "C-1", NOW), NOW);
        other.flush().await.unwrap();
        std::fs::metadata(journal_path(fresh.path())).unwrap().len() - created
    };
    assert_eq!(thousand - one_use, first_flush);
}

#[tokio::test]
async fn list_filters_by_case_and_status_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    create_share(&store, "old", "C-1", NOW - 300).await;
    create_share(&store, "new", "C-1", NOW - 100).await;
    create_share(&store, "mid", "C-1", NOW - 200).await;
    create_share(&store, "other", "C-2", NOW - 50).await;
    store.revoke_share("mid", NOW).await.unwrap();
    store.record_open(&seen("pending-use", "C-1", NOW - 400), NOW);
    let ids = |views: Vec<casegate::state::ShareView>| {
        views.into_iter().map(|v| v.id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(store.list(Some("C-1"), None, NOW)),
        ["new", "mid", "old", "pending-use"]
    );
    assert_eq!(
        ids(store.list(Some("C-1"), Some(ShareStatus::Revoked), NOW)),
        ["mid"]
    );
    assert_eq!(
        ids(store.list(None, Some(ShareStatus::Active), NOW)),
        ["pending-use"]
    );
    assert_eq!(store.list(None, None, NOW).len(), 5);
}

#[tokio::test]
async fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    let error = StateStore::open(&settings(dir.path()))
        .err()
        .expect("locked");
    assert!(matches!(error, OpenError::Locked { .. }), "{error}");
    assert!(error.to_string().contains("LOCK"), "{error}");
    drop(first);
    open(dir.path());
}

#[tokio::test]
async fn maintenance_writes_uses_periodically_and_flushes_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    create_share(&store, "share-a", "C-1", NOW).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = store.spawn_maintenance(stopped);
    let created = std::fs::metadata(journal_path(dir.path())).unwrap().len();
    store.record_open(&seen("share-a", "C-1", NOW), NOW + 1);
    let mut written = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if std::fs::metadata(journal_path(dir.path())).unwrap().len() > created {
            written = true;
            break;
        }
    }
    assert!(written, "the periodic flush wrote the use");
    store.record_open(&seen("share-a", "C-1", NOW), NOW + 2);
    stop.send(true).unwrap();
    task.await.unwrap();
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.share("share-a", NOW + 3).unwrap().uses, 2);
}

// === compaction ===

async fn populate(store: &StateStore) {
    create_share(store, "share-a", "C-1", NOW - 100).await;
    create_share(store, "share-b", "C-1", NOW - 50).await;
    create_share(store, "share-c", "C-2", NOW - 10).await;
    store.revoke_share("share-a", NOW).await.unwrap();
    store
        .revoke_share("external-never-seen", NOW)
        .await
        .unwrap();
    store.revoke_case("C-2", NOW).await.unwrap();
    store.record_open(&seen("share-b", "C-1", NOW - 50), NOW + 1);
    store.record_open(&seen("external-used", "C-3", NOW - 5), NOW + 2);
    store.flush().await.unwrap();
}

#[tokio::test]
async fn compaction_then_reopen_gives_the_same_view() {
    let dir = tempfile::tempdir().unwrap();
    let before;
    {
        let store = open(dir.path());
        populate(&store).await;
        assert!(store.compact(NOW).await.unwrap());
        assert_eq!(
            files(dir.path()),
            ["LOCK", "journal-1.cgj", "snapshot-1.cgs"]
        );
        // Writes after the compaction land in the new journal.
        store.record_open(&seen("share-b", "C-1", NOW - 50), NOW + 3);
        store.revoke_share("share-b", NOW + 4).await.unwrap();
        store.flush().await.unwrap();
        before = store.list(None, None, NOW + 10);
    }
    let store = open(dir.path());
    assert_eq!(store.list(None, None, NOW + 10), before);
    assert_eq!(store.share("share-b", NOW + 10).unwrap().uses, 2);
    assert!(store.compact(NOW).await.unwrap());
    drop(store);
    assert_eq!(
        files(dir.path()),
        ["LOCK", "journal-2.cgj", "snapshot-2.cgs"]
    );
    assert_eq!(open(dir.path()).list(None, None, NOW + 10), before);
}

#[tokio::test]
async fn a_crash_between_compaction_steps_replays_to_the_same_view() {
    let dir = tempfile::tempdir().unwrap();
    let saved_journal = dir.path().join("saved-journal");
    let before;
    {
        let store = open(dir.path());
        populate(&store).await;
        std::fs::copy(dir.path().join("journal-0.cgj"), &saved_journal).unwrap();
        store.compact(NOW).await.unwrap();
        before = store.list(None, None, NOW + 10);
    }
    let state_dir = dir.path();
    let restore_old_journal = || {
        std::fs::copy(&saved_journal, state_dir.join("journal-0.cgj")).unwrap();
    };

    // Crashed before deleting the old generation: both are present.
    restore_old_journal();
    std::fs::write(state_dir.join("snapshot-2.cgs.tmp"), b"half a snapshot").unwrap();
    let reopened = open(state_dir);
    assert_eq!(reopened.list(None, None, NOW + 10), before);
    drop(reopened);
    let mut left = files(state_dir);
    left.retain(|name| name != "saved-journal");
    assert_eq!(left, ["LOCK", "journal-1.cgj", "snapshot-1.cgs"]);

    // Crashed after the snapshot's rename, before its journal existed.
    restore_old_journal();
    std::fs::remove_file(state_dir.join("journal-1.cgj")).unwrap();
    let reopened = open(state_dir);
    assert_eq!(reopened.list(None, None, NOW + 10), before);
    reopened.revoke_share("share-b", NOW + 5).await.unwrap();
    drop(reopened);
    assert_eq!(
        open(state_dir).share("share-b", NOW + 10).unwrap().status,
        ShareStatus::Revoked
    );

    // Crashed while writing the next snapshot: the old generation rules, the .tmp goes.
    std::fs::write(state_dir.join("snapshot-2.cgs.tmp"), b"half a snapshot").unwrap();
    let reopened = open(state_dir);
    assert_eq!(
        reopened.share("share-b", NOW + 10).unwrap().status,
        ShareStatus::Revoked
    );
    drop(reopened);
    assert!(!files(state_dir).iter().any(|name| name.ends_with(".tmp")));
}

#[tokio::test]
async fn compaction_drops_revocations_past_retention_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .revoke_share("ancient-external", NOW - 100 * DAY)
        .await
        .unwrap();
    store
        .revoke_share("recent-external", NOW - DAY)
        .await
        .unwrap();
    create_share(&store, "long-expired", "C-1", NOW - 90 * DAY).await;
    store
        .revoke_share("long-expired", NOW - 89 * DAY)
        .await
        .unwrap();
    store
        .revoke_case("C-ancient", NOW - 100 * DAY)
        .await
        .unwrap();
    store.revoke_case("C-recent", NOW - DAY).await.unwrap();
    store.compact(NOW).await.unwrap();
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.revocation("ancient-external", "C", 0), None);
    assert!(store.revocation("recent-external", "C", 0).is_some());
    assert_eq!(
        store.revocation("long-expired", "C-1", NOW - 90 * DAY),
        None
    );
    // Its record stays; refused as expired anyway.
    assert_eq!(
        store.share("long-expired", NOW).unwrap().status,
        ShareStatus::Expired
    );
    assert_eq!(store.revocation("x", "C-ancient", NOW - 200 * DAY), None);
    assert!(store.revocation("x", "C-recent", NOW - 2 * DAY).is_some());
}

#[tokio::test]
async fn maintenance_compacts_once_the_journal_outgrows_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut small = settings(dir.path());
    small.compact_after_bytes = 256;
    let store = Arc::new(StateStore::open(&small).unwrap());
    populate(&store).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = store.spawn_maintenance(stopped);
    let mut compacted = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if files(dir.path())
            .iter()
            .any(|name| name == "snapshot-1.cgs")
        {
            compacted = true;
            break;
        }
    }
    stop.send(true).unwrap();
    task.await.unwrap();
    assert!(compacted, "maintenance compacted: {:?}", files(dir.path()));
    let before = store.list(None, None, NOW + 10);
    drop(store);
    assert_eq!(open(dir.path()).list(None, None, NOW + 10), before);
}

// === corruption ===

/// Captures what the store logs while `run` executes on this thread.
fn logged<T>(run: impl FnOnce() -> T) -> (T, String) {
    let sink = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(sink.clone())
        .finish();
    let result = tracing::subscriber::with_default(subscriber, run);
    (result, sink.text())
}

#[tokio::test]
async fn a_torn_last_record_is_dropped_with_a_warning_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        create_share(&store, "share-a", "C-1", NOW).await;
        store.revoke_share("share-b", NOW).await.unwrap();
        create_share(&store, "share-c", "C-1", NOW).await;
    }
    let journal = journal_path(dir.path());
    let whole = std::fs::metadata(&journal).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .unwrap();
    file.set_len(whole - 7).unwrap();
    drop(file);

    let (store, log) = logged(|| open(dir.path()));
    assert!(log.contains("torn"), "{log}");
    assert!(log.contains("journal-0.cgj"), "{log}");
    assert!(store.share("share-a", NOW).is_some());
    assert!(store.revocation("share-b", "C-1", NOW).is_some());
    assert_eq!(store.share("share-c", NOW), None);
    // The journal was cut back to its sound part: new writes follow it and replay.
    create_share(&store, "share-d", "C-1", NOW).await;
    drop(store);
    let (store, log) = logged(|| open(dir.path()));
    assert!(!log.contains("torn"), "{log}");
    assert!(store.share("share-d", NOW).is_some());
    assert_eq!(store.share("share-c", NOW), None);
}

#[tokio::test]
async fn a_flipped_byte_inside_the_journal_refuses_to_start_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        create_share(&store, "share-a", "C-1", NOW).await;
        create_share(&store, "share-b", "C-1", NOW).await;
        store.revoke_share("share-a", NOW).await.unwrap();
    }
    let journal = journal_path(dir.path());
    let mut bytes = std::fs::read(&journal).unwrap();
    // Inside the first record's payload: header 24 bytes, frame header 8.
    bytes[24 + 8 + 5] ^= 0x20;
    std::fs::write(&journal, &bytes).unwrap();
    let error = StateStore::open(&settings(dir.path()))
        .err()
        .expect("refused");
    assert!(
        matches!(error, OpenError::Corrupt { offset: 24, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("journal-0.cgj"), "{message}");
    assert!(message.contains("offset 24"), "{message}");
}

#[tokio::test]
async fn a_damaged_journal_header_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let journal = journal_path(dir.path());
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&journal, &bytes).unwrap();
    let error = StateStore::open(&settings(dir.path()))
        .err()
        .expect("refused");
    assert!(
        matches!(error, OpenError::Corrupt { offset: 0, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_flipped_byte_in_the_snapshot_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        populate(&store).await;
        store.compact(NOW).await.unwrap();
    }
    let snapshot = dir.path().join("snapshot-1.cgs");
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x01;
    std::fs::write(&snapshot, &bytes).unwrap();
    let error = StateStore::open(&settings(dir.path()))
        .err()
        .expect("refused");
    let message = error.to_string();
    assert!(matches!(error, OpenError::Corrupt { .. }), "{error:?}");
    assert!(message.contains("snapshot-1.cgs"), "{message}");
    assert!(message.contains("offset"), "{message}");
}

#[tokio::test]
async fn a_snapshot_cut_short_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        populate(&store).await;
        store.compact(NOW).await.unwrap();
    }
    let snapshot = dir.path().join("snapshot-1.cgs");
    let bytes = std::fs::read(&snapshot).unwrap();
    // Cut exactly before the end record (8 bytes of frame header + 9 of payload).
    std::fs::write(&snapshot, &bytes[..bytes.len() - 17]).unwrap();
    let error = StateStore::open(&settings(dir.path()))
        .err()
        .expect("refused");
    assert!(error.to_string().contains("end record"), "{error}");
}

// === property: replay reproduces the live view ===

#[derive(Clone, Debug)]
enum Op {
    Create { id: u8, case: u8 },
    RevokeShare { id: u8 },
    RevokeCase { case: u8 },
    Open { id: u8, case: u8 },
    Activity { id: u8 },
    Flush,
    Compact,
    Reopen,
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        3 => (0u8..6, 0u8..3).prop_map(|(id, case)| Op::Create { id, case }),
        2 => (0u8..8).prop_map(|id| Op::RevokeShare { id }),
        1 => (0u8..3).prop_map(|case| Op::RevokeCase { case }),
        3 => (0u8..8, 0u8..3).prop_map(|(id, case)| Op::Open { id, case }),
        2 => (0u8..8).prop_map(|id| Op::Activity { id }),
        1 => Just(Op::Flush),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

async fn run_ops(
    dir: &Path,
    ops: &[Op],
) -> (
    Vec<casegate::state::ShareView>,
    Vec<casegate::state::ShareView>,
) {
    let mut store = open(dir);
    let mut now = NOW;
    for op in ops {
        now += 1;
        match *op {
            Op::Create { id, case } => {
                create_share(&store, &format!("share-{id}"), &format!("C-{case}"), now).await;
            }
            Op::RevokeShare { id } => {
                store
                    .revoke_share(&format!("share-{id}"), now)
                    .await
                    .unwrap();
            }
            Op::RevokeCase { case } => {
                store.revoke_case(&format!("C-{case}"), now).await.unwrap();
            }
            Op::Open { id, case } => {
                let (id, case) = (format!("share-{id}"), format!("C-{case}"));
                store.record_open(&seen(&id, &case, now - 5), now);
            }
            Op::Activity { id } => store.record_activity(&format!("share-{id}"), now),
            Op::Flush => store.flush().await.unwrap(),
            Op::Compact => {
                store.compact(now).await.unwrap();
            }
            Op::Reopen => {
                store.flush().await.unwrap();
                drop(store);
                store = open(dir);
            }
        }
    }
    store.flush().await.unwrap();
    let live = store.list(None, None, now);
    drop(store);
    let replayed = open(dir).list(None, None, now);
    (live, replayed)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
    #[test]
    fn any_sequence_of_operations_replays_to_the_same_view(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (live, replayed) = runtime.block_on(run_ops(dir.path(), &ops));
        proptest::prop_assert_eq!(live, replayed);
    }
}

// === file modes ===

/// Share records hold recipients' addresses and notes: the directory and every file casegate
/// creates in it are its user's alone, whatever the umask (tests run with a shell's, often 0022).
#[tokio::test]
async fn the_state_directory_and_its_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("var/casegate");
    let store = open(&dir);
    create_share(&store, "s1", "42", NOW).await;
    assert!(store.compact(NOW).await.unwrap());
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    for name in files(&dir) {
        assert_eq!(mode(&dir.join(&name)), 0o600, "{name}");
    }
    assert_eq!(files(&dir).len(), 3, "{:?}", files(&dir));
}
