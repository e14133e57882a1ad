#!/bin/bash
# Guest test (run by scripts/vm/run after `make publish`): tsvctl against the systemd service.
#   loopback   volume create + export loopback --nodes 2: two /dev/sdX of one volume (same VPD
#              80h), data written through one reads back through the other; unexport
#   iscsi      export iscsi with two initiators on 127.0.0.1:3260, CHAP for A and mutual CHAP
#              for B from a 0600 secrets file: no secret in tsvctl's output; a login without
#              CHAP, with A's wrong secret, or with B's wrong target secret is refused; the right
#              ones log in; each disk is bound to its initiator in status --json; pr show lists
#              both keys; pr clear drops them
#   failures   an export whose target exists, a bogus initiator, no CHAP and no --no-auth, a
#              group-readable secrets file: non-zero exit, one stderr line, targetcli ls unchanged
source /repo/tests/e2e/lib.sh
source /repo/tests/e2e/lib-service.sh

TSVCTL=$REPO/out/bin/tsvctl
VOL=/var/tmp/sv.img
TARGET=iqn.2003-01.org.linux-iscsi.tsv:sv
INIT_A=iqn.2003-01.org.linux-iscsi.tsv:node-a
INIT_B=iqn.2003-01.org.linux-iscsi.tsv:node-b
PORTAL=127.0.0.1:3260
SECRETS=/root/chap.secrets
SECRET_A=a-secret-0123456789
SECRET_B=b-secret-0123456789
TARGET_SECRET_B=target-b-secret-0123
(umask 077; printf '%s\n' "# initiator user secret [mutual-user mutual-secret]" \
    "$INIT_A user-a $SECRET_A" "$INIT_B user-b $SECRET_B target-b $TARGET_SECRET_B" >"$SECRETS")

cleanup() {
    local rc=$?
    set +e
    ((rc == 0)) || service_diagnostics
    iscsiadm -m node --logout >/dev/null 2>&1
    exit "$rc"
}
trap cleanup EXIT

load_modules
install_service
service_start start

say "volume create"
tsv volume create "$VOL" --size 1G
[ "$(stat -c %s "$VOL")" = $((1 << 30)) ] || fail "$VOL is not 1 GiB"
tsv_fails 1 volume create "$VOL" --size 1G

