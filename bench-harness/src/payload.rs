//! The harness's payload header and its clock: every PUBLISH it sends starts with 24 bytes
//! naming the publisher, its sequence number and the send time, so any subscriber (in any
//! worker process on the same host) can measure end-to-end latency, loss and order.
//!
//! ```text
//!  0       4                 8                              16                             24
//! +-------+-----------------+------------------------------+------------------------------+-- padding to -s
//! | "RMQB"| publisher u32 LE| sequence u64 LE              | send time, CLOCK_MONOTONIC ns|
//! +-------+-----------------+------------------------------+------------------------------+--
//! ```
//! CLOCK_MONOTONIC is shared by every process of one host, so latencies are valid when the
//! publishers and subscribers run on the same machine (all composed scenarios do).
//! The header is written in place into an already-encoded frame: nothing is allocated.

pub const MAGIC: [u8; 4] = *b"RMQB";
pub const HEADER_LEN: usize = 24;

/// Nanoseconds on CLOCK_MONOTONIC (a vDSO call, no syscall).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub publisher: u32,
    pub seq: u64,
    pub sent_ns: u64,
}

impl Header {
    /// Writes the header into the first `HEADER_LEN` bytes of `payload`.
    /// Returns false (writing nothing) when the payload is too short.
    pub fn write(&self, payload: &mut [u8]) -> bool {
        let Some(h) = payload.get_mut(..HEADER_LEN) else {
            return false;
        };
        h[0..4].copy_from_slice(&MAGIC);
        h[4..8].copy_from_slice(&self.publisher.to_le_bytes());
        h[8..16].copy_from_slice(&self.seq.to_le_bytes());
        h[16..24].copy_from_slice(&self.sent_ns.to_le_bytes());
        true
    }

    /// Reads a header; `None` for payloads that are not the harness's (other publishers,
    /// retained messages left by someone else).
    pub fn read(payload: &[u8]) -> Option<Header> {
        let h = payload.get(..HEADER_LEN)?;
        if h[0..4] != MAGIC {
            return None;
        }
        let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let u64_at = |i: usize| u64::from(u32_at(i)) | (u64::from(u32_at(i + 4)) << 32);
        Some(Header {
            publisher: u32_at(4),
            seq: u64_at(8),
            sent_ns: u64_at(16),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_is_fixed() {
        let mut p = [0xEEu8; 30];
        let h = Header {
            publisher: 0x0102_0304,
            seq: 0x1112_1314_1516_1718,
            sent_ns: 0x2122_2324_2526_2728,
        };
        assert!(h.write(&mut p));
        assert_eq!(&p[0..4], b"RMQB");
        assert_eq!(&p[4..8], &[0x04, 0x03, 0x02, 0x01]); // publisher, little-endian
        assert_eq!(&p[8..16], &[0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11]);
        assert_eq!(
            &p[16..24],
            &[0x28, 0x27, 0x26, 0x25, 0x24, 0x23, 0x22, 0x21]
        );
        assert_eq!(&p[24..], &[0xEE; 6]); // padding untouched
        assert_eq!(Header::read(&p), Some(h));
    }

    #[test]
    fn foreign_or_short_payloads_are_not_read() {
        assert_eq!(Header::read(b"hello world, this is not a header"), None);
        assert_eq!(Header::read(b"RMQB"), None);
        let mut short = [0u8; 10];
        let h = Header {
            publisher: 1,
            seq: 2,
            sent_ns: 3,
        };
        assert!(!h.write(&mut short));
        assert_eq!(short, [0u8; 10]);
    }

    #[test]
    fn clock_is_monotonic() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a && a > 0);
    }
}
