# Shared helpers for guest-side e2e scripts (sourced; runs inside the test VM as root).
# The repository is mounted at /repo; published binaries are in /repo/out/bin.
set -euo pipefail

REPO=${REPO:-/repo}
CFS=/sys/kernel/config/target
DAEMON_PID=
STATE_DIR=${STATE_DIR:-/var/lib/tcmu-shared-volume}

say()  { printf '\n=== [%s] %s\n' "$(date +%T)" "$*"; }
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    if [ -s /tmp/daemon.log ]; then echo "--- daemon log (tail)" >&2; tail -n 40 /tmp/daemon.log >&2; fi
    echo "--- kernel log (tail)" >&2; dmesg | tail -n 25 >&2
    exit 1
}
ok()   { printf 'ok: %s\n' "$*"; }

load_modules() {
    modprobe target_core_user
    modprobe tcm_loop
    modprobe iscsi_target_mod 2>/dev/null || true
    mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
}

# Starts the daemon in the background (not under systemd) with its log in /tmp/daemon.log.
start_daemon() {
    local t0; t0=$(date +%s%N)
    mkdir -p "$STATE_DIR"
    "${DAEMON_BIN:-$REPO/out/bin/tcmu-shared-volume}" >/tmp/daemon.log 2>&1 &
    DAEMON_PID=$!
    for _ in $(seq 1 300); do  # 60 s: the JIT is slow under TCG
        grep -q "ready:" /tmp/daemon.log 2>/dev/null && { echo "daemon ready after $(( ($(date +%s%N) - t0) / 1000000 )) ms"; return 0; }
        kill -0 "$DAEMON_PID" 2>/dev/null || { cat /tmp/daemon.log; fail "daemon exited during start"; }
        sleep 0.2
    done
    cat /tmp/daemon.log; fail "daemon did not report ready"
}

stop_daemon() {
    [ -n "$DAEMON_PID" ] || return 0
    kill -TERM "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=
}

# make_backstore NAME CFGSTRING SIZE_BYTES: a TCMU backstore created through configfs the way
# rtslib does it, with nl_reply_supported=-1 so that enable never waits on netlink.
make_backstore() {
    local name=$1 cfg=$2 size=$3 idx=0
    while [ -e "$CFS/core/user_$idx" ]; do idx=$((idx + 1)); done
    mkdir -p "$CFS/core/user_$idx/$name"
    local d="$CFS/core/user_$idx/$name"
    echo -n "dev_config=sharedvol/$cfg" > "$d/control"
    echo -n "dev_size=$size" > "$d/control"
    echo -n "nl_reply_supported=-1" > "$d/control"
    echo 1 > "$d/enable"
    # The daemon adopts it from the netlink event; linking a LUN before that would leave the
    # kernel's SCSI scan waiting in an unserved ring (docs/testing.md §4).
    if [ -n "$DAEMON_PID" ]; then
        for _ in $(seq 1 300); do
            grep -q "user_$idx/$name: serving" /tmp/daemon.log && break
            sleep 0.2
        done
        grep -q "user_$idx/$name: serving" /tmp/daemon.log || fail "daemon did not adopt user_$idx/$name"
    fi
    echo "$d"
}

sd_disks() { ls /sys/block | grep -E '^sd[a-z]+$' | sort || true; }

# loop_export BACKSTORE_DIR WWN: one tcm_loop target whose nexus is WWN; prints the new /dev/sdX.
loop_export() {
    local so=$1 wwn=$2 before after t
    before=$(sd_disks)
    t="$CFS/loopback/$wwn/tpgt_1"
    mkdir -p "$t/lun/lun_0"
    echo -n "$wwn" > "$t/nexus"     # the nexus before the LUN (docs/testing.md §4)
    ln -s "$so" "$t/lun/lun_0/$(basename "$so")"
    for _ in $(seq 1 150); do
        udevadm settle 2>/dev/null || true
        after=$(sd_disks)
        local new
        new=$(comm -13 <(echo "$before") <(echo "$after") | head -n1)
        if [ -n "$new" ]; then echo "/dev/$new"; return 0; fi
        sleep 0.2
    done
    fail "no disk appeared for $wwn"
}

