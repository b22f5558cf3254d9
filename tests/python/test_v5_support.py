"""Helpers for the MQTT 5 suites (test_v5_*.py); this module holds no tests of its own.

Role: hand-built MQTT 5 packets (properties included) on top of `mqtt_raw.RawClient`, a parser
for what the broker sends back, and a paho-mqtt v5 client that keeps each message's
properties. Like mqtt_raw it never acknowledges, retries or reconnects on its own: a raw
client sends exactly the bytes a test asks for.
"""

import struct
import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

import mqtt_raw as raw

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, DISCONNECT, AUTH = 8, 9, 10, 11, 14, 15

# Property identifiers (MQTT 5 section 2.2.2.2) and how each value is encoded.
PFI, EXPIRY, CONTENT_TYPE, RESPONSE_TOPIC, CORRELATION = 0x01, 0x02, 0x03, 0x08, 0x09
SUB_ID, SESSION_EXPIRY, ASSIGNED_ID, SERVER_KEEPALIVE = 0x0B, 0x11, 0x12, 0x13
REQ_RESPONSE, RESPONSE_INFO, REASON = 0x19, 0x1A, 0x1F
RECEIVE_MAX, ALIAS_MAX, ALIAS, MAX_QOS, RETAIN_AVAIL = 0x21, 0x22, 0x23, 0x24, 0x25
USER, MAX_PACKET, WILDCARD, SUB_IDS_AVAIL, SHARED_AVAIL = 0x26, 0x27, 0x28, 0x29, 0x2A
KIND = {
    PFI: "byte", EXPIRY: "u32", CONTENT_TYPE: "str", RESPONSE_TOPIC: "str", CORRELATION: "bin",
    SUB_ID: "varint", SESSION_EXPIRY: "u32", ASSIGNED_ID: "str", SERVER_KEEPALIVE: "u16",
    0x15: "str", 0x16: "bin", 0x17: "byte", 0x18: "u32", REQ_RESPONSE: "byte",
    RESPONSE_INFO: "str", 0x1C: "str", REASON: "str", RECEIVE_MAX: "u16", ALIAS_MAX: "u16",
    ALIAS: "u16", MAX_QOS: "byte", RETAIN_AVAIL: "byte", USER: "pair", MAX_PACKET: "u32",
    WILDCARD: "byte", SUB_IDS_AVAIL: "byte", SHARED_AVAIL: "byte",
}


def varint(n: int) -> bytes:
    return raw.encode_len(n)


def prop(pid: int, value) -> bytes:
    """One property, encoded by its kind; `value` is int, str, bytes or a (key, value) pair."""
    kind = KIND[pid]
    if kind == "byte":
        body = bytes([value])
    elif kind == "u16":
        body = struct.pack("!H", value)
    elif kind == "u32":
        body = struct.pack("!I", value)
    elif kind == "varint":
        body = varint(value)
    elif kind in ("str", "bin"):
        body = raw.mqtt_str(value)
    else:
        body = raw.mqtt_str(value[0]) + raw.mqtt_str(value[1])
    return bytes([pid]) + body


def props(*items) -> bytes:
    """A property block: varint length then the properties, from (id, value) pairs."""
    body = b"".join(prop(pid, v) for pid, v in items)
    return varint(len(body)) + body


def connect(client_id: str, clean=True, keepalive=60, properties=b"\x00") -> bytes:
    flags = 0x02 if clean else 0
    body = raw.mqtt_str("MQTT") + bytes([5, flags]) + struct.pack("!H", keepalive)
    return raw.packet(CONNECT, 0, body + properties + raw.mqtt_str(client_id))


def publish(topic, payload=b"", qos=0, pid=None, properties=b"\x00", retain=False) -> bytes:
    body = raw.mqtt_str(topic)
    if qos:
        body += struct.pack("!H", pid)
    body += properties + (payload.encode() if isinstance(payload, str) else payload)
    return raw.packet(PUBLISH, (qos << 1) | int(retain), body)


def subscribe(pid: int, topic: str, qos=1, sub_id=None) -> bytes:
    p = props((SUB_ID, sub_id)) if sub_id else b"\x00"
    body = struct.pack("!H", pid) + p + raw.mqtt_str(topic) + bytes([qos])
    return raw.packet(SUBSCRIBE, 0x02, body)


