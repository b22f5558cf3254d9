"""QoS 0/1/2 delivery in both directions, QoS downgrade, and QoS 2 exactly-once rules.

Real clients (paho-mqtt, mosquitto_pub/_sub) for end-to-end delivery; raw sockets where the
test must control each acknowledgement (duplicate PUBLISH before PUBREL, reconnect mid-flow).
"""

import pytest

import mqtt_raw as raw
from mqtt_clients import V31, V311, MosquittoSub, mosquitto_pub, paho

QOS = [0, 1, 2]


@pytest.mark.parametrize("protocol", [V31, V311], ids=["v3.1", "v3.1.1"])
@pytest.mark.parametrize("qos", QOS)
def test_paho_to_paho(broker, qos, protocol):
    b = broker()
    sub = paho(b, "pp-sub", protocol=protocol)
    assert sub.subscribe("pp/t", qos) == [qos]
    pub = paho(b, "pp-pub", protocol=protocol)
    for i in range(10):
        pub.publish("pp/t", f"m{i}".encode(), qos)
    got = sub.inbox.expect_exactly(10)
    assert [m.payload for m in got] == [f"m{i}".encode() for i in range(10)]
    assert {(m.topic, m.qos, m.retain) for m in got} == {("pp/t", qos, False)}
    pub.disconnect()
    sub.disconnect()


@pytest.mark.parametrize("qos", QOS)
def test_mosquitto_pub_to_paho_sub(broker, qos):
    b = broker()
    sub = paho(b, "mp-sub")
    assert sub.subscribe("cli/in", qos) == [qos]
    mosquitto_pub(b, "cli/in", "from the cli", qos=qos)
    (m,) = sub.inbox.expect_exactly(1)
    assert (m.topic, m.payload, m.qos, m.retain) == ("cli/in", b"from the cli", qos, False)
    sub.disconnect()


@pytest.mark.parametrize("qos", QOS)
def test_paho_pub_to_mosquitto_sub(broker, qos):
    b = broker()
    sub = MosquittoSub(b, "cli/out", qos=qos, count=3, timeout=10)
    pub = paho(b, "ms-pub")
    for i in range(3):
        pub.publish("cli/out", f"p{i}".encode(), qos)
    assert sub.wait() == 0, sub.lines
    got = sub.inbox.messages
    assert [(m.topic, m.payload, m.qos, m.retain) for m in got] == [
        ("cli/out", f"p{i}".encode(), qos, False) for i in range(3)]
    pub.disconnect()


@pytest.mark.parametrize("protocol", [V31, V311], ids=["v3.1", "v3.1.1"])
def test_mosquitto_pub_to_mosquitto_sub(broker, protocol):
    b = broker()
    sub = MosquittoSub(b, "cli/both", qos=2, count=1, protocol=protocol)
    mosquitto_pub(b, "cli/both", "end to end", qos=2, protocol=protocol)
    assert sub.wait() == 0, sub.lines
    got = sub.inbox.messages
    assert [(m.topic, m.payload, m.qos) for m in got] == [("cli/both", b"end to end", 2)]


def test_qos_downgraded_to_subscription_max(broker):
    """Delivered QoS = min(published QoS, granted QoS) for all nine pairs [MQTT-3.8.4-6]."""
    b = broker()
    subs = {}
    for sq in QOS:
        subs[sq] = paho(b, f"dg-sub{sq}")
        assert subs[sq].subscribe("dg/t", sq) == [sq]
    pub = paho(b, "dg-pub")
    for pq in QOS:
        pub.publish("dg/t", f"pub{pq}".encode(), pq)
    for sq, sub in subs.items():
        got = sub.inbox.expect_exactly(3)
        assert sorted((m.payload, m.qos) for m in got) == [
            (f"pub{pq}".encode(), min(pq, sq)) for pq in QOS], f"subscription QoS {sq}"
        sub.disconnect()
    pub.disconnect()


def test_qos1_puback_and_qos2_handshake_on_the_wire(broker):
    """Acks to the publisher carry its packet id; the flow to the subscriber completes."""
    b = broker()
    sub, _ = raw.raw_session(b.host, b.port, "wire-sub")
    assert sub.subscribe(1, ("wire/t", 2)) == [2]
    pub, _ = raw.raw_session(b.host, b.port, "wire-pub")
    pub.send(raw.publish("wire/t", b"one", qos=1, pid=0x1234))
    assert pub.expect(raw.PUBACK).pid == 0x1234
    p = sub.expect(raw.PUBLISH)
    assert (p.payload, p.qos, p.dup) == (b"one", 1, False)
    sub.send(raw.ack(raw.PUBACK, p.pid))

    pub.send(raw.publish("wire/t", b"two", qos=2, pid=0x0102))
    assert pub.expect(raw.PUBREC).pid == 0x0102
    pub.send(raw.ack(raw.PUBREL, 0x0102))
    assert pub.expect(raw.PUBCOMP).pid == 0x0102
    p = sub.expect(raw.PUBLISH)
    assert (p.payload, p.qos, p.dup) == (b"two", 2, False)
    sub.send(raw.ack(raw.PUBREC, p.pid))
    rel = sub.expect(raw.PUBREL)
    assert (rel.pid, rel.flags) == (p.pid, 0x02)
    sub.send(raw.ack(raw.PUBCOMP, p.pid))
    sub.expect_nothing(0.5)


