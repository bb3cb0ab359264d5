#!/usr/bin/env python3
"""Health probes against the admin API while slow clients attack it (issue 20, item 3).

Starts BINARY (`portcullis`) with a one-shard config and an admin API on 127.0.0.1, runs
ATTACKERS client threads for 20 s and probes `GET /healthz` every 50 ms meanwhile; prints how
many probes got 200 and their latency (p50/p99/max). Modes:
  trickle  each attacker sends one byte every 5 s and reconnects when cut (the issue's attack)
  churn    each attacker sends one byte, waits until it is cut, and reconnects at once
Usage: bench/admin_slow_clients.py BINARY [ATTACKERS=40] [trickle|churn]
Loopback only; everything it starts is stopped before it exits.
"""
import socket
import subprocess
import sys
import tempfile
import threading
import time

binary = sys.argv[1]
attackers = int(sys.argv[2]) if len(sys.argv) > 2 else 40
mode = sys.argv[3] if len(sys.argv) > 3 else "trickle"
cfg = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
cfg.write('[server]\nshards = 1\npin_cpus = false\n[[listeners]]\nbind = "127.0.0.1:0"\n'
          '[admin]\nbind = "127.0.0.1:0"\ntoken = "0123456789abcdef0123"\n'
          '[[upstreams]]\nname = "a"\nendpoints = ["127.0.0.1:9"]\n')
cfg.close()
gw = subprocess.Popen([binary, "run", "--config", cfg.name], stdout=subprocess.PIPE,
                      stderr=subprocess.DEVNULL, text=True)
admin = None
for line in gw.stdout:
    if line.startswith("admin "):
        host, port = line.split()[1].rsplit(":", 1)
        admin = (host, int(port))
    if line.startswith("listening"):
        break
stop = False


def attacker():
    while not stop:
        try:
            s = socket.create_connection(admin, timeout=30)
            if mode == "churn":
                s.send(b"G")
                s.recv(10)  # returns when the gateway cuts it
            else:
                for b in b"GET /healthz HTTP/1.1\r\nX: " * 100:
                    if stop:
                        break
                    s.send(bytes([b]))
                    time.sleep(5)
            s.close()
        except OSError:
            time.sleep(0.05)


threads = [threading.Thread(target=attacker, daemon=True) for _ in range(attackers)]
for t in threads:
    t.start()
time.sleep(1)  # let the attackers connect (a load generator, not a test: no readiness signal)
ok, failed, lat = 0, 0, []
end = time.time() + 20
while time.time() < end:
    t0 = time.time()
    try:
        s = socket.create_connection(admin, timeout=2)
        s.settimeout(2)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        if s.recv(100).startswith(b"HTTP/1.1 200"):
            ok += 1
            lat.append(time.time() - t0)
        else:
            failed += 1
        s.close()
    except OSError:
        failed += 1
    time.sleep(0.05)
stop = True
gw.terminate()
gw.wait()
lat.sort()


def q(f):
    return lat[min(len(lat) - 1, int(f * len(lat)))] * 1000 if lat else float("nan")


print(f"{mode} x{attackers}: probes ok={ok} failed={failed} "
      f"p50={q(0.5):.2f}ms p99={q(0.99):.2f}ms max={q(1.0):.2f}ms")
