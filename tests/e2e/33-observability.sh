#!/usr/bin/env bash
# Issue 21 on a real kernel: the metrics endpoint (off by default, on with metrics_listen) is
# scraped during fio and its counters match fio's I/O within 1 %; a PREEMPT AND ABORT is one
# journal entry that `tsvctl pr history` shows with both nexuses; `tsvctl status --watch` runs.
. "$(dirname "$0")/lib.sh"
trap 'loop_cleanup; stop_daemon' EXIT
TSVCTL=$REPO/out/bin/tsvctl
PORT=9753
CONF=/etc/tcmu-shared-volume/tcmu-shared-volume.conf

# scrape: GET /metrics over bash's /dev/tcp (no curl in the image); the body on stdout.
scrape() {
    exec 3<>"/dev/tcp/127.0.0.1/$PORT" || return 1
    printf 'GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n' >&3
    sed '1,/^\r$/d' <&3
    exec 3<&-
}
# metric FILE NAME PATH_SUFFIX: the value of NAME for the path whose backstore ends in PATH_SUFFIX.
metric() { awk -v n="$2" -v p="$3\"" 'index($0, n "{") == 1 && index($0, p) { print $NF }' "$1"; }

load_modules
rm -f "$CONF" /var/tmp/obs.img

say "metrics are off by default"
start_daemon
if scrape >/dev/null 2>&1; then fail "something answers on 127.0.0.1:$PORT without metrics_listen"; fi
stop_daemon
ok "no endpoint without metrics_listen"

say "metrics_listen = 127.0.0.1:$PORT"
mkdir -p "$(dirname "$CONF")"
echo "metrics_listen = 127.0.0.1:$PORT" > "$CONF"
start_daemon
grep -q "metrics: serving Prometheus text format on 127.0.0.1:$PORT" /tmp/daemon.log || fail "daemon did not start the endpoint"
A=$(make_backstore obs-a "/var/tmp/obs.img;size=256M" $((256 << 20)))
B=$(make_backstore obs-b "/var/tmp/obs.img;size=256M" $((256 << 20)))
N1=$(loop_export "$A" naa.5001405000001001)
N2=$(loop_export "$B" naa.5001405000002002)
tur "$N1"; tur "$N2"
udevadm settle 2>/dev/null || true
scrape > /tmp/m0 || fail "scrape failed"
grep -q '^# TYPE tsv_path_command_duration_seconds histogram' /tmp/m0 || { cat /tmp/m0; fail "no latency histogram"; }
grep -q '^tsv_paths 2$' /tmp/m0 || { cat /tmp/m0; fail "tsv_paths is not 2"; }
ok "endpoint serves $(grep -c -v '^#' /tmp/m0) samples"

say "fio on node1 while scraping"
# udev re-probes a disk (blkid reads) when a writer closes it: hold its events until the last
# scrape, so that the counters see fio's I/O alone.
udevadm control --stop-exec-queue
fio --name=obs --filename="$N1" --direct=1 --ioengine=libaio --rw=randrw --rwmixread=50 --bs=4k \
    --iodepth=8 --size=128M --io_size=24M --randrepeat=0 --output-format=json --output=/tmp/fio.json &
FIO=$!
# Scrape until fio's I/O shows (fio may take seconds to start under TCG), while it still runs.
mid=0
while kill -0 "$FIO" 2>/dev/null; do
    scrape > /tmp/m1 || fail "scrape during fio failed"
    mid=$(( $(metric /tmp/m1 tsv_path_commands_total obs-a) - $(metric /tmp/m0 tsv_path_commands_total obs-a) ))
    [ "$mid" -gt 0 ] && break
    sleep 1
