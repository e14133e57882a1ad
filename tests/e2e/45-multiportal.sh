#!/bin/bash
# Guest test, scenario 5 of issue 19: one target host with two portals, multipath over both.
#   export     tsvctl export iscsi --portal 127.0.0.1:3260 --portal 127.0.0.2:3260 with CHAP: one
#              TPG per portal, one backstore per (initiator, TPG); discovery lists both portals
#   paths      node1 logs in through both portals: two sessions, two I_T nexuses, two backstores
#              of one volume; the kernel's ALUA handler attaches (active/optimized), and
#              multipathd (prio alua, group_by_prio) makes one map of the two paths
#   alua       sg_rtpg through every path: one target port group (this host, no host_id: 1),
#              Active/Optimized, listing both ports; VPD 83h of each path names that group and
#              its own port (the TPG's number)
#   register   mpathpersist --out --register registers node1's key on every path (two
#              registrations, READ FULL STATUS names both ports), --reserve takes WERO
#   conflict   node2, another initiator name logged in through both portals without multipath,
#              unregistered: its writes conflict through either portal, its reads pass
#   preempt    node2 registers on both paths and PREEMPTs AND ABORTs node1's key through one:
#              node1's registrations on both paths are gone, its writes through either path and
#              through the map conflict (without failing a path), node2 writes; unexport
source /repo/tests/e2e/lib.sh
source /repo/tests/e2e/lib-service.sh

VOL=/var/tmp/mp.img
TARGET=iqn.2026-12.org.example:mp
NODE1=iqn.2026-12.org.example:node1
NODE2=iqn.2026-12.org.example:node2
PORTALS=(127.0.0.1:3260 127.0.0.2:3260)
SECRETS=/root/chap.secrets
SECRET1=node1-secret-0123
SECRET2=node2-secret-4567
(umask 077; printf '%s\n' "$NODE1 node1 $SECRET1" "$NODE2 node2 $SECRET2" >"$SECRETS")

cleanup() {
    local rc=$?
    set +e
    if ((rc != 0)); then
        service_diagnostics
        multipath -ll 2>&1
        multipathd show paths 2>&1
    fi
    multipath -F >/dev/null 2>&1
    systemctl stop multipathd.socket multipathd.service >/dev/null 2>&1
    iscsiadm -m node --logout >/dev/null 2>&1
    exit "$rc"
}
trap cleanup EXIT

load_modules
install_service
service_start start

say "export one volume through two portals, one TPG each"
tsv volume create "$VOL" --size 256M
tsv export iscsi --volume "$VOL" --target "$TARGET" --initiator "$NODE1" --initiator "$NODE2" \
    --portal "${PORTALS[0]}" --portal "${PORTALS[1]}" --chap-secrets "$SECRETS"
for t in 1 2; do
    tpg=$CFS/iscsi/$TARGET/tpgt_$t
    [ -d "$tpg/np/${PORTALS[t - 1]}" ] || fail "TPG $t does not listen on ${PORTALS[t - 1]}: $(ls "$tpg/np")"
    [ "$(ls "$tpg/np" | wc -l)" = 1 ] || fail "TPG $t has other portals: $(ls "$tpg/np")"
    [ "$(cat "$tpg/attrib/authentication")" = 1 ] || fail "TPG $t does not require CHAP"
    [ "$(ls "$tpg/acls" | sort | tr '\n' ' ')" = "$NODE1 $NODE2 " ] || fail "TPG $t ACLs: $(ls "$tpg/acls")"
done
[ "$(ls -d $CFS/core/user_*/*/ | wc -l)" = 4 ] || fail "expected 4 backstores (2 initiators x 2 TPGs): $(ls -d $CFS/core/user_*/*/)"
ok "two TPGs, one portal each, CHAP on, four backstores"

say "log in: node2 through both portals, then node1 through both with multipathd running"
systemctl start iscsid.service || fail "start iscsid"
for n in 1 2; do
    name=NODE$n
    iscsiadm -m iface -I "tsv-node$n" -o new >/dev/null || fail "iface tsv-node$n"
    iscsiadm -m iface -I "tsv-node$n" -o update -n iface.initiatorname -v "${!name}" >/dev/null || fail "iface name"
done
found=$(iscsiadm -m discovery -t sendtargets -p "${PORTALS[0]}" -I tsv-node1 -I tsv-node2 2>&1) || fail "discovery: $found"
echo "$found"
for t in 1 2; do
    grep -q "^${PORTALS[t - 1]},$t $TARGET\$" <<<"$found" || fail "discovery does not list ${PORTALS[t - 1]} as TPG $t"
