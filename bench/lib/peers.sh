# peers.sh: the gateways under test for bench/compare.sh. Renders each peer's template from
# bench/peers/ for one scenario, makes the shared test material (an ECDSA P-256 certificate, an
# HS256 JWT), starts a gateway pinned to PROXY_CPU and waits for it to accept, and stops it.
# It owns GPID (gateway -> PID) and SKIPSC (scenario:gateway -> why it has no row); it must not
# measure anything. Sourced, never run on its own.
# shellcheck shell=bash disable=SC2154

declare -A GPID SKIPSC
ROUTES=${ROUTES:-1000}
JWT_ISSUER="https://idp.bench/" JWT_AUDIENCE="api" JWT_SECRET="bench-secret-bench-secret-bench-secret!!"
JWT_CACHE=${JWT_CACHE:-0}

# render TEMPLATE SCENARIO OUT: keeps `#@if LIST` ... [`#@else` ...] `#@end` blocks (nestable) whose
# LIST (space or comma separated) names SCENARIO, repeats `#@each-route` ... `#@end` for routes
# 0000..ROUTES-1 (@N@), and replaces @KEY@ with the value of the shell variable R_KEY (not in
# comment lines).
render() {
    local keys
    keys=$(compgen -v R_ | sed 's/^R_//' | tr '\n' ' ')
    local k
    for k in $keys; do export "R_$k"; done
    RENDER_KEYS=$keys awk -v sc="$2" -v nroutes="$ROUTES" '
        function has(list,   n, i, a) { n = split(list, a, /[ ,]+/); for (i = 1; i <= n; i++) if (a[i] == sc) return 1; return 0 }
        function subst(line,   n, i, k, v) {
            n = split(ENVIRON["RENDER_KEYS"], k, " ")
            for (i = 1; i <= n; i++) { v = ENVIRON["R_" k[i]]; gsub(/&/, "\\\\&", v); gsub("@" k[i] "@", v, line) }
            return line
        }
        function on(   i) { for (i = 1; i <= depth; i++) if (!cond[i]) return 0; return 1 }
        /^[ \t]*#@if / { l = $0; sub(/^[ \t]*#@if /, "", l); cond[++depth] = has(l); next }
        /^[ \t]*#@else/ { cond[depth] = !cond[depth]; next }
        /^[ \t]*#@each-route/ { ineach = 1; ne = 0; next }
        /^[ \t]*#@end/ {
            if (ineach) {
                ineach = 0
                if (on())
                    for (r = 0; r < nroutes; r++) { s = sprintf("%04d", r); for (j = 1; j <= ne; j++) { x = eb[j]; gsub(/@N@/, s, x); print subst(x) } }
            } else depth--
            next
        }
        ineach { eb[++ne] = $0; next }
        !on() { next }
        /^[ \t]*#/ { print; next } # comments keep their @PLACEHOLDER@ names
        { print subst($0) }
    ' "$1" >"$3"
}

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
make_material() { # the certificate every TLS peer serves and the token every JWT peer checks
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=localhost" \
        -addext "subjectAltName=DNS:localhost" -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null ||
        die "openssl could not make the test certificate"
    cat "$WORK/cert.pem" "$WORK/key.pem" >"$WORK/cert-key.pem"
    local exp header payload sig
    exp=$(($(date +%s) + 86400))
    header=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
    payload=$(printf '{"iss":"%s","aud":"%s","sub":"user-42","exp":%s,"scope":"read write"}' "$JWT_ISSUER" "$JWT_AUDIENCE" "$exp" | b64url)
    sig=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -hmac "$JWT_SECRET" -binary | b64url)
    JWT_TOKEN="$header.$payload.$sig"
    R_CERT=$WORK/cert.pem R_KEY=$WORK/key.pem R_CERT_KEY=$WORK/cert-key.pem R_WORK=$WORK
    R_JWT_ISSUER=$JWT_ISSUER R_JWT_AUDIENCE=$JWT_AUDIENCE R_JWT_SECRET=$JWT_SECRET R_JWT_CACHE=$JWT_CACHE
    R_JWT_SECRET_B64URL=$(printf '%s' "$JWT_SECRET" | b64url)
    R_UP_PORT=$UP_PORT R_MAXCONN=$HAPROXY_MAXCONN R_ROUTES=$ROUTES R_REDIS_LINE="# no redis (REDIS=0)"
    [ -n "${REDIS_PORT:-}" ] && R_REDIS_LINE="redis = \"127.0.0.1:$REDIS_PORT\""
    return 0
}

