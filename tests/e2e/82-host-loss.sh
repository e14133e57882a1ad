#!/usr/bin/env bash
# tsv-vm: pair
# Scenario 3 of issue 19: a target host lost under load, and a target host that stops answering
# while a node is fenced. One RBD volume on two hosts, each node on a dm-multipath device with
# one path through each host.
#  1. Both nodes run fio write+verify on their multipath devices (node1 holds Write Exclusive -
#     Registrants Only, node2 is registered). Host 2's daemon is killed (kill -9, kept down):
#     both nodes' paths through host 2 fail, their I/O goes on through host 1, fio finishes with
#     no verify error, the reservations are unchanged; host 2 starts again and its paths return.
#  2. Host 2's daemon is paused (SIGSTOP) with a write of node2 queued in its ring; node1
#     PREEMPT AND ABORTs node2 through host 1: GOOD only after host 2 did not acknowledge and
#     was blocklisted by Ceph. Host 2 resumes, finds itself fenced, rejoins; node2's queued
#     write never reaches the image (read back through both hosts) and node2 is fenced there.
# VM a (Ceph, host 1, node1) tells the story; VM b (host 2, node2) runs node2's and host 2's steps.
IMAGE_SIZE=512M
. "$(dirname "$0")/lib-two-hosts.sh"

FIO_MB=32
# fio_start OFFSET_MB: write+verify of FIO_MB MiB of this node's device in the background; its
# output in /tmp/fio.out, its exit code in /tmp/fio.rc when it ends.
fio_start() {
    rm -f /tmp/fio.rc
    ( fio --name="$NODE" --filename="$DM" --direct=1 --ioengine=libaio --iodepth=8 --rw=write --bs=64k \
        --offset="$1M" --size="${FIO_MB}M" --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 \
        --output=/tmp/fio.out >/dev/null 2>&1; echo $? >/tmp/fio.rc ) &
    echo $! >/tmp/fio.pid
}
# fio_done: waits for fio_start's fio; fails on any error or verify failure.
fio_done() {
    for _ in $(seq 3000); do [ -e /tmp/fio.rc ] && break; sleep 0.2; done
    [ -e /tmp/fio.rc ] || fail "fio did not finish within 10 minutes"
    grep -E 'err=|WRITE:|READ:' /tmp/fio.out | head -4
    [ "$(cat /tmp/fio.rc)" = 0 ] || { cat /tmp/fio.out; fail "fio exited $(cat /tmp/fio.rc)"; }
    grep -q 'err= 0' /tmp/fio.out || { cat /tmp/fio.out; fail "fio reported errors"; }
    if grep -qiE 'verify:.*(bad|fail)|crc32c.*(wanted|mismatch)' /tmp/fio.out; then cat /tmp/fio.out; fail "fio verify failed"; fi
}
# path_state SDX: the multipath path state of one path (active or failed), as multipathd has it.
path_state() { multipathd show paths raw format "%d %t" 2>/dev/null | awk -v d="${1#/dev/}" '$1 == d { print $2 }'; }
# wait_path SDX STATE SECONDS
wait_path() {
    local t0=$SECONDS
    until [ "$(path_state "$1")" = "$2" ]; do
        ((SECONDS - t0 < $3)) || { multipathd show paths; return 1; }
        sleep 0.5
    done
    echo "$1 $2 after $((SECONDS - t0)) s"
}
daemon_pid() { systemctl show -p MainPID --value "$UNIT"; }
# more_written DEV BASE MIB SECONDS: DEV (sdX or dm-N) gets MIB MiB more than BASE sectors, or
# this node's fio has ended (then its own check says whether all went well).
more_written() {
    local t0=$SECONDS
    until (( $(sectors_written "$1") - $2 >= $3 * 2048 )); do
        [ -e /tmp/fio.rc ] && { echo "fio had finished"; return 0; }
        ((SECONDS - t0 < $4)) || return 1
        sleep 0.2
    done
    echo "$3 MiB more through $1 after $((SECONDS - t0)) s"
}
# journal_count PATTERN: the daemon's journal lines matching PATTERN so far.
journal_count() { journal | grep -cE "$1" || true; }
# wait_more_journal PATTERN BEFORE SECONDS: a new line matching PATTERN (more than BEFORE).
wait_more_journal() {
    local t0=$SECONDS
    until (( $(journal_count "$1") > $2 )); do ((SECONDS - t0 < $3)) || return 1; sleep 0.5; done
    journal | grep -E "$1" | tail -n1
}
# blocklisted_before NS: host 1's journal says it blocklisted a host, at or before NS (epoch ns).
blocklisted_before() {
    journalctl -u "$UNIT" --no-pager -o short-unix --since -5min | grep 'blocklisted it' | tail -n1 >/tmp/blocklisted
    cat /tmp/blocklisted
    [ -s /tmp/blocklisted ] && awk -v t="$1" '{ exit !($1 * 1e9 <= t) }' /tmp/blocklisted
}
# table_now DEV: READ FULL STATUS without the generation (a re-registration of the same key,
# which multipathd does for a path that returns, moves it and changes nothing else).
table_now() { tur "$1"; sg_persist -n --in --read-full-status "$1" | grep -v 'PR generation'; }

two_hosts_story

narrate "Both nodes register on every path; node1 holds Write Exclusive - Registrants Only"
step node1 "REGISTER 0xa1 on both paths (mpathpersist)" GOOD mpath_prout "$DM" --register --param-sark=0xa1
step node2 "REGISTER 0xb2 on both paths (mpathpersist)" GOOD node2 'mpath_prout "$DM" --register --param-sark=0xb2'
step node1 "RESERVE WERO with 0xa1 (mpathpersist)" GOOD mpath_prout "$DM" --reserve --param-rk=0xa1 --prout-type=5
table_now "$P1" >/tmp/table.before
sed 's/^/  /' /tmp/table.before

