"""Password files (`--password-file`, `auth.password_file`) in Mosquitto's format: files made
by mosquitto_passwd let the right users in on every shard and refuse wrong passwords,
unknown users and (by default, with a file) anonymous clients with the right CONNACK codes
for v3 and v5; `ringmq passwd` writes files Mosquitto reads; a bad file stops start-up
naming the key and the line; refusals are counted in `$SYS`.
"""

import subprocess
import time

import pytest

from conftest import client_id_on_shard, free_port, ringmq_binary, ringmq_only
from mqtt_clients import paho

pytestmark = ringmq_only("the suite starts Mosquitto without a password file")


def pub(b, *extra, version="mqttv311"):
    """mosquitto_pub's exit status: 0, or the CONNACK code that refused it."""
    res = subprocess.run(["mosquitto_pub", "-h", b.host, "-p", str(b.port), "-t", "auth/t",
                          "-m", "x", "-V", version, *extra], capture_output=True, timeout=10)
    return res.returncode


@pytest.fixture
def users(tmp_path):
    f = tmp_path / "passwd"
    f.write_text("")
    for user, pw in (("alice", "wonderland"), ("bob", "builder")):
        subprocess.run(["mosquitto_passwd", "-b", str(f), user, pw], check=True, timeout=10)
    return f


@pytest.mark.parametrize("shards", [1, 2])
def test_a_mosquitto_password_file_admits_its_users_and_refuses_the_rest(broker, users, shards):
    b = broker(shards=shards, args=["--password-file", str(users)], config={"sys": {"interval": 1}})
    out = b.stdout_path.read_text()
    assert "password file" in out and "(2 users); anonymous clients refused" in out, out
    for shard in range(shards):
        cid = client_id_on_shard("authed", shard, shards)
        assert pub(b, "-i", cid, "-u", "alice", "-P", "wonderland") == 0
        assert pub(b, "-i", cid, "-u", "bob", "-P", "builder", version="mqttv5") == 0
    assert pub(b, "-u", "alice", "-P", "wrong") == 0x04
    assert pub(b, "-u", "alice", "-P", "wrong", version="mqttv5") == 0x86
    assert pub(b, "-u", "mallory", "-P", "x") == 0x04
    assert pub(b, "-u", "mallory", "-P", "x", version="mqttv5") == 0x86
    assert pub(b, "-u", "alice") == 0x04, "no password"
    assert pub(b) == 0x05, "anonymous"
    assert pub(b, version="mqttv5") == 0x87
    # The same wrong password again (answered from the cache) is refused all the same.
    assert pub(b, "-u", "alice", "-P", "wrong") == 0x04
    watcher = paho(b, "auth-watcher", username="alice", password="wonderland")
    watcher.subscribe("$SYS/broker/clients/auth_failed", 0)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and b"8" not in [m.payload for m in watcher.inbox.messages]:
        time.sleep(0.1)
    assert b"8" in [m.payload for m in watcher.inbox.messages]
    watcher.disconnect()
    b.assert_alive()


def test_allow_anonymous_true_lets_anonymous_clients_in_beside_the_file(broker, users):
    b = broker(shards=1, args=["--password-file", str(users), "--allow-anonymous", "true"])
    assert "anonymous clients allowed" in b.stdout_path.read_text()
    assert pub(b) == 0
    assert pub(b, "-u", "alice", "-P", "wonderland") == 0
    assert pub(b, "-u", "alice", "-P", "wrong") == 0x04


def test_ringmq_passwd_writes_files_mosquitto_reads(tmp_path):
    f = tmp_path / "passwd"
    ringmq = str(ringmq_binary())
    subprocess.run([ringmq, "passwd", "-c", "-b", str(f), "carol", "c4rol"], check=True)
    subprocess.run([ringmq, "passwd", "-b", str(f), "dave", "d4ve"], check=True)
    subprocess.run([ringmq, "passwd", "-D", str(f), "dave"], check=True)
    assert f.stat().st_mode & 0o077 == 0, "readable by its owner only"
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    # `user root`: Mosquitto started as root would drop to a user that cannot read tmp_path.
    conf.write_text(f"listener {port} 127.0.0.1\npassword_file {f}\nallow_anonymous false\n"
                    "user root\n")
    m = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        endpoint = type("E", (), {"host": "127.0.0.1", "port": port})
        assert pub(endpoint, "-u", "carol", "-P", "c4rol") == 0
        assert pub(endpoint, "-u", "dave", "-P", "d4ve") == 5, "deleted"
    finally:
        m.terminate()
        m.wait(5)


def test_a_bad_password_file_stops_start_up_naming_key_and_line(tmp_path):
    f = tmp_path / "passwd"
    f.write_text("alice:$7$101$c2FsdA==$aGFzaA==\nbob:in-clear\n")
    res = subprocess.run([str(ringmq_binary()), "--listen", "127.0.0.1:1", "--password-file",
                          str(f)], capture_output=True, text=True, timeout=10)
    assert res.returncode != 0
    assert "auth.password_file" in res.stderr and "line 2 (bob)" in res.stderr, res.stderr
    assert "ringmq passwd -U" in res.stderr, res.stderr


