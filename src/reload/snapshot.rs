//! The one place a reload swaps what the request path reads: a shared `Arc` that every new
//! request (or connection) clones once, so in-flight work keeps the snapshot it started with.
//!
//! The request path reads it through a [`WorkerSnapshot`], one per worker thread: cloning the
//! shared `Arc` (and taking its lock) on every request would move their cache line between the
//! cores on every request, which cost more than the rest of the lookup (`perf annotate`).

use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

/// The current value of something a reload replaces as a whole.
pub struct Snapshot<T> {
    current: RwLock<Arc<T>>,
    /// Counts replacements, so that a worker's view can tell it is behind with one load.
    version: AtomicU64,
}

impl<T> Snapshot<T> {
    pub fn new(value: Arc<T>) -> Snapshot<T> {
        Snapshot {
            current: RwLock::new(value),
            version: AtomicU64::new(0),
        }
    }

    /// The value in force now. The lock is held only to clone the `Arc`.
    pub fn current(&self) -> Arc<T> {
        // Nothing panics while holding the lock (a clone or a move), so a poisoned lock still
        // holds a whole value: serve it rather than fail every request.
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts `value` in force for everything that asks from now on.
    pub fn replace(&self, value: Arc<T>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = value;
        // After the value: a view that sees the new version then reads the new value.
        self.version.fetch_add(1, Ordering::Release);
    }

    fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }
}

/// A snapshot's value as one worker holds it: the handles it gives out are counted in this
/// wrapper, which only that worker's requests touch, rather than in the shared `Arc`.
#[derive(Debug)]
pub struct Held<T>(Arc<T>);

impl<T> Deref for Held<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// One worker's view of a [`Snapshot`]. Each request asks it for the current value: one load of
/// the shared version (a line no request writes, so it stays in every core's cache) and, while
/// no reload has happened, a clone of the worker's own handle. Its lock is only ever taken by
/// the worker's own thread.
pub struct WorkerSnapshot<T> {
    shared: Arc<Snapshot<T>>,
    held: Mutex<Kept<T>>,
}

impl<T> WorkerSnapshot<T> {
    pub fn new(shared: Arc<Snapshot<T>>) -> WorkerSnapshot<T> {
        let held = Kept::taken_from(&shared);
        WorkerSnapshot {
            shared,
            held: Mutex::new(held),
        }
    }

    /// The value in force now, as [`Snapshot::current`] would answer.
    pub fn current(&self) -> Arc<Held<T>> {
        Arc::clone(&self.up_to_date().held)
    }

    /// The worker's own handle, taken again first if a reload happened since.
    fn up_to_date(&self) -> MutexGuard<'_, Kept<T>> {
        // Nothing panics while the lock is held (a clone or a move): a poisoned one still holds
        // a whole value.
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if held.version != self.shared.version() {
            *held = Kept::taken_from(&self.shared);
        }
        held
    }

    /// A handle for one user to keep across many reads (an HTTP/1 connection across its
    /// requests), brought up to date by [`WorkerSnapshot::refresh`].
    pub fn keep(&self) -> Kept<T> {
        self.up_to_date().clone()
    }

    /// The value in force now, through `kept`: one load of the shared version while no reload
    /// has happened, where [`WorkerSnapshot::current`] also takes the worker's lock and a count
    /// on its handle (and the caller later gives the count back): four locked instructions a
    /// request.
    pub fn refresh<'a>(&self, kept: &'a mut Kept<T>) -> &'a T {
        if kept.version != self.shared.version() {
            *kept = self.keep();
        }
        &kept.held
    }
}

/// A [`Snapshot`]'s value as a worker or one of its users keeps it, with the version it was
/// taken at.
pub struct Kept<T> {
    version: u64,
    held: Arc<Held<T>>,
}

// By hand: a derived `Clone` would ask `T: Clone`, where only the count on the value is taken.
impl<T> Clone for Kept<T> {
    fn clone(&self) -> Kept<T> {
        Kept {
            version: self.version,
            held: Arc::clone(&self.held),
        }
    }
}

impl<T> Kept<T> {
    fn taken_from(shared: &Snapshot<T>) -> Kept<T> {
        // The version before the value: a reload in between leaves the kept version behind, and
        // the next look at the version takes the value again.
        let version = shared.version();
        Kept {
            version,
            held: Arc::new(Held(shared.current())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_keeps_the_old_value_after_a_replace() {
        let snapshot = Snapshot::new(Arc::new(1));
        let held = snapshot.current();
        snapshot.replace(Arc::new(2));
        assert_eq!((*held, *snapshot.current()), (1, 2));
    }

    #[test]
    fn a_worker_view_follows_a_replace_and_its_holders_keep_the_old_value() {
        let snapshot = Arc::new(Snapshot::new(Arc::new(1)));
        let view = WorkerSnapshot::new(Arc::clone(&snapshot));
        let before = view.current();
        assert!(
            Arc::ptr_eq(&before, &view.current()),
            "no reload: the same handle"
        );
        snapshot.replace(Arc::new(2));
        assert_eq!((**before, **view.current()), (1, 2));
        snapshot.replace(Arc::new(3));
        assert_eq!(**view.current(), 3);
    }

    #[test]
    fn a_kept_handle_follows_every_replace_and_is_not_taken_again_without_one() {
        let snapshot = Arc::new(Snapshot::new(Arc::new(1)));
        let view = WorkerSnapshot::new(Arc::clone(&snapshot));
        let mut kept = view.keep();
        let first: *const i32 = view.refresh(&mut kept);
        assert!(
            std::ptr::eq(first, view.refresh(&mut kept)),
            "no reload: the same value, not taken again"
        );
        snapshot.replace(Arc::new(2));
        assert_eq!(*view.refresh(&mut kept), 2);
        snapshot.replace(Arc::new(3));
        snapshot.replace(Arc::new(4));
        assert_eq!(*view.refresh(&mut kept), 4);
        assert_eq!(**view.current(), 4, "the worker's own handle moved on too");
    }
}
