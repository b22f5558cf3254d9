//! Primitive wire fields (§1.5): variable byte integers, two- and four-byte integers,
//! UTF-8 strings and binary data, read from and written to buffers.
//!
//! Reading works on a `Bytes` cursor over one frozen packet body: strings and binary data
//! come out as slices of it (a reference count, never a copy). Every read checks the length
//! first and reports `UnexpectedEnd`; nothing here may panic on peer input.
//! Writing goes through [`Sink`], implemented by `BytesMut` and by [`Counter`], so one piece
//! of code both measures a packet and writes it and the two can never disagree.

use crate::error::{DecodeError, EncodeError};
use crate::types::{ByteStr, PacketId};
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The largest value a variable byte integer holds (§1.5.5).
pub const MAX_VARINT: u32 = 268_435_455;

/// Parses a variable byte integer at the start of `buf` (§1.5.5).
///
/// `Ok(None)` when `buf` ends before the integer does; `Err(VarIntTooLong)` when the fourth
/// byte still has its continuation bit; `Err(NonMinimalVarInt)` for a needless trailing
/// zero group such as `80 00` [MQTT-1.5.5-1]. On success returns the value and its length.
pub fn parse_varint(buf: &[u8]) -> Result<Option<(u32, usize)>, DecodeError> {
    let mut value: u32 = 0;
    for (i, &b) in buf.iter().take(4).enumerate() {
        value |= u32::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && b == 0 {
                return Err(DecodeError::NonMinimalVarInt);
            }
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= 4 {
        Err(DecodeError::VarIntTooLong)
    } else {
        Ok(None)
    }
}

/// Number of bytes the variable byte integer encoding of `v` takes.
pub const fn varint_len(v: u32) -> usize {
    if v < 128 {
        1
    } else if v < 16_384 {
        2
    } else if v < 2_097_152 {
        3
    } else {
        4
    }
}

// ---- reading -----------------------------------------------------------------------------

pub(crate) fn read_u8(b: &mut Bytes) -> Result<u8, DecodeError> {
    if b.is_empty() {
        return Err(DecodeError::UnexpectedEnd);
    }
    Ok(b.get_u8())
}

pub(crate) fn read_u16(b: &mut Bytes) -> Result<u16, DecodeError> {
    if b.len() < 2 {
        return Err(DecodeError::UnexpectedEnd);
    }
    Ok(b.get_u16())
}

pub(crate) fn read_u32(b: &mut Bytes) -> Result<u32, DecodeError> {
    if b.len() < 4 {
        return Err(DecodeError::UnexpectedEnd);
    }
    Ok(b.get_u32())
}

/// A variable byte integer inside a packet body (property lengths, identifiers, values).
pub(crate) fn read_varint(b: &mut Bytes) -> Result<u32, DecodeError> {
    match parse_varint(b)? {
        Some((v, n)) => {
            b.advance(n);
            Ok(v)
        }
        None => Err(DecodeError::UnexpectedEnd),
    }
}

/// `n` bytes as a zero-copy slice of the body.
pub(crate) fn read_slice(b: &mut Bytes, n: usize) -> Result<Bytes, DecodeError> {
    if b.len() < n {
        return Err(DecodeError::UnexpectedEnd);
    }
    Ok(b.split_to(n))
}

/// Binary data: a two-byte length then that many bytes (§1.5.6).
pub(crate) fn read_binary(b: &mut Bytes) -> Result<Bytes, DecodeError> {
    let n = read_u16(b)?;
    read_slice(b, usize::from(n))
}

/// A UTF-8 string (§1.5.4): valid UTF-8 [MQTT-1.5.4-1] without U+0000 [MQTT-1.5.4-2].
/// Surrogates (U+D800..U+DFFF) are not valid UTF-8, so `from_utf8` already refuses them.
pub(crate) fn read_str(b: &mut Bytes) -> Result<ByteStr, DecodeError> {
    let raw = read_binary(b)?;
    ByteStr::try_from_bytes(raw).map_err(|raw| match std::str::from_utf8(&raw) {
        Err(_) => DecodeError::InvalidUtf8,
        Ok(_) => DecodeError::NullCharacter,
    })
}

/// A packet identifier, which is never 0 where the packet has one [MQTT-2.2.1-3].
pub(crate) fn read_packet_id(b: &mut Bytes) -> Result<PacketId, DecodeError> {
    PacketId::new(read_u16(b)?).ok_or(DecodeError::PacketIdZero)
}

/// Fails unless every byte of the body has been read.
pub(crate) fn expect_end(b: &Bytes) -> Result<(), DecodeError> {
    if b.is_empty() {
        Ok(())
    } else {
        Err(DecodeError::TrailingBytes)
    }
}

// ---- writing -----------------------------------------------------------------------------

/// Where encoded bytes go: a real buffer, or a [`Counter`] that only adds up lengths.
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);
    fn put_u8(&mut self, v: u8);
    fn put_u16(&mut self, v: u16);
    fn put_u32(&mut self, v: u32);
}

