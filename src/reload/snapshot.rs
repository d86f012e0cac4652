//! The one place a reload swaps what the request path reads: a shared `Arc` that every new
//! request (or connection) clones once, so in-flight work keeps the snapshot it started with.

use std::sync::{Arc, PoisonError, RwLock};

/// The current value of something a reload replaces as a whole.
pub struct Snapshot<T> {
    current: RwLock<Arc<T>>,
}

impl<T> Snapshot<T> {
    pub fn new(value: Arc<T>) -> Snapshot<T> {
        Snapshot {
            current: RwLock::new(value),
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
}
