#!/usr/bin/env python3
"""Markdown tables from tests/e2e/bench-guest.sh's results.jsonl (one JSON object a line)."""
import json
import sys

recs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
env = next((r for r in recs if r["kind"] == "env"), {})
fio = [r for r in recs if r["kind"] == "fio"]
procs = [r for r in recs if r["kind"] == "proc"]
paths = [r for r in recs if r["kind"] == "paths"]
rbd_env = next((r for r in recs if r["kind"] == "rbd"), None)

WORKLOADS = ["randread-qd1", "randread-qd32", "randwrite-qd1", "randwrite-qd32", "seqread-1m", "seqwrite-1m"]
SYSTEMS = ["sharedvol", "tcmu-runner", "fileio"]
# The tuned runs change TCMU backstores only; fileio has nothing to tune, so both tables show its runs.
CONFIGS = {"default": {"sharedvol": "default", "tcmu-runner": "default", "fileio": "default", "ceiling": "default"},
           "tuned": {"sharedvol": "tuned", "tcmu-runner": "tuned", "fileio": "default", "ceiling": "tuned"}}
NUMERIC = ["iops", "bw_mib", "p50_us", "p99_us", "cpu_us_per_io", "switches_per_io", "osd_cpu_us_per_io"]


def median(values):
    v = sorted(values)
    n = len(v)
    return None if n == 0 else v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def runs(system, config, wl):
    return sorted((r for r in fio if r["system"] == system and r["config"] == config and r["workload"] == wl),
                  key=lambda r: r.get("round", 1))


def get(system, config, wl):
    """The median of each figure over the rounds, the IOPS of every round, and any error."""
    rs = runs(system, config, wl)
    if not rs:
        return None
    m = {k: median([r[k] for r in rs if r.get(k) is not None]) for k in NUMERIC}
    m["errors"] = any(r["errors"] for r in rs)
    m["all_iops"] = [r["iops"] for r in rs]
    m["by_round"] = {r.get("round", 1): r for r in rs}
    return m


def round_ratios(a, x):
    """a/x of the same round, min–max over the rounds both ran: the spread the median hides."""
    rs = [a["by_round"][k]["iops"] / x["by_round"][k]["iops"] for k in a["by_round"] if k in x["by_round"]]
    return f"{min(rs):.2f}–{max(rs):.2f}" if len(rs) > 1 else "–"


def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "–"


def num(v, fmt="{:.0f}"):
    return fmt.format(v) if v is not None else "–"


def system_row(wl, s, r, *extra):
    """One system's row of a workload: IOPS (median and per round), bandwidth, latency, CPU."""
    err = " (errors!)" if r["errors"] else ""
    each = " / ".join(f"{v:.0f}" for v in r["all_iops"])
    cells = [wl, f"{s}{err}", f"{r['iops']:.0f}", each, f"{r['bw_mib']:.1f}", f"{r['p50_us']:.0f}", f"{r['p99_us']:.0f}",
             num(r["cpu_us_per_io"]), num(r.get("switches_per_io"), "{:.2f}"), *extra]
    print("| " + " | ".join(cells) + " |")


# librbd's and librados's threads (names with digits folded): the same library in both RBD
# handlers; everything else in the process is the handler's own.
CEPH_THREADS = {"io_context_pool", "msgr-worker-N", "safe_timer", "ceph_timer", "log", "service", "admin_socket",
                "signal_handler", "fn_anonymous", "taskfin_librbd", "ms_dispatch", "ms_local", "finisher"}


def own_cpu(r):
    """CPU µs per IO of the handler's own threads: the process's minus librbd's."""
    th = r.get("thread_cpu_us_per_io")
    if th is None or r.get("cpu_us_per_io") is None:
        return None
    return r["cpu_us_per_io"] - sum(v for k, v in th.items() if k in CEPH_THREADS)


