"""MQTT over TLS with real clients: mosquitto_pub/_sub and paho over a TLS listener
(certificates made in the test with openssl), mutual TLS, messages crossing between TLS and
plain TCP clients on other shards, large messages, and bad input on either kind of port.
"""

import socket
import ssl
import subprocess
import time
from types import SimpleNamespace

import pytest

from conftest import client_id_on_shard, free_port, ringmq_binary, ringmq_only
from mqtt_clients import V5, MosquittoSub, Paho, mosquitto_pub, paho

pytestmark = ringmq_only("the suite starts Mosquitto without TLS listeners")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
            "-subj", f"/CN={name}", cwd=d)


def make_cert(d, name, ca, cn, san=None):
    """An X.509 v3 certificate (extensions make it v3; v1 ones are refused, as they should)."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
    ext = f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n" if san else \
        "extendedKeyUsage=clientAuth\n"
    (d / f"{name}.ext").write_text(ext)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
            cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    make_ca(d, "ca")
    make_ca(d, "rogue")
    make_cert(d, "server", "ca", "localhost", "DNS:localhost,IP:127.0.0.1")
    make_cert(d, "client", "ca", "alice")
    make_cert(d, "intruder", "rogue", "mallory")
    make_cert(d, "server2", "rogue", "localhost", "DNS:localhost,IP:127.0.0.1")
    return d


def tls_broker(broker, pki, shards=1, ca=False, config=None):
    port = free_port()
    args = ["--tls-listen", f"127.0.0.1:{port}", "--tls-cert", str(pki / "server.pem"),
            "--tls-key", str(pki / "server.key")]
    if ca:
        args += ["--tls-ca", str(pki / "ca.pem")]
    b = broker(shards=shards, args=args, config=config)
    return b, SimpleNamespace(host="127.0.0.1", port=port)


def tls_paho(endpoint, pki, client_id, cert=None, protocol=None, ca="ca"):
    p = Paho(endpoint, client_id, **({"protocol": protocol} if protocol else {}))
    kw = {}
    if cert:
        kw = {"certfile": str(pki / f"{cert}.pem"), "keyfile": str(pki / f"{cert}.key")}
    p.client.tls_set(ca_certs=str(pki / f"{ca}.pem"), **kw)
    return p.connect()


def cafile(pki):
    return ["--cafile", str(pki / "ca.pem")]


def test_mosquitto_clients_over_tls_reach_tls_and_tcp_subscribers_on_other_shards(broker, pki):
    b, tls = tls_broker(broker, pki, shards=2)
    # Each client homed on another shard than the one that may accept it: the TLS session
    # is handed over with its socket.
    sub_tls = MosquittoSub(tls, "x/#", qos=1, count=3,
                           extra=[*cafile(pki), "-i", client_id_on_shard("st", 0, 2)])
    sub_tcp = MosquittoSub(b, "x/#", qos=1, count=3, extra=["-i", client_id_on_shard("sp", 1, 2)])
    for i in range(3):
        cid = client_id_on_shard(f"pub{i}", i % 2, 2)
        mosquitto_pub(tls, f"x/{i}", f"over-tls-{i}", qos=1, extra=[*cafile(pki), "-i", cid])
    assert sub_tls.wait() == 0 and sub_tcp.wait() == 0
    for sub in (sub_tls, sub_tcp):
        got = sorted((m.topic, m.payload, m.qos) for m in sub.inbox.messages)
        assert got == [(f"x/{i}", f"over-tls-{i}".encode(), 1) for i in range(3)]
    b.assert_alive()


def test_a_tcp_publisher_reaches_a_tls_subscriber_with_large_messages_in_order(broker, pki):
    b, tls = tls_broker(broker, pki, shards=2)
    sub = tls_paho(tls, pki, client_id_on_shard("big-sub", 1, 2))
    assert sub.subscribe("big/t", 1) == [1]
    pub = paho(b, client_id_on_shard("big-pub", 0, 2))
    # Larger than a TLS record (16 KiB) and than a socket buffer: many records per message
    # and sends the socket takes only in part.
    payloads = [bytes([i % 251]) * (300_000 + i) for i in range(12)]
    payloads += [f"small-{i}".encode() for i in range(500)]
    for p in payloads:
        pub.publish("big/t", p, qos=1, wait=False)
    got = sub.inbox.wait_for(len(payloads), timeout=30)
    assert [m.payload for m in got] == payloads
    sub.disconnect()
    pub.disconnect()


def test_mutual_tls_admits_only_clients_with_a_certificate_the_ca_signed(broker, pki):
    b, tls = tls_broker(broker, pki, ca=True)
    ok = tls_paho(tls, pki, "mtls-ok", cert="client")
    assert ok.subscribe("m/t", 1) == [1]
    mosquitto_pub(tls, "m/t", "signed", qos=1,
                  extra=[*cafile(pki), "--cert", str(pki / "client.pem"),
                         "--key", str(pki / "client.key")])
    assert [m.payload for m in ok.inbox.wait_for(1)] == [b"signed"]
    for extra in ([], ["--cert", str(pki / "intruder.pem"), "--key", str(pki / "intruder.key")]):
        res = subprocess.run(["mosquitto_pub", "-h", tls.host, "-p", str(tls.port), "-t", "m/t",
                              "-m", "x", *cafile(pki), *extra],
                             capture_output=True, text=True, timeout=10)
        assert res.returncode != 0, f"refused client got through: {extra}"
    ok.inbox.expect_exactly(1)
    b.assert_alive()
    time.sleep(0.2)
    assert "TLS: " in b.stderr(), b.stderr()
    ok.disconnect()


def test_a_v5_disconnect_reason_reaches_a_tls_client(broker, pki):
    b, tls = tls_broker(broker, pki)
    first = tls_paho(tls, pki, "twin", protocol=V5)
    # The same client id again: the first connection is taken over with DISCONNECT 0x8E.
    got = {}
    first.client.on_disconnect = lambda _c, _u, _f, rc, _p: got.setdefault("rc", rc.value)
    second = tls_paho(tls, pki, "twin", protocol=V5)
    deadline = time.monotonic() + 5
    while "rc" not in got and time.monotonic() < deadline:
        time.sleep(0.05)
    assert got.get("rc") == 0x8E, got
    second.disconnect()
    first.stop()


def raw_bytes_then_read(host, port, data, timeout=3.0) -> bytes:
    """Send `data` on a new connection and read until the broker closes it."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(4096)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                return out
            out += chunk
        raise AssertionError(f"connection not closed within {timeout}s (got {out!r})")


