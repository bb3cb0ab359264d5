#!/usr/bin/env python3
"""Reset streams vs upstream connections (issue 20, item 2), bounded in time.

One h2c connection opens a batch of GETs every 100 ms and resets (RST_STREAM CANCEL) each batch
100 ms later, at R resets/s, for 6 s, against an upstream that answers after 2 s. Samples the
ESTABLISHED connections on the upstream's port (/proc/net/tcp) every 10 ms and reports the most
seen at once, with the gateway's max_concurrent_streams (100, the default).

usage: bench/h2_reset_upstream.py BINARY [rates=50,150,190]
Stdlib only. Loopback only; everything it starts is stopped.
"""

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, stream, payload=b""):
    n = len(payload)
    return bytes([n >> 16, (n >> 8) & 255, n & 255, kind, flags]) + stream.to_bytes(4, "big") + payload


def lit(name, value):
    return bytes([0, len(name)]) + name + bytes([len(value)]) + value


BLOCK = lit(b":method", b"GET") + lit(b":scheme", b"http") + lit(b":path", b"/api/slow") + lit(b":authority", b"t")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def established(port):
    n = 0
    local = f":{port:04X}"
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            p = line.split()
            if p[1].endswith(local) and p[3] == "01":
                n += 1
    return n


def upstream(listener, stop):
    def serve(c):
        c.settimeout(2.0)
        try:
            while True:
                if not c.recv(65536):
                    return
                t = time.time() + 2.0
                while time.time() < t:
                    c.settimeout(max(0.01, t - time.time()))
                    try:
                        if not c.recv(65536):
                            return
                    except socket.timeout:
                        break
                c.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        except OSError:
            pass
        finally:
            c.close()

    listener.settimeout(0.2)
    while not stop.is_set():
        try:
            c, _ = listener.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def run(binary, rate):
    up = socket.socket()
    up.bind(("127.0.0.1", 0))
    up.listen(4096)
    up_port = up.getsockname()[1]
    stop = threading.Event()
    threading.Thread(target=upstream, args=(up, stop), daemon=True).start()
    port = free_port()
    tmp = tempfile.mkdtemp()
    cfg = os.path.join(tmp, "gw.toml")
    with open(cfg, "w") as f:
        f.write(f"""[server]\nshards = 1\npin_cpus = false\nwatch_config = false\n
[[listeners]]\nname = "h2c"\nbind = "127.0.0.1:{port}"\nh2c = true\n
[http2]\nmax_resets_per_second = 200\nmax_pending_resets = 20\n
[[upstreams]]\nname = "app"\nendpoints = ["127.0.0.1:{up_port}"]\n
[[routes]]\nprefix = "/api"\nupstream = "app"\n""")
    gw = subprocess.Popen([binary, "run", "--config", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(PREFACE + frame(4, 0, 0))
        # Drain whatever the gateway sends (acks its SETTINGS).
        def reader():
            try:
                while True:
                    d = s.recv(65536)
                    if not d:
                        return
                    if b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" in d[:64]:
                        pass
            except OSError:
                return

        threading.Thread(target=reader, daemon=True).start()
        s.sendall(frame(4, 1, 0))
        most = [0]
        done = threading.Event()

        def sampler():
            while not done.is_set():
                most[0] = max(most[0], established(up_port))
                time.sleep(0.01)

        threading.Thread(target=sampler, daemon=True).start()
        per_batch = max(1, rate // 10)
        sid = 1
        prev = []
        end = time.time() + 6
        while time.time() < end:
            ids = [sid + 2 * i for i in range(per_batch)]
            sid += 2 * per_batch
            out = b"".join(frame(3, 0, i, (8).to_bytes(4, "big")) for i in prev)
            out += b"".join(frame(1, 5, i, BLOCK) for i in ids)
            try:
                s.sendall(out)
            except OSError:
                break
            prev = ids
            time.sleep(0.1)
        time.sleep(0.5)
        done.set()
        s.close()
        return most[0], sid // 2
    finally:
        stop.set()
        gw.terminate()
        gw.wait(timeout=30)
        up.close()


def main():
    binary = sys.argv[1]
    rates = [int(r) for r in (sys.argv[2] if len(sys.argv) > 2 else "50,150,190").split(",")]
    for r in rates:
        most, streams = run(binary, r)
        print(f"{r} resets/s: {streams} streams opened and reset over 6 s; most upstream connections at once: {most} "
              f"(stream limit 100)")
    print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
