"""Cross-shard behaviour with `--shards 1, 2, 4`: client ids are chosen with the home-shard hash
(FNV-1a 64 % shards, see notes/interfaces) so publisher and subscriber live on different
shards; takeover and session resume across accept paths; retained messages spread over every
retained partition. Under Mosquitto only the 1-shard variants run.
"""

import pytest

import mqtt_raw as raw
from conftest import client_id_on_shard, fnv1a_64, home_shard, retained_shard, shard_params
from mqtt_clients import Paho, paho


def test_fnv1a_reference_vectors():
    # Published FNV-1a 64 vectors, so the ids the shard tests pick land where they claim.
    assert fnv1a_64(b"") == 0xCBF29CE484222325
    assert fnv1a_64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a_64(b"foobar") == 0x85944171F73967E8
    for n in (1, 2, 4):
        for s in range(n):
            assert home_shard(client_id_on_shard("x", s, n), n) == s


def _ids(prefix, n):
    """Publisher id on shard 0 and subscriber id on the last shard (different when n > 1)."""
    return client_id_on_shard(f"{prefix}-pub", 0, n), client_id_on_shard(f"{prefix}-sub", n - 1, n)


@pytest.mark.parametrize("shards", shard_params())
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_pubsub_across_shards(broker, shards, qos):
    b = broker(shards=shards)
    pub_id, sub_id = _ids("x", shards)
    sub = paho(b, sub_id)
    assert sub.subscribe("xs/t", qos) == [qos]
    pub = paho(b, pub_id)
    for i in range(50):
        pub.publish("xs/t", f"m{i}".encode(), qos, wait=False)
    pub.publish("xs/t", b"m50", qos)
    got = sub.inbox.expect_exactly(51, timeout=10)
    assert [m.payload for m in got] == [f"m{i}".encode() for i in range(51)]
    assert {m.qos for m in got} == {qos}
    pub.disconnect()
    sub.disconnect()


@pytest.mark.parametrize("shards", shard_params())
def test_subscribers_on_every_shard_get_one_copy_each(broker, shards):
    b = broker(shards=shards)
    subs = []
    for s in range(shards):
        for k in range(2):  # two subscribers per shard: one cross-shard message, two deliveries
            c = paho(b, client_id_on_shard(f"fan{k}", s, shards))
            assert c.subscribe("fan/+", 1) == [1]
            subs.append(c)
    pub = paho(b, client_id_on_shard("fan-pub", 0, shards))
    for i in range(10):
        pub.publish(f"fan/{i}", str(i).encode(), 1)
    for c in subs:
        got = c.inbox.expect_exactly(10, settle=0.2)
        assert [m.payload for m in got] == [str(i).encode() for i in range(10)]
        c.disconnect()
    pub.disconnect()


@pytest.mark.parametrize("shards", shard_params())
def test_takeover_across_accept_paths(broker, shards):
    """Each new connection with the same id may be accepted by any shard (SO_REUSEPORT); each
    one must close its predecessor, and the last one must work."""
    b = broker(shards=shards)
    cid = client_id_on_shard("take", shards - 1, shards)
    conns = []
    for i in range(8):
        c, ack = raw.raw_session(b.host, b.port, cid, clean=False)
        assert ack.session_present is (i > 0), f"connection {i}"
        if conns:
            assert conns[-1].expect_closed() == [], f"connection {i - 1} not closed by {i}"
        conns.append(c)
    last = conns[-1]
    assert last.subscribe(1, ("take/t", 1)) == [1]
    pub = paho(b, client_id_on_shard("take-pub", 0, shards))
    pub.publish("take/t", b"to the survivor", 1)
    p = last.expect(raw.PUBLISH)
    assert (p.payload, p.qos) == (b"to the survivor", 1)
    last.send(raw.ack(raw.PUBACK, p.pid))
    pub.disconnect()


