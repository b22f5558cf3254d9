//! `ringmq-bench null-broker`: a stand-in broker that does no routing at all, for measuring
//! the harness itself (docs/harness.md, "Capacity").
//!
//! It answers CONNECT, SUBSCRIBE, PINGREQ and the QoS 1/2 flows, and throws every PUBLISH
//! away: a sink for publishers. A subscription to a filter starting with `flood` turns the
//! connection into a source: a thread writes QoS 0 PUBLISH frames carrying the harness's
//! timing header (one stream per connection, sequence 0, 1, 2, ...) as fast as the socket
//! takes them; that connection then gets no other reply (no PINGRESP: run it with a keepalive
//! longer than the run). It is a measuring tool, not a broker: no sessions, no fan-out, no limits
//! beyond the codec's, one thread (two for a source) per connection.

use crate::payload::{now_ns, Header, HEADER_LEN};
use anyhow::{Context, Result};
use bytes::{Bytes, BytesMut};
use codec::{
    ByteStr, ConnAck, EncodedPublish, Limits, Packet, ProtocolVersion, PubAck, Publish, QoS,
    ReasonCode, SubAck,
};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

/// Frames per write of a source: one 64 KiB-ish syscall instead of one per message.
const SOURCE_BATCH: usize = 256;

pub fn run(listen: &str, payload: usize) -> Result<()> {
    let l = TcpListener::bind(listen).with_context(|| format!("bind {listen}"))?;
    println!("null-broker listening on {}", l.local_addr()?);
    let mut id = 0u32;
    for s in l.incoming() {
        let Ok(s) = s else { continue };
        let _ = s.set_nodelay(true);
        let my = id;
        id = id.wrapping_add(1);
        std::thread::spawn(move || {
            let _ = serve(s, my, payload.max(HEADER_LEN));
        });
    }
    Ok(())
}

fn serve(mut s: TcpStream, id: u32, payload: usize) -> Result<()> {
    let limits = Limits::default();
    let mut version = ProtocolVersion::V3_1_1;
    let mut rbuf = BytesMut::with_capacity(64 * 1024);
    let mut out = BytesMut::with_capacity(4096);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut flooding = false;
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        rbuf.extend_from_slice(&chunk[..n]);
        while let Some(p) = codec::decode(&mut rbuf, &limits, version)? {
            let reply = match p {
                Packet::Connect(c) => {
                    version = c.protocol;
                    Some(Packet::ConnAck(ConnAck {
                        session_present: false,
                        code: ReasonCode::Success,
                        properties: Default::default(),
                    }))
                }
                Packet::Publish(Publish {
                    qos: QoS::AtLeastOnce,
                    packet_id: Some(id),
                    ..
                }) => Some(Packet::PubAck(PubAck::new(id))),
                Packet::Publish(Publish {
                    qos: QoS::ExactlyOnce,
                    packet_id: Some(id),
                    ..
                }) => Some(Packet::PubRec(PubAck::new(id))),
                Packet::PubRel(a) => Some(Packet::PubComp(PubAck::new(a.packet_id))),
                Packet::PingReq => Some(Packet::PingResp),
                Packet::Subscribe(sub) => {
                    let flood = sub.filters.iter().any(|f| f.filter.starts_with("flood"));
                    let codes = vec![ReasonCode::Success; sub.filters.len()];
                    codec::encode(
                        &Packet::SubAck(SubAck {
                            packet_id: sub.packet_id,
                            codes,
                            properties: Default::default(),
                        }),
                        version,
                        &mut out,
                    )?;
                    if flood && !flooding {
                        // The SUBACK goes out before the first flood frame; from then on the
                        // source thread owns the write side (two writers would interleave
                        // partial frames) and this thread only reads.
                        s.write_all(&out)?;
                        out.clear();
                        flooding = true;
                        let w = s.try_clone()?;
                        std::thread::spawn(move || source(w, id, version, payload));
                    }
                    None
                }
                Packet::Disconnect(_) => return Ok(()),
                _ => None,
            };
            if let Some(r) = reply {
                codec::encode(&r, version, &mut out)?;
            }
        }
        if !out.is_empty() && !flooding {
            s.write_all(&out)?;
        }
        out.clear();
    }
}

/// Writes QoS 0 frames with the timing header until the peer goes away.
fn source(mut s: TcpStream, id: u32, version: ProtocolVersion, payload: usize) {
    let p = Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: ByteStr::from("flood"),
        packet_id: None,
        properties: Default::default(),
        payload: Bytes::from(vec![0u8; payload]),
    };
    let Ok(frame) = EncodedPublish::new(&p, version) else {
        return;
    };
    let mut buf = BytesMut::with_capacity(frame.len() * SOURCE_BATCH);
    let mut seq = 0u64;
    loop {
        buf.clear();
        let now = now_ns();
        for _ in 0..SOURCE_BATCH {
            frame.write_to(None, false, &mut buf);
            let end = buf.len();
            Header {
                publisher: id,
                seq,
                sent_ns: now,
            }
            .write(&mut buf[end - payload..end - payload + HEADER_LEN]);
            seq += 1;
        }
        if s.write_all(&buf).is_err() {
            return;
        }
    }
}
