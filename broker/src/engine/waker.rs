//! Allocation-free wakers for connections: a waker is just the connection's slot number.
//!
//! Waking one pushes the slot onto this executor's ready list and wakes the poller task.
//! glommio keeps a connection's waker inside its pending io_uring poll; with a plain number
//! as the waker, an idle connection costs no task, no future and no waker allocation.
//! The ready list is thread-local: glommio wakes I/O sources only on the executor's own
//! thread, so a slot waker is never woken elsewhere.

use std::cell::{Cell, RefCell};
use std::task::{RawWaker, RawWakerVTable, Waker};

thread_local! {
    static READY: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    static QUEUED: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    static POLLER: RefCell<Option<Waker>> = const { RefCell::new(None) };
    static POLLER_WOKEN: Cell<bool> = const { Cell::new(false) };
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake, noop);

unsafe fn clone(p: *const ()) -> RawWaker {
    RawWaker::new(p, &VTABLE)
}

unsafe fn wake(p: *const ()) {
    mark_ready(p as usize as u32);
}

unsafe fn noop(_: *const ()) {}

/// The waker of connection slot `slot`.
pub fn slot_waker(slot: u32) -> Waker {
    // SAFETY: the vtable functions never dereference the data pointer; it is a number.
    unsafe { Waker::from_raw(RawWaker::new(slot as usize as *const (), &VTABLE)) }
}

/// Queues `slot` for the poller (once until it is taken) and wakes the poller.
pub fn mark_ready(slot: u32) {
    let newly = QUEUED.with(|q| {
        let mut q = q.borrow_mut();
        let (w, b) = ((slot / 64) as usize, slot % 64);
        if q.len() <= w {
            q.resize(w + 1, 0);
        }
        let was = q[w] & (1 << b) != 0;
        q[w] |= 1 << b;
        !was
    });
    if newly {
        READY.with(|r| r.borrow_mut().push(slot));
        if !POLLER_WOKEN.with(|w| w.replace(true)) {
            POLLER.with(|p| {
                if let Some(w) = p.borrow().as_ref() {
                    w.wake_by_ref();
                }
            });
        }
    }
}

/// Takes the queued slots into `into` and records the poller's waker for later wakes.
pub fn take_ready(poller: &Waker, into: &mut Vec<u32>) {
    POLLER.with(|p| {
        let mut p = p.borrow_mut();
        if !p.as_ref().is_some_and(|w| w.will_wake(poller)) {
            *p = Some(poller.clone());
        }
    });
    POLLER_WOKEN.with(|w| w.set(false));
    READY.with(|r| std::mem::swap(&mut *r.borrow_mut(), into));
    QUEUED.with(|q| {
        let mut q = q.borrow_mut();
        for &s in into.iter() {
            if let Some(w) = q.get_mut((s / 64) as usize) {
                *w &= !(1 << (s % 64));
            }
        }
    });
}
