#!/usr/bin/env bash
# Issue 6 scenario 2: one writer, many readers. Four tcm_loop paths of one volume; node1 holds
# WRITE EXCLUSIVE (type 1). Every path reads the same data; only the holder writes; the other
# paths' writes get RESERVATION CONFLICT whether they are registered or not (WE: a registered
# non-holder is still not the holder, docs/reservations.md §11); readers see the holder's writes at
# once, since all paths share one backing store and no path caches.
. "$(dirname "$0")/lib.sh"
trap 'set +e; loop_cleanup; stop_daemon' EXIT

load_modules
start_daemon
rm -f /var/tmp/rw.img
N=()
for i in 1 2 3 4; do
    so=$(make_backstore "rw-$i" "/var/tmp/rw.img;size=128M" $((128 << 20)))
    N[$i]=$(loop_export "$so" "naa.500140500000400$i")
done
echo "paths: ${N[*]}"

# read4k DEV BLOCK: one 4 KiB block through the page-cache-free path.
read4k() { dd if="$1" bs=4096 skip="$2" count=1 iflag=direct status=none; }

say "before any reservation: data written through node1 reads the same through all four paths"
head -c 4096 /dev/urandom > /tmp/seed
dd if=/tmp/seed of="${N[1]}" bs=4096 seek=100 oflag=direct conv=notrunc status=none || fail "seed write"
for i in 1 2 3 4; do
    cmp -s /tmp/seed <(read4k "${N[$i]}" 100) || fail "node$i reads different data"
done
ok "four paths read identical data"

say "node1 registers and reserves WRITE EXCLUSIVE; node2 registers too, node3/node4 stay unregistered"
for i in 1 2 3 4; do tur "${N[$i]}"; done
sg_persist -n --out --register --param-sark=0xa1 "${N[1]}" >/dev/null || fail "register node1"
sg_persist -n --out --register --param-sark=0xa2 "${N[2]}" >/dev/null || fail "register node2"
sg_persist -n --out --reserve --param-rk=0xa1 --prout-type=1 "${N[1]}" >/dev/null || fail "reserve WE"
for i in 1 2 3 4; do
    out=$(sg_persist -n --in --read-reservation "${N[$i]}") || fail "read reservation via node$i"
    grep -qi 'Key=0xa1' <<<"$out" && grep -qi 'type: Write Exclusive *$' <<<"$out" ||
        fail "node$i does not see node1's WE reservation: $out"
done
ok "all four see the WE reservation held by key 0xa1"

say "only the holder writes; the others get RESERVATION CONFLICT"
expect_rc 0 "node1 (holder) WRITE(10)" scsi_write "${N[1]}" 200 H
for i in 2 3 4; do
    expect_rc 24 "node$i WRITE(10) conflicts" scsi_write "${N[$i]}" $((200 + i)) X
done
# A write through the block layer fails too (the kernel maps the conflict to an I/O error).
for i in 2 3; do
    if dd if=/tmp/seed of="${N[$i]}" bs=4096 seek=300 oflag=direct conv=notrunc status=none 2>/dev/null; then
        fail "node$i's dd write succeeded under node1's WE reservation"
    fi
done
ok "dd writes from non-holders fail"

say "every path reads, and sees the holder's writes at once"
head -c 512 /dev/zero | tr '\0' H > /tmp/want
for i in 1 2 3 4; do
    expect_rc 0 "node$i READ(10)" scsi_read "${N[$i]}" 200
    cmp -s /tmp/want /tmp/read.out || fail "node$i does not see the holder's write at LBA 200"
done
for round in 1 2 3; do
    head -c 4096 /dev/urandom > /tmp/new
    dd if=/tmp/new of="${N[1]}" bs=4096 seek=$((400 + round)) oflag=direct conv=notrunc status=none ||
        fail "holder dd write $round"
    for i in 2 3 4; do
        cmp -s /tmp/new <(read4k "${N[$i]}" $((400 + round))) || fail "node$i misses holder write $round"
    done
done
ok "three holder writes visible through all readers"
# The refused writes left nothing behind.
for i in 2 3 4; do
    expect_rc 0 "read back LBA $((200 + i))" scsi_read "${N[1]}" $((200 + i))
    cmp -s /tmp/read.out <(head -c 512 /dev/zero | tr '\0' X) && fail "node$i's refused write reached the disk"
done
cmp -s /tmp/seed <(read4k "${N[1]}" 300) && fail "a refused dd write reached the disk"
ok "refused writes changed nothing"

say "the holder releases: every path may write again"
sg_persist -n --out --release --param-rk=0xa1 --prout-type=1 "${N[1]}" >/dev/null || fail "release"
for i in 1 2 3 4; do tur "${N[$i]}"; done
sg_persist -n --in --read-reservation "${N[3]}" | grep -qi 'no reservation' || fail "reservation still held"
for i in 2 3 4; do expect_rc 0 "node$i WRITE(10) after release" scsi_write "${N[$i]}" $((500 + i)) W; done
echo "readers-writer: all checks passed"
