#!/usr/bin/env bash
# scripts/bench/rbd-vs-librbd.sh — this daemon's data path on Ceph RBD against bare librbd.
#
# On the one-node Ceph of scripts/ceph/start.sh, one image, written in full first. Each round
# runs every workload (4 KiB random read or write at a queue depth) twice, in turn:
#   rbd bench   rbd bench --rbd-cache=false --io-size 4K --io-pattern rand --io-type T --io-threads QD
#   daemon      the Benchmarks program's rbd-ring mode: READ(10)/WRITE(10) of 4 KiB at random
#               aligned offsets, kept QD deep by an in-process "kernel" on a simulated TCMU ring,
#               served by the daemon's RingEventLoop and command set on a Volume over RbdStore
# with the same number of operations; which of the two goes first alternates from round to round.
# Prints a table per round (IOPS of each, daemon / rbd bench, CPU µs per operation of each) and
# the medians over the rounds. CPU is the whole client process's (user + system, every thread):
# for rbd bench from /usr/bin/time, so it includes its start (about 60 ms, 1.5 µs per operation
# at 40000); for the daemon the measured window only (rbd-ring's cpu_us_per_cmd), which includes
# the simulated kernel's own work (queueing the next command, the uio event).
# The daemon's figure is valid only if every command completed GOOD (the run fails otherwise).
#
# Settings (environment): ROUNDS (5), WORKLOADS ("read:1 read:32 write:1 write:32"), OPS_QD1
# (6000), OPS (operations at other depths, 40000), IMAGE_SIZE (256M), WORKERS (the loop's worker
# count; empty: the daemon's default), KEEP_CEPH=1 leaves the cluster running afterwards.
# The cluster is the bench's own (CEPH_DIR /var/tmp/tsv-ceph-bench, monitor on 40430/40889, OSD
# ports 40900-40999), so that test runs creating and removing images on the tests' cluster do
# not disturb a measurement, and stopping it never stops the tests' cluster. Output also goes to
# out/bench/rbd-vs-librbd.txt.
set -euo pipefail

here=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
root=$(cd "$here/../.." && pwd)
rounds=${ROUNDS:-5}
workloads=${WORKLOADS:-"read:1 read:32 write:1 write:32"}
ops_qd1=${OPS_QD1:-6000}
ops=${OPS:-40000}
image_size=${IMAGE_SIZE:-256M}
workers=${WORKERS:-}
pool=rbd
image=tsv-bench-rbd

export CEPH_DIR=${CEPH_DIR:-/var/tmp/tsv-ceph-bench}
export MON_PORT=${MON_PORT:-40430} MON_PORT_V1=${MON_PORT_V1:-40889}
export OSD_PORT_MIN=${OSD_PORT_MIN:-40900} OSD_PORT_MAX=${OSD_PORT_MAX:-40999}
unset IMAGE POOL # start.sh would remake the cluster for an image it lacks; the image is made below

fail() { echo "rbd-vs-librbd: $*" >&2; exit 1; }
[[ $rounds =~ ^[1-9][0-9]*$ ]] || fail "ROUNDS=$rounds: a positive number"
for w in $workloads; do
  [[ $w =~ ^(read|write):([1-9][0-9]*)$ ]] || fail "WORKLOADS: '$w' is not read:QD or write:QD"
done

mkdir -p "$root/out/bench"
report=$root/out/bench/rbd-vs-librbd.txt
exec > >(tee "$report") 2>&1

conf=$("$root/scripts/ceph/start.sh" | tail -1)
[[ -f $conf ]] || fail "scripts/ceph/start.sh gave no ceph.conf"
if [[ ${KEEP_CEPH:-0} != 1 ]]; then
  trap '"$root/scripts/ceph/stop.sh" >/dev/null 2>&1 || true' EXIT
fi

echo "building the benchmark program (Release)"
dotnet build "$root/tests/TcmuSharedVolume.Benchmarks/TcmuSharedVolume.Benchmarks.csproj" -c Release -v quiet -nologo >/dev/null ||
  fail "dotnet build of tests/TcmuSharedVolume.Benchmarks failed"
program=$(ls "$root"/tests/TcmuSharedVolume.Benchmarks/bin/Release/net*/TcmuSharedVolume.Benchmarks.dll | head -1)

rbd_() { timeout 600 rbd -c "$conf" "$@"; }
echo "image $pool/$image ($image_size), written in full"
rbd_ rm --no-progress "$pool/$image" >/dev/null 2>&1 || true
rados -c "$conf" -p "$pool" rm "tsv.pr.$image" >/dev/null 2>&1 || true
rbd_ create --size "$image_size" "$pool/$image"
rbd_ bench --rbd-cache=false --io-type write --io-size 4M --io-threads 4 --io-pattern seq \
  --io-total "$image_size" "$pool/$image" >/dev/null

