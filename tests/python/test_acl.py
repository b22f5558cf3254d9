"""Access rules in Mosquitto's acl_file format (`--acl-file`), with users from a password
file, on 1 and 2 shards: publishes outside a client's write rules are not delivered,
SUBSCRIBE outside its read rules (or reaching a denied topic) gets 0x80 (v3) / 0x87 (v5),
retained messages reach only subscribers allowed to read them, `%u` and `%c` patterns, and a
bad file stops start-up naming the line.
"""

import subprocess
import time

import pytest

from conftest import client_id_on_shard, ringmq_binary, ringmq_only
from mqtt_clients import V5, paho

pytestmark = ringmq_only("the suite starts Mosquitto without an ACL file")

ACL = """\
user admin
topic readwrite #

user alice
topic readwrite alice/#
topic deny alice/secret
topic read news/#

user bob
topic read alice/+/status
topic write news/#

pattern readwrite devices/%c/#
"""


@pytest.fixture
def files(tmp_path):
    pw = tmp_path / "passwd"
    ringmq = str(ringmq_binary())
    subprocess.run([ringmq, "passwd", "-c", "-b", str(pw), "admin", "a"], check=True)
    for u in ("alice", "bob"):
        subprocess.run([ringmq, "passwd", "-b", str(pw), u, u], check=True)
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    return pw, acl


def client(b, user, shard, shards, protocol=None):
    cid = client_id_on_shard(f"{user}-c{protocol or ''}", shard, shards)
    kw = {"protocol": protocol} if protocol else {}
    return paho(b, cid, username=user, password="a" if user == "admin" else user, **kw)


@pytest.mark.parametrize("shards", [1, 2])
def test_rules_decide_who_publishes_and_subscribes_where(broker, files, shards):
    pw, acl = files
    b = broker(shards=shards, args=["--password-file", str(pw), "--acl-file", str(acl)])
    assert "access rules from" in b.stdout_path.read_text()
    admin = client(b, "admin", 0, shards)
    alice = client(b, "alice", shards - 1, shards)
    alice5 = client(b, "alice", 0, shards, protocol=V5)
    bob = client(b, "bob", shards - 1, shards)
    # SUBACK codes: granted, outside the rules, reaching a denied topic.
    assert alice.subscribe("alice/+/status", 1) == [1]
    assert alice.subscribe("news/#", 1) == [1]
    assert alice.subscribe("bob/#", 1) == [0x80]
    assert alice.subscribe("alice/#", 1) == [0x80], "alice/secret is denied"
    assert alice5.subscribe("bob/#", 1) == [0x87]
    assert bob.subscribe("alice/kitchen/status", 0) == [0]
    assert bob.subscribe("alice/#", 0) == [0x80]
    assert admin.subscribe("#", 1) == [1]
    # Publishes: bob may write news, not alice's topics; alice not news.
    bob.publish("news/today", "from bob", qos=1)
    bob.publish("alice/kitchen/status", "forged", qos=1)  # v3: acknowledged, dropped
    alice.publish("news/today", "from alice", qos=1)
    alice.publish("alice/kitchen/status", "warm", qos=1)
    alice.publish("alice/secret", "hidden", qos=1)
    got = sorted(m.payload for m in admin.inbox.wait_for(2, timeout=10))
    assert got == [b"from bob", b"warm"], got
    assert [m.payload for m in bob.inbox.wait_for(1)] == [b"warm"]
    time.sleep(0.3)
    assert sorted(m.payload for m in alice.inbox.messages) == [b"from bob", b"warm"]
    assert sorted(m.payload for m in admin.inbox.messages) == [b"from bob", b"warm"]
    for c in (admin, alice, alice5, bob):
        c.disconnect()


def test_retained_messages_reach_only_readers(broker, files):
    pw, acl = files
    b = broker(shards=2, args=["--password-file", str(pw), "--acl-file", str(acl)])
    admin = client(b, "admin", 0, 2)
    for topic in ("alice/secret", "alice/den/status", "bob/private"):
        admin.publish(topic, f"kept {topic}", qos=1, retain=True)
    bob = client(b, "bob", 1, 2)
    assert bob.subscribe("alice/+/status", 1) == [1]
    assert [m.payload for m in bob.inbox.wait_for(1)] == [b"kept alice/den/status"]
    assert bob.subscribe("bob/#", 1) == [0x80]
    assert bob.subscribe("alice/secret", 1) == [0x80]
    time.sleep(0.3)
    assert [m.payload for m in bob.inbox.messages] == [b"kept alice/den/status"]
    # %c: every client owns devices/<its id>/#.
    dev = paho(b, "sensor-7", username="bob", password="bob")
    assert dev.subscribe("devices/sensor-7/#", 1) == [1]
    assert dev.subscribe("devices/sensor-8/#", 1) == [0x80]
    for c in (admin, bob, dev):
        c.disconnect()


def test_a_bad_acl_file_stops_start_up_naming_the_line(tmp_path):
    acl = tmp_path / "acl"
    acl.write_text("user a\ntopic read a/#/b\n")
    res = subprocess.run([str(ringmq_binary()), "--listen", "127.0.0.1:1", "--acl-file",
                          str(acl)], capture_output=True, text=True, timeout=10)
    assert res.returncode != 0
    assert "auth.acl_file" in res.stderr and "line 2" in res.stderr, res.stderr