def breakdown(config, systems):
    """Where each serving process's CPU goes (its threads by kind, µs per IO), the whole VM's
    CPU per IO and, with BENCH_STAT=1, what the process asks of the kernel per IO: medians over
    the rounds."""
    rows = []
    for wl in WORKLOADS:
        for s in systems:
            rs = runs(s, config, wl)
            if not any("thread_cpu_us_per_io" in r for r in rs):
                continue
            kinds = {k for r in rs for k in r.get("thread_cpu_us_per_io", {})}
            th = {k: median([r.get("thread_cpu_us_per_io", {}).get(k, 0) for r in rs]) for k in kinds}
            top = sorted(th.items(), key=lambda kv: -kv[1])[:5]
            calls = {k for r in rs for k in r.get("per_io", {})}
            per = {k: median([r["per_io"][k] for r in rs if k in r.get("per_io", {})]) for k in calls}
            busy = sorted(((k, v) for k, v in per.items() if k not in ("syscalls", "context-switches") and v >= 0.05),
                          key=lambda kv: -kv[1])
            own = median([v for v in map(own_cpu, rs) if v is not None])
            vm = median([r["vm_cpu_us_per_io"] for r in rs if r.get("vm_cpu_us_per_io") is not None])
            idle = median([r["vm_idle_pct"] for r in rs if r.get("vm_idle_pct") is not None])
            rows.append(f"| {wl} | {s} | {num(own)} | " + ", ".join(f"{k} {v:.0f}" for k, v in top) + " | "
                        + f"{num(vm)} | {num(idle)} | "
                        + (f"{per['syscalls']:.1f}" if "syscalls" in per else "–") + " | "
                        + (f"{per['context-switches']:.2f}" if "context-switches" in per else "–") + " | "
                        + ", ".join(f"{k} {v:.2f}" for k, v in busy) + " |")
    if not rows:
        return
    print("| workload | system | own threads CPU µs/IO | CPU µs/IO of its busiest threads | VM CPU µs/IO | VM idle % | "
          "syscalls/IO | switches/IO | syscalls/IO by kind |")
    print("|---|---|---:|---|---:|---:|---:|---:|---|")
    print("\n".join(rows))
    print()
    print("Own threads: the process's CPU minus librbd's threads (io_context_pool, msgr-worker-N, safe_timer, …), "
          "the part a handler can change. Threads by name with digits folded (tcmu-ring-N is every loop thread); "
          "threads that ended during a run drop out. VM CPU: every vCPU's busy time over the run (fio, the kernel, "
          "the OSD, the handler) per IO. The system-call columns need BENCH_STAT=1 (perf stat of the process).")
    print()
    # With the VM busy, IOPS is about vCPUs / (VM CPU per IO): a handler whose own threads cost
    # nothing would save b's own share and no more, whatever it does.
    b = "tcmu-runner"
    bounds = []
    for wl in WORKLOADS:
        rs = runs(b, config, wl)
        pairs = [(r["vm_cpu_us_per_io"], own_cpu(r), r["vm_idle_pct"]) for r in rs
                 if r.get("vm_cpu_us_per_io") and own_cpu(r) is not None]
        if pairs:
            factor = median([vm / (vm - own) for vm, own, _ in pairs])
            bounds.append(f"{wl} {factor:.2f}× (VM idle {median([i for *_, i in pairs]):.0f} %)")
    if bounds:
        print("The most any handler on librbd could gain over tcmu-runner here, if its own threads cost no CPU at all "
              "and the VM stayed as busy (b's VM CPU per IO over that minus b's own threads' share): "
              + "; ".join(bounds) + ".")
        print()


file_suite = any(r["config"] in CONFIGS for r in fio)


