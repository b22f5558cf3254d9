//! MQTT 5 connection rules on the virtual broker: CONNACK properties, keepalive, request
//! information, enhanced authentication, session expiry, will delay, server DISCONNECTs.
mod common;
use bytes::Bytes;
use codec::*;
use common::*;
use shard::{AuthExchange, AuthMethod, AuthStep, ClientInfo, ShardConfig};

fn will5(topic: &str, payload: &str, delay: Option<u32>) -> LastWill {
    LastWill {
        topic: ByteStr::from(topic),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: WillProperties {
            will_delay_interval: delay,
            ..Default::default()
        },
    }
}

fn with_will(id: &str, expiry: u32, will: LastWill) -> Connect {
    let mut c = connect5(
        id,
        true,
        ConnectProperties {
            session_expiry_interval: Some(expiry),
            ..Default::default()
        },
    );
    c.will = Some(will);
    c
}

#[test]
fn connack_advertises_every_capability_truthfully() {
    let cfg = ShardConfig {
        max_packet_size: 4096,
        receive_maximum: 10,
        topic_alias_maximum: 16,
        ..Default::default()
    };
    let mut w = World::with_config(2, cfg);
    let c = w.connect_with(connect5("caps", true, ConnectProperties::default()));
    let got = w.recv(c);
    let ack = connack(&got[0]);
    assert_eq!(ack.code, ReasonCode::Success);
    let p = &ack.properties;
    assert_eq!(p.receive_maximum, Some(10));
    assert_eq!(p.maximum_packet_size, Some(4096));
    assert_eq!(p.topic_alias_maximum, Some(16));
    assert_eq!(p.maximum_qos, None, "absent = QoS 2 supported");
    assert_eq!(p.retain_available, Some(true));
    assert_eq!(p.wildcard_subscription_available, Some(true));
    assert_eq!(p.subscription_identifiers_available, Some(true));
    assert_eq!(p.shared_subscription_available, Some(true));
    assert_eq!(
        p.server_keep_alive, None,
        "keepalive 0 accepted with no maximum set"
    );
    assert_eq!(p.session_expiry_interval, None, "requested value granted");
    assert_eq!(p.assigned_client_identifier, None);
    assert_eq!(p.response_information, None, "not requested");

    // Topic aliases off: no Topic Alias Maximum at all (absent = 0).
    let cfg = ShardConfig {
        topic_alias_maximum: 0,
        max_session_expiry: 60,
        ..Default::default()
    };
    let mut w = World::with_config(1, cfg);
    let c = w.connect_with(connect5(
        "caps2",
        true,
        ConnectProperties {
            session_expiry_interval: Some(3600),
            ..Default::default()
        },
    ));
    let got = w.recv(c);
    let p = &connack(&got[0]).properties;
    assert_eq!(p.topic_alias_maximum, None);
    assert_eq!(p.session_expiry_interval, Some(60), "capped expiry is told");
}

#[test]
fn server_keep_alive_caps_the_client_and_is_enforced() {
    let cfg = ShardConfig {
        max_keepalive: 10,
        ..Default::default()
    };
    let mut w = World::with_config(1, cfg);
    let mut conn = connect5("ka", true, ConnectProperties::default());
    conn.keep_alive = 100;
    let c = w.connect_with(conn);
    assert_eq!(
        connack(&w.recv(c)[0]).properties.server_keep_alive,
        Some(10)
    );
    w.advance(14_900);
    assert!(!w.is_closed(c));
    w.advance(200);
    assert!(w.is_closed(c), "closed at 1.5 x the server keepalive");
    assert_eq!(
        disconnect_of(&w.recv(c)).map(|d| d.code),
        Some(ReasonCode::KeepAliveTimeout)
    );
    // Keepalive 0 is capped too when a maximum is configured.
    let z = w.connect_with(connect5("ka0", true, ConnectProperties::default()));
    assert_eq!(
        connack(&w.recv(z)[0]).properties.server_keep_alive,
        Some(10)
    );
}

#[test]
fn response_information_is_given_only_when_requested() {
    let mut w = World::new(2);
    let c = w.connect_with(connect5(
        "req+#1",
        true,
        ConnectProperties {
            request_response_information: Some(true),
            ..Default::default()
        },
    ));
    let got = w.recv(c);
    let info = connack(&got[0]).properties.response_information.clone();
    assert_eq!(info.as_deref(), Some("ringmq/response/req__1"));
    let n = w.connect_with(connect5(
        "req2",
        true,
        ConnectProperties {
            request_response_information: Some(false),
            ..Default::default()
        },
    ));
    assert_eq!(connack(&w.recv(n)[0]).properties.response_information, None);
}

