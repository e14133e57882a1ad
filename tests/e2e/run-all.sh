#!/usr/bin/env bash
# tests/e2e/run-all.sh [GLOB]
#
# Runs every guest test tests/e2e/NN-*.sh (two digits, a dash: files named otherwise, such as
# selftest-*.sh, are helpers and never run here), each in its own fresh VM boot through
# scripts/vm/run, one VM at a time. GLOB (matched against the file name, e.g. '0*' or '*smoke*')
# selects a subset. Each test's console is shown live and kept in out/e2e/<name>.log.
# Prints PASS/FAIL with the duration per test and ends with the line "N passed, M failed";
# exits 1 if any test failed or nothing matched.
set -uo pipefail

here=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
repo=$(cd "$here/../.." && pwd)
filter=${1:-*}
logs=$repo/out/e2e

tests=()
for t in "$here"/[0-9][0-9]-*.sh; do
  [[ -f $t ]] || continue
  name=$(basename "$t")
  # shellcheck disable=SC2053 # the filter is a glob on purpose
  [[ $name == $filter ]] && tests+=("$name")
done

if ((${#tests[@]} == 0)); then
  echo "run-all: no test in tests/e2e matches '$filter'" >&2
  echo "0 passed, 0 failed"
  exit 1
fi

# Build (or find) the image first, so the first test's duration is the test's own.
"$repo/scripts/vm/build-image" >/dev/null || { echo "run-all: cannot build the VM image" >&2; exit 1; }
mkdir -p "$logs"

passed=0
failed=0
results=()
for name in "${tests[@]}"; do
  echo "=== RUN $name"
  start=$SECONDS
  "$repo/scripts/vm/run" "tests/e2e/$name" 2>&1 | tee "$logs/${name%.sh}.log"
  rc=${PIPESTATUS[0]}
  took=$((SECONDS - start))
  if ((rc == 0)); then
    line="PASS $name (${took} s)"
    passed=$((passed + 1))
  else
    line="FAIL $name (${took} s, exit $rc, log out/e2e/${name%.sh}.log)"
    failed=$((failed + 1))
  fi
  echo "=== $line"
  results+=("$line")
done

echo
printf '%s\n' "${results[@]}"
echo "$passed passed, $failed failed"
((failed == 0))
