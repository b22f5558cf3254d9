"""MQTT.js (npm `mqtt`, run by node) over WebSocket, MQTT 3.1.1 and 5: it receives what a
TLS publisher sends from another shard, a message larger than one WebSocket frame among
them, and what it publishes reaches a TCP subscriber on another shard. scripts/test.sh
installs MQTT.js into target/test-node.
"""

import os
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, client_id_on_shard, free_port, ringmq_only
from mqtt_clients import V5, paho
from test_tls import pki, tls_paho  # noqa: F401  (pki is a fixture)
from test_websocket import listeners_broker

pytestmark = ringmq_only("the suite starts Mosquitto without WebSocket listeners")

NODE_MODULES = REPO / "target" / "test-node" / "node_modules"
SCRIPT = Path(__file__).with_name("mqttjs_client.js")


def mqttjs(url, client_id, version, sub, count, pub, reply):
    if not (NODE_MODULES / "mqtt").is_dir():
        pytest.fail(f"MQTT.js is not installed in {NODE_MODULES}: run scripts/test.sh, or "
                    f"npm install --prefix target/test-node mqtt@5")
    env = dict(os.environ, NODE_PATH=str(NODE_MODULES))
    return subprocess.Popen(["node", str(SCRIPT), url, client_id, str(version), sub,
                             str(count), pub, reply], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)


def read_line(proc, want):
    line = proc.stdout.readline().strip()
    assert line.startswith(want), f"MQTT.js said {line!r}, wanted {want!r}"
    return line


@pytest.mark.parametrize("version", [4, 5])
def test_mqttjs_over_websocket_talks_with_tls_and_tcp_clients_on_other_shards(
        broker, pki, tmp_path, version):
    b, (ws, tls) = listeners_broker(broker, tmp_path, 2, [
        ("ws", {}),
        ("tls", {"cert": pki / "server.pem", "key": pki / "server.key"}),
    ])
    tcp_sub = paho(b, client_id_on_shard(f"js-tcp-{version}", 0, 2))
    tcp_sub.subscribe("js/out", 1)
    js_id = client_id_on_shard(f"mqttjs-{version}", 1, 2)
    js = mqttjs(f"ws://127.0.0.1:{ws.port}/mqtt", js_id, version, "js/in", 2, "js/out",
                "hello from MQTT.js")
    try:
        read_line(js, "ready")
        publisher = tls_paho(tls, pki, client_id_on_shard(f"js-tls-{version}", 0, 2),
                             protocol=V5 if version == 5 else None)
        publisher.publish("js/in", "small", qos=1)
        big = "x" * 200_000  # more than one 4 KiB read and one WebSocket frame of MQTT.js
        publisher.publish("js/in", big, qos=1)
        assert read_line(js, "got") == "got js/in 5 small"
        assert read_line(js, "got") == f"got js/in {len(big)} {'x' * 16}"
        read_line(js, "sent")
        assert js.wait(10) == 0
        assert [m.payload for m in tcp_sub.inbox.wait_for(1)] == [b"hello from MQTT.js"]
        publisher.disconnect()
    finally:
        if js.poll() is None:
            js.kill()
        js.wait(5)
    tcp_sub.disconnect()
    b.assert_alive()
