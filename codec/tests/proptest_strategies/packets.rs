//! proptest strategies for each packet type and its MQTT 5 properties, per protocol version.
//!
//! Part of the shared strategies (see `mod.rs`). 3.x packets keep every v5-only field at its
//! default; v5 packets get arbitrary properties and only the reason codes the spec lists for
//! their type. Nothing here may generate a packet the spec forbids.

use super::*;
use bytes::Bytes;
use proptest::collection::vec;
use proptest::option::of;

/// Reason codes the spec lists for each packet type (MQTT 5.0 §3.x.2.1 tables).
pub mod codes {
    pub const CONNACK: &[u8] = &[
        0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95,
        0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
    ];
    pub const PUBACK: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
    pub const PUBREL: &[u8] = &[0x00, 0x92];
    pub const SUBACK: &[u8] = &[
        0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
    ];
    pub const UNSUBACK: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
    pub const DISCONNECT: &[u8] = &[
        0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94,
        0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
    ];
    pub const AUTH: &[u8] = &[0x00, 0x18, 0x19];
    /// The CONNACK reasons a 3.x return code maps to (`ConnAck::reason_from_v3`).
    pub const CONNACK_V3: &[u8] = &[0x00, 0x84, 0x85, 0x88, 0x86, 0x87];
    /// 3.x SUBACK return codes: granted QoS 0/1/2 or 0x80 Failure.
    pub const SUBACK_V3: &[u8] = &[0x00, 0x01, 0x02, 0x80];
}

fn reason(table: &'static [u8]) -> impl Strategy<Value = ReasonCode> {
    proptest::sample::select(table)
        .prop_map(|c| ReasonCode::from_u8(c).unwrap_or(ReasonCode::UnspecifiedError))
}

/// Authentication method and data; data only with a method (§3.1.2.11.10).
fn auth_pair() -> impl Strategy<Value = (Option<ByteStr>, Option<Bytes>)> {
    of((text(), of(binary()))).prop_map(|a| match a {
        Some((m, d)) => (Some(m), d),
        None => (None, None),
    })
}

fn connect_properties() -> impl Strategy<Value = ConnectProperties> {
    (
        of(any::<u32>()),
        of(1..=u16::MAX),
        of(1..=u32::MAX),
        of(any::<u16>()),
        of(any::<bool>()),
        of(any::<bool>()),
        auth_pair(),
        user_properties(),
    )
        .prop_map(
            |(sei, rm, mps, tam, rri, rpi, (am, ad), up)| ConnectProperties {
                session_expiry_interval: sei,
                receive_maximum: rm,
                maximum_packet_size: mps,
                topic_alias_maximum: tam,
                request_response_information: rri,
                request_problem_information: rpi,
                authentication_method: am,
                authentication_data: ad,
                user_properties: up,
            },
        )
}

fn will_properties() -> impl Strategy<Value = WillProperties> {
    (
        of(any::<u32>()),
        of(any::<bool>()),
        of(any::<u32>()),
        of(text()),
        of(topic_name()),
        of(binary()),
        user_properties(),
    )
        .prop_map(|(wdi, pfi, mei, ct, rt, cd, up)| WillProperties {
            will_delay_interval: wdi,
            payload_format_indicator: pfi,
            message_expiry_interval: mei,
            content_type: ct,
            response_topic: rt,
            correlation_data: cd,
            user_properties: up,
        })
}

fn will(v: ProtocolVersion) -> impl Strategy<Value = LastWill> {
    (
        topic_name(),
        payload(),
        qos(),
        any::<bool>(),
        will_properties(),
    )
        .prop_map(move |(topic, payload, qos, retain, props)| LastWill {
            topic,
            payload,
            qos,
            retain,
            properties: if v.is_v5() {
                props
            } else {
                WillProperties::default()
            },
        })
}

/// 3.1 needs a 1..=23 character client id; 3.1.1 allows any, but an empty one only with
/// Clean Session (fixed up in `connect`); v5 allows any.
fn client_id(v: ProtocolVersion) -> BoxedStrategy<ByteStr> {
    if v == ProtocolVersion::V3_1 {
        "[a-zA-Z0-9]{1,23}".prop_map(ByteStr::from).boxed()
    } else {
        text().boxed()
    }
}

