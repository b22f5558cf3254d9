//! Where each connection goes: which worker process opens it, which broker host it dials and
//! which local source address it binds, so that a run can exceed both the per-process
//! open-file limit and the ~28k ephemeral ports of one (source, destination) address pair.
//!
//! Pure arithmetic on indexes; no sockets are touched here. Every worker derives the same
//! answer from a connection's global ordinal, so nothing but the run spec is sent to them.

use anyhow::{bail, Context, Result};
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;

/// Most sockets one worker opens by default. The soft open-file limit here is 20,000; 15,000
/// leaves room for the process's own descriptors and keeps one worker's loop short enough
/// that its latency samples are not dominated by its own scanning.
pub const MAX_PER_WORKER: u64 = 15_000;

/// A range is capped so a typo (`127.0.0.1-127.255.0.0`) cannot make a 16M-entry list.
const MAX_RANGE: u32 = 65_536;

/// Parses `--ifaddr`: a comma-separated list of addresses and inclusive IPv4 ranges,
/// e.g. `127.0.0.2-127.0.0.60,127.1.0.1`.
pub fn parse_ifaddrs(s: &str) -> Result<Vec<IpAddr>> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        match item.split_once('-') {
            Some((a, b)) => {
                let a: Ipv4Addr = a
                    .trim()
                    .parse()
                    .with_context(|| format!("--ifaddr {item:?}: bad start address"))?;
                let b: Ipv4Addr = b
                    .trim()
                    .parse()
                    .with_context(|| format!("--ifaddr {item:?}: bad end address"))?;
                let (a, b) = (u32::from(a), u32::from(b));
                if a > b {
                    bail!("--ifaddr {item:?}: the range runs backwards");
                }
                if b - a >= MAX_RANGE {
                    bail!("--ifaddr {item:?}: more than {MAX_RANGE} addresses in one range");
                }
                out.extend((a..=b).map(|x| IpAddr::V4(Ipv4Addr::from(x))));
            }
            None => out.push(
                item.parse()
                    .with_context(|| format!("--ifaddr {item:?}: not an IP address"))?,
            ),
        }
    }
    if out.is_empty() {
        bail!("--ifaddr {s:?}: no address given");
    }
    Ok(out)
}

/// The number of ephemeral ports the kernel hands out (`net.ipv4.ip_local_port_range`).
pub fn local_port_count() -> u64 {
    let range =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut it = range
        .split_whitespace()
        .filter_map(|x| x.parse::<u64>().ok());
    match (it.next(), it.next()) {
        (Some(lo), Some(hi)) if hi >= lo => hi - lo + 1,
        _ => 28_232, // the Linux default 32768..=60999
    }
}

/// `count` split into `parts` contiguous ranges whose sizes differ by at most one.
pub fn split_even(count: u64, parts: usize) -> Vec<Range<u64>> {
    let parts = parts.max(1) as u64;
    let (base, extra) = (count / parts, count % parts);
    let mut start = 0;
    (0..parts)
        .map(|i| {
            let len = base + u64::from(i < extra);
            let r = start..start + len;
            start += len;
            r
        })
        .collect()
}

/// How many worker processes to start for `total` connections.
pub fn choose_workers(total: u64, per_worker_max: u64, requested: Option<usize>) -> Result<usize> {
    let per = per_worker_max.max(1);
    let needed = total.div_ceil(per).max(1) as usize;
    match requested {
        None => Ok(needed),
        Some(0) => bail!("--workers 0: at least one worker is needed"),
        Some(w) if w < needed => bail!(
            "--workers {w} is too few for {total} connections: one worker holds at most {per} sockets \
             (open-file limit); use --workers {needed} or more"
        ),
        Some(w) => Ok(w.min(total.max(1) as usize)),
    }
}

/// Source addresses to use when `--ifaddr` is not given. Loopback brokers get extra
/// 127.0.0.x sources (every 127/8 address is local on Linux) once one address pair would
/// run past 90% of the ephemeral ports; otherwise the kernel picks the source.
pub fn auto_source_addrs(total: u64, ports: u64, hosts: &[IpAddr]) -> Vec<IpAddr> {
    let all_loopback = !hosts.is_empty() && hosts.iter().all(|h| h.is_loopback() && h.is_ipv4());
    let per_addr = (ports * 9 / 10).max(1) * hosts.len().max(1) as u64;
    if !all_loopback || total <= per_addr {
        return Vec::new();
    }
    let n = total.div_ceil(per_addr);
    (0..n)
        .map(|i| {
            IpAddr::V4(Ipv4Addr::from(
                u32::from(Ipv4Addr::new(127, 0, 0, 2)) + i as u32,
            ))
        })
        .collect()
}

/// Refuses a plan that needs more ports than the (source, destination) pairs have.
pub fn check_port_capacity(total: u64, n_sources: usize, n_hosts: usize, ports: u64) -> Result<()> {
    let pairs = (n_sources.max(1) * n_hosts.max(1)) as u64;
    let per_pair = total.div_ceil(pairs);
    if per_pair > ports {
        let need = total.div_ceil(ports * n_hosts.max(1) as u64);
        bail!(
            "{total} connections over {pairs} (source, broker) address pairs is {per_pair} per pair, more than the \
             {ports} ephemeral ports; give --ifaddr with at least {need} source addresses"
        );
    }
    Ok(())
}