narrate "1. Host 2's daemon is killed under fio write+verify from both nodes"
fio_start 0
node2 "fio_start 256" >/dev/null
s0=$(sectors_written "$DM_DEV")
step node1 "fio has written 4 MiB" GOOD more_written "$DM_DEV" "$s0" 4 300
[ ! -e /tmp/fio.rc ] || fail "fio had finished before the kill: make FIO_MB larger"
t_kill=$(date +%s%N)
# Kept down (no restart by systemd) until both nodes have failed over.
step host2 "kill -9 the daemon (Restart=no for now)" GOOD node2 'mkdir -p /run/systemd/system/$UNIT.d &&
    printf "[Service]\nRestart=no\n" >/run/systemd/system/$UNIT.d/down.conf && systemctl daemon-reload &&
    pid=$(daemon_pid) && kill -9 $pid && echo "killed $pid"'
step node1 "path via host 2 ($P2) fails" GOOD wait_path "$P2" failed 180
step node2 "path via host 2 fails" GOOD node2 'wait_path "$P2" failed 180' 200
echo "  both nodes failed over $(ms_since "$t_kill") ms after the kill"
step node1 "I/O goes on through host 1 alone" GOOD more_written "$P1" "$(sectors_written "$P1")" 1 120
sed 's/^/  /' /tmp/step.out

narrate "Host 2 starts again; its paths return"
step host2 "systemctl start (the daemon adopts its rings)" GOOD node2 'rm -f /run/systemd/system/$UNIT.d/down.conf &&
    systemctl daemon-reload && service_start start'
step node1 "path via host 2 is active again" GOOD wait_path "$P2" active 180
step node2 "path via host 2 is active again" GOOD node2 'wait_path "$P2" active 180' 200
step node1 "fio: written and verified, no error" GOOD fio_done
step node2 "fio: written and verified, no error" GOOD node2 fio_done 700
table_now "$P1" >/tmp/table.after
check node1 "reservations unchanged (READ FULL STATUS)" diff /tmp/table.before /tmp/table.after
check node1 "the same table through host 2" eval 'table_now "$P2" | diff /tmp/table.after -'

narrate "2. Host 2 stops answering (SIGSTOP) with node2's write queued; node1 preempts through host 1"
step node2 "WRITE LBA 900000 ('P') via host 2" GOOD node2 'write_page "$P2" 900000 P'
step host2 "SIGSTOP the daemon" GOOD node2 'kill -STOP $(daemon_pid)'
# node2's write now waits in host 2's ring; it was admitted by nobody yet.
step node2 "WRITE LBA 900000 ('Q') via host 2, queued" GOOD node2 '(scsi_write "$P2" 900000 Q; echo $? >/tmp/queued.rc) >/tmp/queued.out 2>&1 &
    sleep 2; [ ! -e /tmp/queued.rc ]'
tur "$P1"
t0=$(date +%s%N)
step node1 "PREEMPT AND ABORT 0xb2 via host 1" GOOD prout "$P1" --preempt-abort --param-rk=0xa1 --param-sark=0xb2 --prout-type=5
t_good=$(date +%s%N)
# Resumed at once: a daemon stopped for WatchdogSec (30 s) would be killed by systemd.
rejoined=$(node2 'journal_count "rejoined as client"')
step host2 "SIGCONT the daemon" GOOD node2 'kill -CONT $(daemon_pid)'
took=$(( (t_good - t0) / 1000000 ))
echo "  GOOD after $took ms"
check node1 "host 1 blocklisted host 2 before GOOD" blocklisted_before "$t_good"
sed 's/^/  host 1: /' /tmp/blocklisted
check node1 "GOOD only after the 5 s acknowledgement timeout" test "$took" -ge 5000
check node1 "Ceph's blocklist names host 2 (10.99.0.2)" eval 'ceph -c /var/tmp/tsv-ceph/ceph.conf osd blocklist ls 2>&1 | grep "^10.99.0.2:"'

narrate "Host 2 resumes: fenced, it rejoins before serving again"
step host2 "logs that it was fenced and rejoined" GOOD node2 "wait_more_journal 'rejoined as client' $rejoined 120"
step node2 "the queued write did not succeed" GOOD node2 'for _ in $(seq 600); do [ -e /tmp/queued.rc ] && break; sleep 0.2; done;
    cat /tmp/queued.out; [ -e /tmp/queued.rc ] && [ "$(cat /tmp/queued.rc)" != 0 ]'
echo "  node2's queued write ended with exit $(node2 'cat /tmp/queued.rc') (24: RESERVATION CONFLICT, 2: CHECK CONDITION)"
step node1 "READ LBA 900000 via host 1" GOOD scsi_read "$P1" 900000
check node1 "it holds 'P': the queued 'Q' never reached the image" same_page /tmp/read.out P
step node1 "READ LBA 900000 via host 2 (serving again)" GOOD eval 'tur "$P2"; scsi_read "$P2" 900000'
check node1 "host 2 reads 'P' too" same_page /tmp/read.out P
step node2 "WRITE LBA 900001 via host 2" "RESERVATION CONFLICT" node2 'write_page "$P2" 900001 R'
step node2 "WRITE LBA 900002 via host 1" "RESERVATION CONFLICT" node2 'write_page "$P1" 900002 R'
step node1 "WRITE LBA 900003 via multipath (holder)" GOOD dm_write "$DM" 900003 S

two_hosts_end
echo
echo "host loss: failover under fio with nothing lost; a silent host is blocklisted before GOOD"
