#!/usr/bin/env python3
"""Measures the kernel's slab memory per idle, accepted loopback TCP socket.

Opens N client/server pairs on 127.0.0.1, exchanges one CONNECT-sized message each way
(so every socket has carried data, like an MQTT client after CONNACK), drains it, and
reports the growth of /proc/slabinfo (root only) per socket, cache by cache. The figure
feeds check.sh --kernel-bytes-per-socket. Python's own objects are not in slab, so they do
not count; other processes' activity on the host adds noise: run it two or three times.
Needs 2N+10 open files. Usage: sudo python3 measure_socket_bytes.py [N]   (default 5000)
"""
import socket
import sys


def slab():
    caches = {}
    with open("/proc/slabinfo") as f:
        for line in f.readlines()[2:]:
            fields = line.split()
            caches[fields[0]] = int(fields[1]) * int(fields[3])  # active objects x size
    return caches


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    pairs = []
    before = slab()
    for _ in range(n):
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        pairs.append((client, server))
    for client, server in pairs:
        client.send(b"\x10\x0c" + b"x" * 12)  # a CONNECT-sized packet
        server.recv(64)
        server.send(b"\x20\x02\x00\x00")  # CONNACK
        client.recv(64)
    after = slab()
    sockets = 2 * n
    total = 0
    rows = []
    for name, size in after.items():
        delta = size - before.get(name, 0)
        total += delta
        if abs(delta) >= sockets * 8:
            rows.append((delta, name))
    for delta, name in sorted(rows, reverse=True):
        print(f"{name:24s} {delta / sockets:8.0f} B/socket")
    print(f"total slab growth: {total / sockets:.0f} B/socket over {sockets} sockets")


if __name__ == "__main__":
    main()
