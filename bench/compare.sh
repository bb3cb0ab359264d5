#!/usr/bin/env bash
# compare.sh: one command, one report comparing the reference upstream hit directly, Portcullis
# (1 shard), NGINX (1 worker), HAProxy (1 thread) and Envoy (1 worker, when a binary is given)
# in the same run with the same pinning: proxy alone on PROXY_CPU (1); the load generator and
# the upstream on LOAD_CPU (0). Gateways are interleaved round by round; /dev/cpu_dma_latency is
# held at 0 for the whole run.
#   1. closed loop (wrk): req/s, p50/p99, proxy CPU-us/request
#   2. open loop (portcullis-bench load --rate): at RATE_PCT % of the slowest gateway's req/s,
#      p50..max and the latency each gateway adds over direct-to-upstream
#   3. generator ceiling: wrk and portcullis-bench load against a second upstream on PROXY_CPU
# Usage: bench/compare.sh [--syscalls] [--idle] [--no-build] [--only "direct nginx"]
#                         [--envoy PATH] [--rate N] [--no-latency] [--no-ceiling] [--keep]
# Env:   DURATION=10s CONNS=32 THREADS=1 ROUNDS=3 WARMUP=2s PROXY_CPU=1 LOAD_CPU=0 BODY_SIZE=13
#        LATENCY=1 RATE_PCT=50 RATE= LAT_CONNS=64 LAT_DURATION=DURATION LAT_WARMUP=2s CEILING=1
#        SYSCALLS=0 SYSCALL_DURATION=3s IDLE=0 IDLE_CONNS=10000 IDLE_HOLD=10 HAPROXY_MAXCONN=9000
#        GATEWAYS="direct portcullis nginx haproxy envoy" SCENARIOS=plain NO_BUILD=0 KEEP=0
#        WAIT_QUIET=0 (seconds to wait for a busy machine to go below 10% before starting)
#        PORTCULLIS_BIN=target/release/portcullis PORTCULLIS_CONFIG=bench/peers/portcullis.toml
#        ENVOY_BIN=(envoy on PATH)
# Output: the report on stdout and in bench/results/latest.md, latest.json and latest.svg (open
# loop latency percentiles per gateway), plus timestamped copies.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
DURATION=${DURATION:-10s} CONNS=${CONNS:-32} THREADS=${THREADS:-1} ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-2s} PROXY_CPU=${PROXY_CPU:-1} LOAD_CPU=${LOAD_CPU:-0} BODY_SIZE=${BODY_SIZE:-13}
SYSCALLS=${SYSCALLS:-0} SYSCALL_DURATION=${SYSCALL_DURATION:-3s}
IDLE=${IDLE:-0} IDLE_CONNS=${IDLE_CONNS:-10000} IDLE_HOLD=${IDLE_HOLD:-10}
GATEWAYS=${GATEWAYS:-direct portcullis nginx haproxy envoy} NO_BUILD=${NO_BUILD:-0} KEEP=${KEEP:-0}
WAIT_QUIET=${WAIT_QUIET:-0} SCENARIOS=${SCENARIOS:-plain}
LATENCY=${LATENCY:-1} RATE_PCT=${RATE_PCT:-50} RATE=${RATE:-} LAT_CONNS=${LAT_CONNS:-64}
LAT_DURATION=${LAT_DURATION:-$DURATION} LAT_WARMUP=${LAT_WARMUP:-2s} CEILING=${CEILING:-1}
HAPROXY_MAXCONN=${HAPROXY_MAXCONN:-9000} ENVOY_BIN=${ENVOY_BIN:-}
PORTCULLIS_BIN=${PORTCULLIS_BIN:-}
PORTCULLIS_CONFIG=${PORTCULLIS_CONFIG:-$ROOT/bench/peers/portcullis.toml}
NGINX_TEMPLATE=$ROOT/bench/peers/nginx.conf
HAPROXY_TEMPLATE=$ROOT/bench/peers/haproxy.cfg
ENVOY_TEMPLATE=$ROOT/bench/peers/envoy.yaml
BENCH=$TARGET_DIR/release/portcullis-bench
UP_PORT=19000 CEIL_PORT=19001
declare -A PORT=([direct]=19000 [portcullis]=18080 [nginx]=18081 [haproxy]=18082 [envoy]=18083)
declare -A LABEL=([direct]="direct to upstream" [portcullis]="Portcullis (1 shard)" [nginx]="NGINX (1 worker)"
    [haproxy]="HAProxy (1 thread)" [envoy]="Envoy (1 worker)")