done
ok "discovery through one portal lists both, each with its TPG"
login() { # login N PORTAL: node N logs in through PORTAL with its CHAP secret
    local n=$1 portal=$2 secret kv
    secret=SECRET$n
    for kv in authmethod=CHAP "username=node$n" "password=${!secret}"; do
        iscsiadm -m node -T "$TARGET" -p "$portal" -I "tsv-node$n" -o update -n "node.session.auth.${kv%%=*}" -v "${kv#*=}" >/dev/null ||
            fail "CHAP ${kv%%=*} for node$n on $portal"
    done
    iscsiadm -m node -T "$TARGET" -p "$portal" -I "tsv-node$n" --login >/dev/null || fail "login of node$n through $portal"
}
# paths_of INITIATOR: "TPGT /dev/sdX" per session of INITIATOR, once both have their disk.
paths_of() {
    local s blk out
    for _ in $(seq 1 150); do
        udevadm settle 2>/dev/null || true
        out=$(for s in /sys/class/iscsi_session/session*; do
            [ "$(cat "$s/initiatorname" 2>/dev/null)" = "$1" ] || continue
            blk=$(ls "$s"/device/target*/*:*:*:0/block 2>/dev/null | head -n1)
            [ -n "$blk" ] && echo "$(cat "$s/tpgt") /dev/$blk"
        done | sort)
        [ "$(wc -l <<<"$out")" = 2 ] && [ -n "$out" ] && { echo "$out"; return 0; }
        sleep 0.2
    done
    fail "$1 has no disk through both TPGs: $out"
}
login 2 "${PORTALS[0]}"
login 2 "${PORTALS[1]}"
mapfile -t n2 < <(paths_of "$NODE2")
N2_1=${n2[0]#* } N2_2=${n2[1]#* }
[[ ${n2[0]} == "1 "* && ${n2[1]} == "2 "* ]] || fail "node2's sessions are not one per TPG: ${n2[*]}"
echo "node2: TPG 1 $N2_1, TPG 2 $N2_2"

# node2 is another cluster node: its paths must not join node1's map, which has the same WWID.
cat >/etc/multipath.conf <<END
defaults {
    user_friendly_names no
    find_multipaths no
    reservation_key file
}
blacklist {
    devnode "^vd[a-z]"
    devnode "^(${N2_1#/dev/}|${N2_2#/dev/})\$"
}
devices {
    device {
        vendor "TSV"
        product "SharedVolume"
        path_grouping_policy group_by_prio
        prio alua
        hardware_handler "1 alua"
        path_checker tur
        failback immediate
        no_path_retry 6
    }
}
END
systemctl start multipathd.service || fail "start multipathd"
login 1 "${PORTALS[0]}"
login 1 "${PORTALS[1]}"
mapfile -t n1 < <(paths_of "$NODE1")
N1_1=${n1[0]#* } N1_2=${n1[1]#* }
[[ ${n1[0]} == "1 "* && ${n1[1]} == "2 "* ]] || fail "node1's sessions are not one per TPG: ${n1[*]}"
echo "node1: TPG 1 $N1_1, TPG 2 $N1_2"
s=$(vpd80 "$N1_1")
for d in "$N1_2" "$N2_1" "$N2_2"; do [ "$(vpd80 "$d")" = "$s" ] || fail "$d is not volume $s"; done
ok "four sessions, one disk: serial $s through every path"

say "paths are separate nexuses, bound to their own backstores"
sleep 2 # the daemon binds a path at adoption or on its 1 s tick once the ACL exists
json=$("$TSVCTL" status --json) || fail "tsvctl status --json"
cat >/tmp/check.py <<'PY'
import json, sys
vol, target = sys.argv[1:3]
v = [v for v in json.load(sys.stdin)["volumes"] if v["backing_path"] == vol]
assert len(v) == 1, "volume not listed"
paths = sorted(((p["initiator"] or "?").split(",")[0], p["target_port"] or "?") for p in v[0]["paths"])
print(paths)
expected = sorted((n, f"{target},t,0x000{t}") for n in (sys.argv[3], sys.argv[4]) for t in (1, 2))
assert paths == expected, f"{paths} != {expected}"
PY
python3 /tmp/check.py "$VOL" "$TARGET" "$NODE1" "$NODE2" <<<"$json" || { echo "$json"; fail "status --json: not four bound paths"; }
ok "four paths, each its own (initiator, target port)"

say "the kernel's ALUA handler and multipathd"
for d in "$N1_1" "$N1_2"; do
    dev=/sys/block/${d#/dev/}/device
    [ "$(cat "$dev/dh_state")" = alua ] || fail "$d: device handler '$(cat "$dev/dh_state")', not alua"
    [ "$(cat "$dev/access_state")" = active/optimized ] || fail "$d: ALUA access state '$(cat "$dev/access_state")'"
done
ok "scsi_dh_alua attached to both of node1's paths: active/optimized"
map=
for _ in $(seq 1 150); do
    map=$(multipathd show maps raw format "%n" 2>/dev/null | grep -v '^name' | head -n1 || true)
    [ -n "$map" ] && [ "$(multipathd show paths raw format "%m %d" 2>/dev/null | grep -c "^$map ")" = 2 ] && break
    sleep 0.2
done
multipath -ll
[ -n "$map" ] || fail "multipathd made no map"
[ "$(multipathd show maps raw format "%n" | grep -vc '^name')" = 1 ] || fail "more than one map: $(multipathd show maps)"
mpaths=$(multipathd show paths raw format "%m %d %p %t %T")
echo "$mpaths"
for d in "$N1_1" "$N1_2"; do
    grep -q "^$map ${d#/dev/} 50 active ready" <<<"$mpaths" || fail "$d is not an active path of $map with ALUA priority 50 (active/optimized)"
done
for d in "$N2_1" "$N2_2"; do
    if grep -q "^$map ${d#/dev/} " <<<"$mpaths"; then fail "node2's $d joined node1's map"; fi
done
[ "$(multipath -ll "$map" | grep -c 'prio=50 status=')" = 1 ] || fail "the two paths are not one path group (group_by_prio)"
MAP=/dev/mapper/$map
ok "one map $map, two paths in one Active/Optimized path group"

say "REPORT TARGET PORT GROUPS and VPD 83h"
cat >/tmp/rtpg.py <<'PY'
import sys
d = open(sys.argv[1], 'rb').read()
n = int.from_bytes(d[0:4], 'big') + 4            # RETURN DATA LENGTH counts what follows it
assert len(d) == n, f"{len(d)} bytes, RETURN DATA LENGTH says {n}"
assert d[4] & 0x70 == 0x10, "not the extended header"
at, groups = 8, []
while at < n:
    count = d[at + 7]
    ports = [int.from_bytes(d[at + 10 + 4 * i:at + 12 + 4 * i], 'big') for i in range(count)]
    groups.append((int.from_bytes(d[at + 2:at + 4], 'big'), d[at] & 0x0F, ports))
    at += 8 + 4 * count
print(groups)
PY
cat >/tmp/vpd83.py <<'PY'
import sys
d = open(sys.argv[1], 'rb').read()
at, found = 4, {}
while at < len(d):
    if (d[at + 1] >> 4) & 3 == 1 and d[at + 1] & 0x0F in (4, 5):
        found[d[at + 1] & 0x0F] = int.from_bytes(d[at + 6:at + 8], 'big')
    at += 4 + d[at + 3]
print(found.get(4), found.get(5))
PY
for p in "1 $N1_1" "2 $N1_2" "1 $N2_1" "2 $N2_2"; do
    tpgt=${p%% *} d=${p#* }
    sg_rtpg -d -e "$d" >/tmp/rtpg.txt 2>&1 || { cat /tmp/rtpg.txt; fail "sg_rtpg $d"; }
    sg_rtpg -r -e "$d" >/tmp/rtpg.bin 2>/dev/null || fail "sg_rtpg -r $d"
    groups=$(python3 /tmp/rtpg.py /tmp/rtpg.bin) || { od -An -tx1 /tmp/rtpg.bin; fail "RTPG parameter data of $d"; }
    [ "$groups" = "[(1, 0, [1, 2])]" ] || { cat /tmp/rtpg.txt; fail "RTPG through $d: $groups, expected group 1 Active/Optimized with ports 1 and 2"; }
    sg_vpd -p 0x83 -r "$d" >/tmp/vpd83.bin 2>/dev/null || fail "sg_vpd -p 0x83 $d"
    ids=$(python3 /tmp/vpd83.py /tmp/vpd83.bin)
    [ "$ids" = "$tpgt 1" ] || fail "VPD 83h of $d (TPG $tpgt): relative port and group '$ids', expected '$tpgt 1'"
done
cat /tmp/rtpg.txt
ok "every path: group 1 Active/Optimized with ports 1 and 2; VPD 83h names the path's own port and group 1"

say "mpathpersist registers node1 on every path and reserves Write Exclusive - Registrants Only"
tur "$N1_1"; tur "$N1_2"
mpathpersist --out --register --param-sark=0xa1 "$MAP" >/tmp/mpp.out 2>&1 || { cat /tmp/mpp.out; fail "mpathpersist register"; }
keys() { tur "$1"; sg_persist -n --in --read-keys "$1" 2>/dev/null | grep -Eo '^[[:space:]]+0x[0-9a-f]+' | tr -d ' ' | sort | tr '\n' ' '; }
[ "$(keys "$N2_1")" = "0xa1 0xa1 " ] || fail "after mpathpersist register, keys are '$(keys "$N2_1")', expected 0xa1 once per path"
# READ FULL STATUS: (key, relative target port) of every registration.
full_status() {
    tur "$1"
    sg_persist -n --in --read-full-status "$1" 2>/dev/null |
        awk '/Key=/ { k = $1; sub("Key=", "", k) } /Relative port address/ { print k, $NF }' | sort | tr '\n' ' '
}
[ "$(full_status "$N2_2")" = "0xa1 0x1 0xa1 0x2 " ] || fail "READ FULL STATUS: '$(full_status "$N2_2")', expected node1's key on ports 1 and 2"
ok "node1 registered through both ports (READ FULL STATUS: $(full_status "$N2_2"))"
mpathpersist --out --reserve --param-rk=0xa1 --prout-type=5 "$MAP" >/tmp/mpp.out 2>&1 || { cat /tmp/mpp.out; fail "mpathpersist reserve"; }
tur "$N2_1"
sg_persist -n --in --read-reservation "$N2_1" | tee /tmp/resv.out
grep -q 'Key=0xa1' /tmp/resv.out && grep -qi 'Write Exclusive, registrants only' /tmp/resv.out || fail "no WERO reservation with key 0xa1"
head -c 4096 /dev/urandom >/tmp/page1
dd if=/tmp/page1 of="$MAP" bs=4096 seek=100 oflag=direct conv=notrunc status=none || fail "node1 write through $MAP"
expect_rc 0 "node1 WRITE through TPG 1" scsi_write "$N1_1" 2000 A
expect_rc 0 "node1 WRITE through TPG 2" scsi_write "$N1_2" 2001 B

say "node2, not registered, conflicts through either portal"
tur "$N2_1"; tur "$N2_2"
expect_rc 24 "node2 WRITE through TPG 1" scsi_write "$N2_1" 3000 C
expect_rc 24 "node2 WRITE through TPG 2" scsi_write "$N2_2" 3001 C
expect_rc 0 "node2 READ through TPG 2" scsi_read "$N2_2" 2000

say "node1 dies; node2 registers on both paths and PREEMPTs AND ABORTs node1 through TPG 2"
for d in "$N2_1" "$N2_2"; do
    tur "$d"
    sg_persist -n --out --register --param-sark=0xb2 "$d" >/dev/null 2>&1 || fail "node2 register through $d"
done
tur "$N2_2"
sg_persist -n --out --preempt-abort --param-rk=0xb2 --param-sark=0xa1 --prout-type=5 "$N2_2" >/tmp/pa.out 2>&1 || { cat /tmp/pa.out; fail "PREEMPT AND ABORT"; }
[ "$(keys "$N2_1")" = "0xb2 0xb2 " ] || fail "after PREEMPT AND ABORT keys are '$(keys "$N2_1")', expected node2's on both paths only"
tur "$N2_1"
sg_persist -n --in --read-reservation "$N2_1" | tee /tmp/resv.out
grep -q 'Key=0xb2' /tmp/resv.out || fail "node2 does not hold the reservation"
tur "$N1_1"; tur "$N1_2"
expect_rc 24 "node1 WRITE through TPG 1 after the preemption" scsi_write "$N1_1" 2002 D
expect_rc 24 "node1 WRITE through TPG 2 after the preemption" scsi_write "$N1_2" 2003 D
if dd if=/tmp/page1 of="$MAP" bs=4096 seek=101 oflag=direct conv=notrunc status=none 2>/tmp/dd.err; then
    fail "node1 wrote through $MAP after the preemption"
fi
ok "node1's write through $MAP failed: $(cat /tmp/dd.err)"
mpaths=$(multipathd show paths raw format "%m %d %p %t %T")
for d in "$N1_1" "$N1_2"; do
    grep -q "^$map ${d#/dev/} 50 active" <<<"$mpaths" || { echo "$mpaths"; fail "a reservation conflict failed path $d"; }
done
ok "RESERVATION CONFLICT is not a path failure: both paths stay active"
expect_rc 0 "node2 WRITE through TPG 1" scsi_write "$N2_1" 3002 E
expect_rc 0 "node2 WRITE through TPG 2" scsi_write "$N2_2" 3003 E
dd if="$N2_1" of=/tmp/back bs=4096 skip=100 count=1 iflag=direct status=none || fail "read back node1's page"
cmp -s /tmp/page1 /tmp/back || fail "node1's page written before the preemption is not intact"
ok "node1's page from before the preemption is intact"

say "log out, unexport both TPGs"
multipath -F >/dev/null 2>&1 || true
iscsiadm -m node -T "$TARGET" --logout >/dev/null || fail "logout"
tsv unexport --volume "$VOL"
[ -z "$(ls -d $CFS/core/user_*/* 2>/dev/null)" ] || fail "backstores left after unexport"
[ ! -e "$CFS/iscsi/$TARGET" ] || fail "iSCSI target left after unexport"
ok "unexported: no backstore or target left"
echo "PASS: multiple portals ($SECONDS s)"
