#!/bin/bash
# Guest test (run by scripts/vm/run after `make publish`): an LVM thin LV as a shared volume,
# through tsvctl and the systemd service (issue 22).
#   create     a VG on a loop device with a thin pool; tsvctl volume create lvm:VG/NAME --thin
#              makes a thin LV and refuses to make it twice
#   refused    a mounted LV: tsvctl export and the daemon (a configfs backstore) refuse it and say
#              it is mounted and where
#   data       exported over iSCSI to two initiators: one identity, thin provisioning with LBPRZ
#              and the pool's chunk as unmap granularity; 64 MiB of fio verify written through A
#              and verified through B raise the pool's data_percent
#   discard    blkdiscard on A: the pool's data_percent falls, GET LBA STATUS says deallocated,
#              B reads zeroes
#   resize     tsvctl volume resize under fio: lvextend, both paths see the new capacity, fio
#              verifies across it
#   pr         the reservation checks of 20-reservations.sh on the LV's two paths
#   delete     refused while exported; after unexport, asks, then lvremove
source /repo/tests/e2e/lib.sh
source /repo/tests/e2e/lib-service.sh
source /repo/tests/e2e/lib-iscsi.sh
source /repo/tests/e2e/lib-reservations.sh

VG=tsvvg
LV=/dev/$VG/shared
TARGET=iqn.2003-01.org.linux-iscsi.tsv:lvm
INIT_A=iqn.2003-01.org.linux-iscsi.tsv:lvm-a
INIT_B=iqn.2003-01.org.linux-iscsi.tsv:lvm-b
PORTAL=127.0.0.1:3260

cleanup() {
    local rc=$?
    set +e
    ((rc == 0)) || service_diagnostics
    iscsi_cleanup "$TARGET"
    mountpoint -q /mnt/lv && umount /mnt/lv
    exit "$rc"
}
trap cleanup EXIT

pool_data() { lvs --noheadings -o data_percent "$VG/pool" | tr -d ' '; }
# wait_pool_data AWK_CONDITION: up to 20 s for the pool's data_percent (d) to meet the condition
# (the pool commits its space maps about once a second); leaves the last value in $pd.
wait_pool_data() {
    for _ in $(seq 1 100); do
        pd=$(pool_data)
        awk -v d="$pd" "BEGIN { exit !($1) }" && return 0
        sleep 0.2
    done
    return 1
}
# vpd_bytes DEV PAGE: the page's bytes in decimal, one per line.
vpd_bytes() { sg_vpd -p "$2" -r "$1" | od -An -tu1 -v | tr -s ' \n' '\n' | grep -v '^$'; }
vpd_u32() { vpd_bytes "$1" "$2" | sed -n "$(($3 + 1)),$(($3 + 4))p" | awk '{ v = v * 256 + $1 } END { print v }'; }
last_lba() { sg_readcap -l "$1" | sed -n 's/.*Last \(LBA\|logical block address\)=\([0-9]*\).*/\2/p'; }

load_modules
install_service
service_start start

say "a volume group on a loop device, with a thin pool"
if ! command -v thin_check >/dev/null; then
    # The image has lvm2 without thin-provisioning-tools; lvm then refuses to activate a thin
    # pool unless told not to check its metadata first.
    echo 'global { thin_check_executable = "" }' >>/etc/lvm/lvmlocal.conf
fi
truncate -s 1G /var/tmp/pv.img
PV=$(losetup -f --show /var/tmp/pv.img)
pvcreate -q "$PV" >/dev/null
vgcreate -q "$VG" "$PV" >/dev/null
lvcreate -q --type thin-pool -L 512M -n pool "$VG" >/dev/null || fail "lvcreate thin-pool"
chunk=$(lvs --noheadings --units b --nosuffix -o chunk_size "$VG/pool" | tr -d ' ')
ok "$VG on $PV, thin pool of 512 MiB with $chunk-byte chunks"