ops_for() { if (($1 == 1)); then echo "$ops_qd1"; else echo "$ops"; fi; }

librbd_iops() { # type qd ops: prints "iops cpu_us_per_op"
  local out
  out=$(/usr/bin/time -f 'cpu %U %S' timeout 600 rbd -c "$conf" bench --rbd-cache=false --io-size 4K --io-pattern rand --io-type "$1" \
    --io-threads "$2" --io-total $(($3 * 4096)) "$pool/$image" 2>&1) || fail "rbd bench failed: $out"
  local iops cpu
  iops=$(sed -n 's/.*ops\/sec: *\([0-9.]*\).*/\1/p' <<<"$out" | tail -1)
  cpu=$(awk -v n="$3" '$1 == "cpu" { printf "%.1f", ($2 + $3) * 1e6 / n }' <<<"$out")
  echo "$iops $cpu"
}

daemon_run() { # type qd ops: prints "iops alloc_bytes_per_cmd cpu_us_per_cmd"
  local out
  out=$(dotnet "$program" rbd-ring --conf "$conf" --pool "$pool" --image "$image" --type "$1" --qd "$2" \
    --ops "$3" ${workers:+--workers "$workers"} 2>&1) || fail "rbd-ring failed: $out"
  local line
  line=$(grep '^rbd-ring ' <<<"$out" | tail -1)
  [[ -n $line ]] || fail "rbd-ring printed no result: $out"
  echo "$(sed -n 's/.* iops=\([0-9.]*\).*/\1/p' <<<"$line") $(sed -n 's/.* alloc_bytes_per_cmd=\([0-9.]*\).*/\1/p' <<<"$line")" \
    "$(sed -n 's/.* cpu_us_per_cmd=\([0-9.]*\).*/\1/p' <<<"$line")"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A librbd daemon ratios alloc cpu_a cpu_b
echo "$(date -u +%F' '%T) UTC, $(nproc) CPUs, $(ceph -c "$conf" version 2>/dev/null | cut -d' ' -f1-3)"
echo "rounds $rounds; ops per run: $ops_qd1 at QD 1, $ops otherwise; image $image_size; loop workers: ${workers:-default}"
for ((round = 1; round <= rounds; round++)); do
  echo
  echo "round $round (load average $(cut -d' ' -f1-3 /proc/loadavg)); first: $( ((round % 2)) && echo "rbd bench" || echo daemon)"
  printf '%-10s %14s %14s %8s %14s %12s %12s\n' workload "rbd bench IOPS" "daemon IOPS" ratio "alloc B/cmd" "rbd CPU µs" "daemon CPU µs"
  for w in $workloads; do
    type=${w%%:*} qd=${w##*:}
    n=$(ops_for "$qd")
    if ((round % 2)); then
      read -r a ca < <(librbd_iops "$type" "$qd" "$n")
      read -r b al cb < <(daemon_run "$type" "$qd" "$n")
    else
      read -r b al cb < <(daemon_run "$type" "$qd" "$n")
      read -r a ca < <(librbd_iops "$type" "$qd" "$n")
    fi
    r=$(ratio "$b" "$a")
    librbd[$w]+=" $a" daemon[$w]+=" $b" ratios[$w]+=" $r" alloc[$w]+=" $al" cpu_a[$w]+=" $ca" cpu_b[$w]+=" $cb"
    printf '%-10s %14.0f %14.0f %8s %14s %12s %12s\n' "$type qd$qd" "$a" "$b" "$r" "$al" "$ca" "$cb"
  done
done

echo
echo "medians over $rounds rounds (load average at the end $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-10s %14s %14s %8s %14s %12s %12s %s\n' workload "rbd bench IOPS" "daemon IOPS" ratio "alloc B/cmd" "rbd CPU µs" "daemon CPU µs" "ratio per round"
for w in $workloads; do
  type=${w%%:*} qd=${w##*:}
  printf '%-10s %14.0f %14.0f %8s %14s %12s %12s %s\n' "$type qd$qd" "$(median <<<"${librbd[$w]}")" "$(median <<<"${daemon[$w]}")" \
    "$(median <<<"${ratios[$w]}")" "$(median <<<"${alloc[$w]}")" "$(median <<<"${cpu_a[$w]}")" "$(median <<<"${cpu_b[$w]}")" "${ratios[$w]# }"
done
