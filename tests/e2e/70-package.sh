#!/bin/bash
# Guest test (run by scripts/vm/run; build the package first with `make package`): the Debian
# package's whole life on a real systemd + LIO machine.
#   install    refused while tcmu-runner is installed (Conflicts), then dpkg -i: the service is
#              enabled and active, targetcli lists user:sharedvol over D-Bus
#   use        a user:sharedvol backstore made with targetcli, exported through tcm_loop: a
#              /dev/sdX appears, dd writes and reads back through it and into the backing file,
#              a PR registration lands in the state directory
#   unexport   LUN, tcm_loop target and backstore deleted with targetcli while the daemon runs
#   remove     dpkg -r: the daemon stops cleanly (inactive, not failed, no process), the
#              binaries and unit are gone, the conffile and the state directory stay
#   purge      dpkg --purge: the state directory and the configuration are gone
# No network in the guest: dpkg -i, not apt; libsystemd0 and targetcli-fb are in the image.
source /repo/tests/e2e/lib.sh

PKG=tcmu-shared-volume
UNIT=$PKG.service
BACKING=/var/tmp/v1.img
SIZE=$((64 * 1024 * 1024))

cleanup() {
    local rc=$?
    set +e
    if ((rc != 0)); then
        echo "-- diagnostics --"
        systemctl status "$UNIT" --no-pager 2>&1 | head -20
        journalctl -u "$UNIT" --no-pager 2>&1 | tail -40
        targetcli ls / 2>&1
        dmesg | tail -20
    fi
    # Without the daemon, removing a LUN of ours waits on the ring (the SCSI layer's
    # SYNCHRONIZE CACHE on device removal) with nobody to answer; the VM is thrown away anyway.
    if [ "$(systemctl is-active "$UNIT" 2>/dev/null)" = active ] || [ -z "$(ls -d $CFS/core/user_* 2>/dev/null)" ]; then
        targetcli clearconfig confirm=True >/dev/null 2>&1
    fi
    rm -f "$BACKING"
    exit "$rc"
}
trap cleanup EXIT

version=$(sed -n 's/.*<Version>\(.*\)<\/Version>.*/\1/p' "$REPO/Directory.Build.props")
DEB=$REPO/out/${PKG}_${version}_amd64.deb
[ -f "$DEB" ] || fail "$DEB is missing: run make package on the host first"

say "install: refused while tcmu-runner is installed"
dpkg -s tcmu-runner >/dev/null 2>&1 || fail "the image should have tcmu-runner (scripts/vm/image-packages)"
set +e; out=$(dpkg -i "$DEB" 2>&1); rc=$?; set -e
[ "$rc" != 0 ] || fail "dpkg -i succeeded beside tcmu-runner: $out"
grep -q "conflicts with tcmu-runner" <<<"$out" || fail "dpkg refused for another reason: $out"
dpkg -s "$PKG" 2>/dev/null | grep -q '^Status: install ok installed' && fail "$PKG got installed anyway"
ok "dpkg -i refused: conflicts with tcmu-runner"
dpkg -r tcmu-runner >/dev/null || fail "dpkg -r tcmu-runner"

say "install: dpkg -i $(basename "$DEB")"
t0=$(date +%s%N)
dpkg -i "$DEB" || fail "dpkg -i $DEB"
echo "dpkg -i (with the service start) took $(( ($(date +%s%N) - t0) / 1000000 )) ms"
dpkg -s "$PKG" | grep -q '^Status: install ok installed' || fail "$PKG is not installed"
[ "$(systemctl is-enabled "$UNIT")" = enabled ] || fail "$UNIT is not enabled"
# Type=notify: the postinst's start returns once the daemon sent READY=1.
[ "$(systemctl is-active "$UNIT")" = active ] || fail "$UNIT is not active after install"
journalctl -u "$UNIT" --no-pager | grep -q "ready:" || fail "no 'ready:' in the journal"
ok "$UNIT enabled and active; $(journalctl -u "$UNIT" --no-pager | grep -o 'ready:.*' | tail -1)"
[ "$(/usr/sbin/tcmu-shared-volume --version)" = "$PKG $version" ] || fail "tcmu-shared-volume --version"
[ "$(/usr/sbin/tsvctl --version)" = "tsvctl $version" ] || fail "tsvctl --version: $(/usr/sbin/tsvctl --version)"
for f in /lib/systemd/system/$UNIT /usr/share/dbus-1/system.d/org.kernel.TCMUService1.conf \
         /usr/share/dbus-1/system-services/org.kernel.TCMUService1.service \
         /etc/$PKG/$PKG.conf; do
    [ -f "$f" ] || fail "$f not installed"
