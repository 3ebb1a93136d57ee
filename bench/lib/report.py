"""Turns the phases' raw figures into bench/results/latest.json (medians, bars, raw data) and
latest.md (tables, SVG charts, and a closing note built from the perf profiles)."""
import html
import json
import math
import os

from procs import median

BARS = [
    # key, label, comparison, target
    ("ingress_ratio_nginx", "ingress ≥ 0.25 × nginx (wrk, 64 connections)", ">=", 0.25),
    ("persister_ratio_copy", "persister ≥ 0.7 × COPY", ">=", 0.7),
    ("p99_ms_at_1000", "p99 ack ≤ 5 ms at 1,000 req/s", "<=", 5.0),
    ("p99_ms_at_5000", "p99 ack ≤ 10 ms at 5,000 req/s", "<=", 10.0),
    ("e2e_p99_ms_at_5000", "end-to-end p99 ≤ 50 ms at 5,000 req/s", "<=", 50.0),
    ("ratio_seed_queue_rps", "throughput ≥ 4 × seed queue design", ">=", 4.0),
    ("p99_ratio_seed_queue_at_1000", "p99 ≤ 0.1 × seed queue design's at 1,000 req/s", "<=", 0.1),
    ("achieved_rps_at_10000", "≥ 9,900 req/s achieved at 10,000 req/s offered", ">=", 9900.0),
    ("p99_ms_at_10000", "p99 ack ≤ 50 ms at 10,000 req/s", "<=", 50.0),
    ("cpu_ratio_baseline_at_5000",
     "pipeline CPU per accepted request at 5,000 req/s ≤ 0.5 × the baseline's", "<=", 0.5),
]

# The components whose CPU is read from /proc for each pipeline run (bench/lib/phases.py), in
# the order of the tables.
CPU_PARTS = ("ingress", "broker", "persister", "postgres", "auditor", "load generator",
             "unattributed")
# What hookline itself costs: the components a deployment runs (not the load generator).
PIPELINE_PARTS = ("ingress", "broker", "persister", "postgres", "auditor")
CPU_COLUMNS = CPU_PARTS + ("pipeline", "total")


def _with_pipeline(us):
    """A run's per-request figures with "pipeline", the sum of PIPELINE_PARTS, added (None
    when a part has no figure)."""
    if not us:
        return us
    parts = [us.get(n) for n in PIPELINE_PARTS]
    return dict(us, pipeline=None if None in parts else round(sum(parts), 1))


def _pipeline_runs(raw):
    """[(name, repetitions)] of a run's raw pipeline figures: the closed loop, then each rate."""
    pipe = (raw or {}).get("pipeline") or {}
    return ([("closed loop", pipe["closed"])] if pipe.get("closed") else []) + \
        [(f"{rate} req/s", runs) for rate, runs in (pipe.get("rates") or {}).items()]


def cpu_from_raw(raw):
    """{run: {component: median µs per accepted request}} from a run's raw pipeline figures,
    the same way for this run and for a baseline run."""
    cpu = {name: _cpu_median(runs) for name, runs in _pipeline_runs(raw)}
    return {k: v for k, v in cpu.items() if v}


def _r(x, nd=3):
    return None if x is None else round(x, nd)


def _ratio(a, b):
    return a / b if a is not None and b else None