def test_wrong_protocol_on_either_port_closes_that_connection_logs_rarely_and_counts(broker, pki):
    b, tls = tls_broker(broker, pki, config={"sys": {"interval": 1}})
    ok = tls_paho(tls, pki, "bystander")
    assert ok.subscribe("b/t", 0) == [0]
    connect = bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, 0])
    for _ in range(20):
        # Plain MQTT on the TLS port: a TLS alert, then the close.
        alert = raw_bytes_then_read(tls.host, tls.port, connect)
        assert alert[:1] == b"\x15", alert
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    for _ in range(20):
        # A TLS ClientHello on the plain port.
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            with socket.create_connection((b.host, b.port), timeout=3) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost"):
                    pass
    ok.publish("b/t", "still here")
    assert [m.payload for m in ok.inbox.wait_for(1)] == [b"still here"]
    err = b.stderr()
    assert "TLS: " in err and "plain MQTT listener" in err, err
    # 40 bad connections within a second or two: at most one line per kind and window.
    assert err.count("the connection was closed") <= 3, err
    # The counter counts every one.
    watcher = paho(b, "tls-counter")
    watcher.subscribe("$SYS/broker/clients/tls_failed", 0)
    deadline = time.monotonic() + 10
    seen = []
    while time.monotonic() < deadline and b"40" not in seen:
        seen = [m.payload for m in watcher.inbox.messages]
        time.sleep(0.1)
    assert b"40" in seen, seen
    ok.disconnect()
    watcher.disconnect()


@pytest.mark.parametrize("flags,expect", [
    (["--tls-listen", "127.0.0.1:1"], "--tls-cert"),
    (["--tls-listen", "127.0.0.1:2", "--tls-cert", "/nonexistent/c.pem", "--tls-key",
      "/nonexistent/k.pem"], "listeners[1].cert"),
])
def test_bad_tls_settings_stop_start_up_naming_what_to_fix(flags, expect):
    res = subprocess.run([str(ringmq_binary()), "--listen", "127.0.0.1:1", *flags],
                         capture_output=True, text=True, timeout=10)
    assert res.returncode != 0
    assert expect in res.stderr, res.stderr


