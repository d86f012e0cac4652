//! What the workers and the writer thread share: every worker's shelf, the doorbell that wakes an
//! idle writer, and the request to stop.
//!
//! Under load the writer never sleeps on the doorbell: it rests a few milliseconds after each
//! batch and takes whatever piled up, so the workers never wake it. Only a record put on an empty
//! shelf while the writer sleeps (the first request after a quiet spell) rings.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::Thread;

use super::shelf::{Records, Shelf};

pub(super) struct Outbox {
    shelves: Mutex<Vec<Arc<Shelf>>>,
    /// Records each shelf holds before new ones are dropped (`[log] buffer`).
    limit: usize,
    /// The writer, set by the writer thread itself before it first sleeps, so that nobody can
    /// ring a writer that is not there yet.
    writer: OnceLock<Thread>,
    /// The writer found every shelf empty and sleeps (or is about to) until a record comes.
    asleep: AtomicBool,
    stopping: AtomicBool,
}

impl Outbox {
    pub(super) fn new(limit: usize) -> Outbox {
        Outbox {
            shelves: Mutex::new(Vec::new()),
            limit,
            writer: OnceLock::new(),
            asleep: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
        }
    }

    /// A new shelf for one worker, which the writer empties from now on.
    pub(super) fn shelf(&self) -> Arc<Shelf> {
        let shelf = Arc::new(Shelf::new(self.limit));
        self.lock().push(Arc::clone(&shelf));
        shelf
    }

    /// Wakes the writer if it sleeps: a record was put on an empty shelf.
    pub(super) fn ring(&self) {
        // Read first: under load the writer is awake and the flag's line stays shared in every
        // core's cache instead of being written by each request.
        if self.asleep.load(Ordering::SeqCst) && self.asleep.swap(false, Ordering::SeqCst) {
            self.wake_writer();
        }
    }

    /// Asks the writer to write what is shelved and end.
    pub(super) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake_writer();
    }

    fn wake_writer(&self) {
        if let Some(writer) = self.writer.get() {
            writer.unpark();
        }
    }

    pub(super) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Called by the writer thread once, before anything else.
    pub(super) fn register_writer(&self) {
        let _ = self.writer.set(std::thread::current());
    }

    /// Sleeps the writer until a record is shelved or stopping is asked, unless one already is.
    pub(super) fn sleep_until_rung(&self) {
        self.asleep.store(true, Ordering::SeqCst);
        // A worker that shelved a record before the flag was set did not ring: look once more.
        // One that shelves after it sees the flag (both are sequentially consistent) and rings.
        let pending = self.is_stopping() || self.lock().iter().any(|shelf| !shelf.is_empty());
        if !pending {
            // A ring between the look and here leaves the thread's token: park returns at once.
            std::thread::park();
        }
        self.asleep.store(false, Ordering::SeqCst);
    }

    /// Takes every shelf's records; `spares` gives the empty buffers left in their place. With
    /// `close`, the shelves refuse records from then on. Shelves whose worker is gone are
    /// forgotten once empty.
    pub(super) fn take_all(&self, spares: &mut Vec<Records>, close: bool) -> Vec<Records> {
        let mut shelves = self.lock();
        let mut taken = Vec::new();
        for shelf in shelves.iter() {
            let mut spare = spares.pop().unwrap_or_default();
            let records = if close {
                shelf.close(&mut spare)
            } else {
                shelf.take(&mut spare)
            };
            match records {
                Some(records) => taken.push(records),
                None => spares.push(spare),
            }
        }
        shelves.retain(|shelf| Arc::strong_count(shelf) > 1 || !shelf.is_empty());
        taken
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Arc<Shelf>>> {
        self.shelves
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
