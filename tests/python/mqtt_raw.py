"""Hand-built MQTT 3.1 / 3.1.1 packets over a plain TCP socket.

Role: lets a test say exactly which bytes reach the broker and read exactly which bytes come
back (CONNACK return codes, DUP flags, PUBREL resends, malformed input). It owns only the
packet builders, a minimal reply parser and a socket wrapper whose every read has a timeout.
It must never hide a protocol detail the broker is being tested on: no automatic acks, no
retries, no reconnects.
"""

import socket
import struct
import time
from dataclasses import dataclass
from typing import Optional

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

PROTO_V31 = (b"MQIsdp", 3)
PROTO_V311 = (b"MQTT", 4)


def encode_len(n: int) -> bytes:
    """Variable-length 'remaining length' (MQTT 3.1.1 section 2.2.3)."""
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_str(s) -> bytes:
    b = s.encode() if isinstance(s, str) else bytes(s)
    return struct.pack("!H", len(b)) + b


def packet(ptype: int, flags: int, body: bytes) -> bytes:
    return bytes([(ptype << 4) | flags]) + encode_len(len(body)) + body


def connect(client_id="", clean=True, keepalive=60, proto=PROTO_V311, will=None,
            username=None, password=None) -> bytes:
    """CONNECT. `will` is (topic, payload, qos, retain) or None."""
    name, level = proto
    flags = 0x02 if clean else 0
    payload = mqtt_str(client_id)
    if will is not None:
        w_topic, w_payload, w_qos, w_retain = will
        flags |= 0x04 | (w_qos << 3) | (0x20 if w_retain else 0)
        payload += mqtt_str(w_topic) + mqtt_str(w_payload)
    if username is not None:
        flags |= 0x80
        payload += mqtt_str(username)
    if password is not None:
        flags |= 0x40
        payload += mqtt_str(password)
    body = mqtt_str(name) + bytes([level, flags]) + struct.pack("!H", keepalive) + payload
    return packet(CONNECT, 0, body)


def publish(topic, payload=b"", qos=0, retain=False, pid=None, dup=False) -> bytes:
    flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = mqtt_str(topic)
    if qos:
        body += struct.pack("!H", pid)
    payload = payload.encode() if isinstance(payload, str) else payload
    return packet(PUBLISH, flags, body + payload)


def subscribe(pid: int, *filters) -> bytes:
    """SUBSCRIBE; each filter is (topic_filter, max_qos)."""
    body = struct.pack("!H", pid)
    for topic, qos in filters:
        body += mqtt_str(topic) + bytes([qos])
    return packet(SUBSCRIBE, 0x02, body)


def unsubscribe(pid: int, *topics) -> bytes:
    return packet(UNSUBSCRIBE, 0x02, struct.pack("!H", pid) + b"".join(map(mqtt_str, topics)))


def ack(ptype: int, pid: int) -> bytes:
    """PUBACK / PUBREC / PUBREL / PUBCOMP; PUBREL carries the fixed flags 0b0010."""
    return packet(ptype, 0x02 if ptype == PUBREL else 0, struct.pack("!H", pid))


PINGREQ_BYTES = b"\xc0\x00"
DISCONNECT_BYTES = b"\xe0\x00"


@dataclass
class Packet:
    ptype: int
    flags: int
    body: bytes

    # PUBLISH accessors
    @property
    def qos(self) -> int:
        return (self.flags >> 1) & 3

    @property
    def dup(self) -> bool:
        return bool(self.flags & 0x08)

    @property
    def retain(self) -> bool:
        return bool(self.flags & 0x01)

    @property
    def topic(self) -> str:
        (n,) = struct.unpack_from("!H", self.body, 0)
        return self.body[2:2 + n].decode()

    @property
    def pid(self) -> Optional[int]:
        if self.ptype == PUBLISH:
            if self.qos == 0:
                return None
            (n,) = struct.unpack_from("!H", self.body, 0)
            return struct.unpack_from("!H", self.body, 2 + n)[0]
        return struct.unpack_from("!H", self.body, 0)[0]

    @property
    def payload(self) -> bytes:
        (n,) = struct.unpack_from("!H", self.body, 0)
        return self.body[2 + n + (2 if self.qos else 0):]

    # CONNACK / SUBACK accessors
    @property
    def session_present(self) -> bool:
        return bool(self.body[0] & 1)

    @property
    def return_code(self) -> int:
        return self.body[1]

    @property
    def granted(self) -> list:
        return list(self.body[2:])


class Closed(Exception):
    """The broker closed (or reset) the connection."""