gw_port() { # gw_port GATEWAY SCENARIO (the direct upstream has one port for every scenario)
    if [ "$1" = direct ]; then echo "$UP_PORT"; else echo $((${PORT[$1]} + ${SC_OFFSET[$2]})); fi
}

start_gateway() { # start_gateway GATEWAY SCENARIO: 0 and GPID[GW] set, or 1 and SKIPSC set
    local gw=$1 sc=$2
    R_PORT=$(gw_port "$gw" "$sc") R_ADMIN_PORT=$(($(gw_port "$gw" "$sc") + 50))
    [ "$gw" = direct ] && { GPID[direct]=$UP_PID; return 0; }
    wait_port_free "$R_PORT" || { SKIPSC[$sc:$gw]="port $R_PORT is in use"; return 1; }
    case $gw in
        portcullis) start_portcullis "$sc" portcullis "$PORTCULLIS_BIN" "$PORTCULLIS_CONFIG" ;;
        baseline) start_portcullis "$sc" baseline "$BASELINE_BIN" "$BASELINE_CONFIG" ;;
        nginx) start_nginx "$sc" ;;
        haproxy) start_haproxy "$sc" ;;
        envoy) start_envoy "$sc" ;;
        caddy) start_caddy "$sc" ;;
    esac
}
stop_gateway() { # stop_gateway GATEWAY (never the shared upstream)
    [ "$1" = direct ] && return 0
    [ -n "${GPID[$1]:-}" ] && stop_pid "${GPID[$1]}"
    unset "GPID[$1]"
}

