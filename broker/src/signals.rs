//! Signals: SIGINT and SIGTERM end the process cleanly (exit 0). SIGHUP (systemd's
//! `ExecReload`, logrotate) runs the caller's reload (TLS certificates) and drops no
//! connection: left at its default it would kill the broker with every connection and session.
//!
//! `block` must run before any executor thread starts: threads inherit the signal mask, so
//! no shard thread ever takes the signal, and the main thread receives it with `sigwait`.

fn stop_set() -> libc::sigset_t {
    // SAFETY: plain sigset manipulation on a zeroed, stack-allocated set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        set
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread and every thread it starts later.
pub fn block() {
    let set = stop_set();
    // SAFETY: `set` is a valid sigset; the old mask is not needed.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Waits until SIGINT or SIGTERM arrives (call `block` first); each SIGHUP meanwhile runs
/// `on_hup`.
pub fn wait_for_stop(mut on_hup: impl FnMut()) {
    let set = stop_set();
    loop {
        let mut sig = 0;
        // SAFETY: sigwait on a valid set, writing the signal number to a local.
        let rc = unsafe { libc::sigwait(&set, &mut sig) };
        if rc == 0 && sig == libc::SIGHUP {
            on_hup();
            continue;
        }
        if rc == 0 {
            return;
        }
    }
}
