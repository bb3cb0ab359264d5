#!/usr/bin/env bash
# compare.sh: one command, one report comparing the reference upstream hit directly, Portcullis
# (1 shard), NGINX (1 worker), HAProxy (1 thread) and Envoy (1 worker, when a binary is given)
# over several scenarios, in the same run with the same pinning: proxy alone on PROXY_CPU (1);
# the load generator and the upstream on LOAD_CPU (0). Per scenario every peer that can do it
# is started with its config rendered from bench/peers/, checked with one request, measured in
# interleaved rounds, and stopped; /dev/cpu_dma_latency is held at 0 for the whole run.
#   scenarios: plain (HTTP/1.1 proxy), tls (TLS HTTP/1.1, wrk), h2 (TLS HTTP/2, h2load),
#     routes (1,000 prefix routes, the last one requested), jwt (HS256 bearer verified),
#     ratelimit (a per-client-IP limit that never trips): req/s, p50/p99, proxy CPU-µs/request
#   plain also: open loop at RATE_PCT % of the slowest gateway's req/s (added latency over
#     direct), --syscalls, --idle; and once: the generator's ceiling against a trivial server
#   latency (opt-in, bench/lib/latency.sh): NGINX's closed-loop capacity, then open loop at
#     LAT_LEVELS % of it, LAT_ROUNDS interleaved rounds: added p99 per round (peer - direct),
#     median and spread per peer (table + latency-latest.svg), and Portcullis's own added time
#     p50/p99/p99.9 from its /metrics histogram
# Usage: bench/compare.sh [--scenarios plain,tls,h2,h3,routes,jwt,ratelimit,latency] [--syscalls] [--idle]
#          [--no-build] [--only "direct nginx"] [--envoy PATH] [--rate N] [--no-latency]
#          [--no-ceiling] [--redis] [--baseline PATH] [--keep]
#        --baseline PATH: also run another portcullis binary (e.g. main's) as "Portcullis baseline"
#        (BASELINE_CONFIG=template: the baseline's config, for a same-run A/B of two configs)
# Env:   DURATION=10s (seconds) CONNS=32 STREAMS=10 THREADS=1 ROUNDS=3 WARMUP=2s PROXY_CPU=1 LOAD_CPU=0
#        BODY_SIZE=13 SCENARIOS="plain tls h2 h3 routes jwt ratelimit" ROUTES=1000 JWT_CACHE=0 REDIS=0
#        LATENCY=1 RATE_PCT=50 RATE= LAT_CONNS=64 LAT_DURATION=DURATION LAT_WARMUP=2s CEILING=1
#        LAT_LEVELS="25 50 75" LAT_ROUNDS=ROUNDS or 10 LAT_CAP_ROUNDS=3 (latency scenario)
#        SYSCALLS=0 SYSCALL_DURATION=3s IDLE=0 IDLE_CONNS=10000 IDLE_TLS_CONNS=3000 IDLE_HOLD=10 HAPROXY_MAXCONN=9000
#        GATEWAYS="direct portcullis nginx haproxy envoy caddy" NO_BUILD=0 KEEP=0
#        PORT_SHIFT=0 (added to every port, to run beside another harness)
#        WAIT_QUIET=0 (seconds to wait for a busy machine to go below 10% before starting)
#        PORTCULLIS_BIN=target/release/portcullis PORTCULLIS_CONFIG=bench/peers/portcullis.toml
#        ENVOY_BIN=(envoy on PATH)
# Output: the report on stdout and in bench/results/latest.md, latest.json and latest.svg (open
# loop latency percentiles per gateway), plus timestamped copies.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
ROUNDS_GIVEN=${ROUNDS:-} # the latency scenario runs 10 rounds unless ROUNDS (or LAT_ROUNDS) says otherwise
DURATION=${DURATION:-10s} CONNS=${CONNS:-32} STREAMS=${STREAMS:-10} THREADS=${THREADS:-1} ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-2s} PROXY_CPU=${PROXY_CPU:-1} LOAD_CPU=${LOAD_CPU:-0} BODY_SIZE=${BODY_SIZE:-13}
SYSCALLS=${SYSCALLS:-0} SYSCALL_DURATION=${SYSCALL_DURATION:-3s}
IDLE=${IDLE:-0} IDLE_CONNS=${IDLE_CONNS:-10000} IDLE_TLS_CONNS=${IDLE_TLS_CONNS:-3000} IDLE_HOLD=${IDLE_HOLD:-10}
GATEWAYS=${GATEWAYS:-direct portcullis nginx haproxy envoy caddy} NO_BUILD=${NO_BUILD:-0} KEEP=${KEEP:-0}
WAIT_QUIET=${WAIT_QUIET:-0} SCENARIOS=${SCENARIOS:-} REDIS=${REDIS:-0}
LATENCY=${LATENCY:-1} RATE_PCT=${RATE_PCT:-50} RATE=${RATE:-} LAT_CONNS=${LAT_CONNS:-64}
LAT_DURATION=${LAT_DURATION:-$DURATION} LAT_WARMUP=${LAT_WARMUP:-2s} CEILING=${CEILING:-1}
HAPROXY_MAXCONN=${HAPROXY_MAXCONN:-9000} ENVOY_BIN=${ENVOY_BIN:-} BASELINE_BIN=${BASELINE_BIN:-}
PORTCULLIS_BIN=${PORTCULLIS_BIN:-}
PORTCULLIS_CONFIG=${PORTCULLIS_CONFIG:-$ROOT/bench/peers/portcullis.toml}
BASELINE_CONFIG=${BASELINE_CONFIG:-$PORTCULLIS_CONFIG}
NGINX_TEMPLATE=$ROOT/bench/peers/nginx.conf
HAPROXY_TEMPLATE=$ROOT/bench/peers/haproxy.cfg
HAPROXY_ROUTES_TEMPLATE=$ROOT/bench/peers/haproxy-routes.map
ENVOY_TEMPLATE=$ROOT/bench/peers/envoy.yaml
CADDY_TEMPLATE=$ROOT/bench/peers/Caddyfile
BENCH=$TARGET_DIR/release/portcullis-bench
PORT_SHIFT=${PORT_SHIFT:-0} # added to every port: two harnesses on one machine (e.g. PORT_SHIFT=2000)
UP_PORT=$((19000 + PORT_SHIFT)) CEIL_PORT=$((19001 + PORT_SHIFT))
# Plain-scenario ports; scenario S listens on PORT + SC_OFFSET[S] (bench/lib/scenarios.sh).
declare -A PORT=([direct]=$UP_PORT [portcullis]=$((18080 + PORT_SHIFT)) [nginx]=$((18081 + PORT_SHIFT))
    [haproxy]=$((18082 + PORT_SHIFT)) [envoy]=$((18083 + PORT_SHIFT)) [baseline]=$((18084 + PORT_SHIFT)) [caddy]=$((18085 + PORT_SHIFT)))
