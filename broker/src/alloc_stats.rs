//! Optional allocation accounting (cargo feature `alloc-stats`): live heap bytes and blocks,
//! printed every few seconds, to attribute memory per connection. Off in normal builds: it
//! adds two atomic operations to every allocation.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

pub struct Counting;

pub static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
pub static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(l.size() as isize, Relaxed);
        LIVE_BLOCKS.fetch_add(1, Relaxed);
        mimalloc::MiMalloc.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE_BYTES.fetch_sub(l.size() as isize, Relaxed);
        LIVE_BLOCKS.fetch_sub(1, Relaxed);
        mimalloc::MiMalloc.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(n as isize - l.size() as isize, Relaxed);
        mimalloc::MiMalloc.realloc(p, l, n)
    }
}

/// Prints live heap figures to stderr every 2 s, from a plain thread.
pub fn start_reporter() {
    std::thread::spawn(|| loop {
        std::thread::sleep(std::time::Duration::from_secs(2));
        eprintln!(
            "alloc-stats live_bytes={} live_blocks={}",
            LIVE_BYTES.load(Relaxed),
            LIVE_BLOCKS.load(Relaxed)
        );
    });
}
