#!/bin/bash
# Guest test (run by scripts/vm/run after `make publish`): the daemon as the systemd service and
# LIO's own tools driving it.
#   service    Type=notify start → active; systemctl status shows the STATUS= line; the journal
#              keeps each line's priority (-p filters)
#   targetcli  lists user:sharedvol over D-Bus, shows ConfigDesc in help, refuses bad config
#              strings with the daemon's reason, creates a backstore the daemon adopts
#   restart    systemctl restart under fio write+verify: fio sees no error (the kernel retries
#              what reset_ring failed with BUSY), the data verifies, PR keys survive
#   reload     systemctl reload (SIGHUP) under fio write+verify: same PID, no I/O error, the new
#              log_level in force; a bad file is refused by line and the old settings kept
#   restore    targetctl save, clear, restart, restore: backstores adopted again with no
#              "Cannot set attribute" (RECONFIG of unchanged values), same VPD 80h serial
#   nobody     as user nobody on the system bus: GetStatusJson and ClearReservations are
#              refused (access denied); CheckConfig answers the same for a missing file, an
#              existing file and a directory (syntax only), while root gets the path checks
source /repo/tests/e2e/lib.sh
source /repo/tests/e2e/lib-service.sh

BACKING=/var/tmp/v1.img
SAVED=/var/tmp/saved.json

cleanup() {
    local rc=$?
    set +e
    ((rc == 0)) || service_diagnostics
    exit "$rc"
}
trap cleanup EXIT

load_modules
install_service

say "service: systemctl start (Type=notify)"
service_start start
status=$(systemctl status "$UNIT" --no-pager 2>&1 || true)
echo "$status" | head -8
grep -q 'Status: "serving 0 volume(s) over 0 path(s)"' <<<"$status" || fail "systemctl status has no STATUS= line"
ok "active, STATUS= line shown"
journal -p notice | grep -q '^ready: serving' || fail "no 'ready:' line at priority notice or above"
journal -p warning | grep -q 'ready:' && fail "'ready:' (notice) shows up under -p warning: priorities lost"
journalctl -u "$UNIT" -o json --no-pager | grep '"ready: ' | grep -q '"PRIORITY":"5"' || fail "ready: line is not PRIORITY=5"
ok "journal keeps priorities (ready: is notice)"

say "targetcli over D-Bus"
out=$(targetcli ls /backstores 2>&1) || fail "targetcli ls /backstores: $out"
echo "$out"
grep -q 'user:sharedvol' <<<"$out" || fail "targetcli does not list user:sharedvol"
out=$(targetcli /backstores/user:sharedvol help create 2>&1) || fail "help create: $out"
grep -q 'sharedvol/<absolute path>' <<<"$out" || { echo "$out"; fail "help create does not show ConfigDesc"; }
ok "help create shows ConfigDesc"

refused() { # refused CFGSTRING REASON_PATTERN
    local out
    set +e; out=$(targetcli /backstores/user:sharedvol create name=bad size=64M "cfgstring=$1" 2>&1); set -e
    grep -qE "$2" <<<"$out" || fail "cfgstring=$1: expected the daemon's reason /$2/, got: $out"
    [ -z "$(ls -d $CFS/core/user_*/bad 2>/dev/null)" ] || fail "cfgstring=$1: a backstore 'bad' was left behind"
    ok "cfgstring=$1 refused: $(grep -E "$2" <<<"$out" | head -1)"
}
refused 'relative/path' 'absolute'
refused '/var/tmp/missing.img' 'does not exist and no size='
refused '/var/tmp/nodir/x.img;size=1M' 'parent directory'

before=$(sd_disks)
targetcli /backstores/user:sharedvol create name=v1 size=64M "cfgstring=$BACKING;size=64M" ||
    fail "targetcli create v1"
wait_journal 'user_[0-9]+/v1: serving volume'
ok "v1 adopted: $(journal | grep -E 'user_[0-9]+/v1: serving' | tail -1)"
[ "$(stat -c %s "$BACKING")" = $((64 << 20)) ] || fail "$BACKING is not 64 MiB"

