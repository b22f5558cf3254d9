//! Acknowledgements of QoS 1/2 PUBLISHes that go to other shards: at once on the link's
//! credit, which comes back once per turn; with none left, only after those shards took the
//! message, with a reason code that counts their subscribers; in PUBLISH order per
//! connection [MQTT-4.6.0-2] either way.
mod common;
use codec::*;
use common::*;
use shard::ShardConfig;

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;

/// A v5 client whose home is `shard` of `nr`.
fn v5_on(w: &mut World, prefix: &str, shard: usize, nr: usize, props: ConnectProperties) -> C {
    w.connect_with(connect5(&id_on(prefix, shard, nr), true, props))
}

fn acks(packets: &[Packet]) -> Vec<(u16, ReasonCode)> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::PubAck(a) | Packet::PubRec(a) => Some((a.packet_id.get(), a.code)),
            _ => None,
        })
        .collect()
}

/// A broker whose cross-shard acknowledgements all wait for confirmation.
fn no_credit() -> ShardConfig {
    ShardConfig {
        link_credit: 0,
        ..ShardConfig::default()
    }
}

#[test]
fn a_cross_shard_puback_waits_for_the_other_shard_and_keeps_publish_order() {
    let mut w = World::with_config(2, no_credit());
    let sub = w.connect(&id_on("sub", 1, 2), V4, true);
    w.subscribe(sub, 1, "far/#", QoS::AtLeastOnce);
    w.recv(sub);
    let publisher = v5_on(&mut w, "pub", 0, 2, Default::default());
    w.recv(publisher);

    // 1 goes to shard 1; 2 matches nobody and could be acknowledged at once, 3 is QoS 2.
    w.send_unsettled(
        publisher,
        publish_packet("far/a", "one", QoS::AtLeastOnce, false, 1),
    );
    w.send_unsettled(
        publisher,
        publish_packet("near", "two", QoS::AtLeastOnce, false, 2),
    );
    w.send_unsettled(
        publisher,
        publish_packet("far/b", "three", QoS::ExactlyOnce, false, 3),
    );
    let conn = w.clients[publisher].conn.unwrap();
    assert!(
        w.shards[0].conn_output(0, conn).is_none(),
        "nothing acknowledged before shard 1 took message 1"
    );
    w.settle();
    assert_eq!(
        acks(&w.recv(publisher)),
        vec![
            (1, ReasonCode::Success),
            (2, ReasonCode::NoMatchingSubscribers),
            (3, ReasonCode::Success),
        ]
    );
    let got: Vec<_> = w
        .publishes(sub)
        .iter()
        .map(|p| p.topic.to_string())
        .collect();
    assert_eq!(got, vec!["far/a", "far/b"]);
}

#[test]
fn the_reason_code_counts_subscribers_on_other_shards() {
    // An online subscriber's queue never refuses (its publishers are paused instead), so
    // 0x97 comes from an offline session whose queue is full and keeps what it has.
    let cfg = ShardConfig {
        max_queued_messages: 1,
        offline_queue_policy: shard::QueuePolicy::DropNewest,
        ..no_credit()
    };
    let mut w = World::with_config(2, cfg);
    let sub = w.connect(&id_on("sub", 1, 2), V4, false);
    w.subscribe(sub, 1, "t", QoS::AtLeastOnce);
    w.recv(sub);
    w.drop_conn(sub);
    let publisher = v5_on(&mut w, "pub", 0, 2, Default::default());
    w.recv(publisher);
    // 1 fills the offline subscriber's queue; 2 has nowhere to go.
    for id in 1..=2 {
        w.send(
            publisher,
            publish_packet("t", "m", QoS::AtLeastOnce, false, id),
        );
    }
    assert_eq!(
        acks(&w.recv(publisher)),
        vec![(1, ReasonCode::Success), (2, ReasonCode::QuotaExceeded)],
        "0x97 although the only subscriber is on another shard"
    );
    let st = w.stats();
    assert_eq!(st.drops.get(shard::DropReason::QueueFull), 1);
}