# wait_new_disks N: up to 30 s for N disks more than in $before; leaves them in new[].
wait_new_disks() {
    for _ in $(seq 1 150); do
        udevadm settle 2>/dev/null || true
        mapfile -t new < <(comm -13 <(echo "$before") <(sd_disks))
        ((${#new[@]} >= $1)) && return 0
        sleep 0.2
    done
}

say "export loopback --nodes 2"
before=$(sd_disks)
tsv export loopback --volume "$VOL" --nodes 2
wait_new_disks 2
((${#new[@]} == 2)) || fail "expected 2 new disks, got ${#new[@]}: ${new[*]:-}"
d1=/dev/${new[0]} d2=/dev/${new[1]}
s1=$(vpd80 "$d1") s2=$(vpd80 "$d2")
[ -n "$s1" ] && [ "$s1" = "$s2" ] || fail "serials differ: $d1=$s1 $d2=$s2"
ok "$d1 and $d2: one volume, serial $s1"
head -c 65536 /dev/urandom >/tmp/pat
dd if=/tmp/pat of="$d1" bs=65536 seek=5 oflag=direct conv=notrunc status=none || fail "dd to $d1"
dd if="$d2" of=/tmp/back bs=65536 skip=5 count=1 iflag=direct status=none || fail "dd from $d2"
cmp -s /tmp/pat /tmp/back || fail "data written via $d1 not read back via $d2"
ok "64 KiB written via $d1 read back via $d2"
tsv status
tsv unexport --volume "$VOL"
[ -z "$(ls -d $CFS/core/user_*/* 2>/dev/null)" ] || fail "backstores left after unexport: $(ls -d $CFS/core/user_*/*)"
[ -z "$(ls -d $CFS/loopback/naa.* 2>/dev/null)" ] || fail "loopback targets left after unexport"
[ -z "$(comm -13 <(echo "$before") <(sd_disks))" ] || fail "disks left after unexport"
ok "unexported: no backstore, target or disk left"

say "failures leave nothing behind"
tsv_fails 2 export iscsi --volume "$VOL" --target "$TARGET" --initiator "not an iqn" --portal "$PORTAL"
targetcli /iscsi create "$TARGET" >/dev/null || fail "targetcli /iscsi create (pre-existing target)"
tsv_fails 1 export iscsi --volume "$VOL" --target "$TARGET" --initiator "$INIT_A" --initiator "$INIT_B" --portal "$PORTAL" --chap-secrets "$SECRETS"
targetcli /iscsi delete "$TARGET" >/dev/null || fail "targetcli /iscsi delete"
tsv_fails 2 export iscsi --volume "$VOL" --target "$TARGET" --initiator "$INIT_A" --portal "$PORTAL"
chmod 640 "$SECRETS"
tsv_fails 2 export iscsi --volume "$VOL" --target "$TARGET" --initiator "$INIT_A" --portal "$PORTAL" --chap-secrets "$SECRETS"
grep -qF -e "$SECRET_A" -e "$SECRET_B" /tmp/tsv.err && fail "a secret in tsvctl's error: $(cat /tmp/tsv.err)"
chmod 600 "$SECRETS"
tsv_fails 1 unexport --volume "$VOL"
tsv_fails 2 pr clear "$VOL"

say "export iscsi to two initiators with CHAP (mutual for B)"
before=$(sd_disks)
tsv export iscsi --volume "$VOL" --target "$TARGET" --initiator "$INIT_A" --initiator "$INIT_B" --portal "$PORTAL" \
    --chap-secrets "$SECRETS"
grep -qF -e "$SECRET_A" -e "$SECRET_B" -e "$TARGET_SECRET_B" <<<"$out" && fail "a secret in tsvctl's output: $out"
tpg=$CFS/iscsi/$TARGET/tpgt_1
[ "$(cat "$tpg/attrib/authentication")" = 1 ] || fail "TPG authentication is not 1"
[ "$(cat "$tpg/acls/$INIT_A/auth/password")" = "$SECRET_A" ] || fail "A's ACL lacks its secret"
[ "$(cat "$tpg/acls/$INIT_B/auth/password_mutual")" = "$TARGET_SECRET_B" ] || fail "B's ACL lacks the target secret"
saved=/etc/rtslib-fb-target/saveconfig.json
[ "$(stat -c %a "$saved")" = 600 ] || fail "$saved keeps the secrets with mode $(stat -c %a "$saved")"
ok "CHAP in configfs, authentication=1, $saved mode 600, no secret in tsvctl's output"
systemctl start iscsid.service || fail "start iscsid"
for i in a b; do
    name=INIT_${i^^}
    iscsiadm -m iface -I "tsv-$i" -o new >/dev/null || fail "iface tsv-$i"
    iscsiadm -m iface -I "tsv-$i" -o update -n iface.initiatorname -v "${!name}" >/dev/null || fail "iface name"
done
found=$(iscsiadm -m discovery -t sendtargets -p "$PORTAL" -I tsv-a -I tsv-b 2>&1) || fail "discovery: $found"
# node_auth IFACE NAME=VALUE...: the initiator side of CHAP, in the node record of IFACE. (The
# secret is on iscsiadm's command line here: acceptable in a throw-away test VM, not on a host.)
node_auth() {
    local iface=$1 kv; shift
    for kv in "$@"; do
        iscsiadm -m node -T "$TARGET" -p "$PORTAL" -I "$iface" -o update -n "node.session.auth.${kv%%=*}" -v "${kv#*=}" >/dev/null ||
            fail "iscsiadm $iface ${kv%%=*}"
    done
}
login() { iscsiadm -m node -T "$TARGET" -p "$PORTAL" -I "$1" --login 2>&1; }
login_refused() { # login_refused IFACE WHAT
    local out rc
    out=$(login "$1") && rc=0 || rc=$?
    [ "$rc" != 0 ] || fail "login through $1 $2 succeeded"
    iscsiadm -m session 2>/dev/null | grep -q " $TARGET " && fail "a session exists after the refused login through $1 $2"
    ok "login through $1 $2 refused (exit $rc): $(grep -i 'iscsiadm:' <<<"$out" | tail -1)"
}
login_refused tsv-a "without CHAP"
node_auth tsv-a authmethod=CHAP username=user-a password=wrong-secret-0123
login_refused tsv-a "with a wrong secret"
node_auth tsv-b authmethod=CHAP username=user-b password="$SECRET_B" username_in=target-b password_in=wrong-target-0123
login_refused tsv-b "with the right secret but a wrong target secret (mutual CHAP)"
node_auth tsv-a password="$SECRET_A"
node_auth tsv-b password_in="$TARGET_SECRET_B"
out=$(login tsv-a) || fail "login as $INIT_A with its secret: $out"
ok "login through tsv-a with the right secret"
out=$(login tsv-b) || fail "login as $INIT_B with mutual CHAP: $out"
ok "login through tsv-b with mutual CHAP"
wait_new_disks 2
((${#new[@]} == 2)) || fail "expected 2 iSCSI disks, got ${#new[@]}"
declare -A disk_of
for d in "${new[@]}"; do
    sess=$(readlink -f "/sys/block/$d/device" | grep -o 'session[0-9]*' | head -1)
    init=$(cat "/sys/class/iscsi_session/$sess/initiatorname")
    disk_of[$init]=/dev/$d
    [ "$(vpd80 "/dev/$d")" = "$s1" ] || fail "/dev/$d serial $(vpd80 "/dev/$d") is not the volume's $s1"
    echo "/dev/$d: $sess as $init"
done
da=${disk_of[$INIT_A]:-} db=${disk_of[$INIT_B]:-}
[ -n "$da" ] && [ -n "$db" ] || fail "no disk per initiator: ${!disk_of[*]}"
# The daemon binds a path at adoption or on its 1 s tick once the ACL exists.
sleep 2
json=$("$TSVCTL" status --json) || fail "tsvctl status --json"
echo "$json"
cat >/tmp/check.py <<'PY'
import json, sys
vol, a, b = sys.argv[1:4]
s = json.load(sys.stdin)
v = [v for v in s["volumes"] if v["backing_path"] == vol]
assert len(v) == 1, "volume not listed"
inits = sorted((p["initiator"] or "").split(",")[0] for p in v[0]["paths"])
assert inits == sorted([a, b]), inits
PY
python3 /tmp/check.py "$VOL" "$INIT_A" "$INIT_B" <<<"$json" || fail "status --json does not bind each path to its initiator"
ok "status --json: one path per initiator"

say "reservations through tsvctl"
tur "$da"; tur "$db"
sg_persist --out --register --param-sark=0xa1 "$da" >/dev/null 2>&1 || sg_persist --out --register --param-sark=0xa1 "$da" >/dev/null || fail "register A"
sg_persist --out --register --param-sark=0xb2 "$db" >/dev/null 2>&1 || sg_persist --out --register --param-sark=0xb2 "$db" >/dev/null || fail "register B"
sg_persist --out --reserve --param-rk=0xa1 --prout-type=5 "$da" >/dev/null || fail "reserve A"
tsv pr show "$VOL"
grep -qi 'key 0x00000000000000a1  '"$INIT_A" <<<"$out" || fail "pr show lacks A's key with its initiator"
grep -qi 'key 0x00000000000000b2  '"$INIT_B" <<<"$out" || fail "pr show lacks B's key with its initiator"
grep -q 'reservation: ' <<<"$out" && ! grep -q 'reservation: none' <<<"$out" || fail "pr show lacks the reservation"
ok "pr show: both keys and the reservation"
tsv pr clear "$VOL" --yes-i-know
tsv pr show "$VOL"
grep -q '0 registration(s)' <<<"$out" || fail "keys remain after pr clear"
grep -q 'reservation: none' <<<"$out" || fail "reservation remains after pr clear"
tur "$da"
keys=$(sg_persist --in --read-keys "$da" 2>&1)
grep -q '0xa1\|0xb2' <<<"$keys" && fail "initiator still sees keys: $keys"
ok "pr clear dropped both keys and the reservation"

say "logout, unexport"
iscsiadm -m node -T "$TARGET" -p "$PORTAL" --logout >/dev/null || fail "logout"
tsv unexport --volume "$VOL"
[ -z "$(ls -d $CFS/core/user_*/* 2>/dev/null)" ] || fail "backstores left after unexport"
[ ! -e "$CFS/iscsi/$TARGET" ] || fail "iSCSI target left after unexport"
ok "unexported"
echo "PASS: tsvctl ($SECONDS s)"
