//! Property tests of the codec's contract: encode → decode round trips for arbitrary valid
//! packets of every version, chunked streams, and the decoder's behaviour on arbitrary and
//! mutated bytes (no panic, never consumes past its input, a decoded packet re-encodes).
//!
//! Strategies live in `proptest_strategies/`; topic properties in `proptest_topic.rs`.
//! Shrunk failures are kept as named `regression_*` tests at the end of this file, not in a
//! `proptest-regressions/` file, so they read as documentation. Case counts keep the whole
//! binary under 30 s in a debug build.

#[path = "proptest_strategies/mod.rs"]
mod strategies;

use bytes::BytesMut;
use codec::*;
use proptest::collection::vec;
use proptest::prelude::*;
use strategies::{packet, payload, publish, version, versioned_packet};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The version a decoded packet must be re-encoded with: CONNECT carries its own level.
fn wire_version(p: &Packet, v: ProtocolVersion) -> ProtocolVersion {
    match p {
        Packet::Connect(c) => c.protocol,
        _ => v,
    }
}

fn encode_to_vec(p: &Packet, v: ProtocolVersion) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(p, v, &mut out).unwrap_or_else(|e| panic!("encode {p:?} for {v:?}: {e}"));
    out.to_vec()
}

/// The whole-frame length a fixed header declares, or `None` when the header is incomplete
/// or its remaining length is not a valid variable byte integer.
fn declared_frame_len(buf: &[u8]) -> Option<usize> {
    let mut len = 0usize;
    for i in 0..4 {
        let b = *buf.get(1 + i)?;
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(1 + i + 1 + len);
        }
    }
    None
}

/// Encodes `p` for `v` and checks that it decodes back to itself, that `encoded_len` agrees,
/// and that a strict prefix of the frame (cut at `cut`) is `Ok(None)` with nothing consumed.
fn assert_round_trip(p: &Packet, v: ProtocolVersion, cut: prop::sample::Index) {
    let bytes = encode_to_vec(p, v);
    assert_eq!(encoded_len(p, v), Ok(bytes.len()), "encoded_len of {p:?}");
    assert_eq!(
        declared_frame_len(&bytes),
        Some(bytes.len()),
        "fixed header of {p:?}"
    );

    let mut buf = BytesMut::from(&bytes[..]);
    let got = decode(&mut buf, &Limits::default(), v);
    assert_eq!(got, Ok(Some(p.clone())), "bytes {bytes:02x?}");
    assert!(buf.is_empty(), "{} bytes left over", buf.len());

    let n = cut.index(bytes.len());
    let mut partial = BytesMut::from(&bytes[..n]);
    assert_eq!(
        decode(&mut partial, &Limits::default(), v),
        Ok(None),
        "prefix {n} of {bytes:02x?}"
    );
    assert_eq!(
        &partial[..],
        &bytes[..n],
        "a partial frame must not be consumed"
    );
}

/// Decodes `input` as a stream, checking the decoder's contract at every step, until the
/// stream ends, stalls (`Ok(None)`) or fails. Returns the packets decoded.
fn check_stream(input: &[u8], v: ProtocolVersion, limits: &Limits) -> Vec<Packet> {
    let mut buf = BytesMut::from(input);
    let mut packets = Vec::new();
    while !buf.is_empty() {
        let before = buf.to_vec();
        match decode(&mut buf, limits, v) {
            Ok(Some(p)) => {
                let consumed = before.len() - buf.len();
                assert_eq!(
                    &buf[..],
                    &before[consumed..],
                    "the rest of the stream must be untouched"
                );
                assert_eq!(
                    Some(consumed),
                    declared_frame_len(&before),
                    "consumed != declared frame"
                );
                assert!(
                    consumed as u64 <= u64::from(limits.max_packet_size),
                    "over the limit"
                );
                check_reencode(&p, &before[..consumed], v, limits);
                packets.push(p);
            }
            Ok(None) => {
                assert_eq!(&buf[..], &before[..], "Ok(None) must consume nothing");
                break;
            }
            Err(_) => {
                let left = buf.len();
                assert!(left <= before.len());
                assert_eq!(
                    &buf[..],
                    &before[before.len() - left..],
                    "Err must leave a suffix"
                );
                break;
            }
        }
    }
    packets
}

/// A decoded packet re-encodes, `encoded_len` agrees, and the re-encoding decodes to the same
/// packet. 3.x frames have one canonical encoding, so the bytes must be identical; v5 frames
/// may shrink (short-form acks, property order), never grow.
fn check_reencode(p: &Packet, frame: &[u8], v: ProtocolVersion, limits: &Limits) {
    let ev = wire_version(p, v);
    let mut re = BytesMut::new();
    encode(p, ev, &mut re).unwrap_or_else(|e| panic!("decoded {p:?} does not re-encode: {e}"));
    assert_eq!(encoded_len(p, ev), Ok(re.len()));
    if ev.is_v5() {
        assert!(
            re.len() <= frame.len(),
            "{p:?}: re-encoding {re:02x?} longer than {frame:02x?}"
        );
    } else {
        assert_eq!(&re[..], frame, "{p:?}: 3.x re-encoding is not canonical");
    }
    let mut again = re.clone();
    assert_eq!(
        decode(&mut again, limits, ev),
        Ok(Some(p.clone())),
        "re-encoding {re:02x?}"
    );
    assert!(again.is_empty());
}

