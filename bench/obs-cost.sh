#!/usr/bin/env bash
# obs-cost.sh: what observability costs. Two Portcullis processes (1 shard each, same pinned
# CPU) in front of the reference upstream, measured in interleaved rounds in the same run:
#   off: [metrics] enabled = false, [access_log] off, [tracing] enabled = false
#   on:  per-route metrics + JSON access log to a file + W3C trace context
# Reports req/s, p99 and the gateway's CPU-µs per request (utime+stime of the whole process,
# access log writer thread included, divided by requests).
# VARIANTS="off on" by default; also "metrics" (metrics only), "tracing" (trace context only)
# and "log" (access log only) to see what each part costs, and "base": the "on" config run by
# another build (BASE_BIN=path, e.g. a copy of the binary before a change) for before/after
# figures from the same run.
# PROFILE=1: after the rounds, one more run per variant under `perf record -e cpu-clock` (no
# hardware counters needed) and its top symbols by share, with the share of each thread, so
# "on" and "off" can be compared symbol by symbol (shares are robust to foreign load; the
# CPU-µs figures are not).
# TOGETHER=1: each round loads every variant at the same time (one wrk each, CONNS connections
# each) instead of one after the other. On a shared machine whose load changes by the second this
# is the steadier comparison: whatever else runs slows all variants alike.
# Usage: bench/obs-cost.sh   Env: DURATION=8s CONNS=32 ROUNDS=3 PROXY_CPU=1 LOAD_CPU=0 VARIANTS BASE_BIN
#        PROFILE=0 TOP=25 TOGETHER=0
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
VARIANTS=${VARIANTS:-off on}
PROFILE=${PROFILE:-0} TOP=${TOP:-25} TOGETHER=${TOGETHER:-0}
DURATION=${DURATION:-8s} CONNS=${CONNS:-32} ROUNDS=${ROUNDS:-3} PROXY_CPU=${PROXY_CPU:-1} LOAD_CPU=${LOAD_CPU:-0}
BIN=$TARGET_DIR/release/portcullis BENCH=$TARGET_DIR/release/portcullis-bench
[ -x "$BIN" ] && [ -x "$BENCH" ] || { echo "build first: cargo build --release -p portcullis -p portcullis-bench" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/portcullis-obs-cost.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
UP=19100
declare -A PORT=([off]=19101 [on]=19102 [metrics]=19103 [tracing]=19104 [log]=19105 [base]=19106)

taskset -c "$LOAD_CPU" "$BENCH" upstream --listen "127.0.0.1:$UP" --cpu "$LOAD_CPU" 2>"$WORK/up.log" &
PIDS+=($!)
M_OFF=$'[metrics]\nenabled = false\n' T_OFF=$'[tracing]\nenabled = false\n'
for v in $VARIANTS; do
    LOG=$(printf '[access_log]\nenabled = true\npath = "%s"\n' "$WORK/access-$v.log")
    case $v in
        off) extra="$M_OFF$T_OFF" ;;
        metrics) extra="$T_OFF" ;;
        tracing) extra="$M_OFF" ;;
        log) extra="$M_OFF$T_OFF$LOG" ;;
        on | base) extra="$LOG" ;;
        *) echo "unknown variant $v" >&2; exit 2 ;;
    esac
    cat >"$WORK/$v.toml" <<TOML
[server]
shards = 1
watch_config = false
[[listeners]]
bind = "127.0.0.1:${PORT[$v]}"
$extra
[[upstreams]]
name = "up"
endpoints = ["127.0.0.1:$UP"]
[[routes]]
name = "all"
prefix = "/"
upstream = "up"
TOML
    bin=$BIN
    if [ "$v" = base ]; then bin=${BASE_BIN:?the base variant needs BASE_BIN}; fi
    taskset -c "$PROXY_CPU" "$bin" run --config "$WORK/$v.toml" >"$WORK/$v.out" 2>"$WORK/$v.err" &
    PIDS+=($!)
    eval "PID_$v=$!"
