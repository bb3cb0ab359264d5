#!/usr/bin/env bash
# auth_wrk.sh: the end-to-end cost of JWT authentication through the real gateway. One gateway
# (1 shard, pinned to PROXY_CPU) with two routes to the same reference upstream: /open
# (auth = "none") and /jwt (a valid HS256 bearer token, verified then served from the per-shard
# cache, identity headers injected, token stripped). wrk alternates between them in the same run;
# the gateway's CPU time per request (utime+stime from /proc) is the figure to compare.
#
# Usage: bench/auth_wrk.sh [--no-build]   (env: DURATION=5s ROUNDS=3 CONNS=32 CACHE=10000)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5s}; ROUNDS=${ROUNDS:-3}; CONNS=${CONNS:-32}; CACHE=${CACHE:-10000}
PROXY_CPU=${PROXY_CPU:-1}; LOAD_CPU=${LOAD_CPU:-0}
UP_PORT=${UP_PORT:-19301}; GW_PORT=${GW_PORT:-19302}
SECRET="bench-secret-bench-secret-bench-secret!!"

command -v wrk >/dev/null || { echo "wrk missing: apt-get install wrk" >&2; exit 1; }
[ "${1:-}" = "--no-build" ] || cargo build --release -p portcullis -p portcullis-bench
WORK=$(mktemp -d); PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
exp=$(( $(date +%s) + 3600 ))
header=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
payload=$(printf '{"iss":"https://idp.bench/","aud":"api","sub":"user-42","exp":%s,"scope":"read write","tenant":"acme"}' "$exp" | b64url)
sig=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -hmac "$SECRET" -binary | b64url)
TOKEN="$header.$payload.$sig"

cat >"$WORK/gw.toml" <<TOML
[server]
shards = 1
pin_cpus = false
watch_config = false
[[listeners]]
bind = "127.0.0.1:$GW_PORT"
[[upstreams]]
name = "up"
endpoints = ["127.0.0.1:$UP_PORT"]
[auth]
cache_entries = $CACHE
[[auth.jwt]]
name = "bench"
issuer = "https://idp.bench/"
audiences = ["api"]
algorithms = ["HS256"]
keys = [{ secret = "$SECRET" }]
[[routes]]
prefix = "/open"
upstream = "up"
auth = "none"
[[routes]]
prefix = "/jwt"
upstream = "up"
TOML

taskset -c "$LOAD_CPU" target/release/portcullis-bench upstream --listen "127.0.0.1:$UP_PORT" >"$WORK/up.log" 2>&1 &
PIDS+=($!)
taskset -c "$PROXY_CPU" target/release/portcullis run --config "$WORK/gw.toml" >"$WORK/gw.out" 2>"$WORK/gw.log" &
GW=$!; PIDS+=($GW)
for _ in $(seq 100); do grep -q listening "$WORK/gw.out" 2>/dev/null && break; sleep 0.1; done
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$GW_PORT/jwt/x")
[ "$code" = 200 ] || { echo "token refused ($code)"; cat "$WORK/gw.log"; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$GW/stat"; }
hz=$(getconf CLK_TCK)
run() { # run PATH [header] -> "req/s cpu-us/req p99"
    local t0 t1 out reqs
    t0=$(cpu_ticks)
    if [ -n "${2:-}" ]; then
        out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" --latency -H "$2" "http://127.0.0.1:$GW_PORT$1")
    else
        out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$GW_PORT$1")
    fi
    t1=$(cpu_ticks)
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    echo "$(echo "$out" | awk '/Requests\/sec/ {print $2}') $(awk -v d=$((t1 - t0)) -v hz="$hz" -v n="$reqs" 'BEGIN {printf "%.2f", d * 1e6 / hz / n}') $(echo "$out" | awk '$1 == "99%" {print $2}')"
}
echo "| round | route | req/s | gateway CPU-us/req | p99 |"
echo "|---|---|---|---|---|"
for r in $(seq "$ROUNDS"); do
    read -r rps cpu p99 < <(run /open/x); echo "| $r | no auth | $rps | $cpu | $p99 |"
    read -r rps cpu p99 < <(run /jwt/x "Authorization: Bearer $TOKEN"); echo "| $r | JWT (HS256, cache $CACHE) | $rps | $cpu | $p99 |"
done