say "tsvctl volume create lvm:$VG/shared --thin pool"
tsv volume create "lvm:$VG/shared" --size 256M --thin pool
grep -q "created $LV (268435456 bytes, thin LV in pool $VG/pool)" <<<"$out" || fail "unexpected output: $out"
[ "$(lvs --noheadings -o segtype "$VG/shared" | tr -d ' ')" = thin ] || fail "$VG/shared is not a thin LV"
udevadm settle
[ -b "$LV" ] || fail "$LV does not exist"
tsv_fails 1 volume create "lvm:$VG/shared" --size 256M --thin pool
grep -q "already exists; refusing to touch it" /tmp/tsv.err || fail "no refusal of an existing LV"

say "a mounted LV is refused, and the journal says why"
tsv volume create "lvm:$VG/mounted" --size 16M
mkfs.ext4 -q "/dev/$VG/mounted"
mkdir -p /mnt/lv
mount "/dev/$VG/mounted" /mnt/lv
tsv_fails 1 export loopback --volume "/dev/$VG/mounted" --nodes 1
grep -q "is in use: it is mounted on /mnt/lv; refusing to export it" /tmp/tsv.err || fail "tsvctl did not say why"
# The daemon refuses it too, for a backstore made without tsvctl (enable fails when the kernel
# waits for the daemon's reply; the journal says why either way).
d=$CFS/core/user_99/mounted
mkdir -p "$d"
echo -n "dev_config=sharedvol//dev/$VG/mounted" >"$d/control"
echo -n "dev_size=$((16 << 20))" >"$d/control"
echo 1 >"$d/enable" 2>/dev/null && echo "enable succeeded (no netlink reply awaited)" || echo "enable refused"
wait_journal "/dev/$VG/mounted is in use: it is mounted on /mnt/lv; refusing to serve it"
rmdir "$d" "$CFS/core/user_99"
umount /mnt/lv
ok "mounted LV refused by tsvctl and by the daemon: $(journal | grep -m1 'mounted on /mnt/lv')"

say "export the thin LV over iSCSI to two initiators"
tsv export iscsi --volume "lvm:$VG/shared" --target "$TARGET" --initiator "$INIT_A" --initiator "$INIT_B" \
    --portal "$PORTAL" --no-auth
DA=$(iscsi_login "$TARGET" lvm-a "$INIT_A")
DB=$(iscsi_login "$TARGET" lvm-b "$INIT_B")
s1=$(vpd80 "$DA") s2=$(vpd80 "$DB")
[ -n "$s1" ] && [ "$s1" = "$s2" ] || fail "serials differ: $DA=$s1 $DB=$s2"
ok "$DA ($INIT_A) and $DB ($INIT_B): one volume, serial $s1"

say "thin provisioning: LBPME/LBPRZ, the pool's chunk as unmap granularity"
sg_readcap -l "$DA" | tee /tmp/cap
grep -q 'lbpme=1, lbprz=1' /tmp/cap || fail "READ CAPACITY(16) does not say lbpme=1, lbprz=1 on a thin LV"
b2=$(vpd_bytes "$DA" 0xb2 | sed -n 6p)
(( (b2 & 0x80) && (b2 & 0x04) )) || fail "VPD B2h byte 5 is $b2: no LBPU or no LBPRZ"
gran=$(vpd_u32 "$DA" 0xb0 28) maxunmap=$(vpd_u32 "$DA" 0xb0 20)
[ "$gran" = $((chunk / 512)) ] || fail "UNMAP GRANULARITY $gran blocks, the pool's chunk is $((chunk / 512))"
((maxunmap >= gran)) || fail "MAXIMUM UNMAP LBA COUNT $maxunmap below the granularity $gran"
ok "VPD B0h: unmap granularity $gran blocks, at most $maxunmap blocks per UNMAP; B2h: LBPU LBPRZ"

say "64 MiB written with fio verify through A, verified through B"
p0=$(pool_data)
fio --name=w --filename="$DA" --rw=write --bs=1M --size=64M --direct=1 --ioengine=libaio --iodepth=4 \
    --verify=crc32c --do_verify=1 --verify_state_save=0 --output=/tmp/fio-w.txt || { cat /tmp/fio-w.txt; fail "fio through A"; }
