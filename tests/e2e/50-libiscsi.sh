#!/usr/bin/env bash
# Issue 6 scenario 7: libiscsi's conformance suite (iscsi-test-cu) against an iSCSI export of
# one shared volume with two initiator names, each ACL mapping LUN 0 to its own user:sharedvol
# backstore (the product's model, docs/architecture.md §3). The two-initiator PR tests log in as
# libiscsi's two default names, so both must be admitted and land on different paths of the
# same volume. Writes a per-test table to out/e2e/libiscsi-table.txt; passes only if every test
# passes or is skipped for an optional feature (libiscsi prints "[SKIPPED]" then).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-iscsi.sh"

readonly TGT=iqn.2003-01.org.linux-iscsi.tsv:libiscsi
readonly I1=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test
readonly I2=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2
trap 'set +e; iscsi_unexport $TGT; stop_daemon' EXIT

load_modules
start_daemon
rm -f /var/tmp/libiscsi.img
A=$(make_backstore libiscsi-1 "/var/tmp/libiscsi.img;size=64M" $((64 << 20)))
B=$(make_backstore libiscsi-2 "/var/tmp/libiscsi.img;size=64M" $((64 << 20)))
iscsi_export "$TGT" "$I1=$A" "$I2=$B"
for so in "$A" "$B"; do
    key="$(basename "$(dirname "$so")")/$(basename "$so")"
    for _ in $(seq 1 50); do grep -q "$key: bound to" /tmp/daemon.log && break; sleep 0.2; done
    grep -q "$key: bound to" /tmp/daemon.log || fail "$key not bound to its ACL's initiator"
done
ok "both paths bound to their initiators"

# The suites (LIBISCSI_SUITES) and the table: lib-iscsi.sh, shared with 83-two-hosts-libiscsi.
libiscsi_suites libiscsi "two initiators, one volume" "iscsi://$PORTAL_IP/$TGT/0"
