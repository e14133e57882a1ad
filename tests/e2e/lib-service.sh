# Helpers for guest tests that run the daemon as the systemd service (sourced after lib.sh).
UNIT=tcmu-shared-volume.service

# install_service: the repository's unit with ExecStart at /repo/out/bin, its D-Bus policy, and
# tcmu-runner masked (it would take org.kernel.TCMUService1 and the netlink replies).
install_service() {
    sed "s|^ExecStart=.*|ExecStart=$REPO/out/bin/tcmu-shared-volume|" \
        "$REPO/systemd/tcmu-shared-volume.service" >/etc/systemd/system/$UNIT
    cp "$REPO/systemd/org.kernel.TCMUService1.conf" /etc/dbus-1/system.d/
    # Debian's tcmu-runner ships an activation file for the same name: targetcli would start it.
    rm -f /usr/share/dbus-1/system-services/org.kernel.TCMUService1.service
    systemctl mask tcmu-runner.service >/dev/null 2>&1 || true
    systemctl daemon-reload
    systemctl reload dbus
    targetcli set global auto_save_on_exit=false >/dev/null
}

# service_start VERB: systemctl VERB the unit (start, restart), print how long READY=1 took.
service_start() {
    local t0; t0=$(date +%s%N)
    systemctl "$1" "$UNIT" || { journalctl -u "$UNIT" --no-pager | tail -30; fail "systemctl $1 $UNIT"; }
    echo "systemctl $1: READY after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
    [ "$(systemctl is-active "$UNIT")" = active ] || fail "$UNIT is not active after $1"
}

journal() { journalctl -u "$UNIT" --no-pager -o cat "$@"; }

# wait_journal PATTERN [SECONDS]: the daemon logged a line matching PATTERN (grep -E).
wait_journal() {
    local pat=$1 n=${2:-30}
    for _ in $(seq 1 $((n * 5))); do
        journal | grep -qE "$pat" && return 0
        sleep 0.2
    done
    fail "no journal line matching '$pat' within ${n}s"
}

service_diagnostics() {
    echo "-- diagnostics --"
    systemctl status "$UNIT" --no-pager 2>&1 | head -20
    journalctl -u "$UNIT" --no-pager 2>&1 | tail -50
    targetcli ls / 2>&1
    dmesg | tail -25
}

# new_disk BEFORE: waits for one /dev/sdX not in BEFORE (a list from sd_disks); prints it.
new_disk() {
    local before=$1 new
    for _ in $(seq 1 150); do
        udevadm settle 2>/dev/null || true
        new=$(comm -13 <(echo "$before") <(sd_disks) | head -n1)
        [ -n "$new" ] && { echo "/dev/$new"; return 0; }
        sleep 0.2
    done
    fail "no new /dev/sdX appeared"
}

vpd80() { sg_inq -p 0x80 "$1" 2>/dev/null | sed -n 's/.*Unit serial number: *//p'; }

TSVCTL=${TSVCTL:-$REPO/out/bin/tsvctl}

# tsv ARGS...: tsvctl, failing the test on a non-zero exit; output in $out.
tsv() {
    local rc
    out=$("$TSVCTL" "$@" 2>&1) && rc=0 || rc=$?
    [ "$rc" = 0 ] || fail "tsvctl $*: exit $rc: $out"
    echo "$out"
}

# tsv_fails WANT_RC ARGS...: tsvctl must exit WANT_RC with exactly one line on stderr and
# leave LIO's configuration as it was.
tsv_fails() {
    local want=$1 rc before after; shift
    before=$(targetcli ls / 2>&1)
    "$TSVCTL" "$@" >/tmp/tsv.out 2>/tmp/tsv.err && rc=0 || rc=$?
    after=$(targetcli ls / 2>&1)
    [ "$rc" = "$want" ] || fail "tsvctl $*: exit $rc, expected $want; stderr: $(cat /tmp/tsv.err)"
    [ "$(wc -l </tmp/tsv.err)" = 1 ] || fail "tsvctl $*: stderr is not one line: $(cat /tmp/tsv.err)"
    grep -q '^tsvctl: ' /tmp/tsv.err || fail "tsvctl $*: stderr does not start with 'tsvctl: '"
    [ "$before" = "$after" ] || { diff <(echo "$before") <(echo "$after"); fail "tsvctl $* changed LIO's configuration"; }
    ok "tsvctl $* → exit $rc: $(cat /tmp/tsv.err)"
}