declare -A LABEL=([direct]="direct to upstream" [portcullis]="Portcullis (1 shard)" [nginx]="NGINX (1 worker)"
    [haproxy]="HAProxy (1 thread)" [envoy]="Envoy (1 worker)" [baseline]="Portcullis baseline (1 shard)"
    [caddy]="Caddy (GOMAXPROCS=1)")
declare -A SKIP SC_ACTIVE # gateway -> why it has no row at all; scenario -> gateways measured
# shellcheck source=lib/common.sh
source "$ROOT/bench/lib/common.sh"
# shellcheck source=lib/scenarios.sh
source "$ROOT/bench/lib/scenarios.sh"
# shellcheck source=lib/peers.sh
source "$ROOT/bench/lib/peers.sh"
# shellcheck source=lib/extras.sh
source "$ROOT/bench/lib/extras.sh"
# shellcheck source=lib/latency.sh
source "$ROOT/bench/lib/latency.sh"
# shellcheck source=lib/crosscheck.sh
source "$ROOT/bench/lib/crosscheck.sh"

while [ $# -gt 0 ]; do
    case $1 in
        --scenarios) shift; SCENARIOS=${1//,/ } ;;
        --syscalls) SYSCALLS=1 ;;
        --idle) IDLE=1 ;;
        --no-build) NO_BUILD=1 ;;
        --keep) KEEP=1 ;;
        --redis) REDIS=1 ;;
        --only) shift; GATEWAYS=$1 ;;
        --envoy) shift; ENVOY_BIN=$1 ;;
        --baseline) shift; BASELINE_BIN=$1 ;;
        --rate) shift; RATE=$1 ;;
        --no-latency) LATENCY=0 ;;
        --no-ceiling) CEILING=0 ;;
        -h | --help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
