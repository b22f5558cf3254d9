"""Topic matching: `+` and `#` wildcards, `$`-topics hidden from leading wildcards,
overlapping subscriptions, unsubscribe.
"""

import pytest

import mqtt_raw as raw
from conftest import ringmq_only
from mqtt_clients import paho

PUBLISHED = ["a", "a/b", "a/b/c", "a/b/c/d", "a/x/c", "a//c", "b/b/c", "/a"]
CASES = {
    "a/+/c": {"a/b/c", "a/x/c", "a//c"},
    "a/#": {"a", "a/b", "a/b/c", "a/b/c/d", "a/x/c", "a//c"},  # '#' includes the parent
    "+/b/c": {"a/b/c", "b/b/c"},
    "+": {"a"},
    "+/+": {"a/b", "/a"},
    "/+": {"/a"},
    "#": set(PUBLISHED),
    "a/b/c": {"a/b/c"},
    "a/b/+/#": {"a/b/c", "a/b/c/d"},
}


@pytest.mark.parametrize("topic_filter", list(CASES))
def test_wildcard_matching(broker, topic_filter):
    b = broker()
    sub = paho(b, "wc-sub")
    assert sub.subscribe(topic_filter, 1) == [1]
    pub = paho(b, "wc-pub")
    for t in PUBLISHED:
        pub.publish(t, t.encode(), 1)
    expected = CASES[topic_filter]
    got = sub.inbox.expect_exactly(len(expected))
    assert sorted(m.topic for m in got) == sorted(expected)
    assert all(m.payload == m.topic.encode() for m in got)
    pub.disconnect()
    sub.disconnect()


def _wildcard_watcher(b):
    wild = paho(b, "dollar-wild")
    for f in ("#", "+/x", "+/+"):
        assert wild.subscribe(f, 1) == [1]
    return wild


def _only_plain_x(wild):
    # '#', '+/x' and '+/+' all match plain/x: one copy or several; never a '$' topic.
    wild.inbox.wait_for(1)
    wild.inbox.expect_exactly(len(wild.inbox.messages), settle=0.5)
    assert {m.topic for m in wild.inbox.messages} == {"plain/x"}, wild.inbox.messages


def test_dollar_topic_not_matched_by_leading_wildcards(broker):
    """[MQTT-4.7.2-1]: `#` and `+/...` do not match topics that start with `$`."""
    b = broker()
    wild = _wildcard_watcher(b)
    exact = paho(b, "dollar-exact")
    assert exact.subscribe("$app/x", 1) == [1]
    pub = paho(b, "dollar-pub")
    pub.publish("$app/x", b"hidden", 1)
    pub.publish("plain/x", b"visible", 1)
    (m,) = exact.inbox.expect_exactly(1)
    assert (m.topic, m.payload) == ("$app/x", b"hidden")
    _only_plain_x(wild)
    for c in (wild, exact, pub):
        c.disconnect()


def test_sys_topic_not_matched_by_hash(broker):
    """Neither a client's `$SYS/x` publish nor the broker's own `$SYS` topics reach `#`.

    (Whether a client may publish into `$SYS` at all is the broker's choice; Mosquitto drops it.)
    """
    b = broker()
    wild = _wildcard_watcher(b)
    pub = paho(b, "sys-pub")
    pub.publish("$SYS/x", b"hidden", 1)
    pub.publish("plain/x", b"visible", 1)
    _only_plain_x(wild)
    wild.disconnect()
    pub.disconnect()


@ringmq_only("Mosquitto 2.0.11 sends one copy at the QoS of one matching subscription, not "
             "the highest (seen: ov/# q0, ov/+ q2, ov/t q1 -> one copy at QoS 1)")
def test_overlapping_subscriptions_deliver_one_copy_at_highest_qos(broker):
    b = broker()
    sub, _ = raw.raw_session(b.host, b.port, "overlap")
    assert sub.subscribe(1, ("ov/#", 0), ("ov/+", 2), ("ov/t", 1)) == [0, 2, 1]
    pub = paho(b, "overlap-pub")
    pub.publish("ov/t", b"one copy", 2)
    p = sub.expect(raw.PUBLISH)
    assert (p.topic, p.payload, p.qos) == ("ov/t", b"one copy", 2)
    sub.send(raw.ack(raw.PUBREC, p.pid))
    assert sub.expect(raw.PUBREL).pid == p.pid
    sub.send(raw.ack(raw.PUBCOMP, p.pid))
    sub.expect_nothing(0.7)
    pub.disconnect()


def test_unsubscribe_stops_delivery(broker):
    b = broker()
    sub, _ = raw.raw_session(b.host, b.port, "unsub")
    assert sub.subscribe(1, ("un/t", 0)) == [0]
    sub.send(raw.unsubscribe(2, "un/t"))
    assert sub.expect(raw.UNSUBACK).pid == 2
    pub = paho(b, "unsub-pub")
    pub.publish("un/t", b"after unsubscribe", 1)
    sub.expect_nothing(0.7)
    pub.disconnect()


def test_publisher_receives_own_message_when_subscribed(broker):
    """MQTT 3.1.1 has no no-local option: a subscriber that publishes gets its own message."""
    b = broker()
    c = paho(b, "self-echo")
    assert c.subscribe("echo/t", 1) == [1]
    c.publish("echo/t", b"me", 1)
    (m,) = c.inbox.expect_exactly(1)
    assert (m.topic, m.payload, m.qos) == ("echo/t", b"me", 1)
    c.disconnect()