/// A toy challenge-response method: the server sends "challenge", the client must answer
/// "secret"; an initial "secret" in CONNECT succeeds at once.
struct Toy;
struct ToyExchange {
    challenged: bool,
}
impl AuthMethod for Toy {
    fn name(&self) -> &str {
        "TOY"
    }
    fn begin(&self, _client: &ClientInfo<'_>) -> Box<dyn AuthExchange> {
        Box::new(ToyExchange { challenged: false })
    }
}
impl AuthExchange for ToyExchange {
    fn step(&mut self, data: Option<&Bytes>) -> AuthStep {
        match (self.challenged, data.map(|d| &d[..])) {
            (_, Some(b"secret")) => AuthStep::Success(Some(Bytes::from_static(b"welcome"))),
            (false, _) => {
                self.challenged = true;
                AuthStep::Continue(Bytes::from_static(b"challenge"))
            }
            (true, _) => AuthStep::Fail(ReasonCode::NotAuthorized),
        }
    }
}

fn auth(code: ReasonCode, method: &str, data: &'static [u8]) -> Packet {
    Packet::Auth(Auth {
        code,
        properties: AuthProperties {
            authentication_method: Some(ByteStr::from(method)),
            authentication_data: Some(Bytes::from_static(data)),
            ..Default::default()
        },
    })
}

fn auth_connect(id: &str, method: &str) -> Connect {
    connect5(
        id,
        true,
        ConnectProperties {
            authentication_method: Some(ByteStr::from(method)),
            ..Default::default()
        },
    )
}

#[test]
fn without_a_method_connect_gets_0x8c_and_auth_is_a_protocol_error() {
    let mut w = World::new(1);
    let c = w.connect_with(auth_connect("a1", "SCRAM-SHA-256"));
    let got = w.recv(c);
    assert_eq!(connack(&got[0]).code, ReasonCode::BadAuthenticationMethod);
    assert!(w.is_closed(c));

    for code in [
        ReasonCode::ReAuthenticate,
        ReasonCode::ContinueAuthentication,
    ] {
        let c = w.connect_with(connect5("a2", true, ConnectProperties::default()));
        w.recv(c);
        w.send(c, auth(code, "SCRAM-SHA-256", b"x"));
        assert_eq!(
            disconnect_of(&w.recv(c)).map(|d| d.code),
            Some(ReasonCode::ProtocolError)
        );
        assert!(w.is_closed(c));
    }
}

#[test]
fn enhanced_authentication_exchange_and_reauthentication() {
    let mut w = World::new(2);
    for s in &mut w.shards {
        s.add_auth_method(Box::new(Toy));
    }
    // CONNECT -> AUTH 0x18 challenge -> AUTH 0x18 answer -> CONNACK with method and data.
    let c = w.connect_with(auth_connect("au", "TOY"));
    let got = w.recv(c);
    assert_eq!(got.len(), 1);
    let Packet::Auth(a) = &got[0] else {
        panic!("expected AUTH, got {got:?}")
    };
    assert_eq!(a.code, ReasonCode::ContinueAuthentication);
    assert_eq!(a.properties.authentication_method.as_deref(), Some("TOY"));
    assert_eq!(
        a.properties.authentication_data.as_deref(),
        Some(&b"challenge"[..])
    );
    w.send(
        c,
        auth(ReasonCode::ContinueAuthentication, "TOY", b"secret"),
    );
    let got = w.recv(c);
    let ack = connack(&got[0]);
    assert_eq!(ack.code, ReasonCode::Success);
    assert_eq!(ack.properties.authentication_method.as_deref(), Some("TOY"));
    assert_eq!(
        ack.properties.authentication_data.as_deref(),
        Some(&b"welcome"[..])
    );
    // The session works.
    w.subscribe(c, 1, "t", QoS::AtMostOnce);
    assert_eq!(suback_codes(&w.recv(c)), vec![ReasonCode::Success]);

    // Re-authentication: AUTH 0x19 -> AUTH 0x18 -> AUTH 0x18 -> AUTH 0x00.
    w.send(c, auth(ReasonCode::ReAuthenticate, "TOY", b"hello"));
    let got = w.recv(c);
    assert!(matches!(&got[..], [Packet::Auth(a)] if a.code == ReasonCode::ContinueAuthentication));
    w.send(
        c,
        auth(ReasonCode::ContinueAuthentication, "TOY", b"secret"),
    );
    let got = w.recv(c);
    assert!(matches!(&got[..], [Packet::Auth(a)] if a.code == ReasonCode::Success));
    assert!(!w.is_closed(c));

    // Another method name during re-authentication is a protocol error.
    w.send(c, auth(ReasonCode::ReAuthenticate, "OTHER", b"x"));
    assert_eq!(
        disconnect_of(&w.recv(c)).map(|d| d.code),
        Some(ReasonCode::ProtocolError)
    );

    // A wrong answer: CONNACK 0x87 and close; no session was created.
    let before = w.sessions();
    let b = w.connect_with(auth_connect("au2", "TOY"));
    w.recv(b);
    w.send(b, auth(ReasonCode::ContinueAuthentication, "TOY", b"wrong"));
    assert_eq!(connack(&w.recv(b)[0]).code, ReasonCode::NotAuthorized);
    assert!(w.is_closed(b));
    assert_eq!(w.sessions(), before);

    // A packet other than AUTH during the exchange: CONNACK 0x82.
    let d = w.connect_with(auth_connect("au3", "TOY"));
    w.recv(d);
    w.send(d, Packet::PingReq);
    assert_eq!(connack(&w.recv(d)[0]).code, ReasonCode::ProtocolError);
    // An unknown method is still 0x8C.
    let e = w.connect_with(auth_connect("au4", "NOPE"));
    assert_eq!(
        connack(&w.recv(e)[0]).code,
        ReasonCode::BadAuthenticationMethod
    );
}

