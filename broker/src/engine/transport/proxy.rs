//! PROXY protocol headers, v1 (text) and v2 (binary), as HAProxy, nginx, Envoy and cloud
//! load balancers put them before a connection's first byte to say which client they carry.
//! A listener with `proxy_protocol = true` requires one: the client address it names is the
//! connection's from then on; a connection without one, or with a bad one, is closed.
//!
//! The header is read before anything else on the socket (before TLS). A v2 `LOCAL` header
//! (a health check from the proxy itself) and a v1 `UNKNOWN` or an address family the
//! broker has no use for (v2 UNIX, UDP) keep the socket's own address, as the spec says.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The 12 bytes every v2 header starts with.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// What every v1 header starts with.
const V1_PREFIX: &[u8; 6] = b"PROXY ";
/// A v1 header is at most 107 bytes, CRLF included.
const V1_MAX: usize = 107;
/// Longest v2 address block and TLVs taken (the format allows 64 KiB; real proxies send a
/// few hundred bytes at most, and a connection's header buffer stays small).
pub const V2_MAX_BODY: usize = 4096;

/// What a complete header said.
#[derive(Debug, PartialEq, Eq)]
pub struct Header {
    /// Its length: the bytes after it are the connection's own.
    pub len: usize,
    /// The client it carries; `None` keeps the socket's address (LOCAL, UNKNOWN).
    pub client: Option<SocketAddr>,
}

/// Reads a PROXY header at the start of `buf`: `Ok(None)` while more bytes are needed,
/// `Err` with a reason when `buf` cannot start with a valid one.
pub fn parse(buf: &[u8]) -> Result<Option<Header>, String> {
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] == V2_SIGNATURE[..n] {
        return if n < V2_SIGNATURE.len() {
            Ok(None)
        } else {
            parse_v2(buf)
        };
    }
    let n = buf.len().min(V1_PREFIX.len());
    if buf[..n] == V1_PREFIX[..n] {
        return if n < V1_PREFIX.len() {
            Ok(None)
        } else {
            parse_v1(buf)
        };
    }
    Err(
        "no PROXY protocol header (this listener requires one; the connection must come \
         through the proxy)"
            .into(),
    )
}

fn parse_v1(buf: &[u8]) -> Result<Option<Header>, String> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(format!(
                "PROXY v1 header without CRLF in its first {V1_MAX} bytes"
            ))
        } else {
            Ok(None)
        };
    };
    let bad = || "bad PROXY v1 header (expected PROXY TCP4|TCP6 SRC DST SPORT DPORT)".to_string();
    let line = std::str::from_utf8(&buf[V1_PREFIX.len()..end]).map_err(|_| bad())?;
    let words: Vec<&str> = line.split(' ').collect();
    let len = end + 2;
    let client = match words.as_slice() {
        ["UNKNOWN", ..] => None,
        [family @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let ip = |s: &str| -> Result<IpAddr, String> {
                let ip: IpAddr = s.parse().map_err(|_| bad())?;
                match (ip, *family) {
                    (IpAddr::V4(_), "TCP4") | (IpAddr::V6(_), "TCP6") => Ok(ip),
                    _ => Err(bad()),
                }
            };
            let port = |s: &str| -> Result<u16, String> {
                if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                s.parse().map_err(|_| bad())
            };
            let (src, _dst) = (ip(src)?, ip(dst)?);
            let (sport, _dport) = (port(sport)?, port(dport)?);
            Some(SocketAddr::new(src, sport))
        }
        _ => return Err(bad()),
    };
    Ok(Some(Header { len, client }))
}

