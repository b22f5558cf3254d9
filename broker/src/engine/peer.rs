//! The peer address of an accepted socket. A direct descriptor has no process fd to call
//! getpeername(2) on, so the ring is asked instead, with a getsockopt(SO_PEERNAME) command
//! submitted right after the accept. The command runs when it is submitted, ahead of the
//! connection's first receive, so the shard knows the address before it reads CONNECT. A
//! PROXY protocol header read later replaces it with the client's (`transport`).

use super::ctx::Ctx;
use super::sockets::{data, Op, Slab};
use super::tables::Sock;
use shard::ConnId;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A `sockaddr_in6` is 28 bytes, a `sockaddr_in` 16.
const V6_LEN: usize = 28;
const V4_LEN: usize = 16;

/// Questions in flight: the buffer the kernel writes the address into lives here until
/// the answer comes.
#[derive(Default)]
pub struct Asks(Slab<Ask>);

struct Ask {
    conn: ConnId,
    buf: Box<[u8; V6_LEN]>,
}

/// Asks for the peer address of `sock`, connection `conn`, accepted on an IPv6 (`v6`) or
/// IPv4 listener (the kernel refuses a buffer longer than the address).
pub fn ask(ctx: &Ctx, sock: Sock, conn: ConnId, v6: bool) {
    use io_uring::{opcode, types};
    let mut asks = ctx.peer_asks.borrow_mut();
    let i = asks.0.insert(Ask {
        conn,
        buf: Box::new([0; V6_LEN]),
    });
    let Some(a) = asks.0.get_mut(i) else { return };
    let len = if v6 { V6_LEN } else { V4_LEN };
    let e = opcode::GetSockOpt::new(
        types::Fixed(sock.file),
        libc::SOL_SOCKET as u32,
        libc::SO_PEERNAME as u32,
        a.buf.as_mut_ptr().cast(),
        len as u32,
    )
    .build()
    .user_data(data(Op::PeerName, 0, i));
    drop(asks);
    // SAFETY: the buffer is boxed in `peer_asks` and stays there until this command's
    // completion (`on_answer`) removes it.
    unsafe { ctx.submit(sock.table, e) };
}

/// The answer to question `i`: `res` is the address's length, or a negative errno (the
/// client may have gone already; the address then stays unknown).
pub fn on_answer(ctx: &Ctx, i: u32, res: i32) {
    let Some(a) = ctx.peer_asks.borrow_mut().0.remove(i) else {
        return;
    };
    if let Some(addr) = parse(&a.buf[..res.max(0) as usize]) {
        ctx.shard.borrow_mut().set_peer(a.conn, addr);
    }
}

/// A `sockaddr_in` or `sockaddr_in6` as the kernel wrote it (IPv4-mapped IPv6 addresses
/// become IPv4 ones, as the client sees itself).
fn parse(b: &[u8]) -> Option<SocketAddr> {
    let family = i32::from(u16::from_ne_bytes(b.get(..2)?.try_into().ok()?));
    let port = u16::from_be_bytes(b.get(2..4)?.try_into().ok()?);
    let ip = match family {
        libc::AF_INET => {
            let o: [u8; 4] = b.get(4..8)?.try_into().ok()?;
            IpAddr::V4(Ipv4Addr::from(o))
        }
        libc::AF_INET6 => {
            let o: [u8; 16] = b.get(8..24)?.try_into().ok()?;
            let ip = Ipv6Addr::from(o);
            ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_kernel_writes() {
        let mut v4 = [0u8; 16];
        v4[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        v4[2..4].copy_from_slice(&33448u16.to_be_bytes());
        v4[4..8].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(parse(&v4), Some("127.0.0.1:33448".parse().unwrap()));

        let mut v6 = [0u8; 28];
        v6[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        v6[2..4].copy_from_slice(&8883u16.to_be_bytes());
        let ip: Ipv6Addr = "2001:db8::7".parse().unwrap();
        v6[8..24].copy_from_slice(&ip.octets());
        assert_eq!(parse(&v6), Some("[2001:db8::7]:8883".parse().unwrap()));

        let mapped: Ipv6Addr = "::ffff:10.1.2.3".parse().unwrap();
        v6[8..24].copy_from_slice(&mapped.octets());
        assert_eq!(parse(&v6), Some("10.1.2.3:8883".parse().unwrap()));

        assert_eq!(parse(&v4[..3]), None, "short");
        assert_eq!(parse(&[0u8; 16]), None, "unknown family");
    }
}
