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
readonly OUT=$REPO/out/e2e
trap 'set +e; iscsi_unexport $TGT; stop_daemon' EXIT

# The suites of issue 6, by libiscsi's names ('SCSI.Read*' takes in ReadCapacity10/16,
# 'SCSI.Write*' WriteVerify* and WriteSame*). Nothing is trimmed: about 260 s under TCG, of
# which Write* takes 140 s.
SUITES=(
    SCSI.PrinReadKeys SCSI.PrinServiceactionRange SCSI.PrinReportCapabilities
    SCSI.ProutRegister SCSI.ProutReserve SCSI.ProutClear SCSI.ProutPreempt SCSI.Reserve6
    'SCSI.Read*' 'SCSI.Write*' 'SCSI.Verify*' SCSI.Unmap SCSI.CompareAndWrite SCSI.GetLBAStatus
    SCSI.Inquiry SCSI.ModeSense6 SCSI.ReportSupportedOpcodes
    SCSI.TestUnitReady SCSI.StartStopUnit SCSI.PreventAllow
)
# Tests excluded by full name (FAMILY.SUITE.TEST), each with its reason.
EXCLUDE=(
)

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

say "iscsi-test-cu $(dpkg-query -W -f '${Version}' libiscsi-bin 2>/dev/null)"
mkdir -p "$OUT"
# One invocation per suite pattern, so that the table can say where the guest time goes.
: > "$OUT/libiscsi.log"; : > /tmp/suite-times
t0=$SECONDS
for suite in "${SUITES[@]}"; do
    s0=$SECONDS
    iscsi-test-cu --dataloss --verbose --test="$suite" "iscsi://$PORTAL_IP/$TGT/0" >> "$OUT/libiscsi.log" 2>&1 || true
    echo "$suite $((SECONDS - s0))" | tee -a /tmp/suite-times
done
echo "iscsi-test-cu: $((SECONDS - t0)) s in all"

# Per-test result from CUnit's verbose output: "Test: NAME ...passed" / "...FAILED", with
# libiscsi's own messages in between (an optional feature it does not find prints [SKIPPED]).
set +e
python3 - "$OUT/libiscsi.log" "$OUT/libiscsi-table.txt" /tmp/suite-times "${EXCLUDE[@]}" <<'EOF'
import re, sys, datetime
log, table, times, excluded = sys.argv[1], sys.argv[2], sys.argv[3], set(sys.argv[4:])
text = open(log, errors="replace").read()
rows, suite = [], None
for m in re.finditer(r"Suite: (\S+)|Test: (\S+) \.\.\.(.*?)(passed|FAILED)", text, re.S):
    if m.group(1):
        suite = m.group(1); continue
    name, between, verdict = f"SCSI.{suite}.{m.group(2)}", m.group(3), m.group(4)
    if verdict == "passed":
        result = "skip" if "[SKIPPED]" in between else "pass"
    else:
        result = "excluded" if name in excluded else "FAIL"
    why = ""
    if result == "skip":
        why = re.search(r"\[SKIPPED\][^\n]*", between).group(0)
    rows.append((name, result, why))
# Failure details follow the run summary: "1. file.c:LINE  - message" per failed assertion.
with open(table, "w") as f:
    f.write(f"libiscsi iscsi-test-cu against tcmu-shared-volume (two initiators, one volume), {datetime.date.today()}\n")
    for name, result, why in rows:
        f.write(f"{name:<58} {result:<8} {why}\n")
    counts = {k: sum(1 for r in rows if r[1] == k) for k in ("pass", "skip", "FAIL", "excluded")}
    f.write(f"total {len(rows)}: " + ", ".join(f"{v} {k}" for k, v in counts.items()) + "\n")
    f.write("guest seconds per suite pattern: " + ", ".join(l.strip().replace(" ", "=") for l in open(times)) + "\n")
print(open(table).read())
sys.exit(1 if counts["FAIL"] or not rows else 0)
EOF
rc=$?
set -e
[ "$rc" = 0 ] || fail "libiscsi: failures (table in out/e2e/libiscsi-table.txt, log in out/e2e/libiscsi.log)"
echo "libiscsi: all tests passed or skipped"
