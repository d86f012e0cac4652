//! A worker thread's most recently freed small blocks, handed out again first (last in, first
//! out), in front of mimalloc.
//!
//! Why: mimalloc puts a freed block on its page's local free list and allocates from the page's
//! other list until that runs dry, so a block freed by one request comes back only after every
//! other block of its page (up to 64 KiB of them) has been handed out. Each request's few dozen
//! allocations therefore land on memory last touched many requests ago, out of the L1 cache:
//! `callgrind.sh --cache-sim` counted some 700 L1 data misses a guest request, a quarter of
//! them in `memcpy` into such fresh blocks. Reusing the block just freed keeps a request's
//! buffers, boxes and maps in the lines the previous request warmed.
//!
//! How: every block of at most [`LARGEST`] bytes is asked of mimalloc rounded up to its class
//! here, on every thread, so any such block can stand for any request of its class. On a thread
//! that keeps recent blocks (the workers, [`keep_recent_blocks`]), a freed block of a class is
//! pushed on the class's list (the link written into the block itself) while the thread's cache
//! holds less than [`BUDGET`] bytes, and an allocation of the class pops it. Other threads, and
//! a worker once it stops, free straight to mimalloc.

use std::cell::Cell;
use std::ptr::null_mut;

/// The largest block size cached.
pub const LARGEST: usize = 4096;
/// Bytes a thread's cache holds at most: small enough to stay in the L2 cache.
const BUDGET: usize = 64 * 1024;
/// Classes: 16 bytes apart up to 512, 128 bytes apart above (index 0 unused).
const CLASSES: usize = 61;

/// The class of a block of `size` bytes (1..=LARGEST) and the size asked of mimalloc for it.
/// (`GlobalAlloc` is never asked for 0 bytes; were it, the block would not be cached: a cached
/// block holds a link.)
#[inline(always)]
pub fn class_of(size: usize) -> Option<(usize, usize)> {
    match size {
        1..=512 => {
            let class = (size + 15) >> 4;
            Some((class, class << 4))
        }
        513..=LARGEST => {
            let steps = (size + 127) >> 7;
            Some((28 + steps, steps << 7))
        }
        _ => None,
    }
}

struct Cache {
    on: Cell<bool>,
    bytes: Cell<usize>,
    heads: [Cell<*mut u8>; CLASSES],
}

thread_local! {
    static CACHE: Cache = const {
        Cache {
            on: Cell::new(false),
            bytes: Cell::new(0),
            heads: [const { Cell::new(null_mut()) }; CLASSES],
        }
    };
}

/// A block of `class` (of `rounded` bytes) from this thread's cache, if it keeps one.
#[inline(always)]
pub fn take(class: usize, rounded: usize) -> Option<*mut u8> {
    CACHE
        .try_with(|cache| {
            let head = cache.heads[class].get();
            if head.is_null() {
                return None;
            }
            // SAFETY: a cached block holds the next block's address in its first word.
            let next = unsafe { head.cast::<*mut u8>().read() };
            cache.heads[class].set(next);
            cache.bytes.set(cache.bytes.get() - rounded);
            Some(head)
        })
        .ok()
        .flatten()
}

/// Keeps `block` (of `class`, `rounded` bytes) for this thread's next allocation of its class;
/// false when the thread keeps none or its cache is full, and the caller frees it.
#[inline(always)]
pub fn keep(block: *mut u8, class: usize, rounded: usize) -> bool {
    CACHE
        .try_with(|cache| {
            let bytes = cache.bytes.get() + rounded;
            if !cache.on.get() || bytes > BUDGET {
                return false;
            }
            // SAFETY: the block is at least 16 bytes, free, and now the cache's.
            unsafe { block.cast::<*mut u8>().write(cache.heads[class].get()) };
            cache.heads[class].set(block);
            cache.bytes.set(bytes);
            true
        })
        .unwrap_or(false)
}

/// While the guard lives, this thread keeps its recently freed small blocks for reuse; when it
/// is dropped they all go back to mimalloc.
#[must_use = "the thread keeps blocks only while the guard lives"]
pub struct KeepRecentBlocks(());

pub fn keep_recent_blocks() -> KeepRecentBlocks {
    let _ = CACHE.try_with(|cache| cache.on.set(true));
    KeepRecentBlocks(())
}

impl Drop for KeepRecentBlocks {
    fn drop(&mut self) {
        let _ = CACHE.try_with(|cache| {
            cache.on.set(false);
            for head in &cache.heads {
                let mut block = head.replace(null_mut());
                while !block.is_null() {
                    // SAFETY: as in `take`; each block is freed once, after its link is read.
                    let next = unsafe { block.cast::<*mut u8>().read() };
                    unsafe { libmimalloc_sys::mi_free(block.cast()) };
                    block = next;
                }
            }
            cache.bytes.set(0);
        });
    }
}

