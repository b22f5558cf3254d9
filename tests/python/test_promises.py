"""Promises kept under pressure and abuse, with real clients against the real binary.

Role: each test is one broken promise found from outside (issue "Keep every promise"): no
acknowledged message lost, reason codes that reach the client, SIGHUP that kills nothing,
complete retained delivery, `$SYS` that clients cannot write, PUBCOMP for unknown ids, a
Subscription Identifier from a client refused, and no cap (and a quiet log) at the open-file
limit.
"""

import json
import os
import signal
import socket
import struct
import subprocess
import time

import paho.mqtt.client as mqtt
import pytest

import mqtt_raw as raw
from conftest import REPO, ringmq_only
from mqtt_clients import V5, paho

BENCH = REPO / "target" / "release" / "ringmq-bench"


# ------------------------------------------------------------------------- v5 raw packets

def varint(n: int) -> bytes:
    return raw.encode_len(n)


def connect5(client_id: str, clean=True, keepalive=60, props=b"") -> bytes:
    body = (raw.mqtt_str("MQTT") + bytes([5, 0x02 if clean else 0]) + struct.pack("!H", keepalive)
            + varint(len(props)) + props + raw.mqtt_str(client_id))
    return raw.packet(raw.CONNECT, 0, body)


def publish5(topic: str, payload: bytes, qos: int, pid: int, props=b"") -> bytes:
    body = raw.mqtt_str(topic) + (struct.pack("!H", pid) if qos else b"")
    return raw.packet(raw.PUBLISH, qos << 1, body + varint(len(props)) + props + payload)


def subscribe5(pid: int, topic: str, qos: int) -> bytes:
    body = struct.pack("!H", pid) + varint(0) + raw.mqtt_str(topic) + bytes([qos])
    return raw.packet(raw.SUBSCRIBE, 2, body)


def reason_of(pkt: raw.Packet) -> int:
    """Reason code of a v5 PUBACK/PUBREC/PUBCOMP (0 when omitted) or DISCONNECT."""
    if pkt.ptype == raw.DISCONNECT:
        return pkt.body[0] if pkt.body else 0
    return pkt.body[2] if len(pkt.body) > 2 else 0


def v5_session(b, client_id, clean=True, props=b""):
    c = raw.RawClient(b.host, b.port)
    c.send(connect5(client_id, clean, props=props))
    ack = c.expect(raw.CONNACK)
    assert ack.body[1] == 0, f"CONNACK {ack.body!r}"
    return c


def read_until(c: raw.RawClient, ptype: int, timeout=10.0) -> raw.Packet:
    deadline = time.monotonic() + timeout
    while True:
        p = c.read(max(0.01, deadline - time.monotonic()))
        if p.ptype == ptype:
            return p


# ------------------------------------------------------------------------------- the tests

@ringmq_only("ringmq's own load tool")
@pytest.mark.parametrize("shards", [1, 2])
def test_fan_in_qos1_loses_nothing_it_acknowledged(broker, shards):
    """100 QoS 1 publishers at full speed, window 16, into one subscriber: zero lost."""
    b = broker(shards=shards)
    out = subprocess.run(
        [str(BENCH), "fanin", "-p", str(b.port), "-c", "100", "-q", "1", "-I", "0",
         "--inflight", "16", "-s", "64", "--duration", "3", "--drain", "5", "--json"],
        capture_output=True, text=True, timeout=50)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    text = json.dumps(r)
    m = r["messages"]
    assert m["acked"] > 10_000, text
    assert m["lost"] == 0 and m["unique"] == m["expected"], text
    assert m["duplicates"] == 0, text


