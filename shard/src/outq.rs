//! A connection's pending output: encoded frames waiting for its socket, in order.
//!
//! Small frames (acknowledgements, a PUBLISH written with its own packet id) are copied into
//! one coalescing buffer, the `tail`. A large frame shared by many connections (a fan-out
//! PUBLISH encoded once) is queued by reference instead, so its payload is never copied per
//! subscriber in user space: the socket write gathers the chunks and the tail with one
//! `sendmsg`. Copying 1,000 subscribers' frames into 1,000 fresh buffers per message was
//! the fan-out path's largest cost (stores to cold memory, then re-growing the buffers).
//!
//! An idle connection holds an empty queue: no allocation, since everything is taken out
//! whole by `take` at each flush.

use bytes::{Buf, Bytes, BytesMut};

/// Frames at least this long are queued by reference; shorter ones are copied (an iovec
/// entry costs the kernel more than copying a few dozen bytes).
pub const SHARE_MIN: usize = 128;

/// A connection's queue of unwritten output; see the module docs. 40 bytes: the chunk list
/// is boxed because most connections never hold a shared frame, and every byte of `Conn`
/// counts a million times.
#[derive(Debug, Default)]
pub struct OutQueue {
    /// Output before `tail`, in order: shared frames and earlier tails, frozen.
    chunks: Option<Box<Chunks>>,
    /// Small frames being coalesced; always after every chunk.
    tail: BytesMut,
}

#[derive(Debug, Default)]
struct Chunks {
    list: Vec<Bytes>,
    /// Bytes in `list`.
    bytes: usize,
}

impl OutQueue {
    /// Bytes waiting in total.
    pub fn len(&self) -> usize {
        self.chunks.as_ref().map_or(0, |c| c.bytes) + self.tail.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The coalescing buffer, for encoding a frame straight into it.
    pub fn tail_mut(&mut self) -> &mut BytesMut {
        &mut self.tail
    }

    /// Appends a frame shared with other connections: by reference when it is large, else
    /// copied into the tail.
    pub fn push_shared(&mut self, frame: &Bytes) {
        if frame.len() < SHARE_MIN {
            self.tail.extend_from_slice(frame);
            return;
        }
        let chunks = self.chunks.get_or_insert_with(Box::default);
        if !self.tail.is_empty() {
            let t = std::mem::take(&mut self.tail).freeze();
            chunks.bytes += t.len();
            chunks.list.push(t);
        }
        chunks.bytes += frame.len();
        chunks.list.push(frame.clone());
    }

    /// Takes everything out for one write; the queue is left empty and unallocated.
    pub fn take(&mut self) -> Output {
        Output {
            chunks: self.chunks.take().map_or_else(Vec::new, |c| c.list),
            tail: std::mem::take(&mut self.tail),
        }
    }

    /// Puts back what a write left unsent, ahead of anything queued since.
    pub fn put_back(&mut self, rest: Output) {
        let Output {
            mut chunks,
            mut tail,
        } = rest;
        match self.chunks.take() {
            None => {
                tail.extend_from_slice(&self.tail);
                self.tail = tail;
            }
            Some(mut newer) => {
                if !tail.is_empty() {
                    chunks.push(tail.freeze());
                }
                chunks.append(&mut newer.list);
            }
        }
        if !chunks.is_empty() {
            let bytes = chunks.iter().map(Bytes::len).sum();
            self.chunks = Some(Box::new(Chunks {
                list: chunks,
                bytes,
            }));
        }
    }

    /// Everything, as one contiguous buffer (for the last bytes before a close).
    pub fn take_contiguous(&mut self) -> BytesMut {
        self.take().into_contiguous()
    }
}

/// Output taken from an [`OutQueue`] for one write: `chunks`, then `tail`.
#[derive(Debug, Default)]
pub struct Output {
    pub chunks: Vec<Bytes>,
    pub tail: BytesMut,
}

impl Output {
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum::<usize>() + self.tail.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tail.is_empty() && self.chunks.iter().all(Bytes::is_empty)
    }

