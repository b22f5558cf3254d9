"""MQTT 5 features on the real broker with several shards, with paho-mqtt v5, mosquitto -V 5
and raw sockets: CONNACK capabilities, topic aliases both ways, Receive Maximum overflow,
Maximum Packet Size both ways, will delay, session expiry reaping, message expiry of queued
messages, subscription identifiers, property forwarding, AUTH without a method.
"""

import struct
import subprocess
import time

import pytest

import mqtt_raw as raw
import test_v5_support as v5
from conftest import MOSQUITTO, client_id_on_shard, ringmq_only
from mqtt_clients import V5, MosquittoSub

N = 4


def pub_sub_ids(prefix):
    """Publisher on shard 0, subscriber on shard 3: every message crosses shards."""
    return client_id_on_shard(f"{prefix}-pub", 0, N), client_id_on_shard(f"{prefix}-sub", 3, N)


@ringmq_only("exact ringmq capabilities and Response Information")
def test_connack_capabilities_and_response_information(broker):
    b = broker(shards=N, config={"limits": {"receive_maximum": 7, "topic_alias_maximum": 9}})
    c, ack = v5.raw5(b, "caps", properties=v5.props((v5.REQ_RESPONSE, 1)))
    p = v5.connack_props(ack)
    assert p[v5.RECEIVE_MAX] == 7
    assert p[v5.ALIAS_MAX] == 9
    assert p[v5.MAX_PACKET] == 1048576
    assert v5.MAX_QOS not in p, "QoS 2 supported: Maximum QoS absent"
    assert p[v5.RETAIN_AVAIL] == 1
    assert p[v5.WILDCARD] == 1 and p[v5.SUB_IDS_AVAIL] == 1 and p[v5.SHARED_AVAIL] == 1
    assert p[v5.RESPONSE_INFO] == "ringmq/response/caps"
    c.close()


def test_topic_alias_from_client_and_invalid_alias_disconnects(broker):
    b = broker(shards=N)
    pub_id, sub_id = pub_sub_ids("alias")
    sub = v5.Paho5(b, sub_id).connect()
    assert sub.subscribe("al/#", 1) == [1]
    pub = v5.Paho5(b, pub_id).connect()
    pub.publish("al/one", b"1", qos=1, TopicAlias=1)
    pub.publish("", b"2", qos=1, TopicAlias=1)
    pub.publish("al/two", b"3", qos=1, TopicAlias=1)
    pub.publish("", b"4", qos=1, TopicAlias=1)
    got = [(m.topic, m.payload) for m in sub.wait_for(4)]
    assert got == [("al/one", b"1"), ("al/one", b"2"), ("al/two", b"3"), ("al/two", b"4")]
    # An alias above the Topic Alias Maximum (64): DISCONNECT 0x94, connection closed.
    c, _ = v5.raw5(b, "alias-bad")
    c.send(v5.publish("al/x", b"x", properties=v5.props((v5.ALIAS, 65))))
    got = c.expect_closed()
    assert [(p.ptype, v5.reason_of(p)) for p in got] == [(v5.DISCONNECT, 0x94)]
    # An unknown alias with an empty topic: the same (Mosquitto says 0x82 Protocol error).
    c, _ = v5.raw5(b, "alias-unknown")
    c.send(v5.publish("", b"x", properties=v5.props((v5.ALIAS, 3))))
    assert [v5.reason_of(p) for p in c.expect_closed()] == [0x82 if MOSQUITTO else 0x94]
    b.assert_alive()


