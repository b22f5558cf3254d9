//! The open-file limit (RLIMIT_NOFILE): raise the soft limit to the hard limit at start, and
//! warn loudly when even that is too low for the configured connection count. Connections
//! are io_uring direct descriptors, not process fds, but the kernel caps each shard's table
//! of them at this limit (the common default of 1024 is why brokers "stop at ~1,000
//! connections"). This module only reads and raises the process's own limit; it never
//! lowers it and never touches system settings.

use std::fmt;
use std::io;

/// A limit value as the kernel reports it; [`UNLIMITED`] means no limit. (ringmq runs on
/// 64-bit Linux, where `rlim_t` is `u64`.)
pub type Rlim = libc::rlim_t;

/// RLIM_INFINITY.
pub const UNLIMITED: Rlim = libc::RLIM_INFINITY;

/// Used when the hard limit is unlimited and /proc/sys/fs/nr_open cannot be read: the
/// kernel's default nr_open.
const NR_OPEN_DEFAULT: Rlim = 1 << 20;

/// Soft and hard RLIMIT_NOFILE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    pub soft: Rlim,
    pub hard: Rlim,
}

/// The limit before and after [`raise_nofile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileReport {
    pub before: NofileLimit,
    pub after: NofileLimit,
}

impl fmt::Display for NofileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (b, a) = (self.before, self.after);
        if b.soft == a.soft {
            write!(
                f,
                "open-file limit {} (hard {})",
                show(a.soft),
                show(a.hard)
            )
        } else {
            write!(
                f,
                "open-file limit raised from {} to {} (hard {})",
                show(b.soft),
                show(a.soft),
                show(a.hard)
            )
        }
    }
}

fn show(v: Rlim) -> String {
    if v == UNLIMITED {
        "unlimited".to_owned()
    } else {
        v.to_string()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RlimitError {
    #[error("cannot read the open-file limit (getrlimit RLIMIT_NOFILE): {0}")]
    Get(#[source] io::Error),
    #[error("cannot raise the open-file soft limit to {soft} (setrlimit RLIMIT_NOFILE): {source}")]
    Set {
        soft: Rlim,
        #[source]
        source: io::Error,
    },
}

/// The current RLIMIT_NOFILE.
pub fn nofile() -> Result<NofileLimit, RlimitError> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct through a valid, exclusive pointer.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if rc != 0 {
        return Err(RlimitError::Get(io::Error::last_os_error()));
    }
    Ok(NofileLimit {
        soft: lim.rlim_cur,
        hard: lim.rlim_max,
    })
}

/// Raises the soft limit to the hard limit (to fs.nr_open when the hard limit is unlimited,
/// since the kernel refuses an unlimited RLIMIT_NOFILE). Never lowers anything.
pub fn raise_nofile() -> Result<NofileReport, RlimitError> {
    let before = nofile()?;
    let target = if before.hard == UNLIMITED {
        nr_open()
    } else {
        before.hard
    };
    if before.soft == UNLIMITED || before.soft >= target {
        return Ok(NofileReport {
            before,
            after: before,
        });
    }
    let lim = libc::rlimit {
        rlim_cur: target,
        rlim_max: before.hard,
    };
    // SAFETY: setrlimit reads one rlimit struct through a valid pointer.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    if rc != 0 {
        return Err(RlimitError::Set {
            soft: target,
            source: io::Error::last_os_error(),
        });
    }
    Ok(NofileReport {
        before,
        after: nofile()?,
    })
}

fn nr_open() -> Rlim {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(NR_OPEN_DEFAULT)
}

/// Slots each shard's descriptor table has beyond its share of `max_connections`, for
/// sockets lingering after a close or arriving by hand-off (`engine/executor.rs`).
pub const TABLE_SPARE: u64 = 1024;

/// Most descriptor tables one shard opens (`engine::MAX_TABLES`).
pub const MAX_TABLES: u64 = 256;

/// The open-file limit is too low for the configured connection count. Connections are not
/// process fds: they live in io_uring tables of direct descriptors, and the kernel caps one
/// table at RLIMIT_NOFILE slots, so a shard opens as many tables as its share needs, up to
/// `MAX_TABLES`. Only a limit that makes even that many too few is too low.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LowNofile {
    pub soft: Rlim,
    pub max_connections: u32,
    pub shards: usize,
}