impl Sink for BytesMut {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    #[inline]
    fn put_u8(&mut self, v: u8) {
        BufMut::put_u8(self, v);
    }
    #[inline]
    fn put_u16(&mut self, v: u16) {
        BufMut::put_u16(self, v);
    }
    #[inline]
    fn put_u32(&mut self, v: u32) {
        BufMut::put_u32(self, v);
    }
}

/// A sink that writes nothing and counts the bytes it would have written.
#[derive(Default)]
pub(crate) struct Counter(pub usize);

impl Sink for Counter {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
    #[inline]
    fn put_u8(&mut self, _: u8) {
        self.0 += 1;
    }
    #[inline]
    fn put_u16(&mut self, _: u16) {
        self.0 += 2;
    }
    #[inline]
    fn put_u32(&mut self, _: u32) {
        self.0 += 4;
    }
}

/// Writes a variable byte integer (§1.5.5) in its shortest form.
pub(crate) fn put_varint<S: Sink>(s: &mut S, mut v: u32) -> Result<(), EncodeError> {
    if v > MAX_VARINT {
        return Err(EncodeError::VarIntTooLarge(u64::from(v)));
    }
    loop {
        let mut byte = (v & 0x7F) as u8;
        v >>= 7;
        if v > 0 {
            byte |= 0x80;
        }
        s.put_u8(byte);
        if v == 0 {
            return Ok(());
        }
    }
}

/// The variable byte integer encoding of `v` (at most [`MAX_VARINT`]) packed into a `u32`,
/// first byte lowest (so `to_le_bytes` gives wire order), and its length in bytes.
///
/// Plain shifts and masks, no loop and no memory: a hot encoder can place the bytes
/// straight into a register-built header. Larger values are the caller's bug (their top
/// bits are dropped); every caller has already checked `v` with [`length_varint`].
#[inline]
pub(crate) const fn varint_word(v: u32) -> (u32, usize) {
    debug_assert!(v <= MAX_VARINT);
    if v < 128 {
        return (v, 1);
    }
    // 7 value bits per byte, and the continuation bit on every byte but the last.
    let spread = (v & 0x7F) | (v & 0x3F80) << 1 | (v & 0x1F_C000) << 2 | (v & 0xFE0_0000) << 3;
    if v < 16_384 {
        (spread | 0x80, 2)
    } else if v < 2_097_152 {
        (spread | 0x8080, 3)
    } else {
        (spread | 0x80_8080, 4)
    }
}

/// A length that must fit a variable byte integer, as one.
pub(crate) fn length_varint(len: usize) -> Result<u32, EncodeError> {
    match u32::try_from(len) {
        Ok(v) if v <= MAX_VARINT => Ok(v),
        _ => Err(EncodeError::PacketTooLarge(len as u64)),
    }
}

/// Binary data: two-byte length then the bytes (§1.5.6).
pub(crate) fn put_binary<S: Sink>(s: &mut S, data: &[u8]) -> Result<(), EncodeError> {
    let len = u16::try_from(data.len()).map_err(|_| EncodeError::BinaryTooLong(data.len()))?;
    s.put_u16(len);
    s.put(data);
    Ok(())
}

