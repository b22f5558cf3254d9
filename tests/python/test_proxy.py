"""PROXY protocol listeners: v1 and v2 headers (IPv4 and IPv6, also before TLS) name the
client, whose address the `$SYS` connected event then carries, also after a hand-off to
another shard; a connection without a header, or with a bad one, is closed, counted and
logged, and disturbs no one.
"""

import json
import socket
import ssl
import struct
import time
from types import SimpleNamespace

from conftest import client_id_on_shard, free_port, ringmq_only
from mqtt_clients import paho
from mqtt_raw import CONNACK, Closed, RawClient, connect
from test_tls import pki  # noqa: F401  (pki is a fixture)

pytestmark = ringmq_only("the suite starts Mosquitto without PROXY protocol listeners")

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src, sport, family="TCP4", dst="10.0.0.1", dport=1883):
    return f"PROXY {family} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src, sport, local=False):
    ip = socket.inet_pton(socket.AF_INET6 if ":" in src else socket.AF_INET, src)
    if ":" in src:
        body = ip + bytes(16) + struct.pack(">HH", sport, 1883)
        family = 0x21
    else:
        body = ip + bytes([10, 0, 0, 1]) + struct.pack(">HH", sport, 1883)
        family = 0x11
    body += b"\x04\x00\x02ok"  # a TLV, skipped
    return V2_SIGNATURE + bytes([0x20 if local else 0x21, family]) + \
        struct.pack(">H", len(body)) + body


def proxy_broker(broker, tmp_path, shards, pki=None):
    """The fixture's TCP listener, a TCP listener and (with `pki`) a TLS listener that
    require PROXY headers; client events and $SYS every second."""
    tcp, tls = free_port(), free_port()
    text = ["[sys]", "client_events = true", "interval = 1",
            "[[listeners]]", f'bind = "127.0.0.1:{tcp}"', "proxy_protocol = true"]
    if pki:
        text += ["[[listeners]]", f'bind = "127.0.0.1:{tls}"', 'kind = "tls"',
                 f'cert = "{pki / "server.pem"}"', f'key = "{pki / "server.key"}"',
                 "proxy_protocol = true"]
    conf = tmp_path / "proxy.toml"
    conf.write_text("\n".join(text) + "\n")
    b = broker(shards=shards, args=["--config", str(conf)])
    return b, SimpleNamespace(host="127.0.0.1", port=tcp), SimpleNamespace(host="127.0.0.1",
                                                                          port=tls)


