#!/usr/bin/env bash
# Issue 4 on a real kernel: the volume's own reservation table across two tcm_loop paths,
# including PREEMPT AND ABORT through tcm_loop (which deadlocks LIO's in-kernel PR on 6.1)
# and the state after a daemon restart.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-reservations.sh"
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

restart_daemon() { stop_daemon; start_daemon; }
reservation_checks "$N1" "$N2" 'naa.5001405000001001\|0x5001405000001001' restart_daemon
echo "reservations: all checks passed"
