"""MQTT over WebSocket and WebSocket over TLS with real clients (paho-mqtt's websockets
transport): messages crossing between WebSocket, TLS and TCP clients on other shards, large
messages, a configured path, and refused upgrades (no subprotocol, wrong path).
"""

import socket
import time
from types import SimpleNamespace

from conftest import client_id_on_shard, free_port, ringmq_only
from mqtt_clients import V5, Paho, paho
from test_tls import pki, tls_paho  # noqa: F401  (pki is a fixture)

pytestmark = ringmq_only("the suite starts Mosquitto without WebSocket listeners")


def ws_paho(endpoint, client_id, path="/mqtt", tls_ca=None, protocol=None):
    p = Paho(endpoint, client_id, **({"protocol": protocol} if protocol else {}))
    # paho's websockets transport is chosen at construction: rebuild the client with it.
    import paho.mqtt.client as mqtt
    kw = {} if p.protocol == V5 else {"clean_session": True}
    p.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                           protocol=p.protocol, transport="websockets",
                           reconnect_on_failure=False, **kw)
    p.client.ws_set_options(path=path)
    if tls_ca:
        p.client.tls_set(ca_certs=tls_ca)
    p.client.on_connect = p._on_connect
    p.client.on_disconnect = p._on_disconnect
    p.client.on_message = p._on_message
    p.client.on_subscribe = p._on_subscribe
    return p.connect()


def listeners_broker(broker, tmp_path, shards, entries):
    """A broker with the TCP listener of the fixture and `entries` ([[listeners]] tables)."""
    ports, text = [], []
    for kind, extra in entries:
        port = free_port()
        ports.append(SimpleNamespace(host="127.0.0.1", port=port))
        lines = [f'bind = "127.0.0.1:{port}"', f'kind = "{kind}"']
        lines += [f'{k} = "{v}"' for k, v in extra.items()]
        text.append("[[listeners]]\n" + "\n".join(lines))
    conf = tmp_path / "listeners.toml"
    conf.write_text("\n".join(text) + "\n")
    b = broker(shards=shards, args=["--config", str(conf)])
    return b, ports


def test_websocket_and_tcp_clients_exchange_messages_across_shards(broker):
    port = free_port()
    b = broker(shards=2, args=["--ws-listen", f"127.0.0.1:{port}"])
    ws = SimpleNamespace(host="127.0.0.1", port=port)
    sub_ws = ws_paho(ws, client_id_on_shard("ws-sub", 1, 2))
    assert sub_ws.subscribe("w/#", 1) == [1]
    sub_tcp = paho(b, client_id_on_shard("tcp-sub", 0, 2))
    assert sub_tcp.subscribe("w/#", 1) == [1]
    pub_ws = ws_paho(ws, client_id_on_shard("ws-pub", 0, 2), protocol=V5)
    # Larger than any one read: packets span many WebSocket reads and socket sends.
    payloads = [bytes([i]) * (200_000 + i) for i in range(8)] + [b"s%d" % i for i in range(300)]
    for p in payloads:
        pub_ws.publish("w/a", p, qos=1, wait=False)
    for sub in (sub_ws, sub_tcp):
        assert [m.payload for m in sub.inbox.wait_for(len(payloads), timeout=30)] == payloads
    pub_tcp = paho(b, client_id_on_shard("tcp-pub", 1, 2))
    pub_tcp.publish("w/b", b"from tcp", qos=1)
    assert sub_ws.inbox.wait_for(len(payloads) + 1)[-1].payload == b"from tcp"
    for c in (sub_ws, sub_tcp, pub_ws, pub_tcp):
        c.disconnect()
    b.assert_alive()


def test_a_tls_publisher_reaches_wss_ws_and_tcp_subscribers_on_other_shards(broker, pki, tmp_path):
    cert = {"cert": pki / "server.pem", "key": pki / "server.key"}
    b, (tls, ws, wss) = listeners_broker(
        broker, tmp_path, 2, [("tls", cert), ("ws", {"path": "/broker"}), ("wss", cert)])
    assert b"ws://127.0.0.1:%d/broker" % ws.port in b.stdout_path.read_bytes()
    subs = [
        ws_paho(ws, client_id_on_shard("s-ws", 0, 2), path="/broker"),
        ws_paho(wss, client_id_on_shard("s-wss", 1, 2), tls_ca=str(pki / "ca.pem")),
        paho(b, client_id_on_shard("s-tcp", 1, 2)),
    ]
    for s in subs:
        assert s.subscribe("t/#", 2) == [2]
    pub = tls_paho(tls, pki, client_id_on_shard("p-tls", 0, 2))
    for i in range(50):
        pub.publish(f"t/{i % 3}", f"m{i}".encode(), qos=2, wait=False)
    for s in subs:
        got = s.inbox.expect_exactly(50, timeout=15)
        assert [m.payload for m in got] == [f"m{i}".encode() for i in range(50)]
    for c in subs + [pub]:
        c.disconnect()


def http_upgrade(endpoint, path, protocol) -> bytes:
    proto = f"Sec-WebSocket-Protocol: {protocol}\r\n" if protocol else ""
    req = (f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
           f"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           f"Sec-WebSocket-Version: 13\r\n{proto}\r\n").encode()
    with socket.create_connection((endpoint.host, endpoint.port), timeout=3) as s:
        s.sendall(req)
        out = b""
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                return out
            out += chunk
    raise AssertionError(f"connection not closed: {out!r}")


def test_refused_upgrades_get_an_http_answer_and_disturb_no_one(broker):
    port = free_port()
    b = broker(shards=1, args=["--ws-listen", f"127.0.0.1:{port}"])
    ws = SimpleNamespace(host="127.0.0.1", port=port)
    bystander = ws_paho(ws, "ws-bystander")
    assert bystander.subscribe("k/t", 0) == [0]
    for _ in range(10):
        assert http_upgrade(ws, "/mqtt", None).startswith(b"HTTP/1.1 400")
        assert http_upgrade(ws, "/mqtt", "chat").startswith(b"HTTP/1.1 400")
        assert http_upgrade(ws, "/elsewhere", "mqtt").startswith(b"HTTP/1.1 404")
    bystander.publish("k/t", b"fine")
    assert [m.payload for m in bystander.inbox.wait_for(1)] == [b"fine"]
    err = b.stderr()
    assert "WebSocket: upgrade refused" in err, err
    assert err.count("WebSocket: ") == 1, err  # 30 refusals, one line in the window
    bystander.disconnect()
