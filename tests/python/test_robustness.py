"""Bad input and limits: every protocol violation closes only the offending connection (with
its will published), the packet size limit, and a fuzz run of many connections writing random
and truncated bytes while a normal publisher/subscriber pair loses nothing.
"""

import os
import random
import socket
import struct
import threading
import time

import pytest

import mqtt_raw as raw
from mqtt_clients import paho


class Bystanders:
    """A publisher/subscriber pair that must keep working whatever other clients do."""

    def __init__(self, b, topic="by/t"):
        self.topic, self.n = topic, 0
        self.expected = []
        self.sub = paho(b, "bystander-sub")
        assert self.sub.subscribe(topic, 1) == [1]
        self.pub = paho(b, "bystander-pub")

    def check(self):
        """One more message through the pair; everything the pair saw so far is as expected."""
        self.n += 1
        self.expect_also(f"b{self.n}".encode())
        self.pub.publish(self.topic, self.expected[-1], 1)
        got = self.sub.inbox.wait_for(len(self.expected))
        assert [m.payload for m in got] == self.expected

    def expect_also(self, payload: bytes):
        """A message another client publishes to the pair's topic."""
        self.expected.append(payload)

    def close(self):
        self.pub.disconnect()
        self.sub.disconnect()


def test_protocol_violations_close_only_that_connection(broker):
    b = broker()
    by = Bystanders(b)
    watch = paho(b, "viol-watch")
    assert watch.subscribe("viol/#", 1) == [1]
    for i, (name, data) in enumerate(raw.PROTOCOL_VIOLATIONS.items()):
        c, _ = raw.raw_session(b.host, b.port, f"viol-{i}", will=(f"viol/{name}", b"w", 1, False))
        c.send(data)
        assert c.expect_closed() == [], name
        got = watch.inbox.wait_for(i + 1)
        assert got[i].topic == f"viol/{name}", f"no will after {name}: {got}"
        by.check()
    watch.inbox.expect_exactly(len(raw.PROTOCOL_VIOLATIONS), settle=0.3)
    by.close()
    watch.disconnect()


@pytest.mark.parametrize("data", [
    b"\x00", b"\xff" * 8, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    raw.publish("a", b"x"), raw.PINGREQ_BYTES, raw.subscribe(1, ("a", 0)),
    b"\x10\xff\xff\xff\xff\x00", b"\x10\x00",
], ids=["nul", "ff", "http", "publish", "pingreq", "subscribe", "bad-length", "empty-connect"])
def test_junk_before_connect_closes_without_connack(broker, data):
    b = broker()
    by = Bystanders(b)
    c = raw.RawClient(b.host, b.port)
    c.send(data)
    assert c.expect_closed() == []
    by.check()
    by.close()


def test_connect_cut_short_waits_then_closes_on_eof(broker):
    b = broker()
    by = Bystanders(b)
    c = raw.RawClient(b.host, b.port)
    c.send(raw.connect("cut-short")[:9])
    c.expect_nothing(0.5)  # incomplete is not malformed: the broker waits for the rest
    by.check()
    c.sock.shutdown(socket.SHUT_WR)
    assert c.expect_closed() == []
    by.check()
    by.close()


@pytest.mark.parametrize("topic_filter", ["a/#/b", "a#", "a+", "a/+b"])
def test_invalid_topic_filter_refused(broker, topic_filter):
    """[MQTT-4.7.1-2/3]: a broker either closes the connection or answers SUBACK 0x80; either
    way the filter must never match anything."""
    b = broker()
    c, _ = raw.raw_session(b.host, b.port, "badfilter")
    c.send(raw.subscribe(1, (topic_filter, 1)))
    try:
        reply = c.read(3.0)
    except raw.Closed:
        return
    assert reply.ptype == raw.SUBACK and reply.granted == [0x80], reply
    pub = paho(b, "badfilter-pub")
    for t in ("a/x/b", "a", "ab", "a/b", "a/+b"):
        pub.publish(t, b"x", 1)
    c.expect_nothing(0.5)
    pub.disconnect()


def test_max_packet_size(broker):
    """limits.max_packet_size = 1024 (Mosquitto: max_packet_size 1024)."""
    b = broker(config={"limits": {"max_packet_size": 1024}})
    by = Bystanders(b, "big/t")
    by.check()
    ok, _ = raw.raw_session(b.host, b.port, "big-ok")
    fits = b"f" * (1024 - 2 - 2 - len("big/t") - 2 - 3)  # whole packet: 3 + 2+5 + 2 + payload
    assert len(raw.publish("big/t", fits, qos=1, pid=1)) <= 1024
    ok.send(raw.publish("big/t", fits, qos=1, pid=1))
    assert ok.expect(raw.PUBACK).pid == 1
    by.expect_also(fits)

    big, _ = raw.raw_session(b.host, b.port, "big-bad")
    big.send(raw.publish("big/t", b"x" * 2000, qos=1, pid=2))
    assert big.expect_closed() == [], "oversized packet: no PUBACK, connection closed"
    by.check()  # the pair saw nothing of it and still works
    assert all(len(m.payload) < 2000 for m in by.sub.inbox.messages)
    ok.send(raw.PINGREQ_BYTES)
    ok.expect(raw.PINGRESP)
    by.close()