class Events:
    """The `$SYS` connected events, by client id."""

    def __init__(self, b):
        self.client = paho(b, "proxy-watcher")
        self.client.subscribe("$SYS/brokers/+/clients/+/connected", 0)

    def of(self, client_id, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.client.inbox.messages:
                ev = json.loads(m.payload)
                if ev["clientid"] == client_id:
                    return ev
            time.sleep(0.05)
        raise AssertionError(f"no connected event for {client_id}")


def proxied_connect(endpoint, header, client_id):
    c = RawClient(endpoint.host, endpoint.port)
    c.send(header + connect(client_id))
    ack = c.expect(CONNACK)
    assert ack.return_code == 0
    return c


def test_headers_name_the_client_on_every_shard(broker, tmp_path):
    b, tcp, _ = proxy_broker(broker, tmp_path, shards=2)
    events = Events(b)
    cases = [
        (v1("203.0.113.7", 51000), "203.0.113.7", "203.0.113.7:51000"),
        (v1("2001:db8::5", 4000, family="TCP6", dst="2001:db8::1"), "2001:db8::5",
         "[2001:db8::5]:4000"),
        (v2("198.51.100.20", 40001), "198.51.100.20", "198.51.100.20:40001"),
        (v2("2001:db8::77", 40002), "2001:db8::77", "[2001:db8::77]:40002"),
    ]
    clients = []
    for i, (header, ip, peername) in enumerate(cases):
        # Every client on both shards: the address travels with a hand-off.
        for shard in range(2):
            cid = client_id_on_shard(f"proxied{i}", shard, 2)
            clients.append(proxied_connect(tcp, header, cid))
            ev = events.of(cid)
            assert (ev["ipaddress"], ev["peername"]) == (ip, peername), ev
    # A LOCAL header (a health check) keeps the socket's own address.
    local = proxied_connect(tcp, v2("192.0.2.1", 1, local=True), "proxy-local")
    assert events.of("proxy-local")["ipaddress"] == "127.0.0.1"
    # Clients of the plain listener keep theirs.
    direct = paho(b, "direct-client")
    assert events.of("direct-client")["ipaddress"] == "127.0.0.1"
    for c in clients + [local]:
        c.close()
    direct.disconnect()
    events.client.disconnect()


def test_a_header_before_tls_names_the_client(broker, tmp_path, pki):
    b, _, tls = proxy_broker(broker, tmp_path, shards=2, pki=pki)
    events = Events(b)
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    for shard in range(2):
        cid = client_id_on_shard("proxied-tls", shard, 2)
        raw = socket.create_connection((tls.host, tls.port), timeout=5)
        raw.sendall(v2("192.0.2.44", 5000 + shard))
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(connect(cid))
            assert s.recv(4)[:1] == b"\x20", "a CONNACK"
            ev = events.of(cid)
            assert ev["peername"] == f"192.0.2.44:{5000 + shard}", ev
    events.client.disconnect()


def test_connections_without_a_good_header_are_closed_counted_and_logged(broker, tmp_path):
    b, tcp, _ = proxy_broker(broker, tmp_path, shards=2)
    ok = paho(b, "proxy-bystander")
    ok.subscribe("b/t", 1)
    bad = [
        connect("no-header"),                          # straight MQTT
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n" + connect("short-v1"),
        b"PROXY TCP4 " + b"1" * 120,                   # no CRLF in 107 bytes
        V2_SIGNATURE + b"\x31\x11\x00\x0c" + bytes(12),  # bad v2 version
        b"\x16\x03\x01\x00\x05hello",                  # a TLS ClientHello
    ]
    for data in bad:
        c = RawClient(tcp.host, tcp.port)
        c.send(data)
        assert c.expect_closed() == [], data
        c.close()
    # A header split into one-byte writes is still read whole.
    c = RawClient(tcp.host, tcp.port)
    for byte in v1("203.0.113.9", 1234):
        c.send(bytes([byte]))
        time.sleep(0.002)
    c.send(connect("slow-header"))
    assert c.expect(CONNACK).return_code == 0
    c.close()
    ok.publish("b/t", "still here", qos=1)
    assert [m.payload for m in ok.inbox.wait_for(1)] == [b"still here"]
    err = b.stderr()
    assert "no PROXY protocol header" in err and "client 127.0.0.1:" in err, err
    assert err.count("the connection was closed") <= 2, err
    watcher = paho(b, "proxy-counter")
    watcher.subscribe("$SYS/broker/clients/proxy_failed", 0)
    deadline = time.monotonic() + 10
    seen = []
    while time.monotonic() < deadline and str(len(bad)).encode() not in seen:
        seen = [m.payload for m in watcher.inbox.messages]
        time.sleep(0.1)
    assert str(len(bad)).encode() in seen, seen
    b.assert_alive()
    ok.disconnect()
    watcher.disconnect()


def test_the_flags_leave_a_proxy_listener_of_the_file_in_place(broker, tmp_path):
    b, tcp, _ = proxy_broker(broker, tmp_path, shards=1)
    # The fixture passed --listen; the file's PROXY listener still serves.
    c = proxied_connect(tcp, v1("203.0.113.1", 9), "still-proxied")
    c.close()
    try:
        RawClient(b.host, b.port).connect("plain-still-plain")
    except Closed as e:
        raise AssertionError("the --listen listener needs no header") from e
