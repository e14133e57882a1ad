#!/usr/bin/env bash
# tsv-vm: pair
# Scenario 2 of issue 19: Pacemaker's fence agents, as installed, against one RBD volume served
# by two target hosts, each node on a dm-multipath device with one path through each host.
# fence_mpath (mpathpersist): on, status and off of node2 by node1; fence_scsi on the multipath
# device (it registers on every path): the same cycle. A fenced node cannot write through host 1,
# host 2 or its multipath device, and its watchdog check (fence_*_check) reports it.
# VM a (Ceph, host 1, node1) tells the story; VM b (host 2, node2) runs node2's steps for it.
. "$(dirname "$0")/lib-two-hosts.sh"

command -v fence_mpath >/dev/null && command -v fence_scsi >/dev/null || fail "fence-agents is not installed"

# agent NAME ARGS...: a fence agent with a time limit; 0 when it did what was asked.
agent() { local a=$1; shift; timeout 120 "$a" "$@"; }
# status_is NAME STATE ARGS...: the agent's "status" action reports STATE (ON or OFF).
status_is() {
    local a=$1 want=$2 out; shift 2
    out=$(timeout 120 "$a" -o status "$@" 2>&1) || true
    echo "$out"
    grep -qi "Status: $want" <<<"$out"
}
# check_fails CHECK: the watchdog helper exits non-zero (the node's key is gone: it would reboot).
check_fails() { if "$1"; then return 1; fi; }

two_hosts_story

narrate "The volume: RBD image $POOL/$IMAGE on host 1 and host 2; node1 $DM, node2 $(node2 'echo $DM')"

# cycle AGENT KEY1 KEY2 FIRST_LBA: on, status, off and on again with one agent; KEYn are node n's
# keys as the agent takes them; FIRST_LBA keeps each cycle's writes apart.
cycle() {
    local a=$1 k1=$2 k2=$3 lba=$4 check=/usr/share/cluster/${1}_check
    narrate "$a: node1 and node2 unfence (on) with keys $k1 and $k2"
    step node1 "$a -o on -k $k1 -d \$DM" GOOD agent "$a" -o on -k "$k1" -d "$DM"
    step node2 "$a -o on -k $k2 -d \$DM" GOOD node2 "agent $a -o on -k $k2 -d \"\$DM\""
    check node1 "$a: both keys on both hosts' paths" registrations_are "0x$k1" 2 "0x$k2" 2
    step node1 "READ RESERVATION via host 2: $k1 holds WERO" GOOD holder_is "$P2" "0x$k1"
    step node1 "WRITE LBA $lba via multipath" GOOD dm_write "$DM" "$lba" A
    step node2 "WRITE LBA $((lba + 1)) via multipath (registrant)" GOOD node2 "dm_write \"\$DM\" $((lba + 1)) B"

    narrate "$a: status"
    check node1 "$a -o status -k $k2: ON" status_is "$a" ON -k "$k2" -d "$DM"
    check node1 "$a -o status -k $k1: ON" status_is "$a" ON -k "$k1" -d "$DM"
    check node1 "$a -o status -k 3c: OFF (no such key)" status_is "$a" OFF -k 3c -d "$DM"
    check node2 "${a}_check on node2: key present" node2 "$check"

    narrate "$a: node1 fences node2 (off: PREEMPT AND ABORT of $k2)"
    t0=$(date +%s%N)
    step node1 "$a -o off -k $k2 -d \$DM" GOOD agent "$a" -o off -k "$k2" -d "$DM"
    echo "  fenced in $(ms_since "$t0") ms"
    check node1 "$a -o status -k $k2: OFF" status_is "$a" OFF -k "$k2" -d "$DM"
    check node1 "$k2 gone from both hosts, $k1 on both" registrations_are "0x$k1" 2 "0x$k2" 0
    step node2 "WRITE LBA $((lba + 2)) via host 1" "RESERVATION CONFLICT" node2 "write_page \"\$P1\" $((lba + 2)) C"
    step node2 "WRITE LBA $((lba + 3)) via host 2" "RESERVATION CONFLICT" node2 "write_page \"\$P2\" $((lba + 3)) C"
    step node2 "WRITE LBA $((lba + 4)) via multipath" "RESERVATION CONFLICT" node2 "dm_write \"\$DM\" $((lba + 4)) C"
    step node2 "READ LBA $lba via multipath (WERO: reads allowed)" GOOD node2 "dm_read \"\$DM\" $lba && same_page /tmp/read.out A"
    check node2 "${a}_check on node2 fails (watchdog reboots)" node2 "check_fails $check"
    check node1 "${a}_check on node1 passes" "$check"
    step node1 "WRITE LBA $((lba + 5)) via multipath (holder)" GOOD dm_write "$DM" "$((lba + 5))" D
    for l in $((lba + 2)) $((lba + 3)) $((lba + 4)); do
        step node1 "READ LBA $l: the fenced write did not land" GOOD eval "dm_read \"$DM\" $l && ! same_page /tmp/read.out C"
    done

    narrate "$a: node2 comes back (on again) and rejoins"
    step node2 "$a -o on -k $k2 -d \$DM" GOOD node2 "agent $a -o on -k $k2 -d \"\$DM\""
    step node2 "WRITE LBA $((lba + 6)) via multipath" GOOD node2 "dm_write \"\$DM\" $((lba + 6)) E"
    check node1 "both keys on both hosts' paths again" registrations_are "0x$k1" 2 "0x$k2" 2
}

cycle fence_mpath a1 b2 1000

narrate "A clean table for the next agent: node1 clears every registration and the reservation"
step node1 "PR OUT CLEAR with a1 (mpathpersist)" GOOD mpath_prout "$DM" --clear --param-rk=0xa1
check node1 "no registrations on either host" registrations_are 0xa1 0 0xb2 0

cycle fence_scsi 1 2 2000

two_hosts_end
echo
echo "two-host fencing: fence_mpath and fence_scsi fence node2 through both hosts"