/// The broker host and source address of the connection with global ordinal `ordinal`.
/// Hosts rotate fastest, then sources, so every (source, host) pair gets an equal share.
pub fn route(ordinal: u64, hosts: usize, sources: usize) -> (usize, Option<usize>) {
    let h = hosts.max(1) as u64;
    let host = (ordinal % h) as usize;
    let src = (sources > 0).then(|| ((ordinal / h) % sources as u64) as usize);
    (host, src)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_lists_and_inclusive_ranges() {
        let a = parse_ifaddrs("127.0.0.2-127.0.0.60,127.1.0.1").unwrap();
        assert_eq!(a.len(), 60);
        assert_eq!(a[0], v4("127.0.0.2"));
        assert_eq!(a[58], v4("127.0.0.60"));
        assert_eq!(a[59], v4("127.1.0.1"));
        let a = parse_ifaddrs("10.0.0.255-10.0.1.1").unwrap();
        assert_eq!(a, vec![v4("10.0.0.255"), v4("10.0.1.0"), v4("10.0.1.1")]);
        assert_eq!(
            parse_ifaddrs(" ::1 , 127.0.0.1").unwrap(),
            vec![v4("::1"), v4("127.0.0.1")]
        );
    }

    #[test]
    fn refuses_bad_ranges() {
        assert!(parse_ifaddrs("127.0.0.9-127.0.0.2")
            .unwrap_err()
            .to_string()
            .contains("backwards"));
        assert!(parse_ifaddrs("127.0.0.1-127.9.0.0")
            .unwrap_err()
            .to_string()
            .contains("more than"));
        assert!(parse_ifaddrs("127.0.0.x").is_err());
        assert!(parse_ifaddrs(",").is_err());
    }

    #[test]
    fn even_split_covers_every_index_once() {
        let r = split_even(10, 3);
        assert_eq!(r, vec![0..4, 4..7, 7..10]);
        let r = split_even(2, 4);
        assert_eq!(r, vec![0..1, 1..2, 2..2, 2..2]);
        assert_eq!(split_even(0, 1), vec![0..0]);
    }

    #[test]
    fn worker_count_follows_the_fd_limit() {
        assert_eq!(choose_workers(10, MAX_PER_WORKER, None).unwrap(), 1);
        assert_eq!(choose_workers(15_000, MAX_PER_WORKER, None).unwrap(), 1);
        assert_eq!(choose_workers(15_001, MAX_PER_WORKER, None).unwrap(), 2);
        assert_eq!(choose_workers(1_000_000, MAX_PER_WORKER, None).unwrap(), 67);
        assert_eq!(choose_workers(100, MAX_PER_WORKER, Some(4)).unwrap(), 4);
        assert_eq!(choose_workers(3, MAX_PER_WORKER, Some(8)).unwrap(), 3);
        let e = choose_workers(40_000, MAX_PER_WORKER, Some(2))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--workers 3"), "{e}");
    }

    #[test]
    fn loopback_gets_extra_sources_only_when_needed() {
        let lo = [v4("127.0.0.1")];
        assert!(auto_source_addrs(20_000, 28_232, &lo).is_empty());
        let a = auto_source_addrs(1_000_000, 28_232, &lo);
        // 90% of 28,232 is 25,408 per source: 40 sources for a million.
        assert_eq!(a.len(), 40);
        assert_eq!(a[0], v4("127.0.0.2"));
        assert_eq!(a[39], v4("127.0.0.41"));
        assert!(auto_source_addrs(1_000_000, 28_232, &[v4("10.1.2.3")]).is_empty());
        assert_eq!(
            auto_source_addrs(60_000, 28_232, &[v4("127.0.0.1"), v4("127.0.0.5")]).len(),
            2
        );
    }

    #[test]
    fn port_capacity_is_per_address_pair() {
        assert!(check_port_capacity(28_232, 0, 1, 28_232).is_ok());
        let e = check_port_capacity(100_000, 1, 1, 28_232)
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least 4 source addresses"), "{e}");
        assert!(check_port_capacity(100_000, 4, 1, 28_232).is_ok());
        assert!(check_port_capacity(100_000, 2, 2, 28_232).is_ok());
    }

    #[test]
    fn routes_spread_evenly_over_hosts_and_sources() {
        let (hosts, sources, n) = (2usize, 3usize, 600u64);
        let mut per_pair = [[0u64; 3]; 2];
        for o in 0..n {
            let (h, s) = route(o, hosts, sources);
            per_pair[h][s.unwrap()] += 1;
        }
        assert_eq!(per_pair, [[100; 3]; 2]);
        assert_eq!(route(5, 1, 0), (0, None));
    }

    #[test]
    fn a_million_over_workers_and_sources() {
        // The whole plan for 1,000,000 connections to one loopback broker.
        let hosts = [v4("127.0.0.1")];
        let total = 1_000_000;
        let w = choose_workers(total, MAX_PER_WORKER, None).unwrap();
        let srcs = auto_source_addrs(total, 28_232, &hosts);
        check_port_capacity(total, srcs.len(), hosts.len(), 28_232).unwrap();
        let slices = split_even(total, w);
        assert_eq!(slices.iter().map(|r| r.end - r.start).sum::<u64>(), total);
        assert!(slices.iter().all(|r| r.end - r.start <= MAX_PER_WORKER));
        let mut per_src = vec![0u64; srcs.len()];
        for o in 0..total {
            per_src[route(o, 1, srcs.len()).1.unwrap()] += 1;
        }
        assert_eq!(per_src.iter().max(), Some(&25_000));
    }
}
