#!/bin/bash
# Start-up and footprint of the daemon builds, side by side:
#   size          of each binary on disk
#   ready         time from exec to the log line "ready:" (median of RUNS starts)
#   rss           VmRSS 3 s after exec (median), idle: no devices, no D-Bus needed
#   tsvctl        wall time of `tsvctl --help` (median)
# Usage: scripts/measure-startup.sh [DIR...]   (default: out/aot out/bin, whichever exist)
# The daemon runs with -c /nonexistent (built-in defaults). On a machine without TCMU it warns
# that configfs, netlink and the bus are missing and is ready anyway; that is the path measured.
# Run as root (the daemon checks /sys and its state directory).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
dirs=("$@")
((${#dirs[@]})) || for d in out/aot out/bin; do [[ -x $d/tcmu-shared-volume ]] && dirs+=("$d"); done
((${#dirs[@]})) || { echo "nothing to measure: run make publish-aot and/or make publish" >&2; exit 1; }

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

one_start() { # binary -> "ready_ms rss_kib"
    local bin=$1 t0 line ready_ms=NA rss=NA
    t0=$EPOCHREALTIME
    coproc DAEMON { exec "$bin" -c /nonexistent 2>&1; }
    local pid=$DAEMON_PID fd=${DAEMON[0]}
    while IFS= read -r -t 30 line <&"$fd"; do
        if [[ $line == *" ready:"* ]]; then
            ready_ms=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", (b - a) * 1000}')
            break
        fi
    done
    # Idle RSS 3 s after start; keep draining the log so the daemon never blocks on the pipe.
    local until
    until=$(awk -v a="$t0" 'BEGIN {printf "%.3f", a + 3}')
    while awk -v n="$EPOCHREALTIME" -v u="$until" 'BEGIN {exit !(n < u)}'; do
        IFS= read -r -t 0.05 line <&"$fd" || true
    done
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo NA)
    kill -TERM "$pid" 2>/dev/null || true
    cat <&"$fd" >/dev/null || true
    wait "$pid" 2>/dev/null || true
    echo "$ready_ms $rss"
}

printf '%-10s %-20s %12s %10s %10s %12s\n' build binary size_bytes ready_ms rss_kib tsvctl_ms
for d in "${dirs[@]}"; do
    bin=$d/tcmu-shared-volume
    results=$(for ((i = 0; i < RUNS; i++)); do one_start "$bin"; done)
    ready=$(awk '{print $1}' <<<"$results" | median)
    rss=$(awk '{print $2}' <<<"$results" | median)
    ctl=NA
    if [[ -x $d/tsvctl ]]; then
        ctl=$(for ((i = 0; i < RUNS; i++)); do
            t0=$EPOCHREALTIME; "$d/tsvctl" --help >/dev/null
            awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f\n", (b - a) * 1000}'
        done | median)
    fi
    printf '%-10s %-20s %12s %10s %10s %12s\n' "$(basename "$d")" tcmu-shared-volume "$(stat -c %s "$bin")" "$ready" "$rss" "$ctl"
    [[ -x $d/tsvctl ]] && printf '%-10s %-20s %12s\n' "$(basename "$d")" tsvctl "$(stat -c %s "$d/tsvctl")"
done
[[ -f out/aot/BUILD-INFO ]] && { echo; echo "out/aot/BUILD-INFO:"; cat out/aot/BUILD-INFO; }