def unsubscribe(pid: int, topic: str) -> bytes:
    return raw.packet(UNSUBSCRIBE, 0x02, struct.pack("!H", pid) + b"\x00" + raw.mqtt_str(topic))


def ack(ptype: int, pid: int) -> bytes:
    return raw.packet(ptype, 0x02 if ptype == PUBREL else 0, struct.pack("!H", pid))


def disconnect(code=0, properties=b"\x00") -> bytes:
    return raw.packet(DISCONNECT, 0, bytes([code]) + properties)


def read_varint(b: bytes, i: int):
    mult, n = 1, 0
    while True:
        byte = b[i]
        n += (byte & 0x7F) * mult
        mult *= 128
        i += 1
        if not byte & 0x80:
            return n, i


def parse_props(b: bytes, i: int):
    """Properties at b[i:] -> (dict id -> value or list for repeatable ones, next index)."""
    length, i = read_varint(b, i)
    end, out = i + length, {}
    while i < end:
        pid = b[i]
        i += 1
        kind = KIND[pid]
        if kind == "byte":
            v, i = b[i], i + 1
        elif kind == "u16":
            v, i = struct.unpack_from("!H", b, i)[0], i + 2
        elif kind == "u32":
            v, i = struct.unpack_from("!I", b, i)[0], i + 4
        elif kind == "varint":
            v, i = read_varint(b, i)
        else:
            n = struct.unpack_from("!H", b, i)[0]
            v, i = b[i + 2:i + 2 + n], i + 2 + n
            if kind == "str":
                v = v.decode()
            if kind == "pair":
                n2 = struct.unpack_from("!H", b, i)[0]
                v, i = (v.decode(), b[i + 2:i + 2 + n2].decode()), i + 2 + n2
        if pid in (USER, SUB_ID):
            out.setdefault(pid, []).append(v)
        else:
            out[pid] = v
    return out, end


@dataclass
class Pub:
    topic: str
    qos: int
    retain: bool
    pid: int
    props: dict
    payload: bytes


def parse_publish(pkt: raw.Packet) -> Pub:
    b = pkt.body
    n = struct.unpack_from("!H", b, 0)[0]
    topic, i = b[2:2 + n].decode(), 2 + n
    qos, pid = (pkt.flags >> 1) & 3, 0
    if qos:
        pid, i = struct.unpack_from("!H", b, i)[0], i + 2
    p, i = parse_props(b, i)
    return Pub(topic, qos, bool(pkt.flags & 1), pid, p, b[i:])


def reason_of(pkt: raw.Packet) -> int:
    """Reason code of a v5 DISCONNECT (0 when the body is empty) or of a CONNACK."""
    if pkt.ptype == CONNACK:
        return pkt.body[1]
    return pkt.body[0] if pkt.body else 0


def connack_props(pkt: raw.Packet) -> dict:
    assert pkt.ptype == CONNACK, pkt
    return parse_props(pkt.body, 2)[0]


def raw5(broker, client_id, clean=True, keepalive=60, properties=b"\x00"):
    """A connected raw v5 client and its CONNACK properties."""
    c = raw.RawClient(broker.host, broker.port)
    c.send(connect(client_id, clean, keepalive, properties))
    ack_pkt = c.expect(CONNACK)
    assert reason_of(ack_pkt) == 0, f"CONNECT refused: {reason_of(ack_pkt):#04x}"
    return c, ack_pkt


def read_publishes(c: raw.RawClient, n: int, timeout=5.0) -> list:
    """The next n PUBLISH packets (other packets in between are skipped)."""
    out, deadline = [], time.monotonic() + timeout
    while len(out) < n:
        pkt = c.read(max(0.01, deadline - time.monotonic()))
        if pkt.ptype == PUBLISH:
            out.append(parse_publish(pkt))
    return out


def drain_publishes(c: raw.RawClient, quiet=0.5) -> list:
    """Every PUBLISH until the connection is quiet for `quiet` seconds."""
    out = []
    while True:
        try:
            pkt = c.read(quiet)
        except TimeoutError:
            return out
        if pkt.ptype == PUBLISH:
            out.append(parse_publish(pkt))


