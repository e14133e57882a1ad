#!/bin/bash
# Guest test (run by scripts/vm/run): proves the VM has a working LIO stack before any test of
# the daemon relies on it. One 1 GiB fileio backstore is exported over tcm_loop and over iSCSI on
# 127.0.0.1:3260 with ACLs for two initiator names; logging in as both gives two I_T nexuses on
# one machine. Every step asserts; the first failure exits non-zero with a message.
set -euo pipefail

readonly TARGET=iqn.2003-01.org.linux-iscsi.tsv:smoke
readonly INIT_A=iqn.2003-01.org.linux-iscsi.tsv:initiator-a
readonly INIT_B=iqn.2003-01.org.linux-iscsi.tsv:initiator-b
readonly PORTAL=127.0.0.1:3260
readonly BACKING=/var/tmp/smoke-disk0.img
readonly SIZE=$((1024 * 1024 * 1024))

step() { printf '== [%3d s] %s\n' "$SECONDS" "$*"; }
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  printf -- '-- diagnostics --\n' >&2
  targetcli ls / >&2 2>&1 || true
  iscsiadm -m session >&2 2>&1 || true
  lsscsi >&2 2>&1 || true
  dmesg | tail -n 30 >&2 || true
  exit 1
}
check() { # check DESCRIPTION COMMAND...: runs COMMAND, fails the test with DESCRIPTION if it fails
  local what=$1
  shift
  local out
  if ! out=$("$@" 2>&1); then
    printf '%s\n' "$out" >&2
    fail "$what (command: $*)"
  fi
}

cleanup() {
  local rc=$?
  set +e
  step "cleanup"
  iscsiadm -m node -T "$TARGET" -p "$PORTAL" --logout >/dev/null 2>&1
  iscsiadm -m node -T "$TARGET" -p "$PORTAL" -o delete >/dev/null 2>&1
  iscsiadm -m iface -I tsv-a -o delete >/dev/null 2>&1
  iscsiadm -m iface -I tsv-b -o delete >/dev/null 2>&1
  targetcli clearconfig confirm=True >/dev/null 2>&1
  rm -f "$BACKING"
  if ((rc == 0)) && [[ -n $(iscsiadm -m session 2>/dev/null) ]]; then
    echo "FAIL: iSCSI sessions remain after logout" >&2
    rc=1
  fi
  exit "$rc"
}
trap cleanup EXIT

disks() { (cd /sys/block && ls -d sd* 2>/dev/null) | sort || true; }
tc() { check "targetcli $*" targetcli "$@"; }

step "kernel modules"
check "load LIO modules" modprobe -a target_core_user tcm_loop iscsi_target_mod
mountpoint -q /sys/kernel/config || check "mount configfs" mount -t configfs configfs /sys/kernel/config
[[ -d /sys/kernel/config/target ]] || fail "no /sys/kernel/config/target after loading target_core_mod"
[[ -d /etc/rtslib-fb-target/pr ]] || fail "/etc/rtslib-fb-target/pr is missing (LIO would answer NOT READY to PR OUT)"

before=$(disks)

step "targetcli: 1 GiB sparse fileio backstore"
tc set global auto_save_on_exit=false auto_add_default_portal=false
# targetcli's own sparse=true preallocates (posix_fallocate); a truncated file is really sparse.
truncate -s "$SIZE" "$BACKING"
tc /backstores/fileio create name=disk0 file_or_dev="$BACKING" write_back=false
(($(stat -c %s "$BACKING") == SIZE)) || fail "backing file is $(stat -c %s "$BACKING") bytes, expected $SIZE"
(($(stat -c %b "$BACKING") * 512 < SIZE / 2)) || fail "backing file is not sparse"

step "tcm_loop export"
tc /loopback create
loop_wwn=$(basename /sys/kernel/config/target/loopback/naa.*)
[[ $loop_wwn == naa.* ]] || fail "no tcm_loop target in configfs"
# Creating the target wrote the TPG's nexus; linking the LUN makes the kernel scan a new disk.
tc "/loopback/$loop_wwn/luns" create /backstores/fileio/disk0

step "iSCSI export on $PORTAL, ACLs for two initiators"
tc /iscsi create "$TARGET"
tc "/iscsi/$TARGET/tpg1/portals" create 127.0.0.1 3260
tc "/iscsi/$TARGET/tpg1/luns" create /backstores/fileio/disk0
tc "/iscsi/$TARGET/tpg1" set attribute generate_node_acls=0 authentication=0 demo_mode_write_protect=0
tc "/iscsi/$TARGET/tpg1/acls" create "$INIT_A"
tc "/iscsi/$TARGET/tpg1/acls" create "$INIT_B"
for acl in "$INIT_A" "$INIT_B"; do
  [[ -e /sys/kernel/config/target/iscsi/$TARGET/tpgt_1/acls/$acl/lun_0 ]] ||
    fail "ACL $acl has no mapped LUN 0"
