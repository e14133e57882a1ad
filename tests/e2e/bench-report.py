#!/usr/bin/env python3
"""Markdown tables from tests/e2e/bench-guest.sh's results.jsonl (one JSON object a line)."""
import json
import sys

recs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
env = next((r for r in recs if r["kind"] == "env"), {})
fio = [r for r in recs if r["kind"] == "fio"]
procs = [r for r in recs if r["kind"] == "proc"]
paths = [r for r in recs if r["kind"] == "paths"]

WORKLOADS = ["randread-qd1", "randread-qd32", "randwrite-qd1", "randwrite-qd32", "seqread-1m", "seqwrite-1m"]
SYSTEMS = ["sharedvol", "tcmu-runner", "fileio"]
# The tuned runs change TCMU backstores only; fileio's second run is its defaults again.
CONFIGS = {"default": {"sharedvol": "default", "tcmu-runner": "default", "fileio": "default"},
           "tuned": {"sharedvol": "tuned", "tcmu-runner": "tuned", "fileio": "default-again"}}


def get(system, config, wl):
    return next((r for r in fio if r["system"] == system and r["config"] == config and r["workload"] == wl), None)


def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "–"


def num(v, fmt="{:.0f}"):
    return fmt.format(v) if v is not None else "–"


print(f"fio {env.get('fio', '?')}, libaio, direct=1, {env.get('runtime')} s time_based + {env.get('ramp')} s ramp "
      f"per run; 4 KiB random at iodepth 1 and 32, 1 MiB sequential at iodepth 8; one 1 GiB file "
      f"(written once, page-cached) behind every system; tcm_loop disks; guest kernel {env.get('kernel')}, "
      f"{env.get('cpus')} vCPUs, {env.get('mem_mib')} MiB. tcmu-runner {env.get('runner')} with user:file "
      f"built from Debian's source. fileio: fd_buffered_io=1. Tuned = `{env.get('tuned')}` on both TCMU "
      f"backstores (sharedvol and tcmu-runner); fileio unchanged (its row under 'tuned' is a second "
      f"default run, a measure of run-to-run noise).")
print()
for cname, cmap in CONFIGS.items():
    print(f"### {cname}")
    print()
    print("| workload | system | IOPS | MiB/s | p50 µs | p99 µs | CPU µs/IO | switches/IO |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for wl in WORKLOADS:
        for s in SYSTEMS:
            r = get(s, cmap[s], wl)
            if not r:
                continue
            err = " (errors!)" if r["errors"] else ""
            print(f"| {wl} | {s}{err} | {r['iops']:.0f} | {r['bw_mib']:.1f} | {r['p50_us']:.0f} | "
                  f"{r['p99_us']:.0f} | {num(r['cpu_us_per_io'])} | {num(r.get('switches_per_io'), '{:.2f}')} |")
    print()
    print("| workload | IOPS a/b | IOPS a/c | p50 a/b | p50 a/c | p99 a/b | p99 a/c |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for wl in WORKLOADS:
        a, b, c = (get(s, cmap[s], wl) for s in SYSTEMS)
        if not a:
            continue
        f = lambda k, x: ratio(a[k], x[k]) if x else "–"  # noqa: E731
        print(f"| {wl} | {f('iops', b)} | {f('iops', c)} | {f('p50_us', b)} | {f('p50_us', c)} | "
              f"{f('p99_us', b)} | {f('p99_us', c)} |")
    print()

print("a = this daemon (user:sharedvol), b = tcmu-runner user:file, c = LIO fileio. "
      "IOPS ratio > 1: a is faster; latency ratio < 1: a is faster.")
print()
print("| system | config | disk max_sectors_kb | VmRSS after runs (KiB) | RssAnon (KiB) | CPU s over the 6 runs | CPU s idle 5 s |")
print("|---|---|---:|---:|---:|---:|---:|")
for p in procs:
    cpu = sum(r["cpu_s"] for r in fio if r["system"] == p["system"] and r["config"] == p["config"]
              and r["cpu_s"] is not None)
    cpu_s = f"{cpu:.1f}" if p["rss_kib"] is not None else "– (kernel)"
    print(f"| {p['system']} | {p['config']} | {p['max_sectors_kb']} | {num(p['rss_kib'])} | "
          f"{num(p['anon_kib'])} | {cpu_s} | "
          f"{num(p['idle_ticks_5s'] / p['hz'] if p.get('idle_ticks_5s') is not None else None, '{:.2f}')} |")
print()
for p in paths:
    print(f"### {p['paths']} paths of one volume (this daemon)")
    print()
    print(f"{p['paths']} TCMU backstores on one file, {p['paths']} tcm_loop targets, one fio job per disk: "
          f"4 KiB randrw 50/50, iodepth 2, direct, libaio.")
    print()
    print("| paths | aggregate IOPS | read IOPS | write IOPS | read p50 µs | read p99 µs | daemon CPU s | "
          "VmRSS idle / set up / under load (MiB) | RssAnon set up / load (MiB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|---|")
    print(f"| {p['paths']} | {p['iops']:.0f} | {p['read_iops']:.0f} | {p['write_iops']:.0f} | {p['p50_us']:.0f} | "
          f"{p['p99_us']:.0f} | {p['cpu_s']:.1f} | {p['rss_idle_kib']/1024:.0f} / {p['rss_setup_kib']/1024:.0f} / "
          f"{p['rss_load_kib']/1024:.0f} | {p['anon_setup_kib']/1024:.0f} / {p['anon_load_kib']/1024:.0f} |"
          + (" errors!" if p["errors"] else ""))
    print()