fn parse_v2(buf: &[u8]) -> Result<Option<Header>, String> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let (ver_cmd, family) = (buf[12], buf[13]);
    let body = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    if ver_cmd >> 4 != 2 {
        return Err(format!(
            "PROXY v2 header of version {} (only 2 exists)",
            ver_cmd >> 4
        ));
    }
    if body > V2_MAX_BODY {
        return Err(format!(
            "PROXY v2 header of {body} bytes (at most {V2_MAX_BODY} are taken)"
        ));
    }
    let len = 16 + body;
    if buf.len() < len {
        return Ok(None);
    }
    let a = &buf[16..len];
    let client = match ver_cmd & 0x0F {
        // LOCAL: the proxy's own connection (a health check).
        0 => None,
        1 => match family {
            // TCP over IPv4: source, destination, source port, destination port.
            0x11 if a.len() >= 12 => {
                let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
                Some(SocketAddr::new(ip.into(), u16::from_be_bytes([a[8], a[9]])))
            }
            0x21 if a.len() >= 36 => {
                let mut o = [0; 16];
                o.copy_from_slice(&a[..16]);
                let ip = Ipv6Addr::from(o);
                Some(SocketAddr::new(
                    ip.into(),
                    u16::from_be_bytes([a[32], a[33]]),
                ))
            }
            0x11 | 0x21 => {
                return Err(format!(
                    "PROXY v2 header with {} address bytes, too few for its family",
                    a.len()
                ))
            }
            // UNSPEC, UNIX, UDP: the socket's own address stands.
            _ => None,
        },
        c => return Err(format!("PROXY v2 header with unknown command {c}")),
    };
    Ok(Some(Header { len, client }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(cmd: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut v = V2_SIGNATURE.to_vec();
        v.push(0x20 | cmd);
        v.push(family);
        v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn v1_headers_name_the_client() {
        let h = b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 1883\r\n\x10\x0c";
        assert_eq!(
            parse(h).unwrap(),
            Some(Header {
                len: h.len() - 2,
                client: Some("203.0.113.7:51000".parse().unwrap())
            })
        );
        let h = b"PROXY TCP6 2001:db8::5 2001:db8::1 4000 1883\r\n";
        let got = parse(h).unwrap().unwrap();
        assert_eq!(got.client, Some("[2001:db8::5]:4000".parse().unwrap()));
        let h = b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n";
        assert_eq!(parse(h).unwrap().unwrap().client, None);
    }

    #[test]
    fn headers_in_pieces_wait_for_the_rest() {
        let h = b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 1883\r\n";
        for cut in 0..h.len() {
            assert_eq!(parse(&h[..cut]), Ok(None), "v1 cut at {cut}");
        }
        let mut body = vec![203, 0, 113, 7, 192, 0, 2, 1];
        body.extend_from_slice(&51000u16.to_be_bytes());
        body.extend_from_slice(&1883u16.to_be_bytes());
        let h = v2(1, 0x11, &body);
        for cut in 0..h.len() {
            assert_eq!(parse(&h[..cut]), Ok(None), "v2 cut at {cut}");
        }
        assert_eq!(
            parse(&h).unwrap().unwrap().client,
            Some("203.0.113.7:51000".parse().unwrap())
        );
    }

    #[test]
    fn v2_families_and_commands() {
        let mut body = "2001:db8::5".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        body.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        body.extend_from_slice(&4000u16.to_be_bytes());
        body.extend_from_slice(&1883u16.to_be_bytes());
        // TLVs after the addresses are skipped.
        body.extend_from_slice(&[0x04, 0x00, 0x01, 0xAA]);
        let h = v2(1, 0x21, &body);
        let got = parse(&h).unwrap().unwrap();
        assert_eq!(got.len, h.len());
        assert_eq!(got.client, Some("[2001:db8::5]:4000".parse().unwrap()));
        assert_eq!(
            parse(&v2(0, 0x00, &[])).unwrap().unwrap().client,
            None,
            "LOCAL"
        );
        assert_eq!(
            parse(&v2(1, 0x31, &[0; 216])).unwrap().unwrap().client,
            None,
            "UNIX"
        );
        assert!(parse(&v2(1, 0x11, &[0; 4])).is_err(), "short addresses");
        assert!(parse(&v2(2, 0x11, &[0; 12])).is_err(), "unknown command");
        let mut h = v2(1, 0x11, &[0; 12]);
        h[12] = 0x11;
        assert!(parse(&h).is_err(), "version 1 in a binary header");
    }

    #[test]
    fn anything_else_is_refused_early() {
        // An MQTT CONNECT, a TLS ClientHello, HTTP: refused from their first bytes.
        for bad in [
            &b"\x10\x0c\x00\x04MQTT"[..],
            b"\x16\x03\x01",
            b"GET / HTTP/1.1",
            b"P\x00",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n").is_ok());
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"[..],
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 70000 2\r\n",
            b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
            &[b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat(),
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let mut big = v2(1, 0x11, &[]);
        big[14..16].copy_from_slice(&(V2_MAX_BODY as u16 + 1).to_be_bytes());
        assert!(parse(&big).is_err(), "over the body limit");
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_parsed_without_panic(b in proptest::collection::vec(0u8..=255, 0..200)) {
            if let Ok(Some(h)) = parse(&b) {
                proptest::prop_assert!(h.len <= b.len());
            }
        }

        #[test]
        fn any_bytes_after_a_v2_signature_are_parsed_without_panic(
            b in proptest::collection::vec(0u8..=255, 0..80)
        ) {
            let buf = [V2_SIGNATURE.as_slice(), &b].concat();
            if let Ok(Some(h)) = parse(&buf) {
                proptest::prop_assert!(h.len <= buf.len());
            }
        }
    }
}
