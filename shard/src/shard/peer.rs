//! The address a connection comes from: its socket's peer, or the client a PROXY protocol
//! header names. Every connection keeps it compactly (20 bytes); client events carry it,
//! and access rules will match it.

use super::{Conn, Shard};
use crate::ids::ConnId;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A peer address: the IP (IPv4 kept apart from IPv6, not mapped) and the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr {
    ip: [u8; 16],
    port: u16,
    v4: bool,
}

impl From<SocketAddr> for PeerAddr {
    fn from(a: SocketAddr) -> Self {
        match a.ip() {
            IpAddr::V4(ip) => {
                let mut b = [0; 16];
                b[..4].copy_from_slice(&ip.octets());
                PeerAddr {
                    ip: b,
                    port: a.port(),
                    v4: true,
                }
            }
            IpAddr::V6(ip) => PeerAddr {
                ip: ip.octets(),
                port: a.port(),
                v4: false,
            },
        }
    }
}

impl From<PeerAddr> for SocketAddr {
    fn from(p: PeerAddr) -> Self {
        let ip = if p.v4 {
            IpAddr::V4(Ipv4Addr::new(p.ip[0], p.ip[1], p.ip[2], p.ip[3]))
        } else {
            IpAddr::V6(Ipv6Addr::from(p.ip))
        };
        SocketAddr::new(ip, p.port)
    }
}

impl Shard {
    /// Records where connection `conn` comes from (the socket's peer once the kernel said,
    /// or a PROXY header's client, which replaces it).
    pub fn set_peer(&mut self, conn: ConnId, addr: SocketAddr) {
        if let Some(c) = self.conn_mut(conn) {
            c.peer = Some(addr.into());
        }
    }

    /// Where connection `conn` comes from, when known.
    pub fn peer(&self, conn: ConnId) -> Option<SocketAddr> {
        self.conns
            .get(conn.slot, conn.gen)
            .and_then(|c: &Conn| c.peer)
            .map(SocketAddr::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_and_stay_small() {
        for a in [
            "192.0.2.7:1883",
            "[2001:db8::1]:8883",
            "[::ffff:10.0.0.1]:5",
        ] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(SocketAddr::from(PeerAddr::from(a)), a);
        }
        assert!(std::mem::size_of::<Option<PeerAddr>>() <= 20);
    }

    #[test]
    fn a_connection_keeps_the_last_address_it_was_given() {
        let mut s = Shard::new(
            crate::ids::ShardId(0),
            1,
            crate::config::ShardConfig::default(),
        );
        let c = s.open_conn(0);
        assert_eq!(s.peer(c), None);
        let sock: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let proxied: SocketAddr = "[2001:db8::9]:5555".parse().unwrap();
        s.set_peer(c, sock);
        assert_eq!(s.peer(c), Some(sock));
        s.set_peer(c, proxied);
        assert_eq!(s.peer(c), Some(proxied));
        s.conn_lost(0, c);
        assert_eq!(s.peer(c), None);
    }
}
