# compare-report.sh: sourced by compare.sh once every measurement is taken. Renders what the run
# collected (files in $WORK, the shell's arrays: ACTIVE, SKIP, LABEL, SYSC, RSS0/RSS1, LATFILES,
# CEIL_*, NOTES, ...) as bench/results/latest.md, latest.json and latest.svg. It must not start,
# stop or measure anything. Not meant to be run on its own.
# shellcheck shell=bash disable=SC2154

# ---------------------------------------------------------------- report
if [ -n "$RATE" ] && [ "$LATENCY" = 1 ] && [ -s "$WORK/lp99-direct" ]; then
    for gw in "${ACTIVE[@]}"; do
        [ "$gw" = direct ] && continue
        for k in p50 p99; do
            d=$(sub_or_dash "$(med "l$k" "$gw")" "$(med "l$k" direct)")
            [[ "$d" == -* ]] && note "open loop: ${LABEL[$gw]} $k is below direct-to-upstream's ($d µs): the direct runs were disturbed more than the gateway's, so this run's added $k figures are noise"
        done
    done
fi
REPORT="$WORK/report.md"
KIB_PER_CONN() { # KIB_PER_CONN GW -> idle memory per connection, or —
    IDLE_KIB "plain:$1"
}
IDLE_KIB() { # IDLE_KIB SCENARIO:GW -> KiB of RSS per held idle connection, or —
    if [ -n "${RSS1[$1]:-}" ] && [ "${HELD[$1]:-0}" -gt 0 ]; then
        awk -v a="${RSS0[$1]}" -v b="${RSS1[$1]}" -v n="${HELD[$1]}" 'BEGIN {printf "%.2f", (b - a) / n}'
    else echo "—"; fi
}
ADDED() { # ADDED GW PERCENTILE -> open-loop latency minus direct's, µs
    if [ "$1" = direct ]; then echo "—"; else sub_or_dash "$(med "l$2" "$1")" "$(med "l$2" direct)"; fi
}
haproxy_v="HAProxy absent" envoy_v="no Envoy"
command -v haproxy >/dev/null && haproxy_v=$(haproxy -v 2>/dev/null | awk 'NR == 1 {print "HAProxy " $3}')
[ -n "$ENVOY_BIN" ] && envoy_v="Envoy $("$ENVOY_BIN" --version 2>/dev/null | awk '/version:/ {for (i = 1; i <= NF; i++) if ($i == "version:") {print $(i + 1); exit}}')"
{
    echo "# Portcullis side-by-side: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- host: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), kernel $(uname -r), load before: $(cut -d' ' -f1-3 /proc/loadavg), ${busy}% busy"
    echo "- scenarios: ${RUN_SCENARIOS[*]}; each started its peers with configs rendered from bench/peers/, checked them with one request, measured them, stopped them"
    echo "- closed loop: \`wrk -t$THREADS -c$CONNS -d$DURATION --latency\` (HTTP/1.1, TLS HTTP/1.1) or \`h2load -t1 -c$CONNS -m$STREAMS -D${DURATION%s}\` (TLS HTTP/2, p50/p99 from its per-request log) on CPU $LOAD_CPU; reference upstream (\`portcullis-bench upstream\`, ${BODY_SIZE}-byte body) on CPU $LOAD_CPU; proxy alone on CPU $PROXY_CPU"
    echo "- TLS: one ECDSA P-256 certificate (openssl) for every peer, TLS 1.2-1.3, ALPN h2 + http/1.1; JWT: one HS256 token, every peer checks alg, signature, exp, iss, aud$([ "$JWT_CACHE" != 0 ] && echo " (Portcullis with its verified-token cache of $JWT_CACHE entries)"); rate limit: a per-client-IP limit that never trips$([ -n "$REDIS_PORT" ] && echo " (Portcullis synced through redis-server on CPU $LOAD_CPU)")"
    [ -n "$RATE" ] && echo "- open loop: \`portcullis-bench load --rate $RATE -c $LAT_CONNS -w $LAT_WARMUP -d $LAT_DURATION\` on CPU $LOAD_CPU ($RATE_WHY); latency from the intended send time (no coordinated omission); added = gateway minus direct"
    echo "- $ROUNDS interleaved round(s), order rotated each round; medians over rounds; /dev/cpu_dma_latency: $DMA"
    echo "- CPU-µs/req = (utime+stime of all the process's threads and children) / the client's completed requests; errors = non-2xx/3xx + socket errors (h2load: failed, errored, timed out, 4xx/5xx), all rounds"
    echo "- other load on CPU $PROXY_CPU = its busy time (user+system+steal) not spent by the proxy: should be ~0; more means another process or the hypervisor took the proxy's core"
    echo "- reconnects = host TCP passive opens during the runs minus the client's $CONNS per run: upstream connections the proxy (re)opened plus wrk reconnects; ~0 means keep-alive held on both sides"
    echo "- versions: $(nginx -v 2>&1 | sed 's/^nginx version: //'), $haproxy_v, $envoy_v, $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'), upstream ring: $(grep -o 'ring: [^,]*' "$WORK/upstream.log" | head -1 | cut -d' ' -f2)"
    echo
    echo "## Scenarios (closed loop, medians over rounds)"
    echo
    echo "| scenario | target | req/s | p50 ms | p99 ms | proxy CPU-µs/req | CPU vs NGINX | errors | reconnects | other load on CPU $PROXY_CPU % |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for sc in "${RUN_SCENARIOS[@]}"; do
        for gw in ${SC_ACTIVE[$sc]:-}; do
            errs=$(awk '{s += $1} END {print s + 0}' "$WORK/$sc.err-$gw" 2>/dev/null || echo 0)
            tws=$(awk '{s += $1} END {print s + 0}' "$WORK/$sc.reconn-$gw" 2>/dev/null || echo 0)
            echo "| ${SCENARIO_LABEL[$sc]} | ${LABEL[$gw]} | $(fmt "$(med "$sc.rps" "$gw")" %.0f) | $(fmt "$(med "$sc.p50" "$gw")" %.3f) | $(fmt "$(med "$sc.p99" "$gw")" %.3f) | $(fmt "$(med "$sc.cpu" "$gw")" %.1f) | $(ratio_or_dash "$(med "$sc.cpu" "$gw")" "$(med "$sc.cpu" nginx)") | $errs | $tws | $(fmt "$(med "$sc.foreign" "$gw")" %.0f) |"
        done
        for gw in $GATEWAYS; do
            if [ -n "${SKIPSC[$sc:$gw]:-}" ]; then echo "| ${SCENARIO_LABEL[$sc]} | ${LABEL[$gw]} | ${SKIPSC[$sc:$gw]} | | | | | | | |"; fi
        done
    done
    echo
    echo "TLS HTTP/2 runs $STREAMS concurrent streams on each of $CONNS connections; its req/s is not comparable with the HTTP/1.1 rows, its CPU per request is."
    echo
    if [ ${#ACTIVE[@]} -gt 0 ]; then
        echo "## Plain proxy: summary"
        echo
        echo "| target | req/s | p50 ms | p99 ms | open-loop p99 µs | added p50 µs | added p99 µs | proxy CPU-µs/req | syscalls/req | idle KiB/conn |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        for gw in "${ACTIVE[@]}"; do
            echo "| ${LABEL[$gw]} | $(fmt "$(med plain.rps "$gw")" %.0f) | $(fmt "$(med plain.p50 "$gw")" %.3f) | $(fmt "$(med plain.p99 "$gw")" %.3f) | $(fmt "$(med lp99 "$gw")" %.0f) | $(ADDED "$gw" p50) | $(ADDED "$gw" p99) | $(fmt "$(med plain.cpu "$gw")" %.1f) | ${SYSC[$gw]:-—} | $(KIB_PER_CONN "$gw") |"
        done
        for gw in $GATEWAYS; do
            if [ -n "${SKIPSC[plain:$gw]:-}" ]; then echo "| ${LABEL[$gw]} | ${SKIPSC[plain:$gw]} | | | | | | | | |"; fi
        done
        echo
        echo "## Plain proxy: closed loop (max throughput)"
        echo
        echo "| target | req/s (median) | req/s per round | p50 ms | p99 ms | proxy CPU-µs/req | upstream CPU-µs/req | errors | reconnects | other load on CPU $PROXY_CPU % |"
        echo "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"
        for gw in "${ACTIVE[@]}"; do
            per=$(awk '{printf "%s%.0f", sep, $1; sep = ", "}' "$WORK/plain.rps-$gw" 2>/dev/null || true)
            errs=$(awk '{s += $1} END {print s + 0}' "$WORK/plain.err-$gw" 2>/dev/null || echo 0)
            tws=$(awk '{s += $1} END {print s + 0}' "$WORK/plain.reconn-$gw" 2>/dev/null || echo 0)
            echo "| ${LABEL[$gw]} | $(fmt "$(med plain.rps "$gw")" %.0f) | ${per:-—} | $(fmt "$(med plain.p50 "$gw")" %.3f) | $(fmt "$(med plain.p99 "$gw")" %.3f) | $(fmt "$(med plain.cpu "$gw")" %.1f) | $(fmt "$(med plain.upcpu "$gw")" %.1f) | $errs | $tws | $(fmt "$(med plain.foreign "$gw")" %.0f) |"
        done
    fi
    if [ -n "$RATE" ] && [ "$LATENCY" = 1 ]; then
        echo
        echo "## Open loop at $RATE req/s (latency µs, from the intended send time)"
        echo
        echo "| target | achieved req/s | p50 | p90 | p99 | p99.9 | max | added p50 | added p99 | errors | generator send lag p99 |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        for gw in "${ACTIVE[@]}"; do
            lerrs=$(awk '{s += $1} END {print s + 0}' "$WORK/lerr-$gw" 2>/dev/null || echo 0)
            echo "| ${LABEL[$gw]} | $(fmt "$(med lrps "$gw")" %.0f) | $(fmt "$(med lp50 "$gw")" %.1f) | $(fmt "$(med lp90 "$gw")" %.1f) | $(fmt "$(med lp99 "$gw")" %.1f) | $(fmt "$(med lp99.9 "$gw")" %.1f) | $(fmt "$(med lmax "$gw")" %.1f) | $(ADDED "$gw" p50) | $(ADDED "$gw" p99) | $lerrs | $(fmt "$(med llag "$gw")" %.1f) |"
        done
        echo
        echo "Chart: \`latest.svg\` (median over rounds of each percentile). Send lag = how late the generator itself sent a request whose connection was free (timer and CPU slack): it is not part of the latency."
    fi
    if [ -s "$WORK/crosscheck.md" ]; then
        echo
        cat "$WORK/crosscheck.md"
    fi
    if [ -s "$WORK/latency.md" ]; then
        echo
        cat "$WORK/latency.md"
    fi
    if [ "$SYSCALLS" = 1 ]; then
        echo
        echo "## Syscalls per request"
        echo
        echo "\`strace -c -f\`, $SYSCALL_DURATION wrk run; strace slows the process, counts stay valid; io_uring SQEs are not syscalls."
        echo
        echo "| target | syscalls/req | top syscalls per request |"
        echo "|---|---:|---|"
        for gw in "${ACTIVE[@]}"; do echo "| ${LABEL[$gw]} | ${SYSC[$gw]:-n/a} | ${SYSTOP[$gw]:-} |"; done
    fi
    if [ "$IDLE" = 1 ]; then
        echo
        echo "## Idle keep-alive connections"
        echo
        echo "\`portcullis-bench idle --hold-secs $IDLE_HOLD\`: $IDLE_CONNS plain HTTP/1.1 connections (\`plain\`), $IDLE_TLS_CONNS TLS 1.3 HTTP/1.1 (\`--tls\`, tls scenario) and $IDLE_TLS_CONNS TLS HTTP/2 (\`--tls --h2\`, h2 scenario), one request each, then held idle; KiB = (VmRSS holding - VmRSS before) / connections held, VmRSS summed over the process tree, read 1 s after the last connection was proved. HAProxy is capped at maxconn $HAPROXY_MAXCONN by the descriptor limit."
        echo
        echo "| target | scenario | VmRSS before MiB | VmRSS holding MiB | held | KiB per idle conn | alive after hold / held |"
        echo "|---|---|---:|---:|---:|---:|---|"
        for sc in plain tls h2; do
            for gw in $GATEWAYS; do
                [ -n "${RSS1[$sc:$gw]:-}" ] || continue
                awk -v a="${RSS0[$sc:$gw]}" -v b="${RSS1[$sc:$gw]}" -v l="${LABEL[$gw]}" -v s="$sc" -v h="${HELD[$sc:$gw]:-0}" \
                    -v k="$(IDLE_KIB "$sc:$gw")" -v al="${ALIVE[$sc:$gw]:-}" \
                    'BEGIN {printf "| %s | %s | %.1f | %.1f | %s | %s | %s |\n", l, s, a / 1024, b / 1024, h, k, al}'
            done
        done
    fi
    if [ "$CEIL_DONE" = 1 ]; then
        echo
        echo "## Generator ceiling"
        echo
        echo "A second reference upstream alone on CPU $PROXY_CPU, the generator on CPU $LOAD_CPU, $DURATION each, $ROUNDS interleaved round(s), medians. Server CPU near 100 % = the server was the limit, not the generator."
        echo
        echo "| generator | req/s (median) | req/s per round | generator CPU-µs/req | server CPU busy % |"
        echo "|---|---:|---|---:|---:|"
        for key in "${CEIL_KEYS[@]}"; do
            per=$(awk '{printf "%s%.0f", sep, $1; sep = ", "}' "$WORK/cr-$key" 2>/dev/null || true)
            echo "| \`${CEIL_NAME[$key]}\` | $(fmt "$(med cr "$key")" %.0f) | ${per:-—} | $(fmt "$(med cg "$key")" %.2f) | $(fmt "$(med cs "$key")" %.0f) |"
        done
    fi
    echo
    echo "## Scenario coverage"
    echo
    echo "What each peer can do (\`bench/compare.sh --scenarios LIST\`; this harness runs: $HARNESS_SCENARIOS). Configs: bench/peers/."
    echo
    printf '| scenario |'; for gw in portcullis nginx haproxy envoy caddy; do printf ' %s |' "${LABEL[$gw]}"; done; echo
    echo "|---|---|---|---|---|---|"
    for sc in $KNOWN_SCENARIOS; do
        printf '| %s%s |' "${SCENARIO_LABEL[$sc]}" "$([[ " $HARNESS_SCENARIOS " == *" $sc "* ]] || echo " (not run by this harness)")"
        for gw in portcullis nginx haproxy envoy caddy; do printf ' %s |' "${CAN[$sc:$gw]:-?}"; done
        echo
    done
    if [ ${#NOTES[@]} -gt 0 ]; then
        echo
        echo "Notes:"
        for n in "${NOTES[@]}"; do echo "- $n"; done
    fi
} >"$REPORT"

# ---------------------------------------------------------------- JSON
jstr() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g' | tr '\n\t' '  ')"; }
jnum() { if [ -z "$1" ] || [ "$1" = "—" ] || [ "$1" = "n/a" ] || [ "$1" = failed ]; then printf null; else printf '%s' "${1#+}"; fi; }
jlist() { if [ -s "$1" ]; then printf '[%s]' "$(paste -sd, "$1")"; else printf '[]'; fi; }
JSON="$WORK/report.json"
{
    printf '{\n  "date": %s,\n' "$(jstr "$(date -u '+%Y-%m-%dT%H:%M:%SZ')")"
    printf '  "host": {"cpus": %s, "kernel": %s, "busy_before_pct": %s, "dma_latency": %s},\n' "$(nproc)" "$(jstr "$(uname -r)")" "$busy" "$(jstr "$DMA")"
    printf '  "scenarios_run": [%s], "streams": %s,\n' "$(for sc in "${RUN_SCENARIOS[@]}"; do printf '%s' "${sep_:-}$(jstr "$sc")"; sep_=", "; done)" "$STREAMS"
    printf '  "settings": {"duration": %s, "conns": %s, "threads": %s, "rounds": %s, "warmup": %s, "proxy_cpu": %s, "load_cpu": %s, "body_size": %s, "rate": %s, "rate_why": %s, "lat_conns": %s, "lat_duration": %s},\n' \
        "$(jstr "$DURATION")" "$CONNS" "$THREADS" "$ROUNDS" "$(jstr "$WARMUP")" "$PROXY_CPU" "$LOAD_CPU" "$BODY_SIZE" "$(jnum "$RATE")" "$(jstr "$RATE_WHY")" "$LAT_CONNS" "$(jstr "$LAT_DURATION")"
    printf '  "plain": {'
    sep=""
    for gw in "${ACTIVE[@]}"; do
        printf '%s\n    %s: {"label": %s, "closed_loop": {"rps_median": %s, "rps_rounds": %s, "p50_ms": %s, "p99_ms": %s, "proxy_cpu_us_per_req": %s, "upstream_cpu_us_per_req": %s, "errors": %s, "reconnects": %s, "other_load_pct": %s},' \
            "$sep" "$(jstr "$gw")" "$(jstr "${LABEL[$gw]}")" "$(jnum "$(med plain.rps "$gw")")" "$(jlist "$WORK/plain.rps-$gw")" "$(jnum "$(med plain.p50 "$gw")")" "$(jnum "$(med plain.p99 "$gw")")" \
            "$(jnum "$(med plain.cpu "$gw")")" "$(jnum "$(med plain.upcpu "$gw")")" "$(awk '{s += $1} END {print s + 0}' "$WORK/plain.err-$gw" 2>/dev/null || echo 0)" \
            "$(awk '{s += $1} END {print s + 0}' "$WORK/plain.reconn-$gw" 2>/dev/null || echo 0)" "$(jnum "$(med plain.foreign "$gw")")"
        printf '\n      "open_loop": {"p50_us": %s, "p90_us": %s, "p99_us": %s, "p99.9_us": %s, "max_us": %s, "rps": %s, "added_p50_us": %s, "added_p99_us": %s, "reports": [' \
            "$(jnum "$(med lp50 "$gw")")" "$(jnum "$(med lp90 "$gw")")" "$(jnum "$(med lp99 "$gw")")" "$(jnum "$(med lp99.9 "$gw")")" "$(jnum "$(med lmax "$gw")")" \
            "$(jnum "$(med lrps "$gw")")" "$(jnum "$(ADDED "$gw" p50)")" "$(jnum "$(ADDED "$gw" p99)")"
        rsep=""
        IFS=, read -r -a files <<<"${LATFILES[$gw]:-}"
        for f in "${files[@]}"; do [ -s "$f" ] && { printf '%s' "$rsep"; tr -d '\n' <"$f" | tr -s ' '; rsep=", "; }; done
        printf ']},\n      "syscalls_per_req": %s, "idle_kib_per_conn": %s}' "$(jnum "${SYSC[$gw]:-}")" "$(jnum "$(KIB_PER_CONN "$gw")")"
        sep=","
    done
    printf '\n  },\n  "scenarios": {'
    sep=""
    for sc in "${RUN_SCENARIOS[@]}"; do
        printf '%s\n    %s: {"label": %s, "client": %s, "targets": {' "$sep" "$(jstr "$sc")" "$(jstr "${SCENARIO_LABEL[$sc]}")" "$(jstr "${SCENARIO_CLIENT[$sc]}")"
        tsep=""
        for gw in ${SC_ACTIVE[$sc]:-}; do
            printf '%s%s: {"rps_median": %s, "rps_rounds": %s, "p50_ms": %s, "p99_ms": %s, "proxy_cpu_us_per_req": %s, "errors": %s, "reconnects": %s, "other_load_pct": %s}' \
                "$tsep" "$(jstr "$gw")" "$(jnum "$(med "$sc.rps" "$gw")")" "$(jlist "$WORK/$sc.rps-$gw")" "$(jnum "$(med "$sc.p50" "$gw")")" "$(jnum "$(med "$sc.p99" "$gw")")" \
                "$(jnum "$(med "$sc.cpu" "$gw")")" "$(awk '{s += $1} END {print s + 0}' "$WORK/$sc.err-$gw" 2>/dev/null || echo 0)" \
                "$(awk '{s += $1} END {print s + 0}' "$WORK/$sc.reconn-$gw" 2>/dev/null || echo 0)" "$(jnum "$(med "$sc.foreign" "$gw")")"
            tsep=", "
        done
        printf '}, "not_run": {'
        tsep=""
        for gw in $GATEWAYS; do
            if [ -n "${SKIPSC[$sc:$gw]:-}" ]; then printf '%s%s: %s' "$tsep" "$(jstr "$gw")" "$(jstr "${SKIPSC[$sc:$gw]}")"; tsep=", "; fi
        done
        printf '}}'
        sep=","
    done
    printf '\n  },\n  "skipped": {'
    sep=""
    for gw in $GATEWAYS; do
        [[ " ${ACTIVE[*]} " == *" $gw "* ]] && continue
        printf '%s%s: %s' "$sep" "$(jstr "$gw")" "$(jstr "${SKIPSC[plain:$gw]:-${SKIP[$gw]:-not run}}")"
        sep=", "
    done
    printf '},\n  "generator_ceiling": ['
    sep=""
    if [ "$CEIL_DONE" = 1 ]; then
        for key in "${CEIL_KEYS[@]}"; do
            printf '%s{"generator": %s, "rps_median": %s, "rps_rounds": %s, "generator_cpu_us_per_req": %s, "server_cpu_busy_pct": %s}' "$sep" \
                "$(jstr "${CEIL_NAME[$key]}")" "$(jnum "$(med cr "$key")")" "$(jlist "$WORK/cr-$key")" "$(jnum "$(med cg "$key")")" "$(jnum "$(med cs "$key")")"
            sep=", "
        done
    fi
    printf '],\n  "coverage": {'
    sep=""
    for sc in $KNOWN_SCENARIOS; do
        printf '%s%s: {"in_harness": %s' "$sep" "$(jstr "$sc")" "$([[ " $HARNESS_SCENARIOS " == *" $sc "* ]] && echo true || echo false)"
        for gw in portcullis nginx haproxy envoy caddy; do printf ', %s: %s' "$(jstr "$gw")" "$(jstr "${CAN[$sc:$gw]:-?}")"; done
        printf '}'
        sep=", "
    done
    printf '},\n  "notes": ['
    sep=""
    for n in "${NOTES[@]}"; do printf '%s%s' "$sep" "$(jstr "$n")"; sep=", "; done
    printf ']\n}\n'
} >"$JSON"

# ---------------------------------------------------------------- SVG
SVG=""
series=()
for gw in "${ACTIVE[@]}"; do [ -n "${LATFILES[$gw]:-}" ] && series+=("${LABEL[$gw]}=${LATFILES[$gw]}"); done
if [ ${#series[@]} -gt 0 ]; then
    if "$BENCH" chart -o "$WORK/report.svg" --title "Open loop at $RATE req/s: latency percentiles (plain HTTP/1.1 proxy)" "${series[@]}" 2>"$WORK/chart.err"; then
        SVG="$WORK/report.svg"
    else
        log "chart failed: $(cat "$WORK/chart.err")"
    fi
fi

mkdir -p "$ROOT/bench/results"
stamp=$(date -u +%Y%m%d-%H%M%S)
cp "$REPORT" "$ROOT/bench/results/latest.md"
cp "$REPORT" "$ROOT/bench/results/$stamp.md"
cp "$JSON" "$ROOT/bench/results/latest.json"
cp "$JSON" "$ROOT/bench/results/$stamp.json"
if [ -s "$WORK/latency.svg" ]; then
    cp "$WORK/latency.svg" "$ROOT/bench/results/latency-latest.svg"
    cp "$WORK/latency.svg" "$ROOT/bench/results/latency-$stamp.svg"
fi
if [ -n "$SVG" ]; then
    cp "$SVG" "$ROOT/bench/results/latest.svg"
    cp "$SVG" "$ROOT/bench/results/$stamp.svg"
fi
cat "$REPORT"
log "wrote bench/results/latest.md, latest.json$([ -n "$SVG" ] && echo ", latest.svg")"
