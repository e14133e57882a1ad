#!/usr/bin/env bash
# tsv-vm: pair
# tests/e2e/bench-alua.sh MODE: what the ALUA access states cost or buy (issue 19). The rig of
# lib-two-hosts.sh (one RBD volume, host 1 and host 2, node1 and node2 each on a dm-multipath
# device with one path through each host), with `prio alua` and `group_by_prio` on the nodes,
# and fio on node1's multipath device. MODE:
#
#   symmetric  the daemon's default: both hosts' target port groups Active/Optimized, so
#              group_by_prio puts both paths in one path group and I/O goes round-robin
#              through both hosts (active/active);
#   optimized  both hosts exported with --optimized-host 1: host 2's group Active/Non-optimized,
#              so multipath makes two path groups and sends I/O only to host 1.
#
# Each run checks the ALUA states node1's kernel sees (scsi_dh_alua's access_state per path) and
# the path groups multipathd made, then runs fio 4 KiB randread and randwrite at iodepth 32 and
# 1 (BENCH_RUNTIME s after BENCH_RAMP s), and reads how many commands each host's daemon finished
# for node1 during each job (tsvctl status --json, the path counters). One JSON line per job
# goes to out/e2e/bench-alua.jsonl. A benchmark, not a test: not an NN- file, so run-all.sh
# never runs it. One boot per mode (the first path a host adopts fixes the states):
#
#   flock /tmp/vm.lock scripts/vm/run tests/e2e/bench-alua.sh symmetric
#   flock /tmp/vm.lock scripts/vm/run tests/e2e/bench-alua.sh optimized
MODE=${2:-}
case $MODE in
    symmetric) EXPORT_OPTIONS= ;;
    optimized) EXPORT_OPTIONS="--optimized-host 1" ;;
    *) echo "usage: bench-alua.sh ROLE symmetric|optimized (scripts/vm/run passes ROLE)" >&2; exit 2 ;;
esac
MULTIPATH_CONF=/tmp/multipath-alua.conf
. "$(dirname "$0")/lib-two-hosts.sh"
RUNTIME=${BENCH_RUNTIME:-20} RAMP=${BENCH_RAMP:-3}
OUT=$REPO/out/e2e

# The rig's multipath.conf with the one change it names for a target with ALUA: path priorities
# from the target port groups' states (Active/Optimized 50, Active/Non-optimized 10).
sed -e 's/^\( *\)prio const$/\1prio alua\n\1hardware_handler "1 alua"/' "$REPO/tests/e2e/multipath.conf" >"$MULTIPATH_CONF"
grep -q 'prio alua' "$MULTIPATH_CONF" || fail "tests/e2e/multipath.conf has no 'prio const' line to change"
# Attached at the paths' scan, before multipathd reads their priorities.
modprobe scsi_dh_alua

two_hosts_story

say "mode $MODE: ALUA states and multipath path groups on node1"
multipath -ll "$DM" | sed 's/^/  /'
s1=$(cat "/sys/block/${P1#/dev/}/device/access_state") s2=$(cat "/sys/block/${P2#/dev/}/device/access_state")
echo "  $P1 (host 1): $s1; $P2 (host 2): $s2"
want2=$([ "$MODE" = symmetric ] && echo active/optimized || echo active/non-optimized)
[ "$s1" = active/optimized ] && [ "$s2" = "$want2" ] || fail "ALUA states $s1 / $s2, expected active/optimized / $want2"
groups=$(multipathd show maps topology 2>/dev/null | grep -c 'policy=' || true)
want_groups=$([ "$MODE" = symmetric ] && echo 1 || echo 2)
[ "$groups" = "$want_groups" ] || fail "$groups path group(s) in node1's map, expected $want_groups"
ok "host 1 $s1, host 2 $s2; $groups path group(s)"

# job NAME RW DEPTH: one fio run on node1's map; one JSON line with IOPS, latency and the
# commands each host's daemon finished for node1 during the run (ramp included).
job() {
    local name=$1 rw=$2 qd=$3 j=/tmp/fio-$1.json h1a h2a h1b h2b
    h1a=$(commands_of "$NODE1"); h2a=$(node2 "commands_of $NODE1")
    fio --name="$name" --filename="$DM" --ioengine=libaio --direct=1 --rw="$rw" --bs=4k \
        --iodepth="$qd" --time_based --runtime="$RUNTIME" --ramp_time="$RAMP" --norandommap \
        --randrepeat=0 --eta=never --output-format=json --output="$j" || { cat "$j"; fail "fio $name"; }
    h1b=$(commands_of "$NODE1"); h2b=$(node2 "commands_of $NODE1")
    python3 - "$j" "$MODE" "$name" "$qd" "$((h1b - h1a))" "$((h2b - h2a))" "$OUT/bench-alua.jsonl" <<'PY'
import json, sys, datetime
j, mode, name, qd, h1, h2, out = sys.argv[1:]
job = json.load(open(j))["jobs"][0]
d = job["read"] if job["read"]["io_bytes"] > job["write"]["io_bytes"] else job["write"]
pct = d["clat_ns"].get("percentile", {})
h1, h2 = int(h1), int(h2)
rec = {"date": str(datetime.date.today()), "mode": mode, "job": name, "iodepth": int(qd), "iops": round(d["iops"]),
       "clat_mean_us": round(d["clat_ns"]["mean"] / 1000), "p50_us": round(pct.get("50.000000", 0) / 1000),
       "p99_us": round(pct.get("99.000000", 0) / 1000), "host1_cmds": h1, "host2_cmds": h2,
       "host1_share": round(h1 / (h1 + h2), 3) if h1 + h2 else None}
open(out, "a").write(json.dumps(rec) + "\n")
print(f"  {mode:<9} {name:<14} {rec['iops']:>6} IOPS  mean {rec['clat_mean_us']:>6} us  p50 {rec['p50_us']:>6} us  "
      f"p99 {rec['p99_us']:>6} us  host 1 {h1} cmds, host 2 {h2} ({100 * (rec['host1_share'] or 0):.0f}% host 1)")
PY
}

say "fio on $DM ($RUNTIME s after a $RAMP s ramp per job)"
mkdir -p "$OUT"
job randread-qd32 randread 32
job randwrite-qd32 randwrite 32
job randread-qd1 randread 1
job randwrite-qd1 randwrite 1

two_hosts_end
echo "bench-alua $MODE: figures in out/e2e/bench-alua.jsonl"
