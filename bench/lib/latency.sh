# latency.sh: the latency scenario of bench/compare.sh (`--scenarios latency`): every plain
# HTTP/1.1 peer running at once (each idle while another is measured), NGINX's closed-loop
# capacity measured first (wrk, LAT_CAP_ROUNDS rounds), then open loop (`portcullis-bench load
# --rate`) at LAT_LEVELS % of it, LAT_ROUNDS interleaved rounds (levels and peers rotated), the
# direct upstream measured in every round so each round's added p99 = peer p99 - direct p99;
# Portcullis's own added time read from its /metrics histogram (scraped at the start and end of
# each measured window, differenced by `portcullis-bench added`). It owns the files
# $WORK/lat*, $WORK/own-* and $WORK/latency.{md,tsv,svg}; it starts and stops only the peers of
# this scenario. Sourced, never run on its own.
# shellcheck shell=bash disable=SC2154

LAT_LEVELS=${LAT_LEVELS:-25 50 75} LAT_CAP_ROUNDS=${LAT_CAP_ROUNDS:-3}
LAT_ROUNDS=${LAT_ROUNDS:-${ROUNDS_GIVEN:-10}}
LAT_CAP="" LAT_CAP_GW="" LAT_ACTIVE=()
declare -A LAT_RATE

secs() { awk -v d="$1" 'BEGIN {m = 1; if (d ~ /ms$/) m = 0.001; else if (d ~ /m$/) m = 60; sub(/[a-z]+$/, "", d); print d * m}'; }
scrape() { curl -s -m 5 -o "$2" "http://127.0.0.1:$1/metrics" || : >"$2"; } # scrape ADMIN_PORT FILE
admin_port() { # admin_port GATEWAY: its admin API's port (Portcullis), or nothing
    if [[ "$1" == portcullis || "$1" == baseline ]]; then echo $(($(gw_port "$1" latency) + 50)); fi
}
spread_stats() { # spread_stats FILE -> "median min max q1 q3 n" of the values in FILE
    sort -g "$1" | awk '{v[NR] = $1} function at(q,  p, i, f) {p = q * (NR - 1); i = int(p); f = p - i; return v[i + 1] + (v[(i + 2 > NR ? NR : i + 2)] - v[i + 1]) * f}
        END {if (NR) printf "%.0f %.0f %.0f %.0f %.0f %d\n", at(0.5), v[1], v[NR], at(0.25), at(0.75), NR}'
}

lat_round() { # lat_round GATEWAY LEVEL ROUND: one open-loop run, its p99 and (Portcullis) own time
    local gw=$1 lvl=$2 r=$3 out="$WORK/lat-$2-$1-$3.json" ap lp
    ap=$(admin_port "$gw")
    taskset -c "$LOAD_CPU" "$BENCH" load "$(scenario_url latency "$gw")" --rate "${LAT_RATE[$lvl]}" -c "$LAT_CONNS" \
        -w "$LAT_WARMUP" -d "$LAT_DURATION" -o "$out" 2>>"$WORK/lat-$gw.err" &
    lp=$!
    if [ -n "$ap" ]; then # the measured window starts after the warm-up (sending starts 0.3 s in)
        sleep "$(awk -v w="$(secs "$LAT_WARMUP")" 'BEGIN {print w + 0.3}')"
        scrape "$ap" "$WORK/m0"
    fi
    wait "$lp" || true
    if [ ! -s "$out" ]; then
        note "latency round $r $gw at $lvl %: the generator failed: $(tail -2 "$WORK/lat-$gw.err" | tr '\n' ' ')"
        return 0
    fi
    json_num "$out" p99 latency_us >"$WORK/latr-$lvl-$r-$gw"
    json_num "$out" p50 latency_us >>"$WORK/lp50-$lvl-$gw"
    json_num "$out" p99 latency_us >>"$WORK/lp99-$lvl-$gw"
    json_num "$out" errors_total >>"$WORK/lerr-$lvl-$gw"
    json_num "$out" rps >>"$WORK/lrps-$lvl-$gw"
    if [ -n "$ap" ]; then
        scrape "$ap" "$WORK/m1"
        if "$BENCH" added "$WORK/m0" "$WORK/m1" >"$WORK/own.json" 2>>"$WORK/lat-$gw.err"; then
            jq -r '"\(.count) \(.p50_us // "nan") \(.p99_us // "nan") \(.p999_us // "nan")"' "$WORK/own.json" >>"$WORK/own-$lvl-$gw"
        else
            note "latency round $r $gw: no added-time histogram in /metrics on :$ap"
        fi
    fi
    log "latency round $r/$LAT_ROUNDS $lvl % (${LAT_RATE[$lvl]} req/s) $gw: p50 $(json_num "$out" p50 latency_us) µs, p99 $(json_num "$out" p99 latency_us) µs$([ -n "$ap" ] && [ -s "$WORK/own-$lvl-$gw" ] && echo ", own p99 $(tail -1 "$WORK/own-$lvl-$gw" | cut -d' ' -f3) µs")"
}

