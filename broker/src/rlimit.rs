//! The open-file limit (RLIMIT_NOFILE): raise the soft limit to the hard limit at start, and
//! warn loudly when even that is too low for the configured connection count. Every
//! connection is a file descriptor, and the common default soft limit of 1024 is the
//! reason brokers "stop at ~1,000 connections". This module only reads and raises the
//! process's own limit; it never lowers it and never touches system settings.

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

/// Grows this process's descriptor table now to hold every descriptor the configuration can
/// use (`max_connections` plus the headroom, capped by the soft limit), and returns that
/// number. Call it while the process still has one thread.
///
/// Why: the kernel doubles the table as descriptors are opened, and in a process with more
/// than one thread each doubling waits for an RCU grace period (`expand_fdtable`). Measured
/// with `perf trace` on this project's connect benchmark: the `accept4` that returned fd 4,096
/// took 10.9 ms and the one at 8,192 took 6.1 ms, with the whole shard stalled meanwhile;
/// those stalls were the connect p99. The table costs 8 bytes per slot, which a full broker
/// needs anyway.
pub fn presize_fd_table(max_connections: u32, shards: usize) -> io::Result<u64> {
    let soft = nofile().map_err(|e| io::Error::other(e.to_string()))?.soft;
    let want = (u64::from(max_connections) + headroom(shards)).min(soft);
    if want < 2 {
        return Ok(want);
    }
    // The highest descriptor number the table must reach; F_DUPFD grows it to cover that.
    let top = libc::c_int::try_from(want - 1).unwrap_or(libc::c_int::MAX);
    // SAFETY: open, fcntl and close on descriptors created here and closed before returning.
    unsafe {
        let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let high = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, top);
        let err = io::Error::last_os_error();
        libc::close(fd);
        if high < 0 {
            return Err(err);
        }
        libc::close(high);
    }
    Ok(want)
}

/// Descriptors needed besides client sockets: per shard its io_uring rings and eventfds,
/// its listener sockets, its log files and a dup'd fd during a socket hand-off; per process
/// stdio, the admin and metrics sockets and some slack for libraries.
pub fn headroom(shards: usize) -> u64 {
    64 + 16 * shards as u64
}

/// The open-file limit is too low for the configured connection count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LowNofile {
    pub soft: Rlim,
    pub max_connections: u32,
    pub headroom: u64,
}

impl LowNofile {
    /// The smallest limit that holds `max_connections` plus the headroom.
    pub fn needed(&self) -> u64 {
        u64::from(self.max_connections) + self.headroom
    }
}

impl fmt::Display for LowNofile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let needed = self.needed();
        write!(
            f,
            "the open-file limit {} is below limits.max_connections {} + {} descriptors for \
             shards and listeners = {needed}; connections beyond about {} will be refused. \
             Fix: raise the limit to at least {needed}: under systemd LimitNOFILE={needed} or \
             more in the unit (kernel-tuning/systemd/ringmq.service), from a shell a nofile \
             line in /etc/security/limits.d/ (kernel-tuning/tune.sh installs \
             kernel-tuning/limits.d/ringmq.conf); kernel-tuning/check.sh {} lists what else \
             is short. Or lower limits.max_connections",
            self.soft,
            self.max_connections,
            self.headroom,
            self.soft.saturating_sub(self.headroom),
            self.max_connections,
        )
    }
}

/// Whether a soft limit of `soft` holds `max_connections` across `shards` shards.
pub fn check_nofile(soft: Rlim, max_connections: u32, shards: usize) -> Option<LowNofile> {
    let low = LowNofile {
        soft,
        max_connections,
        headroom: headroom(shards),
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
    /// The kernel's descriptor table size for this process (`FDSize` in /proc/self/status).
    fn fd_table_size() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("FDSize:")).unwrap();
        line["FDSize:".len()..].trim().parse().unwrap()
    }

    #[test]
    fn presize_grows_the_descriptor_table_up_front() {
        let soft = super::nofile().unwrap().soft;
        let want = 3000u64.min(soft);
        let got = super::presize_fd_table(3000 - super::headroom(1) as u32, 1).unwrap();
        assert_eq!(got, want);
        assert!(
            fd_table_size() >= want,
            "table {} < {want}",
            fd_table_size()
        );
    }

    use super::*;

    #[test]
    fn headroom_grows_per_shard() {
        assert_eq!(headroom(1), 80);
        assert_eq!(headroom(4), 128);
    }

    #[test]
    fn low_limit_is_reported_with_the_fix() {
        let low = check_nofile(1024, 1_000_000, 4).expect("1024 < 1,000,128");
        assert_eq!(
            low,
            LowNofile {
                soft: 1024,
                max_connections: 1_000_000,
                headroom: 128
            }
        );
        assert_eq!(low.needed(), 1_000_128);
        let text = low.to_string();
        assert!(text.starts_with(
            "the open-file limit 1024 is below limits.max_connections 1000000 + 128 descriptors"
        ));
        assert!(text.contains("connections beyond about 896 will be refused"));
        assert!(text.contains("LimitNOFILE=1000128"));
        assert!(text.contains("/etc/security/limits.d/"));
        assert!(text.contains("kernel-tuning/systemd/ringmq.service"));
        assert!(text.contains("kernel-tuning/check.sh 1000000 lists what else is short"));
    }

    #[test]
    fn enough_limit_is_quiet() {
        // Exactly max_connections + headroom is enough; one less is not.
        assert_eq!(check_nofile(1080, 1000, 1), None);
        assert!(check_nofile(1079, 1000, 1).is_some());
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
