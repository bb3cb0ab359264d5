#!/usr/bin/env bash
# Cost of rate limiting: wrk through ONE Portcullis process (one shard) on two routes of the same
# config, `/free` (no limit) and `/limited` (two limits that never trigger: per client IP and per
# header key + route), in interleaved rounds with the order rotated, so both rows share the same
# process, pinning and machine state. With REDIS=1 (default) the limits are reconciled through a
# real redis-server every 5 ms, and the sync thread's CPU counts in the gateway's CPU.
#
# Usage: bench/ratelimit.sh [--no-build]
#        env: DURATION=5s ROUNDS=3 CONNS=32 THREADS=1 LOAD_CPU=0 PROXY_CPU=1 REDIS=1
# Pinning as bench/compare.sh: upstream, redis and wrk on LOAD_CPU, the gateway on PROXY_CPU.
# Reports req/s, p99 and gateway CPU-µs per request (utime+stime / completed requests), medians.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-5s} ROUNDS=${ROUNDS:-3} CONNS=${CONNS:-32} THREADS=${THREADS:-1}
LOAD_CPU=${LOAD_CPU:-0} PROXY_CPU=${PROXY_CPU:-1} REDIS=${REDIS:-1}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
[ "${1:-}" = "--no-build" ] || cargo build --release -p portcullis -p portcullis-bench
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port_open() { (exec 9<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { for _ in $(seq 150); do port_open "$1" && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
p99_ms() { awk '$1 == "99%" { v = $2; m = 1; if (v ~ /us$/) m = 0.001; else if (v ~ /ms$/) m = 1; else if (v ~ /s$/) m = 1000;
    gsub(/[a-z]+$/, "", v); printf "%.3f\n", v * m }' "$1"; }

UP=$(free_port) GW=$(free_port) RP=$(free_port)
taskset -c "$LOAD_CPU" "$TARGET/release/portcullis-bench" upstream --listen "127.0.0.1:$UP" --cpu "$LOAD_CPU" \
    2>"$WORK/upstream.log" &
PIDS+=($!)
wait_port "$UP"
REDIS_LINE=""
if [ "$REDIS" = 1 ]; then
    taskset -c "$LOAD_CPU" redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no >"$WORK/redis.log" 2>&1 &
    PIDS+=($!)
    wait_port "$RP"
    REDIS_LINE="redis = \"127.0.0.1:$RP\""
fi
cat >"$WORK/gw.toml" <<TOML
[server]
shards = 1
watch_config = false

[[listeners]]
bind = "127.0.0.1:$GW"

[[upstreams]]
name = "up"
endpoints = ["127.0.0.1:$UP"]

[[routes]]
name = "free"
prefix = "/free"
upstream = "up"

[[routes]]
name = "limited"
prefix = "/limited"
upstream = "up"
rate_limits = ["ip", "key"]

[ratelimit]
$REDIS_LINE

[ratelimit.limits.ip]
key = ["client_ip"]
rate = 1000000000
burst = 1000000000

[ratelimit.limits.key]
key = ["header:x-api-key", "route"]
rate = 1000000000
burst = 1000000000
TOML
taskset -c "$PROXY_CPU" "$TARGET/release/portcullis" run --config "$WORK/gw.toml" --log warn >"$WORK/gw.log" 2>&1 &
GPID=$!
PIDS+=("$GPID")
wait_port "$GW"
cat >"$WORK/key.lua" <<'LUA'
wrk.headers["x-api-key"] = "bench-consumer"
LUA
if { exec 3>/dev/cpu_dma_latency; } 2>/dev/null && printf '\0\0\0\0' >&3; then
    echo "holding /dev/cpu_dma_latency at 0" >&2
else
    echo "cannot hold /dev/cpu_dma_latency: latencies include CPU wake-up time" >&2
fi
for path in free limited; do
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d2s -s "$WORK/key.lua" "http://127.0.0.1:$GW/$path" >/dev/null 2>&1 || true
done
order=(free limited)
for ((r = 0; r < ROUNDS; r++)); do
    for path in "${order[@]}"; do
        out="$WORK/$path-$r.txt"
        t0=$(cpu_ticks "$GPID")
        taskset -c "$LOAD_CPU" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$WORK/key.lua" \
            "http://127.0.0.1:$GW/$path" >"$out" 2>&1 || true
        t1=$(cpu_ticks "$GPID")
        reqs=$(awk '/requests in/ {print $1}' "$out")
        non2xx=$(awk '/Non-2xx/ {print $NF}' "$out")
        [ -z "$non2xx" ] || { echo "$path: $non2xx non-2xx responses (a limit triggered?)" >&2; exit 1; }
        echo "$(awk '/Requests\/sec/ {print $2}' "$out")" >>"$WORK/$path.rps"
        p99_ms "$out" >>"$WORK/$path.p99"
        awk -v t=$((t1 - t0)) -v n="$reqs" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f\n", t / hz * 1e6 / n}' >>"$WORK/$path.cpu"
        echo "round $r $path: $(tail -1 "$WORK/$path.rps") req/s, p99 $(tail -1 "$WORK/$path.p99") ms, $(tail -1 "$WORK/$path.cpu") CPU-µs/req" >&2
    done
    order=("${order[1]}" "${order[0]}")
done
echo
echo "| route | req/s (median) | p99 ms | gateway CPU-µs/req | rounds |"
echo "|---|---|---|---|---|"
for path in free limited; do
    echo "| /$path | $(median <"$WORK/$path.rps") | $(median <"$WORK/$path.p99") | $(median <"$WORK/$path.cpu") | $ROUNDS x $DURATION |"
done
echo
echo "(one shard on CPU $PROXY_CPU; upstream, wrk -t$THREADS -c$CONNS$([ "$REDIS" = 1 ] && echo ", redis-server") on CPU $LOAD_CPU; /limited = 2 limits that never trigger$([ "$REDIS" = 1 ] && echo ", reconciled with Redis every 5 ms"))"