done

step "iscsiadm: one iface per initiator name, discovery, login"
check "start iscsid" systemctl start iscsid.service
for i in a b; do
  name=INIT_${i^^}
  check "create iface tsv-$i" iscsiadm -m iface -I "tsv-$i" -o new
  check "set initiator name of tsv-$i" iscsiadm -m iface -I "tsv-$i" -o update -n iface.initiatorname -v "${!name}"
done
found=$(iscsiadm -m discovery -t sendtargets -p "$PORTAL" -I tsv-a -I tsv-b 2>&1) ||
  fail "sendtargets discovery on $PORTAL failed: $found"
grep -q " $TARGET\$" <<<"$found" || fail "discovery did not list $TARGET: $found"
check "login as $INIT_A" iscsiadm -m node -T "$TARGET" -p "$PORTAL" -I tsv-a --login
check "login as $INIT_B" iscsiadm -m node -T "$TARGET" -p "$PORTAL" -I tsv-b --login

sessions=$(iscsiadm -m session 2>/dev/null | grep -c " $TARGET " || true)
((sessions == 2)) || fail "expected 2 iSCSI sessions to $TARGET, found $sessions"
for acl in "$INIT_A" "$INIT_B"; do
  info=$(cat "/sys/kernel/config/target/iscsi/$TARGET/tpgt_1/acls/$acl/info")
  grep -q "InitiatorName: $acl" <<<"$info" || fail "target sees no session for $acl: $info"
done

step "disks: three new SCSI disks (tcm_loop + two iSCSI nexuses), each 1 GiB"
udevadm settle --timeout=30 || true
new=()
for _ in $(seq 1 30); do
  mapfile -t new < <(comm -13 <(printf '%s\n' $before) <(disks))
  ((${#new[@]} >= 3)) && break
  sleep 1
done
((${#new[@]} == 3)) || fail "expected 3 new /dev/sd* disks, found ${#new[@]}: ${new[*]:-none}"
serials=()
for d in "${new[@]}"; do
  dev=/dev/$d
  [[ -b $dev ]] || fail "$dev is not a block device"
  inq=$(sg_inq "$dev" 2>&1) || fail "sg_inq $dev failed: $inq"
  grep -q 'Vendor identification: LIO-ORG' <<<"$inq" || fail "$dev is not a LIO disk: $inq"
  grep -q 'Peripheral device type: disk' <<<"$inq" || fail "$dev is not a direct-access device: $inq"
  cap=$(sg_readcap "$dev" 2>&1) || fail "sg_readcap $dev failed: $cap"
  bytes=$(sed -n 's/.*Device size: \([0-9]\+\) bytes.*/\1/p' <<<"$cap")
  ((bytes == SIZE)) || fail "$dev capacity is ${bytes:-unknown} bytes, expected $SIZE: $cap"
  serial=$(sg_inq -p 0x80 "$dev" 2>&1 | sed -n 's/.*Unit serial number: *//p')
  [[ -n $serial ]] || fail "$dev has no unit serial number (VPD page 0x80)"
  serials+=("$serial")
  printf '%s: %s, %s bytes, serial %s\n' "$dev" \
    "$(sed -n 's/.*Product identification: *//p' <<<"$inq")" "$bytes" "$serial"
done
(($(printf '%s\n' "${serials[@]}" | sort -u | wc -l) == 1)) ||
  fail "the three disks should be one backstore, serials differ: ${serials[*]}"

step "I/O through both iSCSI nexuses reaches the same backing file"
iscsi_disks=()
for d in "${new[@]}"; do
  [[ $(readlink -f "/sys/block/$d") == */session* ]] && iscsi_disks+=("/dev/$d")
done
((${#iscsi_disks[@]} == 2)) || fail "expected 2 iSCSI disks, found ${#iscsi_disks[@]}"
pattern=$(mktemp)
readback=$(mktemp)
head -c 4096 /dev/urandom >"$pattern"
dd if="$pattern" of="${iscsi_disks[0]}" bs=4096 seek=7 oflag=direct conv=notrunc status=none ||
  fail "write through ${iscsi_disks[0]} failed"
dd if="${iscsi_disks[1]}" of="$readback" bs=4096 skip=7 count=1 iflag=direct status=none ||
  fail "read through ${iscsi_disks[1]} failed"
cmp -s "$pattern" "$readback" || fail "data written via ${iscsi_disks[0]} not read back via ${iscsi_disks[1]}"
cmp -s "$pattern" <(dd if="$BACKING" bs=4096 skip=7 count=1 status=none) ||
  fail "data written via ${iscsi_disks[0]} is not in the backing file"
rm -f "$pattern" "$readback"

step "logout"
check "logout" iscsiadm -m node -T "$TARGET" -p "$PORTAL" --logout
echo "PASS: smoke"
