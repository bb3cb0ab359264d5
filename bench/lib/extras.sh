# extras.sh: the measurements of bench/compare.sh beyond the closed loop, taken in the plain
# scenario while its gateways run (open loop and added latency, syscalls per request, RSS at idle
# connections), and the generator's own ceiling against a trivial server. It owns the open-loop
# files ($WORK/lKEY-GW), SYSC/SYSTOP, RSS0/RSS1/ALIVE, LATFILES and CEIL_*; it must not start
# or stop gateways. Sourced, never run on its own.
# shellcheck shell=bash disable=SC2154

declare -A LATFILES SYSC SYSTOP RSS0 RSS1 HELD ALIVE
RATE_WHY=""
plain_extras() { # plain_extras GATEWAY...: the plain scenario's running gateways
    ACTIVE=("$@")
    n=${#ACTIVE[@]}
    [ "$LATENCY" = 1 ] && open_loop
    [ "$SYSCALLS" = 1 ] && syscalls
    [ "$IDLE" = 1 ] && idle_memory plain "$@"
    return 0
}
tls_extras() { [ "$IDLE" = 1 ] && idle_memory tls "$@"; return 0; } # idle TLS HTTP/1.1 connections
h2_scenario_extras() { h2_crosscheck "$@"; [ "$IDLE" = 1 ] && idle_memory h2 "$@"; return 0; } # cross-check, idle TLS HTTP/2

open_loop() { # added latency at a fixed rate
    local gw r i out k m slowest="" slowest_gw=""
    if [ -z "$RATE" ]; then
        for gw in "${ACTIVE[@]}"; do
            [ "$gw" = direct ] && [ ${#ACTIVE[@]} -gt 1 ] && continue
            m=$(med plain.rps "$gw")
            [ "$m" = "—" ] && continue
            if [ -z "$slowest" ] || awk -v a="$m" -v b="$slowest" 'BEGIN {exit !(a < b)}'; then slowest=$m slowest_gw=$gw; fi
        done
        [ -n "$slowest" ] || return 0
        RATE=$(awk -v s="$slowest" -v p="$RATE_PCT" 'BEGIN {r = int(s * p / 100 / 100) * 100; print r < 100 ? 100 : r}')
        RATE_WHY="$RATE_PCT % of the slowest target's median closed-loop req/s (${LABEL[$slowest_gw]}: $(fmt "$slowest" %.0f))"
    else
        RATE_WHY="fixed with --rate / RATE"
    fi
    for ((r = 1; r <= ROUNDS; r++)); do
        for ((i = 0; i < n; i++)); do
            gw=${ACTIVE[$(((i + r - 1) % n))]}
            out="$WORK/lat-$gw-$r.json"
            taskset -c "$LOAD_CPU" "$BENCH" load "$(scenario_url plain "$gw")" --rate "$RATE" -c "$LAT_CONNS" \
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
}

syscalls() { # syscalls per request (strace -c), one short wrk run each
    local gw pid spid reqs calls
    for gw in "${ACTIVE[@]}"; do
        pid=${GPID[$gw]}
        strace -c -f -p "$pid" -o "$WORK/strace-$gw.txt" 2>/dev/null &
        spid=$!
        PIDS+=("$spid")
        sleep 0.5
        run_client plain "$gw" "$SYSCALL_DURATION" "$WORK/wrk-strace-$gw.txt"
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
}

idle_memory() { # idle_memory SCENARIO GATEWAY...: RSS while holding idle keep-alive connections
    # (plain: IDLE_CONNS HTTP/1.1; tls: IDLE_TLS_CONNS TLS HTTP/1.1; h2: IDLE_TLS_CONNS TLS HTTP/2),
    # keyed SCENARIO:GATEWAY in RSS0/RSS1/HELD/ALIVE
    local sc=$1 gw pid ipid i k conns=$IDLE_CONNS flags=()
    shift
    case $sc in
        tls) conns=$IDLE_TLS_CONNS flags=(--tls) ;;
        h2) conns=$IDLE_TLS_CONNS flags=(--tls --h2) ;;
    esac
    for gw in "$@"; do
        [ "$gw" = direct ] && continue
        k="$sc:$gw" pid=${GPID[$gw]}
        RSS0[$k]=$(rss_kib "$pid")
        taskset -c "$LOAD_CPU" "$BENCH" idle --target "127.0.0.1:$(gw_port "$gw" "$sc")" --conns "$conns" \
            --hold-secs "$IDLE_HOLD" "${flags[@]}" >"$WORK/idle-$sc-$gw.txt" 2>"$WORK/idle-$sc-$gw.err" &
        ipid=$!
        PIDS+=("$ipid")
        for ((i = 0; i < 1200; i++)); do
            grep -qs "^HOLDING" "$WORK/idle-$sc-$gw.txt" && break
            kill -0 "$ipid" 2>/dev/null || break
            sleep 0.1
        done
        sleep 1 # past the gateways' buffer release on idle (Portcullis parks after 100 ms)
        RSS1[$k]=$(rss_kib "$pid")
        wait "$ipid" 2>/dev/null || true
        HELD[$k]=$(awk '/^HOLDING/ {print $2}' "$WORK/idle-$sc-$gw.txt")
        ALIVE[$k]="$(awk '/^ALIVE/ {print $2 "/" $4}' "$WORK/idle-$sc-$gw.txt")"
        log "idle $sc $gw: held ${HELD[$k]:-0}, RSS $((RSS0[$k] / 1024)) -> $((RSS1[$k] / 1024)) MiB, alive ${ALIVE[$k]}"
        if [ -s "$WORK/idle-$sc-$gw.err" ]; then note "idle $sc $gw: $(head -3 "$WORK/idle-$sc-$gw.err" | tr '\n' ' ')"; fi
    done
    return 0
}

# A second reference upstream takes the proxy's place on PROXY_CPU; wrk and portcullis-bench
# load drive it from LOAD_CPU with the closed-loop settings, interleaved over ROUNDS rounds.
# Server CPU near 100 % means the server, not the generator, was the limit.
CEIL_KEYS=(wrk p1 p16)
declare -A CEIL_NAME=([wrk]="wrk -t$THREADS -c$CONNS" [p1]="portcullis-bench load -t$THREADS -c$CONNS"
    [p16]="portcullis-bench load -t$THREADS -c$CONNS -p16")
CEIL_DONE=0
generator_ceiling() {
    local r key s0 s1 c0 c1 t0 t1 reqs CPID
    [ "$CEILING" = 1 ] || return 0
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
    stop_pid "$CPID"
}
