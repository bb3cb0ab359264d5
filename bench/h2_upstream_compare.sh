#!/usr/bin/env bash
# h2_upstream_compare.sh: an HTTP/2 (h2c) upstream vs an HTTP/1.1 upstream through one Portcullis
# (release, 1 shard, pinned), both in front of the same reference upstream (which answers
# HTTP/1.1 and h2c on one port), same run, interleaved rounds, same load generator:
#   gateway alone on PROXY_CPU (1); the generator and the reference upstream on LOAD_CPU (0).
# Modes (MODES, space separated): h2-h2c = h2c clients, h2c upstream; h2-http1 = h2c clients,
# HTTP/1.1 upstream; h1-http1 = HTTP/1.1 clients, HTTP/1.1 upstream (the plain path; it also
# runs against a build without the `protocol` key, for before/after figures).
# Reports req/s, p50, p99, failed requests and the gateway's CPU-µs per request (utime+stime of
# the gateway over the measured window / requests in it).
#
# Usage: bench/h2_upstream_compare.sh   (build first: cargo build --release -p portcullis -p portcullis-bench)
# Env:   DURATION=5 WARMUP=1 CONNS=16 STREAMS=10 ROUNDS=3 PROXY_CPU=1 LOAD_CPU=0
#        MODES="h2-h2c h2-http1 h1-http1" PORTCULLIS_BIN=target/release/portcullis OUT=file.md
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
DURATION=${DURATION:-5} WARMUP=${WARMUP:-1} CONNS=${CONNS:-16} STREAMS=${STREAMS:-10} ROUNDS=${ROUNDS:-3}
PROXY_CPU=${PROXY_CPU:-1} LOAD_CPU=${LOAD_CPU:-0}
MODES=${MODES:-h2-h2c h2-http1 h1-http1}
PORTCULLIS_BIN=${PORTCULLIS_BIN:-$TARGET_DIR/release/portcullis}
BENCH=$TARGET_DIR/release/portcullis-bench
UP_PORT=${UP_PORT:-19300} GW_PORT=${GW_PORT:-18680}

for tool in taskset jq; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install util-linux jq)" >&2; exit 1; }
done
[ -x "$BENCH" ] && [ -x "$PORTCULLIS_BIN" ] || { echo "build first: cargo build --release -p portcullis -p portcullis-bench" >&2; exit 1; }

WORK=$(mktemp -d /tmp/portcullis-h2up.XXXXXX)
# shellcheck source=lib/common.sh
. "$ROOT/bench/lib/common.sh"
# shellcheck source=lib/load_run.sh
. "$ROOT/bench/lib/load_run.sh"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do stop_pid "$p"; done
    [ -n "${KEEP:-}" ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

taskset -c "$LOAD_CPU" "$BENCH" upstream --listen "127.0.0.1:$UP_PORT" >"$WORK/up.log" 2>&1 &
PIDS+=($!)
wait_port "$UP_PORT" "${PIDS[0]}" 10 || die "the reference upstream did not start"

# /h2c/ goes to the upstream over h2c, everything else over HTTP/1.1 (the h2c upstream is only
# configured when a mode uses it, so the file also loads in builds without `protocol`).
H2C_UPSTREAM=""
case " $MODES " in *" h2-h2c "*)
    H2C_UPSTREAM="[[upstreams]]
name = \"up-h2c\"
protocol = \"h2c\"
endpoints = [\"127.0.0.1:$UP_PORT\"]
[[routes]]
prefix = \"/h2c/\"
upstream = \"up-h2c\""
esac
cat >"$WORK/portcullis.toml" <<TOML
[server]
shards = 1
[[listeners]]
bind = "127.0.0.1:$GW_PORT"
h2c = true
[http2]
max_concurrent_streams = $((STREAMS > 100 ? STREAMS : 100))
[[upstreams]]
name = "up-http1"
endpoints = ["127.0.0.1:$UP_PORT"]
# Above the requests in flight (CONNS x STREAMS), or the pool churns upstream connections.
pool = { max_idle_per_endpoint = $((CONNS * STREAMS * 2)) }
$H2C_UPSTREAM
[[routes]]
prefix = "/"
upstream = "up-http1"
TOML
taskset -c "$PROXY_CPU" "$PORTCULLIS_BIN" run --config "$WORK/portcullis.toml" >"$WORK/p.out" 2>"$WORK/p.log" &
GW=$!
PIDS+=($GW)
wait_port "$GW_PORT" "$GW" 20 || { cat "$WORK/p.log" >&2; die "portcullis did not start"; }

# One measured run of MODE: prints "rps p50 p99 failed cpu_us_per_req".
run() {
    local proto path
    case $1 in
        h2-h2c) proto=h2 path=/h2c/ ;;
        h2-http1) proto=h2 path=/http1/ ;;
        h1-http1) proto=h1 path=/http1/ ;;
        *) die "unknown mode $1" ;;
    esac
    measure_load "$GW" "$WORK/$1.json" "http://127.0.0.1:$GW_PORT$path" --proto "$proto" -c "$CONNS" -m "$STREAMS"
}

declare -A SUM
table() {
    echo "Portcullis $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), 1 shard on CPU $PROXY_CPU; generator + reference upstream on CPU $LOAD_CPU; cleartext; $CONNS connections ($STREAMS streams each for h2), ${WARMUP}s warm-up + ${DURATION}s measured"
    echo
    echo "| client -> upstream | round | req/s | p50 µs | p99 µs | failed | gateway CPU-µs/req |"
    echo "|---|---|---|---|---|---|---|"
    for round in $(seq "$ROUNDS"); do
        for mode in $MODES; do
            read -r rps p50 p99 failed cpu < <(run "$mode")
            echo "| $mode | $round | $rps | $p50 | $p99 | $failed | $cpu |"
            SUM[$mode]=$(( ${SUM[$mode]:-0} + rps ))
        done
    done
    echo
    for mode in $MODES; do echo "$mode: mean $(( SUM[$mode] / ROUNDS )) req/s"; done
}
if [ -n "${OUT:-}" ]; then table | tee "$OUT"; else table; fi
