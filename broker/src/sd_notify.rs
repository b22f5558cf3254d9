//! systemd notification (`Type=notify`): READY=1 once every shard accepts, STOPPING=1 on stop,
//! and WATCHDOG=1 only while every shard's executor keeps turning.
//!
//! Written by hand because the protocol is one datagram to `$NOTIFY_SOCKET`; without that
//! variable (not under systemd) every call is a no-op.

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Sends `state` (e.g. "READY=1") to systemd if it asked for notifications.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let res = if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)
            .and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = res {
        tracing::warn!("sd_notify {state}: {e}");
    }
}

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`), if any.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Per-shard heartbeats: each shard bumps its counter from its timer task.
#[derive(Clone)]
pub struct Heartbeats(pub Arc<Vec<AtomicU64>>);

impl Heartbeats {
    pub fn new(n: usize) -> Self {
        Heartbeats(Arc::new((0..n).map(|_| AtomicU64::new(0)).collect()))
    }

    pub fn beat(&self, shard: usize) {
        if let Some(c) = self.0.get(shard) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn snapshot(&self) -> Vec<u64> {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }
}

/// Starts a thread that sends WATCHDOG=1 every half interval while every shard has beaten
/// since the last check; a stuck shard stops the pings and systemd restarts the broker.
pub fn start_watchdog(beats: Heartbeats) {
    let Some(interval) = watchdog_interval() else {
        return;
    };
    std::thread::spawn(move || {
        let mut last = beats.snapshot();
        loop {
            std::thread::sleep(interval / 2);
            let now = beats.snapshot();
            let all_alive = now.iter().zip(&last).all(|(n, l)| n != l);
            if all_alive {
                notify("WATCHDOG=1");
            } else {
                tracing::error!("a shard stopped turning: withholding the systemd watchdog ping");
            }
            last = now;
        }
    });
}