impl LowNofile {
    /// The smallest limit whose `MAX_TABLES` tables per shard hold its share plus the
    /// spare slots.
    pub fn needed(&self) -> u64 {
        let share = u64::from(self.max_connections).div_ceil(self.shards.max(1) as u64);
        (share + TABLE_SPARE).div_ceil(MAX_TABLES)
    }

    /// About how many connections the shards' tables hold under this limit.
    pub fn capacity(&self) -> u64 {
        (self.soft * MAX_TABLES).saturating_sub(TABLE_SPARE) * self.shards.max(1) as u64
    }
}

impl fmt::Display for LowNofile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let needed = self.needed();
        write!(
            f,
            "the open-file limit {} allows each shard {MAX_TABLES} tables of {} connections, \
             below its share of limits.max_connections {} over {} shard(s) + {} spare slots; \
             connections beyond about {} will be refused. Fix: raise the limit to at least \
             {needed}: under systemd LimitNOFILE={needed} or more in the unit \
             (kernel-tuning/systemd/ringmq.service), from a shell a nofile line in \
             /etc/security/limits.d/ (kernel-tuning/tune.sh installs \
             kernel-tuning/limits.d/ringmq.conf); kernel-tuning/check.sh {} lists what else \
             is short. Or lower limits.max_connections",
            self.soft,
            self.soft,
            self.max_connections,
            self.shards,
            TABLE_SPARE,
            self.capacity(),
            self.max_connections,
        )
    }
}

/// Whether a soft limit of `soft` holds `max_connections` across `shards` shards.
pub fn check_nofile(soft: Rlim, max_connections: u32, shards: usize) -> Option<LowNofile> {
    let low = LowNofile {
        soft,
        max_connections,
        shards,
    };
    (soft != UNLIMITED && soft < low.needed()).then_some(low)
}

/// [`check_nofile`] on the process's current soft limit (None when it cannot be read).
pub fn check_current(max_connections: u32, shards: usize) -> Option<LowNofile> {
    check_nofile(nofile().ok()?.soft, max_connections, shards)
}

/// Logs a warning when the current soft limit cannot hold `max_connections`; call after
/// [`raise_nofile`]. Returns what it warned about.
pub fn warn_if_low(max_connections: u32, shards: usize) -> Option<LowNofile> {
    let low = check_current(max_connections, shards)?;
    tracing::warn!(
        soft_limit = low.soft,
        max_connections,
        needed = low.needed(),
        "{low}"
    );
    Some(low)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_limit_is_reported_with_the_fix() {
        let low = check_nofile(64, 1_000_000, 4).expect("256 tables of 64 < 251,024");
        assert_eq!(
            low,
            LowNofile {
                soft: 64,
                max_connections: 1_000_000,
                shards: 4
            }
        );
        assert_eq!(low.needed(), 981);
        let text = low.to_string();
        assert!(text.starts_with(
            "the open-file limit 64 allows each shard 256 tables of 64 connections, below its \
             share of limits.max_connections 1000000 over 4 shard(s) + 1024 spare slots"
        ));
        assert!(text.contains("connections beyond about 61440 will be refused"));
        assert!(text.contains("LimitNOFILE=981"));
        assert!(text.contains("/etc/security/limits.d/"));
        assert!(text.contains("kernel-tuning/systemd/ringmq.service"));
        assert!(text.contains("kernel-tuning/check.sh 1000000 lists what else is short"));
    }

    #[test]
    fn enough_limit_is_quiet() {
        // 256 tables of 20,000 hold a million per shard; of 8 slots, 2,048 less the spare.
        assert_eq!(check_nofile(20_000, 1_000_000, 1), None);
        assert_eq!(check_nofile(8, 1000, 1), None);
        assert!(check_nofile(7, 1000, 1).is_some());
        assert_eq!(check_nofile(6, 1000, 2), None);
        assert_eq!(check_nofile(UNLIMITED, u32::MAX, 256), None);
    }

    #[test]
    fn raise_sets_soft_to_hard_and_keeps_hard() {
        let report = raise_nofile().expect("raising the soft limit to the hard limit is allowed");
        let expected = if report.before.hard == UNLIMITED {
            nr_open()
        } else {
            report.before.hard
        };
        assert_eq!(report.after.hard, report.before.hard);
        assert_eq!(report.after.soft, expected.max(report.before.soft));
        assert_eq!(nofile().unwrap(), report.after);
    }
}
