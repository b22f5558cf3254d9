#!/usr/bin/env python3
"""Slow consumer run: one QoS 1 subscriber that acknowledges 1,000 messages a second, 10 QoS 1
publishers at full speed (ringmq-bench pub, window 16) into it, and an unrelated p2p pair
beside them, for --duration seconds. Prints one JSON line: what the publishers had
acknowledged, what the slow subscriber received (unique, after a drain), the broker's peak
RSS, and the unrelated pair's latency percentiles.

Standard library only. The broker is started by this script, pinned to --broker-cpus; the
clients run on --client-cpus. Usage:

  scripts/slow_consumer.py [--broker 'CMD with {port}'] [--duration 60] [--rate 1000]
"""

import argparse
import json
import os
import socket
import struct
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.environ.get("BENCH", os.path.join(ROOT, "target/release/ringmq-bench"))
RINGMQ = os.environ.get("RINGMQ", os.path.join(ROOT, "target/release/ringmq"))


def mqtt_str(s: bytes) -> bytes:
    return struct.pack("!H", len(s)) + s


def packet(ptype: int, flags: int, body: bytes) -> bytes:
    n, enc = len(body), bytearray()
    while True:
        b, n = n % 128, n // 128
        enc.append(b | (0x80 if n else 0))
        if not n:
            break
    return bytes([(ptype << 4) | flags]) + bytes(enc) + body


class SlowSubscriber(threading.Thread):
    """Reads and acknowledges at most `rate` PUBLISHes a second; counts unique messages."""

    def __init__(self, port: int, rate: int):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port))
        body = mqtt_str(b"MQTT") + bytes([4, 0x02]) + struct.pack("!H", 600) + mqtt_str(b"slow-sub")
        self.sock.sendall(packet(1, 0, body))
        self.buf = b""
        self._next()  # CONNACK
        self.sock.sendall(packet(8, 2, struct.pack("!H", 1) + mqtt_str(b"slow/#") + b"\x01"))
        self._next()  # SUBACK
        self.rate = rate
        self.seen = set()
        self.received = 0
        self.stop = False
        self.disconnected = False

    def _next(self):
        while True:
            if len(self.buf) >= 2:
                mult, length, i = 1, 0, 1
                while i < len(self.buf):
                    b = self.buf[i]
                    length += (b & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        break
                else:
                    i = None
                if i is not None and len(self.buf) >= i + length:
                    first, body = self.buf[0], self.buf[i:i + length]
                    self.buf = self.buf[i + length:]
                    return first, body
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("broker closed the slow subscriber")
            self.buf += chunk

    def run(self):
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        try:
            while not self.stop:
                first, body = self._next()
                if first >> 4 != 3:
                    continue
                tlen = struct.unpack("!H", body[:2])[0]
                topic = body[2:2 + tlen]
                qos = (first >> 1) & 3
                off = 2 + tlen
                pid = struct.unpack("!H", body[off:off + 2])[0] if qos else None
                payload = body[off + (2 if qos else 0):]
                self.seen.add((topic, payload[:24]))
                self.received += 1
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                next_at = max(next_at + interval, time.monotonic() - 0.05)
                if pid is not None:
                    self.sock.sendall(packet(4, 0, struct.pack("!H", pid)))
        except (ConnectionError, OSError):
            self.disconnected = True


def rss_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", default=f"{RINGMQ} --listen 127.0.0.1:{{port}} --shards 1")
    ap.add_argument("--port", type=int, default=18900)
    ap.add_argument("--duration", type=int, default=60)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--broker-cpus", default="0")
    ap.add_argument("--client-cpus", default="1")
    a = ap.parse_args()
    cmd = a.broker.replace("{port}", str(a.port))
    broker = subprocess.Popen(["taskset", "-c", a.broker_cpus, "bash", "-c", "exec " + cmd],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", a.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        os.sched_setaffinity(0, {int(c) for c in a.client_cpus.split(",")})
        sub = SlowSubscriber(a.port, a.rate)
        sub.start()
        common = ["-p", str(a.port), "-q", "1", "-I", "0", "--duration", str(a.duration), "--json"]
        pub = subprocess.Popen([BENCH, "pub", "-c", "10", "-t", "slow/%i", "--inflight", "16",
                                "-s", "64", "--prefix", "slowpub"] + common, stdout=subprocess.PIPE, text=True)
        p2p = subprocess.Popen([BENCH, "p2p", "-c", "1", "-q", "1", "-I", "10", "-p", str(a.port),
                                "--duration", str(a.duration), "--json", "--prefix", "p2p"],
                               stdout=subprocess.PIPE, text=True)
        peak = 0
        while pub.poll() is None or p2p.poll() is None:
            peak = max(peak, rss_of(broker.pid))
            time.sleep(0.5)
        pub_r = json.loads(pub.stdout.read())
        p2p_r = json.loads(p2p.stdout.read())
        acked = pub_r["messages"]["acked"]
        deadline = time.monotonic() + 60
        while len(sub.seen) < acked and time.monotonic() < deadline and not sub.disconnected:
            peak = max(peak, rss_of(broker.pid))
            time.sleep(0.2)
        sub.stop = True
        lat = p2p_r["latency_us"]
        print(json.dumps({
            "broker": cmd, "duration_s": a.duration, "subscriber_rate": a.rate,
            "publishers_acked": acked, "subscriber_unique": len(sub.seen),
            "subscriber_received": sub.received, "lost": acked - len(sub.seen),
            "subscriber_disconnected": sub.disconnected, "broker_rss_peak_mb": round(peak / 1e6, 1),
            "p2p": {"received": p2p_r["messages"]["unique"], "lost": p2p_r["messages"]["lost"],
                    "p50_ms": lat["p50"] / 1000, "p99_ms": lat["p99"] / 1000,
                    "p999_ms": lat["p999"] / 1000, "max_ms": lat["max"] / 1000},
        }))
    finally:
        broker.terminate()
        broker.wait(10)


if __name__ == "__main__":
    main()