def summarise(raw, settings, meta):
    s = settings
    j = {"quick": s.quick, "runs": s.reps}
    h = raw.get("http")
    if h:
        j["nginx_rps"] = _r(median([x["rps"] for x in h["nginx"]]), 1)
        j["ingress_rps"] = _r(median([x["rps"] for x in h["ingress"]]), 1)
        j["ingress_ratio_nginx"] = _r(_ratio(j["ingress_rps"], j["nginx_rps"]))
        j["ingress_wrk_non_2xx"] = sum(x["non_2xx"] + x["socket_errors"] for x in h["ingress"])
        j["ingress_rss_mb_wrk"] = _r(median(h["ingress_rss"]), 1)
        j["nginx_replay_rps"] = _r(median([x["throughput_rps"] for x in h["nginx_replay"]]), 1)
    k = raw.get("kafka")
    if k:
        j["kafka_producer_rps"] = _r(median([x["rps"] for x in k["max"]]), 1)
        for rate, runs in k["fixed"].items():
            for q in ("p50", "p99"):
                j[f"kafka_ack_{q}_ms_at_{rate}"] = _r(median([x[f"{q}_ms"] for x in runs]))
    p = raw.get("persister")
    if p:
        j["copy_rows_per_s"] = _r(median(p["rounds"]["copy"]), 1)
        j["persister_rows_per_s"] = _r(median(p["rounds"]["persister"]), 1)
        # The median of the rounds' paired ratios (a round's persister over the same round's
        # COPY), not the ratio of the two medians: a round's load weighs on both of its runs.
        j["persister_ratio_copy"] = _r(median(
            [_ratio(a, b) for a, b in zip(p["rounds"]["persister"], p["rounds"]["copy"])]))
    pipe = raw.get("pipeline", {})
    if pipe.get("closed"):
        j["hookline_replay_rps"] = _r(median([x["throughput_rps"] for x in pipe["closed"]]), 1)
    rss = {}
    if pipe.get("closed"):
        rss["closed loop"] = _rss_median(pipe["closed"])
    for rate, runs in pipe.get("rates", {}).items():
        for q, key in (("p50", "p50_ms"), ("p95", "p95_ms"), ("p99", "p99_ms"),
                       ("p999", "p999_ms")):
            j[f"{q}_ms_at_{rate}"] = _r(median([x[key] for x in runs]))
        j[f"achieved_rps_at_{rate}"] = _r(median([x["throughput_rps"] for x in runs]), 1)
        j[f"errors_at_{rate}"] = sum(x["errors"] for x in runs)
        for q in ("p50", "p99", "p99_9"):
            j[f"e2e_{q.replace('_', '')}_ms_at_{rate}"] = _auditor_ms(runs, "e2e", q)
        j[f"auditor_ack_p99_ms_at_{rate}"] = _auditor_ms(runs, "ack", "p99")
        rss[f"{rate} req/s"] = _rss_median(runs)
    if pipe.get("outage"):
        rss["Kafka down"] = {n: v["max_mb"] for n, v in pipe["outage"]["rss"].items()}
        j["outage"] = pipe["outage"]
    if "5000 req/s" in rss:
        for svc in ("ingress", "persister", "auditor"):
            j[f"{svc}_rss_mb"] = rss["5000 req/s"].get(svc)
    seed = raw.get("seed")
    if seed:
        for v in ("sync", "queue"):
            j[f"seed_{v}_rps"] = _r(median([x["throughput_rps"] for x in seed[v]["closed"]]), 1)
            j[f"seed_{v}_p99_ms_at_1000"] = _r(median([x["p99_ms"] for x in seed[v]["at_1000"]]))
            j[f"seed_{v}_achieved_rps_at_1000"] = _r(
                median([x["throughput_rps"] for x in seed[v]["at_1000"]]), 1)
            j[f"ratio_seed_{v}_rps"] = _r(_ratio(j.get("hookline_replay_rps"), j[f"seed_{v}_rps"]))
            j[f"p99_ratio_seed_{v}_at_1000"] = _r(_ratio(j.get("p99_ms_at_1000"),
                                                         j[f"seed_{v}_p99_ms_at_1000"]), 4)
            rss[f"seed {v} (node)"] = {"node": _r(median(seed[v]["rss"]), 1)}
    j["rss_mb"] = rss
    j["cpu_us"] = cpu = cpu_from_raw(raw)
    j["switches"] = switches_from_raw(raw)
    base = meta.pop("baseline", None)
    if base:
        j["cpu_baseline"] = base
        now = (cpu.get("5000 req/s") or {}).get("pipeline")
        then = (j["cpu_baseline"]["cpu_us"].get("5000 req/s") or {}).get("pipeline")
        j["cpu_ratio_baseline_at_5000"] = _r(_ratio(now, then))
    same = same_run_from_raw(raw)
    if same:
        # Measured in this run, in turns: preferred to another run's figures.
        same["baseline_commit"] = meta.get("baseline_commit")
        same["baseline_build"] = meta.get("baseline_build")
        j["cpu_same_run"] = same
        if same["rate"] == 5000 and same["pipeline_ratio"] is not None:
            j["cpu_ratio_baseline_at_5000"] = same["pipeline_ratio"]
    j["bars"] = []
    for key, label, cmp, target in BARS:
        v = j.get(key)
        met = None if v is None else (v >= target if cmp == ">=" else v <= target)
        j["bars"].append({"key": key, "bar": label, "target": target, "cmp": cmp, "value": v,
                          "met": met})
    j.update(meta)
    j["settings"] = s.as_dict()
    j["raw"] = raw
    return j


