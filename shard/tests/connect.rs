//! CONNECT rules on the virtual broker: CONNACK codes, generated ids, takeover, second CONNECT.
mod common;
use codec::*;
use common::*;

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;

#[test]
fn accepted_connect_gets_connack_success_without_session() {
    let mut w = World::new(2);
    let c = w.connect("dev-1", V4, true);
    let got = w.recv(c);
    assert_eq!(got.len(), 1);
    let ack = connack(&got[0]);
    assert_eq!(ack.code, ReasonCode::Success);
    assert!(!ack.session_present);
}

#[test]
fn empty_client_id_without_clean_session_is_refused_with_identifier_rejected() {
    let mut w = World::new(1);
    let c = w.connect("", V4, false);
    let got = w.recv(c);
    assert_eq!(connack(&got[0]).code, ReasonCode::ClientIdentifierNotValid);
    assert!(w.is_closed(c));
    // On the wire a v3 client sees return code 2.
    assert_eq!(
        ReasonCode::ClientIdentifierNotValid.to_connect_return_code(),
        ConnectReturnCode::IdentifierRejected
    );
}

#[test]
fn mqtt_3_1_client_id_over_23_characters_gets_identifier_rejected() {
    let mut w = World::new(1);
    let long = "a".repeat(24);
    let c = w.connect(&long, ProtocolVersion::V3_1, true);
    assert_eq!(
        connack(&w.recv(c)[0]).code,
        ReasonCode::ClientIdentifierNotValid
    );
    assert!(w.is_closed(c));
    // 23 characters are accepted, and 24 from a 3.1.1 client.
    let c = w.connect(&long[..23], ProtocolVersion::V3_1, true);
    assert_eq!(connack(&w.recv(c)[0]).code, ReasonCode::Success);
    let c = w.connect(&long, V4, true);
    assert_eq!(connack(&w.recv(c)[0]).code, ReasonCode::Success);
}

#[test]
fn empty_client_id_with_clean_session_is_accepted() {
    let mut w = World::new(1);
    let c = w.connect("", V4, true);
    assert_eq!(connack(&w.recv(c)[0]).code, ReasonCode::Success);
    assert!(!w.is_closed(c));
}

#[test]
fn v5_empty_client_id_gets_an_assigned_identifier_homed_on_the_same_shard() {
    let mut w = World::new(4);
    let c = w.connect("", ProtocolVersion::V5, true);
    let got = w.recv(c);
    let ack = connack(&got[0]);
    let id = ack
        .properties
        .assigned_client_identifier
        .clone()
        .expect("assigned id");
    assert!(!id.is_empty());
    assert_eq!(shard::home_shard(&id, 4).index(), w.clients[c].shard);
}

#[test]
fn second_connect_closes_the_connection() {
    let mut w = World::new(1);
    let c = w.connect("dev-2", V4, true);
    w.recv(c);
    w.send(
        c,
        Packet::Connect(Box::new(connect_packet("dev-2", V4, true, 0, None))),
    );
    assert!(w.is_closed(c));
}

#[test]
fn first_packet_other_than_connect_closes() {
    let mut w = World::new(1);
    let conn = w.shards[0].open_conn(w.now);
    w.shards[0].handle_packet(w.now, conn, Packet::PingReq);
    let mut ev = Vec::new();
    w.shards[0].take_events(&mut ev);
    assert!(matches!(ev.as_slice(), [shard::IoEvent::Close(c, _)] if *c == conn));
}

#[test]
fn takeover_closes_the_old_connection_and_keeps_the_session() {
    let mut w = World::new(2);
    let a = w.connect("same", V4, false);
    w.subscribe(a, 1, "t/#", QoS::AtLeastOnce);
    w.recv(a);
    let b = w.connect("same", V4, false);
    assert!(w.is_closed(a), "old connection closed on takeover");
    assert!(connack(&w.recv(b)[0]).session_present, "session resumed");
    let p = w.connect("pub", V4, true);
    w.publish(p, "t/x", "hello", QoS::AtLeastOnce, false, 1);
    let got = w.publishes(b);
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].payload[..], b"hello");
}

#[test]
fn v5_takeover_sends_disconnect_session_taken_over() {
    let mut w = World::new(1);
    let a = w.connect("same5", ProtocolVersion::V5, true);
    w.recv(a);
    let _b = w.connect("same5", ProtocolVersion::V5, true);
    let got = w.recv(a);
    assert!(
        matches!(got.last(), Some(Packet::Disconnect(d)) if d.code == ReasonCode::SessionTakenOver),
        "{got:?}"
    );
}

#[test]
fn clean_session_discards_previous_state() {
    let mut w = World::new(1);
    let a = w.connect("c1", V4, false);
    w.subscribe(a, 1, "x", QoS::AtLeastOnce);
    w.drop_conn(a);
    w.reconnect(a, connect_packet("c1", V4, true, 0, None));
    assert!(!connack(&w.recv(a)[0]).session_present);
    let p = w.connect("p", V4, true);
    w.publish(p, "x", "m", QoS::AtLeastOnce, false, 1);
    assert!(w.publishes(a).is_empty(), "subscription was discarded");
}

#[test]
fn a_connection_that_never_completes_connect_is_closed_after_the_connect_timeout() {
    let cfg = shard::ShardConfig {
        connect_timeout_ms: 2_000,
        ..Default::default()
    };
    let mut w = World::with_config(1, cfg);
    let idle = w.shards[0].open_conn(w.now);
    let ok = w.connect("speaks", V4, true);
    w.advance(1_900);
    let mut ev = Vec::new();
    w.shards[0].take_events(&mut ev);
    assert!(!ev
        .iter()
        .any(|e| matches!(e, shard::IoEvent::Close(c, _) if *c == idle)));
    w.advance(200);
    assert!(!w.is_closed(ok), "a connected client is not affected");
    // The idle socket was closed by the timer (the World only tracks its own clients, so
    // look at the shard's accounting: one connection left).
    assert_eq!(w.shards[0].stats().connections, 1);
}
