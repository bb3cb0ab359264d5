#!/usr/bin/env bash
# tls_compare.sh: TLS HTTP/1.1 (wrk) and TLS HTTP/2 (h2load) through Portcullis (1 shard) and
# NGINX (1 worker), same certificate (ECDSA P-256, generated here), same pinning, same run:
#   proxy alone on PROXY_CPU (1); the load tool and the reference upstream on LOAD_CPU (0).
# Reports req/s, p99 (wrk) and the proxy's CPU-µs per request (utime+stime / requests).
#
# Usage: bench/tls_compare.sh          (build first: cargo build --release -p portcullis -p portcullis-bench)
# Env:   DURATION=5 CONNS=32 STREAMS=10 ROUNDS=2 PROXY_CPU=1 LOAD_CPU=0 GATEWAYS="portcullis nginx"
#        PORTCULLIS_BIN=target/release/portcullis
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
DURATION=${DURATION:-5} CONNS=${CONNS:-32} STREAMS=${STREAMS:-10} ROUNDS=${ROUNDS:-2}
PROXY_CPU=${PROXY_CPU:-1} LOAD_CPU=${LOAD_CPU:-0} GATEWAYS=${GATEWAYS:-portcullis nginx}
PORTCULLIS_BIN=${PORTCULLIS_BIN:-$TARGET_DIR/release/portcullis}
BENCH=$TARGET_DIR/release/portcullis-bench
UP_PORT=19100
declare -A PORT=([portcullis]=18443 [nginx]=18444)

for tool in wrk h2load nginx openssl taskset; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install wrk nghttp2-client nginx-light openssl util-linux)" >&2; exit 1; }
done
[ -x "$BENCH" ] && [ -x "$PORTCULLIS_BIN" ] || { echo "build first: cargo build --release -p portcullis -p portcullis-bench" >&2; exit 1; }

WORK=$(mktemp -d /tmp/portcullis-tls.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost" -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null

port_open() { (exec 9<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { for _ in $(seq 100); do port_open "$1" && return 0; sleep 0.1; done; return 1; }
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
CLK_TCK=$(getconf CLK_TCK)

taskset -c "$LOAD_CPU" "$BENCH" upstream --listen "127.0.0.1:$UP_PORT" >"$WORK/up.log" 2>&1 &
PIDS+=($!)
wait_port $UP_PORT

cat >"$WORK/portcullis.toml" <<TOML
[server]
shards = 1
[[listeners]]
bind = "127.0.0.1:${PORT[portcullis]}"
[listeners.tls]
alpn = ["h2", "http/1.1"]
[[listeners.tls.certificates]]
cert = "$WORK/cert.pem"
key = "$WORK/key.pem"
[[upstreams]]
name = "up"
endpoints = ["127.0.0.1:$UP_PORT"]
[[routes]]
prefix = "/"
upstream = "up"
TOML
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; worker_rlimit_nofile 20000;
pid $WORK/nginx/nginx.pid; error_log $WORK/nginx/error.log warn;
events { worker_connections 16384; }
http {
    access_log off; client_body_temp_path $WORK/nginx/cb; proxy_temp_path $WORK/nginx/px;
    keepalive_requests 1000000; keepalive_timeout 75s; http2_max_requests 1000000;
    upstream up { server 127.0.0.1:$UP_PORT; keepalive 1024; keepalive_requests 1000000; keepalive_timeout 60s; }
    server {
        listen 127.0.0.1:${PORT[nginx]} ssl http2 backlog=4096;
        ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3; ssl_session_tickets on;
        location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
CONF

declare -A GPID
taskset -c "$PROXY_CPU" "$PORTCULLIS_BIN" run --config "$WORK/portcullis.toml" >"$WORK/p.out" 2>"$WORK/p.log" &
GPID[portcullis]=$!; PIDS+=($!)
taskset -c "$PROXY_CPU" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" >"$WORK/nginx/out.log" 2>&1 &
GPID[nginx]=$!; PIDS+=($!)
for gw in $GATEWAYS; do wait_port "${PORT[$gw]}" || { echo "$gw did not start" >&2; exit 1; }; done

echo "| gateway | protocol | round | req/s | p99 | failed | proxy CPU-µs/req |"
echo "|---|---|---|---|---|---|---|"
for round in $(seq "$ROUNDS"); do
    for gw in $GATEWAYS; do
        url="https://localhost:${PORT[$gw]}/"
        # TLS HTTP/1.1, keep-alive connections (handshakes amortised).
        t0=$(ticks "${GPID[$gw]}")
        taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$url" >"$WORK/wrk.txt" 2>&1 || true
        t1=$(ticks "${GPID[$gw]}")
        reqs=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
        rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$WORK/wrk.txt")
        p99=$(awk '$1 == "99%" {print $2}' "$WORK/wrk.txt")
        errs=$(awk '/Non-2xx|Socket errors/ {e = e " " $0} END {print (e == "" ? 0 : e)}' "$WORK/wrk.txt")
        cpu=$(awk -v d=$((t1 - t0)) -v r="${reqs:-0}" -v hz="$CLK_TCK" 'BEGIN {printf "%.1f", r ? d * 1e6 / hz / r : 0}')
        echo "| $gw | TLS h1 (wrk -c$CONNS) | $round | $rps | $p99 | $errs | $cpu |"
        # TLS HTTP/2, CONNS connections x STREAMS concurrent streams.
        t0=$(ticks "${GPID[$gw]}")
        taskset -c "$LOAD_CPU" h2load -t1 -c"$CONNS" -m"$STREAMS" -D"$DURATION" "$url" >"$WORK/h2.txt" 2>&1 || true
        t1=$(ticks "${GPID[$gw]}")
        done_=$(awk '/^requests:/ {print $8}' "$WORK/h2.txt")
        failed=$(awk '/^requests:/ {print $10}' "$WORK/h2.txt")
        rps=$(awk '/^finished in/ {gsub(/,/, ""); printf "%.0f", $4}' "$WORK/h2.txt")
        p99="n/a"
        cpu=$(awk -v d=$((t1 - t0)) -v r="${done_:-0}" -v hz="$CLK_TCK" 'BEGIN {printf "%.1f", r ? d * 1e6 / hz / r : 0}')
        echo "| $gw | TLS h2 (h2load -c$CONNS -m$STREAMS) | $round | $rps | $p99 | ${failed:-?} | $cpu |"
    done
done