@ringmq_only("stuck_timeout is a ringmq setting")
def test_a_stuck_subscriber_is_disconnected_with_0x97_and_publishers_go_on(broker):
    b = broker(config={"limits": {"stuck_timeout": 2, "max_queued_messages": 20,
                                  "max_inflight": 5}})
    stuck = v5_session(b, "stuck-sub")
    stuck.send(subscribe5(1, "stuck/t", 1))
    read_until(stuck, raw.SUBACK)
    pub = paho(b, "stuck-pub")
    t0 = time.monotonic()
    # It receives up to its window and never acknowledges; the publisher is paused.
    infos = [pub.client.publish("stuck/t", b"x" * 10, qos=1) for _ in range(200)]
    disconnect = read_until(stuck, raw.DISCONNECT, timeout=10)
    waited = time.monotonic() - t0
    assert reason_of(disconnect) == 0x97
    assert 1.5 <= waited <= 6, f"disconnected after {waited:.1f} s (stuck_timeout 2 s)"
    for info in infos:
        info.wait_for_publish(10)
    assert all(i.is_published() for i in infos), "the publisher resumed: every PUBACK came"
    assert "no progress" in b.stderr() and b.stderr().count("stuck-sub") == 1, b.stderr()
    pub.disconnect()


@ringmq_only("DISCONNECT 0x93 is ringmq's Receive Maximum answer")
def test_disconnect_0x93_reaches_a_client_that_is_still_sending(broker):
    """The interoperability suite's receive-maximum case: the code arrives, not a reset."""
    b = broker(config={"limits": {"receive_maximum": 2}})
    c = v5_session(b, "recv-max")
    for pid in (1, 2, 3):
        c.send(publish5("rm/t", b"x", 2, pid))
    got = []
    sent_more = 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            c.send(raw.ack(raw.PUBREL, 100 + sent_more))  # keeps writing, as the suite does
            sent_more += 1
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            got.append(c.read(0.05))
        except TimeoutError:
            continue
        except raw.Closed as e:
            assert str(e) == "EOF", f"reset instead of a clean close after {got}"
            break
        if got[-1].ptype == raw.DISCONNECT:
            break
    assert got and got[-1].ptype == raw.DISCONNECT, got
    assert reason_of(got[-1]) == 0x93


def test_sighup_kills_nothing(broker):
    b = broker(shards=2)
    sub = paho(b, "hup-sub", clean=False)
    assert sub.subscribe("hup/t", 1) == [1]
    pub = paho(b, "hup-pub")
    for _ in range(3):
        b.proc.send_signal(signal.SIGHUP)
        time.sleep(0.2)
    b.assert_alive()
    pub.publish("hup/t", b"after", qos=1)
    assert [m.payload for m in sub.inbox.wait_for(1)] == [b"after"]
    assert sub.client.is_connected() and pub.client.is_connected()
    if b.kind == "ringmq":
        assert b.stderr().count("SIGHUP received") == 3, b.stderr()
    sub.disconnect()
    pub.disconnect()


@pytest.mark.parametrize("qos", [0, 1])
def test_every_large_retained_message_reaches_a_wildcard_subscriber(broker, qos):
    b = broker()
    pub = raw.RawClient(b.host, b.port)
    pub.connect("big-pub")
    body = b"R" * 900_000
    for i in range(20):
        pub.send(raw.publish(f"big/{i}", body, qos=1, retain=True, pid=i + 1))
        pub.expect(raw.PUBACK, timeout=10)
    sub = paho(b, "big-sub")
    assert sub.subscribe("big/#", qos) == [qos]
    got = sub.inbox.wait_for(20, timeout=30)
    assert sorted(m.topic for m in got) == sorted(f"big/{i}" for i in range(20))
    assert all(len(m.payload) == 900_000 for m in got)
    sub.disconnect()
    pub.close()


def test_fifty_thousand_retained_messages_all_reach_a_qos1_subscriber(broker):
    b = broker(shards=2)
    pub = raw.RawClient(b.host, b.port)
    pub.connect("many-pub")
    n = 50_000
    blob = b"".join(raw.publish(f"many/{i}", b"v%d" % i, retain=True) for i in range(n))
    pub.send(blob)
    big = b"B" * 900_000
    for i in range(20):
        pub.send(raw.publish(f"many/big/{i}", big, qos=1, retain=True, pid=i + 1))
        pub.expect(raw.PUBACK, timeout=10)
    sub = paho(b, "many-sub")
    assert sub.subscribe("#", 1) == [1]
    got = sub.inbox.wait_for(n + 20, timeout=45)
    topics = {m.topic for m in got}
    assert len(topics) == n + 20, f"{len(topics)} distinct of {n + 20}"
    sub.disconnect()
    pub.close()


