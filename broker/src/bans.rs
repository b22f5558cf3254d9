//! Banned clients: by client id, username or source address (one address or a CIDR range),
//! each until a time or for good, kept in a TOML file (`auth.ban_file`) that the broker reads
//! at start. A banned client's CONNECT gets 0x8A Banned (v3: 0x05 Not authorized) before any
//! password is checked. The address is the client's as the shard knows it (a PROXY header's
//! client where there is one).
//!
//! ```toml
//! [[ban]]
//! clientid = "broken-device-17"
//! [[ban]]
//! address = "203.0.113.0/24"
//! until = 1798761600          # Unix seconds; without it the ban has no end
//! reason = "scanner"
//! ```

use serde::Deserialize;
use shard::{Admission, ClientInfo};
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    ban: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    clientid: Option<String>,
    username: Option<String>,
    address: Option<String>,
    until: Option<u64>,
    /// Why, for the people who read the file; the broker does not use it.
    #[serde(rename = "reason")]
    _reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Who {
    ClientId(String),
    Username(String),
    Net { addr: IpAddr, prefix: u8 },
}

#[derive(Debug, Clone)]
struct Ban {
    who: Who,
    /// Unix seconds after which the ban no longer applies.
    until: Option<u64>,
}

/// The bans of a ban file.
#[derive(Debug, Default)]
pub struct BanList {
    bans: Vec<Ban>,
}

impl BanList {
    pub fn parse(text: &str) -> Result<BanList, String> {
        let f: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut bans = Vec::new();
        for (i, e) in f.ban.into_iter().enumerate() {
            let n = i + 1;
            let who = match (e.clientid, e.username, e.address) {
                (Some(c), None, None) => Who::ClientId(c),
                (None, Some(u), None) => Who::Username(u),
                (None, None, Some(a)) => net(&a).map_err(|e| format!("ban {n}: {e}"))?,
                _ => {
                    return Err(format!(
                        "ban {n}: give exactly one of clientid, username or address"
                    ))
                }
            };
            bans.push(Ban {
                who,
                until: e.until,
            });
        }
        Ok(BanList { bans })
    }

    pub fn len(&self) -> usize {
        self.bans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bans.is_empty()
    }

    /// Whether `client` from `peer` is banned at `now_s` (Unix seconds).
    pub fn banned(&self, client: &ClientInfo<'_>, peer: Option<SocketAddr>, now_s: u64) -> bool {
        self.bans.iter().any(|b| {
            b.until.is_none_or(|t| now_s < t)
                && match &b.who {
                    Who::ClientId(c) => c == client.client_id,
                    Who::Username(u) => client.username == Some(u.as_str()),
                    Who::Net { addr, prefix } => {
                        peer.is_some_and(|p| in_net(p.ip(), *addr, *prefix))
                    }
                }
        })
    }
}

/// `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or an IPv6 network.
fn net(s: &str) -> Result<Who, String> {
    let (ip, prefix) = match s.split_once('/') {
        Some((ip, p)) => (ip, Some(p)),
        None => (s, None),
    };
    let addr: IpAddr = ip
        .parse()
        .map_err(|_| format!("address {s:?}: not an IP address or network"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|&p| p <= max)
            .ok_or_else(|| format!("address {s:?}: the prefix must be 0..={max}"))?,
        None => max,
    };
    Ok(Who::Net { addr, prefix })
}

fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// One shard's check over the shared ban list.
pub struct BanCheck(pub crate::authn::Shared<BanList>);

impl Admission for BanCheck {
    fn banned(&mut self, client: &ClientInfo<'_>, peer: Option<SocketAddr>) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.0.load().file.banned(client, peer, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who<'a>(id: &'a str, user: Option<&'a str>) -> ClientInfo<'a> {
        ClientInfo {
            client_id: id,
            username: user,
        }
    }

    #[test]
    fn bans_match_id_user_and_networks_until_they_expire() {
        let l = BanList::parse(
            r#"
            [[ban]]
            clientid = "bad"
            [[ban]]
            username = "mallory"
            until = 2000
            [[ban]]
            address = "203.0.113.0/24"
            [[ban]]
            address = "2001:db8::/32"
            "#,
        )
        .unwrap();
        let p = |s: &str| Some(s.parse::<SocketAddr>().unwrap());
        let home = p("192.0.2.1:5");
        assert!(l.banned(&who("bad", None), home, 0));
        assert!(!l.banned(&who("good", None), home, 0));
        assert!(l.banned(&who("x", Some("mallory")), home, 1999));
        assert!(!l.banned(&who("x", Some("mallory")), home, 2000), "expired");
        assert!(l.banned(&who("x", None), p("203.0.113.77:1"), 0));
        assert!(!l.banned(&who("x", None), p("203.0.114.1:1"), 0));
        assert!(
            l.banned(&who("x", None), p("[::ffff:203.0.113.9]:1"), 0),
            "mapped"
        );
        assert!(l.banned(&who("x", None), p("[2001:db8:1::5]:1"), 0));
        assert!(
            !l.banned(&who("x", None), None, 0),
            "no address, no address ban"
        );
    }

    #[test]
    fn bad_entries_are_refused() {
        for (text, want) in [
            (
                "[[ban]]\nclientid = \"a\"\nusername = \"b\"\n",
                "exactly one",
            ),
            (
                "[[ban]]\naddress = \"10.0.0.0/33\"\n",
                "prefix must be 0..=32",
            ),
            ("[[ban]]\naddress = \"host.example\"\n", "not an IP address"),
            ("[[ban]]\nclient = \"a\"\n", "unknown field"),
        ] {
            let e = BanList::parse(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