pub(super) fn connect(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        any::<bool>(),
        any::<u16>(),
        client_id(v),
        of(will(v)),
        of(text()),
        of(binary()),
        connect_properties(),
    )
        .prop_map(
            move |(clean_start, keep_alive, client_id, will, username, password, props)| {
                let v5 = v.is_v5();
                // [MQTT-3.1.2-22]: 3.x forbids a password without a user name.
                let password = if !v5 && username.is_none() {
                    None
                } else {
                    password
                };
                // [MQTT-3.1.3-8]: 3.1.1 allows an empty client id only with Clean Session.
                let clean_start =
                    clean_start || (v == ProtocolVersion::V3_1_1 && client_id.is_empty());
                Packet::Connect(Box::new(Connect {
                    protocol: v,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties: if v5 {
                        props
                    } else {
                        ConnectProperties::default()
                    },
                }))
            },
        )
}

fn connack_properties() -> impl Strategy<Value = ConnAckProperties> {
    let a = (
        of(any::<u32>()),
        of(1..=u16::MAX),
        // Maximum QoS may only be 0 or 1 (§3.2.2.3.4).
        of(prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce)]),
        of(any::<bool>()),
        of(1..=u32::MAX),
        of(text()),
        of(any::<u16>()),
        of(text()),
    );
    let b = (
        of(any::<bool>()),
        of(any::<bool>()),
        of(any::<bool>()),
        of(any::<u16>()),
        of(text()),
        of(text()),
        auth_pair(),
        user_properties(),
    );
    (a, b).prop_map(
        |((sei, rm, mq, ra, mps, aci, tam, rs), (wsa, sia, ssa, ska, ri, sr, (am, ad), up))| {
            ConnAckProperties {
                session_expiry_interval: sei,
                receive_maximum: rm,
                maximum_qos: mq,
                retain_available: ra,
                maximum_packet_size: mps,
                assigned_client_identifier: aci,
                topic_alias_maximum: tam,
                reason_string: rs,
                wildcard_subscription_available: wsa,
                subscription_identifiers_available: sia,
                shared_subscription_available: ssa,
                server_keep_alive: ska,
                response_information: ri,
                server_reference: sr,
                authentication_method: am,
                authentication_data: ad,
                user_properties: up,
            }
        },
    )
}

pub(super) fn connack(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let table = if v.is_v5() {
        codes::CONNACK
    } else {
        codes::CONNACK_V3
    };
    (any::<bool>(), reason(table), connack_properties()).prop_map(move |(sp, code, props)| {
        Packet::ConnAck(ConnAck {
            // [MQTT-3.2.2-6]: a refused connection never has a session.
            session_present: sp && code == ReasonCode::Success,
            code,
            properties: if v.is_v5() {
                props
            } else {
                ConnAckProperties::default()
            },
        })
    })
}

fn publish_properties() -> impl Strategy<Value = PublishProperties> {
    (
        of(any::<bool>()),
        of(any::<u32>()),
        of(1..=u16::MAX),
        of(topic_name()),
        of(binary()),
        user_properties(),
        prop_oneof![2 => Just(Vec::new()), 1 => vec(subscription_id(), 1..=3)],
        of(text()),
    )
        .prop_map(|(pfi, mei, ta, rt, cd, up, sids, ct)| PublishProperties {
            payload_format_indicator: pfi,
            message_expiry_interval: mei,
            topic_alias: ta,
            response_topic: rt,
            correlation_data: cd,
            user_properties: up,
            subscription_identifiers: sids,
            content_type: ct,
        })
}

pub fn publish(v: ProtocolVersion) -> impl Strategy<Value = Publish> {
    let props = prop_oneof![1 => Just(PublishProperties::default()), 2 => publish_properties()];
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        topic_name(),
        packet_id(),
        props,
        payload(),
        any::<bool>(),
    )
        .prop_map(
            move |(qos, dup, retain, topic, pid, props, payload, alias_only)| {
                let props = if v.is_v5() {
                    props
                } else {
                    PublishProperties::default()
                };
                // A v5 PUBLISH may leave the topic empty when a Topic Alias stands in (§3.3.2.3.4).
                let topic = if alias_only && props.topic_alias.is_some() {
                    ByteStr::default()
                } else {
                    topic
                };
                let with_id = qos != QoS::AtMostOnce;
                Publish {
                    dup: dup && with_id,
                    qos,
                    retain,
                    topic,
                    packet_id: with_id.then_some(pid),
                    properties: props,
                    payload,
                }
            },
        )
}

fn ack_properties(v: ProtocolVersion) -> impl Strategy<Value = AckProperties> {
    (of(text()), user_properties()).prop_map(move |(rs, up)| {
        if v.is_v5() {
            AckProperties {
                reason_string: rs,
                user_properties: up,
            }
        } else {
            AckProperties::default()
        }
    })
}

