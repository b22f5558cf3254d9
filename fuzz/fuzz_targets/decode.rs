//! Fuzz target: the packet decoder, fed arbitrary bytes as a stream, for every protocol
//! version, under small packet-size limits.
//!
//! Asserts the decoder's contract, not just "no panic": it never consumes more than it was
//! given and leaves the rest of the stream untouched; `Ok(None)` consumes nothing; `Ok(Some)`
//! consumes exactly the frame its fixed header declares, within the limit, and the packet
//! re-encodes (3.x: to the identical bytes) and decodes back to an equal packet; the same
//! stream fed in two pieces yields the same packets and the same final result.
//!
//! Input layout: byte 0 picks the limit, byte 1 the split point, the rest is the stream.

#![no_main]

use bytes::BytesMut;
use codec::{decode, encode, encoded_len, DecodeError, Limits, Packet, ProtocolVersion};
use libfuzzer_sys::fuzz_target;

const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V3_1,
    ProtocolVersion::V3_1_1,
    ProtocolVersion::V5,
];

/// The whole-frame length a fixed header declares; `None` when incomplete or malformed.
fn declared_frame_len(buf: &[u8]) -> Option<usize> {
    let mut len = 0usize;
    for i in 0..4 {
        let b = *buf.get(1 + i)?;
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(i + 2 + len);
        }
    }
    None
}

/// How a stream ended: all consumed, stalled on a partial frame, or an error.
#[derive(Debug, PartialEq)]
enum End {
    Drained,
    Partial(usize),
    Error(DecodeError),
}

fn check_reencode(p: &Packet, frame: &[u8], v: ProtocolVersion, limits: &Limits) {
    // CONNECT carries its own protocol level, whatever the caller asked for.
    let ev = match p {
        Packet::Connect(c) => c.protocol,
        _ => v,
    };
    let mut re = BytesMut::new();
    if let Err(e) = encode(p, ev, &mut re) {
        panic!("decoded {p:?} does not re-encode: {e}");
    }
    assert_eq!(encoded_len(p, ev), Ok(re.len()), "encoded_len of {p:?}");
    if ev.is_v5() {
        assert!(re.len() <= frame.len(), "{p:?}: re-encoding grew");
    } else {
        assert_eq!(&re[..], frame, "{p:?}: 3.x re-encoding is not canonical");
    }
    let mut again = re.clone();
    assert_eq!(
        decode(&mut again, limits, ev),
        Ok(Some(p.clone())),
        "re-decode of {re:02x?}"
    );
    assert!(again.is_empty());
}

/// Decodes everything `buf` holds, checking each step; appends packets to `out`.
fn drain(buf: &mut BytesMut, v: ProtocolVersion, limits: &Limits, out: &mut Vec<Packet>) -> End {
    loop {
        if buf.is_empty() {
            return End::Drained;
        }
        let before = buf.to_vec();
        match decode(buf, limits, v) {
            Ok(Some(p)) => {
                let consumed = before.len() - buf.len();
                assert_eq!(&buf[..], &before[consumed..], "rest of stream changed");
                assert_eq!(
                    Some(consumed),
                    declared_frame_len(&before),
                    "consumed != declared"
                );
                assert!(
                    consumed as u64 <= u64::from(limits.max_packet_size),
                    "over the limit"
                );
                check_reencode(&p, &before[..consumed], v, limits);
                out.push(p);
            }
            Ok(None) => {
                assert_eq!(&buf[..], &before[..], "Ok(None) consumed bytes");
                return End::Partial(buf.len());
            }
            Err(e) => {
                let left = buf.len();
                assert_eq!(
                    &buf[..],
                    &before[before.len() - left..],
                    "Err left a non-suffix"
                );
                return End::Error(e);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [limit_sel, split_sel, stream @ ..] = data else {
        return;
    };
    let limits = match limit_sel {
        255 => Limits::default(),
        n => Limits {
            max_packet_size: 2 + u32::from(*n) * 2,
        },
    };
    for v in VERSIONS {
        let mut whole = Vec::new();
        let end_whole = drain(&mut BytesMut::from(stream), v, &limits, &mut whole);

        // The same stream in two pieces, decoding after each, as a socket read loop would.
        let split = usize::from(*split_sel).min(stream.len());
        let mut pieces = Vec::new();
        let mut buf = BytesMut::from(&stream[..split]);
        let mut end = drain(&mut buf, v, &limits, &mut pieces);
        if !matches!(end, End::Error(_)) {
            buf.extend_from_slice(&stream[split..]);
            end = drain(&mut buf, v, &limits, &mut pieces);
        }
        assert_eq!(pieces, whole, "split at {split} changed the packets");
        assert_eq!(
            end, end_whole,
            "split at {split} changed how the stream ended"
        );
    }
});
