//! Who owns each direct descriptor of a shard's ring, what each submission's `user_data`
//! means, and the sends in flight (whose buffers must outlive the kernel's use of them).
//!
//! A direct-descriptor index is reused by the kernel as soon as its socket is closed, so
//! every index carries a generation: a completion that names an older generation belongs to
//! a socket that is gone and is ignored (its receive buffer is still given back).

use super::tables::Sock;
use bytes::BytesMut;
use shard::Output;

/// What a completion is for: the top byte of `user_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Multishot accept on listener `a`.
    Accept = 1,
    /// Multishot receive on socket `b` (generation `a`).
    Recv = 2,
    /// Send number `b` (`Sends`).
    Send = 3,
    /// Cancel, close or shutdown: nothing to do on completion.
    Quiet = 4,
    /// This shard's half of a hand-off of socket `b` (generation `a`).
    HandoffOut = 5,
    /// A socket handed to this shard: `a` the sender, `b` its hand-off number.
    HandoffIn = 6,
    /// Listener `a` is readable while the descriptor table is full (shedding).
    ListenPoll = 7,
    /// The peer address of a new socket, question `b` (`peer`).
    PeerName = 8,
}

pub fn data(op: Op, a: u32, b: u32) -> u64 {
    ((op as u64) << 56) | ((a as u64 & 0xFF_FFFF) << 32) | b as u64
}

pub fn split(data: u64) -> (Option<Op>, u32, u32) {
    let op = match data >> 56 {
        1 => Op::Accept,
        2 => Op::Recv,
        3 => Op::Send,
        4 => Op::Quiet,
        5 => Op::HandoffOut,
        6 => Op::HandoffIn,
        7 => Op::ListenPoll,
        8 => Op::PeerName,
        _ => return (None, 0, 0),
    };
    (Some(op), ((data >> 32) & 0xFF_FFFF) as u32, data as u32)
}

/// Who a direct descriptor belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Free,
    /// A connection: its shard `ConnId` slot.
    Conn(u32),
    /// Being closed cleanly (`linger`), entry number.
    Linger(u32),
    /// Going to another shard: hand-off number.
    Handoff(u32),
}

#[derive(Clone, Copy)]
struct Entry {
    gen: u32,
    owner: Owner,
}

/// The direct-descriptor table's bookkeeping.
pub struct Files {
    entries: Vec<Entry>,
    used: usize,
}

impl Files {
    pub fn new(size: u32) -> Self {
        Files {
            entries: vec![
                Entry {
                    gen: 0,
                    owner: Owner::Free
                };
                size as usize
            ],
            used: 0,
        }
    }

    /// A socket was installed at `file`: a new generation, owned by `owner`.
    pub fn install(&mut self, file: u32, owner: Owner) -> u32 {
        let Some(e) = self.entries.get_mut(file as usize) else {
            return 0;
        };
        if e.owner == Owner::Free {
            self.used += 1;
        }
        e.gen = (e.gen + 1) & 0xFF_FFFF;
        e.owner = owner;
        e.gen
    }

    pub fn set_owner(&mut self, file: u32, owner: Owner) {
        if let Some(e) = self.entries.get_mut(file as usize) {
            if e.owner != Owner::Free && owner == Owner::Free {
                self.used -= 1;
            }
            e.owner = owner;
        }
    }

    /// The owner of `file` if `gen` is its current generation.
    pub fn owner(&self, file: u32, gen: u32) -> Owner {
        match self.entries.get(file as usize) {
            Some(e) if e.gen == gen => e.owner,
            _ => Owner::Free,
        }
    }

    /// True once at most an eighth of the table is free: time to have another ready.
    pub fn nearly_full(&self) -> bool {
        self.used >= self.entries.len() - self.entries.len() / 8
    }

    /// True while the table has no free slot left.
    pub fn full(&self) -> bool {
        self.used >= self.entries.len()
    }

    pub fn used(&self) -> usize {
        self.used
    }
}

/// Entries by number, numbers reused once freed (lingering sockets, outgoing hand-offs).
pub struct Slab<T> {
    items: Vec<Option<T>>,
    free: Vec<u32>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            items: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    pub fn insert(&mut self, v: T) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.items[i as usize] = Some(v);
                i
            }
            None => {
                self.items.push(Some(v));
                (self.items.len() - 1) as u32
            }
        }
    }

    pub fn remove(&mut self, i: u32) -> Option<T> {
        let v = self.items.get_mut(i as usize)?.take()?;
        self.free.push(i);
        Some(v)
    }

    pub fn get(&self, i: u32) -> Option<&T> {
        self.items.get(i as usize)?.as_ref()
    }

    pub fn get_mut(&mut self, i: u32) -> Option<&mut T> {
        self.items.get_mut(i as usize)?.as_mut()
    }

    pub fn len(&self) -> usize {
        self.items.len() - self.free.len()
    }

    /// Numbers and entries in use.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.as_ref().map(|v| (i as u32, v)))
    }
}

/// The bytes of one send, kept until its completion.
pub enum Payload {
    Output(Output),
    Bytes(BytesMut),
}

/// A send whose completion came: its socket and the bytes it was given.
pub struct Sent {
    pub sock: Sock,
    pub gen: u32,
    pub payload: Payload,
}