start_portcullis() { # start_portcullis SCENARIO GATEWAY BINARY TEMPLATE (GATEWAY: portcullis or baseline)
    local sc=$1 gw=$2 bin=$3 template=$4 dir="$WORK/$2-$1"
    [ "$gw" = portcullis ] && [ -n "$portcullis_skip" ] && { SKIPSC[$sc:$gw]=$portcullis_skip; return 1; }
    mkdir -p "$dir"
    render "$template" "$sc" "$dir/portcullis.toml"
    taskset -c "$PROXY_CPU" "$bin" run --config "$dir/portcullis.toml" >"$dir/out" 2>"$dir/log" &
    local pid=$! i
    PIDS+=("$pid")
    for ((i = 0; i < 150; i++)); do # readiness: a line containing "listening", then the port
        grep -q listening "$dir/log" "$dir/out" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q listening "$dir/log" "$dir/out" 2>/dev/null || ! wait_port "$R_PORT" "$pid" 5; then
        local why="did not print 'listening' and accept on :$R_PORT within 15 s" st=0
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null || st=$?
            why="exited (status $st) before printing 'listening'"
        fi
        stop_pid "$pid"
        SKIPSC[$sc:$gw]="$bin $why; log tail: $(tail -c 300 "$dir/log" | sed 's/\x1b\[[0-9;]*m//g' | tr '\n' ' ')"
        return 1
    fi
    # The harness pins with taskset; shard pinning must stay inside the inherited mask.
    local t allowed
    for t in /proc/"$pid"/task/*; do
        allowed=$(awk '/^Cpus_allowed_list/ {print $2}' "$t/status" 2>/dev/null || true)
        [ -n "$allowed" ] && [ "$allowed" != "$PROXY_CPU" ] &&
            note "portcullis thread $(basename "$t") may run on CPUs $allowed, not only $PROXY_CPU"
    done
    GPID[$gw]=$pid
}

start_nginx() {
    local sc=$1 dir="$WORK/nginx"
    rm -rf "$dir" && mkdir -p "$dir"
    render "$NGINX_TEMPLATE" "$sc" "$dir/nginx.conf"
    if ! nginx -t -q -p "$dir" -c "$dir/nginx.conf" >"$dir/test.log" 2>&1; then
        SKIPSC[$sc:nginx]="config test failed: $(tr '\n' ' ' <"$dir/test.log" | cut -c1-300)"
        return 1
    fi
    taskset -c "$PROXY_CPU" nginx -p "$dir" -c "$dir/nginx.conf" >"$dir/out.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_port "$R_PORT" "$pid" 10 || { SKIPSC[$sc:nginx]="it did not start: $(tail -c 300 "$dir/error.log" 2>/dev/null | tr '\n' ' ')"; return 1; }
    GPID[nginx]=$pid
}

start_haproxy() {
    local sc=$1
    render "$HAPROXY_TEMPLATE" "$sc" "$WORK/haproxy.cfg"
    [ "$sc" = routes ] && render "$HAPROXY_ROUTES_TEMPLATE" "$sc" "$WORK/haproxy-routes.map"
    if ! haproxy -c -q -f "$WORK/haproxy.cfg" >"$WORK/haproxy-test.log" 2>&1; then
        SKIPSC[$sc:haproxy]="config check failed: $(tr '\n' ' ' <"$WORK/haproxy-test.log" | cut -c1-300)"
        return 1
    fi
    taskset -c "$PROXY_CPU" haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy-$sc.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_port "$R_PORT" "$pid" 10 || {
        SKIPSC[$sc:haproxy]="it did not start: $(tail -c 300 "$WORK/haproxy-$sc.log" | tr '\n' ' ')"
        return 1
    }
    GPID[haproxy]=$pid
}

start_caddy() { # GOMAXPROCS=1: one OS thread runs Go code, as one worker elsewhere
    local sc=$1 dir="$WORK/caddy-$1"
    mkdir -p "$dir"
    render "$CADDY_TEMPLATE" "$sc" "$dir/Caddyfile"
    if ! XDG_DATA_HOME=$dir XDG_CONFIG_HOME=$dir caddy validate --adapter caddyfile --config "$dir/Caddyfile" >"$dir/validate.log" 2>&1; then
        SKIPSC[$sc:caddy]="caddy validate failed: $(tail -c 300 "$dir/validate.log" | tr '\n' ' ')"
        return 1
    fi
    GOMAXPROCS=1 XDG_DATA_HOME=$dir XDG_CONFIG_HOME=$dir HOME=$dir taskset -c "$PROXY_CPU" \
        caddy run --adapter caddyfile --config "$dir/Caddyfile" >"$dir/out.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_port "$R_PORT" "$pid" 15 || { SKIPSC[$sc:caddy]="it did not start: $(tail -c 300 "$dir/out.log" | tr '\n' ' ')"; return 1; }
    GPID[caddy]=$pid
}

start_envoy() {
    local sc=$1
    [ -n "$ENVOY_BIN" ] || { SKIPSC[$sc:envoy]=${SKIP[envoy]}; return 1; }
    render "$ENVOY_TEMPLATE" "$sc" "$WORK/envoy-$sc.yaml"
    taskset -c "$PROXY_CPU" "$ENVOY_BIN" -c "$WORK/envoy-$sc.yaml" --concurrency 1 --disable-hot-restart -l warn \
        >"$WORK/envoy-$sc.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_port "$R_PORT" "$pid" 30 || {
        SKIPSC[$sc:envoy]="$ENVOY_BIN did not start: $(tail -c 300 "$WORK/envoy-$sc.log" | tr '\n' ' ')"
        return 1
    }
    GPID[envoy]=$pid
}