    /// The pieces in write order.
    pub fn slices(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks
            .iter()
            .map(|c| &c[..])
            .chain(std::iter::once(&self.tail[..]))
            .filter(|s| !s.is_empty())
    }

    /// Drops the first `n` bytes (what the socket took).
    pub fn advance(&mut self, mut n: usize) {
        let mut done = 0;
        for c in &mut self.chunks {
            if n == 0 {
                break;
            }
            let k = n.min(c.len());
            c.advance(k);
            n -= k;
            if c.is_empty() {
                done += 1;
            }
        }
        self.chunks.drain(..done);
        self.tail.advance(n.min(self.tail.len()));
    }

    /// All of it in one buffer (a copy when there are chunks).
    pub fn into_contiguous(self) -> BytesMut {
        if self.chunks.is_empty() {
            return self.tail;
        }
        let mut all = BytesMut::with_capacity(self.len());
        for s in self.slices() {
            all.extend_from_slice(s);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big(b: u8) -> Bytes {
        Bytes::from(vec![b; SHARE_MIN])
    }

    fn collect(o: &Output) -> Vec<u8> {
        o.slices().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn small_frames_coalesce_and_large_ones_are_shared_in_order() {
        let mut q = OutQueue::default();
        q.tail_mut().extend_from_slice(b"ab");
        q.push_shared(&Bytes::from_static(b"cd"));
        let f = big(7);
        q.push_shared(&f);
        q.tail_mut().extend_from_slice(b"ef");
        assert_eq!(q.len(), 6 + SHARE_MIN);
        let out = q.take();
        assert!(q.is_empty());
        assert_eq!(
            out.chunks.len(),
            2,
            "the tail before the shared frame, then the frame"
        );
        // The shared frame is the same allocation, not a copy.
        assert_eq!(out.chunks[1].as_ptr(), f.as_ptr());
        let mut want = b"abcd".to_vec();
        want.extend(vec![7; SHARE_MIN]);
        want.extend(b"ef");
        assert_eq!(collect(&out), want);
        assert_eq!(out.into_contiguous().to_vec(), want);
    }

    #[test]
    fn advance_crosses_chunks_and_put_back_keeps_order() {
        let mut q = OutQueue::default();
        q.push_shared(&big(1));
        q.push_shared(&big(2));
        q.tail_mut().extend_from_slice(b"xyz");
        let mut out = q.take();
        out.advance(SHARE_MIN + 10);
        assert_eq!(out.len(), SHARE_MIN - 10 + 3);
        assert_eq!(out.chunks.len(), 1);
        // Written since the take: must follow the unsent rest.
        q.push_shared(&big(3));
        q.tail_mut().extend_from_slice(b"!");
        q.put_back(out);
        assert_eq!(q.len(), SHARE_MIN - 10 + 3 + SHARE_MIN + 1);
        let mut want = vec![2; SHARE_MIN - 10];
        want.extend(b"xyz");
        want.extend(vec![3; SHARE_MIN]);
        want.extend(b"!");
        assert_eq!(collect(&q.take()), want);
    }

    #[test]
    fn put_back_of_a_tail_only_rest_joins_the_new_tail() {
        let mut q = OutQueue::default();
        q.tail_mut().extend_from_slice(b"hello");
        let mut out = q.take();
        out.advance(2);
        q.tail_mut().extend_from_slice(b"!");
        q.put_back(out);
        assert_eq!(q.take().into_contiguous().to_vec(), b"llo!".to_vec());
    }

    #[test]
    fn an_idle_queue_is_small() {
        assert!(std::mem::size_of::<OutQueue>() <= 40);
    }

    #[test]
    fn advance_by_everything_leaves_nothing() {
        let mut q = OutQueue::default();
        q.push_shared(&big(1));
        q.tail_mut().extend_from_slice(b"ab");
        let mut out = q.take();
        out.advance(SHARE_MIN + 2);
        assert!(out.is_empty());
        assert_eq!(out.slices().count(), 0);
    }
}