#[test]
fn session_expiry_reaps_offline_sessions_on_time() {
    let mut w = World::new(2);
    let props = |e| ConnectProperties {
        session_expiry_interval: Some(e),
        ..Default::default()
    };
    let s = w.connect_with(connect5("exp", false, props(5)));
    w.subscribe(s, 1, "e/#", QoS::AtLeastOnce);
    let keep = w.connect_with(connect5("forever", false, props(u32::MAX)));
    let zero = w.connect_with(connect5("zero", false, props(0)));
    assert_eq!(w.sessions(), 3);
    w.drop_conn(s);
    w.drop_conn(keep);
    w.drop_conn(zero);
    assert_eq!(w.sessions(), 2, "expiry 0 ends at disconnect");
    w.advance(4_900);
    assert_eq!(w.sessions(), 2);
    w.advance(200);
    assert_eq!(
        w.sessions(),
        1,
        "expired after 5 s; 0xFFFFFFFF never expires"
    );
    w.advance(1_000_000);
    assert_eq!(w.sessions(), 1);
    // Its subscription went with it: no subscriber left.
    let p = w.connect_with(connect5("p", true, ConnectProperties::default()));
    w.publish(p, "e/x", "m", QoS::AtLeastOnce, false, 1);
    let acks = w.recv(p);
    assert_eq!(
        ack_of(&acks, 1).map(|a| a.code),
        Some(ReasonCode::NoMatchingSubscribers)
    );
    // Reconnecting within the expiry resumes the session.
    let r = w.connect_with(connect5("r", false, props(10)));
    w.drop_conn(r);
    w.advance(9_000);
    w.reconnect(r, connect5("r", false, props(10)));
    assert!(connack(&w.recv(r)[0]).session_present);
}

#[test]
fn session_expiry_changed_at_disconnect() {
    let mut w = World::new(1);
    let props = |e| ConnectProperties {
        session_expiry_interval: Some(e),
        ..Default::default()
    };
    let mut d = Disconnect::new(ReasonCode::Success);
    d.properties.session_expiry_interval = Some(0);
    let a = w.connect_with(connect5("chg", false, props(100)));
    w.send(a, Packet::Disconnect(d.clone()));
    assert_eq!(w.sessions(), 0, "lowered to 0 at DISCONNECT: ended now");

    let b = w.connect_with(connect5("chg2", false, props(100)));
    d.properties.session_expiry_interval = Some(2);
    w.send(b, Packet::Disconnect(d.clone()));
    assert_eq!(w.sessions(), 1);
    w.advance(2_100);
    assert_eq!(w.sessions(), 0, "new interval of 2 s applied");

    // 0 at CONNECT, non-zero at DISCONNECT: protocol error [MQTT-3.14.2-2].
    let c = w.connect_with(connect5("chg3", true, props(0)));
    w.recv(c);
    d.properties.session_expiry_interval = Some(30);
    w.send(c, Packet::Disconnect(d));
    let got = w.recv(c);
    let dis = disconnect_of(&got).expect("server DISCONNECT");
    assert_eq!(dis.code, ReasonCode::ProtocolError);
    assert!(dis.properties.reason_string.is_some());
    assert_eq!(w.sessions(), 0);
}

