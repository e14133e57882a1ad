#!/usr/bin/env python3
# tests/e2e/libiscsi-table.py LOG TABLE TIMES TITLE [EXCLUDED...]: the per-test table of an
# iscsi-test-cu --verbose log (libiscsi_suites in lib-iscsi.sh). CUnit prints "Test: NAME
# ...passed" / "...FAILED" with libiscsi's own messages in between; a test that does not find an
# optional feature passes after printing "[SKIPPED]", and is counted as skip. EXCLUDED are full
# names (FAMILY.SUITE.TEST) whose failure is expected, each with its reason where it is listed.
# Exits 1 on any unexpected failure or when the log holds no test at all.
import datetime
import re
import sys

log, table, times, title, excluded = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], set(sys.argv[5:])
text = open(log, errors="replace").read()
rows, suite = [], None
for m in re.finditer(r"Suite: (\S+)|Test: (\S+) \.\.\.(.*?)(passed|FAILED)", text, re.S):
    if m.group(1):
        suite = m.group(1)
        continue
    name, between, verdict = f"SCSI.{suite}.{m.group(2)}", m.group(3), m.group(4)
    if verdict == "passed":
        result = "skip" if "[SKIPPED]" in between else "pass"
    else:
        result = "excluded" if name in excluded else "FAIL"
    why = re.search(r"\[SKIPPED\][^\n]*", between).group(0) if result == "skip" else ""
    rows.append((name, result, why))
counts = {k: sum(1 for r in rows if r[1] == k) for k in ("pass", "skip", "FAIL", "excluded")}
with open(table, "w") as f:
    f.write(f"libiscsi iscsi-test-cu against tcmu-shared-volume ({title}), {datetime.date.today()}\n")
    for name, result, why in rows:
        f.write(f"{name:<58} {result:<8} {why}\n")
    f.write(f"total {len(rows)}: " + ", ".join(f"{v} {k}" for k, v in counts.items()) + "\n")
    f.write("guest seconds per suite pattern: " + ", ".join(l.strip().replace(" ", "=") for l in open(times)) + "\n")
print(open(table).read())
sys.exit(1 if counts["FAIL"] or not rows else 0)
