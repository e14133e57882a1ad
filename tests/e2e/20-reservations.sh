#!/usr/bin/env bash
# Issue 4 on a real kernel: the volume's own reservation table across two tcm_loop paths,
# including PREEMPT AND ABORT through tcm_loop (which deadlocks LIO's in-kernel PR on 6.1)
# and the state after a daemon restart.
. "$(dirname "$0")/lib.sh"
trap 'stop_daemon' EXIT

load_modules
start_daemon
rm -f /var/tmp/pr.img
A=$(make_backstore pr-a "/var/tmp/pr.img;size=256M" $((256 << 20)))
B=$(make_backstore pr-b "/var/tmp/pr.img;size=256M" $((256 << 20)))
N1=$(loop_export "$A" naa.5001405000001001)
N2=$(loop_export "$B" naa.5001405000002002)
echo "node1=$N1 node2=$N2"
[ "$(cat "$A/attrib/pgr_support")" = 0 ] || fail "daemon did not take PR from the kernel (pgr_support)"
ok "pgr_support=0 on an adopted device"

say "register both nodes, node1 reserves WRITE EXCLUSIVE - REGISTRANTS ONLY"
tur "$N1"; tur "$N2"
sg_persist -n --out --register --param-sark=0x1 "$N1" || fail "register node1"
sg_persist -n --out --register --param-sark=0x2 "$N2" || fail "register node2"
sg_persist -n --in --read-keys "$N2" | tee /tmp/keys
grep -q 0x1 /tmp/keys && grep -q 0x2 /tmp/keys || fail "keys not visible through the other path"
sg_persist -n --out --reserve --param-rk=0x1 --prout-type=5 "$N1" || fail "reserve"
sg_persist -n --in --read-reservation "$N2" | tee /tmp/res
grep -qi 'Key=0x1' /tmp/res || fail "reservation not visible from node2"
sg_persist -n --in --read-full-status "$N1" | tee /tmp/fs
grep -q 'naa.5001405000001001\|0x5001405000001001' /tmp/fs || fail "full status does not name node1's initiator"
ok "registrations and reservation visible on both paths"

say "registrants write; an unregistered node gets RESERVATION CONFLICT"
expect_rc 0 "node1 (holder) writes" scsi_write "$N1" 10 A
expect_rc 0 "node2 (registrant) writes" scsi_write "$N2" 11 B
sg_persist -n --out --register --param-rk=0x2 --param-sark=0 "$N2" || fail "unregister node2"
tur "$N2"
expect_rc 24 "node2 (unregistered) write conflicts" scsi_write "$N2" 12 C
expect_rc 0 "node2 (unregistered) may still read under WERO" scsi_read "$N2" 10

say "node2 registers again and PREEMPT AND ABORTs node1 (through tcm_loop)"
sg_persist -n --out --register --param-sark=0x2 "$N2" || fail "re-register node2"
timeout 60 sg_persist -n --out --preempt-abort --param-rk=0x2 --param-sark=0x1 --prout-type=5 "$N2" \
    || fail "PREEMPT AND ABORT failed or hung"
tur "$N1"; tur "$N1"
expect_rc 24 "fenced node1 write conflicts" scsi_write "$N1" 13 D
expect_rc 0 "node2 (new holder) writes" scsi_write "$N2" 14 E
sg_persist -n --in --read-reservation "$N1" | grep -qi 'Key=0x2' || fail "node2 is not the holder"

say "state survives a daemon restart"
stop_daemon
start_daemon
tur "$N1"; tur "$N2"; tur "$N1"; tur "$N2"
sg_persist -n --in --read-keys "$N1" | tee /tmp/keys2
grep -q 0x2 /tmp/keys2 || fail "registration lost across restart"
grep -q '0x1$' /tmp/keys2 && fail "preempted key came back after restart"
sg_persist -n --in --read-reservation "$N1" | grep -qi 'Key=0x2' || fail "reservation lost across restart"
expect_rc 24 "node1 still fenced after restart" scsi_write "$N1" 15 F
ok "reservation state persisted"
echo "reservations: all checks passed"
