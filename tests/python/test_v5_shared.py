"""Shared subscriptions ($share/{group}/{filter}) on the real broker with 4 shards: one member
per message across shards, round_robin fairness, the sticky/hash/random strategies, paho v5,
mosquitto_sub -V 5 and 3.1.1 members together, and redistribution when a member leaves.
Client ids are chosen with the home-shard hash so members sit on different shards.
"""

import subprocess
import time

import pytest

import test_v5_support as v5
from conftest import client_id_on_shard, ringmq_only
from mqtt_clients import MosquittoSub, V311, V5

pytestmark = ringmq_only("shards and ringmq's shared-subscription strategies")

N = 4


def wait_total(members, n, timeout=10.0):
    """Wait until the members together hold n messages, then until no more arrive."""
    deadline = time.monotonic() + timeout
    while sum(len(m.msgs) for m in members) < n:
        assert time.monotonic() < deadline, [len(m.msgs) for m in members]
        time.sleep(0.02)
    return [[x.payload.decode() for x in m.settle()] for m in members]


def members_on_shards(b, group, topic, names="m"):
    out = []
    for i in range(N):
        m = v5.Paho5(b, client_id_on_shard(f"{names}{i}", i, N)).connect()
        assert m.subscribe(f"$share/{group}/{topic}", 1) == [1]
        out.append(m)
    return out


def test_one_member_per_message_across_four_shards_round_robin(broker):
    b = broker(shards=N)
    members = members_on_shards(b, "g", "jobs/#")
    other = v5.Paho5(b, client_id_on_shard("other", 1, N)).connect()
    assert other.subscribe("$share/h/jobs/+", 1) == [1]
    pub = v5.Paho5(b, client_id_on_shard("pub", 0, N)).connect()
    for i in range(200):
        pub.publish("jobs/x", f"m{i}".encode(), qos=1)
    got = wait_total(members, 200)
    assert [len(g) for g in got] == [50, 50, 50, 50], "round robin over 4 shards"
    everything = [p for g in got for p in g]
    assert sorted(everything) == sorted(f"m{i}" for i in range(200)), "each exactly once"
    assert len(other.wait_for(200)) == 200, "another group gets its own copy of each"
    assert len(other.settle()) == 200


def test_mosquitto_v5_v311_and_paho_members_share_one_group(broker):
    b = broker(shards=N)
    topic = "$share/mix/cli/t"
    subs = [MosquittoSub(b, topic, qos=1, count=10, protocol=V5,
                         extra=("-i", client_id_on_shard("cli5", 1, N))),
            MosquittoSub(b, topic, qos=1, count=10, protocol=V311,
                         extra=("-i", client_id_on_shard("cli3", 2, N)))]
    pahos = [v5.Paho5(b, client_id_on_shard(f"p{i}", i * 3, N)).connect() for i in range(2)]
    for p in pahos:
        assert p.subscribe(topic, 1) == [1]
    lines = "".join(f"m{i}\n" for i in range(40))
    res = subprocess.run(["mosquitto_pub", "-h", b.host, "-p", str(b.port), "-V", "mqttv5",
                          "-i", client_id_on_shard("clipub", 3, N), "-t", "cli/t", "-q", "1",
                          "-l"], input=lines, capture_output=True, text=True, timeout=20)
    assert res.returncode == 0, res.stderr
    got = [[m.payload.decode() for m in s.inbox.wait_for(10, 10)] for s in subs]
    got += [[m.payload.decode() for m in p.wait_for(10)] for p in pahos]
    for s in subs:
        assert s.wait() == 0
    assert [len(g) for g in got] == [10, 10, 10, 10]
    assert sorted(x for g in got for x in g) == sorted(f"m{i}" for i in range(40))


@pytest.mark.parametrize("strategy", ["sticky", "hash", "random"])
def test_strategies_from_config(broker, strategy):
    b = broker(shards=N, config={"shared": {"strategy": strategy}})
    members = members_on_shards(b, "g", "st")
    pubs = [v5.Paho5(b, client_id_on_shard(f"pub{k}", k, N)).connect() for k in range(3)]
    for round_ in range(2):
        for k, p in enumerate(pubs):
            for i in range(20):
                p.publish("st", f"{k}-{round_}-{i}".encode(), qos=1)
    got = wait_total(members, 120)
    assert sorted(x for g in got for x in g) == sorted(
        f"{k}-{r}-{i}" for k in range(3) for r in range(2) for i in range(20))
    counts = [len(g) for g in got]
    if strategy == "sticky":
        assert sorted(counts) == [0, 0, 0, 120], counts
    elif strategy == "hash":
        for k in range(3):
            holders = [j for j, g in enumerate(got) if any(x.startswith(f"{k}-") for x in g)]
            assert len(holders) == 1, f"publisher {k} went to members {holders}"
    else:
        assert all(c > 0 for c in counts), counts


def test_queued_messages_go_to_the_other_member_when_one_leaves(broker):
    b = broker(shards=N)
    # A raw member that never acknowledges and takes one message at a time (Receive
    # Maximum 1): whatever else it is given waits in its queue.
    slow, _ = v5.raw5(b, client_id_on_shard("slow", 1, N),
                      properties=v5.props((v5.RECEIVE_MAX, 1)))
    slow.send(v5.subscribe(1, "$share/g/red", 1))
    slow.expect(v5.SUBACK)
    fast = v5.Paho5(b, client_id_on_shard("fast", 2, N)).connect()
    assert fast.subscribe("$share/g/red", 1) == [1]
    pub = v5.Paho5(b, client_id_on_shard("pub", 0, N)).connect()
    for i in range(20):
        pub.publish("red", f"m{i}".encode(), qos=1)
    first = v5.read_publishes(slow, 1)
    assert v5.drain_publishes(slow, quiet=0.3) == [], "window of one"
    # Unsubscribe: the queue goes to `fast`; the inflight message completes to `slow`.
    slow.send(v5.unsubscribe(2, "$share/g/red"))
    slow.expect(v5.UNSUBACK)
    slow.send(v5.ack(v5.PUBACK, first[0].pid))
    got = [m.payload.decode() for m in fast.wait_for(19)]
    assert len(fast.settle()) == 19
    assert sorted(got + [first[0].payload.decode()]) == sorted(f"m{i}" for i in range(20))
    assert v5.drain_publishes(slow, quiet=0.3) == []

    # Session end (expiry 0, socket dropped): queued AND the unacknowledged QoS 1 message go
    # to the remaining member.
    slow2, _ = v5.raw5(b, client_id_on_shard("slow2", 3, N),
                       properties=v5.props((v5.RECEIVE_MAX, 1)))
    slow2.send(v5.subscribe(1, "$share/g2/red2", 1))
    slow2.expect(v5.SUBACK)
    fast2 = v5.Paho5(b, client_id_on_shard("fast2", 0, N)).connect()
    assert fast2.subscribe("$share/g2/red2", 1) == [1]
    for i in range(20):
        pub.publish("red2", f"n{i}".encode(), qos=1)
    unacked = v5.read_publishes(slow2, 1)[0]
    slow2.kill()
    got = [m.payload.decode() for m in fast2.wait_for(20)]
    assert sorted(got) == sorted(f"n{i}" for i in range(20)), "nothing lost"
    assert unacked.payload.decode() in got
