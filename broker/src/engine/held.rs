//! What a paused connection sent: back-pressure stops the handling of its PUBLISHes, not of
//! its acknowledgements. A client that publishes into a full queue may itself be a
//! subscriber whose PUBACKs are what drains a queue (request/response, or two clients
//! feeding each other): not reading those would deadlock both. So while a connection is
//! paused its socket is still read, up to `HELD_MAX` bytes of deferred packets: PUBACK,
//! PUBREC, PUBREL, PUBCOMP and PINGREQ are handled at once (they may overtake a PUBLISH:
//! they belong to other flows, and a SUBSCRIBE or UNSUBSCRIBE only changes later
//! deliveries), everything else waits here in order, whole frames, and is handled first when
//! the connection resumes. Nothing overtakes a DISCONNECT or AUTH. Past `HELD_MAX` the socket
//! is not read at all and TCP pushes back; two clients flooding each other that far can
//! still wait on each other, which `limits.stuck_timeout` ends.

use bytes::BytesMut;
use codec::{DecodeError, PacketType, ProtocolVersion};

/// Most bytes of deferred packets a paused connection holds before its socket is left
/// unread (plus at most one packet that was being received).
pub const HELD_MAX: usize = 64 * 1024;

/// Deferred packets of one paused connection; boxed in `IoSlot` only while there are any.
#[derive(Debug, Default)]
pub struct Held {
    /// Whole frames, oldest first.
    pub bytes: BytesMut,
    /// A DISCONNECT or AUTH waits: later packets may not overtake it.
    barrier: bool,
}

/// What to do with the next frame of a paused connection.
pub enum Next {
    /// Not a whole frame yet.
    Incomplete,
    /// An acknowledgement or PINGREQ that may be handled now.
    Handle,
    /// Deferred: moved into the held bytes.
    Deferred,
}

impl Held {
    /// Looks at the frame at the front of `buf`: handle it now, or move it here.
    pub fn sort(
        held: &mut Option<Box<Held>>,
        buf: &mut BytesMut,
        version: ProtocolVersion,
    ) -> Result<Next, DecodeError> {
        let Some(h) = codec::peek_header(buf, version)? else {
            return Ok(Next::Incomplete);
        };
        if buf.len() < h.frame_len() {
            return Ok(Next::Incomplete);
        }
        let ack = matches!(
            h.packet_type,
            PacketType::PubAck
                | PacketType::PubRec
                | PacketType::PubRel
                | PacketType::PubComp
                | PacketType::PingReq
        );
        let barrier = held.as_ref().is_some_and(|x| x.barrier);
        if ack && !barrier {
            return Ok(Next::Handle);
        }
        let held = held.get_or_insert_with(Box::default);
        held.barrier |= matches!(h.packet_type, PacketType::Disconnect | PacketType::Auth);
        held.bytes.extend_from_slice(&buf.split_to(h.frame_len()));
        Ok(Next::Deferred)
    }

    pub fn len(held: &Option<Box<Held>>) -> usize {
        held.as_ref().map_or(0, |h| h.bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(first: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![first, body.len() as u8];
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn acks_overtake_publishes_and_subscribes_but_not_a_disconnect() {
        let v = ProtocolVersion::V3_1_1;
        let publish = frame(0x32, b"\x00\x01t\x00\x07x");
        let puback = frame(0x40, b"\x00\x09");
        let subscribe = frame(0x82, b"\x00\x02\x00\x01t\x01");
        let disconnect = frame(0xe0, b"");
        let mut buf = BytesMut::new();
        for f in [&publish, &puback, &subscribe, &puback, &disconnect, &puback] {
            buf.extend_from_slice(f);
        }
        buf.extend_from_slice(&puback[..1]);
        let mut held = None;
        let mut next = |buf: &mut BytesMut| match Held::sort(&mut held, buf, v).unwrap() {
            Next::Handle => {
                let _ = buf.split_to(puback.len());
                "handle"
            }
            Next::Deferred => "deferred",
            Next::Incomplete => "incomplete",
        };
        let got: Vec<_> = (0..7).map(|_| next(&mut buf)).collect();
        let want = [
            "deferred", "handle", "deferred", "handle", "deferred", "deferred",
        ];
        assert_eq!(
            got[..6],
            want,
            "the PUBACK after DISCONNECT waits behind it"
        );
        assert_eq!(got[6], "incomplete");
        let held = held.unwrap();
        let mut want = publish.clone();
        want.extend_from_slice(&subscribe);
        want.extend_from_slice(&disconnect);
        want.extend_from_slice(&puback);
        assert_eq!(&held.bytes[..], &want[..], "in order, whole frames");
    }
}
