"""CONNECT handling: exact CONNACK return codes, refusals, protocol violations, PINGREQ.

Each test sends hand-built bytes so the return code and the close are seen exactly as the
broker produced them (MQTT 3.1.1 section 3.1 / 3.2, MQTT 3.1 for the MQIsdp variant).
"""

import pytest

import mqtt_raw as raw
from conftest import ringmq_only
from mqtt_clients import V31, V311, paho


@pytest.mark.parametrize("name,level", [(b"MQTT", 7), (b"MQTT", 3), (b"MQIsdp", 4)],
                         ids=["MQTT-level7", "MQTT-level3", "MQIsdp-level4"])
def test_unacceptable_protocol_level_gets_0x01_and_close(broker, name, level):
    b = broker()
    c = raw.RawClient(b.host, b.port)
    c.send(raw.connect("lvl", proto=(name, level)))
    got = c.expect_closed()
    assert len(got) == 1 and got[0].ptype == raw.CONNACK, got
    assert got[0].return_code == 0x01
    assert got[0].session_present is False


def test_empty_client_id_without_clean_session_gets_0x02(broker):
    b = broker()
    c = raw.RawClient(b.host, b.port)
    c.send(raw.connect("", clean=False))
    got = c.expect_closed()
    assert len(got) == 1 and got[0].ptype == raw.CONNACK, got
    assert got[0].return_code == 0x02
    assert got[0].session_present is False


def test_empty_client_id_with_clean_session_accepted(broker):
    b = broker()
    c, ack = raw.raw_session(b.host, b.port, "", clean=True)
    assert ack.return_code == 0 and ack.session_present is False
    # The connection is live: it can subscribe and receive its own publish.
    assert c.subscribe(1, ("e/x", 0)) == [0]
    c.send(raw.publish("e/x", b"hi"))
    p = c.expect(raw.PUBLISH)
    assert (p.topic, p.payload, p.qos) == ("e/x", b"hi", 0)


def test_empty_client_ids_get_distinct_sessions(broker):
    """Two clients with empty ids must not take each other over."""
    b = broker()
    c1, _ = raw.raw_session(b.host, b.port, "")
    c2, _ = raw.raw_session(b.host, b.port, "")
    for c in (c1, c2):
        c.send(raw.PINGREQ_BYTES)
        c.expect(raw.PINGRESP)


def test_mqtt31_connect_accepted(broker):
    b = broker()
    c, ack = raw.raw_session(b.host, b.port, "v31-client", proto=raw.PROTO_V31)
    assert ack.return_code == 0
    assert ack.body[0] == 0, "MQTT 3.1 CONNACK has no session-present bit"
    c.send(raw.PINGREQ_BYTES)
    c.expect(raw.PINGRESP)


def test_mqtt31_client_id_over_23_characters_gets_0x02(broker):
    """MQTT 3.1 allows 1 to 23 characters: more is Identifier Rejected (3.1.1 allows more)."""
    b = broker()
    c = raw.RawClient(b.host, b.port)
    c.send(raw.connect("x" * 24, proto=raw.PROTO_V31))
    got = c.expect_closed()
    assert len(got) == 1 and got[0].ptype == raw.CONNACK, got
    assert got[0].return_code == 0x02
    _, ack = raw.raw_session(b.host, b.port, "x" * 23, proto=raw.PROTO_V31)
    assert ack.return_code == 0
    _, ack = raw.raw_session(b.host, b.port, "x" * 24)
    assert ack.return_code == 0


@pytest.mark.parametrize("protocol", [V31, V311], ids=["v3.1", "v3.1.1"])
def test_paho_connects(broker, protocol):
    b = broker()
    client = paho(b, "paho-conn", protocol=protocol)
    assert client.connack_rc == 0 and client.session_present is False
    client.disconnect()


def test_second_connect_closes_connection(broker):
    b = broker()
    c, _ = raw.raw_session(b.host, b.port, "twice")
    c.send(raw.connect("twice"))
    assert c.expect_closed() == [], "a second CONNECT is a protocol violation [MQTT-3.1.0-2]"


def test_first_packet_not_connect_closes(broker):
    b = broker()
    c = raw.RawClient(b.host, b.port)
    c.send(raw.publish("early", b"x"))
    assert c.expect_closed() == []


def test_connect_reserved_flag_set_closes(broker):
    b = broker()
    c = raw.RawClient(b.host, b.port)
    pkt = bytearray(raw.connect("resv"))
    pkt[9] |= 0x01  # connect flags byte: reserved bit must be 0 [MQTT-3.1.2-3]
    c.send(bytes(pkt))
    got = c.expect_closed()
    assert all(p.return_code != 0 for p in got if p.ptype == raw.CONNACK), got


def test_pingreq_gets_pingresp(broker):
    b = broker()
    c, _ = raw.raw_session(b.host, b.port, "pinger", keepalive=30)
    for _ in range(3):
        c.send(raw.PINGREQ_BYTES)
        p = c.expect(raw.PINGRESP)
        assert (p.flags, p.body) == (0, b"")


def test_disconnect_closes_connection(broker):
    b = broker()
    c, _ = raw.raw_session(b.host, b.port, "bye")
    c.send(raw.DISCONNECT_BYTES)
    assert c.expect_closed() == []


def test_refused_connect_then_valid_client_unaffected(broker):
    b = broker()
    bad = raw.RawClient(b.host, b.port)
    bad.send(raw.connect("", clean=False))
    bad.expect_closed()
    good, ack = raw.raw_session(b.host, b.port, "after-refusal")
    good.send(raw.PINGREQ_BYTES)
    good.expect(raw.PINGRESP)


@ringmq_only("limits.connect_timeout has no Mosquitto equivalent in this suite's config mapping")
def test_socket_that_never_sends_connect_is_closed_after_connect_timeout(broker):
    import socket
    import time
    b = broker(config={"limits": {"connect_timeout": 1}})
    s = socket.create_connection((b.host, b.port))
    s.settimeout(5)
    t0 = time.monotonic()
    assert s.recv(16) == b""  # closed by the broker, nothing sent
    waited = time.monotonic() - t0
    assert 0.8 <= waited <= 3.0, waited
    s.close()
