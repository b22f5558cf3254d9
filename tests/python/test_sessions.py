"""Clean and persistent sessions: session-present flag, resume, offline queue, inflight resend
with DUP, takeover, and the bounded offline queue (limits.max_queued_messages).
"""

import pytest

import mqtt_raw as raw
from mqtt_clients import V31, V311, Paho, paho


def test_session_present_flag(broker):
    b = broker()
    steps = [  # (clean session, expected session-present)
        (True, False),   # clean: never a session
        (False, False),  # first persistent connect: nothing to resume
        (False, True),   # resume
        (True, False),   # clean discards the stored session [MQTT-3.1.2-6]
        (False, False),  # so the next persistent connect starts afresh
    ]
    for clean, present in steps:
        c, ack = raw.raw_session(b.host, b.port, "sp-client", clean=clean)
        assert ack.session_present is present, f"clean={clean}"
        c.send(raw.DISCONNECT_BYTES)
        c.expect_closed()


@pytest.mark.parametrize("protocol", [V31, V311], ids=["v3.1", "v3.1.1"])
def test_persistent_session_resume_with_paho(broker, protocol):
    b = broker()
    sub = Paho(b, "resume-sub", protocol=protocol, clean=False).connect()
    assert sub.subscribe("resume/#", 2) == [2]
    sub.disconnect()

    pub = paho(b, "resume-pub", protocol=protocol)
    pub.publish("resume/a", b"q1 while offline", 1)
    pub.publish("resume/b", b"q2 while offline", 2)

    sub = Paho(b, "resume-sub", protocol=protocol, clean=False).connect()
    if protocol == V311:
        assert sub.session_present is True
    got = sub.inbox.expect_exactly(2)
    assert sorted((m.topic, m.payload, m.qos) for m in got) == [
        ("resume/a", b"q1 while offline", 1), ("resume/b", b"q2 while offline", 2)]
    # The subscription itself survived: a live publish arrives without re-subscribing.
    pub.publish("resume/c", b"live", 1)
    got = sub.inbox.expect_exactly(3)
    assert (got[2].topic, got[2].payload, got[2].qos) == ("resume/c", b"live", 1)
    sub.disconnect()
    pub.disconnect()


def test_clean_session_drops_subscriptions_and_queue(broker):
    b = broker()
    c, _ = raw.raw_session(b.host, b.port, "drop-me", clean=False)
    assert c.subscribe(1, ("drop/t", 1)) == [1]
    c.send(raw.DISCONNECT_BYTES)
    c.expect_closed()
    pub = paho(b, "drop-pub")
    pub.publish("drop/t", b"queued for the old session", 1)

    c, ack = raw.raw_session(b.host, b.port, "drop-me", clean=True)
    assert ack.session_present is False
    c.expect_nothing(0.7)  # the queued message went with the old session
    pub.publish("drop/t", b"live", 1)
    c.expect_nothing(0.7)  # and so did the subscription
    pub.disconnect()


def test_clean_session_subscriber_gets_nothing_after_reconnect(broker):
    b = broker()
    c, _ = raw.raw_session(b.host, b.port, "cs-sub", clean=True)
    assert c.subscribe(1, ("cs/t", 1)) == [1]
    c.kill()
    pub = paho(b, "cs-pub")
    pub.publish("cs/t", b"nobody home", 1)
    c, ack = raw.raw_session(b.host, b.port, "cs-sub", clean=True)
    assert ack.session_present is False
    c.expect_nothing(0.7)
    pub.disconnect()


@pytest.mark.parametrize("qos", [1, 2])
def test_inflight_resent_with_dup_on_reconnect(broker, qos):
    b = broker()
    sub, _ = raw.raw_session(b.host, b.port, "dup-resend", clean=False)
    assert sub.subscribe(1, ("inflight/t", qos)) == [qos]
    pub = paho(b, "dup-resend-pub")
    pub.publish("inflight/t", b"unacked payload", qos)
    first = sub.expect(raw.PUBLISH)
    assert (first.payload, first.qos, first.dup) == (b"unacked payload", qos, False)
    sub.kill()  # never acknowledged

    sub, ack = raw.raw_session(b.host, b.port, "dup-resend", clean=False)
    assert ack.session_present is True
    again = sub.expect(raw.PUBLISH)
    assert (again.topic, again.payload, again.qos, again.dup, again.pid) == (
        "inflight/t", b"unacked payload", qos, True, first.pid)
    if qos == 1:
        sub.send(raw.ack(raw.PUBACK, again.pid))
    else:
        sub.send(raw.ack(raw.PUBREC, again.pid))
        assert sub.expect(raw.PUBREL).pid == again.pid
        sub.send(raw.ack(raw.PUBCOMP, again.pid))
    sub.expect_nothing(1.0)  # acknowledged now: never sent a third time
    pub.disconnect()


def test_takeover_closes_first_connection(broker):
    b = broker()
    first, _ = raw.raw_session(b.host, b.port, "same-id")
    second, ack = raw.raw_session(b.host, b.port, "same-id")
    assert ack.session_present is False
    assert first.expect_closed() == []
    second.send(raw.PINGREQ_BYTES)
    second.expect(raw.PINGRESP)


def test_takeover_of_persistent_session_keeps_it(broker):
    b = broker()
    first, _ = raw.raw_session(b.host, b.port, "take-persist", clean=False)
    assert first.subscribe(1, ("take/t", 1)) == [1]
    second, ack = raw.raw_session(b.host, b.port, "take-persist", clean=False)
    assert ack.session_present is True
    assert first.expect_closed() == []
    pub = paho(b, "take-pub")
    pub.publish("take/t", b"to the new connection", 1)
    p = second.expect(raw.PUBLISH)
    assert (p.payload, p.qos) == (b"to the new connection", 1)
    second.send(raw.ack(raw.PUBACK, p.pid))
    pub.disconnect()


def test_max_queued_messages_bounds_offline_queue(broker):
    """limits.max_queued_messages = 5 (Mosquitto: max_queued_messages 5): of 20 QoS 1 messages
    published while the subscriber is offline, exactly 5 are delivered on reconnect."""
    b = broker(config={"limits": {"max_queued_messages": 5}})
    sub = Paho(b, "mq-sub", clean=False).connect()
    assert sub.subscribe("mq/t", 1) == [1]
    sub.disconnect()
    pub = paho(b, "mq-pub")
    for i in range(20):
        pub.publish("mq/t", f"n{i}".encode(), 1)
    sub = Paho(b, "mq-sub", clean=False).connect()
    got = sub.inbox.expect_exactly(5, settle=1.0)
    assert all(m.qos == 1 and m.topic == "mq/t" for m in got), got
    indices = [int(m.payload[1:]) for m in got]
    assert indices == sorted(set(indices)), f"5 distinct messages in publish order: {indices}"
    sub.disconnect()
    pub.disconnect()
