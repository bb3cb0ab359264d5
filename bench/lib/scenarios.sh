# scenarios.sh: what each scenario of bench/compare.sh is (label, port offset, which peer can do
# it and why not), how its client is run (wrk for HTTP/1.1 and TLS HTTP/1.1, h2load for TLS
# HTTP/2), the check request every gateway must pass before it is measured, and one measured
# closed-loop run. Files it writes: $WORK/SC.METRIC-GW (one line per round). It must not start
# or stop gateways. Sourced, never run on its own.
# shellcheck shell=bash disable=SC2154

KNOWN_SCENARIOS="plain tls h2 h3 routes jwt ratelimit latency"
HARNESS_SCENARIOS="plain tls h2 h3 routes jwt ratelimit latency" # the ones this harness runs
DEFAULT_SCENARIOS="plain tls h2 h3 routes jwt ratelimit" # run without --scenarios (latency: opt-in)
declare -A SC_OFFSET=([plain]=0 [tls]=100 [h2]=200 [h3]=300 [routes]=400 [jwt]=500 [ratelimit]=600 [latency]=700)
declare -A SCENARIO_LABEL=([plain]="plain HTTP/1.1 proxy" [tls]="TLS HTTP/1.1" [h2]="TLS HTTP/2"
    [h3]="HTTP/3 (QUIC)" [routes]="1,000 routes" [jwt]="JWT auth on" [ratelimit]="rate limit on (never tripping)"
    [latency]="open-loop latency at 25/50/75 % load (plain HTTP/1.1)")
# CAN[scenario:gateway]: "yes ..." runs it; anything else is why the peer has no row.
declare -A CAN=(
    [plain:direct]=yes [plain:portcullis]=yes [plain:nginx]=yes [plain:haproxy]=yes [plain:envoy]=yes
    [latency:direct]=yes [latency:portcullis]="yes (and its own added time from /metrics)" [latency:nginx]=yes [latency:haproxy]=yes [latency:envoy]=yes
    [tls:portcullis]="yes ([listeners.tls], rustls)" [tls:nginx]="yes (OpenSSL)" [tls:haproxy]="yes (OpenSSL)" [tls:envoy]="yes (BoringSSL)"
    [h2:portcullis]="yes (ALPN h2)" [h2:nginx]="yes (http2)" [h2:haproxy]="yes (alpn h2)" [h2:envoy]="yes (codec AUTO)"
    [h3:portcullis]="yes ([listeners.http3], quinn)" [h3:nginx]="no: nginx-light 1.22 has no QUIC (1.25+)"
    [h3:haproxy]="no: Debian's 2.6 build has no QUIC" [h3:envoy]="no: Envoy's HTTP/3 (alpha) is not in bench/peers/envoy.yaml yet"
    [plain:caddy]="yes (http:// site)" [tls:caddy]="yes (Go crypto/tls)" [h2:caddy]="yes (Go net/http)" [h3:caddy]="yes (quic-go)"
    [routes:caddy]="no: not in bench/peers/Caddyfile yet" [jwt:caddy]="no: JWT validation needs a plugin Debian does not ship"
    [ratelimit:caddy]="no: rate limiting needs a plugin Debian does not ship" [latency:caddy]=yes
    [routes:portcullis]="yes (1,000 [[routes]] prefixes)" [routes:nginx]="yes (1,000 locations)" [routes:haproxy]="yes (map_beg over a 1,000-line map)" [routes:envoy]="yes (1,000 routes in one virtual host)"
    [jwt:portcullis]="yes ([auth.jwt] HS256)" [jwt:nginx]="no: JWT validation (auth_jwt) is NGINX Plus only"
    [jwt:haproxy]="yes (jwt_verify, 2.5+)" [jwt:envoy]="yes (jwt_authn)"
    [ratelimit:portcullis]="yes (GCRA per client IP)" [ratelimit:nginx]="yes (limit_req per client IP)"
    [ratelimit:haproxy]="yes (stick table per client IP)" [ratelimit:envoy]="yes (local_ratelimit, one bucket per listener)"
)
can_run() { [[ "${CAN[$1:${2/baseline/portcullis}]:-}" == yes* ]]; } # can_run SCENARIO GATEWAY
# What the client sends, per scenario (for the report).
declare -A SCENARIO_CLIENT=([plain]="wrk, GET /" [tls]="wrk over TLS 1.3, GET /" [h2]="h2load -m STREAMS streams per connection, TLS 1.3"
    [h3]="portcullis-bench load --proto h3 -m STREAMS streams per connection"
    [routes]="wrk, GET /svc/LAST/item (the last of the routes)" [jwt]="wrk, GET / with Authorization: Bearer (HS256)"
    [ratelimit]="wrk, GET /" [latency]="portcullis-bench load --rate (open loop), GET /")

