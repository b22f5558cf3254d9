"""Will messages: published on abnormal close (socket killed, keepalive timeout, protocol
error) with the will's QoS and retain honoured; never after a clean DISCONNECT.
"""

import time

import pytest

import mqtt_raw as raw
from conftest import MOSQUITTO, ringmq_only
from mqtt_clients import paho


def _watcher(b, topic="will/#", qos=2, cid="will-watch"):
    w = paho(b, cid)
    assert w.subscribe(topic, qos) == [qos]
    return w


@pytest.mark.parametrize("will_qos", [0, 1, 2])
@pytest.mark.parametrize("will_retain", [False, True], ids=["plain", "retained"])
def test_will_on_killed_socket(broker, will_qos, will_retain):
    b = broker()
    watch = _watcher(b)
    c, _ = raw.raw_session(b.host, b.port, "dying",
                           will=("will/dying", b"gone", will_qos, will_retain))
    c.kill()
    (m,) = watch.inbox.expect_exactly(1)
    # Live delivery: QoS as published (watcher granted 2), RETAIN cleared [MQTT-3.3.1-9].
    assert (m.topic, m.payload, m.qos, m.retain) == ("will/dying", b"gone", will_qos, False)
    watch.disconnect()

    later = _watcher(b, cid="will-later")
    if will_retain:
        (m,) = later.inbox.expect_exactly(1)
        assert (m.topic, m.payload, m.qos, m.retain) == ("will/dying", b"gone", will_qos, True)
    else:
        later.inbox.expect_exactly(0)
    later.disconnect()


def test_will_on_socket_closed_without_disconnect(broker):
    """A FIN with no DISCONNECT packet is still an abnormal close."""
    b = broker()
    watch = _watcher(b)
    c, _ = raw.raw_session(b.host, b.port, "fin-close", will=("will/fin", b"fin", 1, False))
    c.close()
    (m,) = watch.inbox.expect_exactly(1)
    assert (m.topic, m.payload, m.qos) == ("will/fin", b"fin", 1)
    watch.disconnect()


def test_no_will_after_clean_disconnect(broker):
    b = broker()
    watch = _watcher(b)
    c, _ = raw.raw_session(b.host, b.port, "polite", will=("will/polite", b"x", 1, True))
    c.send(raw.DISCONNECT_BYTES)
    c.expect_closed()
    watch.inbox.expect_exactly(0, settle=1.0)
    watch.disconnect()
    later = _watcher(b, cid="will-later")
    later.inbox.expect_exactly(0)  # and nothing was retained either
    later.disconnect()


# Mosquitto 2.0.11 checks keepalives coarsely: with keepalive 1 s its will came after 4.6 to
# 6.0 s in five runs on this machine. ringmq must honour 1.5 x keepalive, so its bound is tight.
KEEPALIVE_WILL_BOUND_S = 7.5 if MOSQUITTO else 2.5


def test_will_on_keepalive_timeout(broker):
    """keepalive 1 s: the broker gives up after 1.5 s of silence [MQTT-3.1.2-24]."""
    b = broker()
    watch = _watcher(b)
    c, _ = raw.raw_session(b.host, b.port, "silent", keepalive=1,
                           will=("will/silent", b"timed out", 1, False))
    start = time.monotonic()
    (m,) = watch.inbox.expect_exactly(1, timeout=KEEPALIVE_WILL_BOUND_S + 1, settle=0)
    elapsed = time.monotonic() - start
    assert (m.topic, m.payload, m.qos) == ("will/silent", b"timed out", 1)
    assert 1.3 <= elapsed <= KEEPALIVE_WILL_BOUND_S, f"will after {elapsed:.2f}s, expected ~1.5s"
    assert c.expect_closed(2.0) == []
    watch.disconnect()


def test_keepalive_kept_by_pings_means_no_will(broker):
    b = broker()
    watch = _watcher(b)
    c, _ = raw.raw_session(b.host, b.port, "pinging", keepalive=1,
                           will=("will/pinging", b"x", 1, False))
    for _ in range(5):  # 2.5 s, well past 1.5 x keepalive, kept alive by PINGREQ
        time.sleep(0.5)
        c.send(raw.PINGREQ_BYTES)
        c.expect(raw.PINGRESP)
    watch.inbox.expect_exactly(0, settle=0.2)
    c.send(raw.DISCONNECT_BYTES)
    watch.disconnect()


# A representative few; test_robustness checks the will for every entry of the catalogue.
VIOLATIONS = ["publish-qos3", "subscribe-bad-flags", "reserved-type-0", "length-over-4-bytes"]


@pytest.mark.parametrize("violation", VIOLATIONS + [pytest.param(
    "second-connect", marks=ringmq_only("Mosquitto 2.0.11 drops the will on a second CONNECT"))])
def test_will_on_protocol_error(broker, violation):
    b = broker()
    watch = _watcher(b)
    c, _ = raw.raw_session(b.host, b.port, "violator", will=("will/violator", b"bad", 1, False))
    c.send(raw.connect("violator") if violation == "second-connect"
           else raw.PROTOCOL_VIOLATIONS[violation])
    assert c.expect_closed() == []
    (m,) = watch.inbox.expect_exactly(1)
    assert (m.topic, m.payload, m.qos) == ("will/violator", b"bad", 1)
    watch.disconnect()


def test_will_from_paho_client(broker):
    b = broker()
    watch = _watcher(b)
    p = paho(b, "paho-will", will=("will/paho", b"paho gone", 2, False))
    p.stop()  # network thread stopped and socket closed: no DISCONNECT sent
    (m,) = watch.inbox.expect_exactly(1)
    assert (m.topic, m.payload, m.qos) == ("will/paho", b"paho gone", 2)
    watch.disconnect()
