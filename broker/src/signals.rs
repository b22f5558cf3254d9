//! Signals: SIGINT and SIGTERM end the process cleanly (exit 0). SIGHUP (systemd's
//! `ExecReload`, logrotate) is caught and logged, and changes nothing until reload exists:
//! left at its default it would kill the broker with every connection and session.
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

/// Waits until SIGINT or SIGTERM arrives (call `block` first); each SIGHUP meanwhile is
/// logged and otherwise ignored.
pub fn wait_for_stop() {
    let set = stop_set();
    loop {
        let mut sig = 0;
        // SAFETY: sigwait on a valid set, writing the signal number to a local.
        let rc = unsafe { libc::sigwait(&set, &mut sig) };
        if rc == 0 && sig == libc::SIGHUP {
            tracing::info!(
                "SIGHUP received: configuration reload is not supported by this build yet; \
                 nothing changed, every connection stays"
            );
            continue;
        }
        if rc == 0 {
            return;
        }
    }
}
