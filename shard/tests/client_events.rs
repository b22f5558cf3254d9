//! Client connect/disconnect events for `$SYS` (recorded only when configured).
mod common;
use codec::*;
use common::*;
use shard::ClientEvent;

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;

fn events(w: &mut World, shard: usize) -> Vec<ClientEvent> {
    let mut v = Vec::new();
    w.shards[shard].take_client_events(&mut v);
    v
}

#[test]
fn connect_and_each_kind_of_disconnect_are_recorded_when_enabled() {
    let cfg = shard::ShardConfig {
        client_events: true,
        ..Default::default()
    };
    let mut w = World::with_config(1, cfg);
    let a = w.connect("ev-a", V4, false);
    match events(&mut w, 0).as_slice() {
        [ClientEvent::Connected {
            client_id,
            protocol: 4,
            clean_start: false,
            session_present: false,
            ..
        }] => {
            assert_eq!(client_id.as_str(), "ev-a")
        }
        other => panic!("{other:?}"),
    }
    w.send(a, Packet::Disconnect(Disconnect::new(ReasonCode::Success)));
    assert_eq!(
        events(&mut w, 0),
        vec![ClientEvent::Disconnected {
            client_id: ByteStr::from("ev-a"),
            reason: "normal".into()
        }]
    );
    w.reconnect(a, connect_packet("ev-a", V4, false, 0, None));
    assert!(matches!(
        events(&mut w, 0).as_slice(),
        [ClientEvent::Connected {
            session_present: true,
            ..
        }]
    ));
    w.drop_conn(a);
    assert_eq!(
        events(&mut w, 0),
        vec![ClientEvent::Disconnected {
            client_id: ByteStr::from("ev-a"),
            reason: "closed".into()
        }]
    );
    let k = w.connect_with(connect_packet("ev-k", V4, true, 1, None));
    events(&mut w, 0);
    w.advance(1_600);
    assert!(w.is_closed(k));
    assert_eq!(
        events(&mut w, 0),
        vec![ClientEvent::Disconnected {
            client_id: ByteStr::from("ev-k"),
            reason: "KeepAliveTimeout".into()
        }]
    );
}

#[test]
fn nothing_is_recorded_by_default() {
    let mut w = World::new(1);
    let a = w.connect("quiet", V4, true);
    w.drop_conn(a);
    assert!(events(&mut w, 0).is_empty());
}