say "D-Bus as user nobody"
DEST=(org.kernel.TCMUService1 /org/kernel/TCMUService1/sharedvol)
nobody_call() { runuser -u nobody -- busctl call "${DEST[@]}" "$@" 2>&1; }
out=$(nobody_call io.github.tcmusharedvolume.Admin1 GetStatusJson) && fail "nobody read GetStatusJson: $out"
grep -qi 'access denied' <<<"$out" || fail "GetStatusJson as nobody: expected access denied, got: $out"
grep -q "$BACKING" <<<"$out" && fail "GetStatusJson's refusal names the backing path: $out"
ok "GetStatusJson as nobody: $out"
out=$(busctl call "${DEST[@]}" io.github.tcmusharedvolume.Admin1 GetStatusJson 2>&1) || fail "GetStatusJson as root: $out"
grep -q "$BACKING" <<<"$out" || fail "GetStatusJson as root does not list $BACKING: $out"
ok "GetStatusJson as root lists $BACKING"
out=$(nobody_call io.github.tcmusharedvolume.Admin1 ClearReservations sb "$BACKING" true) && fail "nobody cleared reservations: $out"
grep -qi 'access denied' <<<"$out" || fail "ClearReservations as nobody: expected access denied, got: $out"
ok "ClearReservations as nobody: $out"
# root gets the path checks; nobody gets one answer for a missing file, a file and a directory.
out=$(busctl call "${DEST[@]}" org.kernel.TCMUService1 CheckConfig s "sharedvol//root/missing.img" 2>&1) || fail "CheckConfig as root: $out"
grep -q '^bs false .*does not exist' <<<"$out" || fail "CheckConfig as root of a missing file: $out"
ok "CheckConfig as root, missing file: $out"
missing=$(nobody_call org.kernel.TCMUService1 CheckConfig s "sharedvol//root/missing.img") || fail "CheckConfig as nobody: $missing"
present=$(nobody_call org.kernel.TCMUService1 CheckConfig s "sharedvol/$BACKING") || fail "CheckConfig as nobody: $present"
directory=$(nobody_call org.kernel.TCMUService1 CheckConfig s "sharedvol//root") || fail "CheckConfig as nobody: $directory"
grep -q '^bs true .*syntax only' <<<"$missing" || fail "CheckConfig as nobody of a missing file: $missing"
[ "$missing" = "$present" ] && [ "$missing" = "$directory" ] ||
    fail "CheckConfig as nobody tells files apart: missing=$missing present=$present directory=$directory"
ok "CheckConfig as nobody, missing file / file / directory: $missing"
out=$(nobody_call org.kernel.TCMUService1 CheckConfig s "sharedvol/relative.img") || fail "CheckConfig as nobody: $out"
grep -q '^bs false .*absolute' <<<"$out" || fail "CheckConfig as nobody of a relative path: $out"
ok "CheckConfig as nobody still checks the syntax: $out"

# A config string that bypasses targetcli's CheckConfig (configfs directly): the daemon refuses
# the enable and says why at priority err.
bad=$CFS/core/user_99/raw
mkdir -p "$bad"
echo -n "dev_config=sharedvol/relative.img;size=1M" >"$bad/control"
echo -n "dev_size=1048576" >"$bad/control"
if echo 1 >"$bad/enable" 2>/dev/null; then fail "enable of a relative path succeeded"; fi
rmdir "$bad" "$CFS/core/user_99"
journal -p err | grep -q 'user_99/raw: not served' || fail "refusal not logged at priority err"
journal -p err | grep -q 'ready:' && fail "notice line under -p err"
ok "configfs enable with a bad config refused, logged at err: $(journal -p err | grep user_99 | tail -1)"

say "restart under fio write+verify"
targetcli /loopback create >/dev/null || fail "targetcli /loopback create"
wwn=$(basename "$(ls -d $CFS/loopback/naa.* | head -1)")
targetcli "/loopback/$wwn/luns" create /backstores/user:sharedvol/v1 >/dev/null || fail "luns create"
dev=$(new_disk "$before")
serial=$(vpd80 "$dev")
[ -n "$serial" ] || fail "$dev has no VPD 80h serial"
ok "$dev serial $serial"
tur "$dev"
sg_persist --out --register --param-sark=0xabc1 "$dev" >/dev/null 2>&1 ||
    sg_persist --out --register --param-sark=0xabc1 "$dev" >/dev/null || fail "PR register"
sg_persist --out --reserve --param-rk=0xabc1 --prout-type=5 "$dev" >/dev/null || fail "PR reserve"

s0=$(sectors_written "$dev")
fio --name=restart --filename="$dev" --direct=1 --ioengine=libaio --iodepth=8 --rw=randwrite --bs=4k \
    --size=48M --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 --output=/tmp/fio.out >/dev/null 2>&1 &
fio_pid=$!
wait_written "$dev" "$s0" 4 $fio_pid
t0=$(date +%s%N)
service_start restart
echo "restart took $(( ($(date +%s%N) - t0) / 1000000 )) ms while fio ran"
kill -0 $fio_pid 2>/dev/null || echo "note: fio had finished by the time the restart returned"
fio_verified $fio_pid "the restart"
journal | grep -q "user_[0-9]*/v1: serving" || fail "v1 not adopted after restart"
[ "$(journal | grep -c 'ready: serving 1 volume(s) over 1 path(s)')" -ge 1 ] || fail "restarted daemon did not serve v1"
ok "fio wrote and verified 48 MiB across systemctl restart"
# The restarted daemon reports POWER ON, RESET, OR BUS DEVICE RESET OCCURRED (29h/00h) once on
# the adopted path. The kernel retries its own I/O after it (fio above); sg_persist does not
# retry a unit attention, so a TEST UNIT READY takes it first, as an initiator's would.
tur "$dev"
keys=$(sg_persist --in --read-keys "$dev" 2>&1)
grep -q 0xabc1 <<<"$keys" || fail "key lost across restart: $keys"
sg_persist --in --read-reservation "$dev" 2>&1 | grep -q 'type: Write Exclusive, registrants only' ||
    fail "reservation lost across restart: $(sg_persist --in --read-reservation "$dev" 2>&1)"