def test_clients_cannot_write_sys(broker):
    b = broker()
    watch = paho(b, "sys-watch")
    assert watch.subscribe("$SYS/spoof/#", 1) == [1]
    # v3: acknowledged (3.1.1 has no way to refuse), but dropped: not delivered, not retained.
    v3 = paho(b, "sys-v3")
    v3.publish("$SYS/spoof/version", b"fake", qos=1, retain=True)
    # v5: refused with 0x87 Not authorized.
    v5 = raw.RawClient(b.host, b.port)
    v5.send(connect5("sys-v5"))
    v5.expect(raw.CONNACK)
    v5.send(publish5("$SYS/spoof/x", b"fake", 1, 9))
    ack = v5.expect(raw.PUBACK)
    if b.kind == "ringmq":
        assert reason_of(ack) == 0x87
    watch.inbox.expect_exactly(0, timeout=1)
    late = paho(b, "sys-late")
    late.subscribe("$SYS/spoof/#", 0)
    late.inbox.expect_exactly(0, timeout=1)
    # A will under $SYS is refused at CONNECT (3.1.1: 0x05 not authorized).
    w = raw.RawClient(b.host, b.port)
    w.send(raw.connect("sys-will", will=("$SYS/broker/version", b"x", 0, True)))
    if b.kind == "ringmq":
        assert w.expect(raw.CONNACK).return_code == 5
    for c in (watch, v3, late):
        c.disconnect()


def test_pubrel_for_an_unknown_id_is_answered_in_311(broker):
    b = broker()
    c, _ = raw.raw_session(b.host, b.port, "lost-pubcomp")
    c.send(raw.ack(raw.PUBREL, 77))
    comp = c.expect(raw.PUBCOMP)
    assert comp.pid == 77
    c.close()


def test_a_subscription_identifier_from_a_client_is_refused(broker):
    b = broker()
    c = v5_session(b, "subid-pub")
    c.send(publish5("sid/t", b"x", 1, 1, props=b"\x0b\x05"))
    got = c.expect_closed()
    assert got and got[-1].ptype == raw.DISCONNECT, got
    assert reason_of(got[-1]) == 0x82


def test_a_v5_empty_client_id_with_clean_start_0_is_assigned_one(broker):
    b = broker(shards=2)
    c = raw.RawClient(b.host, b.port)
    c.send(connect5("", clean=False))
    ack = c.expect(raw.CONNACK)
    assert ack.body[1] == 0, f"CONNACK reason {ack.body[1]:#04x}"
    assert b"\x12" in ack.body[2:], "Assigned Client Identifier (0x12) present"
    c.close()


@ringmq_only("ringmq's io_uring descriptor tables")
def test_the_open_file_limit_does_not_cap_connections_and_the_log_stays_quiet(broker):
    """With RLIMIT_NOFILE at 64 the broker holds 600 MQTT connections in one process:
    sockets are io_uring direct descriptors, and a shard opens another table of 64 when one
    fills. Nobody is refused, and the log says little."""
    b = broker(shards=2, wrap=("prlimit", "--nofile=64:64"))
    held = []
    for i in range(600):
        c = raw.RawClient(b.host, b.port)
        ack = c.connect(f"lim-{i}")
        assert ack.return_code == 0, f"client {i} refused"
        held.append(c)
    # Every one of them is still served.
    for c in held[::50]:
        c.send(raw.PINGREQ_BYTES)
        c.expect(raw.PINGRESP)
    b.assert_alive()
    lines = [ln for ln in b.stderr().splitlines() if "WARN" in ln or "ERROR" in ln]
    assert len(lines) <= 2, "\n".join(lines[:20])
    for c in held:
        c.close()