def test_qos2_duplicate_publish_before_pubrel_delivered_once(broker):
    b = broker()
    sub = paho(b, "dup-sub")
    assert sub.subscribe("dup/t", 2) == [2]
    pub, _ = raw.raw_session(b.host, b.port, "dup-pub")
    pub.send(raw.publish("dup/t", b"once", qos=2, pid=7))
    assert pub.expect(raw.PUBREC).pid == 7
    # The PUBREC "was lost": the sender retransmits with DUP before releasing.
    pub.send(raw.publish("dup/t", b"once", qos=2, pid=7, dup=True))
    assert pub.expect(raw.PUBREC).pid == 7
    pub.send(raw.ack(raw.PUBREL, 7))
    assert pub.expect(raw.PUBCOMP).pid == 7
    (m,) = sub.inbox.expect_exactly(1, settle=0.7)
    assert (m.payload, m.qos) == (b"once", 2)
    # After PUBCOMP the packet id is free again: a new message with id 7 is a new message.
    pub.send(raw.publish("dup/t", b"again", qos=2, pid=7))
    assert pub.expect(raw.PUBREC).pid == 7
    pub.send(raw.ack(raw.PUBREL, 7))
    assert pub.expect(raw.PUBCOMP).pid == 7
    got = sub.inbox.expect_exactly(2)
    assert [m.payload for m in got] == [b"once", b"again"]
    sub.disconnect()


def test_qos2_publisher_reconnect_before_pubrel_delivered_once(broker):
    """Inbound QoS 2 state survives a reconnect of a persistent publisher session."""
    b = broker()
    sub = paho(b, "pubre-sub")
    assert sub.subscribe("pubre/t", 2) == [2]
    pub, _ = raw.raw_session(b.host, b.port, "pubre-pub", clean=False)
    pub.send(raw.publish("pubre/t", b"survivor", qos=2, pid=42))
    assert pub.expect(raw.PUBREC).pid == 42
    pub.kill()
    pub, ack = raw.raw_session(b.host, b.port, "pubre-pub", clean=False)
    assert ack.session_present is True
    pub.send(raw.publish("pubre/t", b"survivor", qos=2, pid=42, dup=True))
    assert pub.expect(raw.PUBREC).pid == 42
    pub.send(raw.ack(raw.PUBREL, 42))
    assert pub.expect(raw.PUBCOMP).pid == 42
    (m,) = sub.inbox.expect_exactly(1, settle=0.7)
    assert (m.payload, m.qos) == (b"survivor", 2)
    sub.disconnect()


def _qos2_sub_reconnect(b, cut_after_pubrec: bool):
    sub, _ = raw.raw_session(b.host, b.port, "q2re-sub", clean=False)
    assert sub.subscribe(1, ("q2re/t", 2)) == [2]
    pub = paho(b, "q2re-pub")
    pub.publish("q2re/t", b"exactly once", 2)
    p = sub.expect(raw.PUBLISH)
    assert (p.payload, p.qos, p.dup) == (b"exactly once", 2, False)
    if cut_after_pubrec:
        sub.send(raw.ack(raw.PUBREC, p.pid))
        assert sub.expect(raw.PUBREL).pid == p.pid
    sub.kill()  # mid-flow: no PUBREC (or no PUBCOMP) reaches the broker

    sub, ack = raw.raw_session(b.host, b.port, "q2re-sub", clean=False)
    assert ack.session_present is True
    if cut_after_pubrec:
        # The message was already handed over: only the PUBREL is resent [MQTT-4.4.0-1].
        rel = sub.expect(raw.PUBREL)
        assert rel.pid == p.pid
    else:
        again = sub.expect(raw.PUBLISH)
        assert (again.payload, again.qos, again.dup, again.pid) == (
            b"exactly once", 2, True, p.pid)
        sub.send(raw.ack(raw.PUBREC, p.pid))
        assert sub.expect(raw.PUBREL).pid == p.pid
    sub.send(raw.ack(raw.PUBCOMP, p.pid))
    sub.expect_nothing(1.0)
    # The session still works after the flow completed.
    pub.publish("q2re/t", b"next", 2)
    nxt = sub.expect(raw.PUBLISH)
    assert (nxt.payload, nxt.dup) == (b"next", False)
    pub.disconnect()


def test_qos2_subscriber_reconnect_before_pubrec(broker):
    _qos2_sub_reconnect(broker(), cut_after_pubrec=False)


def test_qos2_subscriber_reconnect_after_pubrec(broker):
    _qos2_sub_reconnect(broker(), cut_after_pubrec=True)
