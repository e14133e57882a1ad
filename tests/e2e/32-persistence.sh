#!/bin/bash
# tsv-vm: reboot
# Guest test (run by scripts/vm/run after `make publish`), scenario 6 "persistence and restart":
# the daemon as the enabled systemd service, killed and rebooted under it.
#   kill -9   fio (libaio, direct, 4k randwrite, iodepth 8, crc32c verify) writes through
#             tcm_loop; SIGKILL of the service's MainPID while it writes: systemd restarts the
#             service by itself (NRestarts+1, new MainPID, active), the new daemon takes the
#             rings over (block_dev + reset_ring: what the dead one held comes back BUSY and the
#             initiator retries), fio exits 0 and verifies every block, the kernel logs no I/O
#             error for the disk.  Budget: the kernel fails a ring command that waits longer
#             than cmd_time_out (30 s) with NOT READY, so the restart (RestartSec=2 s + start to
#             READY=1) must stay well under that; the test asserts it and prints it.
#   reboot    one volume with two paths (iSCSI on 127.0.0.1, one ACL per initiator name and
#             backstore): both register with APTPL=1, A reserves Write Exclusive; a second volume
#             gets one registration with APTPL=0. targetctl save, the service and
#             rtslib-fb-targetctl (restore at boot) enabled, initiators log out, the guest
#             reboots (exit 194, see scripts/vm/guest/tsv-guest-run). After boot: the service
#             came up by itself, the backstores were restored and adopted, and over fresh logins
#             READ KEYS / READ RESERVATION / READ FULL STATUS show the same keys and holder
#             (PRgeneration back to 0, SPC-4 5.12.3), PTPL_A is 1; B (registered, not the
#             holder) still gets RESERVATION CONFLICT on WRITE, A writes, B reads.
#             APTPL=0: the host's reboot is the target's power loss, so vol2's registration is
#             gone (SPC-4 5.14.5; the daemon keeps it across its own restarts, 30-service and
#             the kill -9 above) and PTPL_A stays 0.
source /repo/tests/e2e/lib.sh
source /repo/tests/e2e/lib-service.sh
source /repo/tests/e2e/lib-iscsi.sh

TARGET=iqn.2026-11.org.example.tsv:persist
INIT_A=iqn.2026-11.org.example.tsv:node-a
INIT_B=iqn.2026-11.org.example.tsv:node-b
SAVED=/etc/rtslib-fb-target/saveconfig.json
RESTORE_UNIT=rtslib-fb-targetctl.service
BOOT=${TSV_BOOT:-1}

cleanup() {
    local rc=$?
    set +e
    if ((rc != 0 && rc != 194)); then
        service_diagnostics
        journalctl -u "$RESTORE_UNIT" --no-pager | tail -20
    fi
    ((rc == 194)) || iscsi_cleanup "$TARGET"
    exit "$rc"
}
trap cleanup EXIT

