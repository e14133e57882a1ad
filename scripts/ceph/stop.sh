#!/usr/bin/env bash
# scripts/ceph/stop.sh — stops the one-node Ceph that scripts/ceph/start.sh started.
#
# Only the daemons named by the pid files under $CEPH_DIR/run, and only if the process with that
# PID really is that Ceph program: never pkill, never a daemon of another cluster. TERM, up to
# 10 s, then KILL. WIPE=1 also deletes $CEPH_DIR (the memstore data is gone anyway).
set -uo pipefail

dir=${CEPH_DIR:-/var/tmp/tsv-ceph}

for name in mgr.x osd.0 mon.a; do
  pidfile=$dir/run/$name.pid
  [[ -s $pidfile ]] || continue
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || continue
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "ceph-${name%%.*}" ]] || continue
  kill "$pid" 2>/dev/null
  for _ in $(seq 50); do
    [[ -d /proc/$pid ]] || break
    sleep 0.2
  done
  if [[ -d /proc/$pid ]]; then
    echo "ceph: $name (pid $pid) did not stop in 10 s: killing it" >&2
    kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$pidfile"
done
rm -f "$dir/ready"

if [[ ${WIPE:-0} == 1 && -d $dir ]]; then
  case $dir in /|/var|/var/tmp|/tmp|"$HOME") echo "ceph: refusing to wipe $dir" >&2; exit 1 ;; esac
  rm -rf "$dir"
fi
exit 0
