#!/usr/bin/env bash
# Issue 6 scenario 4: the PR primitives Windows Server Failover Clustering's validator drives on
# each node (MS-CSVP CprepDiskPR*; docs/testing.md §3), in its prescribed order, with
# sg_persist from two tcm_loop nodes: Register (REGISTER AND IGNORE EXISTING KEY), Reserve,
# IsPRPresent (READ RESERVATION from both nodes, holder's key visible at once - the failure of
# quantum/esos #62), Preempt from node2, Release, Unregister (REGISTER AND IGNORE with key 0 -
# must not be an error), Clear.
. "$(dirname "$0")/lib.sh"
trap 'set +e; loop_cleanup; stop_daemon' EXIT

load_modules
start_daemon
rm -f /var/tmp/win.img
A=$(make_backstore win-1 "/var/tmp/win.img;size=64M" $((64 << 20)))
B=$(make_backstore win-2 "/var/tmp/win.img;size=64M" $((64 << 20)))
N1=$(loop_export "$A" naa.5001405000042001)
N2=$(loop_export "$B" naa.5001405000042002)
echo "node1=$N1 node2=$N2"
K1=0x1111aaaa2222bbbb
K2=0x3333cccc4444dddd
TYPE=${WIN_PR_TYPE:-5}   # WERO; WIN_PR_TYPE=6 for EARO
pr() { sg_persist -n "$@"; }
keys() { pr --in --read-keys "$1"; }
resv() { pr --in --read-reservation "$1"; }
for n in "$N1" "$N2"; do tur "$n"; done

say "Clear before a Register-Reserve sequence (ClearPR: REGISTER AND IGNORE, then CLEAR)"
pr --out --register-ignore --param-sark=$K1 "$N1" >/dev/null || fail "ClearPR register"
pr --out --clear --param-rk=$K1 "$N1" >/dev/null || fail "ClearPR clear"
keys "$N2" | grep -qi 'no registered reservation keys' || fail "keys left after CLEAR: $(keys "$N2")"
ok "no keys, no reservation"

say "CprepDiskPRRegister on both nodes (REGISTER AND IGNORE EXISTING KEY)"
pr --out --register-ignore --param-sark=$K1 "$N1" >/dev/null || fail "register node1"
pr --out --register-ignore --param-sark=$K2 "$N2" >/dev/null || fail "register node2"
# Registering again with another key replaces it without knowing the old one: that is what
# IGNORE EXISTING KEY is for; then back to K1.
pr --out --register-ignore --param-sark=0x77 "$N1" >/dev/null || fail "re-register node1 with another key"
pr --out --register-ignore --param-sark=$K1 "$N1" >/dev/null || fail "re-register node1 with K1"
out=$(keys "$N1")
grep -q "$K1" <<<"$out" && grep -q "$K2" <<<"$out" || fail "both keys expected: $out"
grep -q '0x77$' <<<"$out" && fail "replaced key 0x77 still registered: $out"
[ "$(grep -c '^ *0x' <<<"$out")" = 2 ] || fail "exactly two keys expected: $out"
ok "two registrations, one per node"

say "CprepDiskPRReserve from node1 (type $TYPE)"
pr --out --reserve --param-rk=$K1 --prout-type=$TYPE "$N1" >/dev/null || fail "reserve"
for n in "$N1" "$N2"; do
    out=$(resv "$n")
    grep -qi "Key=$K1" <<<"$out" || fail "CprepDiskIsPRPresent via $n: holder's key not visible: $out"
done
ok "both nodes see the reservation held by $K1 (IsPRPresent = 2 on node1, 1 on node2)"
# A registrants-only type: registered node2 may write; an unregistered path may not (checked below).
expect_rc 0 "node1 (holder) writes" scsi_write "$N1" 1 A
expect_rc 0 "node2 (registrant) writes under a registrants-only type" scsi_write "$N2" 2 B

say "CprepDiskPRPreempt3 from node2 (PREEMPT: RK=node2's key, SARK=node1's key)"
pr --out --preempt --param-rk=$K2 --param-sark=$K1 --prout-type=$TYPE "$N2" >/dev/null || fail "preempt"
tur "$N1"; tur "$N1"
out=$(resv "$N1")
grep -qi "Key=$K2" <<<"$out" || fail "node2 is not the holder after PREEMPT: $out"
keys "$N1" | grep -q "$K1" && fail "node1's key survived the PREEMPT"
expect_rc 24 "node1 (preempted, unregistered) write conflicts" scsi_write "$N1" 3 C
expect_rc 0 "node2 (new holder) writes" scsi_write "$N2" 4 D
ok "node2 owns the disk"

say "CprepDiskPRRelease3 from node2"
pr --out --release --param-rk=$K2 --prout-type=$TYPE "$N2" >/dev/null || fail "release"
tur "$N1"; tur "$N1"
resv "$N1" | grep -qi 'no reservation' || fail "reservation still held after RELEASE: $(resv "$N1")"
keys "$N1" | grep -q "$K2" || fail "RELEASE must not remove node2's registration"
expect_rc 0 "node1 writes after the release (no reservation)" scsi_write "$N1" 5 E

say "CprepDiskPRUnRegister (REGISTER AND IGNORE with key 0) on node2, and on unregistered node1"
pr --out --register-ignore --param-sark=0 "$N2" >/dev/null || fail "unregister node2 returned an error"
pr --out --register-ignore --param-sark=0 "$N1" >/dev/null || fail "unregister of an unregistered node returned an error"
keys "$N1" | grep -q '^ *0x' && fail "keys remain after unregister: $(keys "$N1")"
ok "no registrations left"

say "CprepDiskPRClear: a node registers, reserves, the other registers, CLEAR drops everything"
pr --out --register-ignore --param-sark=$K1 "$N1" >/dev/null || fail "register node1"
pr --out --reserve --param-rk=$K1 --prout-type=$TYPE "$N1" >/dev/null || fail "reserve again"
pr --out --register-ignore --param-sark=$K2 "$N2" >/dev/null || fail "register node2"
gen0=$(keys "$N2" | sed -n 's/.*generation=\(0x[0-9a-f]*\).*/\1/p')
pr --out --clear --param-rk=$K2 "$N2" >/dev/null || fail "clear from node2"
tur "$N1"; tur "$N1"; tur "$N2"
out=$(keys "$N1")
grep -q '^ *0x' <<<"$out" && fail "keys remain after CLEAR: $out"
gen1=$(sed -n 's/.*generation=\(0x[0-9a-f]*\).*/\1/p' <<<"$out")
(( gen1 == gen0 + 1 )) || fail "CLEAR must bump the PR generation by one ($gen0 -> $gen1)"
resv "$N2" | grep -qi 'no reservation' || fail "reservation survived CLEAR"
expect_rc 0 "node2 writes after CLEAR" scsi_write "$N2" 6 F
echo "windows-primitives: all checks passed"