# Scenarios: only `plain` is implemented by this harness today. The others are extension points:
# CAN[scenario:gateway] says whether the peer can do it at all (the table prints the reason when
# it cannot); a scenario runs once its peer templates (bench/peers/GW.SCENARIO.*) and generator
# support exist. See docs/benchmarking.md, "Adding a scenario".
KNOWN_SCENARIOS="plain tls h2 h3 routes jwt ratelimit"
declare -A SCENARIO_LABEL=([plain]="plain HTTP/1.1 proxy" [tls]="TLS termination (HTTP/1.1)" [h2]="HTTP/2 (h2c and TLS)"
    [h3]="HTTP/3 (QUIC)" [routes]="many routes (1,000 prefixes)" [jwt]="JWT auth on" [ratelimit]="rate limit on (never tripping)")
declare -A CAN=(
    [plain:portcullis]=yes [plain:nginx]=yes [plain:haproxy]=yes [plain:envoy]=yes
    [tls:portcullis]="yes ([listeners.tls]; scenario not in the harness yet)" [tls:nginx]=yes [tls:haproxy]=yes [tls:envoy]=yes
    [h2:portcullis]="yes (TLS ALPN h2 and h2c; the generator speaks HTTP/1.1 only so far)" [h2:nginx]="yes (TLS; h2c only without HTTP/1.1 on the port)" [h2:haproxy]=yes [h2:envoy]=yes
    [h3:portcullis]="yes (quic/; the generator has no HTTP/3 yet)" [h3:nginx]="no: nginx-light 1.22 has no QUIC (1.25+)"
    [h3:haproxy]="no: Debian's 2.6 build has no QUIC" [h3:envoy]="yes (alpha)"
    [routes:portcullis]=yes [routes:nginx]=yes [routes:haproxy]=yes [routes:envoy]=yes
    [jwt:portcullis]="yes ([auth]; see also bench/auth_wrk.sh)" [jwt:nginx]="no: JWT validation is NGINX Plus only (auth_jwt)" [jwt:haproxy]="yes (jwt_verify, 2.5+)" [jwt:envoy]="yes (jwt_authn)"
    [ratelimit:portcullis]="yes ([ratelimit]; see also bench/ratelimit.sh)" [ratelimit:nginx]="yes (limit_req)" [ratelimit:haproxy]="yes (stick tables)" [ratelimit:envoy]="yes (local_ratelimit)"
)
HARNESS_SCENARIOS="plain" # scenarios this version of the harness can run

while [ $# -gt 0 ]; do
    case $1 in
        --syscalls) SYSCALLS=1 ;;
        --idle) IDLE=1 ;;
        --no-build) NO_BUILD=1 ;;
        --keep) KEEP=1 ;;
        --only) shift; GATEWAYS=$1 ;;
        --envoy) shift; ENVOY_BIN=$1 ;;
        --rate) shift; RATE=$1 ;;
        --no-latency) LATENCY=0 ;;
        --no-ceiling) CEILING=0 ;;
        -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "[compare] $*" >&2; }
die() { log "error: $*"; exit 1; }

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

NOTES=()
note() { NOTES+=("$*"); log "$*"; }
declare -A SKIP # gateway -> why it has no row

for sc in $SCENARIOS; do
    [[ " $KNOWN_SCENARIOS " == *" $sc "* ]] || die "unknown scenario '$sc' (known: $KNOWN_SCENARIOS)"
    [[ " $HARNESS_SCENARIOS " == *" $sc "* ]] ||
        note "scenario '$sc' (${SCENARIO_LABEL[$sc]}) is not implemented by this harness yet: skipped (see the coverage table)"