def test_a_key_that_does_not_belong_to_the_certificate_is_refused(pki):
    res = subprocess.run([str(ringmq_binary()), "--check-config", "--tls-listen", "127.0.0.1:1",
                          "--tls-cert", str(pki / "server.pem"),
                          "--tls-key", str(pki / "client.key")],
                         capture_output=True, text=True, timeout=10)
    assert res.returncode == 1
    assert "listeners[1].key" in res.stderr and "does not go with cert" in res.stderr, res.stderr


def test_sighup_swaps_the_certificate_without_dropping_a_connection(broker, pki, tmp_path):
    import shutil
    import signal
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(pki / "server.pem", cert)
    shutil.copy(pki / "server.key", key)
    port = free_port()
    b = broker(args=["--tls-listen", f"127.0.0.1:{port}", "--tls-cert", str(cert),
                     "--tls-key", str(key)])
    tls = SimpleNamespace(host="127.0.0.1", port=port)
    old = tls_paho(tls, pki, "before-reload")
    assert old.subscribe("r/t", 1) == [1]
    # A certificate from another CA: after SIGHUP new clients must trust that one.
    shutil.copy(pki / "server2.pem", cert)
    shutil.copy(pki / "server2.key", key)
    b.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "re-read for 1 listener" not in b.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "re-read for 1 listener(s) (0 kept" in b.stderr(), b.stderr()
    new = tls_paho(tls, pki, "after-reload", ca="rogue")
    with pytest.raises(Exception):
        tls_paho(tls, pki, "old-trust", ca="ca")
    # A broken file: the last good certificate keeps serving, and the log says why.
    cert.write_text("garbage\n")
    b.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "keeps its old certificate" not in b.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "listeners[1].cert" in b.stderr() and "keeps its old certificate" in b.stderr()
    again = tls_paho(tls, pki, "after-bad-reload", ca="rogue")
    new.publish("r/t", b"still connected", qos=1)
    assert [m.payload for m in old.inbox.wait_for(1)] == [b"still connected"]
    for c in (old, new, again):
        c.disconnect()


def test_a_burst_of_handshakes_is_served_whole_in_turns(broker, pki):
    """More ClientHellos at once than a poller pass takes (8): the rest wait their turn and
    every client gets its CONNACK; a plain client is served meanwhile."""
    import threading
    from mqtt_raw import connect
    b, tls = tls_broker(broker, pki, shards=1)
    ok = paho(b, "burst-bystander")
    ok.subscribe("burst/t", 1)
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    socks = [socket.create_connection((tls.host, tls.port), timeout=10) for _ in range(64)]
    acks, errors = [], []

    def one(i, raw):
        try:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(connect(f"burst-{i}"))
                acks.append(s.recv(4))
        except (OSError, ssl.SSLError) as e:
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i, s)) for i, s in enumerate(socks)]
    for t in threads:
        t.start()
    ok.publish("burst/t", "meanwhile", qos=1)
    for t in threads:
        t.join(20)
    assert not errors, errors
    assert sorted(acks) == [b"\x20\x02\x00\x00"] * 64
    assert [m.payload for m in ok.inbox.wait_for(1)] == [b"meanwhile"]
    ok.disconnect()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_1_2_and_1_3_with_alpn_mqtt(broker, pki, version):
    b, tls = tls_broker(broker, pki, shards=1)
    from mqtt_raw import connect
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    ctx.minimum_version = ctx.maximum_version = version
    ctx.set_alpn_protocols(["mqtt"])
    with socket.create_connection((tls.host, tls.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            assert s.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                                   ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
            assert s.selected_alpn_protocol() == "mqtt"
            s.sendall(connect(f"tls-{version.name}"))
            assert s.recv(4) == b"\x20\x02\x00\x00"
    # A client that asks for another protocol only is refused by ALPN, not served.
    ctx.set_alpn_protocols(["http/1.1"])
    with pytest.raises((ssl.SSLError, ConnectionError)):
        with socket.create_connection((tls.host, tls.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(connect("tls-http"))
                assert s.recv(4) == b""
    b.assert_alive()
