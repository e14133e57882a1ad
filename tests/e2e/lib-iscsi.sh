# iSCSI helpers for guest e2e scripts (sourced after lib.sh; the only definitions of the iscsi_*
# helpers, so that no test depends on which file it sources last). One iSCSI target on 127.0.0.1
# whose ACLs each map LUN 0 to their own user:sharedvol backstore: the product's model, one
# backstore per I_T nexus (docs/architecture.md §3), written straight into configfs the way tsvctl's
# `export iscsi` has targetcli do it (TPG LUNs without automatic mapped LUNs, one ACL each).

PORTAL_IP=127.0.0.1
PORTAL_PORT=3260

# ISCSI_CHAP=mutual: each ACL requires CHAP and answers with its own target secret (mutual
# CHAP), as `tsvctl export iscsi --chap-secrets` sets up; iscsi_login then logs in with them.
# Unset: no authentication (tests about something else). The secrets are derived from the
# initiator name, so export and login agree without a file.
ISCSI_CHAP=${ISCSI_CHAP:-}
chap_secret() { printf '%s-%s' "$1" "$(printf '%s' "$2" | sha256sum | cut -c1-24)"; } # chap_secret ROLE INITIATOR

# iscsi_export TARGET_IQN INITIATOR=BACKSTORE_DIR...: TPG LUN k links the k-th backstore and
# the k-th initiator's ACL maps it as its LUN 0.
iscsi_export() {
    local iqn=$1; shift
    [ -d "$CFS/iscsi" ] || mkdir "$CFS/iscsi"
    local t="$CFS/iscsi/$iqn/tpgt_1" k=0 pair init so
    mkdir -p "$t"
    mkdir "$t/np/$PORTAL_IP:$PORTAL_PORT"
    echo 0 > "$t/attrib/generate_node_acls"
    if [ -n "$ISCSI_CHAP" ]; then echo 1 > "$t/attrib/authentication"; else echo 0 > "$t/attrib/authentication"; fi
    echo 0 > "$t/attrib/demo_mode_write_protect"
    for pair in "$@"; do
        init=${pair%%=*}; so=${pair#*=}
        mkdir "$t/lun/lun_$k"
        ln -s "$so" "$t/lun/lun_$k/$(basename "$so")"
        mkdir -p "$t/acls/$init/lun_0"
        ln -s "$t/lun/lun_$k" "$t/acls/$init/lun_0/mapped"
        if [ -n "$ISCSI_CHAP" ]; then
            printf '%s' "${init##*:}" > "$t/acls/$init/auth/userid"
            chap_secret initiator "$init" > "$t/acls/$init/auth/password"
            printf '%s' tsv-target > "$t/acls/$init/auth/userid_mutual"
            chap_secret target "$init" > "$t/acls/$init/auth/password_mutual"
        fi
        k=$((k + 1))
    done
    echo 1 > "$t/enable"
}

# iscsi_unexport TARGET_IQN: removes what iscsi_export made (sessions must be gone).
iscsi_unexport() {
    local t="$CFS/iscsi/$1/tpgt_1" a l
    [ -d "$t" ] || return 0
    echo 0 > "$t/enable" 2>/dev/null || true
    for a in "$t"/acls/*/; do
        [ -d "$a" ] || continue
        rm -f "$a"lun_0/mapped; rmdir "$a"lun_0; rmdir "$a"
    done
    for l in "$t"/lun/lun_*; do
        [ -d "$l" ] || continue
        find "$l" -maxdepth 1 -type l -delete; rmdir "$l"
    done
    rmdir "$t"/np/* 2>/dev/null || true
    rmdir "$t" "$CFS/iscsi/$1" 2>/dev/null || true
}

# iscsi_login TARGET_IQN IFACE INITIATOR: open-iscsi login with INITIATOR's name through its
# own iface; prints the /dev/sdX of its LUN 0.
iscsi_login() {
    local iqn=$1 iface=$2 init=$3 before s blk
    systemctl start iscsid.service
    iscsiadm -m iface -I "$iface" -o new >/dev/null 2>&1 || true
    iscsiadm -m iface -I "$iface" -o update -n iface.initiatorname -v "$init" >/dev/null
    iscsiadm -m discovery -t sendtargets -p "$PORTAL_IP:$PORTAL_PORT" -I "$iface" >/dev/null ||
        fail "discovery as $init"
    if [ -n "$ISCSI_CHAP" ]; then
        local kv
        for kv in authmethod=CHAP "username=${init##*:}" "password=$(chap_secret initiator "$init")" \
                  username_in=tsv-target "password_in=$(chap_secret target "$init")"; do
            iscsiadm -m node -T "$iqn" -p "$PORTAL_IP:$PORTAL_PORT" -I "$iface" -o update \
                -n "node.session.auth.${kv%%=*}" -v "${kv#*=}" >/dev/null || fail "CHAP ${kv%%=*} for $init"
        done
    fi
    iscsiadm -m node -T "$iqn" -p "$PORTAL_IP:$PORTAL_PORT" -I "$iface" --login >/dev/null ||
        fail "login as $init"
    for _ in $(seq 1 150); do
        udevadm settle 2>/dev/null || true
        for s in /sys/class/iscsi_session/session*; do
            [ "$(cat "$s/initiatorname" 2>/dev/null)" = "$init" ] || continue
            # One initiator may be logged in to several targets (a volume on two hosts).
            [ "$(cat "$s/targetname" 2>/dev/null)" = "$iqn" ] || continue
            # LUN 0's disk: with more LUNs, ls of several block/ dirs prints headers first.
            blk=$(ls "$s"/device/target*/*:*:*:0/block 2>/dev/null | head -n1)
            if [ -n "$blk" ] && [ -b "/dev/$blk" ]; then echo "/dev/$blk"; return 0; fi
        done
        sleep 0.2
    done
    fail "no disk appeared for the iSCSI session of $init"
}