# loop_cleanup: unlinks every tcm_loop LUN and target. Call it before the daemon stops: a LUN
# whose ring nobody serves keeps the kernel's SYNCHRONIZE CACHE at power-off waiting for minutes.
loop_cleanup() {
    local t l
    for t in "$CFS"/loopback/naa.*/tpgt_1; do
        [ -d "$t" ] || continue
        for l in "$t"/lun/lun_*; do
            [ -d "$l" ] || continue
            find "$l" -maxdepth 1 -type l -delete; rmdir "$l"
        done
        rmdir "$t" "$(dirname "$t")" 2>/dev/null || true
    done
}

# raw_status OUTPUT_FILE RC: sg_raw's exit code is 0 for any SCSI status without sense, so
# the status is read from what it prints: 24 for RESERVATION CONFLICT (sg3_utils' code), else RC.
raw_status() {
    if grep -qi 'reservation conflict' "$1"; then return 24; fi
    if grep -qi 'check condition' "$1"; then [ "$2" != 0 ] && return "$2" || return 2; fi
    return "$2"
}

lba_bytes() { printf '%02x %02x %02x %02x' $(($1>>24&255)) $(($1>>16&255)) $(($1>>8&255)) $(($1&255)); }

# scsi_write DEV LBA [FILLCHAR]: one 512-byte WRITE(10); 0 good, 24 reservation conflict.
scsi_write() {
    local dev=$1 lba=$2 pat=${3:-A} rc
    head -c 512 /dev/zero | tr '\0' "$pat" > /tmp/blk.$$
    sg_raw -v -s 512 -i /tmp/blk.$$ "$dev" 2a 00 $(lba_bytes "$lba") 00 00 01 00 >/tmp/raw.$$ 2>&1 && rc=0 || rc=$?
    rm -f /tmp/blk.$$
    raw_status /tmp/raw.$$ $rc && rc=0 || rc=$?
    rm -f /tmp/raw.$$
    return $rc
}

# scsi_read DEV LBA: one 512-byte READ(10) into /tmp/read.out; 0 good, 24 reservation conflict.
scsi_read() {
    local dev=$1 lba=$2 rc
    sg_raw -v -r 512 -o /tmp/read.out "$dev" 28 00 $(lba_bytes "$lba") 00 00 01 00 >/tmp/raw.$$ 2>&1 && rc=0 || rc=$?
    raw_status /tmp/raw.$$ $rc && rc=0 || rc=$?
    rm -f /tmp/raw.$$
    return $rc
}

expect_rc() { # expect_rc WANT DESCRIPTION CMD...
    local want=$1 what=$2 rc; shift 2
    if "$@"; then rc=0; else rc=$?; fi
    [ "$rc" = "$want" ] || fail "$what: exit $rc, expected $want"
    ok "$what (exit $rc)"
}

# Clears SCSI unit attentions the way fence_scsi does before PR commands.
tur() { sg_turs "$1" >/dev/null 2>&1 || sg_turs "$1" >/dev/null 2>&1 || true; }

# sectors_written DEV: 512-byte sectors written to DEV since boot (/proc/diskstats).
sectors_written() { awk -v d="${1#/dev/}" '$3 == d { print $10 }' /proc/diskstats; }

# wait_written DEV BASE MIB FIO_PID: until MIB MiB more than BASE sectors reached DEV, so that a
# disruption lands while fio writes (a fixed sleep depends on the host's speed); fails if fio
# ends first.
wait_written() {
    local dev=$1 base=$2 mib=$3 pid=$4
    for _ in $(seq 1 300); do
        (( $(sectors_written "$dev") - base >= mib * 2048 )) && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null || { cat /tmp/fio.out; fail "fio ended before $mib MiB were written"; }
}

# fio_verified FIO_PID WHAT: waits for a write+verify fio (output in /tmp/fio.out) and fails
# on any error or verify failure across WHAT.
fio_verified() {
    local pid=$1 what=$2 t0=$SECONDS rc
    wait "$pid" && rc=0 || rc=$?
    echo "fio finished $((SECONDS - t0)) s after $what"
    grep -E 'err=|WRITE:|READ:|verify' /tmp/fio.out | head -6
    [ "$rc" = 0 ] || { cat /tmp/fio.out; fail "fio exit $rc across $what"; }
    grep -q 'err= 0' /tmp/fio.out || { cat /tmp/fio.out; fail "fio reported errors"; }
    grep -qiE 'verify:.*(bad|fail)|crc32c.*(wanted|mismatch)' /tmp/fio.out && { cat /tmp/fio.out; fail "fio verify failed"; }
    return 0
}