done
# The image's dpkg excludes /usr/share/man (path-exclude), so look in the package itself. The
# listing is read whole first: grep -q stops at the first match, and under pipefail the listing's
# tar, cut off mid-write, would fail the pipe although the file is there.
contents=$(dpkg-deb -c "$DEB") || fail "dpkg-deb -c $DEB"
for m in tcmu-shared-volume.8.gz tsvctl.8.gz; do
    grep -q "/usr/share/man/man8/$m\$" <<<"$contents" || fail "$m is not in the package"
done
conffiles=$(dpkg-query --showformat='${Conffiles}\n' -W "$PKG")
grep -q "/etc/$PKG/$PKG.conf" <<<"$conffiles" || fail "config is not a conffile"
ok "files in place, /etc/$PKG/$PKG.conf is a conffile"

say "targetcli sees the handler over D-Bus"
load_modules
ls_out=$(targetcli ls /backstores 2>&1) || fail "targetcli ls /backstores: $ls_out"
echo "$ls_out"
grep -q "user:sharedvol" <<<"$ls_out" || fail "targetcli does not list user:sharedvol"
ok "targetcli lists user:sharedvol"

say "loopback export through targetcli"
targetcli set global auto_save_on_exit=false >/dev/null
before=$(sd_disks)
targetcli /backstores/user:sharedvol create name=v1 size=64M "cfgstring=$BACKING;size=64M" ||
    fail "targetcli create user:sharedvol backstore"
[ "$(stat -c %s "$BACKING")" = "$SIZE" ] || fail "$BACKING is not $SIZE bytes"
targetcli /loopback create >/dev/null || fail "targetcli /loopback create"
wwn=$(basename "$(ls -d $CFS/loopback/naa.* | head -1)")
[ -n "$(cat "$CFS/loopback/$wwn/tpgt_1/nexus" 2>/dev/null)" ] || fail "tcm_loop target $wwn has no nexus"
targetcli "/loopback/$wwn/luns" create /backstores/user:sharedvol/v1 >/dev/null || fail "targetcli luns create"
dev=
for _ in $(seq 1 150); do
    udevadm settle 2>/dev/null || true
    new=$(comm -13 <(echo "$before") <(sd_disks) | head -n1)
    [ -n "$new" ] && { dev=/dev/$new; break; }
    sleep 0.2
done
[ -n "$dev" ] || fail "no /dev/sdX appeared for the loopback LUN"
[ "$(blockdev --getsize64 "$dev")" = "$SIZE" ] || fail "$dev is not $SIZE bytes"
ok "$dev: $(lsscsi | grep "$dev" || true)"

pattern=$(mktemp); readback=$(mktemp)
head -c 65536 /dev/urandom >"$pattern"
dd if="$pattern" of="$dev" bs=65536 seek=3 oflag=direct conv=notrunc status=none || fail "dd write to $dev"
dd if="$dev" of="$readback" bs=65536 skip=3 count=1 iflag=direct status=none || fail "dd read from $dev"
cmp -s "$pattern" "$readback" || fail "read back differs from what was written"
cmp -s "$pattern" <(dd if="$BACKING" bs=65536 skip=3 count=1 status=none) || fail "the data is not in $BACKING"
rm -f "$pattern" "$readback"
ok "64 KiB written and read back through $dev, and found in $BACKING"

