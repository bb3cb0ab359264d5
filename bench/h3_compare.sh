#!/usr/bin/env bash
# h3_compare.sh: HTTP/3 vs HTTP/2 over TLS through one Portcullis (release, 1 shard, pinned), in
# front of the reference upstream, same run, same generated certificate (ECDSA P-256), the same
# load generator (portcullis-bench load) with the same connections x streams, interleaved rounds:
#   gateway alone on PROXY_CPU (1); the generator and the reference upstream on LOAD_CPU (0).
# Reports req/s, p50, p99, failed requests and the gateway's CPU-µs per request (utime+stime of
# the gateway over the measured window / requests in it).
# Issue 9's target: HTTP/3 >= 60 % of
# HTTP/2 req/s with 0 failures.
#
# Usage: bench/h3_compare.sh     (build first: cargo build --release -p portcullis -p portcullis-bench)
# Env:   DURATION=5 WARMUP=1 CONNS=16 STREAMS=10 ROUNDS=3 PROXY_CPU=1 LOAD_CPU=0
#        PORTCULLIS_BIN=target/release/portcullis OUT=file.md (also print the table there)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
DURATION=${DURATION:-5} WARMUP=${WARMUP:-1} CONNS=${CONNS:-16} STREAMS=${STREAMS:-10} ROUNDS=${ROUNDS:-3}
PROXY_CPU=${PROXY_CPU:-1} LOAD_CPU=${LOAD_CPU:-0}
PORTCULLIS_BIN=${PORTCULLIS_BIN:-$TARGET_DIR/release/portcullis}
BENCH=$TARGET_DIR/release/portcullis-bench
UP_PORT=${UP_PORT:-19200} GW_PORT=${GW_PORT:-18643}

for tool in openssl taskset jq; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install openssl util-linux jq)" >&2; exit 1; }
done
[ -x "$BENCH" ] && [ -x "$PORTCULLIS_BIN" ] || { echo "build first: cargo build --release -p portcullis -p portcullis-bench" >&2; exit 1; }

WORK=$(mktemp -d /tmp/portcullis-h3.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    [ -n "${KEEP:-}" ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

# A CA and a server certificate it signs (webpki refuses a self-signed CA certificate as the
# server's own), so the generator verifies the server with --cacert like a real client.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench CA" \
    -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$WORK/key.pem" -out "$WORK/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$WORK/ext.cnf"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial -days 2 \
    -extfile "$WORK/ext.cnf" -out "$WORK/cert.pem" 2>/dev/null

port_open() { (exec 9<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { for _ in $(seq 100); do port_open "$1" && return 0; sleep 0.1; done; return 1; }
# shellcheck source=lib/load_run.sh
. "$ROOT/bench/lib/load_run.sh"

taskset -c "$LOAD_CPU" "$BENCH" upstream --listen "127.0.0.1:$UP_PORT" >"$WORK/up.log" 2>&1 &
PIDS+=($!)
wait_port "$UP_PORT"

cat >"$WORK/portcullis.toml" <<TOML
[server]
shards = 1
[[listeners]]
bind = "127.0.0.1:$GW_PORT"
[listeners.tls]
alpn = ["h2", "http/1.1"]
[[listeners.tls.certificates]]
cert = "$WORK/cert.pem"
key = "$WORK/key.pem"
[listeners.http3]
max_concurrent_streams = $((STREAMS > 100 ? STREAMS : 100))
[[upstreams]]
name = "up"
endpoints = ["127.0.0.1:$UP_PORT"]
# Above the requests in flight (CONNS x STREAMS), or the pool churns upstream connections.
pool = { max_idle_per_endpoint = $((CONNS * STREAMS * 2)) }
[[routes]]
prefix = "/"
upstream = "up"
TOML
taskset -c "$PROXY_CPU" "$PORTCULLIS_BIN" run --config "$WORK/portcullis.toml" >"$WORK/p.out" 2>"$WORK/p.log" &
GW=$!
PIDS+=($GW)
wait_port "$GW_PORT" || { echo "portcullis did not start:" >&2; cat "$WORK/p.log" >&2; exit 1; }

# One measured run: prints "rps p50 p99 failed cpu_us_per_req".
run() {
    measure_load "$GW" "$WORK/$1.json" "https://127.0.0.1:$GW_PORT/" --proto "$1" --cacert "$WORK/ca.pem" \
        -c "$CONNS" -m "$STREAMS"
}

declare -A SUM
table() {
    echo "Portcullis $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), 1 shard on CPU $PROXY_CPU; generator + upstream on CPU $LOAD_CPU; TLS 1.3 ECDSA P-256; $CONNS connections x $STREAMS streams, ${WARMUP}s warm-up + ${DURATION}s measured"
    echo
    echo "| protocol | round | req/s | p50 µs | p99 µs | failed | gateway CPU-µs/req |"
    echo "|---|---|---|---|---|---|---|"
    for round in $(seq "$ROUNDS"); do
        for proto in h2 h3; do
            read -r rps p50 p99 failed cpu < <(run "$proto")
            echo "| $proto (TLS) | $round | $rps | $p50 | $p99 | $failed | $cpu |"
            SUM[$proto]=$(( ${SUM[$proto]:-0} + rps ))
            SUM[$proto.failed]=$(( ${SUM[$proto.failed]:-0} + failed ))
        done
    done
    echo
    awk -v h2="${SUM[h2]}" -v h3="${SUM[h3]}" -v f="${SUM[h3.failed]}" 'BEGIN {
        printf "HTTP/3 / HTTP/2 req/s over %d rounds: %.0f %% (target >= 60 %%); HTTP/3 failed requests: %d\n", '"$ROUNDS"', h2 ? 100 * h3 / h2 : 0, f }'
}
if [ -n "${OUT:-}" ]; then table | tee "$OUT"; else table; fi
