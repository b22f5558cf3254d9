"""`$SYS` statistics: published every `sys.interval` seconds, retained, Mosquitto topic names,
summed across shards.
"""

import time

from conftest import ringmq_only
from mqtt_clients import paho


@ringmq_only("sys.interval has no Mosquitto equivalent in this suite's config mapping")
def test_sys_topics_are_published_retained_and_summed_over_shards(broker):
    b = broker(shards=4, config={"sys": {"interval": 1}})
    # Clients spread over the shards, so the totals must add rows from several of them.
    others = [paho(b, f"sys-client-{i}") for i in range(6)]
    sub = paho(b, "sys-watcher")
    assert sub.subscribe("$SYS/broker/#", 0) == [0]
    deadline = time.time() + 6
    seen = {}
    while time.time() < deadline and (
        "$SYS/broker/clients/connected" not in seen or int(seen["$SYS/broker/clients/connected"]) < 7
    ):
        time.sleep(0.3)
        seen = {m.topic: m.payload.decode() for m in sub.inbox.messages}
    assert seen.get("$SYS/broker/version", "").startswith("ringmq ")
    assert seen.get("$SYS/broker/uptime", "").endswith(" seconds")
    assert int(seen["$SYS/broker/clients/connected"]) == 7
    assert seen.get("$SYS/broker/shards/count") == "4"
    # One subscription so far: the watcher's `$SYS/broker/#`.
    assert seen.get("$SYS/broker/subscriptions/count") == "1"
    assert seen.get("$SYS/broker/sessions/count") == "7"
    assert sum(int(seen[f"$SYS/broker/shards/{i}/clients/connected"]) for i in range(4)) == 7
    # Retained: a late subscriber gets the last values at once.
    late = paho(b, "sys-late")
    assert late.subscribe("$SYS/broker/version", 0) == [0]
    got = late.inbox.wait_for(1)
    assert got[0].retain and got[0].payload.decode().startswith("ringmq ")
    # `#` alone never sees `$SYS`.
    hashsub = paho(b, "sys-hash")
    assert hashsub.subscribe("#", 0) == [0]
    time.sleep(1.5)
    assert not [m for m in hashsub.inbox.messages if m.topic.startswith("$SYS")]
    for c in others + [sub, late, hashsub]:
        c.disconnect()


@ringmq_only("EMQX-style client events; Mosquitto has no equivalent")
def test_client_connect_and_disconnect_events_when_enabled(broker):
    import json
    b = broker(shards=2, config={"sys": {"client_events": True, "node": "n1"}})
    watcher = paho(b, "ev-watcher")
    assert watcher.subscribe("$SYS/brokers/+/clients/#", 1) == [1]
    dev = paho(b, "ev-device-1")
    dev.disconnect()
    got = watcher.inbox.wait_for(2)
    by_topic = {m.topic: json.loads(m.payload) for m in got}
    conn = by_topic["$SYS/brokers/n1/clients/ev-device-1/connected"]
    assert conn["clientid"] == "ev-device-1" and conn["proto_ver"] == 4
    disc = by_topic["$SYS/brokers/n1/clients/ev-device-1/disconnected"]
    assert disc["reason"] == "normal"
    watcher.disconnect()