@ringmq_only("ringmq's alias assignment order")
def test_topic_alias_to_client(broker):
    b = broker(shards=N)
    pub_id, sub_id = pub_sub_ids("alias-out")
    c, _ = v5.raw5(b, sub_id, properties=v5.props((v5.ALIAS_MAX, 2)))
    c.send(v5.subscribe(1, "ao/#", 0))
    c.expect(v5.SUBACK)
    # Neither paho 2.2 nor Debian's libmosquitto 2.0 resolves aliases a server sends, so
    # the real clients here do not ask for any and must get every topic in full.
    cli = MosquittoSub(b, "ao/#", qos=0, count=5, protocol=V5)
    pub = v5.Paho5(b, pub_id).connect()
    topics = ["ao/a", "ao/a", "ao/b", "ao/a", "ao/c"]
    for t in topics:
        pub.publish(t, b"x", qos=1)
    got = [(p.topic, p.props.get(v5.ALIAS)) for p in v5.read_publishes(c, 5)]
    assert got == [("ao/a", 1), ("", 1), ("ao/b", 2), ("", 1), ("ao/c", 2)]
    assert [m.topic for m in cli.inbox.wait_for(5)] == topics
    assert cli.wait() == 0
    # Aliases start over on a new connection.
    c.close()
    c, _ = v5.raw5(b, sub_id, properties=v5.props((v5.ALIAS_MAX, 2)))
    c.send(v5.subscribe(1, "ao/#", 0))
    c.expect(v5.SUBACK)
    pub.publish("ao/c", b"x", qos=1)
    assert [(p.topic, p.props.get(v5.ALIAS)) for p in v5.read_publishes(c, 1)] == [("ao/c", 1)]


def test_receive_maximum_overflow_disconnects_with_0x93(broker):
    b = broker(shards=N, config={"limits": {"receive_maximum": 2}})
    c, ack = v5.raw5(b, "rm-over")
    if v5.RECEIVE_MAX in v5.connack_props(ack):
        assert v5.connack_props(ack)[v5.RECEIVE_MAX] == 2
    for pid in (1, 2):
        c.send(v5.publish("rm/t", b"x", qos=2, pid=pid))
        assert c.expect(v5.PUBREC).pid == pid
    c.send(v5.publish("rm/t", b"x", qos=2, pid=3))  # a third, with no PUBREL sent
    got = c.expect_closed()
    assert [(p.ptype, v5.reason_of(p)) for p in got] == [(v5.DISCONNECT, 0x93)]
    # PUBREL frees a slot: with one released, a third is fine.
    c, _ = v5.raw5(b, "rm-ok")
    for pid in (1, 2):
        c.send(v5.publish("rm/t", b"x", qos=2, pid=pid))
        c.expect(v5.PUBREC)
    c.send(v5.ack(v5.PUBREL, 1))
    c.expect(v5.PUBCOMP)
    c.send(v5.publish("rm/t", b"x", qos=2, pid=3))
    assert c.expect(v5.PUBREC).pid == 3
    b.assert_alive()


def test_maximum_packet_size_both_ways(broker):
    b = broker(shards=N, config={"limits": {"max_packet_size": 1024}})
    pub_id, sub_id = pub_sub_ids("mps")
    small, _ = v5.raw5(b, sub_id, properties=v5.props((v5.MAX_PACKET, 200)))
    small.send(v5.subscribe(1, "mps/t", 1))
    small.expect(v5.SUBACK)
    pub = v5.Paho5(b, pub_id).connect()
    pub.publish("mps/t", b"a" * 50, qos=1)
    pub.publish("mps/t", b"b" * 500, qos=1)  # larger than the subscriber accepts: dropped
    pub.publish("mps/t", b"c" * 50, qos=1)
    got = v5.drain_publishes(small)
    assert [p.payload[:1] for p in got] == [b"a", b"c"]
    # Larger than ours: DISCONNECT 0x95.
    big, _ = v5.raw5(b, "mps-big")
    big.send(v5.publish("mps/t", b"x" * 2000))
    assert [v5.reason_of(p) for p in big.expect_closed()] == [0x95]
    b.assert_alive()


