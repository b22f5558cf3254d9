//! Helpers shared by the wire tests.

use bytes::{Bytes, BytesMut};
use codec::*;

pub const V3: ProtocolVersion = ProtocolVersion::V3_1;
pub const V4: ProtocolVersion = ProtocolVersion::V3_1_1;
pub const V5: ProtocolVersion = ProtocolVersion::V5;

pub fn pid(n: u16) -> PacketId {
    PacketId::new(n).expect("test packet ids are non-zero")
}

pub fn s(v: &'static str) -> ByteStr {
    ByteStr::from_static(v)
}

pub fn b(v: &'static [u8]) -> Bytes {
    Bytes::from_static(v)
}

/// Decodes `bytes` as one whole packet: it must consume everything.
pub fn dec(bytes: &[u8], v: ProtocolVersion) -> Packet {
    let mut buf = BytesMut::from(bytes);
    let p = decode(&mut buf, &Limits::default(), v)
        .expect("decodes")
        .expect("complete");
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    p
}

/// The error decoding `bytes` gives.
pub fn dec_err(bytes: &[u8], v: ProtocolVersion) -> DecodeError {
    let mut buf = BytesMut::from(bytes);
    match decode(&mut buf, &Limits::default(), v) {
        Err(e) => e,
        Ok(p) => panic!("expected an error, got {p:?}"),
    }
}

/// Encodes `p`, checking that `encoded_len` agrees.
pub fn enc(p: &Packet, v: ProtocolVersion) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(p, v, &mut out).expect("encodes");
    assert_eq!(
        encoded_len(p, v),
        Ok(out.len()),
        "encoded_len disagrees for {p:?}"
    );
    out.to_vec()
}

/// `bytes` decodes to `p` and `p` encodes to `bytes`.
#[track_caller]
pub fn both(bytes: &[u8], p: Packet, v: ProtocolVersion) {
    assert_eq!(dec(bytes, v), p, "decode");
    assert_eq!(enc(&p, v), bytes, "encode");
}

pub fn publish(qos: QoS, id: Option<u16>, topic: &'static str, payload: &'static [u8]) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: s(topic),
        packet_id: id.map(pid),
        properties: PublishProperties::default(),
        payload: b(payload),
    }
}

pub fn connect(protocol: ProtocolVersion, client_id: &'static str) -> Connect {
    Connect {
        protocol,
        clean_start: true,
        keep_alive: 60,
        client_id: s(client_id),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }
}
