# crosscheck.sh: our generator against a third-party one on the same peers in the same run
# (bench/compare.sh, TLS HTTP/2 scenario): after h2load's rounds, ROUNDS interleaved closed-loop
# rounds of `portcullis-bench load --proto h2` with the same connections x streams; the median
# req/s ratio per peer should be within 10 %. Owns $WORK/x2.* and $WORK/crosscheck.md; must not
# start or stop gateways. Sourced, never run on its own.
# shellcheck shell=bash disable=SC2154

h2_crosscheck() { # h2_crosscheck GATEWAY...: the h2 scenario's running gateways
    local active=("$@") n r i gw out ratio rows=""
    n=${#active[@]}
    for ((r = 1; r <= ROUNDS; r++)); do
        for ((i = 0; i < n; i++)); do
            gw=${active[$(((i + r - 1) % n))]}
            out="$WORK/x2-$gw-$r.json"
            taskset -c "$LOAD_CPU" "$BENCH" load "$(scenario_url h2 "$gw")" --proto h2 -k -c "$CONNS" -m "$STREAMS" \
                -w 1s -d "$DURATION" -o "$out" 2>>"$WORK/x2-$gw.err" || true
            [ -s "$out" ] && json_num "$out" rps >>"$WORK/x2.rps-$gw"
            log "h2 cross-check round $r/$ROUNDS $gw: portcullis-bench $(json_num "$out" rps 2>/dev/null) req/s"
        done
    done
    {
        echo "## Generator cross-check: TLS HTTP/2, \`portcullis-bench load --proto h2\` vs \`h2load\`"
        echo
        echo "Same peers, same run, $CONNS connections x $STREAMS streams, closed loop, $ROUNDS rounds each (h2load's are the scenario's rounds), medians. Ratio = ours / h2load's; the target is 0.90 .. 1.10."
        echo
        echo "| target | h2load req/s | portcullis-bench req/s | ratio |"
        echo "|---|---:|---:|---:|"
        for gw in "${active[@]}"; do
            ratio=$(ratio_or_dash "$(med x2.rps "$gw")" "$(med h2.rps "$gw")")
            echo "| ${LABEL[$gw]} | $(fmt "$(med h2.rps "$gw")" %.0f) | $(fmt "$(med x2.rps "$gw")" %.0f) | $ratio |"
            [ "$ratio" != "—" ] && awk -v x="$ratio" 'BEGIN {exit !(x < 0.9 || x > 1.1)}' &&
                rows="$rows ${LABEL[$gw]} ($ratio)"
        done
    } >"$WORK/crosscheck.md"
    [ -n "$rows" ] && note "h2 generator cross-check outside 10 %:$rows"
    return 0
}
