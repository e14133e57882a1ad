#!/usr/bin/env bash
# tsv-vm: pair
# Scenario 1 of 60-failover across two target hosts (issue 19): one RBD volume served by the
# daemon on two hosts with one reservation table, each node on a dm-multipath device with one
# path through each host. Both nodes register on every path (mpathpersist), node1 reserves
# Write Exclusive - Registrants Only, node1 dies, node2 PREEMPT AND ABORTs it through host 2, and
# node1's writes conflict through host 1, through host 2 and through its multipath device.
# VM a (Ceph, host 1, node1) tells the story; VM b (host 2, node2) runs node2's steps for it.
. "$(dirname "$0")/lib-two-hosts.sh"

two_hosts_story

narrate "The volume: RBD image $POOL/$IMAGE, host 1 (10.99.0.1) and host 2 (10.99.0.2), one table in RADOS"
echo "  node1: $DM = $P1 (host 1) + $P2 (host 2)"
echo "  node2: $(node2 'echo "$DM = $P1 (host 1) + $P2 (host 2)"')"
multipath -ll 2>&1 | sed "s/^/  /" || true

narrate "1. Both nodes register their key on every path (mpathpersist: one I_T nexus per host)"
step node1 "REGISTER 0xa1 on both paths (mpathpersist)" GOOD mpath_prout "$DM" --register --param-sark=0xa1
step node2 "REGISTER 0xb2 on both paths (mpathpersist)" GOOD node2 'mpath_prout "$DM" --register --param-sark=0xb2'
sg_persist -n --in --read-full-status "$P2" >/tmp/fullstatus
sed 's/^/  host 2 reads: /' /tmp/fullstatus
check node1 "READ FULL STATUS via host 2: 4 nexuses, 2 per key" registrations_are 0xa1 2 0xb2 2
check node2 "READ KEYS via host 1 = via host 2 (one table)" same_keys_on_both_hosts

narrate "2. node1 becomes the active database: RESERVE Write Exclusive - Registrants Only"
step node1 "RESERVE WERO with 0xa1 (mpathpersist)" GOOD mpath_prout "$DM" --reserve --param-rk=0xa1 --prout-type=5
step node2 "READ RESERVATION via host 2: 0xa1 holds WERO" GOOD node2 'holder_is "$P2" 0xa1'

narrate "3. Both write through their multipath devices (registrants only)"
step node1 "WRITE LBA 1000 ('A') via multipath" GOOD dm_write "$DM" 1000 A
step node2 "WRITE LBA 2000 ('B') via multipath" GOOD node2 'dm_write "$DM" 2000 B'

narrate "4. node1 dies (its sessions stay: a hung node). node2 PREEMPT AND ABORTs it through host 2"
t0=$(date +%s%N)
step node2 "PREEMPT AND ABORT 0xa1, WERO, via host 2" GOOD node2 'prout "$P2" --preempt-abort --param-rk=0xb2 --param-sark=0xa1 --prout-type=5'
echo "  PREEMPT AND ABORT took $(ms_since "$t0") ms (both hosts applied it before GOOD)"
echo "  keys via host 1: $(key_list "$P1")"
check node1 "node1's key is gone from both hosts" registrations_are 0xa1 0 0xb2 2
step node1 "READ RESERVATION via host 1: 0xb2 holds WERO" GOOD holder_is "$P1" 0xb2

narrate "5. node1 comes back to life and writes: fenced through every host"
step node1 "WRITE LBA 1001 via host 1" "RESERVATION CONFLICT" write_page "$P1" 1001 D
step node1 "WRITE LBA 1002 via host 2" "RESERVATION CONFLICT" write_page "$P2" 1002 D
step node1 "WRITE LBA 1003 via multipath" "RESERVATION CONFLICT" dm_write "$DM" 1003 D
step node1 "READ LBA 2000 via multipath (WERO: reads allowed)" GOOD dm_read "$DM" 2000
check node1 "node1 reads node2's page 'B'" same_page /tmp/read.out B

narrate "6. node2 is the database now"
step node2 "WRITE LBA 3000 ('E') via multipath" GOOD node2 'dm_write "$DM" 3000 E'
step node2 "READ LBA 1000 via multipath (node1's page)" GOOD node2 'dm_read "$DM" 1000 && same_page /tmp/read.out A'
for lba in 1001 1002 1003; do
    step node2 "READ LBA $lba: none of node1's fenced writes landed" GOOD node2 "dm_read \"\$DM\" $lba && ! same_page /tmp/read.out D"
done

two_hosts_end
echo
echo "two-host failover: every step answered as SPC-4 says, through both hosts"