def test_will_delay(broker):
    b = broker(shards=N)
    watch = v5.Paho5(b, client_id_on_shard("wd-watch", 0, N)).connect()
    assert watch.subscribe("wd/#", 1) == [1]
    did = client_id_on_shard("wd-dying", 1, N)
    dying = v5.Paho5(b, did, will=("wd/gone", b"bye", 1, {"WillDelayInterval": 2}),
                     SessionExpiryInterval=30).connect()
    t0 = time.monotonic()
    dying.kill()
    msgs = watch.wait_for(1, timeout=6)
    elapsed = time.monotonic() - t0
    assert 1.5 <= elapsed <= 4.5, f"will after {elapsed:.2f}s, delay was 2 s"
    assert (msgs[0].topic, msgs[0].payload) == ("wd/gone", b"bye")
    # Reconnecting within the delay cancels the will.
    rid = client_id_on_shard("wd-back", 2, N)
    back = v5.Paho5(b, rid, will=("wd/back", b"no", 1, {"WillDelayInterval": 2}),
                    SessionExpiryInterval=30).connect()
    back.kill()
    time.sleep(0.5)
    again = v5.Paho5(b, rid, clean=False, SessionExpiryInterval=30).connect()
    assert again.session_present
    time.sleep(3)
    assert [m.topic for m in watch.msgs] == ["wd/gone"]
    again.disconnect()


def test_session_expiry_reaps_the_session(broker):
    b = broker(shards=N)
    pub_id, sub_id = pub_sub_ids("se")
    s = v5.Paho5(b, sub_id, SessionExpiryInterval=1).connect()
    assert s.subscribe("se/#", 1) == [1]
    s.disconnect()
    time.sleep(0.3)
    resumed = v5.Paho5(b, sub_id, clean=False, SessionExpiryInterval=1).connect()
    assert resumed.session_present, "within the expiry"
    resumed.disconnect()
    time.sleep(2.5)
    # Reaped: its subscription is gone (PUBACK 0x10) and the session with it.
    c, _ = v5.raw5(b, pub_id)
    c.send(v5.publish("se/x", b"x", qos=1, pid=1))
    puback = c.expect(v5.PUBACK)
    assert puback.body[2] == 0x10, "No matching subscribers"
    late = v5.Paho5(b, sub_id, clean=False, SessionExpiryInterval=1).connect()
    assert not late.session_present
    late.disconnect()


def test_queued_messages_expire(broker):
    b = broker(shards=N)
    pub_id, sub_id = pub_sub_ids("mx")
    s = v5.Paho5(b, sub_id, SessionExpiryInterval=60).connect()
    assert s.subscribe("mx/#", 1) == [1]
    s.disconnect()
    pub = v5.Paho5(b, pub_id).connect()
    pub.publish("mx/short", b"s", qos=1, MessageExpiryInterval=1)
    pub.publish("mx/long", b"l", qos=1, MessageExpiryInterval=60)
    pub.publish("mx/none", b"n", qos=1)
    time.sleep(2.2)
    back = v5.Paho5(b, sub_id, clean=False, SessionExpiryInterval=60).connect()
    assert back.session_present
    got = back.settle(0.7)
    assert [m.topic for m in got] == ["mx/long", "mx/none"]
    assert 55 <= got[0].props["MessageExpiryInterval"] <= 58
    assert "MessageExpiryInterval" not in got[1].props


@ringmq_only("Mosquitto sends one copy per matching subscription (§3.3.4 allows both)")
def test_subscription_identifiers_on_overlapping_subscriptions(broker):
    b = broker(shards=N)
    pub_id, sub_id = pub_sub_ids("sid")
    s = v5.Paho5(b, sub_id).connect()
    assert s.subscribe("sid/+", 1, sub_id=11) == [1]
    assert s.subscribe("sid/#", 0, sub_id=22) == [0]
    assert s.subscribe("sid/a", 1) == [1]
    pub = v5.Paho5(b, pub_id).connect()
    pub.publish("sid/a", b"x", qos=1)
    pub.publish("sid/b/c", b"y", qos=1)
    got = s.settle(0.7)
    assert len(got) == 2, "one copy per message"
    assert sorted(got[0].props["SubscriptionIdentifier"]) == [11, 22]
    assert got[0].qos == 1
    assert got[1].props["SubscriptionIdentifier"] == [22]