impl Payload {
    pub fn len(&self) -> usize {
        match self {
            Payload::Output(o) => o.len(),
            Payload::Bytes(b) => b.len(),
        }
    }
}

/// Most iovecs one `sendmsg` takes (Linux's `UIO_MAXIOV`).
pub const MAX_IOV: usize = 1024;

/// One send slot: the bytes in flight and the gather list and header the submission points
/// to (on the heap, so they do not move; kept for the next send in the slot).
struct Slot {
    sock: Sock,
    gen: u32,
    payload: Option<Payload>,
    iov: Vec<libc::iovec>,
    msg: Box<libc::msghdr>,
}

/// What to submit for a send: one buffer, or a gathering header.
pub enum SendOp {
    Buf(*const u8, u32),
    Msg(*const libc::msghdr),
}

/// Sends in flight, by number.
#[derive(Default)]
pub struct Sends {
    slab: Vec<Slot>,
    free: Vec<u32>,
    in_flight: usize,
}

impl Sends {
    /// Stores a send for `file` and returns its number and what to submit; the pointers
    /// stay valid until `take`.
    pub fn start(&mut self, sock: Sock, gen: u32, payload: Payload) -> (u32, SendOp) {
        let id = self.free.pop().unwrap_or_else(|| {
            self.slab.push(Slot {
                sock,
                gen: 0,
                payload: None,
                iov: Vec::new(),
                // SAFETY: an all-zero msghdr is a valid empty header.
                msg: Box::new(unsafe { std::mem::zeroed() }),
            });
            (self.slab.len() - 1) as u32
        });
        self.in_flight += 1;
        let s = &mut self.slab[id as usize];
        s.sock = sock;
        s.gen = gen;
        let p = s.payload.insert(payload);
        let single = match p {
            Payload::Bytes(b) => Some(&b[..]),
            Payload::Output(o) if o.chunks.is_empty() => Some(&o.tail[..]),
            Payload::Output(_) => None,
        };
        if let Some(b) = single {
            return (id, SendOp::Buf(b.as_ptr(), b.len() as u32));
        }
        s.iov.clear();
        if let Payload::Output(o) = p {
            for piece in o.slices().take(MAX_IOV) {
                s.iov.push(libc::iovec {
                    iov_base: piece.as_ptr() as *mut libc::c_void,
                    iov_len: piece.len(),
                });
            }
        }
        s.msg.msg_iov = s.iov.as_mut_ptr();
        s.msg.msg_iovlen = s.iov.len() as _;
        (id, SendOp::Msg(&*s.msg))
    }

    /// The send whose completion arrived.
    pub fn take(&mut self, id: u32) -> Option<Sent> {
        let s = self.slab.get_mut(id as usize)?;
        let payload = s.payload.take()?;
        self.free.push(id);
        self.in_flight -= 1;
        Some(Sent {
            sock: s.sock,
            gen: s.gen,
            payload,
        })
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips() {
        let d = data(Op::Recv, 0x12_3456, 0xdead_beef);
        assert_eq!(split(d), (Some(Op::Recv), 0x12_3456, 0xdead_beef));
        assert_eq!(split(0).0, None);
    }

    #[test]
    fn a_completion_of_an_older_generation_has_no_owner() {
        let mut f = Files::new(4);
        let g1 = f.install(2, Owner::Conn(7));
        assert_eq!(f.owner(2, g1), Owner::Conn(7));
        f.set_owner(2, Owner::Free);
        let g2 = f.install(2, Owner::Conn(9));
        assert_ne!(g1, g2);
        assert_eq!(f.owner(2, g1), Owner::Free);
        assert_eq!(f.owner(2, g2), Owner::Conn(9));
        assert_eq!(f.used(), 1);
    }

    #[test]
    fn a_slab_reuses_freed_numbers() {
        let mut s = Slab::default();
        let a = s.insert("a");
        let b = s.insert("b");
        assert_eq!(s.remove(a), Some("a"));
        assert_eq!(s.remove(a), None);
        assert_eq!(s.insert("c"), a);
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.len(), 2);
        assert_eq!(s.iter().count(), 2);
    }

    #[test]
    fn a_send_keeps_its_bytes_and_gather_list_until_taken() {
        let mut s = Sends::default();
        let out = Output {
            chunks: vec![bytes::Bytes::from_static(b"abc")],
            tail: BytesMut::from(&b"de"[..]),
        };
        let sock = Sock { table: 0, file: 1 };
        let (id, op) = s.start(sock, 1, Payload::Output(out));
        let SendOp::Msg(msg) = op else {
            panic!("two pieces are gathered")
        };
        // SAFETY: the header stays valid until `take`.
        let n = unsafe { (*msg).msg_iovlen };
        assert_eq!(n, 2);
        assert_eq!(s.in_flight(), 1);
        let f = s.take(id).expect("stored");
        assert_eq!(f.payload.len(), 5);
        assert_eq!(s.in_flight(), 0);
        assert!(s.take(id).is_none());
        // One contiguous buffer is sent as it is, from the reused slot.
        let (id2, op) = s.start(sock, 1, Payload::Bytes(BytesMut::from(&b"xyz"[..])));
        assert_eq!(id2, id);
        assert!(matches!(op, SendOp::Buf(_, 3)));
    }
}
