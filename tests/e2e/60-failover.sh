#!/usr/bin/env bash
# Scenario 1 (and `make demo`): a database fails over from node1 to node2 on one shared volume
# exported over iSCSI to two initiator names, each its own path. The flow Azure documents for
# shared disks: both register, node1 reserves Write Exclusive - Registrants Only and writes,
# node2 unregisters and is refused, node1 dies, node2 preempts and aborts node1, node1 is fenced,
# node2 writes, node1's data is intact. Every answer is checked; the summary table is printed.
. "$(dirname "$0")/lib.sh"
# The secure default: each node logs in with mutual CHAP, so no host can claim a node's name.
ISCSI_CHAP=mutual
. "$(dirname "$0")/lib-iscsi.sh"
. "$(dirname "$0")/lib-story.sh"
trap 'iscsi_cleanup "$TARGET"; stop_daemon' EXIT

TARGET=iqn.2026-11.org.example:shared-db
NODE1=iqn.2026-11.org.example:node1
NODE2=iqn.2026-11.org.example:node2

narrate "Setting up: the tcmu-shared-volume daemon, one 1 GiB sparse volume, two paths over iSCSI with mutual CHAP"
load_modules
start_daemon
rm -f /var/tmp/shared-db.img
P1=$(make_backstore db-node1 "/var/tmp/shared-db.img;size=1G" $((1 << 30)))
P2=$(make_backstore db-node2 "/var/tmp/shared-db.img;size=1G" $((1 << 30)))
iscsi_export "$TARGET" "$NODE1=$P1" "$NODE2=$P2"
N1=$(iscsi_login "$TARGET" tsv-node1 "$NODE1")
N2=$(iscsi_login "$TARGET" tsv-node2 "$NODE2")
echo "  node1 ($NODE1) sees the volume as $N1"
echo "  node2 ($NODE2) sees the volume as $N2"
s1=$(sg_vpd -p 0x80 "$N1" | tail -n1); s2=$(sg_vpd -p 0x80 "$N2" | tail -n1)
echo "  both see one disk:$s1"
[ "$s1" = "$s2" ] || fail "the two paths report different serials: $s1 / $s2"

narrate "1. Both nodes register their keys (node1: 0xa1, node2: 0xb2)"
step node1 "REGISTER key 0xa1" GOOD prout "$N1" --register --param-sark=0xa1
step node2 "REGISTER key 0xb2" GOOD prout "$N2" --register --param-sark=0xb2
echo "  keys on the volume: $(key_list "$N1")"
sg_persist -n --in --read-full-status "$N2" > /tmp/fullstatus
grep -o 'iqn[^ ,]*' /tmp/fullstatus | sed 's/^/  READ FULL STATUS names: /'
grep -q "$NODE1" /tmp/fullstatus && grep -q "$NODE2" /tmp/fullstatus \
    || { cat /tmp/fullstatus; fail "READ FULL STATUS does not name both initiators"; }

narrate "2. node1 becomes the active database: RESERVE Write Exclusive - Registrants Only"
step node1 "RESERVE type WERO with key 0xa1" GOOD prout "$N1" --reserve --param-rk=0xa1 --prout-type=5
sg_persist -n --in --read-reservation "$N2" | sed 's/^/  node2 reads: /'

narrate "3. node1 writes; node2, registered, may write too (registrants only)"
step node1 "WRITE LBA 1000 (database page, 'A')" GOOD write_page "$N1" 1000 A
step node2 "WRITE LBA 2000 (registrant, 'B')" GOOD write_page "$N2" 2000 B

narrate "4. node2 unregisters: now it may read but not write"
step node2 "REGISTER key 0 (unregister 0xb2)" GOOD prout "$N2" --register --param-rk=0xb2 --param-sark=0
step node2 "WRITE LBA 2001" "RESERVATION CONFLICT" write_page "$N2" 2001 C
step node2 "READ LBA 1000" GOOD scsi_read "$N2" 1000

narrate "5. node1 dies. node2 takes over: registers again and PREEMPT AND ABORTs node1's key"
step node2 "REGISTER key 0xb2" GOOD prout "$N2" --register --param-sark=0xb2
step node2 "PREEMPT AND ABORT key 0xa1, type WERO" GOOD prout "$N2" --preempt-abort --param-rk=0xb2 --param-sark=0xa1 --prout-type=5
echo "  keys on the volume: $(key_list "$N2")"
sg_persist -n --in --read-reservation "$N2" | sed 's/^/  node2 reads: /'

narrate "6. node1 comes back to life and tries to write: it is fenced"
step node1 "WRITE LBA 1001" "RESERVATION CONFLICT" write_page "$N1" 1001 D

narrate "7. node2 is the database now"
step node2 "WRITE LBA 3000 ('E')" GOOD write_page "$N2" 3000 E
step node2 "READ LBA 1000 (node1's page from before failover)" GOOD scsi_read "$N2" 1000
check node2 "node1's page from before failover is intact" same_page /tmp/read.out A

summary
echo
echo "failover: every step answered as SPC-4 says"
