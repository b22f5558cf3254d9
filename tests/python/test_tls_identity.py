"""Client certificates as usernames (`cert_as_username`): the certificate's Common Name or
first Subject Alternative Name replaces what the client says in CONNECT, also after a
hand-off to another shard; a certificate without that name is refused with CONNACK 0x05
(v3) / 0x87 (v5); the key is refused where there are no client certificates.
"""

import json
import socket
import ssl
import subprocess
import time

import pytest

from conftest import client_id_on_shard, free_port, ringmq_binary, ringmq_only
from mqtt_clients import V5, Paho, paho
from mqtt_raw import CONNECT, PROTO_V311, connect, mqtt_str, packet
from test_tls import openssl, pki  # noqa: F401  (pki is a fixture)

pytestmark = ringmq_only("the suite starts Mosquitto without TLS listeners")


@pytest.fixture(scope="module")
def bob(pki):
    """A client certificate with a DNS and an e-mail SAN (and CN bob-cn)."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "bob.key", "-out", "bob.csr", "-subj", "/CN=bob-cn", cwd=pki)
    (pki / "bob.ext").write_text("subjectAltName=DNS:bob.devices.example,email:bob@example.com\n"
                                 "extendedKeyUsage=clientAuth\n")
    openssl("x509", "-req", "-in", "bob.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "bob.pem", "-days", "2", "-extfile", "bob.ext", cwd=pki)
    return "bob"


def identity_broker(broker, pki, tmp_path):
    cn, san = free_port(), free_port()
    text = ["[sys]", "client_events = true"]
    for port, which in ((cn, "cn"), (san, "san")):
        text += ["[[listeners]]", f'bind = "127.0.0.1:{port}"', 'kind = "tls"',
                 f'cert = "{pki / "server.pem"}"', f'key = "{pki / "server.key"}"',
                 f'ca = "{pki / "ca.pem"}"', f'cert_as_username = "{which}"']
    conf = tmp_path / "identity.toml"
    conf.write_text("\n".join(text) + "\n")
    b = broker(shards=2, args=["--config", str(conf)])
    return b, cn, san


def events_of(watcher, client_id, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in watcher.inbox.messages:
            ev = json.loads(m.payload)
            if ev["clientid"] == client_id:
                return ev
        time.sleep(0.05)
    raise AssertionError(f"no connected event for {client_id}")


def cert_client(port, pki, cert, client_id, protocol=None):
    endpoint = type("E", (), {"host": "127.0.0.1", "port": port})
    p = Paho(endpoint, client_id, **({"protocol": protocol} if protocol else {}))
    p.client.username_pw_set("spoofed", "secret")
    p.client.tls_set(ca_certs=str(pki / "ca.pem"), certfile=str(pki / f"{cert}.pem"),
                     keyfile=str(pki / f"{cert}.key"))
    return p.connect()


def test_the_certificate_names_the_user_on_every_shard(broker, pki, bob, tmp_path):
    b, cn, san = identity_broker(broker, pki, tmp_path)
    watcher = paho(b, "identity-watcher")
    watcher.subscribe("$SYS/brokers/+/clients/+/connected", 0)
    clients = []
    for shard in range(2):
        for port, cert, want, protocol in ((cn, "client", "alice", None),
                                           (cn, bob, "bob-cn", V5),
                                           (san, bob, "bob.devices.example", None)):
            cid = client_id_on_shard(f"id-{cert}-{port}", shard, 2)
            clients.append(cert_client(port, pki, cert, cid, protocol))
            assert events_of(watcher, cid)["username"] == want
    # They are clients like any other: a message goes between them.
    clients[0].subscribe("id/t", 1)
    clients[-1].publish("id/t", "hello", qos=1)
    assert [m.payload for m in clients[0].inbox.wait_for(1)] == [b"hello"]
    for c in clients:
        c.disconnect()
    watcher.disconnect()


def connect_v5(client_id):
    body = mqtt_str("MQTT") + bytes([5, 0x02, 0, 60, 0]) + mqtt_str(client_id)
    return packet(CONNECT, 0, body)


@pytest.mark.parametrize("level,code", [(4, 0x05), (5, 0x87)])
def test_a_certificate_without_the_name_is_refused(broker, pki, tmp_path, level, code):
    b, _, san = identity_broker(broker, pki, tmp_path)
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    ctx.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))  # CN only, no SAN
    with socket.create_connection(("127.0.0.1", san), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(connect("no-san", proto=PROTO_V311) if level == 4 else connect_v5("no-san"))
            ack = s.recv(64)
            assert ack[0] == 0x20, ack
            assert ack[3] == code, ack
            assert s.recv(64) == b"", "closed after the CONNACK"
    err = b.stderr()
    assert "no DNS, e-mail or URI Subject Alternative Name" in err, err
    b.assert_alive()


def test_the_key_needs_client_certificates(tmp_path):
    conf = tmp_path / "bad.toml"
    conf.write_text('[[listeners]]\nbind = "127.0.0.1:1"\ncert_as_username = "cn"\n')
    res = subprocess.run([str(ringmq_binary()), "--check-config", "--config", str(conf)],
                         capture_output=True, text=True, timeout=10)
    assert res.returncode == 1
    assert "listeners[0].cert_as_username" in res.stderr and "ca" in res.stderr, res.stderr


def test_a_certificate_user_needs_no_password_beside_a_password_file(broker, pki, tmp_path):
    """Authenticated by its certificate, a client is not asked for a password, also when a
    password file serves the other clients (and does not list it)."""
    users = tmp_path / "passwd"
    subprocess.run([str(ringmq_binary()), "passwd", "-c", "-b", str(users), "zed", "z3d"],
                   check=True)
    port = free_port()
    conf = tmp_path / "id-pw.toml"
    conf.write_text("\n".join([
        "[sys]", "client_events = true", "[auth]", f'password_file = "{users}"',
        "[[listeners]]", f'bind = "127.0.0.1:{port}"', 'kind = "tls"',
        f'cert = "{pki / "server.pem"}"', f'key = "{pki / "server.key"}"',
        f'ca = "{pki / "ca.pem"}"', 'cert_as_username = "cn"']) + "\n")
    b = broker(shards=2, args=["--config", str(conf)])
    watcher = paho(b, "id-pw-watcher", username="zed", password="z3d")
    watcher.subscribe("$SYS/brokers/+/clients/+/connected", 0)
    for shard in range(2):
        cid = client_id_on_shard("cert-no-pw", shard, 2)
        c = cert_client(port, pki, "client", cid)
        assert events_of(watcher, cid)["username"] == "alice"
        c.disconnect()
    # The TCP listener still wants the file's passwords.
    res = subprocess.run(["mosquitto_pub", "-h", b.host, "-p", str(b.port), "-t", "t", "-m",
                          "x", "-u", "alice", "-P", "guess"], capture_output=True, timeout=10)
    assert res.returncode == 0x04
    watcher.disconnect()
