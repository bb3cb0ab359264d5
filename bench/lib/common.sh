# common.sh: helpers shared by bench/compare.sh and its parts (bench/lib/*.sh): logging, package
# installs, ports, process CPU/RSS accounting, medians and wrk/h2load/load-report parsing.
# It owns no state of the run beyond NOTES and must not start or stop any process itself.
# Sourced, never run on its own.
# shellcheck shell=bash disable=SC2154

log() { echo "[compare] $*" >&2; }
die() { log "error: $*"; exit 1; }
NOTES=()
note() { NOTES+=("$*"); log "$*"; }

ensure_pkgs() { # ensure_pkgs BINARY:PACKAGE...  (installs the missing ones from Debian, as root)
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
wait_port_free() { # a just-killed io_uring process keeps its listener until the ring's teardown ends
    local i
    for ((i = 0; i < 50; i++)); do port_open "$1" || return 0; sleep 0.1; done
    return 1
}
stop_pid() { # stop_pid PID: TERM, wait up to 3 s, then KILL
    local i
    kill -TERM "$1" 2>/dev/null || return 0
    for ((i = 0; i < 30; i++)); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
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
per_req_us() { # per_req_us TICKS REQUESTS -> CPU-µs per request
    awk -v t="$1" -v h="$CLK_TCK" -v n="$2" 'BEGIN {printf "%.2f\n", n ? t * 1e6 / h / n : 0}'
}

median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
med() { if [ -s "$WORK/$1-$2" ]; then median <"$WORK/$1-$2"; else echo "—"; fi; }
fmt() { if [ "$1" = "—" ] || [ -z "$1" ]; then echo "—"; else awk -v v="$1" -v f="$2" 'BEGIN {printf f, v}'; fi; }
sub_or_dash() { # sub_or_dash A B -> A - B with 1 decimal, or — when either is missing
    if [ "$1" = "—" ] || [ "$2" = "—" ] || [ -z "$1" ] || [ -z "$2" ]; then echo "—"; else awk -v a="$1" -v b="$2" 'BEGIN {printf "%+.1f", a - b}'; fi
}
ratio_or_dash() { # ratio_or_dash A B -> A / B with 2 decimals, or —
    if [ "$1" = "—" ] || [ "$2" = "—" ] || [ -z "$1" ] || [ -z "$2" ]; then echo "—"; else awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0) print "—"; else printf "%.2f", a / b}'; fi
}

wrk_ms() { # wrk_ms FILE PERCENT -> latency in ms
    awk -v p="$2%" '$1 == p { v = $2; m = 1;
        if (v ~ /us$/) m = 0.001; else if (v ~ /ms$/) m = 1; else if (v ~ /m$/) m = 60000; else if (v ~ /s$/) m = 1000;
        gsub(/[a-z]+$/, "", v); printf "%.3f\n", v * m }' "$1"
}
run_wrk() { # run_wrk PORT DURATION OUTFILE: the plain closed loop
    taskset -c "$LOAD_CPU" wrk -t"$THREADS" -c"$CONNS" -d"$2" --latency "http://127.0.0.1:$1/" >"$3" 2>&1 || true
}
wrk_requests() { awk '/requests in/ {print $1}' "$1"; }
wrk_rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
wrk_errors() { # non-2xx/3xx responses + socket errors
    awk '/Non-2xx/ {e += $NF} /Socket errors/ {gsub(/,/, ""); e += $4 + $6 + $8 + $10} END {print e + 0}' "$1"
}
h2load_ok() { awk '/^requests:/ {print $8}' "$1"; } # succeeded requests
h2load_rps() { awk '/^finished in/ {gsub(/,/, ""); printf "%.0f\n", $4}' "$1"; }
h2load_errors() { # failed + errored + timeout requests, plus non-2xx statuses
    awk '/^requests:/ {e += $10 + $12 + $14} /^status codes:/ {gsub(/,/, ""); e += $7 + $9} END {print e + 0}' "$1"
}
log_pct_ms() { # log_pct_ms H2LOAD_LOG PERCENT -> percentile of the 3rd column (µs) in ms
    cut -f3 "$1" | sort -n | awk -v p="$2" '{v[NR] = $1} END {if (NR) {i = int(NR * p / 100 + 0.5); if (i < 1) i = 1; printf "%.3f\n", v[i] / 1000}}'
}
json_num() { # json_num FILE KEY [SECTION]: a number from portcullis-bench's pretty JSON, empty if absent
    awk -v k="\"$2\":" -v sec="${3:+\"$3\": {}" '
        sec != "" && !in_sec { if (index($0, sec)) in_sec = 1; next }
        index($0, k) { v = $0; sub(/.*": */, "", v); sub(/,$/, "", v); print v; exit }' "$1"
}
