"""Retained messages: store, replace, delete by empty payload, retain flag on delivery,
QoS of retained delivery, re-subscribe, and wildcard subscribers over many topics.
"""

import mqtt_raw as raw
from mqtt_clients import MosquittoSub, mosquitto_pub, paho


def _retained_on_subscribe(b, topic_filter, qos=1, expect=1, cid="ret-sub"):
    sub = paho(b, cid)
    assert sub.subscribe(topic_filter, qos) == [qos]
    got = sub.inbox.expect_exactly(expect)
    sub.disconnect()
    return got


def test_retained_store_replace_delete(broker):
    b = broker()
    pub = paho(b, "ret-pub")
    pub.publish("ret/t", b"first", 1, retain=True)
    (m,) = _retained_on_subscribe(b, "ret/t")
    assert (m.topic, m.payload, m.retain, m.qos) == ("ret/t", b"first", True, 1)

    pub.publish("ret/t", b"second", 1, retain=True)
    (m,) = _retained_on_subscribe(b, "ret/t")
    assert (m.payload, m.retain) == (b"second", True)

    pub.publish("ret/t", b"", 1, retain=True)  # empty payload deletes [MQTT-3.3.1-10]
    assert _retained_on_subscribe(b, "ret/t", expect=0) == []
    pub.disconnect()


def test_retained_delete_is_forwarded_to_live_subscribers(broker):
    """The empty retained PUBLISH still reaches current subscribers (as a normal message)."""
    b = broker()
    live = paho(b, "ret-live")
    live.subscribe("retdel/t", 1)
    pub = paho(b, "ret-del-pub")
    pub.publish("retdel/t", b"keep", 1, retain=True)
    pub.publish("retdel/t", b"", 1, retain=True)
    got = live.inbox.expect_exactly(2)
    assert [(m.payload, m.retain) for m in got] == [(b"keep", False), (b"", False)]
    live.disconnect()
    pub.disconnect()


def test_live_delivery_has_retain_flag_clear(broker):
    """A retained publish forwarded to an existing subscription has RETAIN=0 [MQTT-3.3.1-9]."""
    b = broker()
    sub = paho(b, "ret-flag-sub")
    sub.subscribe("retflag/t", 1)
    pub = paho(b, "ret-flag-pub")
    pub.publish("retflag/t", b"x", 1, retain=True)
    (m,) = sub.inbox.expect_exactly(1)
    assert (m.payload, m.retain) == (b"x", False)
    pub.disconnect()
    sub.disconnect()


def test_retained_delivered_at_min_qos(broker):
    b = broker()
    pub = paho(b, "ret-qos-pub")
    pub.publish("retq/t", b"q2 retained", 2, retain=True)
    pub.disconnect()
    for sub_qos in (0, 1, 2):
        (m,) = _retained_on_subscribe(b, "retq/t", qos=sub_qos, cid=f"ret-qos-{sub_qos}")
        assert (m.payload, m.qos, m.retain) == (b"q2 retained", sub_qos, True)


def test_retained_resent_on_resubscribe(broker):
    """MQTT 3.1.1 [MQTT-3.8.4-3]: re-subscribing to the same filter re-sends retained messages."""
    b = broker()
    pub = paho(b, "resub-pub")
    pub.publish("resub/t", b"r", 1, retain=True)
    c, _ = raw.raw_session(b.host, b.port, "resub-raw")
    for pid in (1, 2):
        assert c.subscribe(pid, ("resub/t", 0)) == [0]
        p = c.expect(raw.PUBLISH)
        assert (p.topic, p.payload, p.retain, p.qos) == ("resub/t", b"r", True, 0)
    c.expect_nothing(0.5)
    pub.disconnect()


def test_wildcard_subscriber_gets_all_retained(broker):
    b = broker()
    pub = paho(b, "ret-many-pub")
    topics = [f"many/{i}/v" for i in range(30)]
    for t in topics:
        pub.publish(t, t.encode(), 1, retain=True)
    pub.publish("other/x", b"not matched", 1, retain=True)
    got = _retained_on_subscribe(b, "many/+/v", expect=30)
    assert sorted(m.topic for m in got) == sorted(topics)
    assert all(m.retain and m.payload == m.topic.encode() for m in got)
    pub.disconnect()


def test_retained_with_mosquitto_clients(broker):
    b = broker()
    mosquitto_pub(b, "cli/ret", "kept by the broker", qos=1, retain=True)
    sub = MosquittoSub(b, "cli/#", qos=1, count=1)
    assert sub.wait() == 0, sub.lines
    assert [(m.topic, m.payload, m.retain, m.qos) for m in sub.inbox.messages] == [
        ("cli/ret", b"kept by the broker", True, 1)]