@dataclass
class Msg5:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    props: dict = field(default_factory=dict)


class Paho5:
    """A paho-mqtt v5 client on its network thread that keeps every message's properties."""

    def __init__(self, broker, client_id, clean=True, keepalive=60, will=None, **connect_props):
        self.broker, self.clean, self.keepalive = broker, clean, keepalive
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5, reconnect_on_failure=False)
        if will is not None:
            topic, payload, qos, will_props = will
            wp = Properties(PacketTypes.WILLMESSAGE)
            for k, v in will_props.items():
                setattr(wp, k, v)
            self.client.will_set(topic, payload, qos, False, properties=wp)
        self.props = Properties(PacketTypes.CONNECT)
        for k, v in connect_props.items():
            setattr(self.props, k, v)
        self.msgs, self.cond = [], threading.Condition()
        self.connected, self.connack_props, self.session_present = threading.Event(), None, None
        self.disconnect_rc = None
        self._subacks = {}
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect

    def _on_connect(self, _c, _u, flags, rc, properties):
        self.connack_props, self.session_present = properties, bool(flags.session_present)
        self.connack_rc = rc.value
        self.connected.set()

    def _on_disconnect(self, _c, _u, _f, rc, _p):
        self.disconnect_rc = rc.value

    def _on_message(self, _c, _u, m):
        p = m.properties
        d = {}
        for name in ("UserProperty", "SubscriptionIdentifier", "MessageExpiryInterval",
                     "ContentType", "ResponseTopic", "CorrelationData", "PayloadFormatIndicator"):
            if hasattr(p, name):
                d[name] = getattr(p, name)
        with self.cond:
            self.msgs.append(Msg5(m.topic, bytes(m.payload), m.qos, bool(m.retain), d))
            self.cond.notify_all()

    def _on_subscribe(self, _c, _u, mid, codes, _p):
        with self.cond:
            self._subacks[mid] = [c.value for c in codes]
            self.cond.notify_all()

    def connect(self, timeout=5.0) -> "Paho5":
        self.client.connect(self.broker.host, self.broker.port, self.keepalive,
                            clean_start=self.clean, properties=self.props)
        self.client.loop_start()
        assert self.connected.wait(timeout), "no CONNACK"
        assert self.connack_rc == 0, f"refused: {self.connack_rc}"
        return self

    def subscribe(self, topic, qos=1, sub_id=None, timeout=5.0) -> list:
        sp = None
        if sub_id is not None:
            sp = Properties(PacketTypes.SUBSCRIBE)
            sp.SubscriptionIdentifier = sub_id
        _, mid = self.client.subscribe(topic, options=SubscribeOptions(qos=qos), properties=sp)
        deadline = time.monotonic() + timeout
        with self.cond:
            while mid not in self._subacks:
                left = deadline - time.monotonic()
                assert left > 0, f"no SUBACK for {topic}"
                self.cond.wait(left)
            return self._subacks.pop(mid)

    def publish(self, topic, payload, qos=1, retain=False, timeout=5.0, **publish_props):
        pp = None
        if publish_props:
            pp = Properties(PacketTypes.PUBLISH)
            for k, v in publish_props.items():
                setattr(pp, k, v)
        info = self.client.publish(topic, payload, qos, retain, properties=pp)
        if qos:
            info.wait_for_publish(timeout)
            assert info.is_published(), f"publish to {topic} not acknowledged"
        return info

    def wait_for(self, n, timeout=5.0) -> list:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.msgs) < n:
                left = deadline - time.monotonic()
                assert left > 0, f"expected {n} messages, got {len(self.msgs)}: {self.msgs[:5]}"
                self.cond.wait(left)
            return list(self.msgs)

    def settle(self, quiet=0.5) -> list:
        """All messages once none arrived for `quiet` seconds."""
        while True:
            with self.cond:
                n = len(self.msgs)
            time.sleep(quiet)
            with self.cond:
                if len(self.msgs) == n:
                    return list(self.msgs)

    def disconnect(self):
        self.client.disconnect()
        self.client.loop_stop()

    def kill(self):
        """Drop the socket without DISCONNECT."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()