# A registration is state the daemon must keep across a package remove.
sg_persist --out --register --param-sark=0x7070 "$dev" >/dev/null 2>&1 ||
    sg_persist --out --register --param-sark=0x7070 "$dev" >/dev/null || fail "PR OUT REGISTER on $dev"
sg_persist --in --read-keys "$dev" 2>&1 | grep -q 0x7070 || fail "key 0x7070 not registered"
state_files=$(find "$STATE_DIR" -type f | wc -l)
[ "$state_files" -gt 0 ] || fail "nothing in $STATE_DIR after a registration"
ok "registered key 0x7070; $state_files file(s) in $STATE_DIR"

# Unexport first, as an administrator would: a LUN whose daemon is gone keeps the kernel's
# commands queued on its ring (so that a restart can take them over), and removing it then
# waits for an answer that never comes.
say "unexport through targetcli"
targetcli "/loopback/$wwn/luns" delete lun0 >/dev/null || fail "targetcli luns delete"
targetcli /loopback delete "$wwn" >/dev/null || fail "targetcli /loopback delete"
targetcli /backstores/user:sharedvol delete v1 >/dev/null || fail "targetcli backstore delete"
[ -z "$(ls -d $CFS/core/user_*/v1 2>/dev/null)" ] || fail "backstore v1 still in configfs"
[ ! -e "$dev" ] || { udevadm settle 2>/dev/null || true; [ ! -e "$dev" ] || fail "$dev still there"; }
[ -f "$BACKING" ] || fail "$BACKING went with the backstore"
ok "export removed; $BACKING stays"

say "remove: dpkg -r"
pid=$(systemctl show -p MainPID --value "$UNIT")
[ "$pid" -gt 0 ] || fail "no MainPID"
t0=$(date +%s%N)
dpkg -r "$PKG" || fail "dpkg -r $PKG"
echo "dpkg -r (with the service stop) took $(( ($(date +%s%N) - t0) / 1000000 )) ms"
state=$(systemctl is-active "$UNIT" || true)
[ "$state" = inactive ] || fail "$UNIT is '$state' after remove, expected inactive"
kill -0 "$pid" 2>/dev/null && fail "daemon process $pid still runs"
journalctl -u "$UNIT" --no-pager | grep -q "stopping:" || fail "the daemon did not log a clean stop"
journalctl -u "$UNIT" --no-pager | grep -qi "fatal\|core-dump\|Failed with result" && fail "unclean stop in the journal"
for f in /usr/sbin/tcmu-shared-volume /usr/sbin/tsvctl /lib/systemd/system/$UNIT \
         /usr/share/dbus-1/system-services/org.kernel.TCMUService1.service; do
    [ ! -e "$f" ] || fail "$f still there after remove"
done
[ -f "/etc/$PKG/$PKG.conf" ] || fail "the conffile went with remove"
[ -d "$STATE_DIR" ] && [ "$(find "$STATE_DIR" -type f | wc -l)" = "$state_files" ] ||
    fail "$STATE_DIR was not kept on remove"
dpkg -s "$PKG" | grep -q '^Status: deinstall ok config-files' || fail "unexpected status: $(dpkg -s "$PKG" | grep Status)"
ok "stopped cleanly; binaries and unit gone; conffile and $STATE_DIR kept"

say "purge"
dpkg --purge "$PKG" || fail "dpkg --purge $PKG"
[ ! -e "$STATE_DIR" ] || fail "$STATE_DIR still there after purge"
[ ! -e "/etc/$PKG" ] || fail "/etc/$PKG still there after purge"
dpkg -s "$PKG" >/dev/null 2>&1 && fail "$PKG still known to dpkg after purge"
ok "purged: $STATE_DIR and /etc/$PKG gone"

echo "PASS: package"