done
wait "$FIO" || { cat /tmp/fio.json; fail "fio failed"; }
scrape > /tmp/m2 || fail "scrape after fio failed"
udevadm control --start-exec-queue
read -r fio_r fio_w fio_rb fio_wb < <(python3 -c '
import json; j = json.load(open("/tmp/fio.json"))["jobs"][0]
print(j["read"]["total_ios"], j["write"]["total_ios"], j["read"]["io_bytes"], j["write"]["io_bytes"])')
echo "fio: $fio_r reads, $fio_w writes, $fio_rb + $fio_wb bytes"
delta() { echo $(( $(metric /tmp/m2 "$1" obs-a | cut -d. -f1) - $(metric /tmp/m0 "$1" obs-a | cut -d. -f1) )); }
[ "$mid" -gt 0 ] || fail "counters did not move while fio ran"
ok "commands counted while fio ran: $mid"
within() { # within WHAT METRIC_DELTA FIO_VALUE: 1 %
    python3 -c "import sys; m, f = $2, $3; sys.exit(0 if f > 0 and abs(m - f) <= 0.01 * f else 1)" \
        || fail "$1: metrics $2, fio $3 (more than 1 % apart)"
    ok "$1: metrics $2, fio $3"
}
within "read commands" "$(delta tsv_path_read_commands_total)" "$fio_r"
within "write commands" "$(delta tsv_path_write_commands_total)" "$fio_w"
within "bytes read" "$(delta tsv_path_read_bytes_total)" "$fio_rb"
within "bytes written" "$(delta tsv_path_written_bytes_total)" "$fio_wb"
count=$(metric /tmp/m2 tsv_path_command_duration_seconds_count obs-a)
[ "$count" = "$(metric /tmp/m2 tsv_path_commands_total obs-a)" ] || fail "histogram count $count differs from commands"
grep 'tsv_path_command_duration_seconds_bucket.*obs-a' /tmp/m2 | head -8
grep -E '^tsv_(uptime_seconds|resident_memory_bytes|threads) ' /tmp/m2

say "status --watch"
"$TSVCTL" status --watch --count 2 --interval 1 > /tmp/watch.out 2>&1 || { cat /tmp/watch.out; fail "tsvctl status --watch"; }
cat /tmp/watch.out
grep -qE 'obs-a +naa.5001405000001001' /tmp/watch.out || fail "watch does not show node1's path"

say "PREEMPT AND ABORT lands in the journal and in tsvctl pr history"
sg_persist -n --out --register --param-sark=0x1 "$N1" || fail "register node1"
sg_persist -n --out --register --param-sark=0x2 "$N2" || fail "register node2"
sg_persist -n --out --reserve --param-rk=0x1 --prout-type=5 "$N1" || fail "reserve"
timeout 60 sg_persist -n --out --preempt-abort --param-rk=0x2 --param-sark=0x1 --prout-type=5 "$N2" || fail "preempt and abort"
for _ in $(seq 1 25); do
    "$TSVCTL" pr history /var/tmp/obs.img > /tmp/history.out 2>&1 || { cat /tmp/history.out; fail "tsvctl pr history"; }
    grep -q 'PREEMPT AND ABORT' /tmp/history.out && break
    sleep 0.2
done
cat /tmp/history.out
row=$(grep 'PREEMPT AND ABORT' /tmp/history.out) || fail "no PREEMPT AND ABORT in the history"
case "$row" in *naa.5001405000002002*naa.5001405000001001*) ;; *) fail "the row does not name node2 then node1: $row" ;; esac
[ "$(grep -c 'REGISTER ' /tmp/history.out)" -ge 2 ] || fail "registrations missing from the history"
journalctl --no-pager -o verbose SERVICE_ACTION="PREEMPT AND ABORT" VOLUME=/var/tmp/obs.img | grep -E 'MESSAGE=|RESULT=|GENERATION='
scrape > /tmp/m3
grep -E '^tsv_volume_(registrations|reservation_type|pr_generation)' /tmp/m3
grep -qE '^tsv_volume_registrations\{[^}]*\} 1$' /tmp/m3 || fail "tsv_volume_registrations is not 1 after node1 was preempted"
echo "observability: all checks passed"