def test_properties_forwarded_unchanged_paho_and_mosquitto(broker):
    b = broker(shards=N)
    pub_id, sub_id = pub_sub_ids("fw")
    s = v5.Paho5(b, sub_id).connect()
    assert s.subscribe("fw/#", 1) == [1]
    pub = v5.Paho5(b, pub_id).connect()
    pub.publish("fw/paho", b'{"a":1}', qos=1, UserProperty=[("k", "v1"), ("k", "v2")],
                ContentType="application/json", ResponseTopic="fw/reply",
                CorrelationData=b"\x00\x01corr", PayloadFormatIndicator=1)
    m = s.wait_for(1)[0]
    assert m.props["UserProperty"] == [("k", "v1"), ("k", "v2")]
    assert m.props["ContentType"] == "application/json"
    assert m.props["ResponseTopic"] == "fw/reply"
    assert m.props["CorrelationData"] == b"\x00\x01corr"
    assert m.props["PayloadFormatIndicator"] == 1
    res = subprocess.run(["mosquitto_pub", "-h", b.host, "-p", str(b.port), "-V", "mqttv5",
                          "-t", "fw/cli", "-m", "hi", "-q", "1",
                          "-D", "publish", "user-property", "who", "cli",
                          "-D", "publish", "content-type", "text/plain"],
                         capture_output=True, text=True, timeout=10)
    assert res.returncode == 0, res.stderr
    m = s.wait_for(2)[1]
    assert (m.topic, m.payload) == ("fw/cli", b"hi")
    assert m.props["UserProperty"] == [("who", "cli")]
    assert m.props["ContentType"] == "text/plain"


@ringmq_only("no enhanced authentication method is configured in ringmq")
def test_auth_without_a_method(broker):
    b = broker(shards=N)
    c = raw.RawClient(b.host, b.port)
    c.send(v5.connect("auth1", properties=v5.props((0x15, "SCRAM-SHA-1"))))
    got = c.expect_closed()
    assert [(p.ptype, v5.reason_of(p)) for p in got] == [(v5.CONNACK, 0x8C)]
    c, _ = v5.raw5(b, "auth2")
    c.send(raw.packet(v5.AUTH, 0, bytes([0x19]) + v5.props((0x15, "SCRAM-SHA-1"))))
    assert [(p.ptype, v5.reason_of(p)) for p in c.expect_closed()] == [(v5.DISCONNECT, 0x82)]
    b.assert_alive()


@pytest.mark.parametrize("code,will", [(0x00, False), (0x04, True)])
def test_disconnect_reason_decides_the_will(broker, code, will):
    b = broker(shards=N)
    watch = v5.Paho5(b, client_id_on_shard("dw-watch", 0, N)).connect()
    assert watch.subscribe("dw/#", 1) == [1]
    c = raw.RawClient(b.host, b.port)
    flags = 0x02 | 0x04 | (1 << 3)  # clean start, will, will QoS 1
    body = (raw.mqtt_str("MQTT") + bytes([5, flags]) + struct.pack("!H", 60) + b"\x00"
            + raw.mqtt_str(client_id_on_shard("dw", 2, N)) + b"\x00"
            + raw.mqtt_str("dw/will") + raw.mqtt_str("w"))
    c.send(raw.packet(v5.CONNECT, 0, body))
    assert v5.reason_of(c.expect(v5.CONNACK)) == 0
    c.send(v5.disconnect(code))
    c.expect_closed()
    got = watch.settle(0.7)
    assert [m.topic for m in got] == (["dw/will"] if will else [])
