#!/usr/bin/env bash
# Issue 6 scenario 3: Pacemaker's fence_scsi (fence-agents, as installed) against one volume,
# over tcm_loop (two paths = two nodes) and over iSCSI (two initiator names on 127.0.0.1).
# No corosync: keys come with -k, devices with -d (--devices). Each node keeps its key and
# device list in /var/run/cluster.{key,dev}; the two "nodes" here share one machine, so each
# runs fence_scsi in its own mount namespace with its own /run (the files must not mix: "off"
# refuses to fence the key it finds there as its own). fence_scsi_check (the watchdog helper,
# the same script under another name) runs in the node's namespace too.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-iscsi.sh"

readonly TGT=iqn.2003-01.org.linux-iscsi.tsv:fence
readonly I1=iqn.2003-01.org.linux-iscsi.tsv:fnode1
readonly I2=iqn.2003-01.org.linux-iscsi.tsv:fnode2
CHECK=/usr/share/cluster/fence_scsi_check
trap 'set +e; iscsi_cleanup $TGT; iscsi_unexport $TGT; loop_cleanup; stop_daemon' EXIT

command -v fence_scsi >/dev/null || fail "fence_scsi is not installed (fence-agents)"
[ -x "$CHECK" ] || fail "$CHECK is not installed"

# as_node N CMD...: CMD with node N's private /run (fence_scsi's STORE_PATH is /var/run/cluster).
as_node() {
    local n=$1; shift
    mkdir -p "/tmp/node$n-run"
    unshare -m -- bash -c 'mount --bind "$0" /run && exec "$@"' "/tmp/node$n-run" "$@"
}
fs() { local n=$1; shift; as_node "$n" timeout 120 fence_scsi "$@"; }

# scenario NAME DEV1 DEV2: the whole fence_scsi cycle on one pair of paths.
scenario() {
    local name=$1 d1=$2 d2=$3 out rc
    rm -rf /tmp/node1-run /tmp/node2-run
    say "$name: unfence (on) node1 with key 1 via $d1, node2 with key 2 via $d2"
    fs 1 -o on -k 1 -d "$d1" || fail "$name: fence_scsi -o on (node1)"
    fs 2 -o on -k 2 -d "$d2" || fail "$name: fence_scsi -o on (node2)"
    out=$(sg_persist -n -i -k "$d1")
    grep -q '0x1$' <<<"$out" && grep -q '0x2$' <<<"$out" || fail "$name: both keys expected: $out"
    out=$(sg_persist -n -i -r "$d2")
    grep -qi 'Key=0x1' <<<"$out" && grep -qi 'Write Exclusive, registrants only' <<<"$out" ||
        fail "$name: node1 should hold WERO: $out"
    ok "$name: keys 1 and 2 registered, node1 holds WRITE EXCLUSIVE - REGISTRANTS ONLY"
    expect_rc 0 "$name: node1 writes" scsi_write "$d1" 40 A
    expect_rc 0 "$name: node2 (registered) writes" scsi_write "$d2" 41 B

    say "$name: status"
    out=$(fs 1 -o status -k 1 -d "$d1") || fail "$name: status of key 1: exit $?: $out"
    grep -qi 'Status: ON' <<<"$out" || fail "$name: key 1 should be ON: $out"
    out=$(fs 1 -o status -k 2 -d "$d1") || fail "$name: status of key 2: exit $?: $out"
    grep -qi 'Status: ON' <<<"$out" || fail "$name: key 2 should be ON: $out"
    rc=0; out=$(fs 1 -o status -k 3 -d "$d1") || rc=$?
    grep -qi 'Status: OFF' <<<"$out" || fail "$name: unknown key 3 should be OFF (exit $rc): $out"
    ok "$name: status reports keys 1 and 2 on, key 3 off"

    say "$name: fence_scsi_check on both nodes (watchdog: key present -> 0)"
    expect_rc 0 "$name: node1 check" as_node 1 "$CHECK"
    expect_rc 0 "$name: node2 check" as_node 2 "$CHECK"

    say "$name: node1 fences node2 (off: PREEMPT AND ABORT, must not hang)"
    fs 1 -o off -k 2 -d "$d1" || fail "$name: fence_scsi -o off of node2"
    tur "$d2"; tur "$d2"
    out=$(sg_persist -n -i -k "$d1")
    grep -q '0x2$' <<<"$out" && fail "$name: node2's key survived: $out"
    grep -q '0x1$' <<<"$out" || fail "$name: node1's key is gone: $out"
    out=$(sg_persist -n -i -r "$d2")
    grep -qi 'Key=0x1' <<<"$out" || fail "$name: reservation should be held by key 1: $out"
    expect_rc 24 "$name: fenced node2's write conflicts" scsi_write "$d2" 42 C
    expect_rc 0 "$name: fenced node2 still reads (WERO)" scsi_read "$d2" 40
    expect_rc 0 "$name: node1 writes" scsi_write "$d1" 43 D
    rc=0; out=$(fs 1 -o status -k 2 -d "$d1") || rc=$?
    grep -qi 'Status: OFF' <<<"$out" || fail "$name: node2 should be OFF (exit $rc): $out"

    say "$name: fence_scsi_check (key absent -> non-zero)"
    expect_rc 0 "$name: node1 check still passes" as_node 1 "$CHECK"
    rc=0; as_node 2 "$CHECK" || rc=$?
    [ "$rc" != 0 ] || fail "$name: node2's check passed although its key is gone"
    ok "$name: node2's check exits $rc (the watchdog would reboot it)"
    # fence_scsi refuses to fence the node it runs on.
    if fs 1 -o off -k 1 -d "$d1" >/dev/null 2>&1; then fail "$name: node1 fenced itself"; fi

    say "$name: node2 is unfenced again (on) and rejoins"
    fs 2 -o on -k 2 -d "$d2" || fail "$name: fence_scsi -o on (node2 again)"
    tur "$d2"
    expect_rc 0 "$name: node2 writes again" scsi_write "$d2" 44 E
    # Tidy up for the next scenario on another volume: nothing to do, volumes are separate.
}

load_modules
start_daemon
rm -f /var/tmp/fence.img /var/tmp/fencei.img

A=$(make_backstore fence-1 "/var/tmp/fence.img;size=64M" $((64 << 20)))
B=$(make_backstore fence-2 "/var/tmp/fence.img;size=64M" $((64 << 20)))
N1=$(loop_export "$A" naa.5001405000041001)
N2=$(loop_export "$B" naa.5001405000041002)
tur "$N1"; tur "$N2"
scenario tcm_loop "$N1" "$N2"

C=$(make_backstore fencei-1 "/var/tmp/fencei.img;size=64M" $((64 << 20)))
D=$(make_backstore fencei-2 "/var/tmp/fencei.img;size=64M" $((64 << 20)))
iscsi_export "$TGT" "$I1=$C" "$I2=$D"
S1=$(iscsi_login "$TGT" tsv-f1 "$I1")
S2=$(iscsi_login "$TGT" tsv-f2 "$I2")
tur "$S1"; tur "$S2"
scenario iSCSI "$S1" "$S2"
iscsi_logout "$TGT" tsv-f1; iscsi_logout "$TGT" tsv-f2
echo "fence-scsi: all checks passed"
