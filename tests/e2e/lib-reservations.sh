# The reservation checks of a volume's two paths (sourced after lib.sh), run against a file by
# 20-reservations.sh and against an LVM thin LV by 44-lvm.sh: the same table behind every
# backing store.

# reservation_checks DISK1 DISK2 INITIATOR1_PATTERN RESTART_COMMAND: DISK1 and DISK2 are two
# paths (two I_T nexuses) of one fresh volume; INITIATOR1_PATTERN is what READ FULL STATUS shows
# for DISK1's initiator (grep); RESTART_COMMAND restarts the daemon (a function name).
reservation_checks() {
    say "register both nodes, node1 reserves WRITE EXCLUSIVE - REGISTRANTS ONLY"
    tur "$1"; tur "$2"
    sg_persist -n --out --register --param-sark=0x1 "$1" || fail "register node1"
    sg_persist -n --out --register --param-sark=0x2 "$2" || fail "register node2"
    sg_persist -n --in --read-keys "$2" | tee /tmp/keys
    grep -q 0x1 /tmp/keys && grep -q 0x2 /tmp/keys || fail "keys not visible through the other path"
    sg_persist -n --out --reserve --param-rk=0x1 --prout-type=5 "$1" || fail "reserve"
    sg_persist -n --in --read-reservation "$2" | tee /tmp/res
    grep -qi 'Key=0x1' /tmp/res || fail "reservation not visible from node2"
    sg_persist -n --in --read-full-status "$1" | tee /tmp/fs
    grep -q "$3" /tmp/fs || fail "full status does not name node1's initiator"
    ok "registrations and reservation visible on both paths"

    say "registrants write; an unregistered node gets RESERVATION CONFLICT"
    expect_rc 0 "node1 (holder) writes" scsi_write "$1" 10 A
    expect_rc 0 "node2 (registrant) writes" scsi_write "$2" 11 B
    sg_persist -n --out --register --param-rk=0x2 --param-sark=0 "$2" || fail "unregister node2"
    tur "$2"
    expect_rc 24 "node2 (unregistered) write conflicts" scsi_write "$2" 12 C
    expect_rc 0 "node2 (unregistered) may still read under WERO" scsi_read "$2" 10

    say "node2 registers again and PREEMPT AND ABORTs node1"
    sg_persist -n --out --register --param-sark=0x2 "$2" || fail "re-register node2"
    timeout 60 sg_persist -n --out --preempt-abort --param-rk=0x2 --param-sark=0x1 --prout-type=5 "$2" \
        || fail "PREEMPT AND ABORT failed or hung"
    tur "$1"; tur "$1"
    expect_rc 24 "fenced node1 write conflicts" scsi_write "$1" 13 D
    expect_rc 0 "node2 (new holder) writes" scsi_write "$2" 14 E
    sg_persist -n --in --read-reservation "$1" | grep -qi 'Key=0x2' || fail "node2 is not the holder"

    say "state survives a daemon restart"
    "$4"
    tur "$1"; tur "$2"; tur "$1"; tur "$2"
    sg_persist -n --in --read-keys "$1" | tee /tmp/keys2
    grep -q 0x2 /tmp/keys2 || fail "registration lost across restart"
    grep -q '0x1$' /tmp/keys2 && fail "preempted key came back after restart"
    sg_persist -n --in --read-reservation "$1" | grep -qi 'Key=0x2' || fail "reservation lost across restart"
    expect_rc 24 "node1 still fenced after restart" scsi_write "$1" 15 F
    ok "reservation state persisted"
}