def _auditor_ms(runs, stage, q):
    """Median over runs of one percentile of the auditor's histogram for a stage, in ms."""
    return _r(median([x["auditor"][stage][q] / 1000 for x in runs
                      if x["auditor"][stage]["count"]]))


def switches_from_raw(raw):
    """{run: {component: median context switches per accepted request}}."""
    out = {}
    for name, runs in _pipeline_runs(raw):
        sw = [r["switches"] for r in runs if r.get("switches")]
        parts = [n for n in CPU_PARTS if any(x.get(n) is not None for x in sw)]
        if parts:
            out[name] = {n: _r(median([x.get(n) for x in sw]), 2) for n in parts}
    return out


def same_run_from_raw(raw):
    """The same-run comparison (bench/run --baseline-rev): per build, the median CPU per
    accepted request of each component; the pipeline's ratio this ÷ baseline of each
    repetition (a repetition's two turns ran back to back) and their median."""
    sr = ((raw or {}).get("pipeline") or {}).get("same_run")
    if not sr:
        return None
    if not sr.get("pairs"):
        return {"rate": sr.get("rate"), "runs": 0, "error": sr.get("error") or "no turns ran",
                "pipeline_ratios": [], "pipeline_ratio": None}
    pairs = sr["pairs"]
    ratios = [_r(_ratio(_with_pipeline(p["this"].get("cpu_us") or {}).get("pipeline"),
                        _with_pipeline(p["baseline"].get("cpu_us") or {}).get("pipeline")))
              for p in pairs]
    known = [x for x in ratios if x is not None]
    return {"rate": sr["rate"], "runs": len(pairs),
            "this": _cpu_median([p["this"] for p in pairs]),
            "baseline": _cpu_median([p["baseline"] for p in pairs]),
            "achieved_rps": {v: _r(median([p[v]["throughput_rps"] for p in pairs]), 1)
                             for v in ("this", "baseline")},
            "pipeline_ratios": ratios,
            "pipeline_ratio": _r(median(known)) if known else None,
            "postgres_by_owner": {v: _owner_median([p[v] for p in pairs])
                                  for v in ("this", "baseline")}}


def _owner_median(runs):
    """Median over runs of Postgres' CPU microseconds per accepted request by whose backends
    used it (runs measured before the split was recorded have none)."""
    runs = [r["postgres_by_owner_us"] for r in runs if r.get("postgres_by_owner_us")]
    names = sorted({n for r in runs for n in r})
    return {n: _r(median([r.get(n, 0) for r in runs]), 1) for n in names}


def _cpu_median(runs):
    """Median over runs of each component's CPU microseconds per accepted request."""
    runs = [_with_pipeline(r["cpu_us"]) for r in runs if r.get("cpu_us")]
    names = [n for n in CPU_COLUMNS if any(r.get(n) is not None for r in runs)]
    return {n: _r(median([r.get(n) for r in runs]), 1) for n in names}


def _rss_median(runs):
    names = sorted({n for r in runs for n in r.get("rss", {})})
    return {n: _r(median([r["rss"][n]["max_mb"] for r in runs if n in r.get("rss", {})]), 1)
            for n in names}


# --- charts --------------------------------------------------------------------------------