done
for v in $VARIANTS; do
    for _ in $(seq 100); do grep -q '^listening' "$WORK/$v.out" && break; sleep 0.1; done
    grep -q '^listening' "$WORK/$v.out" || { cat "$WORK/$v.err" >&2; exit 1; }
done
if [ -w /dev/cpu_dma_latency ]; then
    (exec 3>/dev/cpu_dma_latency && printf '\x00\x00\x00\x00' >&3 && exec sleep 100000) &
    PIDS+=($!)
    echo "holding /dev/cpu_dma_latency at 0" >&2
fi
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
HZ=$(getconf CLK_TCK)
for v in $VARIANTS; do taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:${PORT[$v]}/" >/dev/null; done
echo "| round | variant | req/s | p99 | CPU-µs/req |"
echo "|---|---|---|---|---|"
declare -A SUMREQ SUMT T0
pid_of() { local pid_var=PID_$1; echo "${!pid_var}"; }
load() { taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:${PORT[$1]}/" >"$WORK/wrk-$1.txt"; }
# Prints round $1's row for variant $2 (its CPU ticks since T0) and adds it to the totals.
row() {
    local t1 reqs rps p99 us
    t1=$(ticks "$(pid_of "$2")")
    reqs=$(awk '/requests in/ {print $1}' "$WORK/wrk-$2.txt")
    rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk-$2.txt")
    p99=$(awk '$1 == "99%" {print $2}' "$WORK/wrk-$2.txt")
    us=$(awk -v a="${T0[$2]}" -v b="$t1" -v n="$reqs" -v hz="$HZ" 'BEGIN {printf "%.2f", (b - a) * 1e6 / hz / n}')
    SUMREQ[$2]=$(( ${SUMREQ[$2]:-0} + reqs )); SUMT[$2]=$(( ${SUMT[$2]:-0} + t1 - T0[$2] ))
    echo "| $1 | $2 | $rps | $p99 | $us |"
}
for ((r = 1; r <= ROUNDS; r++)); do
    if [ "$TOGETHER" = 1 ]; then
        # All variants loaded at once (one wrk each), sharing the proxy CPU: foreign load on the
        # machine then hits every variant alike, which interleaved rounds cannot promise.
        WRKS=()
        for v in $VARIANTS; do T0[$v]=$(ticks "$(pid_of "$v")"); load "$v" & WRKS+=($!); done
        wait "${WRKS[@]}"
        for v in $VARIANTS; do row "$r" "$v"; done
    else
        for v in $VARIANTS; do T0[$v]=$(ticks "$(pid_of "$v")"); load "$v"; row "$r" "$v"; done
    fi
done
for v in $VARIANTS; do
    awk -v t="${SUMT[$v]}" -v n="${SUMREQ[$v]}" -v hz="$HZ" -v v="$v" 'BEGIN {printf "| all | %s | | | %.2f |\n", v, t * 1e6 / hz / n}'
done
echo
for v in $VARIANTS; do
    [ -f "$WORK/access-$v.log" ] && echo "access log lines written by '$v': $(wc -l <"$WORK/access-$v.log")"
done
if [ "$PROFILE" = 1 ]; then
    command -v perf >/dev/null || { echo "PROFILE=1 needs perf (apt-get install linux-perf)" >&2; exit 1; }
    for v in $VARIANTS; do
        pid_var=PID_$v; pid=${!pid_var}
        taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" "http://127.0.0.1:${PORT[$v]}/" >/dev/null &
        wrk_pid=$!
        sleep 0.5
        perf record -q -e cpu-clock -F 2000 -p "$pid" -o "$WORK/perf-$v.data" -- sleep "${DURATION%s}" 2>/dev/null || true
        wait "$wrk_pid"
        echo
        echo "### profile '$v': threads, then the top $TOP symbols (share of the process's samples)"
        perf report -i "$WORK/perf-$v.data" --no-children --sort comm --stdio 2>/dev/null | grep -E '^ +[0-9]'
        perf report -i "$WORK/perf-$v.data" --no-children --sort sym --stdio 2>/dev/null | grep -E '^ +[0-9]' | awk -v n="$TOP" 'NR <= n'
    done
fi