# session_disk INITIATOR LUN: the /dev/sdX of LUN in INITIATOR's iSCSI session to TARGET.
session_disk() {
    local init=$1 lun=$2 s blk
    for _ in $(seq 1 150); do
        udevadm settle 2>/dev/null || true
        for s in /sys/class/iscsi_session/session*; do
            [ "$(cat "$s/initiatorname" 2>/dev/null)" = "$init" ] || continue
            [ "$(cat "$s/targetname" 2>/dev/null)" = "$TARGET" ] || continue
            blk=$(ls "$s"/device/target*/*:*:*:"$lun"/block 2>/dev/null | head -n1)
            if [ -n "$blk" ] && [ -b "/dev/$blk" ]; then echo "/dev/$blk"; return 0; fi
        done
        sleep 0.2
    done
    fail "no disk for LUN $lun of $init"
}

login_all() {
    A1=$(iscsi_login "$TARGET" tsv-a "$INIT_A")
    B1=$(iscsi_login "$TARGET" tsv-b "$INIT_B")
    A1=$(session_disk "$INIT_A" 0)
    A2=$(session_disk "$INIT_A" 1)
    B1=$(session_disk "$INIT_B" 0)
    echo "A: vol1 $A1, vol2 $A2; B: vol1 $B1"
    for d in "$A1" "$A2" "$B1"; do tur "$d"; tur "$d"; done
}

# ptpl_a DEV: the PTPL_A bit of REPORT CAPABILITIES.
ptpl_a() { sg_persist -n --in --report-capabilities "$1" 2>&1 | sed -n 's/.*PTPL_A): *\([01]\).*/\1/p'; }

# The reservation state both boots compare; the PRgeneration line is left out on purpose.
pr_state() {
    {
        echo "vol1 keys: $(sg_persist -n --in --read-keys "$B1" 2>&1 | grep -o '0x[0-9a-f]*$' | sort | xargs)"
        echo "vol1 reservation: $(sg_persist -n --in --read-reservation "$B1" 2>&1 | grep -iE 'Key=|type' | xargs)"
        echo "vol1 holder: $(sg_persist -n --in --read-full-status "$A1" 2>&1 |
            awk '/Key=/{k=$0} /Reservation holder/{print k}' | xargs)"
        echo "vol1 PTPL_A=$(ptpl_a "$A1")"
        echo "vol2 keys: $(sg_persist -n --in --read-keys "$A2" 2>&1 | grep -o '0x[0-9a-f]*$' | sort | xargs)"
        echo "vol2 PTPL_A=$(ptpl_a "$A2")"
    }
}

conflict_checks() {
    expect_rc 0 "A (holder) writes vol1" scsi_write "$A1" 100 A
    expect_rc 24 "B (registered, not the holder) write to vol1 conflicts under Write Exclusive" scsi_write "$B1" 101 B
    expect_rc 0 "B reads vol1" scsi_read "$B1" 100
}

if [ "$BOOT" = 1 ]; then
    load_modules
    install_service
    # At boot the unit starts long before tsv-guest-run mounts /repo (9p), so the binary goes
    # where a packaged one would be: on the root file system.
    install -m 0755 "$REPO/out/bin/tcmu-shared-volume" /usr/local/sbin/tcmu-shared-volume
    sed -i 's|^ExecStart=.*|ExecStart=/usr/local/sbin/tcmu-shared-volume|' /etc/systemd/system/$UNIT
    systemctl daemon-reload
    systemctl enable "$UNIT" >/dev/null 2>&1 || fail "systemctl enable $UNIT"
    [ ! -e "$SAVED" ] || fail "$SAVED exists before the test saved anything"
    # Started now (nothing to restore yet) so that the reboot stops it, which clears LIO's
    # configuration before the daemon stops, as on any host with the target enabled.
    systemctl enable --now "$RESTORE_UNIT" >/dev/null 2>&1 || fail "systemctl enable --now $RESTORE_UNIT"
    service_start start

    # ---------------------------------------------------------------- kill -9 under fio
    say "kill -9 of the service's MainPID under fio write+verify"
    before=$(sd_disks)
    targetcli /backstores/user:sharedvol create name=k1 size=64M "cfgstring=/var/tmp/k1.img;size=64M" >/dev/null ||
        fail "targetcli create k1"
    wait_journal 'user_[0-9]+/k1: serving volume'
    k1=$(ls -d $CFS/core/user_*/k1)
    cmd_time_out=$(cat "$k1/attrib/cmd_time_out")
    targetcli /loopback create >/dev/null || fail "targetcli /loopback create"
    wwn=$(basename "$(ls -d $CFS/loopback/naa.* | head -1)")
    targetcli "/loopback/$wwn/luns" create /backstores/user:sharedvol/k1 >/dev/null || fail "luns create"
    dev=$(new_disk "$before")
    tur "$dev"
    ok "k1 on $dev (tcm_loop), cmd_time_out=${cmd_time_out}s"

    pid0=$(systemctl show -p MainPID --value "$UNIT")
    nr0=$(systemctl show -p NRestarts --value "$UNIT")
    [ "$pid0" -gt 0 ] || fail "no MainPID"
    dmesg_mark=$(dmesg | wc -l)
    size_mb=48
    s0=$(sectors_written "$dev")
    fio --name=kill9 --filename="$dev" --direct=1 --ioengine=libaio --iodepth=8 --rw=randwrite --bs=4k \
        --size=${size_mb}M --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 \
        --output=/tmp/fio.out >/dev/null 2>&1 &
    fio_pid=$!
    # Kill while fio is in its write phase: once 4 MiB have reached the disk.
    wait_written "$dev" "$s0" 4 $fio_pid
    written=$(( ($(sectors_written "$dev") - s0) / 2048 ))
    ((written < size_mb)) || fail "fio had written all ${size_mb} MiB before the kill"
    t0=$(date +%s%N)
    kill -9 "$pid0"
    echo "killed MainPID $pid0 with SIGKILL after fio wrote ${written} of ${size_mb} MiB"

    pid1=
    for _ in $(seq 1 300); do
        p=$(systemctl show -p MainPID --value "$UNIT")
        if [ "$(systemctl is-active "$UNIT")" = active ] && [ "$p" -gt 0 ] && [ "$p" != "$pid0" ]; then pid1=$p; break; fi
        sleep 0.1
    done
    back_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    [ -n "$pid1" ] || fail "$UNIT did not come back active with a new MainPID within 30 s"
    nr1=$(systemctl show -p NRestarts --value "$UNIT")
    ((nr1 == nr0 + 1)) || fail "NRestarts went from $nr0 to $nr1, expected +1"
    kill -0 "$pid0" 2>/dev/null && fail "the killed daemon $pid0 still exists"
    ok "systemd restarted $UNIT by itself: MainPID $pid0 -> $pid1, NRestarts $nr0 -> $nr1, active (READY=1) ${back_ms} ms after the kill"
    ((back_ms < cmd_time_out * 1000)) || fail "restart took ${back_ms} ms, longer than cmd_time_out ${cmd_time_out}s"

    fio_verified $fio_pid "kill -9 and the service's restart"
    [ "$(journal | grep -cE 'user_[0-9]+/k1: serving volume')" -ge 2 ] || fail "the restarted daemon did not adopt k1"
    ok "fio wrote and verified ${size_mb} MiB across kill -9 (exit 0, err= 0)"

    kmsg=$(dmesg | tail -n +"$((dmesg_mark + 1))")
    echo "kernel log since the kill:"; echo "$kmsg" | sed 's/^/  | /' | tail -20
    grep -iE 'I/O error|critical|blk_update_request|Buffer I/O|timed out|timeout|expired|abort' <<<"$kmsg" &&
        fail "the kernel logged an I/O error, timeout or abort"
    ok "no I/O error, timeout or expired command in dmesg"
    # The restarted daemon's POWER ON, RESET unit attention (29h/00h) was taken by fio's retried
    # I/O or is taken here, before any sg_* command (sg3_utils does not retry a unit attention).
    tur "$dev"

    # The kill -9 part is done; its tcm_loop disk would only get in the way of the reboot.
    targetcli /loopback delete "$wwn" >/dev/null || fail "targetcli /loopback delete"
    targetcli /backstores/user:sharedvol delete k1 >/dev/null || fail "delete k1"

    # ---------------------------------------------------------------- state for the reboot
    say "APTPL: vol1 on two paths (APTPL=1, Write Exclusive), vol2 (APTPL=0)"
    for so in "p1a /var/tmp/p1.img" "p1b /var/tmp/p1.img" "p2a /var/tmp/p2.img"; do
        set -- $so
        targetcli /backstores/user:sharedvol create name=$1 size=64M "cfgstring=$2;size=64M" >/dev/null ||
            fail "targetcli create $1"
        wait_journal "user_[0-9]+/$1: serving volume"
    done
    d_p1a=$(ls -d $CFS/core/user_*/p1a); d_p1b=$(ls -d $CFS/core/user_*/p1b); d_p2a=$(ls -d $CFS/core/user_*/p2a)
    # LUN 0 of A's and of B's ACL: vol1's two paths; LUN 1 of A's ACL: vol2.
    iscsi_export "$TARGET" "$INIT_A=$d_p1a" "$INIT_B=$d_p1b"
    t=$CFS/iscsi/$TARGET/tpgt_1
    mkdir "$t/lun/lun_2"
    ln -s "$d_p2a" "$t/lun/lun_2/p2a"
    mkdir "$t/acls/$INIT_A/lun_1"
    ln -s "$t/lun/lun_2" "$t/acls/$INIT_A/lun_1/mapped"
    login_all

    sg_persist -n --out --register --param-sark=0xa1 --param-aptpl "$A1" >/dev/null || fail "A registers on vol1 (APTPL)"
    sg_persist -n --out --register --param-sark=0xb1 --param-aptpl "$B1" >/dev/null || fail "B registers on vol1 (APTPL)"
    sg_persist -n --out --reserve --param-rk=0xa1 --prout-type=1 "$A1" >/dev/null || fail "A reserves vol1 (WE)"
    sg_persist -n --out --register --param-sark=0xa2 "$A2" >/dev/null || fail "A registers on vol2 (no APTPL)"
    pr_state | tee /var/tmp/pr-before
    grep -qx 'vol1 keys: 0xa1 0xb1' /var/tmp/pr-before || fail "vol1 keys"
    grep -q 'vol1 reservation: .*Key=0xa1.*Write Exclusive' /var/tmp/pr-before || fail "vol1 reservation"
    grep -q 'vol1 holder: Key=0xa1' /var/tmp/pr-before || fail "vol1 holder in READ FULL STATUS"
    grep -qx 'vol1 PTPL_A=1' /var/tmp/pr-before || fail "PTPL_A is not 1 after REGISTER with APTPL=1"
    grep -qx 'vol2 keys: 0xa2' /var/tmp/pr-before || fail "vol2 keys"
    grep -qx 'vol2 PTPL_A=0' /var/tmp/pr-before || fail "PTPL_A is not 0 after REGISTER with APTPL=0"
    conflict_checks

    targetctl save "$SAVED" || fail "targetctl save"
    for n in p1a p1b p2a; do grep -q "\"name\": \"$n\"" "$SAVED" || fail "$n is not in $SAVED"; done
    grep -q "$INIT_B" "$SAVED" || fail "the ACLs are not in $SAVED"
    # The initiators are other hosts in real life: they leave before the target reboots.
    iscsi_logout "$TARGET" tsv-a
    iscsi_logout "$TARGET" tsv-b
    [ "$(systemctl is-enabled "$UNIT")" = enabled ] || fail "$UNIT not enabled"
    [ "$(systemctl is-enabled "$RESTORE_UNIT")" = enabled ] || fail "$RESTORE_UNIT not enabled"
    echo "$SECONDS" >/var/tmp/boot1-seconds
    say "rebooting the guest (boot 1 took $SECONDS s)"
    exit 194
fi

# -------------------------------------------------------------------- after the reboot
say "boot $BOOT: the service and the restore came up by themselves"
journalctl -b -p warning --no-pager -o short-monotonic 2>/dev/null | grep -v 'kernel:' | head -12 | sed 's/^/  boot log: /' || true
for _ in $(seq 1 450); do
    [ "$(systemctl is-active "$UNIT")" = active ] &&
        [ "$(systemctl is-active "$RESTORE_UNIT")" = active ] && break
    sleep 0.2
done
[ "$(systemctl is-active "$UNIT")" = active ] || fail "$UNIT is not active after boot"
[ "$(systemctl is-active "$RESTORE_UNIT")" = active ] || fail "$RESTORE_UNIT is not active after boot"
[ "$(systemctl show -p NRestarts --value "$UNIT")" = 0 ] || fail "$UNIT restarted during boot"
[ "$(journalctl -b -u "$UNIT" --no-pager | grep -c 'ready: serving')" = 1 ] || fail "no single 'ready:' in this boot's journal"
# Before=rtslib-fb-targetctl.service: the restore began only after READY=1.
ready_at=$(systemctl show -p ActiveEnterTimestampMonotonic --value "$UNIT")
restore_at=$(systemctl show -p InactiveExitTimestampMonotonic --value "$RESTORE_UNIT")
echo "daemon READY at $((ready_at / 1000)) ms, restore started at $((restore_at / 1000)) ms after boot"
((restore_at >= ready_at)) || fail "targetctl restore started before the daemon was READY"
restore_log=$(journalctl -b -u "$RESTORE_UNIT" --no-pager -o cat)
grep -qiE 'skipped|cannot|error' <<<"$restore_log" && { echo "$restore_log"; fail "targetctl restore reported errors"; }
for n in p1a p1b p2a; do
    journalctl -b -u "$UNIT" --no-pager -o cat | grep -qE "user_[0-9]+/$n: serving volume" || fail "$n not adopted after boot"
done
[ -d "$CFS/iscsi/$TARGET/tpgt_1/acls/$INIT_B" ] || fail "the iSCSI target's ACLs were not restored"
# RECONFIG events that nobody answered (the restore running before the daemon is READY).
dmesg | grep -i 'Unable to reconfigure' && fail "the kernel could not reconfigure a device during the restore"
ok "$UNIT enabled and active ($(journalctl -b -u "$UNIT" --no-pager -o cat | grep -o 'ready:.*' | tail -1)); restore without errors"

say "the reservation state after the reboot, over fresh logins"
login_all
pr_state | tee /var/tmp/pr-after
# Everything as before, but vol2's registration made with APTPL=0 (SPC-4 5.14.5).
sed 's/^vol2 keys: .*/vol2 keys: /' /var/tmp/pr-before >/var/tmp/pr-expected
diff -u /var/tmp/pr-expected /var/tmp/pr-after || fail "the reservation state after the reboot is not the APTPL=1 state alone"
gen=$(sg_persist -n --in --read-keys "$B1" 2>&1 | sed -n 's/.*PR generation=\(0x[0-9a-f]*\).*/\1/p')
[ "$((gen))" = 0 ] || fail "PRgeneration is $gen after the reboot, expected 0 (SPC-4 5.12.3)"
ok "vol1 (APTPL=1): same keys, holder, type and PTPL_A; PRgeneration back to 0; vol2 (APTPL=0): registration released"
conflict_checks

iscsi_logout "$TARGET" tsv-a
iscsi_logout "$TARGET" tsv-b
echo "PASS: persistence (boot 1 $(cat /var/tmp/boot1-seconds) s, boot 2 $SECONDS s)"
