#!/usr/bin/env bash
# tsv-vm: pair
# Scenario 4 of issue 19: libiscsi's conformance suite (iscsi-test-cu, 50-libiscsi's PR suites)
# against one RBD volume served by two target hosts, with libiscsi's two initiator names on
# different hosts. Host 1 (VM a, 10.99.0.1) and host 2 (VM b, 10.99.0.2) each export the image on
# their own IQN with mutual CHAP, as lib-two-hosts.sh's rig does; iscsi-test-cu runs on VM a.
#
# What crosses hosts. iscsi-test-cu gets two URLs: host 1's, then host 2's as its "multipath"
# device. Its suite set-up logs in to the first URL as --initiator-name and to the second as
# --initiator-name-2 (libiscsi 1.19 test-tool/iscsi-test-cu.c, suite_init), and every test of two
# I_T nexuses takes the second URL's session as its second initiator (mpath_sd2_get_or_clone in
# test-tool/iscsi-multipath.c: with two devices it uses mp_sds[1] instead of logging in again to
# the first URL). So in the PR tests (PrinReadKeys, PrinServiceactionRange, Prout*: REGISTER by
# both, RESERVE by one and the other's access checked, PREEMPT of one by the other) initiator 1
# is on host 1 and initiator 2 on host 2: every reservation the one makes is judged on the other
# host through the table in RADOS. Reserve6 runs to show the documented answer on a volume of
# several hosts: SPC-2 RESERVE/RELEASE are not offered there (INVALID COMMAND OPERATION CODE,
# docs/operations.md §10), so libiscsi skips its seven tests ("RESERVE6 is not implemented on
# target"); on one host (50-libiscsi, 43-spc2) they pass. At the start,
# iscsi-test-cu also opens host 2's URL as initiator 1 to check that both URLs name the same LU
# (same designators), so both hosts admit both names.
#
# Which suites. Those of two nexuses (above), and those single-initiator suites whose answer
# depends on the RBD store rather than on the command set: COMPARE AND WRITE (atomic in the OSD),
# INQUIRY (the identity kept in the image's metadata), REPORT SUPPORTED OPCODES (what the store
# advertises). The rest of 50-libiscsi's suites (Read*, Write*, Verify*, Unmap, GetLBAStatus:
# about 11 minutes on RBD under TCG, one host, one initiator) prove nothing across hosts; the
# RBD store's reads, writes, UNMAP and allocation are tested against real Ceph in `make test`.
#
# CHAP: libiscsi takes the credentials from the URL (iscsi://USER%SECRET@PORTAL/IQN/LUN and
# ?target_user=&target_password= for mutual CHAP), one set per URL, not per initiator name; and
# each URL is used by both names (the check above). So both names share one CHAP user
# and secret, and one mutual secret; the rig's nodes keep their own per-initiator secrets.
#
# Passes only if every test passes or is skipped for an optional feature (libiscsi prints
# "[SKIPPED]": Reserve6's seven, above, and COMPARE AND WRITE's LBPPB one as in 50-libiscsi),
# and if each host's daemon served commands on the path of the initiator that logged in to it. Table in
# out/e2e/libiscsi-two-hosts-table.txt, log in out/e2e/libiscsi-two-hosts.log.
IMAGE_SIZE=64M
I1=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test
I2=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2
EXPORT_INITIATORS="$I1 $I2"
. "$(dirname "$0")/lib-two-hosts.sh"
LIBISCSI_SUITES=(
    SCSI.PrinReadKeys SCSI.PrinServiceactionRange SCSI.PrinReportCapabilities
    SCSI.ProutRegister SCSI.ProutReserve SCSI.ProutClear SCSI.ProutPreempt SCSI.Reserve6
    SCSI.CompareAndWrite SCSI.Inquiry SCSI.ReportSupportedOpcodes
)

readonly CHAP_USER=libiscsi
chap_line() { echo "$1 $CHAP_USER $(chap_secret initiator $CHAP_USER) tsv-target $(chap_secret target $CHAP_USER)"; }

# url N: host N's LUN 0 with the CHAP credentials, as iscsi-test-cu takes it.
url() {
    echo "iscsi://$CHAP_USER%$(chap_secret initiator $CHAP_USER)@$(host_addr "$1")/$(host_target "$1")/0?target_user=tsv-target&target_password=$(chap_secret target $CHAP_USER)"
}

say "VM $ROLE: $([ "$ROLE" = a ] && echo "Ceph, ")target host $HOST"
load_modules
if [ "$ROLE" = a ]; then ceph_up; fi
ceph_client
target_host_up
if [ "$ROLE" = b ]; then
    pair_wait libiscsi-done 1700 >/dev/null
    echo "host 2: $(commands_of "$I1") commands from $I1, $(commands_of "$I2") from $I2"
    pair_signal h2-commands "$(commands_of "$I2")"
    pair_done 600
    exit 0
fi
pair_wait exported.h2 900 >/dev/null

url1=$(url 1) url2=$(url 2)
echo "first URL: host 1 ($(host_target 1)) as $I1; second: host 2 ($(host_target 2)) as $I2"
set +e
( libiscsi_suites libiscsi-two-hosts "two initiators on two target hosts, one RBD volume" \
      --initiator-name="$I1" --initiator-name-2="$I2" "$url1" "$url2" )
rc=$?
set -e
pair_signal libiscsi-done
h1=$(commands_of "$I1")
h2=$(pair_wait h2-commands 120)
echo "host 1: $h1 commands from $I1 (and $(commands_of "$I2") from $I2); host 2: $h2 from $I2"
pair_done 600
[ "$rc" = 0 ] || fail "libiscsi across two hosts: failures (out/e2e/libiscsi-two-hosts-table.txt)"
[ "$h1" != unbound ] && [ "$h1" -gt 0 ] || fail "host 1 served no command of $I1 ($h1)"
[ "$h2" != unbound ] && [ "$h2" -gt 0 ] || fail "host 2 served no command of $I2 ($h2): the second initiator did not cross"
echo "libiscsi across two hosts: every test passed or was skipped; initiator 2 was served by host 2"
