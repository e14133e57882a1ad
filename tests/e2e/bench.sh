#!/usr/bin/env bash
# tests/e2e/bench.sh — issue 6 "Speed" on a real kernel (`make bench-e2e`).
#
# Builds tcmu-runner's user:file handler from Debian's source (scripts/bench/), boots the test
# VM once with tests/e2e/bench-guest.sh, which runs fio on tcm_loop disks backed by this daemon,
# tcmu-runner's user:file and LIO's fileio, then 128 paths of one volume. Prints the markdown
# table and saves it to out/bench/bench-e2e.md (raw results: out/bench/results.jsonl).
# Under TCG every number is slow; only ratios within one run mean anything.
#   BENCH_RUNTIME (s per fio run, default 10), BENCH_RAMP (2), BENCH_ROUNDS (3: every system once
#   per round, in turn; the report gives medians and each round's figures), BENCH_PATHS (128), BENCH_ONLY
#   (system:config pairs to run, e.g. "sharedvol:default tcmu-runner:default"; skips the paths run),
#   BENCH_DAEMON (aot: the Native AOT daemon of out/aot, which the packages ship; default bin;
#   prof: out/aot-prof, the same with symbols), BENCH_WORKLOADS (e.g. "randread-qd32 seqread-1m"),
#   BENCH_PERF=1 (perf record of the whole VM during each run: out/bench/perf/*.txt),
#   BENCH_STAT=1 (perf stat of the serving process: system calls by kind and context switches per IO),
#   BENCH_BASELINE=1 (also out/baseline/tcmu-shared-volume, an earlier build, as sharedvol-base
#   in every round: an A/B of a data-path change in one boot; the report adds a table),
#   BENCH_SUITE (file: the above, the default; rbd: this daemon against tcmu-runner's rbd handler
#   on the one-node Ceph of scripts/ceph/start.sh in the same VM, `make bench-e2e-rbd`, saved to
#   out/bench/bench-e2e-rbd.md; all: both), BENCH_RBD_SIZE (each RBD image, default 256M).
# Every round also runs "ceiling" (scripts/bench/tcmu-ring-ceiling.c): a TCMU handler that does
# no work of its own: within the noise, the most a handler that sleeps while its ring is empty
# gets out of this kernel and VM.
set -euo pipefail

here=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$repo/out/bench
mkdir -p "$out"
[[ -x $repo/out/bin/tcmu-shared-volume ]] || { echo "bench: run make publish first" >&2; exit 2; }

"$repo/scripts/bench/build-tcmu-file-handler.sh" "$out"
# The yardstick handler (system "ceiling"): the guest is the same Debian release, so it runs there.
gcc -O2 -Wall -Wextra -Werror -o "$out/tcmu-ring-ceiling" "$repo/scripts/bench/tcmu-ring-ceiling.c"
rm -f "$out/bench-body.md" "$out/results.jsonl"

args=()
for v in BENCH_RUNTIME BENCH_RAMP BENCH_ROUNDS BENCH_PATHS BENCH_ONLY BENCH_DAEMON BENCH_WORKLOADS BENCH_PERF BENCH_STAT BENCH_BASELINE BENCH_SUITE BENCH_RBD_SIZE; do [[ -n ${!v:-} ]] && args+=("$v=${!v}"); done
export TSV_VM_TIMEOUT=${TSV_VM_TIMEOUT:-3000}
start=$SECONDS
"$repo/scripts/vm/run" tests/e2e/bench-guest.sh "${args[@]}" 2>&1 | tee "$out/bench-console.log"
rc=${PIPESTATUS[0]}
((rc == 0)) || { echo "bench: guest exited $rc (console: out/bench/bench-console.log)" >&2; exit "$rc"; }
[[ -s $out/bench-body.md ]] || { echo "bench: guest wrote no out/bench/bench-body.md" >&2; exit 1; }

report=$out/bench-e2e.md
[[ ${BENCH_SUITE:-file} != rbd ]] || report=$out/bench-e2e-rbd.md
{
  echo "## End-to-end benchmark ($(date +%F), suite ${BENCH_SUITE:-file})"
  echo
  echo "QEMU TCG (software emulation, \`-cpu ${TSV_VM_CPU:-max,-erms}\`), -smp ${TSV_VM_CPUS:-2}, ${TSV_VM_MEMORY:-3072} MiB;" \
       "host $(nproc) cores shared with other work, so only ratios within this run mean anything." \
       "Run took $((SECONDS - start)) s. Daemon: $(case ${BENCH_DAEMON:-bin} in aot) echo "out/aot (Native AOT, as packaged)" ;; prof) echo "out/aot-prof (Native AOT with symbols)" ;; *) echo "out/bin (ReadyToRun, JIT)" ;; esac)."
  echo
  cat "$out/bench-body.md"
} >"$report"
echo
cat "$report"
