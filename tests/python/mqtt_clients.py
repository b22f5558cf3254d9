"""Real MQTT clients for the integration tests: paho-mqtt 2.x and Debian's mosquitto_pub/_sub.

Role: wraps each client so a test can connect, subscribe, publish and wait for messages with a
deadline on every wait. It owns the message collector and the subprocess plumbing for the
mosquitto command-line clients. It must never retry, reconnect or acknowledge on its own
beyond what the real client library does, so the broker's behaviour is what the test sees.
"""

import subprocess
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt

V31, V311, V5 = mqtt.MQTTv31, mqtt.MQTTv311, mqtt.MQTTv5
PROTOCOL_NAMES = {V31: "v3.1", V311: "v3.1.1", V5: "v5"}
CLI_PROTOCOL = {V31: "mqttv31", V311: "mqttv311", V5: "mqttv5"}


@dataclass
class Msg:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool = False


class Collector:
    """Thread-safe list of received messages with wait-for-N under a deadline."""

    def __init__(self):
        self._msgs = []
        self._cond = threading.Condition()

    def add(self, msg: Msg):
        with self._cond:
            self._msgs.append(msg)
            self._cond.notify_all()

    @property
    def messages(self) -> list:
        with self._cond:
            return list(self._msgs)

    def wait_for(self, n: int, timeout: float = 5.0) -> list:
        """Block until at least n messages arrived; AssertionError with what came if not."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._msgs) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {n} messages within {timeout}s, got {len(self._msgs)}: "
                        f"{self._msgs[:10]}")
                self._cond.wait(left)
            return list(self._msgs)

    def expect_exactly(self, n: int, timeout: float = 5.0, settle: float = 0.5) -> list:
        """Wait for n messages, then assert no extra one arrives during `settle` seconds."""
        self.wait_for(n, timeout)
        time.sleep(settle)
        got = self.messages
        assert len(got) == n, f"expected exactly {n} messages, got {len(got)}: {got[:10]}"
        return got


class Paho:
    """A paho-mqtt 2.x client on its own network thread, with blocking helpers."""

    def __init__(self, broker, client_id="", protocol=V311, clean=True, keepalive=60,
                 will=None, username=None, password=None):
        self.broker = broker
        self.protocol = protocol
        self.clean = clean
        self.keepalive = keepalive
        kw = {} if protocol == V5 else {"clean_session": clean}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=protocol, reconnect_on_failure=False, **kw)
        if will is not None:
            topic, payload, qos, retain = will
            self.client.will_set(topic, payload, qos, retain)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.inbox = Collector()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connack_rc = None
        self.session_present = None
        self._subacks = {}
        self._suback_cond = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    def _on_connect(self, _client, _ud, flags, reason_code, _props):
        self.connack_rc = reason_code.value
        self.session_present = bool(flags.session_present)
        self.connected.set()

    def _on_disconnect(self, _client, _ud, _flags, _reason_code, _props):
        self.disconnected.set()

    def _on_message(self, _client, _ud, m):
        self.inbox.add(Msg(m.topic, bytes(m.payload), m.qos, bool(m.retain), bool(m.dup)))

    def _on_subscribe(self, _client, _ud, mid, reason_codes, _props):
        with self._suback_cond:
            self._subacks[mid] = [rc.value for rc in reason_codes]
            self._suback_cond.notify_all()

    def connect(self, timeout: float = 5.0) -> "Paho":
        kw = {"clean_start": self.clean} if self.protocol == V5 else {}
        self.client.connect(self.broker.host, self.broker.port, self.keepalive, **kw)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            self.stop()
            raise AssertionError(f"no CONNACK within {timeout}s")
        assert self.connack_rc == 0, f"CONNECT refused: {self.connack_rc}"
        return self

    def subscribe(self, topic: str, qos: int = 0, timeout: float = 5.0) -> list:
        """Subscribe and wait for the SUBACK; returns the granted QoS list."""
        rc, mid = self.client.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS, f"subscribe failed locally: {rc}"
        deadline = time.monotonic() + timeout
        with self._suback_cond:
            while mid not in self._subacks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no SUBACK for {topic!r} within {timeout}s")
                self._suback_cond.wait(left)
            return self._subacks.pop(mid)

    def publish(self, topic, payload, qos=0, retain=False, wait=True, timeout=5.0):
        info = self.client.publish(topic, payload, qos, retain)
        if wait:
            info.wait_for_publish(timeout)
            assert info.is_published(), f"publish to {topic!r} not completed within {timeout}s"
        return info

    def disconnect(self, timeout: float = 5.0):
        """Clean DISCONNECT, then stop the network thread."""
        self.client.disconnect()
        self.disconnected.wait(timeout)
        self.client.loop_stop()

    def stop(self):
        """Stop the network thread without a DISCONNECT packet if still connected."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()


def paho(broker, client_id="", protocol=V311, clean=True, **kw) -> Paho:
    """A connected Paho client."""
    return Paho(broker, client_id, protocol, clean, **kw).connect()


class MosquittoSub:
    """mosquitto_sub as a subprocess; collects each message with its QoS and retain flag."""

    def __init__(self, broker, topic, qos=0, count=1, timeout=10, protocol=V311, extra=()):
        # stdbuf: mosquitto_sub block-buffers stdout into a pipe; lines are needed as they come.
        cmd = ["stdbuf", "-oL", "mosquitto_sub", "-h", broker.host, "-p", str(broker.port),
               "-t", topic, "-q", str(qos), "-C", str(count), "-W", str(timeout), "-d",
               "-V", CLI_PROTOCOL[protocol], "-F", "MSG %q %r %t %p", *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.inbox = Collector()
        self.lines = []
        self.subscribed = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self.subscribed.wait(5):
            self.proc.kill()
            raise AssertionError(f"mosquitto_sub did not get a SUBACK: {self.lines}")

    def _read(self):
        # -d prints protocol traces (used to see the SUBACK); -F prints one line per message
        # with its delivered QoS and retain flag (topics in these tests hold no spaces).
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            if "received SUBACK" in line:
                self.subscribed.set()
            elif line.startswith("MSG "):
                _, q, r, topic, *payload = line.split(" ", 4)
                self.inbox.add(Msg(topic, (payload[0] if payload else "").encode(), int(q),
                                   r == "1"))

    def wait(self, timeout: float = 15.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._reader.join(2)


def mosquitto_pub(broker, topic, payload, qos=0, retain=False, protocol=V311, extra=(),
                  timeout=10.0):
    """Run mosquitto_pub once; asserts it exits 0."""
    cmd = ["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-t", topic,
           "-m", payload, "-q", str(qos), "-V", CLI_PROTOCOL[protocol], *extra]
    if retain:
        cmd.append("-r")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"mosquitto_pub failed ({res.returncode}): {res.stderr}"