def test_a_storm_of_wrong_passwords_is_answered_in_turns(broker, users):
    """More CONNECTs at once than a poller pass checks (32), each with another wrong
    password (no cache hit): every one gets 0x04, and a client already in is served."""
    from mqtt_raw import CONNACK, RawClient, connect
    b = broker(shards=1, args=["--password-file", str(users)])
    ok = paho(b, "storm-bystander", username="bob", password="builder")
    ok.subscribe("storm/t", 1)
    socks = [RawClient(b.host, b.port) for _ in range(200)]
    for i, c in enumerate(socks):
        c.send(connect(f"storm-{i}", username="alice", password=f"guess-{i}"))
    ok.publish("storm/t", "meanwhile", qos=1)
    codes = [c.expect(CONNACK, timeout=20).return_code for c in socks]
    assert codes == [0x04] * 200
    assert [m.payload for m in ok.inbox.wait_for(1)] == [b"meanwhile"]
    for c in socks:
        c.close()
    ok.disconnect()


@pytest.mark.parametrize("shards", [1, 2])
def test_a_listener_may_have_its_own_anonymous_policy(users, tmp_path, shards):
    """Anonymous clients on one listener, passwords on the other; the policy crosses
    hand-offs to the client's home shard. (Started by hand: the fixture's --listen would
    replace the file's TCP listeners.)"""
    strict, open_ = free_port(), free_port()
    conf = tmp_path / "listeners.toml"
    conf.write_text(f'[auth]\npassword_file = "{users}"\n'
                    f'[[listeners]]\nbind = "127.0.0.1:{strict}"\n'
                    f'[[listeners]]\nbind = "127.0.0.1:{open_}"\nallow_anonymous = true\n')
    proc = subprocess.Popen([str(ringmq_binary()), "--config", str(conf), "--shards",
                             str(shards)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
        assert any("ringmq auth" in ln for ln in lines), lines
        ep = lambda port: type("E", (), {"host": "127.0.0.1", "port": port})  # noqa: E731
        for shard in range(shards):
            cid = client_id_on_shard("anon", shard, shards)
            assert pub(ep(open_), "-i", cid) == 0
            assert pub(ep(strict), "-i", cid) == 0x05, "the other listener follows [auth]"
            assert pub(ep(strict), "-i", cid, "-u", "alice", "-P", "wonderland") == 0
        assert pub(ep(open_), "-u", "alice", "-P", "wrong") == 0x04, "passwords still checked"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("shards", [1, 2])
def test_banned_ids_users_and_addresses_are_refused_and_expired_bans_are_not(
        broker, tmp_path, shards):
    import socket
    from mqtt_raw import CONNACK, RawClient, connect
    bans = tmp_path / "bans.toml"
    bans.write_text('[[ban]]\nclientid = "bad-id"\n[[ban]]\nusername = "mallory"\n'
                    '[[ban]]\naddress = "127.0.0.77"\n'
                    '[[ban]]\nclientid = "old-id"\nuntil = 1\nreason = "long ago"\n')
    b = broker(shards=shards, args=["--config", str(_auth_conf(tmp_path, bans))])
    assert "4 ban(s)" in b.stdout_path.read_text()
    assert pub(b, "-i", "bad-id") == 0x05
    assert pub(b, "-i", "bad-id", version="mqttv5") == 0x8A
    assert pub(b, "-i", "someone", "-u", "mallory", "-P", "x", version="mqttv5") == 0x8A
    assert pub(b, "-i", "old-id") == 0, "the ban expired"
    assert pub(b, "-i", "fine") == 0
    for src, want in (("127.0.0.77", 0x05), ("127.0.0.78", 0)):
        s = socket.create_connection((b.host, b.port), timeout=5, source_address=(src, 0))
        c = RawClient.__new__(RawClient)
        c.sock, c.buf = s, b""
        c.send(connect(client_id_on_shard("from-addr", shards - 1, shards)))
        assert c.expect(CONNACK).return_code == want, src
        c.close()


def _auth_conf(tmp_path, bans):
    conf = tmp_path / "auth.toml"
    conf.write_text(f'[auth]\nban_file = "{bans}"\n')
    return conf


def test_a_bad_ban_file_stops_start_up_naming_the_entry(tmp_path):
    bans = tmp_path / "bans.toml"
    bans.write_text('[[ban]]\nclientid = "a"\n[[ban]]\naddress = "10.0.0.0/40"\n')
    res = subprocess.run([str(ringmq_binary()), "--listen", "127.0.0.1:1", "--config",
                          str(_auth_conf(tmp_path, bans))], capture_output=True, text=True,
                         timeout=10)
    assert res.returncode != 0
    assert "auth.ban_file" in res.stderr and "ban 2" in res.stderr, res.stderr


def test_sighup_rereads_the_password_file_and_a_bad_one_keeps_the_old(broker, users):
    import signal
    b = broker(shards=2, args=["--password-file", str(users)])
    assert pub(b, "-u", "carol", "-P", "c4rol") == 0x04
    subprocess.run([str(ringmq_binary()), "passwd", "-b", str(users), "carol", "c4rol"],
                   check=True)
    subprocess.run([str(ringmq_binary()), "passwd", "-D", str(users), "bob"], check=True)
    # bob's right password is in the shards' caches now: a reload must forget it.
    assert pub(b, "-u", "bob", "-P", "builder") == 0
    b.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "auth file(s) re-read" not in b.stderr():
        time.sleep(0.05)
    for i in range(2):
        cid = client_id_on_shard("reload", i, 2)
        assert pub(b, "-i", cid, "-u", "carol", "-P", "c4rol") == 0, "added"
        assert pub(b, "-i", cid, "-u", "bob", "-P", "builder") == 0x04, "deleted"
    users.write_text(users.read_text() + "broken line\n")
    b.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "old contents stay" not in b.stderr():
        time.sleep(0.05)
    assert "auth.password_file" in b.stderr() and "expected user:hash" in b.stderr()
    assert pub(b, "-u", "carol", "-P", "c4rol") == 0, "the old file is still in force"
    b.assert_alive()