/// A UTF-8 string: two-byte length then the bytes (§1.5.4).
pub(crate) fn put_str<S: Sink>(s: &mut S, v: &str) -> Result<(), EncodeError> {
    let len = u16::try_from(v.len()).map_err(|_| EncodeError::StringTooLong(v.len()))?;
    s.put_u16(len);
    s.put(v.as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MQTT 5.0 §1.5.5 table 1-1 (3.1.1 table 2.4): the edges of each encoded size.
    const SPEC_TABLE: &[(u32, &[u8])] = &[
        (0, &[0x00]),
        (127, &[0x7F]),
        (128, &[0x80, 0x01]),
        (16_383, &[0xFF, 0x7F]),
        (16_384, &[0x80, 0x80, 0x01]),
        (2_097_151, &[0xFF, 0xFF, 0x7F]),
        (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
        (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
    ];

    #[test]
    fn varint_spec_table_decodes() {
        for &(value, bytes) in SPEC_TABLE {
            assert_eq!(
                parse_varint(bytes),
                Ok(Some((value, bytes.len()))),
                "{value}"
            );
        }
    }

    #[test]
    fn varint_spec_table_encodes() {
        for &(value, bytes) in SPEC_TABLE {
            let mut out = BytesMut::new();
            put_varint(&mut out, value).unwrap();
            assert_eq!(&out[..], bytes, "{value}");
            assert_eq!(varint_len(value), bytes.len(), "{value}");
            let mut c = Counter::default();
            put_varint(&mut c, value).unwrap();
            assert_eq!(c.0, bytes.len());
            let (word, len) = varint_word(value);
            assert_eq!(&word.to_le_bytes()[..len], bytes, "{value}");
            assert_eq!(word.to_le_bytes()[len..], [0, 0, 0, 0][len..], "{value}");
        }
    }

    #[test]
    fn varint_partial_too_long_and_non_minimal() {
        assert_eq!(parse_varint(&[]), Ok(None));
        assert_eq!(parse_varint(&[0x80]), Ok(None));
        assert_eq!(parse_varint(&[0xFF, 0xFF, 0xFF]), Ok(None));
        assert_eq!(
            parse_varint(&[0xFF, 0xFF, 0xFF, 0x80]),
            Err(DecodeError::VarIntTooLong)
        );
        assert_eq!(
            parse_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
            Err(DecodeError::VarIntTooLong)
        );
        // 0 spelled in two bytes, 127 spelled in three.
        assert_eq!(
            parse_varint(&[0x80, 0x00]),
            Err(DecodeError::NonMinimalVarInt)
        );
        assert_eq!(
            parse_varint(&[0xFF, 0x80, 0x00]),
            Err(DecodeError::NonMinimalVarInt)
        );
        // Trailing bytes after the integer are not its business.
        assert_eq!(parse_varint(&[0x05, 0xFF]), Ok(Some((5, 1))));
        assert_eq!(
            put_varint(&mut BytesMut::new(), MAX_VARINT + 1),
            Err(EncodeError::VarIntTooLarge(268_435_456))
        );
    }

    #[test]
    fn strings_are_checked() {
        let mut b = Bytes::from_static(&[0x00, 0x03, b'a', b'/', b'b', 0xAA]);
        assert_eq!(read_str(&mut b).unwrap().as_str(), "a/b");
        assert_eq!(&b[..], &[0xAA]);
        // U+0000 inside a string [MQTT-1.5.4-2].
        let mut b = Bytes::from_static(&[0x00, 0x02, b'a', 0x00]);
        assert_eq!(read_str(&mut b), Err(DecodeError::NullCharacter));
        // An encoded surrogate U+D800 (ED A0 80) is not UTF-8 [MQTT-1.5.4-1].
        let mut b = Bytes::from_static(&[0x00, 0x03, 0xED, 0xA0, 0x80]);
        assert_eq!(read_str(&mut b), Err(DecodeError::InvalidUtf8));
        let mut b = Bytes::from_static(&[0x00, 0x01, 0xC3]);
        assert_eq!(read_str(&mut b), Err(DecodeError::InvalidUtf8));
        // Length says 4, only 2 bytes follow.
        let mut b = Bytes::from_static(&[0x00, 0x04, b'a', b'b']);
        assert_eq!(read_str(&mut b), Err(DecodeError::UnexpectedEnd));
        let mut b = Bytes::from_static(&[0x00]);
        assert_eq!(read_binary(&mut b), Err(DecodeError::UnexpectedEnd));
    }

    #[test]
    fn strings_are_zero_copy() {
        let body = Bytes::from_static(b"\x00\x02hi\x00\x01z");
        let mut cursor = body.clone();
        let s = read_str(&mut cursor).unwrap();
        let d = read_binary(&mut cursor).unwrap();
        assert_eq!(s.as_bytes().as_ptr(), body[2..].as_ptr());
        assert_eq!(d.as_ptr(), body[6..].as_ptr());
    }

    #[test]
    fn integers_and_ids() {
        let mut b = Bytes::from_static(&[0x12, 0x34, 0x00, 0x00, 0x01, 0x00, 0x00]);
        assert_eq!(read_u16(&mut b), Ok(0x1234));
        assert_eq!(read_u32(&mut b), Ok(0x100));
        assert_eq!(read_u32(&mut b), Err(DecodeError::UnexpectedEnd));
        let mut b = Bytes::from_static(&[0x00, 0x00]);
        assert_eq!(read_packet_id(&mut b), Err(DecodeError::PacketIdZero));
        assert_eq!(
            expect_end(&Bytes::from_static(b"x")),
            Err(DecodeError::TrailingBytes)
        );
    }

    #[test]
    fn writes_reject_oversized_fields() {
        let big = vec![b'a'; 65_536];
        let mut out = BytesMut::new();
        assert_eq!(
            put_binary(&mut out, &big),
            Err(EncodeError::BinaryTooLong(65_536))
        );
        let s = String::from_utf8(big).unwrap();
        assert_eq!(
            put_str(&mut out, &s),
            Err(EncodeError::StringTooLong(65_536))
        );
        assert_eq!(put_str(&mut out, &s[1..]), Ok(()));
        assert_eq!(out.len(), 65_537);
    }
}