/// Feeds `stream` to the decoder in the given chunk sizes (cycled), decoding as much as
/// possible after each chunk, as a connection's read loop does.
fn decode_chunked(stream: &[u8], chunks: &[usize], v: ProtocolVersion) -> Vec<Packet> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut pos = 0;
    for &c in chunks.iter().cycle() {
        if pos >= stream.len() {
            break;
        }
        let end = (pos + c).min(stream.len());
        buf.extend_from_slice(&stream[pos..end]);
        pos = end;
        while let Some(p) = decode(&mut buf, &Limits::default(), v).expect("valid stream") {
            out.push(p);
        }
    }
    assert!(buf.is_empty(), "{} bytes never decoded", buf.len());
    out
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn round_trip_v3_1(p in packet(ProtocolVersion::V3_1), cut in any::<prop::sample::Index>()) {
        assert_round_trip(&p, ProtocolVersion::V3_1, cut);
    }

    #[test]
    fn round_trip_v3_1_1(p in packet(ProtocolVersion::V3_1_1), cut in any::<prop::sample::Index>()) {
        assert_round_trip(&p, ProtocolVersion::V3_1_1, cut);
    }

    #[test]
    fn round_trip_v5(p in packet(ProtocolVersion::V5), cut in any::<prop::sample::Index>()) {
        assert_round_trip(&p, ProtocolVersion::V5, cut);
    }
}

