#!/usr/bin/env bash
# apply.sh: apply tuning/sysctl.conf to the running kernel and print what changed.
# Idempotent: settings already at their value are left alone and reported as "ok".
# Usage: tuning/apply.sh [--dry-run] [--persist] [--file FILE]
#   --dry-run  show what would change, change nothing
#   --persist  also install the file as /etc/sysctl.d/99-portcullis.conf (survives reboots)
#   --file     apply another file in sysctl.conf syntax
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FILE=$HERE/sysctl.conf
DRY=0
PERSIST=0
DEST=/etc/sysctl.d/99-portcullis.conf
while [ $# -gt 0 ]; do
    case $1 in
        --dry-run) DRY=1 ;;
        --persist) PERSIST=1 ;;
        --file) shift; FILE=${1:?--file needs a path} ;;
        -h | --help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
[ -r "$FILE" ] || { echo "cannot read $FILE" >&2; exit 1; }
if [ $DRY = 0 ] && [ "$(id -u)" != 0 ]; then
    echo "must run as root (or use --dry-run)" >&2
    exit 1
fi

norm() { tr -s ' \t' ' ' <<<"$1" | sed 's/^ //; s/ $//'; }

changed=0 unchanged=0 skipped=0 failed=0
while IFS= read -r line || [ -n "$line" ]; do
    line=${line%%#*}
    [[ $line =~ ^[[:space:]]*$ ]] && continue
    [[ $line == *=* ]] || { echo "?? ignoring malformed line: $line" >&2; continue; }
    key=$(norm "${line%%=*}")
    want=$(norm "${line#*=}")
    path=/proc/sys/${key//.//}
    if [ ! -e "$path" ]; then
        printf '%-40s skipped (not available on this kernel or in this namespace)\n' "$key"
        skipped=$((skipped + 1))
        continue
    fi
    have=$(norm "$(cat "$path" 2>/dev/null || echo '?')")
    if [ "$have" = "$want" ]; then
        printf '%-40s ok (%s)\n' "$key" "$have"
        unchanged=$((unchanged + 1))
    elif [ $DRY = 1 ]; then
        printf '%-40s would change: %s -> %s\n' "$key" "$have" "$want"
        changed=$((changed + 1))
    elif sysctl -q -w "$key=$want" 2>/dev/null; then
        printf '%-40s changed: %s -> %s\n' "$key" "$have" "$want"
        changed=$((changed + 1))
    else
        printf '%-40s FAILED to set %s (read-only here?)\n' "$key" "$want"
        failed=$((failed + 1))
    fi
done <"$FILE"

verb=$([ $DRY = 1 ] && echo "would change" || echo "changed")
echo "summary: $changed $verb, $unchanged already set, $skipped skipped, $failed failed"
if [ $PERSIST = 1 ]; then
    if [ $DRY = 1 ]; then
        echo "would install $FILE as $DEST"
    elif cmp -s "$FILE" "$DEST"; then
        echo "$DEST already up to date"
    else
        install -m 0644 "$FILE" "$DEST"
        echo "installed $DEST (applied at boot by systemd-sysctl)"
    fi
fi
[ $failed = 0 ]
