"""MQTT 5 CONNECT / CONNACK (sections 3.1 and 3.2): the "MUST" cases where 3.1.1 and 5.0 differ.

Hand-built bytes, so each case shows the exact reason code and that the connection closes
after a refusal, with Session Present 0 [MQTT-3.2.2-6]. These are the cases where a broker
that applies a 3.1.1 rule to a 5.0 client (or the reverse) goes wrong.
"""

import struct

import pytest

import mqtt_raw as raw

PROTO_V5 = (b"MQTT", 5)


def varint(n: int) -> bytes:
    return raw.encode_len(n)


def props(*items: bytes) -> bytes:
    body = b"".join(items)
    return varint(len(body)) + body


def u8(pid: int, v: int) -> bytes:
    return bytes([pid, v])


def u16(pid: int, v: int) -> bytes:
    return bytes([pid]) + struct.pack("!H", v)


def u32(pid: int, v: int) -> bytes:
    return bytes([pid]) + struct.pack("!I", v)


def s(pid: int, v) -> bytes:
    return bytes([pid]) + raw.mqtt_str(v)


def connect5(client_id="", clean=True, props_=b"\x00", will=None, will_flags=0,
             username=None, password=None, keepalive=60) -> bytes:
    """v5 CONNECT. `will` is (will_props, topic, payload, qos, retain); `will_flags` ORs raw
    flag bits in (to build flag combinations that are malformed on purpose)."""
    flags = (0x02 if clean else 0) | will_flags
    payload = raw.mqtt_str(client_id)
    if will is not None:
        w_props, topic, body, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += w_props + raw.mqtt_str(topic) + raw.mqtt_str(body)
    if username is not None:
        flags |= 0x80
        payload += raw.mqtt_str(username)
    if password is not None:
        flags |= 0x40
        payload += raw.mqtt_str(password)
    name, level = PROTO_V5
    head = raw.mqtt_str(name) + bytes([level, flags]) + struct.pack("!H", keepalive)
    return raw.packet(raw.CONNECT, 0, head + props_ + payload)


def connack_props(p: raw.Packet) -> dict:
    """The CONNACK's properties that these tests read (id -> value)."""
    body = p.body[2:]
    n, i, mult = 0, 0, 1
    while True:
        b = body[i]
        n += (b & 0x7F) * mult
        mult *= 128
        i += 1
        if not b & 0x80:
            break
    end, out = i + n, {}
    while i < end:
        pid = body[i]
        i += 1
        if pid in (0x12, 0x1F, 0x1A, 0x1C, 0x15):  # strings
            (ln,) = struct.unpack_from("!H", body, i)
            out[pid] = body[i + 2:i + 2 + ln].decode()
            i += 2 + ln
        elif pid == 0x26:  # user property: two strings
            (ln,) = struct.unpack_from("!H", body, i)
            (ln2,) = struct.unpack_from("!H", body, i + 2 + ln)
            i += 4 + ln + ln2
        elif pid in (0x11, 0x27):
            out[pid] = struct.unpack_from("!I", body, i)[0]
            i += 4
        elif pid in (0x13, 0x21, 0x22):
            out[pid] = struct.unpack_from("!H", body, i)[0]
            i += 2
        elif pid == 0x16:  # authentication data (binary)
            (ln,) = struct.unpack_from("!H", body, i)
            i += 2 + ln
        else:
            out[pid] = body[i]
            i += 1
    return out


def refused(b, data: bytes) -> int:
    """Sends `data` as the first packet; returns the CONNACK reason code after asserting that
    the broker then closed the connection and that Session Present is 0."""
    c = raw.RawClient(b.host, b.port)
    c.send(data)
    got = c.expect_closed()
    assert len(got) == 1 and got[0].ptype == raw.CONNACK, got
    assert got[0].session_present is False, "a refusal must say Session Present 0"
    return got[0].return_code


def accepted(b, data: bytes) -> tuple:
    c = raw.RawClient(b.host, b.port)
    c.send(data)
    ack = c.expect(raw.CONNACK)
    assert ack.return_code == 0, f"refused with 0x{ack.return_code:02x}"
    c.send(raw.PINGREQ_BYTES)
    c.expect(raw.PINGRESP)
    return c, ack


def test_empty_client_id_with_clean_start_0_is_assigned_an_id(broker):
    """[MQTT-3.1.3-7]: only 3.1.1 requires Clean Session 1 with an empty id."""
    b = broker()
    c, ack = accepted(b, connect5("", clean=False, props_=props(u32(0x11, 60))))
    assigned = connack_props(ack).get(0x12)
    assert assigned, "CONNACK must carry an Assigned Client Identifier"
    c.close()
    # The assigned id names the session: resuming it finds Session Present 1.
    c2, ack2 = accepted(b, connect5(assigned, clean=False, props_=props(u32(0x11, 60))))
    assert ack2.session_present is True
    c2.close()


def test_password_without_user_name_is_allowed_in_v5(broker):
    """3.1.1 forbids it [MQTT-3.1.2-22]; MQTT 5 allows a password alone (section 3.1.2.9)."""
    b = broker()
    c, _ = accepted(b, connect5("pw-only", password=b"secret"))
    c.close()


@pytest.mark.parametrize("bad", [
    props(u16(0x21, 0)),                        # Receive Maximum 0
    props(u32(0x27, 0)),                        # Maximum Packet Size 0
    props(u32(0x11, 10), u32(0x11, 20)),        # Session Expiry Interval twice
    props(u8(0x17, 2)),                         # Request Problem Information 2
    props(u8(0x19, 2)),                         # Request Response Information 2
    props(bytes([0x16]) + raw.mqtt_str(b"x")),  # Authentication Data without a Method
], ids=["receive-max-0", "max-packet-0", "duplicate-expiry", "problem-info-2",
        "response-info-2", "auth-data-without-method"])
def test_protocol_errors_in_connect_properties_get_0x82(broker, bad):
    b = broker()
    assert refused(b, connect5("bad-props", props_=bad)) == 0x82


def test_a_property_of_another_packet_type_is_malformed(broker):
    """Section 2.2.2.2: an identifier not valid for the packet type makes it Malformed."""
    b = broker()
    assert refused(b, connect5("pub-prop", props_=props(u8(0x01, 1)))) == 0x81


def test_unknown_authentication_method_gets_0x8c(broker):
    b = broker()
    assert refused(b, connect5("auth-m", props_=props(s(0x15, "SCRAM-SHA-1")))) == 0x8C


def test_will_qos_3_and_will_flags_without_a_will_are_malformed(broker):
    """[MQTT-3.1.2-12] Will QoS 3; [MQTT-3.1.2-11]/[MQTT-3.1.2-13] QoS or Retain with no Will."""
    b = broker()
    assert refused(b, connect5("w3", will=(b"\x00", "w/t", b"x", 3, False))) == 0x81
    assert refused(b, connect5("wq", will_flags=0x08)) == 0x81
    assert refused(b, connect5("wr", will_flags=0x20)) == 0x81


def test_will_topic_with_wildcard_is_refused(broker):
    b = broker()
    code = refused(b, connect5("w-wild", will=(b"\x00", "w/#", b"x", 0, False)))
    assert code == 0x90, f"0x{code:02x}"


def test_second_connect_gets_disconnect_0x82(broker):
    """[MQTT-3.1.0-2]: a second CONNECT is a Protocol Error; v5 says so before closing."""
    b = broker()
    c, _ = accepted(b, connect5("twice"))
    c.send(connect5("twice"))
    got = c.expect_closed()
    assert [p.ptype for p in got] == [raw.DISCONNECT], got
    assert got[0].body[0] == 0x82
