#!/usr/bin/env python3
"""RSS a broker holds per kept message: `burst` = 1,000 bursts of one retained 64-byte
PUBLISH followed by 600 QoS 0 PUBLISHes; `queued` = the same with a QoS 1 message for an
offline persistent session instead of the retained one; `many` = N retained messages in
batches. Usage: scripts/held_memory.py BROKER_BINARY burst|queued|many N"""
import os, subprocess, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests/python"))
import mqtt_raw as raw

binary, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
port = 22000 + os.getpid() % 1000
p = subprocess.Popen([binary, "--listen", f"127.0.0.1:{port}", "--shards", "1"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(1)
def rss():
    for line in open(f"/proc/{p.pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) * 1024
if mode == "queued":
    sub = raw.RawClient("127.0.0.1", port)
    sub.connect("rss-sub", clean=False)
    sub.subscribe(1, ("q/#", 1))
    sub.close()
c = raw.RawClient("127.0.0.1", port)
c.connect("rss-pub")
time.sleep(0.5)
before = rss()
filler = b"".join(raw.publish("noise/t", b"n" * 64) for _ in range(600))
if mode == "queued":
    for i in range(n):
        c.send(raw.publish(f"q/{i}", b"Q" * 64, qos=1, pid=i % 60000 + 1) + filler)
elif mode == "burst":
    for i in range(n):
        c.send(raw.publish(f"r/{i}", b"R" * 64, retain=True) + filler)
else:
    for k in range(0, n, 1000):
        c.send(b"".join(raw.publish(f"r/{i}", b"R" * 64, retain=True) for i in range(k, min(n, k + 1000))))
c.send(raw.packet(raw.PINGREQ, 0, b""))
while c.read(60).ptype != raw.PINGRESP: pass
time.sleep(2)  # a mimalloc collect pass (1 s)
after = rss()
print(f"{mode} n={n}: RSS {before/1e6:.1f} MB -> {after/1e6:.1f} MB, {(after-before)/n:.0f} B per kept message")
p.terminate(); p.wait()
