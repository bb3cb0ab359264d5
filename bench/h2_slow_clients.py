#!/usr/bin/env python3
"""Slow HTTP/2 clients against the real binary (issue 20, item 1), bounded in time.

Opens N connections (h2c and TLS with ALPN h2) that each send the preface, SETTINGS and a HEADERS
frame header announcing 100 bytes, then trickle one byte of the block every 300 ms. Reports how
long after its HEADERS frame header each connection was closed by the gateway (every one must be
within header_timeout + 1 s), and a normal h2c client's latency (p50/p99 of sequential requests
answered locally, 404) before and while the slow clients are connected.

usage: bench/h2_slow_clients.py BINARY [N=2000] [header_timeout_s=2]
Stdlib only; openssl CLI for the test certificate. Loopback only; everything it starts is stopped.
"""

import multiprocessing
import os
import selectors
import socket
import ssl
import subprocess
import sys
import tempfile
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, stream, payload=b""):
    n = len(payload)
    return bytes([n >> 16, (n >> 8) & 255, n & 255, kind, flags]) + stream.to_bytes(4, "big") + payload


def lit(name, value):
    return bytes([0, len(name)]) + name + bytes([len(value)]) + value


def get_block(path):
    return lit(b":method", b"GET") + lit(b":scheme", b"http") + lit(b":path", path) + lit(b":authority", b"t")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def normal_latencies(port, count=300):
    """Sequential GETs on one h2c connection; per-request seconds."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # A large connection window: the responses' bodies never wait for WINDOW_UPDATEs.
    s.sendall(PREFACE + frame(4, 0, 0) + frame(8, 0, 0, (1 << 30).to_bytes(4, "big")))
    buf = b""
    out = []
    for i in range(count):
        sid = 2 * i + 1
        t = time.perf_counter()
        s.sendall(frame(1, 0x5, sid, get_block(b"/nowhere")))
        done = False
        while not done:
            while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
                n = int.from_bytes(buf[:3], "big")
                k, fl, st = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
                if k == 6 and fl & 1 == 0:
                    s.sendall(frame(6, 1, 0, buf[9:9 + n]))
                if k == 4 and fl & 1 == 0:
                    s.sendall(frame(4, 1, 0))
                buf = buf[9 + n:]
                if st == sid and fl & 1 and k in (0, 1):
                    done = True
            if not done:
                d = s.recv(65536)
                if not d:
                    raise RuntimeError("normal connection closed")
                buf += d
        out.append(time.perf_counter() - t)
    s.close()
    return out


def normal_in_process(port, q):
    """Normal-client latencies from a separate process (no GIL shared with the slow clients)."""
    q.put(normal_latencies(port, 1000))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def main():
    binary = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    ht = float(sys.argv[3]) if len(sys.argv) > 3 else 2.0
    tmp = tempfile.mkdtemp()
    crt, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"], check=True, capture_output=True)
    plain, tls = free_port(), free_port()
    cfg = os.path.join(tmp, "gw.toml")
    with open(cfg, "w") as f:
        f.write(f"""[server]\nshards = 2\npin_cpus = false\nwatch_config = false\n
[[listeners]]\nname = "h2c"\nbind = "127.0.0.1:{plain}"\nh2c = true\n
[[listeners]]\nname = "tls"\nbind = "127.0.0.1:{tls}"\n[listeners.tls]\nalpn = ["h2"]
[[listeners.tls.certificates]]\ncert = "{crt}"\nkey = "{key}"\n
[http]\nheader_timeout = "{int(ht)}s"\n
[[upstreams]]\nname = "app"\nendpoints = ["127.0.0.1:9"]\n
[[routes]]\nprefix = "/api"\nupstream = "app"\n""")
    log = open(os.path.join(tmp, "gw.log"), "w")
    print(f"gateway log: {log.name}")
    gw = subprocess.Popen([binary, "run", "--config", cfg], stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", plain), timeout=1).close()
                socket.create_connection(("127.0.0.1", tls), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        base = normal_latencies(plain)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        sel = selectors.DefaultSelector()
        started = {}
        conns = []
        closed = {}
        hello = PREFACE + frame(4, 0, 0) + bytes([0, 0, 100, 1, 5, 0, 0, 0, 1])
        state = {"next": time.perf_counter() + 0.3}

        def pump(timeout):
            # Notes closes as they happen and trickles one byte per 300 ms to each open one.
            for key_, _ in sel.select(timeout=timeout):
                s = key_.fileobj
                try:
                    d = s.recv(65536)
                except (ssl.SSLWantReadError, BlockingIOError):
                    continue
                except OSError:
                    d = b""
                if not d:
                    closed[s] = time.perf_counter()
                    sel.unregister(s)
            if time.perf_counter() >= state["next"]:
                state["next"] = time.perf_counter() + 0.3
                for s in conns:
                    if s not in closed:
                        try:
                            s.send(b"\0")
                        except (OSError, ssl.SSLError):
                            pass

        q = multiprocessing.Queue()
        normal = multiprocessing.Process(target=normal_in_process, args=(plain, q))
        t_open = time.perf_counter()
        normal.start()
        for i in range(n):
            if i % 2 == 0:
                s = socket.create_connection(("127.0.0.1", plain))
                kind = "h2c"
            else:
                raw = socket.create_connection(("127.0.0.1", tls))
                s = ctx.wrap_socket(raw, server_hostname="localhost")
                kind = "tls"
            s.sendall(hello)
            started[s] = (time.perf_counter(), kind)
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
            conns.append(s)
            if i % 5 == 0:
                pump(0)
        t_opened = time.perf_counter() - t_open
        end = time.perf_counter() + ht + 30
        while len(closed) < n and time.perf_counter() < end:
            pump(0.02)
        loaded = q.get(timeout=120)
        normal.join(timeout=10)
        lat = {"h2c": [], "tls": []}
        for s, (t0, kind) in started.items():
            if s in closed:
                lat[kind].append(closed[s] - t0)
        for kind in ("h2c", "tls"):
            xs = lat[kind]
            late = sum(1 for x in xs if x > ht + 1)
            print(f"{kind}: {len(xs)}/{n // 2} closed; after HEADERS start: max {max(xs):.2f}s p50 {pct(xs, .5):.2f}s; "
                  f"later than header_timeout+1s ({ht + 1:.0f}s): {late}")
        print(f"opening {n} slow connections took {t_opened:.1f}s (the normal client ran meanwhile)")
        print(f"normal client (sequential local 404s on one h2c connection; 300 unloaded, 1000 while the slow clients open and close): unloaded p50 {pct(base, .5) * 1e3:.2f} ms "
              f"p99 {pct(base, .99) * 1e3:.2f} ms; with slow clients p50 {pct(loaded, .5) * 1e3:.2f} ms "
              f"p99 {pct(loaded, .99) * 1e3:.2f} ms (ratio {pct(loaded, .99) / pct(base, .99):.2f})")
        print(f"load average: {os.getloadavg()}")
        for s in conns:
            s.close()
    finally:
        gw.terminate()
        gw.wait(timeout=30)


if __name__ == "__main__":
    main()
