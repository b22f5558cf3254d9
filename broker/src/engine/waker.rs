//! The executor's ready list of connection slots and the poller task's wake-up.
//!
//! Marking a slot ready pushes it (once) onto this executor's list and wakes the poller
//! task; an idle connection therefore costs no task, no future and no waker. The list is
//! thread-local because every caller runs on the executor's own thread.

use std::cell::{Cell, RefCell};
use std::task::Waker;

thread_local! {
    static READY: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    static QUEUED: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    static POLLER: RefCell<Option<Waker>> = const { RefCell::new(None) };
    static POLLER_WOKEN: Cell<bool> = const { Cell::new(false) };
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
        wake_poller();
    }
}

/// Wakes the poller task without queueing a connection (for a harvest).
pub fn wake_poller() {
    if !POLLER_WOKEN.with(|w| w.replace(true)) {
        POLLER.with(|p| {
            if let Some(w) = p.borrow().as_ref() {
                w.wake_by_ref();
            }
        });
    }
}

/// True when connections are queued for the poller.
pub fn any_ready() -> bool {
    READY.with(|r| !r.borrow().is_empty())
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