class RawClient:
    """One TCP connection speaking hand-built MQTT. Every read has a deadline."""

    def __init__(self, host: str, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data: bytes):
        self.sock.sendall(data)

    def _fill(self, deadline: float):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no complete packet from the broker in time")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no complete packet from the broker in time") from None
        except (ConnectionResetError, BrokenPipeError) as e:
            raise Closed(str(e)) from None
        if not chunk:
            raise Closed("EOF")
        self.buf += chunk

    def _try_parse(self) -> Optional[Packet]:
        if len(self.buf) < 2:
            return None
        mult, length, i = 1, 0, 1
        while True:
            if i >= len(self.buf):
                return None
            b = self.buf[i]
            length += (b & 0x7F) * mult
            mult *= 128
            i += 1
            if not b & 0x80:
                break
            if i > 4:
                raise AssertionError(f"broker sent a malformed remaining length: {self.buf[:6]!r}")
        if len(self.buf) < i + length:
            return None
        first = self.buf[0]
        pkt = Packet(first >> 4, first & 0x0F, self.buf[i:i + length])
        self.buf = self.buf[i + length:]
        return pkt

    def read(self, timeout: float = 5.0) -> Packet:
        """Next packet; TimeoutError if none arrives in time, Closed if the broker closed."""
        deadline = time.monotonic() + timeout
        while True:
            pkt = self._try_parse()
            if pkt is not None:
                return pkt
            self._fill(deadline)

    def expect(self, ptype: int, timeout: float = 5.0) -> Packet:
        pkt = self.read(timeout)
        assert pkt.ptype == ptype, f"expected packet type {ptype}, got {pkt}"
        return pkt

    def expect_nothing(self, within: float):
        """Assert no packet arrives (and the connection stays open) for `within` seconds."""
        try:
            pkt = self.read(within)
        except TimeoutError:
            return
        raise AssertionError(f"expected silence for {within}s, got {pkt}")

    def expect_closed(self, timeout: float = 5.0) -> list:
        """Wait until the broker closes the connection; return packets received before it."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                got.append(self.read(max(0.0, deadline - time.monotonic())))
            except Closed:
                return got
            except TimeoutError:
                raise AssertionError(
                    f"broker did not close the connection within {timeout}s (got {got})") from None

    def connect(self, client_id="", clean=True, keepalive=60, **kw) -> Packet:
        """CONNECT and return the CONNACK (asserting only that it is a CONNACK)."""
        self.send(connect(client_id, clean, keepalive, **kw))
        return self.expect(CONNACK)

    def subscribe(self, pid: int, *filters) -> list:
        self.send(subscribe(pid, *filters))
        suback = self.expect(SUBACK)
        assert suback.pid == pid
        return suback.granted

    def kill(self):
        """Abortive close: RST instead of FIN, as a crashed client or a cut cable looks."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.sock.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def raw_session(host, port, client_id, clean=True, keepalive=60, **kw):
    """Connected RawClient plus its CONNACK; asserts the CONNACK accepted the connection."""
    c = RawClient(host, port)
    ack_pkt = c.connect(client_id, clean, keepalive, **kw)
    assert ack_pkt.return_code == 0, f"CONNECT refused with {ack_pkt.return_code:#04x}"
    return c, ack_pkt


def _bad_publish(topic: bytes) -> bytes:
    return packet(PUBLISH, 0, struct.pack("!H", len(topic)) + topic + b"x")


# Packets that break MQTT 3.1.1 after a valid CONNECT; each must close the connection (and so
# publish the will) [MQTT-4.8.0-1]. Second CONNECT is kept apart: Mosquitto handles it unlike
# the rest (no will).
PROTOCOL_VIOLATIONS = {
    "publish-qos3": packet(PUBLISH, 0x06, mqtt_str("a") + b"\x00\x01x"),
    "publish-wildcard-topic": publish("a/#", b"x"),
    "publish-empty-topic": publish("", b"x"),
    "publish-pid0": publish("a", b"x", qos=1, pid=0),
    "publish-invalid-utf8": _bad_publish(b"a/\xff\xfe"),
    "publish-nul-in-topic": _bad_publish(b"a/\x00b"),
    "publish-utf16-surrogate": _bad_publish(b"a/\xed\xa0\x80"),
    "publish-topic-longer-than-packet": packet(PUBLISH, 0, b"\x00\x10ab"),
    "subscribe-bad-flags": packet(SUBSCRIBE, 0, b"\x00\x01" + mqtt_str("a") + b"\x00"),
    "subscribe-qos3": subscribe(1, ("a", 3)),
    "subscribe-no-filters": packet(SUBSCRIBE, 0x02, b"\x00\x01"),
    "subscribe-pid0": subscribe(0, ("a", 0)),
    "unsubscribe-no-filters": packet(UNSUBSCRIBE, 0x02, b"\x00\x01"),
    "pubrel-bad-flags": packet(PUBREL, 0, b"\x00\x01"),
    "connack-from-client": b"\x20\x02\x00\x00",
    "disconnect-bad-flags": b"\xe1\x00",
    "reserved-type-0": b"\x00\x00",
    "reserved-type-15": b"\xf0\x00",
    "length-over-4-bytes": b"\x30\xff\xff\xff\xff\x01",
}
