#!/usr/bin/env bash
# irq-affinity.sh: place a NIC's interrupts relative to the shard CPUs (tuning/README.md,
# "IRQ affinity vs shard pinning"). Prints every change; --dry-run changes nothing.
# Usage: tuning/irq-affinity.sh --iface eth0 (--away CPUS | --onto CPUS) [--dry-run]
#   --away CPUS  every IRQ of the NIC goes to CPUS (housekeeping cores outside the unit's
#                CPUAffinity=); shards keep their cores to themselves ("split" layout)
#   --onto CPUS  queue i's IRQ goes to the i-th CPU of CPUS, round-robin ("aligned" layout:
#                pass the shard cores in shard order)
# CPUS is a list like 0-1 or 2,3,4. Stop irqbalance first or it will undo this.
set -euo pipefail
IFACE="" MODE="" CPUS="" DRY=0
while [ $# -gt 0 ]; do
    case $1 in
        --iface) shift; IFACE=${1:?--iface needs a name} ;;
        --away) shift; MODE=away; CPUS=${1:?--away needs CPUs} ;;
        --onto) shift; MODE=onto; CPUS=${1:?--onto needs CPUs} ;;
        --dry-run) DRY=1 ;;
        -h | --help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$IFACE" ] && [ -n "$MODE" ] || { echo "need --iface and --away or --onto (try --help)" >&2; exit 2; }
[ -d "/sys/class/net/$IFACE" ] || { echo "no interface $IFACE" >&2; exit 1; }
[ $DRY = 1 ] || [ "$(id -u)" = 0 ] || { echo "must run as root (or use --dry-run)" >&2; exit 1; }

# Expand "0-2,5" into "0 1 2 5".
expand() {
    local part out=()
    IFS=, read -r -a parts <<<"$1"
    for part in "${parts[@]}"; do
        if [[ $part == *-* ]]; then out+=($(seq "${part%-*}" "${part#*-}")); else out+=("$part"); fi
    done
    echo "${out[@]}"
}
read -r -a cpu_list <<<"$(expand "$CPUS")"

# The NIC's IRQs: its MSI vectors when the driver exposes them, else /proc/interrupts lines
# naming the interface (e.g. eth0-TxRx-0, virtio0-input.0 for virtio through its device).
irqs=()
if [ -d "/sys/class/net/$IFACE/device/msi_irqs" ]; then
    irqs=($(ls "/sys/class/net/$IFACE/device/msi_irqs" | sort -n))
fi
if [ ${#irqs[@]} = 0 ]; then
    dev=$(basename "$(readlink -f "/sys/class/net/$IFACE/device" 2>/dev/null)" 2>/dev/null || true)
    irqs=($(awk -v i="$IFACE" -v d="$dev" '$NF ~ i || (d != "" && $NF ~ d) {sub(":", "", $1); print $1}' /proc/interrupts))
fi
[ ${#irqs[@]} -gt 0 ] || { echo "no IRQs found for $IFACE" >&2; exit 1; }
pgrep -x irqbalance >/dev/null && echo "warning: irqbalance is running and may undo these settings" >&2

i=0
for irq in "${irqs[@]}"; do
    f=/proc/irq/$irq/smp_affinity_list
    [ -w "$f" ] || [ $DRY = 1 ] || { echo "irq $irq: $f not writable, skipped"; continue; }
    if [ $MODE = away ]; then want=$CPUS; else want=${cpu_list[$((i % ${#cpu_list[@]}))]}; fi
    have=$(cat "$f" 2>/dev/null || echo '?')
    if [ "$have" = "$want" ]; then
        echo "irq $irq: ok ($have)"
    elif [ $DRY = 1 ]; then
        echo "irq $irq: would change $have -> $want"
    elif echo "$want" >"$f" 2>/dev/null; then
        echo "irq $irq: changed $have -> $want"
    else
        echo "irq $irq: FAILED to set $want (managed IRQ?)"
    fi
    i=$((i + 1))
done