#[test]
fn a_publisher_gone_before_the_confirmation_costs_nothing() {
    let mut w = World::with_config(2, no_credit());
    let sub = w.connect(&id_on("sub", 1, 2), V4, true);
    w.subscribe(sub, 1, "far", QoS::AtLeastOnce);
    w.recv(sub);
    let publisher = w.connect(&id_on("pub", 0, 2), V4, true);
    w.send_unsettled(
        publisher,
        publish_packet("far", "x", QoS::AtLeastOnce, false, 7),
    );
    w.drop_conn(publisher); // settles: shard 1 delivers and confirms to a closed connection
    assert_eq!(
        w.publishes(sub).len(),
        1,
        "the message itself still goes out"
    );

    // A new connection of the same client is acknowledged normally.
    let again = w.connect(&id_on("pub", 0, 2), V4, true);
    w.recv(again);
    w.send(
        again,
        publish_packet("far", "y", QoS::AtLeastOnce, false, 7),
    );
    assert_eq!(acks(&w.recv(again)), vec![(7, ReasonCode::Success)]);
}

#[test]
fn on_credit_a_cross_shard_puback_leaves_at_once_and_the_credit_comes_back() {
    let cfg = ShardConfig {
        link_credit: 3,
        ..ShardConfig::default()
    };
    let mut w = World::with_config(2, cfg);
    let sub = w.connect(&id_on("sub", 1, 2), V4, true);
    w.subscribe(sub, 1, "far", QoS::AtLeastOnce);
    w.recv(sub);
    let publisher = v5_on(&mut w, "pub", 0, 2, Default::default());
    w.recv(publisher);
    let conn = w.clients[publisher].conn.unwrap();
    // Three credits: 1..=3 are acknowledged before shard 1 ran at all, 4 waits for it.
    for id in 1..=4 {
        w.send_unsettled(
            publisher,
            publish_packet("far", "m", QoS::AtLeastOnce, false, id),
        );
    }
    let out = w.shards[0]
        .conn_output(0, conn)
        .expect("acknowledged at once");
    let mut buf = bytes::BytesMut::from(&out.into_contiguous()[..]);
    let limits = Limits::default();
    let mut early = Vec::new();
    while let Ok(Some(p)) = decode(&mut buf, &limits, ProtocolVersion::V5) {
        early.push(p);
    }
    assert_eq!(
        acks(&early),
        vec![
            (1, ReasonCode::Success),
            (2, ReasonCode::Success),
            (3, ReasonCode::Success)
        ],
        "on credit; the fourth waits for shard 1"
    );
    w.settle();
    assert_eq!(acks(&w.recv(publisher)), vec![(4, ReasonCode::Success)]);
    assert_eq!(w.publishes(sub).len(), 4, "all delivered");
    // Shard 1 gave the three credits back: three more go at once.
    for id in 5..=7 {
        w.send_unsettled(
            publisher,
            publish_packet("far", "m", QoS::AtLeastOnce, false, id),
        );
    }
    assert!(
        w.shards[0].conn_output(0, conn).is_some(),
        "credit returned once shard 1 took the first three"
    );
    w.settle();
    assert_eq!(w.stats().messages_dropped, 0);
}

#[test]
fn a_shared_member_on_another_shard_without_credit_confirms_where_the_message_ends() {
    let mut w = World::with_config(2, no_credit());
    let member = w.connect(&id_on("member", 1, 2), V4, true);
    w.subscribe(member, 1, "$share/g/jobs", QoS::AtLeastOnce);
    w.recv(member);
    let publisher = v5_on(&mut w, "pub", 0, 2, Default::default());
    w.recv(publisher);
    let conn = w.clients[publisher].conn.unwrap();
    w.send_unsettled(
        publisher,
        publish_packet("jobs", "j1", QoS::AtLeastOnce, false, 1),
    );
    assert!(
        w.shards[0].conn_output(0, conn).is_none(),
        "waits for the member's shard"
    );
    w.settle();
    assert_eq!(acks(&w.recv(publisher)), vec![(1, ReasonCode::Success)]);
    assert_eq!(w.publishes(member).len(), 1);
}