def rbd_report():
    """This daemon against tcmu-runner's rbd handler, each on its own RBD image in a round (BENCH_SUITE=rbd)."""
    print("### RBD: this daemon against tcmu-runner's rbd handler")
    print()
    size = rbd_env["size"] if rbd_env else None
    print(f"fio {env.get('fio', '?')}, libaio, direct=1, {env.get('runtime')} s time_based + {env.get('ramp')} s ramp "
          f"per run, {env.get('rounds', 1)} rounds (both systems once per round, who goes first alternating; "
          f"figures are medians over the rounds); 4 KiB random at iodepth 1 and 32, 1 MiB sequential at iodepth 8; "
          f"tcm_loop disks at the kernel's default backstore settings; guest kernel {env.get('kernel')}, "
          f"{env.get('cpus')} vCPUs, {env.get('mem_mib')} MiB. Ceph {env.get('ceph', '?')} in the same VM "
          f"(scripts/ceph/start.sh: one monitor, one memstore OSD, 127.0.0.1); "
          + (f"two images of {size // 2**20} MiB in pool {rbd_env['pool']}, features {rbd_env['features']:#x}, "
             f"each written in full first, one per system in a round, traded every two rounds; " if rbd_env else "")
          + f"rbd_cache=false for both. a = this daemon (sharedvol/rbd/POOL/IMAGE;ceph_conf=…;ceph_id=admin), "
          f"b = tcmu-runner {env.get('runner')} with Debian's handler_rbd.so (user:rbd, "
          f"rbd/POOL/IMAGE;osd_op_timeout=30;conf=…;id=admin, as ceph-iscsi configures it).")
    print()
    print("| workload | system | IOPS | IOPS of each round | MiB/s | p50 µs | p99 µs | CPU µs/IO | switches/IO | OSD CPU µs/IO |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for wl in WORKLOADS:
        for s in ("sharedvol", "tcmu-runner"):
            r = get(s, "rbd", wl)
            if r:
                system_row(wl, s, r, num(r.get("osd_cpu_us_per_io")))
    print()
    # The goal of issue 19: at least tcmu-runner's IOPS everywhere, 1.3 times at iodepth 32.
    print("| workload | IOPS a/b | a/b per round | p50 a/b | p99 a/b | CPU/IO a/b | goal | met |")
    print("|---|---:|---|---:|---:|---:|---:|---|")
    for wl in WORKLOADS:
        a, b = get("sharedvol", "rbd", wl), get("tcmu-runner", "rbd", wl)
        if not a or not b:
            continue
        goal = 1.3 if wl.endswith("qd32") else 1.0
        per = [a["by_round"][k]["iops"] / b["by_round"][k]["iops"] for k in a["by_round"] if k in b["by_round"]]
        met = "yes" if a["iops"] / b["iops"] >= goal else "no"
        if met == "yes" and per and min(per) < goal:
            met = "median only"
        print(f"| {wl} | {ratio(a['iops'], b['iops'])} | {round_ratios(a, b)} | {ratio(a['p50_us'], b['p50_us'])} | "
              f"{ratio(a['p99_us'], b['p99_us'])} | {ratio(a['cpu_us_per_io'], b['cpu_us_per_io'])} | "
              f"≥ {goal:.1f} | {met} |")
    print()
    print("IOPS ratio > 1: a is faster; latency and CPU ratio < 1: a is faster. CPU is the serving process's "
          "(user + system, all threads, librbd's included) over the run. \"median only\": the median meets "
          "the goal, some round did not.")
    print()
    breakdown("rbd", ("sharedvol", "sharedvol-base", "tcmu-runner"))


if any(r["config"] == "rbd" for r in fio):
    rbd_report()

if file_suite:
    print(f"fio {env.get('fio', '?')}, libaio, direct=1, {env.get('runtime')} s time_based + {env.get('ramp')} s ramp "
          f"per run, {env.get('rounds', 1)} rounds (every system once per round, in turn; figures are medians over "
          f"the rounds); 4 KiB random at iodepth 1 and 32, 1 MiB sequential at iodepth 8; one 1 GiB file "
          f"(written once, page-cached) behind every system; tcm_loop disks; guest kernel {env.get('kernel')}, "
          f"{env.get('cpus')} vCPUs, {env.get('mem_mib')} MiB. tcmu-runner {env.get('runner')} with user:file "
          f"built from Debian's source. fileio: fd_buffered_io=1. Tuned = `{env.get('tuned')}` on both TCMU "
          f"backstores (sharedvol and tcmu-runner); fileio has nothing to tune (the same runs in both tables).")
    print()
    for cname, cmap in CONFIGS.items():
        print(f"### {cname}")
        print()
        print("| workload | system | IOPS | IOPS of each round | MiB/s | p50 µs | p99 µs | CPU µs/IO | switches/IO |")
        print("|---|---|---:|---|---:|---:|---:|---:|---:|")
        for wl in WORKLOADS:
            for s in SYSTEMS + ["ceiling"]:
                r = get(s, cmap[s], wl)
                if r:
                    system_row(wl, s, r)
        print()
        print("| workload | IOPS a/b | a/b per round | IOPS a/c | a/c per round | p50 a/b | p50 a/c | p99 a/b | p99 a/c |")
        print("|---|---:|---|---:|---|---:|---:|---:|---:|")
        for wl in WORKLOADS:
            a, b, c = (get(s, cmap[s], wl) for s in SYSTEMS)
            if not a:
                continue
            f = lambda k, x: ratio(a[k], x[k]) if x else "–"  # noqa: E731
            rr = lambda x: round_ratios(a, x) if x else "–"  # noqa: E731
            print(f"| {wl} | {f('iops', b)} | {rr(b)} | {f('iops', c)} | {rr(c)} | {f('p50_us', b)} | {f('p50_us', c)} | "
                  f"{f('p99_us', b)} | {f('p99_us', c)} |")
        print()
        if any(get("ceiling", cmap["ceiling"], wl) for wl in WORKLOADS):
            # d = a handler that does no work of its own: within the noise, no handler that sleeps
            # while its ring is empty does better in this VM, so d/b and d/c bound a/b and a/c.
            print("| workload | d IOPS | d/b | d/b per round | d/c | d/c per round | a/d | a/d per round |")
            print("|---|---:|---:|---|---:|---|---:|---|")
            for wl in WORKLOADS:
                a, b, c, d = (get(s, cmap[s], wl) for s in SYSTEMS + ["ceiling"])
                if not d:
                    continue
                g = lambda x, y: ratio(x["iops"], y["iops"]) if x and y else "–"  # noqa: E731
                gr = lambda x, y: round_ratios(x, y) if x and y else "–"  # noqa: E731
                print(f"| {wl} | {d['iops']:.0f} | {g(d, b)} | {gr(d, b)} | {g(d, c)} | {gr(d, c)} | {g(a, d)} | {gr(a, d)} |")
            print()

    print("a = this daemon (user:sharedvol), b = tcmu-runner user:file, c = LIO fileio, d = ceiling "
          "(scripts/bench/tcmu-ring-ceiling.c: a TCMU handler that does no work of its own, completing every READ "
          "and WRITE at once with one wait and one kick per batch: what TCMU's kernel side leaves for any handler "
          "that sleeps while the ring is empty). "
          "IOPS ratio > 1: a is faster; latency ratio < 1: a is faster.")
    print()

for base_cfg in sorted({r["config"] for r in fio if r["system"] == "sharedvol-base"}):
    print(f"### A/B: this build against the baseline build (BENCH_BASELINE, {base_cfg})")
    print()
    print("| workload | IOPS | baseline IOPS | ratio | ratio per round | CPU µs/IO | baseline | switches/IO | baseline |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|")
    for wl in WORKLOADS:
        a, base = get("sharedvol", base_cfg, wl), get("sharedvol-base", base_cfg, wl)
        if not a or not base:
            continue
        print(f"| {wl} | {a['iops']:.0f} | {base['iops']:.0f} | {ratio(a['iops'], base['iops'])} | "
              f"{round_ratios(a, base)} | {num(a['cpu_us_per_io'])} | {num(base['cpu_us_per_io'])} | "
              f"{num(a.get('switches_per_io'), '{:.2f}')} | {num(base.get('switches_per_io'), '{:.2f}')} |")
    print()
print("| system | config | disk max_sectors_kb | VmRSS after runs (KiB) | RssAnon (KiB) | CPU s over the 6 runs | CPU s idle 5 s |")
print("|---|---|---:|---:|---:|---:|---:|")
last = {}
for p in procs:  # one per round: RSS after the last round, the most idle CPU any round saw
    key = (p["system"], p["config"])
    if key in last and last[key].get("idle_ticks_5s") is not None and p.get("idle_ticks_5s") is not None:
        p = dict(p, idle_ticks_5s=max(p["idle_ticks_5s"], last[key]["idle_ticks_5s"]))
    last[key] = p
for p in last.values():
    mine = [r for r in fio if r["system"] == p["system"] and r["config"] == p["config"] and r["cpu_s"] is not None]
    rounds_run = len({r.get("round", 1) for r in mine}) or 1
    cpu = sum(r["cpu_s"] for r in mine) / rounds_run
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
