#!/usr/bin/env bash
# Issue 6 scenario 5: SPC-2 arbitration the way Windows 2003 clusters did it (KB 309186):
# node1 RESERVE(6)s the disk; node2's RESERVE and writes get RESERVATION CONFLICT; node2
# breaks the reservation with a LUN reset and reserves. Then the other way an SPC-2
# reservation ends (docs/reservations.md §13): I_T nexus loss, as an iSCSI logout, which TCMU does
# not report - the daemon watches the ACL's session in configfs.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-iscsi.sh"

readonly TGT=iqn.2003-01.org.linux-iscsi.tsv:spc2
readonly I1=iqn.2003-01.org.linux-iscsi.tsv:node1
readonly I2=iqn.2003-01.org.linux-iscsi.tsv:node2
trap 'set +e; iscsi_cleanup $TGT; iscsi_unexport $TGT; loop_cleanup; stop_daemon' EXIT

reserve6() { scsi_cdb "$1" 16 00 00 00 00 00; }
release6() { scsi_cdb "$1" 17 00 00 00 00 00; }
# scsi_cdb DEV CDB...: a command without data; 0 good, 24 reservation conflict, else non-zero.
scsi_cdb() {
    local dev=$1 rc; shift
    sg_raw -v "$dev" "$@" >/tmp/raw.out 2>&1 && rc=0 || rc=$?
    raw_status /tmp/raw.out $rc
}
# Unit attentions (reset, reservations released) are reported once; flush them the way a
# cluster's disk driver retries.
ua_flush() { local i; for i in 1 2 3; do sg_turs "$1" >/dev/null 2>&1 && return 0; done; return 0; }

load_modules
start_daemon
rm -f /var/tmp/spc2.img /var/tmp/spc2i.img

say "tcm_loop: two nodes on one volume"
A=$(make_backstore spc2-1 "/var/tmp/spc2.img;size=64M" $((64 << 20)))
B=$(make_backstore spc2-2 "/var/tmp/spc2.img;size=64M" $((64 << 20)))
N1=$(loop_export "$A" naa.5001405000043001)
N2=$(loop_export "$B" naa.5001405000043002)
echo "node1=$N1 node2=$N2"
ua_flush "$N1"; ua_flush "$N2"

say "node1 reserves; node2 is shut out"
expect_rc 0 "node1 RESERVE(6)" reserve6 "$N1"
expect_rc 0 "node1 RESERVE(6) again (same initiator)" reserve6 "$N1"
expect_rc 0 "node1 writes" scsi_write "$N1" 20 A
expect_rc 24 "node2 RESERVE(6) conflicts" reserve6 "$N2"
expect_rc 24 "node2 WRITE(10) conflicts" scsi_write "$N2" 21 B
expect_rc 24 "node2 READ(10) conflicts" scsi_read "$N2" 20
expect_rc 0 "node2 RELEASE(6) is a no-op GOOD" release6 "$N2"
expect_rc 24 "node1 still holds the reservation" reserve6 "$N2"
expect_rc 0 "node2 INQUIRY still works" sg_inq "$N2"

say "node2 breaks the reservation with a LUN reset (KB 309186 challenge)"
timeout 60 sg_reset -d "$N2" || fail "sg_reset -d $N2 failed or hung"
ok "LUN reset through node2's path done"
ua_flush "$N2"; ua_flush "$N1"
expect_rc 0 "node2 RESERVE(6) after the reset" reserve6 "$N2"
expect_rc 0 "node2 writes" scsi_write "$N2" 22 C
expect_rc 24 "node1 RESERVE(6) now conflicts" reserve6 "$N1"
expect_rc 24 "node1 WRITE(10) now conflicts" scsi_write "$N1" 23 D
expect_rc 0 "node2 RELEASE(6)" release6 "$N2"
expect_rc 0 "node1 writes after the release" scsi_write "$N1" 23 D

say "iSCSI: I_T nexus loss ends node1's reservation"
C=$(make_backstore spc2i-1 "/var/tmp/spc2i.img;size=64M" $((64 << 20)))
D=$(make_backstore spc2i-2 "/var/tmp/spc2i.img;size=64M" $((64 << 20)))
iscsi_export "$TGT" "$I1=$C" "$I2=$D"
S1=$(iscsi_login "$TGT" tsv-n1 "$I1")
S2=$(iscsi_login "$TGT" tsv-n2 "$I2")
echo "iSCSI node1=$S1 node2=$S2"
ua_flush "$S1"; ua_flush "$S2"
expect_rc 0 "node1 RESERVE(6) over iSCSI" reserve6 "$S1"
expect_rc 24 "node2 RESERVE(6) over iSCSI conflicts" reserve6 "$S2"
expect_rc 24 "node2 WRITE(10) over iSCSI conflicts" scsi_write "$S2" 30 E
iscsi_logout "$TGT" tsv-n1 || fail "logout node1"
t0=$(date +%s%N); got=
for _ in $(seq 1 50); do
    ua_flush "$S2"
    if reserve6 "$S2"; then got=1; break; fi
    sleep 0.2
done
[ -n "$got" ] || fail "node2 could not RESERVE(6) within 10 s of node1's logout"
ok "node2 reserved $(( ($(date +%s%N) - t0) / 1000000 )) ms after node1's logout"
grep -q "I_T nexus .* lost" /tmp/daemon.log || fail "daemon did not log the nexus loss"
expect_rc 0 "node2 writes over iSCSI" scsi_write "$S2" 31 F
expect_rc 0 "node2 RELEASE(6)" release6 "$S2"
iscsi_logout "$TGT" tsv-n2 || fail "logout node2"
echo "spc2: all checks passed"