# iscsi_logout TARGET_IQN IFACE
iscsi_logout() {
    iscsiadm -m node -T "$1" -p "$PORTAL_IP:$PORTAL_PORT" -I "$2" --logout >/dev/null
}

iscsi_cleanup() { # iscsi_cleanup TARGET_IQN: every session and node record of the target
    iscsiadm -m node -T "$1" --logout >/dev/null 2>&1 || true
    iscsiadm -m node -T "$1" -o delete >/dev/null 2>&1 || true
}

# libiscsi's conformance suite (iscsi-test-cu, package libiscsi-bin), as 50-libiscsi and
# 83-two-hosts-libiscsi run it. The suites of issue 6, by libiscsi's names ('SCSI.Read*' takes in
# ReadCapacity10/16, 'SCSI.Write*' WriteVerify* and WriteSame*). Nothing is trimmed: about 260 s
# under TCG on a file backstore, of which Write* takes 140 s.
LIBISCSI_SUITES=(
    SCSI.PrinReadKeys SCSI.PrinServiceactionRange SCSI.PrinReportCapabilities
    SCSI.ProutRegister SCSI.ProutReserve SCSI.ProutClear SCSI.ProutPreempt SCSI.Reserve6
    'SCSI.Read*' 'SCSI.Write*' 'SCSI.Verify*' SCSI.Unmap SCSI.CompareAndWrite SCSI.GetLBAStatus
    SCSI.Inquiry SCSI.ModeSense6 SCSI.ReportSupportedOpcodes
    SCSI.TestUnitReady SCSI.StartStopUnit SCSI.PreventAllow
)
# Tests excluded by full name (FAMILY.SUITE.TEST), each with its reason. None.
LIBISCSI_EXCLUDE=(
)

# libiscsi_suites NAME TITLE URL [URL2]: every suite of LIBISCSI_SUITES, one invocation per
# pattern (so that the table says where the guest time goes), logged to out/e2e/NAME.log with
# the per-test table in out/e2e/NAME-table.txt (tests/e2e/libiscsi-table.py, whose TITLE line
# heads it). With URL2, iscsi-test-cu's "multipath" device: its suite set-up logs in to URL as
# its first initiator name and to URL2 as its second, and the tests of two I_T nexuses take
# URL2's session as the second. Fails unless every test passed or was skipped.
libiscsi_suites() {
    local name=$1 title=$2 out=$REPO/out/e2e suite s0 t0 rc
    shift 2
    say "iscsi-test-cu $(dpkg-query -W -f '${Version}' libiscsi-bin 2>/dev/null)"
    mkdir -p "$out"
    : > "$out/$name.log"; : > /tmp/suite-times
    t0=$SECONDS
    for suite in "${LIBISCSI_SUITES[@]}"; do
        s0=$SECONDS
        iscsi-test-cu --dataloss --verbose --test="$suite" "$@" >> "$out/$name.log" 2>&1 || true
        echo "$suite $((SECONDS - s0))" | tee -a /tmp/suite-times
    done
    echo "iscsi-test-cu: $((SECONDS - t0)) s in all"
    python3 "$REPO/tests/e2e/libiscsi-table.py" "$out/$name.log" "$out/$name-table.txt" /tmp/suite-times \
        "$title" "${LIBISCSI_EXCLUDE[@]}" && rc=0 || rc=$?
    [ "$rc" = 0 ] || fail "libiscsi: failures (table in out/e2e/$name-table.txt, log in out/e2e/$name.log)"
    echo "libiscsi: all tests passed or skipped"
}