done
if [[ " $GATEWAYS " == *" envoy "* ]]; then
    ENVOY_BIN=${ENVOY_BIN:-$(command -v envoy || true)}
    if [ -z "$ENVOY_BIN" ] || [ ! -x "$ENVOY_BIN" ]; then
        SKIP[envoy]="no envoy binary: put one on PATH or pass --envoy PATH (ENVOY_BIN); Debian does not package Envoy, see https://www.envoyproxy.io/docs/envoy/latest/start/install"
        log "Envoy skipped: ${SKIP[envoy]}"
        ENVOY_BIN=""
    fi
fi

# ---------------------------------------------------------------- tools
ensure_pkgs() { # ensure_pkgs BINARY:PACKAGE...
    local missing=() pair
    for pair in "$@"; do command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}"); done
    [ ${#missing[@]} = 0 ] && return 0
    [ "$(id -u)" = 0 ] || die "missing ${missing[*]}; install them (needs root)"
    log "installing ${missing[*]} from Debian"
    local made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then # keep Debian from starting services on install
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        made_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >"$WORK/apt.log" 2>&1 || {
        apt-get update -qq >>"$WORK/apt.log" 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >>"$WORK/apt.log" 2>&1
    } || die "apt-get install ${missing[*]} failed (see $WORK/apt.log)"
    [ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
    return 0
}
need=(wrk:wrk taskset:util-linux pgrep:procps)
[[ " $GATEWAYS " == *" nginx "* ]] && need+=(nginx:nginx-light)
[[ " $GATEWAYS " == *" haproxy "* ]] && need+=(haproxy:haproxy)
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

# ---------------------------------------------------------------- helpers
port_open() { (exec 9<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # wait_port PORT PID SECONDS
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        port_open "$1" && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
descendants() { # PID and all its descendants
    local p=$1 c
    echo "$p"
    for c in $(pgrep -P "$p" 2>/dev/null || true); do descendants "$c"; done
}
cpu_ticks() { # utime+stime (fields 14+15) summed over a process tree, in clock ticks
    local total=0 p t
    for p in $(descendants "$1"); do
        t=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || t=0
        total=$((total + ${t:-0}))
    done
    echo $total
}
rss_kib() { # VmRSS summed over a process tree, in KiB
    local total=0 p r
    for p in $(descendants "$1"); do
        r=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null) || r=0
        total=$((total + ${r:-0}))
    done
    echo $total
}
passive_opens() { awk '$1 == "Tcp:" { if (!h) { for (i = 1; i <= NF; i++) if ($i == "PassiveOpens") c = i; h = 1 } else print $c }' /proc/net/snmp; }
cpu_stat() { # cpu_stat N -> "busy total" ticks of CPU N (busy = user+nice+system+steal)
    awk -v c="cpu$1" '$1 == c {print $2 + $3 + $4 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat
}
median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
wrk_ms() { # wrk_ms FILE PERCENT -> latency in ms
    awk -v p="$2%" '$1 == p { v = $2; m = 1;
        if (v ~ /us$/) m = 0.001; else if (v ~ /ms$/) m = 1; else if (v ~ /m$/) m = 60000; else if (v ~ /s$/) m = 1000;
        gsub(/[a-z]+$/, "", v); printf "%.3f\n", v * m }' "$1"
}
wrk_requests() { awk '/requests in/ {print $1}' "$1"; }
wrk_errors() { # non-2xx/3xx responses + socket errors
    awk '/Non-2xx/ {e += $NF} /Socket errors/ {gsub(/,/, ""); e += $4 + $6 + $8 + $10} END {print e + 0}' "$1"
}
run_wrk() { # run_wrk PORT DURATION OUTFILE
    taskset -c "$LOAD_CPU" wrk -t"$THREADS" -c"$CONNS" -d"$2" --latency "http://127.0.0.1:$1/" >"$3" 2>&1 || true
}
med() { if [ -s "$WORK/$1-$2" ]; then median <"$WORK/$1-$2"; else echo "—"; fi; }
fmt() { if [ "$1" = "—" ] || [ -z "$1" ]; then echo "—"; else awk -v v="$1" -v f="$2" 'BEGIN {printf f, v}'; fi; }
sub_or_dash() { # sub_or_dash A B -> A - B with 1 decimal, or — when either is missing
    if [ "$1" = "—" ] || [ "$2" = "—" ] || [ -z "$1" ] || [ -z "$2" ]; then echo "—"; else awk -v a="$1" -v b="$2" 'BEGIN {printf "%+.1f", a - b}'; fi
}
json_num() { # json_num FILE KEY [SECTION]: a number from portcullis-bench's pretty JSON, empty if absent
    awk -v k="\"$2\":" -v sec="${3:+\"$3\": {}" '
        sec != "" && !in_sec { if (index($0, sec)) in_sec = 1; next }
        index($0, k) { v = $0; sub(/.*": */, "", v); sub(/,$/, "", v); print v; exit }' "$1"
}
child_ticks() { # cutime+cstime of this shell: CPU of its finished, waited-for children
    sed 's/.*) //' "/proc/$$/stat" | awk '{print $14 + $15}'
}
machine_busy_pct() { # share of all CPUs busy over one second, before anything starts
    local a b
    read -r -a a </proc/stat; sleep 1; read -r -a b </proc/stat
    awk -v a="${a[*]}" -v b="${b[*]}" 'BEGIN { n = split(a, x, " "); split(b, y, " ");
        for (i = 2; i <= n; i++) { d = y[i] - x[i]; t += d; if (i == 5 || i == 6) idle += d }
        printf "%.0f", t ? 100 * (t - idle) / t : 0 }'
}

# ---------------------------------------------------------------- environment checks
for gw in $GATEWAYS; do
    [ -n "${PORT[$gw]:-}" ] || die "unknown gateway '$gw' (known: direct portcullis nginx haproxy envoy)"
    # A just-killed io_uring process keeps its listener until the ring's async teardown ends.
    for ((i = 0; i < 50; i++)); do port_open "${PORT[$gw]}" || break; sleep 0.1; done
    port_open "${PORT[$gw]}" && die "port ${PORT[$gw]} is already in use: stop whatever listens there"
done
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

# ---------------------------------------------------------------- start everything
taskset -c "$LOAD_CPU" "$BENCH" upstream --listen "127.0.0.1:$UP_PORT" --body-size "$BODY_SIZE" \
    >"$WORK/upstream.log" 2>&1 &
UP_PID=$!
PIDS+=("$UP_PID")
wait_port "$UP_PORT" "$UP_PID" 10 || { cat "$WORK/upstream.log" >&2; die "upstream did not start"; }
log "$(head -1 "$WORK/upstream.log")"

declare -A GPID=([direct]=$UP_PID)
start_portcullis() {
    [ -n "$portcullis_skip" ] && return 1
    sed -e "s/@PORT@/${PORT[portcullis]}/g" -e "s/@UP_PORT@/$UP_PORT/g" "$PORTCULLIS_CONFIG" \
        >"$WORK/portcullis.toml"
    taskset -c "$PROXY_CPU" "$PORTCULLIS_BIN" run --config "$WORK/portcullis.toml" \
        >"$WORK/portcullis.out" 2>"$WORK/portcullis.log" &
    local pid=$! i
    PIDS+=("$pid")
    for ((i = 0; i < 150; i++)); do # readiness: a line containing "listening", then the port
        grep -q listening "$WORK/portcullis.log" "$WORK/portcullis.out" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q listening "$WORK/portcullis.log" "$WORK/portcullis.out" 2>/dev/null ||
        ! wait_port "${PORT[portcullis]}" "$pid" 5; then
        local why="did not print 'listening' and accept on :${PORT[portcullis]} within 15 s" st=0
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null || st=$?
            why="exited (status $st) before printing 'listening'"
        fi
        kill -TERM "$pid" 2>/dev/null || true
        portcullis_skip="$PORTCULLIS_BIN $why; log tail: $(tail -c 300 "$WORK/portcullis.log" | sed 's/\x1b\[[0-9;]*m//g' | tr '\n' ' ')"
        return 1
    fi
    # The harness pins with taskset; shard pinning must stay inside the inherited mask.
    local t
    for t in /proc/"$pid"/task/*; do
        local allowed
        allowed=$(awk '/^Cpus_allowed_list/ {print $2}' "$t/status" 2>/dev/null || true)
        [ -n "$allowed" ] && [ "$allowed" != "$PROXY_CPU" ] &&
            note "portcullis thread $(basename "$t") may run on CPUs $allowed, not only $PROXY_CPU"
    done
    GPID[portcullis]=$pid
}
start_nginx() {
    mkdir -p "$WORK/nginx"
    sed -e "s#@WORK@#$WORK#g" -e "s/@PORT@/${PORT[nginx]}/g" -e "s/@UP_PORT@/$UP_PORT/g" \
        "$NGINX_TEMPLATE" >"$WORK/nginx/nginx.conf"
    if ! nginx -t -q -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" >"$WORK/nginx/test.log" 2>&1; then
        SKIP[nginx]="config test failed: $(tr '\n' ' ' <"$WORK/nginx/test.log")"
        return 1
    fi
    taskset -c "$PROXY_CPU" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" >"$WORK/nginx/out.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_port "${PORT[nginx]}" "$pid" 10 || { SKIP[nginx]="it did not start"; return 1; }
    GPID[nginx]=$pid
}

start_haproxy() {
    sed -e "s/@PORT@/${PORT[haproxy]}/g" -e "s/@UP_PORT@/$UP_PORT/g" -e "s/@MAXCONN@/$HAPROXY_MAXCONN/g" \
        "$HAPROXY_TEMPLATE" >"$WORK/haproxy.cfg"
    if ! haproxy -c -q -f "$WORK/haproxy.cfg" >"$WORK/haproxy-test.log" 2>&1; then
        SKIP[haproxy]="config check failed: $(tr '\n' ' ' <"$WORK/haproxy-test.log" | cut -c1-300)"
        return 1
    fi
    taskset -c "$PROXY_CPU" haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_port "${PORT[haproxy]}" "$pid" 10 || {
        SKIP[haproxy]="it did not start: $(tail -c 300 "$WORK/haproxy.log" | tr '\n' ' ')"
        return 1
    }
    GPID[haproxy]=$pid
}
start_envoy() {
    [ -n "$ENVOY_BIN" ] || return 1 # SKIP[envoy] already says why
    sed -e "s/@PORT@/${PORT[envoy]}/g" -e "s/@UP_PORT@/$UP_PORT/g" "$ENVOY_TEMPLATE" >"$WORK/envoy.yaml"
    taskset -c "$PROXY_CPU" "$ENVOY_BIN" -c "$WORK/envoy.yaml" --concurrency 1 --disable-hot-restart -l warn \
        >"$WORK/envoy.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_port "${PORT[envoy]}" "$pid" 30 || {
        SKIP[envoy]="$ENVOY_BIN did not start: $(tail -c 300 "$WORK/envoy.log" | tr '\n' ' ')"
        return 1
    }
    GPID[envoy]=$pid
}

ACTIVE=()
for gw in $GATEWAYS; do
    [ -n "${SKIP[$gw]:-}" ] && continue
    case $gw in
        direct) ACTIVE+=(direct) ;;
        portcullis) if start_portcullis; then ACTIVE+=(portcullis); else SKIP[portcullis]=$portcullis_skip; fi ;;
        nginx) start_nginx && ACTIVE+=(nginx) ;;
        haproxy) start_haproxy && ACTIVE+=(haproxy) ;;
        envoy) start_envoy && ACTIVE+=(envoy) ;;
    esac
    [ -n "${SKIP[$gw]:-}" ] && log "${LABEL[$gw]} skipped: ${SKIP[$gw]}"
done
[ ${#ACTIVE[@]} -gt 0 ] || die "nothing to measure"

# ---------------------------------------------------------------- warm-up, then interleaved rounds
for gw in "${ACTIVE[@]}"; do
    log "warm-up $gw ($WARMUP)"
    run_wrk "${PORT[$gw]}" "$WARMUP" "$WORK/warmup-$gw.txt"
    [ "$(wrk_requests "$WORK/warmup-$gw.txt")" ] || die "wrk against $gw failed: $(cat "$WORK/warmup-$gw.txt")"
done
n=${#ACTIVE[@]}
for ((r = 1; r <= ROUNDS; r++)); do
    for ((i = 0; i < n; i++)); do
        gw=${ACTIVE[$(((i + r - 1) % n))]} # rotate the order so no gateway always goes first
        out="$WORK/wrk-$gw-$r.txt"
        po0=$(passive_opens)
        up0=$(cpu_ticks "$UP_PID")
        gp0=$(cpu_ticks "${GPID[$gw]}")
        read -r pb0 pt0 < <(cpu_stat "$PROXY_CPU")
        run_wrk "${PORT[$gw]}" "$DURATION" "$out"
        read -r pb1 pt1 < <(cpu_stat "$PROXY_CPU")
        gp1=$(cpu_ticks "${GPID[$gw]}")
        up1=$(cpu_ticks "$UP_PID")
        po1=$(passive_opens)
        reqs=$(wrk_requests "$out")
        if [ -z "$reqs" ] || [ "$reqs" -le 0 ]; then
            note "round $r $gw: wrk reported no requests"
            continue
        fi
        rps=$(awk '/Requests\/sec/ {print $2}' "$out")
        echo "$rps" >>"$WORK/rps-$gw"
        wrk_ms "$out" 50 >>"$WORK/p50-$gw"
        wrk_ms "$out" 99 >>"$WORK/p99-$gw"
        wrk_errors "$out" >>"$WORK/err-$gw"
        awk -v t=$((up1 - up0)) -v h="$CLK_TCK" -v n="$reqs" 'BEGIN {printf "%.2f\n", t * 1e6 / h / n}' >>"$WORK/upcpu-$gw"
        [ "$gw" != direct ] &&
            awk -v t=$((gp1 - gp0)) -v h="$CLK_TCK" -v n="$reqs" 'BEGIN {printf "%.2f\n", t * 1e6 / h / n}' >>"$WORK/cpu-$gw"
        echo $((po1 - po0 - CONNS)) >>"$WORK/reconn-$gw"
        own=$((gp1 - gp0))
        [ "$gw" = direct ] && own=0
        awk -v b=$((pb1 - pb0)) -v o="$own" -v t=$((pt1 - pt0)) 'BEGIN {f = t ? 100 * (b - o) / t : 0; printf "%.0f\n", f < 0 ? 0 : f}' >>"$WORK/foreign-$gw"
        log "round $r/$ROUNDS $gw: $rps req/s, $reqs requests"
    done
done

worst=$(cat "$WORK"/foreign-* 2>/dev/null | sort -n | tail -1)
[ "${worst:-0}" -gt 5 ] &&
    note "other processes (or steal) used up to ${worst}% of CPU $PROXY_CPU during a measured run: those rows are contaminated, rerun on a quiet machine"

declare -A LATFILES # gateway -> comma-separated open-loop reports
# ---------------------------------------------------------------- open loop: added latency at a fixed rate
RATE_WHY=""
if [ "$LATENCY" = 1 ]; then
    if [ -z "$RATE" ]; then
        slowest="" slowest_gw=""
        for gw in "${ACTIVE[@]}"; do
            [ "$gw" = direct ] && [ ${#ACTIVE[@]} -gt 1 ] && continue
            m=$(med rps "$gw")
            [ "$m" = "—" ] && continue
            if [ -z "$slowest" ] || awk -v a="$m" -v b="$slowest" 'BEGIN {exit !(a < b)}'; then slowest=$m slowest_gw=$gw; fi
        done
        if [ -n "$slowest" ]; then
            RATE=$(awk -v s="$slowest" -v p="$RATE_PCT" 'BEGIN {r = int(s * p / 100 / 100) * 100; print r < 100 ? 100 : r}')
            RATE_WHY="$RATE_PCT % of the slowest target's median closed-loop req/s (${LABEL[$slowest_gw]}: $(fmt "$slowest" %.0f))"
        fi
    else
        RATE_WHY="fixed with --rate / RATE"
    fi
fi
if [ "$LATENCY" = 1 ] && [ -n "$RATE" ]; then
    for ((r = 1; r <= ROUNDS; r++)); do
        for ((i = 0; i < n; i++)); do
            gw=${ACTIVE[$(((i + r - 1) % n))]}
            out="$WORK/lat-$gw-$r.json"
            taskset -c "$LOAD_CPU" "$BENCH" load "http://127.0.0.1:${PORT[$gw]}/" --rate "$RATE" -c "$LAT_CONNS" \
                -w "$LAT_WARMUP" -d "$LAT_DURATION" -o "$out" 2>>"$WORK/lat-$gw.err" || true
            if [ ! -s "$out" ]; then
                note "open loop round $r $gw failed: $(tail -2 "$WORK/lat-$gw.err" | tr '\n' ' ')"
                continue
            fi
            LATFILES[$gw]="${LATFILES[$gw]:-}${LATFILES[$gw]:+,}$out"
            for k in p50 p90 p99 p99.9 max; do json_num "$out" "$k" latency_us >>"$WORK/l$k-$gw"; done
            json_num "$out" rps >>"$WORK/lrps-$gw"
            json_num "$out" errors_total >>"$WORK/lerr-$gw"
            json_num "$out" p99 send_lag_us >>"$WORK/llag-$gw"
            log "open loop round $r/$ROUNDS $gw at $RATE req/s: p50 $(json_num "$out" p50 latency_us) µs, p99 $(json_num "$out" p99 latency_us) µs"
        done
    done
fi

# ---------------------------------------------------------------- optional: syscalls per request
declare -A SYSC SYSTOP
if [ "$SYSCALLS" = 1 ]; then
    for gw in "${ACTIVE[@]}"; do
        pid=${GPID[$gw]}
        strace -c -f -p "$pid" -o "$WORK/strace-$gw.txt" 2>/dev/null &
        spid=$!
        PIDS+=("$spid")
        sleep 0.5
        run_wrk "${PORT[$gw]}" "$SYSCALL_DURATION" "$WORK/wrk-strace-$gw.txt"
        kill -INT "$spid" 2>/dev/null || true
        wait "$spid" 2>/dev/null || true
        reqs=$(wrk_requests "$WORK/wrk-strace-$gw.txt")
        calls=$(awk '$NF == "total" {print $4}' "$WORK/strace-$gw.txt" 2>/dev/null)
        if [ -n "$reqs" ] && [ -n "$calls" ] && [ "$reqs" -gt 0 ]; then
            SYSC[$gw]=$(awk -v c="$calls" -v n="$reqs" 'BEGIN {printf "%.2f", c / n}')
            SYSTOP[$gw]=$(awk '/^-/ {s++; next} s == 1 && NF >= 5 {print $4, $NF}' "$WORK/strace-$gw.txt" |
                sort -rn | head -5 | awk -v n="$reqs" '{printf "%s%s %.2f", sep, $2, $1 / n; sep = ", "}')
        else
            SYSC[$gw]="n/a"
            note "strace on $gw gave no usable summary"
        fi
    done
fi

# ---------------------------------------------------------------- optional: idle connections memory
declare -A RSS0 RSS1 ALIVE
if [ "$IDLE" = 1 ]; then
    for gw in "${ACTIVE[@]}"; do
        [ "$gw" = direct ] && continue
        pid=${GPID[$gw]}
        RSS0[$gw]=$(rss_kib "$pid")
        taskset -c "$LOAD_CPU" "$BENCH" idle --target "127.0.0.1:${PORT[$gw]}" --conns "$IDLE_CONNS" \
            --hold-secs "$IDLE_HOLD" >"$WORK/idle-$gw.txt" 2>"$WORK/idle-$gw.err" &
        ipid=$!
        PIDS+=("$ipid")
        for ((i = 0; i < 1200; i++)); do
            grep -qs "^HOLDING" "$WORK/idle-$gw.txt" && break
            kill -0 "$ipid" 2>/dev/null || break
            sleep 0.1
        done
        sleep 1
        RSS1[$gw]=$(rss_kib "$pid")
        wait "$ipid" 2>/dev/null || true
        held=$(awk '/^HOLDING/ {print $2}' "$WORK/idle-$gw.txt")
        ALIVE[$gw]="$(awk '/^ALIVE/ {print $2 "/" $4}' "$WORK/idle-$gw.txt") (held ${held:-0})"
        [ -s "$WORK/idle-$gw.err" ] && note "idle $gw: $(head -3 "$WORK/idle-$gw.err" | tr '\n' ' ')"
    done
fi

# ---------------------------------------------------------------- generator ceiling vs a trivial server
# A second reference upstream takes the proxy's place on PROXY_CPU; wrk and portcullis-bench
# load drive it from LOAD_CPU with the closed-loop settings, interleaved over ROUNDS rounds.
# Server CPU near 100 % means the server, not the generator, was the limit.
CEIL_KEYS=(wrk p1 p16)
declare -A CEIL_NAME=([wrk]="wrk -t$THREADS -c$CONNS" [p1]="portcullis-bench load -t$THREADS -c$CONNS"
    [p16]="portcullis-bench load -t$THREADS -c$CONNS -p16")
CEIL_DONE=0
if [ "$CEILING" = 1 ]; then
    taskset -c "$PROXY_CPU" "$BENCH" upstream --listen "127.0.0.1:$CEIL_PORT" --body-size "$BODY_SIZE" \
        >"$WORK/ceil-upstream.log" 2>&1 &
    CPID=$!
    PIDS+=("$CPID")
    if wait_port "$CEIL_PORT" "$CPID" 10; then
        CEIL_DONE=1
        for ((r = 1; r <= ROUNDS; r++)); do
            for key in "${CEIL_KEYS[@]}"; do
                s0=$(cpu_ticks "$CPID") c0=$(child_ticks) t0=$(date +%s.%N)
                if [ "$key" = wrk ]; then
                    taskset -c "$LOAD_CPU" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" "http://127.0.0.1:$CEIL_PORT/" \
                        >"$WORK/ceil-wrk-$r.txt" 2>&1 || true
                else
                    taskset -c "$LOAD_CPU" "$BENCH" load "http://127.0.0.1:$CEIL_PORT/" -c "$CONNS" -p "${key#p}" \
                        -t "$THREADS" -w 1s -d "$DURATION" -o "$WORK/ceil-$key-$r.json" 2>>"$WORK/ceil-load.err" || true
                fi
                s1=$(cpu_ticks "$CPID") c1=$(child_ticks) t1=$(date +%s.%N)
                awk -v t=$((s1 - s0)) -v h="$CLK_TCK" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f\n", 100 * t / h / (b - a)}' >>"$WORK/cs-$key"
                if [ "$key" = wrk ]; then
                    reqs=$(wrk_requests "$WORK/ceil-wrk-$r.txt")
                    [ -n "$reqs" ] && [ "$reqs" -gt 0 ] || continue
                    awk '/Requests\/sec/ {print $2}' "$WORK/ceil-wrk-$r.txt" >>"$WORK/cr-$key"
                    awk -v t=$((c1 - c0)) -v h="$CLK_TCK" -v n="$reqs" 'BEGIN {printf "%.2f\n", t * 1e6 / h / n}' >>"$WORK/cg-$key"
                elif [ -s "$WORK/ceil-$key-$r.json" ]; then
                    json_num "$WORK/ceil-$key-$r.json" rps >>"$WORK/cr-$key"
                    json_num "$WORK/ceil-$key-$r.json" generator_cpu_us_per_req >>"$WORK/cg-$key"
                fi
            done
        done
    else
        note "generator ceiling skipped: the second upstream did not start on :$CEIL_PORT"
    fi
fi

# ---------------------------------------------------------------- report (markdown, JSON, SVG)
# shellcheck source=compare-report.sh
source "$ROOT/bench/compare-report.sh"