SCENARIOS=${SCENARIOS:-$DEFAULT_SCENARIOS}
if [ -z "$BASELINE_BIN" ] && [ "$BASELINE_CONFIG" != "$PORTCULLIS_CONFIG" ]; then
    BASELINE_BIN=$TARGET_DIR/release/portcullis # same binary, another config
fi
if [ -n "$BASELINE_BIN" ]; then # a second Portcullis binary (e.g. main's) measured in the same run
    [ -x "$BASELINE_BIN" ] || { echo "--baseline $BASELINE_BIN: not an executable" >&2; exit 2; }
    [[ " $GATEWAYS " == *" baseline "* ]] || GATEWAYS="${GATEWAYS/portcullis/portcullis baseline}"
fi
SCENARIOS=${SCENARIOS//,/ }

# ---------------------------------------------------------------- cleanup: only what we started
PIDS=()
WORK=$(mktemp -d /tmp/portcullis-compare.XXXXXX)
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        local alive=0
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.2
    done
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    if [ "$KEEP" = 1 ]; then log "kept logs in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

RUN_SCENARIOS=()
for sc in $SCENARIOS; do
    [[ " $KNOWN_SCENARIOS " == *" $sc "* ]] || die "unknown scenario '$sc' (known: $KNOWN_SCENARIOS)"
    if [[ " $HARNESS_SCENARIOS " == *" $sc "* ]]; then
        RUN_SCENARIOS+=("$sc")
    else
        note "scenario '$sc' (${SCENARIO_LABEL[$sc]}) is not run by this harness: ${CAN[$sc:portcullis]} (see the coverage table)"
    fi
done
[ ${#RUN_SCENARIOS[@]} -gt 0 ] || die "no scenario to run"
if [[ " $GATEWAYS " == *" envoy "* ]]; then
    ENVOY_BIN=${ENVOY_BIN:-$(command -v envoy || true)}
    if [ -z "$ENVOY_BIN" ] || [ ! -x "$ENVOY_BIN" ]; then
        SKIP[envoy]="skipped: no envoy binary on PATH and none given with --envoy PATH (Debian does not package Envoy; its configs for every scenario are in bench/peers/envoy.yaml)"
        log "Envoy ${SKIP[envoy]}"
        ENVOY_BIN=""
    fi
fi

# ---------------------------------------------------------------- tools
need=(wrk:wrk taskset:util-linux pgrep:procps curl:curl openssl:openssl)
[[ " $GATEWAYS " == *" nginx "* ]] && need+=(nginx:nginx-light)
[[ " $GATEWAYS " == *" haproxy "* ]] && need+=(haproxy:haproxy)
[[ " $GATEWAYS " == *" caddy "* ]] && need+=(caddy:caddy)
[[ " $SCENARIOS " == *" latency "* ]] && need+=(jq:jq)
[[ " $SCENARIOS " == *" h2 "* ]] && need+=(h2load:nghttp2-client)
[ "$REDIS" = 1 ] && need+=(redis-server:redis-server)
[ "$SYSCALLS" = 1 ] && need+=(strace:strace)
ensure_pkgs "${need[@]}"
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- build
want_portcullis=0
[[ " $GATEWAYS " == *" portcullis "* ]] && want_portcullis=1
portcullis_skip=""
if [ "$NO_BUILD" != 1 ]; then
    log "building release binaries (fat LTO: a few minutes when cold)"
    pkgs=(-p portcullis-bench)
    [ $want_portcullis = 1 ] && [ -z "$PORTCULLIS_BIN" ] && pkgs+=(-p portcullis)
    if ! (cd "$ROOT" && cargo build --release "${pkgs[@]}") >"$WORK/build.log" 2>&1; then
        tail -20 "$WORK/build.log" >&2
        [ ${#pkgs[@]} -gt 2 ] || die "cargo build of portcullis-bench failed"
        portcullis_skip="cargo build -p portcullis failed (see the build log)"
        (cd "$ROOT" && cargo build --release -p portcullis-bench) >>"$WORK/build.log" 2>&1 ||
            die "cargo build of portcullis-bench failed"
    fi
fi
[ -x "$BENCH" ] || die "$BENCH missing (build with: cargo build --release -p portcullis-bench)"
PORTCULLIS_BIN=${PORTCULLIS_BIN:-$TARGET_DIR/release/portcullis}
if [ $want_portcullis = 1 ] && [ -z "$portcullis_skip" ] && [ ! -x "$PORTCULLIS_BIN" ]; then
    portcullis_skip="binary $PORTCULLIS_BIN not found"
fi

# ---------------------------------------------------------------- environment checks
for gw in $GATEWAYS; do
    [ -n "${PORT[$gw]:-}" ] || die "unknown gateway '$gw' (known: direct portcullis nginx haproxy envoy caddy baseline)"
done
wait_port_free "$UP_PORT" || die "port $UP_PORT is already in use: stop whatever listens there"
[ "$CEILING" = 1 ] && port_open "$CEIL_PORT" && die "port $CEIL_PORT is already in use: stop whatever listens there"
busy=$(machine_busy_pct)
for ((waited = 0; busy > 10 && waited < WAIT_QUIET; waited += 5)); do # shared machines: wait for quiet
    log "machine ${busy}% busy; waiting for it to quiet down ($waited/$WAIT_QUIET s)"
    sleep 4
    busy=$(machine_busy_pct)
done
[ "$busy" -gt 10 ] && note "machine not idle before the run: ${busy}% of all CPUs busy; expect noisy numbers"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Hold /dev/cpu_dma_latency at 0 so idle vCPUs do not sleep deeply (p99 18 ms -> 1.2 ms).
DMA="not held"
if [ -w /dev/cpu_dma_latency ]; then
    (exec 3>/dev/cpu_dma_latency && printf '\x00\x00\x00\x00' >&3 && exec sleep 100000) &
    PIDS+=("$!")
    sleep 0.2
    if kill -0 "${PIDS[-1]}" 2>/dev/null; then
        DMA="held open with 0 written for the whole run"
    else
        note "/dev/cpu_dma_latency could not be held: latency tails will be inflated"
    fi
else
    note "/dev/cpu_dma_latency absent or not writable: latency tails will be inflated"
fi

# ---------------------------------------------------------------- shared parts: upstream, redis, certificate, token
taskset -c "$LOAD_CPU" "$BENCH" upstream --listen "127.0.0.1:$UP_PORT" --body-size "$BODY_SIZE" \
    >"$WORK/upstream.log" 2>&1 &
UP_PID=$!
PIDS+=("$UP_PID")
wait_port "$UP_PORT" "$UP_PID" 10 || { cat "$WORK/upstream.log" >&2; die "upstream did not start"; }
log "$(head -1 "$WORK/upstream.log")"
REDIS_PORT=""
if [ "$REDIS" = 1 ] && [[ " ${RUN_SCENARIOS[*]} " == *" ratelimit "* ]]; then
    REDIS_PORT=19002
    taskset -c "$LOAD_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
        >"$WORK/redis.log" 2>&1 &
    PIDS+=("$!")
    wait_port "$REDIS_PORT" "${PIDS[-1]}" 10 || die "redis-server did not start: $(tail -3 "$WORK/redis.log")"
fi
make_material

# ---------------------------------------------------------------- scenarios, then the generator's ceiling
ACTIVE=()
for sc in "${RUN_SCENARIOS[@]}"; do
    case $sc in # --idle also holds idle connections in the tls and h2 scenarios (bench/lib/extras.sh)
        plain) run_scenario plain plain_extras ;;
        latency) run_latency ;;
        tls) run_scenario tls tls_extras ;;
        h2) run_scenario h2 h2_scenario_extras ;;
        *) run_scenario "$sc" ;;
    esac
done
generator_ceiling

worst=$(cat "$WORK"/*.foreign-* 2>/dev/null | sort -n | tail -1)
[ "${worst:-0}" -gt 5 ] &&
    note "other processes (or steal) used up to ${worst}% of CPU $PROXY_CPU during a measured run: those rows are contaminated, rerun on a quiet machine"

# ---------------------------------------------------------------- report (markdown, JSON, SVG)
# shellcheck source=compare-report.sh
source "$ROOT/bench/compare-report.sh"
