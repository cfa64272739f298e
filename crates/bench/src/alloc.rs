//! A counting global allocator: the bench binary installs it to measure peak heap memory.
//!
//! It wraps the system allocator and, while a measurement is on, keeps two atomic counters: the
//! bytes allocated minus the bytes freed since the measurement began, and the most that difference
//! ever was. Measuring is off the rest of the time, so that the sweep's worker threads do not all
//! write to the same two counters on every allocation (a shared cache line that would cost the
//! sweep its parallel speedup); then each allocation costs one relaxed load of a flag that never
//! changes.
//!
//! Only the heap is counted (stacks and the binary's own pages are not), which is what grows with
//! replicas and events. The library only defines the type; installing it is the binary's decision,
//! so that tests and criterion benches keep the plain system allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

static MEASURING: AtomicBool = AtomicBool::new(false);
/// Signed: a block allocated before the measurement and freed during it takes the level below
/// where it started.
static LEVEL_BYTES: AtomicIsize = AtomicIsize::new(0);
static PEAK_BYTES: AtomicIsize = AtomicIsize::new(0);

/// The system allocator with byte counters. See the module docs.
pub struct CountingAllocator;

impl CountingAllocator {
    fn grew(bytes: usize) {
        if MEASURING.load(Ordering::Relaxed) {
            let bytes = bytes as isize;
            let now = LEVEL_BYTES.fetch_add(bytes, Ordering::Relaxed) + bytes;
            PEAK_BYTES.fetch_max(now, Ordering::Relaxed);
        }
    }

    fn shrank(bytes: usize) {
        if MEASURING.load(Ordering::Relaxed) {
            LEVEL_BYTES.fetch_sub(bytes as isize, Ordering::Relaxed);
        }
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counters only observe
// sizes and never touch the memory.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            Self::grew(layout.size());
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            Self::grew(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: `pointer` came from this allocator with this layout, hence from `System`.
        unsafe { System.dealloc(pointer, layout) };
        Self::shrank(layout.size());
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; `System` gets the same arguments it would have got directly.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            if new_size >= layout.size() {
                Self::grew(new_size - layout.size());
            } else {
                Self::shrank(layout.size() - new_size);
            }
        }
        moved
    }
}

/// Runs `f` and returns its result with the most heap bytes it held at once beyond what was
/// allocated when it started (zero unless the binary installed [`CountingAllocator`]). Meant for
/// one thread at a time: measurements do not nest, and other threads' allocations count too.
pub fn measure_peak<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LEVEL_BYTES.store(0, Ordering::Relaxed);
    PEAK_BYTES.store(0, Ordering::Relaxed);
    MEASURING.store(true, Ordering::SeqCst);
    let value = f();
    MEASURING.store(false, Ordering::SeqCst);
    let peak = PEAK_BYTES.load(Ordering::Relaxed).max(0) as usize;
    (value, peak)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test, not two: measurements share global counters, and tests run on parallel threads.
    #[test]
    fn only_the_counting_allocator_moves_the_counters() {
        // Tests run on the system allocator, so an ordinary allocation is not seen.
        let (length, peak) = measure_peak(|| vec![0u8; 1 << 20].len());
        assert_eq!(length, 1 << 20);
        assert_eq!(peak, 0);

        let layout = Layout::from_size_align(4096, 8).expect("layout");
        let allocator = CountingAllocator;
        let ((), peak) = measure_peak(|| {
            // SAFETY: a valid non-zero layout; each block is freed with the layout it was given.
            unsafe {
                let first = allocator.alloc(layout);
                let second = allocator.alloc(layout);
                assert!(!first.is_null() && !second.is_null());
                allocator.dealloc(first, layout);
                allocator.dealloc(second, layout);
            }
        });
        assert_eq!(peak, 2 * 4096);
        // Outside a measurement nothing is counted.
        // SAFETY: as above.
        unsafe {
            let block = allocator.alloc(layout);
            allocator.dealloc(block, layout);
        }
        assert_eq!(PEAK_BYTES.load(Ordering::Relaxed), 2 * 4096);
    }
}