grep -q 'err= 0' /tmp/fio-w.txt || { cat /tmp/fio-w.txt; fail "fio reported errors through A"; }
fio --name=w --filename="$DB" --rw=write --bs=1M --size=64M --direct=1 --ioengine=libaio --iodepth=4 \
    --verify=crc32c --verify_only=1 --verify_state_load=0 --verify_state_save=0 --output=/tmp/fio-v.txt \
    || { cat /tmp/fio-v.txt; fail "fio verify through B failed"; }
wait_pool_data "d >= $p0 + 12.5" || fail "pool data_percent $p0 -> $pd after 64 MiB (expected +12.5)"
p1=$pd
sg_get_lba_status --lba=$((128 << 11)) "$DB" | tee /tmp/lba
grep -qi 'dealloc' /tmp/lba || fail "GET LBA STATUS past the written range is not deallocated"
ok "written and verified across paths; pool data_percent $p0 -> $p1"

say "blkdiscard from initiator A frees the pool's space"
cat "/sys/block/${DA#/dev/}/device/scsi_disk/"*/provisioning_mode
blkdiscard "$DA" || fail "blkdiscard $DA"
wait_pool_data "d < 0.5" || fail "pool data_percent did not fall: $p1 -> $pd"
p2=$pd
sg_get_lba_status --lba=0 "$DB" | tee /tmp/lba
grep -qi 'dealloc' /tmp/lba || fail "GET LBA STATUS at LBA 0 is not deallocated after the discard"
cmp -n $((4 << 20)) <(dd if="$DB" bs=1M count=4 iflag=direct status=none) /dev/zero || fail "B does not read zeroes after the discard"
ok "pool data_percent $p1 -> $p2; GET LBA STATUS deallocated; B reads zeroes"

say "grow the LV under I/O: both paths see the new size"
fio --name=g --filename="$DA" --rw=randwrite --bs=4k --size=32M --offset=16M --direct=1 --ioengine=libaio --iodepth=8 \
    --verify=crc32c --do_verify=1 --verify_state_save=0 --randrepeat=1 --eta=never --output=/tmp/fio.out &
fpid=$!
wait_written "$DA" "$(sectors_written "$DA")" 4 "$fpid"
tsv volume resize "lvm:$VG/shared" --size 384M
wait_journal "resized from $((256 << 20)) to $((384 << 20)) bytes"
fio_verified "$fpid" "the resize"
for d in "$DA" "$DB"; do
    tur "$d"
    [ "$(last_lba "$d")" = $(((384 << 11) - 1)) ] || { sg_readcap -l "$d"; fail "$d: READ CAPACITY does not show 384 MiB"; }
    echo 1 >"/sys/block/${d#/dev/}/device/rescan"
    [ "$(blockdev --getsize64 "$d")" = $((384 << 20)) ] || fail "$d: the kernel's size is not 384 MiB after rescan"
done
[ "$(journal | grep -c "resized from $((256 << 20)) to $((384 << 20))")" -ge 1 ] || fail "no resize in the journal"
ok "grown to 384 MiB under fio; both paths read the new capacity"

say "reservations on the LV behave as on a file"
restart_service() { service_start restart; }
reservation_checks "$DA" "$DB" "$INIT_A" restart_service

say "delete: refused while exported; asks first; then lvremove"
tsv_fails 1 volume delete "lvm:$VG/shared" --yes
grep -q "is exported" /tmp/tsv.err || fail "delete of an exported LV not refused for that reason"
iscsi_logout "$TARGET" lvm-a
iscsi_logout "$TARGET" lvm-b
tsv unexport --volume "lvm:$VG/shared"
echo no | "$TSVCTL" volume delete "lvm:$VG/shared" >/tmp/tsv.out 2>/tmp/tsv.err && fail "deleted without a yes"
lvs "$VG/shared" >/dev/null 2>&1 || fail "the LV is gone although the answer was no"
echo yes | tsv volume delete "lvm:$VG/shared"
lvs "$VG/shared" >/dev/null 2>&1 && fail "the LV is still there after delete"
ok "deleted after unexport and a yes"
echo "lvm: all checks passed"