scenario_url() { # scenario_url SCENARIO GATEWAY
    local port
    port=$(gw_port "$2" "$1")
    host=127.0.0.1
    [ "$2" = caddy ] && host=localhost # Caddy proxies only requests naming its site
    case $1 in
        tls | h2 | h3) echo "https://$host:$port/" ;;
        routes) printf 'http://%s:%s/svc/%04d/item\n' "$host" "$port" $((ROUTES - 1)) ;;
        *) echo "http://$host:$port/" ;;
    esac
}

run_client() { # run_client SCENARIO GATEWAY DURATION OUT [H2LOAD_LOG]: the scenario's closed loop
    local url
    url=$(scenario_url "$1" "$2")
    case $1 in
        h2) taskset -c "$LOAD_CPU" h2load -t1 -c"$CONNS" -m"$STREAMS" -D"${3%s}" ${5:+--log-file="$5"} "$url" >"$4" 2>&1 || true ;;
        h3) taskset -c "$LOAD_CPU" "$BENCH" load "$url" --proto h3 -k -c "$CONNS" -m "$STREAMS" -w 0s -d "$3" -o "$4" \
            2>"$4.err" || true ;;
        jwt) taskset -c "$LOAD_CPU" wrk -t"$THREADS" -c"$CONNS" -d"$3" --latency -H "Authorization: Bearer $JWT_TOKEN" "$url" >"$4" 2>&1 || true ;;
        *) taskset -c "$LOAD_CPU" wrk -t"$THREADS" -c"$CONNS" -d"$3" --latency "$url" >"$4" 2>&1 || true ;;
    esac
}

check_gateway() { # check_gateway SCENARIO GATEWAY: the peer answers as the scenario requires, or SKIPSC
    local sc=$1 gw=$2 url code want=200 extra=() size
    url=$(scenario_url "$sc" "$gw")
    if [ "$sc" = h3 ]; then # curl 7.88 has no HTTP/3: one second of our generator
        "$BENCH" load "$url" --proto h3 -k -c 1 -m 1 -w 0s -d 1s -o "$WORK/check-h3-$gw.json" 2>"$WORK/check-h3-$gw.err" || true
        code=$(json_num "$WORK/check-h3-$gw.json" requests) size=$(json_num "$WORK/check-h3-$gw.json" bytes_read)
        if [ "${code:-0}" -gt 0 ] && [ "$(json_num "$WORK/check-h3-$gw.json" errors_total)" = 0 ] && [ "${size:-0}" -ge $((code * BODY_SIZE)) ]; then
            return 0
        fi
        SKIPSC[$sc:$gw]="HTTP/3 check against $url: ${code:-no} requests, ${size:-0} bytes, $(tail -c 200 "$WORK/check-h3-$gw.err" | tr '\n' ' ')"
        return 1
    fi
    [ "$sc" = h2 ] && extra=(--http2)
    [ "$sc" = jwt ] && extra=(-H "Authorization: Bearer $JWT_TOKEN")
    local st ver
    read -r st ver size < <(curl -sk -o /dev/null -m 5 -w '%{http_code} %{http_version} %{size_download}\n' "${extra[@]}" "$url" 2>/dev/null || echo "000 0 0")
    code="$st $ver"
    [ "$sc" = h2 ] && want="200 2"
    if [[ "$code" != "$want"* ]]; then
        SKIPSC[$sc:$gw]="check request to $url answered '$code', expected $want"
        return 1
    fi
    if [ "${size:-0}" != "$BODY_SIZE" ]; then # proxied for real: the upstream's body came back
        SKIPSC[$sc:$gw]="check request to $url returned a ${size:-0}-byte body, not the upstream's $BODY_SIZE bytes: not proxied"
        return 1
    fi
    case $sc in # the scenario's feature must really be on
        jwt) code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$url" || true)
            [ "$code" = 401 ] || { SKIPSC[$sc:$gw]="a request without a token answered $code, not 401: JWT not enforced"; return 1; } ;;
        routes) code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "${url%/svc/*}/nowhere" || true)
            [ "$code" = 404 ] || { SKIPSC[$sc:$gw]="an unrouted path answered $code, not 404"; return 1; } ;;
    esac
    return 0
}