# ------------------------------------------------------------------------------------- fuzz

FUZZ_SECONDS = float(os.environ.get("RINGMQ_FUZZ_SECONDS", "10"))
FUZZ_CONNECTIONS = 50
PAIR_MESSAGES = 1000


def _fuzz_payload(rng: random.Random) -> tuple:
    """(kind, bytes) for one fuzz connection."""
    cid = f"fz-{rng.getrandbits(48):012x}"
    will = (f"fzw/{cid}", rng.randbytes(rng.randrange(0, 64)), rng.randrange(3), rng.random() < .5)
    conn = raw.connect(cid, clean=rng.random() < 0.7, keepalive=rng.randrange(0, 30),
                       will=will if rng.random() < 0.5 else None)
    garbage = rng.randbytes(rng.randrange(1, 2048))
    kind = rng.choice(["garbage", "truncated-connect", "connect-then-garbage", "huge-length",
                       "connect-then-huge-length", "bitflipped-connect", "connect-sub-truncated",
                       "slow-connect"])
    if kind == "garbage":
        data = garbage
    elif kind in ("truncated-connect", "slow-connect"):
        data = conn[:rng.randrange(1, len(conn))]
    elif kind == "connect-then-garbage":
        data = conn + garbage
    elif kind == "huge-length":
        data = bytes([rng.randrange(256)]) + b"\xff\xff\xff\x7f" + garbage[:100]
    elif kind == "connect-then-huge-length":
        data = conn + bytes([rng.choice([0x30, 0x32, 0x82, 0x62])]) + b"\xff\xff\xff\x7f" + garbage
    elif kind == "bitflipped-connect":
        flipped = bytearray(conn)
        for _ in range(rng.randrange(1, 4)):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        data = bytes(flipped)
    else:  # a subscriber to '#' that never reads, then a truncated PUBLISH
        data = conn + raw.subscribe(1, ("#", rng.randrange(3))) + raw.publish(
            "fzp/x", garbage, qos=1, pid=9)[:rng.randrange(2, 40)]
    return kind, data


def _fuzz_worker(host, port, rng, stop, stats, lock):
    while not stop.is_set():
        kind, data = _fuzz_payload(rng)
        try:
            s = socket.create_connection((host, port), timeout=2)
        except OSError as e:
            with lock:
                stats["connect_errors"] = stats.get("connect_errors", 0) + 1
                stats["last_connect_error"] = repr(e)
            time.sleep(0.05)
            continue
        try:
            if kind == "slow-connect":  # byte by byte, then silence
                for byte in data:
                    s.sendall(bytes([byte]))
                    time.sleep(0.01)
            else:
                s.sendall(data)
            s.settimeout(rng.choice([0.01, 0.1, 0.3]))
            while s.recv(4096):  # drain until the broker closes or we lose patience
                pass
        except OSError:
            pass
        finally:
            if rng.random() < 0.5:  # half of them reset instead of a FIN
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        with lock:
            stats[kind] = stats.get(kind, 0) + 1


def test_fuzz_while_pair_exchanges_without_loss(broker):
    b = broker()
    seed = int(os.environ.get("RINGMQ_FUZZ_SEED", time.time_ns() % 2**32))
    sub = paho(b, "fz-pair-sub")
    assert sub.subscribe("fz/pair", 1) == [1]
    pub = paho(b, "fz-pair-pub")
    stop, lock, stats = threading.Event(), threading.Lock(), {}
    workers = [threading.Thread(target=_fuzz_worker, daemon=True,
                                args=(b.host, b.port, random.Random(seed + i), stop, stats, lock))
               for i in range(FUZZ_CONNECTIONS)]
    for w in workers:
        w.start()
    start = time.monotonic()
    infos = []
    for i in range(PAIR_MESSAGES):  # spread over the whole fuzz window
        time.sleep(max(0.0, start + i * FUZZ_SECONDS / PAIR_MESSAGES - time.monotonic()))
        infos.append(pub.publish("fz/pair", str(i).encode(), 1, wait=False))
    time.sleep(max(0.0, start + FUZZ_SECONDS - time.monotonic()))
    stop.set()
    for w in workers:
        w.join(5)
    note = f"seed={seed} (RINGMQ_FUZZ_SEED), stats={stats}"

    b.assert_alive()
    got = sub.inbox.expect_exactly(PAIR_MESSAGES, timeout=20)
    payloads = [int(m.payload) for m in got]
    assert payloads == list(range(PAIR_MESSAGES)), f"loss or reorder; {note}"
    assert all(info.is_published() for info in infos), note
    fuzzed = sum(v for k, v in stats.items() if not k.startswith(("connect_err", "last_")))
    assert fuzzed >= 5 * FUZZ_CONNECTIONS, f"too few fuzz connections ran; {note}"
    assert stats.get("connect_errors", 0) <= fuzzed // 100, f"broker refused connections; {note}"

    fresh = paho(b, "fz-after")  # still accepting new clients, and routing for them
    assert fresh.subscribe("fz/after", 1) == [1]
    fresh.publish("fz/after", b"alive", 1)
    (m,) = fresh.inbox.expect_exactly(1)
    assert m.payload == b"alive"
    for c in (fresh, pub, sub):
        c.disconnect()