proptest! {
    #![proptest_config(config(3000))]

    /// A stream of valid packets split at arbitrary points decodes to the same packets.
    #[test]
    fn chunked_stream_yields_the_same_packets(
        (v, packets) in version().prop_flat_map(|v| (Just(v), vec(packet(v), 1..6))),
        chunks in vec(1usize..40, 1..8),
    ) {
        let mut stream = Vec::new();
        for p in &packets {
            stream.extend(encode_to_vec(p, v));
        }
        prop_assert_eq!(decode_chunked(&stream, &chunks, v), packets);
    }

    /// Re-encoding a PUBLISH through `EncodedPublish` with another packet id and DUP flag
    /// gives exactly what encoding the changed packet gives.
    #[test]
    fn encoded_publish_reuse_matches_encode(
        (v, p) in version().prop_flat_map(|v| (Just(v), publish(v))),
        id in 1u16..,
        dup in any::<bool>(),
    ) {
        let enc = EncodedPublish::new(&p, v).expect("valid publish encodes");
        let mut expected = p.clone();
        if p.qos != QoS::AtMostOnce {
            expected.packet_id = PacketId::new(id);
            expected.dup = dup;
        }
        let mut out = BytesMut::new();
        enc.write_to(expected.packet_id, expected.dup, &mut out);
        prop_assert_eq!(&out[..], &encode_to_vec(&Packet::Publish(expected), v)[..]);
    }

    /// Arbitrary bytes never panic the decoder nor make it consume past its input.
    #[test]
    fn arbitrary_bytes_keep_the_contract(
        v in version(),
        bytes in vec(any::<u8>(), 0..96),
        max in 2u32..200,
    ) {
        check_stream(&bytes, v, &Limits { max_packet_size: max });
    }

    /// Valid frames with a few bytes overwritten, cut short or extended: the decoder sees
    /// mostly-plausible input and reaches deep into each packet's body.
    #[test]
    fn mutated_frames_keep_the_contract(
        (v, p) in versioned_packet(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
        tail in vec(any::<u8>(), 0..8),
    ) {
        let mut bytes = encode_to_vec(&p, v);
        for (i, b) in &edits {
            let i = i.index(bytes.len());
            bytes[i] = *b;
        }
        let keep = bytes.len() - cut.index(bytes.len()) / 4;
        bytes.truncate(keep);
        bytes.extend(tail);
        check_stream(&bytes, v, &Limits::default());
    }

    /// A declared size over the limit is refused from the fixed header alone, before the body
    /// arrives (the decoder must not wait for and buffer it).
    #[test]
    fn oversized_frame_is_refused_from_its_header(
        v in version(),
        first in prop_oneof![Just(0x30u8), Just(0x32), Just(0x82), Just(0x10)],
        remaining in 0u32..=268_435_455,
        max in 2u32..100_000,
        body in vec(any::<u8>(), 0..4),
    ) {
        let mut header = vec![first];
        let mut x = remaining;
        loop {
            let byte = (x & 0x7f) as u8;
            x >>= 7;
            header.push(if x > 0 { byte | 0x80 } else { byte });
            if x == 0 { break; }
        }
        let size = header.len() as u32 + remaining;
        prop_assume!(size > max);
        header.extend(&body);
        let mut buf = BytesMut::from(&header[..]);
        prop_assert_eq!(
            decode(&mut buf, &Limits { max_packet_size: max }, v),
            Err(DecodeError::PacketTooLarge { size, max })
        );
    }
}

proptest! {
    #![proptest_config(config(1000))]

    /// A PUBLISH topic with `+`, `#` or U+0000 anywhere is refused with the exact error,
    /// whatever else the topic holds (the decoder finds all three in one scan).
    #[test]
    fn publish_topic_with_forbidden_byte_is_refused(
        v in version(),
        name in strategies::topic_name_string(),
        at in any::<prop::sample::Index>(),
        bad in prop_oneof![Just('+'), Just('#'), Just('\0')],
    ) {
        let mut chars: Vec<char> = name.chars().collect();
        chars.insert(at.index(chars.len() + 1), bad);
        let topic: String = chars.into_iter().collect();
        let mut body = (topic.len() as u16).to_be_bytes().to_vec();
        body.extend(topic.as_bytes());
        if v.is_v5() {
            body.push(0); // empty property block
        }
        body.push(b'x');
        let mut frame = vec![0x30];
        let mut x = body.len();
        loop {
            let byte = (x & 0x7f) as u8;
            x >>= 7;
            frame.push(if x > 0 { byte | 0x80 } else { byte });
            if x == 0 { break; }
        }
        frame.extend(body);
        let expected = if bad == '\0' {
            DecodeError::NullCharacter
        } else {
            DecodeError::Topic(TopicError::WildcardInName)
        };
        let mut buf = BytesMut::from(&frame[..]);
        prop_assert_eq!(decode(&mut buf, &Limits::default(), v), Err(expected));
    }
}

#[test]
fn payload_strategy_reaches_two_byte_remaining_length() {
    // Guards the strategies: without a >127-byte payload the 2-byte varint path goes untested.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let long = (0..200)
        .filter_map(|_| payload().new_tree(&mut runner).ok())
        .any(|t| t.current().len() > 127);
    assert!(long);
}

// ---- regressions: shrunk failures, kept by name ---------------------------------------------

/// Found by `mutated_frames_keep_the_contract`: a SUBACK whose payload holds no return code
/// (`90 02 00 01`, packet id 1) decoded to `SubAck { codes: [] }`, which `encode` then refused
/// with `EmptyPayload(SubAck)`. A SUBACK answers a SUBSCRIBE, which has at least one filter
/// [MQTT-3.8.3-3], and carries one code per filter, so the decoder now refuses it.
#[test]
fn regression_suback_without_return_codes() {
    for v in [ProtocolVersion::V3_1, ProtocolVersion::V3_1_1] {
        let mut buf = BytesMut::from(&[0x90, 0x02, 0x00, 0x01][..]);
        assert_eq!(
            decode(&mut buf, &Limits::default(), v),
            Err(DecodeError::NoSubAckCodes),
            "{v:?}"
        );
    }
    // v5: packet id 1, empty property block, no reason codes.
    let mut buf = BytesMut::from(&[0x90, 0x03, 0x00, 0x01, 0x00][..]);
    let got = decode(&mut buf, &Limits::default(), ProtocolVersion::V5);
    assert_eq!(got, Err(DecodeError::NoSubAckCodes));
    // The same shape of v5 UNSUBACK (3.x UNSUBACK has no payload and stays valid).
    let mut buf = BytesMut::from(&[0xB0, 0x03, 0x00, 0x01, 0x00][..]);
    let got = decode(&mut buf, &Limits::default(), ProtocolVersion::V5);
    assert_eq!(got, Err(DecodeError::NoUnsubAckCodes));
}

/// Guards the decoder's fast path for an empty v5 PUBLISH property block: only the one-byte
/// 0x00 takes it; zero spelled long (0x80 0x00) still reaches the property reader and is
/// refused [MQTT-1.5.5-1].
#[test]
fn regression_publish_empty_properties_fast_path() {
    let v5 = ProtocolVersion::V5;
    let mut buf = BytesMut::from(&[0x30, 0x05, 0x00, 0x01, b'a', 0x00, b'x'][..]);
    let Ok(Some(Packet::Publish(p))) = decode(&mut buf, &Limits::default(), v5) else {
        panic!("valid v5 PUBLISH refused");
    };
    assert!(p.properties.is_empty());
    assert_eq!(&p.payload[..], b"x");
    let mut buf = BytesMut::from(&[0x30, 0x06, 0x00, 0x01, b'a', 0x80, 0x00, b'x'][..]);
    assert_eq!(
        decode(&mut buf, &Limits::default(), v5),
        Err(DecodeError::NonMinimalVarInt)
    );
}