measure_round() { # measure_round SCENARIO GATEWAY ROUND: one closed-loop run, figures appended
    local sc=$1 gw=$2 r=$3 out="$WORK/run-$1-$2-$3.txt" lg="" po0 po1 up0 up1 gp0 gp1 pb0 pt0 pb1 pt1 reqs rps own
    [ "$sc" = h2 ] && lg="$WORK/run-$1-$2-$3.log"
    [ "$sc" = h3 ] && out="$WORK/run-$1-$2-$3.json"
    po0=$(passive_opens) up0=$(cpu_ticks "$UP_PID") gp0=$(cpu_ticks "${GPID[$gw]}")
    read -r pb0 pt0 < <(cpu_stat "$PROXY_CPU")
    run_client "$sc" "$gw" "$DURATION" "$out" "$lg"
    read -r pb1 pt1 < <(cpu_stat "$PROXY_CPU")
    gp1=$(cpu_ticks "${GPID[$gw]}") up1=$(cpu_ticks "$UP_PID") po1=$(passive_opens)
    if [ "$sc" = h2 ]; then
        reqs=$(h2load_ok "$out") rps=$(h2load_rps "$out")
    elif [ "$sc" = h3 ]; then
        reqs=$(json_num "$out" requests 2>/dev/null) rps=$(json_num "$out" rps 2>/dev/null)
    else
        reqs=$(wrk_requests "$out") rps=$(wrk_rps "$out")
    fi
    if [ -z "$reqs" ] || [ "$reqs" -le 0 ]; then
        note "$sc round $r $gw: the client reported no requests: $(tail -c 200 "$out" | tr '\n' ' ')"
        return 0
    fi
    echo "$rps" >>"$WORK/$sc.rps-$gw"
    if [ "$sc" = h2 ]; then
        log_pct_ms "$lg" 50 >>"$WORK/$sc.p50-$gw"
        log_pct_ms "$lg" 99 >>"$WORK/$sc.p99-$gw"
        h2load_errors "$out" >>"$WORK/$sc.err-$gw"
        rm -f "$lg"
    elif [ "$sc" = h3 ]; then
        awk -v v="$(json_num "$out" p50 latency_us)" 'BEGIN {printf "%.3f\n", v / 1000}' >>"$WORK/$sc.p50-$gw"
        awk -v v="$(json_num "$out" p99 latency_us)" 'BEGIN {printf "%.3f\n", v / 1000}' >>"$WORK/$sc.p99-$gw"
        json_num "$out" errors_total >>"$WORK/$sc.err-$gw"
    else
        wrk_ms "$out" 50 >>"$WORK/$sc.p50-$gw"
        wrk_ms "$out" 99 >>"$WORK/$sc.p99-$gw"
        wrk_errors "$out" >>"$WORK/$sc.err-$gw"
    fi
    per_req_us $((up1 - up0)) "$reqs" >>"$WORK/$sc.upcpu-$gw"
    [ "$gw" != direct ] && per_req_us $((gp1 - gp0)) "$reqs" >>"$WORK/$sc.cpu-$gw"
    local own_conns=$CONNS # the client's own TCP connections are not reconnects (HTTP/3 opens none)
    [ "$sc" = h3 ] && own_conns=0
    echo $((po1 - po0 - own_conns)) >>"$WORK/$sc.reconn-$gw"
    own=$((gp1 - gp0))
    [ "$gw" = direct ] && own=0
    awk -v b=$((pb1 - pb0)) -v o="$own" -v t=$((pt1 - pt0)) 'BEGIN {f = t ? 100 * (b - o) / t : 0; printf "%.0f\n", f < 0 ? 0 : f}' >>"$WORK/$sc.foreign-$gw"
    log "$sc round $r/$ROUNDS $gw: $rps req/s, $reqs requests"
}

run_scenario() { # run_scenario SCENARIO [EXTRAS_FUNCTION]: start its peers, warm up, interleaved rounds, stop
    local sc=$1 gw i r n active=()
    log "scenario $sc: ${SCENARIO_LABEL[$sc]}"
    for gw in $GATEWAYS; do
        if ! can_run "$sc" "$gw"; then
            [ "$gw" = direct ] || SKIPSC[$sc:$gw]="${CAN[$sc:${gw/baseline/portcullis}]:-cannot}"
            continue
        fi
        [ -n "${SKIP[$gw]:-}" ] && { SKIPSC[$sc:$gw]=${SKIP[$gw]}; continue; }
        if start_gateway "$gw" "$sc" && check_gateway "$sc" "$gw"; then
            active+=("$gw")
        else
            stop_gateway "$gw"
            log "$sc: ${LABEL[$gw]} skipped: ${SKIPSC[$sc:$gw]}"
        fi
    done
    SC_ACTIVE[$sc]="${active[*]}"
    n=${#active[@]}
    if [ "$n" -gt 0 ]; then
        for gw in "${active[@]}"; do
            log "$sc: warm-up $gw ($WARMUP)"
            run_client "$sc" "$gw" "$WARMUP" "$WORK/warmup-$sc-$gw.txt"
        done
        for ((r = 1; r <= ROUNDS; r++)); do
            for ((i = 0; i < n; i++)); do # rotate the order so no gateway always goes first
                measure_round "$sc" "${active[$(((i + r - 1) % n))]}" "$r"
            done
        done
        [ -n "${2:-}" ] && "$2" "${active[@]}"
    fi
    for gw in "${active[@]}"; do stop_gateway "$gw"; done
}