@pytest.mark.parametrize("shards", shard_params())
def test_persistent_resume_across_shards(broker, shards):
    b = broker(shards=shards)
    pub_id, sub_id = _ids("resume", shards)
    sub = Paho(b, sub_id, clean=False).connect()
    assert sub.subscribe("xr/#", 2) == [2]
    sub.disconnect()
    pub = paho(b, pub_id)
    for i in range(10):
        pub.publish(f"xr/{i}", f"offline {i}".encode(), 1 + i % 2)
    # Reconnect several times: each may arrive on a different accepting shard.
    for attempt in range(3):
        sub = Paho(b, sub_id, clean=False).connect()
        assert sub.session_present is True
        if attempt == 0:
            got = sub.inbox.expect_exactly(10)
            # Sorted: a client library hands QoS 2 over on PUBREL, so QoS 1 and 2 interleave.
            assert sorted((m.topic, m.payload, m.qos) for m in got) == sorted(
                (f"xr/{i}", f"offline {i}".encode(), 1 + i % 2) for i in range(10))
        else:
            pub.publish("xr/live", f"live {attempt}".encode(), 1)
            (m,) = sub.inbox.expect_exactly(1)
            assert (m.topic, m.payload) == ("xr/live", f"live {attempt}".encode())
        sub.disconnect()
    pub.disconnect()


@pytest.mark.parametrize("shards", shard_params())
def test_qos2_through_reconnect_across_shards(broker, shards):
    b = broker(shards=shards)
    pub_id, sub_id = _ids("q2x", shards)
    sub, _ = raw.raw_session(b.host, b.port, sub_id, clean=False)
    assert sub.subscribe(1, ("q2x/t", 2)) == [2]
    pub = paho(b, pub_id)
    pub.publish("q2x/t", b"exactly once", 2)
    p = sub.expect(raw.PUBLISH)
    sub.send(raw.ack(raw.PUBREC, p.pid))
    assert sub.expect(raw.PUBREL).pid == p.pid
    sub.kill()
    sub, ack = raw.raw_session(b.host, b.port, sub_id, clean=False)
    assert ack.session_present is True
    assert sub.expect(raw.PUBREL).pid == p.pid  # only the release is resent, not the message
    sub.send(raw.ack(raw.PUBCOMP, p.pid))
    sub.expect_nothing(1.0)
    pub.disconnect()


def _topics_covering_partitions(n, count=24):
    """`count` topics whose retained partitions (fnv1a % n) cover every shard."""
    topics = [f"rs/{i}/v" for i in range(count)]
    assert {retained_shard(t, n) for t in topics} == set(range(n))
    return topics


@pytest.mark.parametrize("shards", shard_params())
def test_retained_from_every_partition_to_wildcard_subscriber(broker, shards):
    b = broker(shards=shards)
    topics = _topics_covering_partitions(shards)
    pub = paho(b, client_id_on_shard("rs-pub", 0, shards))
    for t in topics:
        pub.publish(t, t.encode(), 1, retain=True)
    pub.publish(topics[0], b"replaced", 1, retain=True)
    pub.publish(topics[1], b"", 1, retain=True)  # deleted
    for s in range(shards):  # a wildcard subscriber homed on each shard sees the same set
        sub = paho(b, client_id_on_shard("rs-sub", s, shards))
        assert sub.subscribe("rs/+/v", 1) == [1]
        got = sub.inbox.expect_exactly(len(topics) - 1, settle=0.3)
        want = {t: t.encode() for t in topics[2:]}
        want[topics[0]] = b"replaced"
        assert {m.topic: m.payload for m in got} == want
        assert all(m.retain for m in got)
        sub.disconnect()
    pub.disconnect()


@pytest.mark.parametrize("shards", shard_params())
def test_will_reaches_subscribers_on_other_shards(broker, shards):
    b = broker(shards=shards)
    watchers = [paho(b, client_id_on_shard("wx-watch", s, shards)) for s in range(shards)]
    for w in watchers:
        assert w.subscribe("wx/#", 1) == [1]
    c, _ = raw.raw_session(b.host, b.port, client_id_on_shard("wx-dying", 0, shards),
                           will=("wx/gone", b"bye", 1, False))
    c.kill()
    for w in watchers:
        (m,) = w.inbox.expect_exactly(1, settle=0.2)
        assert (m.topic, m.payload, m.qos) == ("wx/gone", b"bye", 1)
        w.disconnect()