ok "PR key and reservation survived the restart"

say "reload (SIGHUP) under fio write+verify"
CONF=/etc/tcmu-shared-volume/tcmu-shared-volume.conf
mkdir -p "$(dirname "$CONF")"
pid0=$(systemctl show -p MainPID --value "$UNIT")
s0=$(sectors_written "$dev")
fio --name=reload --filename="$dev" --direct=1 --ioengine=libaio --iodepth=8 --rw=randwrite --bs=4k \
    --size=16M --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 --output=/tmp/fio.out >/dev/null 2>&1 &
fio_pid=$!
wait_written "$dev" "$s0" 2 $fio_pid
echo "log_level = notice" >"$CONF"
systemctl reload "$UNIT" || fail "systemctl reload"
wait_journal 'configuration reloaded'
fio_verified $fio_pid "the reload"
[ "$(systemctl show -p MainPID --value "$UNIT")" = "$pid0" ] || fail "reload restarted the daemon"
[ "$(systemctl is-active "$UNIT")" = active ] || fail "$UNIT not active after reload"
ok "reloaded in place (PID $pid0), fio verified 16 MiB written across it"
# The new level is in force: adopting a volume logs 'serving' (notice) but not 'adopted in' (info).
targetcli /backstores/user:sharedvol create name=v2 size=16M "cfgstring=/var/tmp/v2.img;size=16M" >/dev/null ||
    fail "targetcli create v2"
wait_journal 'user_[0-9]+/v2: serving volume'
journal | grep -qE 'v2: adopted in' && fail "an info line was logged at log_level = notice"
ok "log_level = notice in force: v2's 'serving' logged, its info line not"
# A bad file is refused by name and line; the daemon keeps the configuration it has.
printf 'log_level = notice\nworker_thread = 4\n' >"$CONF"
systemctl reload "$UNIT" || fail "systemctl reload (bad file)"
wait_journal "reload failed, keeping the previous configuration: $CONF:2: unknown key 'worker_thread'"
journal -p err | grep -q 'reload failed' || fail "failed reload not logged at priority err"
[ "$(systemctl show -p MainPID --value "$UNIT")" = "$pid0" ] || fail "a bad reload restarted the daemon"
tur "$dev"
ok "bad file on reload: $(journal -p err | grep 'reload failed' | tail -1)"
targetcli /backstores/user:sharedvol delete v2 >/dev/null || fail "targetcli delete v2"
wait_journal 'v2: removed'
journal | grep -qE 'v2: adopted in' && fail "the bad reload changed log_level"
rm -f "$CONF" /var/tmp/v2.img
systemctl reload "$UNIT" || fail "systemctl reload (defaults)"
for _ in $(seq 1 150); do [ "$(journal | grep -c 'configuration reloaded')" -ge 2 ] && break; sleep 0.2; done
[ "$(journal | grep -c 'configuration reloaded')" -ge 2 ] || fail "reload back to the defaults not logged"
ok "back to the defaults"

say "targetctl save / clear / restart / restore"
targetctl save "$SAVED" || fail "targetctl save"
grep -q '"sharedvol/' "$SAVED" || fail "saved config has no sharedvol backstore"
targetctl clear || fail "targetctl clear"
[ -z "$(ls -d $CFS/core/user_* 2>/dev/null)" ] || fail "backstores remain after clear"
[ -z "$(sd_disks)" ] || [ -z "$(comm -13 <(echo "$before") <(sd_disks))" ] || fail "disk still there after clear"
wait_journal 'v1: removed'
service_start restart
before=$(sd_disks)
set +e; out=$(targetctl restore "$SAVED" 2>&1); rrc=$?; set -e
echo "$out"
[ "$rrc" = 0 ] || fail "targetctl restore exit $rrc"
grep -qi 'Cannot set' <<<"$out" && fail "restore could not set an attribute"
n_adopted=$(journal | grep -cE 'user_[0-9]+/v1: serving')
[ "$n_adopted" -ge 3 ] || fail "v1 was not adopted again after restore ($n_adopted adoption lines)"
journal -p warning | grep -q 'refused to' && fail "the daemon refused a RECONFIG during restore"
dev=$(new_disk "$before")
[ "$(vpd80 "$dev")" = "$serial" ] || fail "$dev serial $(vpd80 "$dev") differs from $serial"
tur "$dev"
sg_persist --in --read-keys "$dev" 2>&1 | grep -q 0xabc1 || fail "key lost across save/clear/restore"
ok "restored: $dev, same serial $serial, key kept"

echo "PASS: service ($SECONDS s)"