run_latency() {
    local sc=latency gw active=() r i n lvl d
    log "scenario latency: open loop at ${LAT_LEVELS// /, } % of NGINX's closed-loop capacity, $LAT_ROUNDS rounds"
    for gw in $GATEWAYS; do
        can_run "$sc" "$gw" || { [ "$gw" = direct ] || SKIPSC[$sc:$gw]="${CAN[$sc:${gw/baseline/portcullis}]:-cannot}"; continue; }
        [ -n "${SKIP[$gw]:-}" ] && { SKIPSC[$sc:$gw]=${SKIP[$gw]}; continue; }
        if start_gateway "$gw" "$sc" && check_gateway "$sc" "$gw"; then
            active+=("$gw")
        else
            stop_gateway "$gw"
            log "$sc: ${LABEL[$gw]} skipped: ${SKIPSC[$sc:$gw]}"
        fi
    done
    [[ " ${active[*]} " == *" direct "* ]] || note "latency: the direct upstream is not in GATEWAYS: no added p99 can be computed"
    LAT_CAP_GW=nginx
    if [[ " ${active[*]} " != *" nginx "* ]]; then # no NGINX: the first active gateway's capacity
        for gw in "${active[@]}"; do [ "$gw" != direct ] && { LAT_CAP_GW=$gw; break; }; done
        note "latency: NGINX did not run; load levels are % of ${LABEL[$LAT_CAP_GW]}'s closed-loop capacity"
    fi
    SC_ACTIVE[$sc]=$LAT_CAP_GW
    if [ ${#active[@]} -gt 0 ]; then
        run_client "$sc" "$LAT_CAP_GW" "$WARMUP" "$WORK/warmup-$sc-$LAT_CAP_GW.txt"
        for ((r = 1; r <= LAT_CAP_ROUNDS; r++)); do measure_round "$sc" "$LAT_CAP_GW" "$r"; done
        LAT_CAP=$(med "$sc.rps" "$LAT_CAP_GW")
    fi
    if [ -z "$LAT_CAP" ] || [ "$LAT_CAP" = "—" ]; then
        note "latency: no closed-loop capacity measured; scenario skipped"
    else
        for lvl in $LAT_LEVELS; do LAT_RATE[$lvl]=$(awk -v c="$LAT_CAP" -v p="$lvl" 'BEGIN {r = int(c * p / 100); print r < 100 ? 100 : r}'); done
        for gw in "${active[@]}"; do # warm every peer (its pools, caches, page faults) once
            taskset -c "$LOAD_CPU" "$BENCH" load "$(scenario_url "$sc" "$gw")" --rate "${LAT_RATE[${LAT_LEVELS%% *}]}" \
                -c "$LAT_CONNS" -w 0s -d "$LAT_WARMUP" -o /dev/null 2>/dev/null || true
        done
        n=${#active[@]}
        for ((r = 1; r <= LAT_ROUNDS; r++)); do
            for lvl in $LAT_LEVELS; do
                for ((i = 0; i < n; i++)); do lat_round "${active[$(((i + r - 1) % n))]}" "$lvl" "$r"; done
            done
        done
        # Added p99 of each round: the peer's p99 minus the direct upstream's in the same round.
        : >"$WORK/latency.tsv"
        for lvl in $LAT_LEVELS; do
            for gw in "${active[@]}"; do
                [ "$gw" = direct ] && continue
                for ((r = 1; r <= LAT_ROUNDS; r++)); do
                    [ -s "$WORK/latr-$lvl-$r-$gw" ] && [ -s "$WORK/latr-$lvl-$r-direct" ] || continue
                    d=$(awk -v a="$(cat "$WORK/latr-$lvl-$r-$gw")" -v b="$(cat "$WORK/latr-$lvl-$r-direct")" 'BEGIN {printf "%.0f", a - b}')
                    echo "$d" >>"$WORK/ladd-$lvl-$gw"
                    printf '%s\t%s %% (%s req/s)\t%s\n' "${LABEL[$gw]}" "$lvl" "${LAT_RATE[$lvl]}" "$d" >>"$WORK/latency.tsv"
                done
            done
        done
        LAT_ACTIVE=("${active[@]}")
        if [ -s "$WORK/latency.tsv" ] && "$BENCH" spread "$WORK/latency.tsv" -o "$WORK/latency.svg" \
            --title "Added p99 per round (peer p99 - direct p99), open loop, plain HTTP/1.1" --unit "added p99 µs" 2>"$WORK/spread.err"; then
            :
        else
            rm -f "$WORK/latency.svg"
            [ -s "$WORK/latency.tsv" ] && log "spread chart failed: $(cat "$WORK/spread.err")"
        fi
        latency_report >"$WORK/latency.md"
    fi
    for gw in "${active[@]}"; do stop_gateway "$gw"; done
}

latency_report() { # the scenario's markdown section (also printed at the end of the run)
    local lvl gw s own
    echo "## Latency: open loop at ${LAT_LEVELS// / %, } % of ${LABEL[$LAT_CAP_GW]}'s closed-loop capacity"
    echo
    echo "- capacity: $(fmt "$LAT_CAP" %.0f) req/s (\`wrk -t$THREADS -c$CONNS -d$DURATION\`, median of $LAT_CAP_ROUNDS rounds, this run); open loop: \`portcullis-bench load --rate R -c $LAT_CONNS -w $LAT_WARMUP -d $LAT_DURATION\` on CPU $LOAD_CPU, latency from the intended send time"
    echo "- $LAT_ROUNDS interleaved rounds per load (levels and peers rotated), every peer running throughout; /dev/cpu_dma_latency: $DMA"
    echo "- added p99 of a round = the peer's p99 minus the direct upstream's p99 in the same round and load; median and spread over rounds (middle half = 25th..75th percentile of the rounds)"
    echo
    echo "| load | target | p50 µs | p99 µs | added p99 µs: median | middle half | min .. max | rounds | errors |"
    echo "|---|---|---:|---:|---:|---|---|---:|---:|"
    for lvl in $LAT_LEVELS; do
        for gw in "${LAT_ACTIVE[@]}"; do
            s="— — — — — 0"
            [ -s "$WORK/ladd-$lvl-$gw" ] && s=$(spread_stats "$WORK/ladd-$lvl-$gw")
            read -r m lo hi q1 q3 nr <<<"$s"
            [ "$gw" = direct ] && { m="(baseline)"; nr=$(wc -l <"$WORK/lp99-$lvl-direct" 2>/dev/null || echo 0); }
            echo "| $lvl % (${LAT_RATE[$lvl]} req/s) | ${LABEL[$gw]} | $(fmt "$(med "lp50-$lvl" "$gw")" %.0f) | $(fmt "$(med "lp99-$lvl" "$gw")" %.0f) | $m | $([ "$q1" = — ] && echo — || echo "$q1 .. $q3") | $([ "$lo" = — ] && echo — || echo "$lo .. $hi") | $nr | $(awk '{s += $1} END {print s + 0}' "$WORK/lerr-$lvl-$gw" 2>/dev/null || echo 0) |"
        done
    done
    own=0
    for gw in portcullis baseline; do for lvl in $LAT_LEVELS; do [ -s "$WORK/own-$lvl-$gw" ] && own=1; done; done
    if [ $own = 1 ]; then
        echo
        echo "### Portcullis's own added time (\`portcullis_gateway_added_seconds\`, each round's measured window; medians over rounds)"
        echo
        echo "| load | target | requests per round | p50 µs | p99 µs | p99.9 µs | p99 range over rounds |"
        echo "|---|---|---:|---:|---:|---:|---|"
        for lvl in $LAT_LEVELS; do
            for gw in portcullis baseline; do
                [ -s "$WORK/own-$lvl-$gw" ] || continue
                echo "| $lvl % (${LAT_RATE[$lvl]} req/s) | ${LABEL[$gw]} | $(cut -d' ' -f1 "$WORK/own-$lvl-$gw" | median | xargs printf %.0f) | $(cut -d' ' -f2 "$WORK/own-$lvl-$gw" | median | xargs printf %.1f) | $(cut -d' ' -f3 "$WORK/own-$lvl-$gw" | median | xargs printf %.1f) | $(cut -d' ' -f4 "$WORK/own-$lvl-$gw" | median | xargs printf %.1f) | $(cut -d' ' -f3 "$WORK/own-$lvl-$gw" | sort -g | awk 'NR == 1 {a = $1} {b = $1} END {printf "%.1f .. %.1f", a, b}') |"
            done
        done
        echo
        echo "Targets (issue 14): own added time p99 < 100 µs and p99.9 < 500 µs at 50 % load; end-to-end median added p99 no higher than the best peer's at every load."
    fi
    [ -s "$WORK/latency.svg" ] && { echo; echo "Chart: \`latency-latest.svg\` (per-round added p99 by load and peer: median dot, middle-half box, range line)."; }
    return 0
}
