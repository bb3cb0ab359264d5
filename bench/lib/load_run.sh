# load_run.sh: one measured `portcullis-bench load` run against a pinned gateway, shared by
# bench/h3_compare.sh and bench/h2_upstream_compare.sh. Owns only that run (it starts the
# generator and waits for it); must not start or stop the gateway or the upstream.
# Sourced, never run on its own. Needs BENCH, LOAD_CPU, WARMUP and DURATION (seconds) and WORK.
# shellcheck shell=bash disable=SC2154

# measure_load GW_PID JSON LOAD_ARGS...: runs the generator on LOAD_CPU with LOAD_ARGS (URL,
# --proto, -c, -m, ...), writing its report to JSON, and prints "rps p50 p99 failed cpu_us_per_req"
# (the gateway's utime+stime over the measured window / the requests in it).
measure_load() {
    local gw=$1 json=$2 hz t0 t1 lp
    shift 2
    hz=$(getconf CLK_TCK)
    taskset -c "$LOAD_CPU" "$BENCH" load "$@" -w "${WARMUP}s" -d "${DURATION}s" -o "$json" 2>"$WORK/load.err" &
    lp=$!
    # The generator starts sending 0.3 s after it starts; sample the gateway's CPU over the
    # measured window only.
    sleep "$(awk -v w="$WARMUP" 'BEGIN {print w + 0.3}')"
    t0=$(sed 's/.*) //' "/proc/$gw/stat" | awk '{print $12 + $13}')
    sleep "$DURATION"
    t1=$(sed 's/.*) //' "/proc/$gw/stat" | awk '{print $12 + $13}')
    wait "$lp" || { cat "$WORK/load.err" >&2; return 1; }
    jq -r --argjson d $((t1 - t0)) --argjson hz "$hz" \
        '"\(.rps|round) \(.latency_us.p50) \(.latency_us.p99) \(.errors_total) \(if .requests > 0 then ($d * 1e6 / $hz / .requests * 10 | round / 10) else 0 end)"' "$json"
}