#[test]
fn will_delay_is_the_earlier_of_delay_and_session_end_and_cancelled_by_reconnect() {
    let mut w = World::new(2);
    let s = w.connect_with(connect5(
        &id_on("s", 0, 2),
        true,
        ConnectProperties::default(),
    ));
    w.subscribe(s, 1, "will/#", QoS::AtLeastOnce);
    w.recv(s);

    // Delay 5 s, session 100 s: sent after 5 s.
    let a = w.connect_with(with_will(
        &id_on("a", 1, 2),
        100,
        will5("will/a", "a", Some(5)),
    ));
    w.drop_conn(a);
    w.advance(4_900);
    assert!(w.publishes(s).is_empty(), "not before the delay");
    w.advance(200);
    let got = w.publishes(s);
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].payload[..], b"a");

    // Delay 50 s, session 3 s: sent when the session ends.
    let b = w.connect_with(with_will(
        &id_on("b", 1, 2),
        3,
        will5("will/b", "b", Some(50)),
    ));
    w.drop_conn(b);
    w.advance(2_900);
    assert!(w.publishes(s).is_empty());
    w.advance(200);
    assert_eq!(w.publishes(s).len(), 1, "sent at session end");

    // Reconnect within the delay: never sent.
    let cid = id_on("c", 1, 2);
    let c = w.connect_with(with_will(&cid, 100, will5("will/c", "c", Some(5))));
    w.drop_conn(c);
    w.advance(3_000);
    let mut again = connect5(&cid, false, ConnectProperties::default());
    again.properties.session_expiry_interval = Some(100);
    w.reconnect(c, again);
    w.advance(10_000);
    assert!(w.publishes(s).is_empty(), "reconnected in time");
}

#[test]
fn disconnect_with_will_message_and_error_codes_publish_the_will_normal_does_not() {
    let mut w = World::new(1);
    let s = w.connect_with(connect5("s", true, ConnectProperties::default()));
    w.subscribe(s, 1, "w/#", QoS::AtMostOnce);
    w.recv(s);
    let cases = [
        (ReasonCode::DisconnectWithWillMessage, 1),
        (ReasonCode::UnspecifiedError, 1),
        (ReasonCode::Success, 0),
    ];
    for (i, (code, n)) in cases.into_iter().enumerate() {
        let d = w.connect_with(with_will(&format!("d{i}"), 0, will5("w/x", "gone", None)));
        w.send(d, Packet::Disconnect(Disconnect::new(code)));
        assert!(w.is_closed(d));
        assert_eq!(w.publishes(s).len(), n, "{code:?}");
    }
}

#[test]
fn shutdown_sends_server_shutting_down_to_v5_and_closes_everyone() {
    let mut w = World::new(2);
    let a = w.connect_with(connect5(
        &id_on("a", 0, 2),
        true,
        ConnectProperties::default(),
    ));
    let b = w.connect_with(connect5(
        &id_on("b", 1, 2),
        true,
        ConnectProperties::default(),
    ));
    let old = w.connect(&id_on("v3", 1, 2), ProtocolVersion::V3_1_1, true);
    for c in [a, b, old] {
        w.recv(c);
    }
    w.shutdown();
    for c in [a, b] {
        assert!(w.is_closed(c));
        assert_eq!(
            disconnect_of(&w.recv(c)).map(|d| d.code),
            Some(ReasonCode::ServerShuttingDown)
        );
    }
    assert!(w.is_closed(old));
    assert!(w.recv(old).is_empty(), "v3 has no server DISCONNECT");
    assert_eq!(w.stats().connections, 0);
}

#[test]
fn packet_too_large_from_the_client_is_disconnected_with_0x95() {
    let cfg = ShardConfig {
        max_packet_size: 64,
        ..Default::default()
    };
    let mut w = World::with_config(1, cfg);
    let c = w.connect_with(connect5("big", true, ConnectProperties::default()));
    w.recv(c);
    w.publish(c, "t", &"x".repeat(100), QoS::AtMostOnce, false, 0);
    assert!(w.is_closed(c));
    assert_eq!(
        disconnect_of(&w.recv(c)).map(|d| d.code),
        Some(ReasonCode::PacketTooLarge)
    );
}
