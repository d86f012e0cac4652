//! The global allocator: mimalloc, asked for an alignment only when a type needs more than every
//! mimalloc block already has.
//!
//! Why mimalloc: the request path allocates and frees a few dozen small objects per request, and
//! under load mimalloc's thread-local free lists cost casegate about a fifth less CPU per request
//! than glibc's malloc (benches/HISTORY.md); its `mi_collect` is also how parked connections give
//! their memory back (`server::trim`).
//!
//! Why not the `mimalloc` crate's `MiMalloc`: it passes every allocation to `mi_malloc_aligned`,
//! and mimalloc 3 serves an aligned request of more than 1 KiB whose size class is not a power of
//! two by over-allocating and aligning by hand, even for an alignment of 1 (a `Vec<u8>`). hyper's
//! buffers, header maps and the request's futures are such allocations: about six per guest
//! request took that path. Every mimalloc block is aligned to the machine word (block sizes are
//! multiples of it and pages start 16-byte aligned), so up to that alignment plain `mi_malloc` is
//! exact, and only larger alignments (tokio's cache-padded task cells) need the aligned calls.
//!
//! In front of mimalloc, a worker thread reuses the small blocks it freed last before asking
//! mimalloc for others ([`recent_blocks`], which says why). For that, every word-aligned block of
//! up to [`recent_blocks::LARGEST`] bytes is asked of mimalloc rounded up to its class, on every
//! thread, allocations, zeroed ones and reallocations alike.

mod recent_blocks;

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

use recent_blocks::class_of;
pub use recent_blocks::keep_recent_blocks;

/// The alignment every mimalloc block has.
const BLOCK_ALIGNMENT: usize = std::mem::size_of::<usize>();

/// mimalloc, with word-aligned layouts sent to its plain (fast) entry points.
pub struct Mimalloc;

// SAFETY: mimalloc returns blocks of at least the requested size, aligned to BLOCK_ALIGNMENT by
// construction and to `layout.align()` through the `_aligned` calls otherwise, or null on failure;
// `mi_free` accepts any of them. `GlobalAlloc` callers never pass a zero size.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { allocate(layout, mi::mi_malloc, mi::mi_malloc_aligned, false) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe { allocate(layout, mi::mi_zalloc, mi::mi_zalloc_aligned, true) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.align() <= BLOCK_ALIGNMENT
            && let Some((class, rounded)) = class_of(layout.size())
            && recent_blocks::keep(ptr, class, rounded)
        {
            return;
        }
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let block = unsafe {
            if layout.align() <= BLOCK_ALIGNMENT {
                let asked = class_of(new_size).map_or(new_size, |(_, rounded)| rounded);
                mi::mi_realloc(ptr.cast::<c_void>(), asked)
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align())
            }
        };
        block.cast()
    }
}

/// A block for `layout`: when every block's alignment is enough for it, a recently freed block of
/// its class (zeroed first when `zeroed`), or else one from `plain`, asked for the class's size;
/// `aligned` otherwise.
#[inline(always)]
unsafe fn allocate(
    layout: Layout,
    plain: unsafe extern "C" fn(usize) -> *mut c_void,
    aligned: unsafe extern "C" fn(usize, usize) -> *mut c_void,
    zeroed: bool,
) -> *mut u8 {
    if layout.align() > BLOCK_ALIGNMENT {
        return unsafe { aligned(layout.size(), layout.align()) }.cast();
    }
    let Some((class, rounded)) = class_of(layout.size()) else {
        return unsafe { plain(layout.size()) }.cast();
    };
    if let Some(block) = recent_blocks::take(class, rounded) {
        if zeroed {
            unsafe { std::ptr::write_bytes(block, 0, layout.size()) };
        }
        return block;
    }
    unsafe { plain(rounded) }.cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes around mimalloc's size classes (small, medium, non-power-of-two, large) and every
    /// alignment Rust types commonly ask for, including tokio's 128-byte cache padding.
    const SIZES: [usize; 15] = [
        1,
        7,
        8,
        24,
        40,
        500,
        513,
        1000,
        1025,
        1536,
        3000,
        4096,
        8192,
        70_000,
        5 << 20,
    ];
    const ALIGNMENTS: [usize; 7] = [1, 2, 8, 16, 64, 128, 4096];

    fn layouts() -> impl Iterator<Item = Layout> {
        SIZES.into_iter().flat_map(|size| {
            ALIGNMENTS
                .into_iter()
                .map(move |align| Layout::from_size_align(size, align).expect("valid layout"))
        })
    }

    /// Every check below, for a thread that caches recent blocks to run too.
    pub(super) fn check_every_layout() {
        blocks_have_the_layouts_alignment_and_hold_their_size();
        zeroed_blocks_are_zero_even_where_a_freed_block_was_dirty();
        realloc_keeps_the_contents_and_the_alignment_growing_and_shrinking();
    }

    #[test]
    fn blocks_have_the_layouts_alignment_and_hold_their_size() {
        for layout in layouts() {
            unsafe {
                let block = Mimalloc.alloc(layout);
                assert!(!block.is_null(), "{layout:?}");
                assert_eq!(block as usize % layout.align(), 0, "{layout:?}");
                std::ptr::write_bytes(block, 0xA5, layout.size());
                assert_eq!(*block.add(layout.size() - 1), 0xA5);
                Mimalloc.dealloc(block, layout);
            }
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_even_where_a_freed_block_was_dirty() {
        for layout in layouts() {
            unsafe {
                let dirty = Mimalloc.alloc(layout);
                std::ptr::write_bytes(dirty, 0xFF, layout.size());
                Mimalloc.dealloc(dirty, layout);
                let block = Mimalloc.alloc_zeroed(layout);
                assert_eq!(block as usize % layout.align(), 0, "{layout:?}");
                let bytes = std::slice::from_raw_parts(block, layout.size());
                assert!(bytes.iter().all(|&byte| byte == 0), "{layout:?}");
                Mimalloc.dealloc(block, layout);
            }
        }
    }

    #[test]
    fn realloc_keeps_the_contents_and_the_alignment_growing_and_shrinking() {
        for layout in layouts() {
            for new_size in [layout.size() * 3 + 5, layout.size().div_ceil(2)] {
                unsafe {
                    let block = Mimalloc.alloc(layout);
                    for index in 0..layout.size() {
                        *block.add(index) = index as u8;
                    }
                    let moved = Mimalloc.realloc(block, layout, new_size);
                    assert!(!moved.is_null());
                    assert_eq!(
                        moved as usize % layout.align(),
                        0,
                        "{layout:?} -> {new_size}"
                    );
                    for index in 0..layout.size().min(new_size) {
                        assert_eq!(*moved.add(index), index as u8, "{layout:?} -> {new_size}");
                    }
                    let new_layout = Layout::from_size_align(new_size, layout.align()).unwrap();
                    Mimalloc.dealloc(moved, new_layout);
                }
            }
        }
    }
}