def bar_svg(title, rows, unit, width=640, log_from=None):
    """Horizontal bars: rows = [(label, value, colour)]. With log_from the scale is
    logarithmic from that value up, with a grid line per power of ten."""
    rows = [r for r in rows if r[1] is not None]
    top = max([r[1] for r in rows] + [1e-9])
    lh, left, right = 24, 210, 110
    span = width - left - right
    if log_from:
        top = 10 ** math.ceil(math.log10(max(top, log_from * 10)))

        def scale(v):
            return span * math.log10(max(v, log_from) / log_from) / math.log10(top / log_from)
    else:
        def scale(v):
            return span * v / top
    hgt = 34 + lh * len(rows) + (16 if log_from else 0)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{hgt}"'
           f' viewBox="0 0 {width} {hgt}" font-family="sans-serif" font-size="12">',
           f'<text x="8" y="18" font-weight="bold">{html.escape(title)}</text>']
    if log_from:
        tick = log_from
        while tick <= top * 1.0001:
            x = left + scale(tick)
            out.append(f'<line x1="{x:.1f}" y1="28" x2="{x:.1f}" y2="{hgt - 16}" stroke="#ddd"/>')
            out.append(f'<text x="{x:.1f}" y="{hgt - 4}" text-anchor="middle" fill="#666">'
                       f'{tick:g}</text>')
            tick *= 10
    for i, (label, v, colour) in enumerate(rows):
        y = 28 + i * lh
        w = max(1.0, scale(v))
        out.append(f'<text x="{left - 6}" y="{y + 15}" text-anchor="end">'
                   f'{html.escape(label)}</text>')
        out.append(f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{lh - 8}"'
                   f' fill="{colour}"/>')
        out.append(f'<text x="{left + w + 5:.1f}" y="{y + 15}">{_fmt(v)} '
                   f'{html.escape(unit)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


LIMIT, HOOK, SEED = "#9aa5b1", "#2f6db5", "#c0762f"


def charts(j):
    mark = f" (what-if {j['what_if']['name']}, not hookline's)" if j.get("what_if") else ""
    thr = bar_svg("Throughput (medians)" + mark, [
        ("nginx return 202 (wrk)", j.get("nginx_rps"), LIMIT),
        ("hookline-ingress (wrk)", j.get("ingress_rps"), HOOK),
        ("Kafka ProducerPerformance", j.get("kafka_producer_rps"), LIMIT),
        ("Postgres COPY rows", j.get("copy_rows_per_s"), LIMIT),
        ("hookline-persister rows", j.get("persister_rows_per_s"), HOOK),
        ("replay against nginx", j.get("nginx_replay_rps"), LIMIT),
        ("hookline pipeline (replay)", j.get("hookline_replay_rps"), HOOK),
        ("seed queue (replay)", j.get("seed_queue_rps"), SEED),
        ("seed sync (replay)", j.get("seed_sync_rps"), SEED)], "/s")
    rows = []
    for rate in (1000, 5000, 10000):
        for q in ("p50", "p99", "p999"):
            rows.append((f"{q} ack at {rate:,}/s", j.get(f"{q}_ms_at_{rate}"), HOOK))
    rows.append(("e2e p99 at 5,000/s", j.get("e2e_p99_ms_at_5000"), HOOK))
    for rate in (1000, 5000):
        rows.append((f"broker ack p99 at {rate:,}/s", j.get(f"kafka_ack_p99_ms_at_{rate}"),
                     LIMIT))
    rows.append(("seed queue p99 at 1,000/s", j.get("seed_queue_p99_ms_at_1000"), SEED))
    rows.append(("seed sync p99 at 1,000/s", j.get("seed_sync_p99_ms_at_1000"), SEED))
    lat = bar_svg("Latency (ms, log scale, medians; from the scheduled send time)" + mark, rows,
                  "ms", log_from=0.1)
    return {"throughput.svg": thr, "latency.svg": lat}


# --- markdown ------------------------------------------------------------------------------

def _fmt(v, nd=None):
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if nd is None:
        nd = 0 if abs(v) >= 100 else (1 if abs(v) >= 10 else 2)
    return f"{v:,.{nd}f}"


def markdown(j, notes):
    s = j["settings"]
    m = j["machine"]
    w = j.get("what_if")
    L = [f"# hookline benchmark ({'quick' if j['quick'] else 'full'})"
         + (f": what-if {w['name']}, not hookline's figures" if w else ""), "",
         f"Generated by `{j['command']}` on {j['finished_utc']} in {j['duration_s']:.0f} s. "
         f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['mem_gb']} GB, Linux {m['kernel']}; "
         f"load average before the run {m['load_before']}. Everything (load generators, Kafka, "
         f"Postgres, the services) ran on this machine. Figures are medians of {j['runs']} "
         f"repetitions; bodies are {s['payload_bytes']} bytes; {s['concurrency']} connections.",
         ""]
    if w:
        blob = (f" (blob {w['patch_blob'][:12]}, "
                + ("as committed" if w.get("patch_committed") else "not as committed")
                + " at that commit)") if w.get("patch_blob") else ""
        L += [f"**A what-if, not hookline's figures.** \"This\" build is commit "
              f"{w.get('services_commit') or j['commit']} with `{w['patch']}`{blob} applied:"
              f" {w['about']}", ""]
    L += ["## The machine's limits and hookline", "",
         "| measure | machine limit | hookline | ratio |", "|---|---:|---:|---:|",
         f"| HTTP requests/s, wrk -c64 (nginx `return 202` / ingress, durable acks) | "
         f"{_fmt(j.get('nginx_rps'))} | {_fmt(j.get('ingress_rps'))} | "
         f"{_fmt(j.get('ingress_ratio_nginx'), 3)} |",
         f"| Kafka records/s (ProducerPerformance, acks=all, idempotent / ingress under wrk) | "
         f"{_fmt(j.get('kafka_producer_rps'))} | {_fmt(j.get('ingress_rps'))} | "
         f"{_fmt(_ratio(j.get('ingress_rps'), j.get('kafka_producer_rps')), 3)} |",
         f"| Postgres rows/s (COPY / persister from a pre-filled topic) | "
         f"{_fmt(j.get('copy_rows_per_s'))} | {_fmt(j.get('persister_rows_per_s'))} | "
         f"{_fmt(j.get('persister_ratio_copy'), 3)} |",
         f"| p99 ms at 1,000/s (broker ack alone / ingress 202, whole pipeline) | "
         f"{_fmt(j.get('kafka_ack_p99_ms_at_1000'))} | {_fmt(j.get('p99_ms_at_1000'))} | "
         f"{_fmt(_ratio(j.get('p99_ms_at_1000'), j.get('kafka_ack_p99_ms_at_1000')), 3)} |",
         f"| p99 ms at 5,000/s (broker ack alone / ingress 202, whole pipeline) | "
         f"{_fmt(j.get('kafka_ack_p99_ms_at_5000'))} | {_fmt(j.get('p99_ms_at_5000'))} | "
         f"{_fmt(_ratio(j.get('p99_ms_at_5000'), j.get('kafka_ack_p99_ms_at_5000')), 3)} |",
         "", "The broker ack rows: `bench/lib/kafka_probe.py` produces 512-byte records at the "
         "fixed rate through librdkafka with the ingress's settings (acks=all, idempotence) "
         "but linger.ms=0 (the ingress lingers 2 ms) and times each from its scheduled send "
         "to its delivery report, with no "
         "other load: the floor under any durable ack on this machine. The ingress's figure "
         "is measured with the whole pipeline running.", "",
         "![throughput](throughput.svg)", "",
         "## Ack latency at fixed rates", "",
         "`hookline replay --rate R` (open-loop; each latency runs from the request's scheduled "
         "send time, so stalls are not hidden), the whole pipeline running. End-to-end "
         "(received → committed) from the auditor's histograms.", "",
         "| rate (req/s) | achieved | p50 ms | p95 ms | p99 ms | p99.9 ms | e2e p50 ms | "
         "e2e p99 ms | errors |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for rate in s["rates"]:
        L.append(f"| {rate:,} | {_fmt(j.get(f'achieved_rps_at_{rate}'))} | "
                 f"{_fmt(j.get(f'p50_ms_at_{rate}'))} | {_fmt(j.get(f'p95_ms_at_{rate}'))} | "
                 f"{_fmt(j.get(f'p99_ms_at_{rate}'))} | {_fmt(j.get(f'p999_ms_at_{rate}'))} | "
                 f"{_fmt(j.get(f'e2e_p50_ms_at_{rate}'))} | "
                 f"{_fmt(j.get(f'e2e_p99_ms_at_{rate}'))} | "
                 f"{j.get(f'errors_at_{rate}', '—')} |")
    L += ["", "![latency](latency.svg)", "",
          "## Against the seed design", "",
          "The seed receiver rebuilt on Express + pg (`bench/peers/seed-express`), driven by the "
          "same replay with the same data. Throughput is closed-loop with "
          f"{s['concurrency']} connections (hookline: ingress, persister and auditor all running).",
          "", "| design | requests/s | p99 ms at 1,000 req/s | hookline ÷ design (req/s) | "
          "hookline ÷ design (p99) |", "|---|---:|---:|---:|---:|",
          f"| hookline (durable) | {_fmt(j.get('hookline_replay_rps'))} | "
          f"{_fmt(j.get('p99_ms_at_1000'))} | — | — |"]
    ceiling = ["", f"The replay's own ceiling, against nginx `return 202`: "
               f"{_fmt(j.get('nginx_replay_rps'))} requests/s."]
    for v, name in (("sync", "seed: SELECT + INSERT before 202 (durable)"),
                    ("queue", "seed: in-memory queue, 25 rows / 100 ms (not durable)")):
        L.append(f"| {name} | {_fmt(j.get(f'seed_{v}_rps'))} | "
                 f"{_fmt(j.get(f'seed_{v}_p99_ms_at_1000'))} | "
                 f"{_fmt(j.get(f'ratio_seed_{v}_rps'))} | "
                 f"{_fmt(j.get(f'p99_ratio_seed_{v}_at_1000'), 3)} |")
    L += ceiling if j.get("nginx_replay_rps") else []
    L += _cpu_table(j)
    L += ["", "## Resident memory", "", "Peak VmRSS (MB) sampled from /proc every 250 ms.", "",
          "| phase | ingress | persister | auditor | node |", "|---|---:|---:|---:|---:|"]
    if j.get("ingress_rss_mb_wrk") is not None:
        L.append(f"| ingress alone under wrk | {_fmt(j['ingress_rss_mb_wrk'], 1)} | — | — | — |")
    for phase, vals in j["rss_mb"].items():
        L.append(f"| {phase} | " + " | ".join(_fmt(vals.get(n), 1) for n in
                                             ("ingress", "persister", "auditor", "node")) + " |")
    o = j.get("outage")
    if o:
        rp = o.get("replay") or {}
        L += ["", f"Kafka stopped for {s['outage_s']} s under 1,000 req/s: every service "
              f"{'stayed up' if all(o['alive'].values()) else 'did NOT stay up'}; the private "
              f"broker took {_fmt(o.get('kafka_restart_s'), 1)} s to restart and the ingress was "
              f"ready {_fmt(o.get('ingress_ready_s'), 1)} s after the restart began. The replay "
              f"running through it got {rp.get('accepted', '—')} of {rp.get('sent', '—')} "
              f"requests accepted (the rest got 503 with Retry-After or timed out; the replay "
              f"was told not to retry here)."]
    L += ["", "## Bars", "", "| bar | measured | met |", "|---|---:|---|"]
    for b in j["bars"]:
        L.append(f"| {b['bar']} | {_fmt(b['value'], 3)} | "
                 f"{'—' if b['met'] is None else ('met' if b['met'] else '**missed**')} |")
    L += ["", "## Closing note", ""] + notes + [""]
    return "\n".join(L)


def _cpu_table(j):
    cpu = {k: v for k, v in (j.get("cpu_us") or {}).items() if v}
    same = j.get("cpu_same_run")
    if not cpu and not same:
        return []
    L = ["", "## CPU per accepted request", "",
         "CPU microseconds per accepted request, medians over the repetitions: for each "
         "component the utime + stime of its process (all threads; Postgres: the postmaster, "
         "every backend alive and, through the postmaster's reaped-children times, every backend "
         "that ended), read from `/proc` before the replay and after the persister and the "
         "auditor have drained it, divided by the requests accepted. *total* is the whole "
         "machine's own busy time (`/proc/stat`, all cores: user, nice, system, irq, softirq) "
         "over the same window; *unattributed* is total minus the components, signed (kernel "
         "work not charged to a process, the benchmark's own Python, perf in the profiled "
         "repetition, anything else running). *pipeline* "
         "is what hookline itself costs: ingress, broker, persister, Postgres and auditor, "
         "without the load generator.", ""]
    base = j.get("cpu_baseline")
    cols = [c for c in CPU_COLUMNS
            if any(c in v for v in list(cpu.values()) + [(same or {}).get("this") or {}])]
    if cpu:
        L += ["| run | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for phase, vals in cpu.items():
        L.append(f"| {phase} | " + " | ".join(_fmt(vals.get(c)) for c in cols) + " |")
        old = (base or {}).get("cpu_us", {}).get(phase)
        if old:
            L.append(f"| {phase}, baseline | " + " | ".join(_fmt(old.get(c)) for c in cols)
                     + " |")
            L.append(f"| {phase}, ÷ baseline | " + " | ".join(
                _fmt(_ratio(vals.get(c), old.get(c)), 2) for c in cols) + " |")
    sw = j.get("switches") or {}
    if sw:
        scols = [c for c in CPU_PARTS if any(c in v for v in sw.values())]
        L += ["", "Context switches per accepted request, voluntary and involuntary, summed over "
              "every thread of each process over the same window (medians; Postgres is not "
              "counted: its ended backends take their counts with them):", "",
              "| run | " + " | ".join(scols) + " |", "|---|" + "---:|" * len(scols)]
        for phase, vals in sw.items():
            L.append(f"| {phase} | " + " | ".join(_fmt(vals.get(c), 2) for c in scols) + " |")
    if same and same.get("error"):
        L += ["", "### The same run: this build and the baseline's in turns", "",
              f"Not measured: {same['error']}"]
    elif same:
        L += ["", "### The same run: this build and the baseline's in turns", "",
              f"At {same['rate']:,} req/s, {same['runs']} repetitions, each one turn with the "
              f"services of this tree and one with those of commit "
              f"{(same.get('baseline_commit') or '?')[:12]} (`--baseline-rev`), back to back on "
              "the same broker, Postgres, topics and schema, the order alternating, autovacuum "
              "held off the schema's tables and a VACUUM (ANALYZE) of them before each turn; "
              "medians "
              "per build, and the pipeline's ratio per repetition: "
              + ", ".join(_fmt(x, 3) for x in same["pipeline_ratios"])
              + f" (median {_fmt(same['pipeline_ratio'], 3)}). Achieved: this "
              f"{_fmt(same['achieved_rps']['this'])} req/s, baseline "
              f"{_fmt(same['achieved_rps']['baseline'])} req/s. The baseline's services were "
              "built as this build folder is configured ("
              + (", ".join(f"{k}={v}" for k, v in sorted((same.get("baseline_build") or {})
                                                        .items())) or "not recorded") + ").", "",
              "| build | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
        for v in ("this", "baseline"):
            L.append(f"| {v} | " + " | ".join(_fmt((same[v] or {}).get(c)) for c in cols)
                     + " |")
        L.append("| this ÷ baseline (ratio of the medians) | " + " | ".join(
            _fmt(_ratio((same["this"] or {}).get(c), (same["baseline"] or {}).get(c)), 2)
            for c in cols) + " |")
        owners = same.get("postgres_by_owner") or {}
        names = sorted({n for v in owners.values() for n in v})
        if names:
            L += ["", "Postgres' part by whose backends used it (medians, µs per accepted "
                  "request): a backend is charged to the service holding its client's end of "
                  "the connection, *background* is the checkpointer, the WAL writer and the "
                  "autovacuum workers alive at the end of the turn, *ended* the postmaster and "
                  "every child that ended inside the turn.", "",
                  "| build | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
            for v in ("this", "baseline"):
                L.append(f"| {v} | " + " | ".join(_fmt((owners.get(v) or {}).get(n))
                                                   for n in names) + " |")
    if base:
        L += ["", f"Baseline: `{base['file']}`, `{base.get('command')}` at "
              f"{base.get('commit') or 'an unrecorded commit'}, finished "
              f"{base.get('finished_utc')}; bench/run checked that its command, settings, CPU "
              f"count and model are this run's (kernel then {base.get('kernel')}, now "
              f"{j['machine'].get('kernel')}; load before it {base.get('load_before')}, before "
              f"this run {j['machine'].get('load_before')})."]
    return L


def write(outdir, j, notes):
    os.makedirs(outdir, exist_ok=True)
    for name, svg in charts(j).items():
        with open(os.path.join(outdir, name), "w") as f:
            f.write(svg)
    with open(os.path.join(outdir, "latest.json.tmp"), "w") as f:
        json.dump(j, f, indent=1, default=str)
    os.replace(os.path.join(outdir, "latest.json.tmp"), os.path.join(outdir, "latest.json"))
    with open(os.path.join(outdir, "latest.md"), "w") as f:
        f.write(markdown(j, notes))
