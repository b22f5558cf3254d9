"""The load harness over TLS, WebSocket and WebSocket over TLS (`ringmq-bench --tls --ws`):
every QoS 1 message of a p2p run arrives exactly once through each, with the broker's
certificate verified (`--cafile`) or not.
"""

import json
import subprocess

import pytest

from conftest import REPO, ringmq_only
from test_tls import pki  # noqa: F401  (pki is a fixture)
from test_websocket import listeners_broker

pytestmark = ringmq_only("the suite starts Mosquitto without TLS or WebSocket listeners")

BENCH = REPO / "target" / "release" / "ringmq-bench"


@pytest.mark.parametrize("shards", [1, 2])
def test_p2p_runs_lose_nothing_over_every_transport(broker, pki, tmp_path, shards):
    files = {"cert": pki / "server.pem", "key": pki / "server.key"}
    b, (tls, ws, wss) = listeners_broker(broker, tmp_path, shards, [
        ("tls", files), ("ws", {}), ("wss", files)])
    runs = [
        (tls.port, ["--tls", "--cafile", str(pki / "ca.pem")]),
        (tls.port, ["--tls"]),
        (ws.port, ["--ws"]),
        (wss.port, ["--tls", "--ws", "--cafile", str(pki / "ca.pem")]),
    ]
    for i, (port, flags) in enumerate(runs):
        res = subprocess.run([str(BENCH), "p2p", "-p", str(port), *flags, "-c", "10",
                              "-L", "300", "-q", "1", "-I", "0", "--inflight", "8",
                              "-s", "2000", "--duration", "20", "--prefix", f"t{i}", "--json"],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        r = json.loads(res.stdout)
        m = r["messages"]
        assert r["connections"]["connected"] == 20, (flags, r)
        assert (m["published"], m["acked"], m["unique"]) == (3000, 3000, 3000), (flags, r)
        assert (m["lost"], m["duplicates"]) == (0, 0), (flags, r)
    b.assert_alive()
