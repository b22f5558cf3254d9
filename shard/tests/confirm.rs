//! Acknowledgements of QoS 1/2 PUBLISHes that go to other shards: sent only after those
//! shards took the message, with a reason code that counts their subscribers, and in
//! PUBLISH order per connection [MQTT-4.6.0-2].
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

#[test]
fn a_cross_shard_puback_waits_for_the_other_shard_and_keeps_publish_order() {
    let mut w = World::new(2);
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
        ..ShardConfig::default()
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
    let mut w = World::new(2);
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