/// PUBACK/PUBREC (`table = PUBACK`) or PUBREL/PUBCOMP (`table = PUBREL`) body.
pub(super) fn pub_ack(v: ProtocolVersion, table: &'static [u8]) -> impl Strategy<Value = PubAck> {
    let table = if v.is_v5() { table } else { &[0x00][..] };
    // Half the v5 acks are the bare Success form, which has a 2-byte short encoding.
    let props = prop_oneof![Just(AckProperties::default()), ack_properties(v)];
    (packet_id(), reason(table), props).prop_map(|(packet_id, code, properties)| PubAck {
        packet_id,
        code,
        properties,
    })
}

pub(super) fn subscribe(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let filter = (
        subscription_filter(),
        qos(),
        any::<bool>(),
        any::<bool>(),
        0u8..=2,
    )
        .prop_map(
            move |((filter, shared), qos, nl, rap, rh)| SubscribeFilter {
                filter,
                qos,
                // [MQTT-3.8.3-4]: No Local on a shared subscription is a protocol error.
                no_local: v.is_v5() && nl && !shared,
                retain_as_published: v.is_v5() && rap,
                retain_handling: match rh {
                    _ if !v.is_v5() => RetainHandling::SendAtSubscribe,
                    0 => RetainHandling::SendAtSubscribe,
                    1 => RetainHandling::SendIfNew,
                    _ => RetainHandling::DoNotSend,
                },
            },
        );
    (
        packet_id(),
        vec(filter, 1..=4),
        of(subscription_id()),
        user_properties(),
    )
        .prop_map(move |(packet_id, filters, sid, up)| {
            let properties = if v.is_v5() {
                SubscribeProperties {
                    subscription_identifier: sid,
                    user_properties: up,
                }
            } else {
                SubscribeProperties::default()
            };
            Packet::Subscribe(Subscribe {
                packet_id,
                filters,
                properties,
            })
        })
}

pub(super) fn suback(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let table = if v.is_v5() {
        codes::SUBACK
    } else {
        codes::SUBACK_V3
    };
    (packet_id(), vec(reason(table), 1..=4), ack_properties(v)).prop_map(
        |(packet_id, codes, properties)| {
            Packet::SubAck(SubAck {
                packet_id,
                codes,
                properties,
            })
        },
    )
}

pub(super) fn unsubscribe(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        packet_id(),
        vec(subscription_filter().prop_map(|(f, _)| f), 1..=4),
        user_properties(),
    )
        .prop_map(move |(packet_id, filters, up)| {
            let user_properties = if v.is_v5() { up } else { Vec::new() };
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                filters,
                user_properties,
            })
        })
}

pub(super) fn unsuback(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    // 3.x UNSUBACK has no payload, so no codes.
    let n = if v.is_v5() { 1..=4usize } else { 0..=0usize };
    (
        packet_id(),
        vec(reason(codes::UNSUBACK), n),
        ack_properties(v),
    )
        .prop_map(|(packet_id, codes, properties)| {
            Packet::UnsubAck(UnsubAck {
                packet_id,
                codes,
                properties,
            })
        })
}

pub(super) fn disconnect(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let table = if v.is_v5() {
        codes::DISCONNECT
    } else {
        &[0x00][..]
    };
    let props = (of(any::<u32>()), of(text()), of(text()), user_properties()).prop_map(
        |(sei, rs, sr, up)| DisconnectProperties {
            session_expiry_interval: sei,
            reason_string: rs,
            server_reference: sr,
            user_properties: up,
        },
    );
    let props = prop_oneof![Just(DisconnectProperties::default()), props];
    (reason(table), props).prop_map(move |(code, properties)| {
        let properties = if v.is_v5() {
            properties
        } else {
            DisconnectProperties::default()
        };
        Packet::Disconnect(Disconnect { code, properties })
    })
}

pub(super) fn auth() -> impl Strategy<Value = Packet> {
    let props = (auth_pair(), of(text()), user_properties()).prop_map(|((am, ad), rs, up)| {
        AuthProperties {
            authentication_method: am,
            authentication_data: ad,
            reason_string: rs,
            user_properties: up,
        }
    });
    let props = prop_oneof![Just(AuthProperties::default()), props];
    (reason(codes::AUTH), props)
        .prop_map(|(code, properties)| Packet::Auth(Auth { code, properties }))
}