#[cfg(test)]
mod tests {
    use std::alloc::{GlobalAlloc, Layout};

    use super::*;
    use crate::allocator::Mimalloc;

    fn cached_bytes() -> usize {
        CACHE.with(|cache| cache.bytes.get())
    }

    /// Runs `test` on a thread of its own that keeps recent blocks while `test` holds the guard
    /// it is given: the test harness's threads keep none.
    fn on_a_keeping_thread(test: fn(KeepRecentBlocks)) {
        std::thread::spawn(move || test(keep_recent_blocks()))
            .join()
            .unwrap();
    }

    #[test]
    fn every_size_has_a_class_that_holds_it_and_sizes_of_a_class_share_its_rounding() {
        let mut last = (0, 0);
        for size in 1..=LARGEST {
            let (class, rounded) = class_of(size).expect("small sizes have a class");
            assert!(rounded >= size && rounded >= 16, "{size} -> {rounded}");
            assert!((1..CLASSES).contains(&class), "{size} -> class {class}");
            // Classes only grow with the size, and one class always means one rounded size.
            assert!(class >= last.0, "{size}: class {class} after {}", last.0);
            if class == last.0 {
                assert_eq!(rounded, last.1, "{size}");
            }
            last = (class, rounded);
        }
        assert_eq!(class_of(LARGEST + 1), None);
        assert_eq!(class_of(0), None);
    }

    #[test]
    fn a_keeping_thread_hands_out_the_block_it_freed_last_and_gives_all_back_when_it_stops() {
        on_a_keeping_thread(|guard| {
            let layout = Layout::from_size_align(100, 8).unwrap();
            unsafe {
                let first = Mimalloc.alloc(layout);
                let second = Mimalloc.alloc(layout);
                Mimalloc.dealloc(first, layout);
                Mimalloc.dealloc(second, layout);
                assert_eq!(cached_bytes(), 2 * 112);
                // Last in, first out; any size of the class is served by it.
                let again = Mimalloc.alloc(Layout::from_size_align(112, 1).unwrap());
                assert_eq!(again, second);
                // A zeroed allocation from a dirty cached block is zero all the same.
                std::ptr::write_bytes(again, 0xFF, 112);
                Mimalloc.dealloc(again, Layout::from_size_align(112, 1).unwrap());
                let zeroed = Mimalloc.alloc_zeroed(layout);
                assert_eq!(zeroed, again);
                assert!(
                    std::slice::from_raw_parts(zeroed, 100)
                        .iter()
                        .all(|&b| b == 0)
                );
                Mimalloc.dealloc(zeroed, layout);
            }
            drop(guard);
            assert_eq!(cached_bytes(), 0);
            // Once stopped, a freed block goes straight back to mimalloc.
            unsafe {
                let block = Mimalloc.alloc(Layout::from_size_align(100, 8).unwrap());
                Mimalloc.dealloc(block, Layout::from_size_align(100, 8).unwrap());
            }
            assert_eq!(cached_bytes(), 0);
        });
    }

    #[test]
    fn a_keeping_thread_holds_at_most_its_budget_and_never_large_or_overaligned_blocks() {
        on_a_keeping_thread(|_guard| {
            let layout = Layout::from_size_align(LARGEST, 1).unwrap();
            let blocks: Vec<*mut u8> = (0..2 * BUDGET / LARGEST)
                .map(|_| unsafe { Mimalloc.alloc(layout) })
                .collect();
            for &block in &blocks {
                unsafe { Mimalloc.dealloc(block, layout) };
            }
            assert_eq!(cached_bytes(), BUDGET);
            let large = Layout::from_size_align(LARGEST + 1, 1).unwrap();
            let aligned = Layout::from_size_align(64, 64).unwrap();
            for layout in [large, aligned] {
                unsafe {
                    let block = Mimalloc.alloc(layout);
                    assert_eq!(block as usize % layout.align(), 0);
                    Mimalloc.dealloc(block, layout);
                }
            }
            assert_eq!(cached_bytes(), BUDGET);
        });
    }

    #[test]
    fn the_allocators_layout_checks_hold_on_a_keeping_thread() {
        // The parent module's tests, run where blocks are cached and reused.
        on_a_keeping_thread(|_guard| {
            for _ in 0..3 {
                crate::allocator::tests::check_every_layout();
            }
        });
    }
}
