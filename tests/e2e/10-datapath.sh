#!/usr/bin/env bash
# Issue 3 on a real kernel: one sparse-file volume, two TCMU backstores, two tcm_loop disks.
. "$(dirname "$0")/lib.sh"
trap 'stop_daemon' EXIT

load_modules
start_daemon

say "two paths of one volume, one path of another"
rm -f /var/tmp/vol1.img /var/tmp/vol2.img
A=$(make_backstore vol1-a "/var/tmp/vol1.img;size=1G" $((1 << 30)))
B=$(make_backstore vol1-b "/var/tmp/vol1.img;size=1G" $((1 << 30)))
C=$(make_backstore vol2-a "/var/tmp/vol2.img;size=256M" $((256 << 20)))
DA=$(loop_export "$A" naa.5001405000000a01)
DB=$(loop_export "$B" naa.5001405000000b01)
DC=$(loop_export "$C" naa.5001405000000c01)
echo "vol1 via $DA and $DB, vol2 via $DC"
[ "$(stat -c %s /var/tmp/vol1.img)" = $((1 << 30)) ] || fail "vol1.img not created at 1 GiB"
[ "$(du -k /var/tmp/vol1.img | cut -f1)" -lt 1024 ] || fail "vol1.img was preallocated"
ok "sparse file created at 1 GiB, not preallocated"

say "data written through one path reads back identical through the other"
head -c $((4 << 20)) /dev/urandom > /tmp/data
dd if=/tmp/data of="$DA" bs=1M seek=8 oflag=direct status=none
dd if="$DB" of=/tmp/back bs=1M skip=8 count=4 iflag=direct status=none
cmp /tmp/data /tmp/back || fail "data differs between paths"
ok "4 MiB identical through both paths"

say "fio verify: write through path A, verify through path B"
fio --name=w --filename="$DA" --rw=randwrite --bs=4k --size=64M --offset=128M --direct=1 \
    --ioengine=libaio --iodepth=16 --verify=crc32c --do_verify=0 --verify_state_save=0 --randrepeat=1 --output=/tmp/fio-w.txt
fio --name=w --filename="$DB" --rw=randwrite --bs=4k --size=64M --offset=128M --direct=1 \
    --ioengine=libaio --iodepth=16 --verify=crc32c --verify_only=1 --verify_state_load=0 --verify_state_save=0 --randrepeat=1 --output=/tmp/fio-v.txt \
    || { cat /tmp/fio-v.txt; fail "fio verify through the other path failed"; }
grep -q 'err= 0' /tmp/fio-v.txt || { cat /tmp/fio-v.txt; fail "fio reported errors"; }
ok "fio verify passed across paths"

say "identity: VPD 80h and 83h equal on both paths, different from another volume"
for p in 0x80 0x83; do
    a=$(sg_vpd -p $p -r "$DA" | od -An -tx1); b=$(sg_vpd -p $p -r "$DB" | od -An -tx1); c=$(sg_vpd -p $p -r "$DC" | od -An -tx1)
    [ "$a" = "$b" ] || fail "VPD $p differs between paths of one volume"
    [ "$a" != "$c" ] || fail "VPD $p equal across volumes"
done
sg_vpd -p 0x83 "$DA" | grep -qi '/var/tmp' && fail "VPD 83h leaks the backing path"
ok "identity matches per volume and does not leak the path"

say "UNMAP deallocates: GET LBA STATUS and du agree"
before=$(du -k /var/tmp/vol1.img | cut -f1)
sg_unmap --lba=16384 --num=8192 "$DA"
sg_get_lba_status --lba=16384 "$DA" | tee /tmp/lbas
grep -Eqi 'deallocated|unmapped' /tmp/lbas || fail "GET LBA STATUS does not show the range deallocated"
after=$(du -k /var/tmp/vol1.img | cut -f1)
[ "$after" -lt "$before" ] || fail "file did not shrink after UNMAP ($before -> $after KiB)"
ok "UNMAP punched a hole ($before -> $after KiB)"

say "COMPARE AND WRITE: success, then miscompare"
dd if=/dev/zero of="$DA" bs=512 seek=100 count=1 oflag=direct status=none
head -c 512 /dev/zero > /tmp/caw; head -c 512 /dev/zero | tr '\0' 'Z' >> /tmp/caw
sg_compare_and_write --in=/tmp/caw --lba=100 --num=1 --xferlen=1024 "$DB" || fail "COMPARE AND WRITE should succeed"
set +e; sg_compare_and_write --in=/tmp/caw --lba=100 --num=1 --xferlen=1024 "$DA" >/tmp/caw.out 2>&1; rc=$?; set -e
cat /tmp/caw.out
[ "$rc" = 14 ] || fail "second COMPARE AND WRITE: exit $rc, expected 14 (miscompare)"
ok "COMPARE AND WRITE miscompares after the first one wrote"

say "SYNCHRONIZE CACHE and FUA writes"
sg_sync "$DA" || fail "sg_sync"
sg_dd if=/tmp/data of="$DA" bs=512 count=64 seek=4096 oflag=fua >/dev/null 2>&1 || fail "FUA write"
ok "sync and FUA succeed"

say "REPORT SUPPORTED OPERATION CODES"
sg_opcodes "$DA" | tee /tmp/opcodes | head -40
for op in 'Read(16)' 'Write(16)' 'Compare and write' 'Unmap' 'Persistent reserve out'; do
    grep -qi "$op" /tmp/opcodes || fail "sg_opcodes does not list $op"
done
ok "opcodes listed"

say "reading past the end: ILLEGAL REQUEST, LBA out of range"
set +e; sg_raw -r 512 "$DC" 88 00 00 00 00 00 7f ff ff ff 00 00 00 01 00 00 >/tmp/raw.out 2>&1; set -e
cat /tmp/raw.out
grep -qi 'out of range' /tmp/raw.out || fail "no LBA out of range sense"
ok "21/00 past the end"
say "resize: dev_size on a live backstore grows the volume; the initiator is told"
echo -n $((512 << 20)) > "$C/attrib/dev_size" || fail "writing dev_size was refused"
for _ in $(seq 1 50); do grep -q "resized" /tmp/daemon.log && break; sleep 0.2; done
tur "$DC"
sg_readcap -l "$DC" | tee /tmp/cap
grep -q 'Last LBA=1048575\|Last logical block address=1048575' /tmp/cap || fail "READ CAPACITY does not show 512 MiB"
[ "$(stat -c %s /var/tmp/vol2.img)" = $((512 << 20)) ] || fail "vol2.img was not grown"
ok "grown to 512 MiB"
echo "datapath: all checks passed"
