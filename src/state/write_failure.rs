//! What a journal write that really fails does: the real store and writer over a journal opened
//! on `/dev/full`, where every write fails with ENOSPC, as on a full disk. The failed write and
//! every later one are refused, and none of them reaches the view (or the real journal).

use std::fs::OpenOptions;
use std::io;

use super::frame::HEADER_LEN;
use super::{NewShare, SeenShare, StateSettings, StateStore, StoreError};

const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86_400;

/// A store in `dir` whose journal writes land on `/dev/full`.
pub(crate) fn store_on_full_disk(dir: &std::path::Path) -> StateStore {
    let full = OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full opens for writing");
    StateStore::open_appending_to(&StateSettings::new(dir, 7 * DAY), full)
        .expect("the store opens (replay reads the real, empty directory)")
}

fn new_share(id: &str) -> NewShare {
    NewShare {
        id: id.to_owned(),
        case: "42".to_owned(),
        scope: "view".to_owned(),
        issued_at: NOW,
        expires_at: NOW + DAY,
        email: None,
        lang: None,
        note: Some("written to a full disk".to_owned()),
        created_by: None,
        client: "case-app".to_owned(),
    }
}

#[tokio::test]
async fn the_failed_write_and_every_later_one_are_refused_and_none_is_visible() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_on_full_disk(dir.path());

    let first = store.create(new_share("created-on-a-full-disk")).await;
    match first {
        Err(StoreError::Io(error)) => assert_eq!(error.kind(), io::ErrorKind::StorageFull),
        other => panic!("the first failed write reports its I/O error, got {other:?}"),
    }
    assert_eq!(store.share("created-on-a-full-disk", NOW), None);

    // The journal's tail is now unknown: the writer refuses without trying again.
    let revoke = store.revoke_share("revoked-on-a-full-disk", NOW).await;
    assert!(matches!(revoke, Err(StoreError::Failed)), "{revoke:?}");
    assert_eq!(store.revocation("revoked-on-a-full-disk", "42", NOW), None);
    assert_eq!(store.share("revoked-on-a-full-disk", NOW), None);

    let cut = store.revoke_case("42", NOW).await;
    assert!(matches!(cut, Err(StoreError::Failed)), "{cut:?}");
    assert_eq!(
        store.revocation("any-share-of-case-42", "42", NOW - 1),
        None
    );

    let retry = store.create(new_share("created-on-a-full-disk")).await;
    assert!(matches!(retry, Err(StoreError::Failed)), "{retry:?}");
    assert!(store.list(None, None, NOW).is_empty());

    let compaction = store.compact(NOW).await;
    assert!(
        matches!(compaction, Err(StoreError::Failed)),
        "{compaction:?}"
    );

    // Uses that cannot be written are kept in memory for a later attempt, not dropped.
    let seen = SeenShare {
        id: "opened-meanwhile",
        case: "43",
        scope: "view",
        issued_at: NOW,
        expires_at: NOW + DAY,
        email: None,
        lang: None,
    };
    store.record_open(&seen, NOW);
    let flush = store.flush().await;
    assert!(matches!(flush, Err(StoreError::Failed)), "{flush:?}");
    assert_eq!(
        store.share("opened-meanwhile", NOW).map(|view| view.uses),
        Some(1)
    );
    drop(store);

    // The real journal was never written past its header, and a restart finds nothing.
    let journal = std::fs::metadata(dir.path().join("journal-0.cgj")).expect("journal exists");
    assert_eq!(journal.len(), HEADER_LEN as u64);
    let reopened = StateStore::open(&StateSettings::new(dir.path(), 7 * DAY)).expect("reopens");
    assert!(reopened.list(None, None, NOW).is_empty());
    assert_eq!(
        reopened.revocation("revoked-on-a-full-disk", "42", NOW),
        None
    );
}
