"""The closing note of latest.md: for every missed bar, what this run measured that bounds it,
where the CPU went during the phase that measures it (from the perf profiles taken in the run),
and where to look next. Every statement about the run is computed from the run's own figures
and profiles (j, profiles); only the levers to try are fixed text, and they are labelled so."""

# Thread names in `perf report --sort comm`: the kernel's idle task, and each process's own.
IDLE = "swapper"
PERSISTER = "hookline-persis"
INGRESS = ("civetweb-worker", "hookline-ingres")

# Which phase's profile belongs to each bar (None: no phase at that rate is profiled), and a
# lever to try once the run has said where the time goes.
ADVICE = {
    "ingress_ratio_nginx": (
        "http", "Lever to try (not measured here): the response written with one send() per "
        "request instead of one per header line, so each 202 leaves as one TCP segment."),
    "persister_ratio_copy": ("persister", None),
    "p99_ms_at_1000": (None, None),
    "p99_ms_at_5000": ("rate5000", None),
    "e2e_p99_ms_at_5000": ("rate5000", None),
    "ratio_seed_queue_rps": ("rate5000", None),
    "p99_ratio_seed_queue_at_1000": (None, None),
    "achieved_rps_at_10000": (None, None),
    "p99_ms_at_10000": (None, None),
    "cpu_ratio_baseline_at_5000": ("rate5000", None),
}

TITLES = {"http": "ingress alone under wrk (last repetition)",
          "persister": "persister bench (fill, persister rounds and COPY rounds)",
          "rate5000": "whole pipeline at 5,000 req/s (last repetition)"}

# Linux thread names (15 characters) of the processes on the box, for the reader.
THREADS = ("Thread names: civetweb-worker and hookline-ingres are the ingress; rdk:* are "
           "librdkafka threads of whichever service; hookline is the replay load generator; "
           "wrk is wrk; data-plane-kafk, kafka-request-h, C1/C2 CompilerThre (the JIT), "
           "G1 * and other Java names are the broker; postgres is every Postgres backend.")


def _facts(key, j):
    """Figures from the same run that bound what the bar can reach on this machine."""
    def f(k, nd=1):
        v = j.get(k)
        return "—" if v is None else f"{v:,.{nd}f}"
    if key in ("p99_ms_at_1000", "p99_ms_at_5000"):
        rate = key.rsplit("_", 1)[1]
        return (f"The broker's own acknowledgement at {int(rate):,} records/s, measured alone "
                f"through librdkafka: p50 {f(f'kafka_ack_p50_ms_at_{rate}', 2)} ms, p99 "
                f"{f(f'kafka_ack_p99_ms_at_{rate}', 2)} ms; the ingress's p50 was "
                f"{f(f'p50_ms_at_{rate}', 2)} ms and the achieved rate "
                f"{f(f'achieved_rps_at_{rate}', 0)} req/s.")
    if key == "e2e_p99_ms_at_5000":
        return (f"Its ack part alone (auditor's ack stage) had p99 "
                f"{f('auditor_ack_p99_ms_at_5000', 2)} ms; e2e p50 was "
                f"{f('e2e_p50_ms_at_5000', 2)} ms.")
    if key == "ingress_ratio_nginx":
        return (f"Kafka's own producer reached {f('kafka_producer_rps', 0)} records/s alone; the "
                f"ingress produces two records (event and lineage) per request.")
    if key == "persister_ratio_copy":
        r = (j.get("raw") or {}).get("persister", {}).get("rounds", {})
        return (f"Rounds (persister / COPY rows/s): "
                + ", ".join(f"{a:,.0f} / {b:,.0f}" for a, b in zip(r.get("persister", []),
                                                                   r.get("copy", []))) + ".")
    if key in ("achieved_rps_at_10000", "p99_ms_at_10000"):
        return (f"At 10,000 req/s offered the replay achieved {f('achieved_rps_at_10000', 0)} "
                f"req/s with ack p50 {f('p50_ms_at_10000', 2)} ms and p99 "
                f"{f('p99_ms_at_10000', 2)} ms; closed-loop the pipeline reached "
                f"{f('hookline_replay_rps', 0)} req/s.")
    if key == "cpu_ratio_baseline_at_5000":
        same = j.get("cpu_same_run")
        if same and same.get("error"):
            return f"The same-run comparison did not run: {same['error']}."
        if same:
            now, old = same.get("this") or {}, same.get("baseline") or {}
            return (f"Measured in this run, in turns with the services of "
                    f"{(same.get('baseline_commit') or '?')[:12]}; per component, µs this build"
                    f" / baseline build: " + ", ".join(
                        f"{n} {now[n]:,.0f} / {old[n]:,.0f}" for n in now
                        if now.get(n) is not None and old.get(n)) + ".")
        now = (j.get("cpu_us") or {}).get("5000 req/s") or {}
        old = ((j.get("cpu_baseline") or {}).get("cpu_us") or {}).get("5000 req/s") or {}
        return "Per component, µs now / baseline: " + ", ".join(
            f"{n} {now[n]:,.0f} / {old[n]:,.0f}" for n in now
            if now.get(n) is not None and old.get(n)) + "."
    if key == "ratio_seed_queue_rps":
        t = next((b["target"] for b in j.get("bars", []) if b["key"] == key), 4.0)
        return (f"{t:g}× the seed queue design is {t * (j.get('seed_queue_rps') or 0):,.0f} req/s; "
                f"the replay itself reaches {f('nginx_replay_rps', 0)} req/s against nginx "
                f"`return 202`, Kafka's producer {f('kafka_producer_rps', 0)} records/s, and the "
                f"ingress alone under wrk {f('ingress_rps', 0)} req/s.")
    if key == "p99_ratio_seed_queue_at_1000":
        return (f"The seed queue design's p99 at 1,000 req/s was "
                f"{f('seed_queue_p99_ms_at_1000', 2)} ms, so the bar asks for "
                f"{(j.get('seed_queue_p99_ms_at_1000') or 0) / 10:.2f} ms; the broker's own ack "
                f"p99 at that rate was {f('kafka_ack_p99_ms_at_1000', 2)} ms.")
    return ""


def _rows(rows, n=8):
    return "; ".join(f"{name} {pct:.1f}%" for pct, name in rows[:n]) or "no samples"


def _share(prof, names):
    """Per cent of all samples on the machine in the threads named (a name or a tuple)."""
    names = (names,) if isinstance(names, str) else names
    return sum(pct for pct, name in (prof or {}).get("by_thread", []) if name in names)


def _finding(key, b, j, prof):
    """What this run's figures and profile say about the bar (empty without a profile for the
    parts that need one)."""
    out = []
    if key in ("p99_ms_at_1000", "p99_ms_at_5000", "p99_ratio_seed_queue_at_1000"):
        rate = "1000" if key.endswith("1000") else "5000"
        floor = j.get(f"kafka_ack_p99_ms_at_{rate}")
        bar_ms = b["target"] if key.startswith("p99_ms") else (
            None if j.get("seed_queue_p99_ms_at_1000") is None
            else b["target"] * j["seed_queue_p99_ms_at_1000"])
        if floor is not None and bar_ms is not None:
            if floor > bar_ms:
                out.append(f"The broker's own p99 ({floor:,.2f} ms) is above the bar's "
                           f"{bar_ms:,.2f} ms: with acks=all no ingress can meet it on this "
                           "machine.")
            else:
                out.append(f"The broker's own p99 ({floor:,.2f} ms) is within the bar's "
                           f"{bar_ms:,.2f} ms, so the rest of the gap is on hookline's side.")
    if key in ("p99_ms_at_5000", "e2e_p99_ms_at_5000", "ratio_seed_queue_rps"):
        got = j.get("achieved_rps_at_5000")
        if got is not None:
            out.append(f"The replay achieved {got:,.0f} of the 5,000 req/s asked"
                       + (", so the run was queueing." if got < 0.95 * 5000 else "."))
    if prof and prof.get("by_thread"):
        idle = _share(prof, IDLE)
        busy = [(pct, name) for pct, name in prof["by_thread"] if name != IDLE]
        out.append(f"Idle CPU in the profile: {idle:.1f}%"
                   + (" (saturated)" if idle < 10 else "")
                   + f"; the busiest threads: {_rows(busy, 3)}.")
    if key == "persister_ratio_copy" and prof and prof.get("by_thread"):
        pg, own = _share(prof, "postgres"), _share(prof, PERSISTER)
        mine = prof.get("hookline-persister (main thread)") or []
        if pg > own:
            out.append(f"Over the whole phase (COPY rounds included), Postgres backends had"
                       f" more of the samples than the persister's main "
                       f"thread ({pg:.1f}% against {own:.1f}%): the statements it sends "
                       "(services/persister/README.md, \"Why COPY\") are where to look first.")
        else:
            out.append(f"The persister's main thread had more of the samples than Postgres "
                       f"({own:.1f}% against {pg:.1f}%): its own hottest functions "
                       f"({_rows(mine, 3)}) are where to look first.")
    if key == "ingress_ratio_nginx" and prof:
        mine = prof.get("hookline-ingress") or []
        out.append(f"The ingress's threads had {_share(prof, INGRESS):.1f}% of all samples; "
                   f"its hottest functions: {_rows(mine, 3)}.")
    return " ".join(out)


def closing_notes(j, profiles):
    missed = [b for b in j["bars"] if b["met"] is False]
    unmeasured = [b for b in j["bars"] if b["met"] is None]
    out = []
    if not missed and len(unmeasured) < len(j["bars"]):
        out.append("Every bar that was measured is met.")
        out.append("")
    for b in missed:
        phase, lever = ADVICE[b["key"]]
        prof = profiles.get(phase) if phase else None
        parts = [f"- **{b['bar']}: missed** (measured {b['value']}).", _facts(b["key"], j),
                 _finding(b["key"], b, j, prof), lever,
                 f"Profile: *{TITLES[phase]}* below." if prof else "No profile of its phase."]
        out.append(" ".join(p for p in parts if p))
    for b in unmeasured:
        out.append(f"- {b['bar']}: not measured in this run.")
    used = [p for p in TITLES if profiles.get(p)]
    if used:
        out += ["", "### Where the CPU went", "",
                "`perf record -F 499 -a` during each phase named, summarised with "
                "`perf report --sort comm` (share of all samples on the machine, by thread "
                "name) and `--sort dso,sym` per process (share of that process's own "
                "samples). " + THREADS, ""]
    for phase in used:
        prof = profiles[phase]
        out.append(f"- *{TITLES[phase]}*: by thread: {_rows(prof['by_thread'], 10)}.")
        for label, rows in prof.items():
            # A per-library split (perf --sort dso under --pid) lost the kernel and libc
            # samples; results that carry one do not show it.
            if label != "by_thread" and not label.endswith(" by library"):
                out.append(f"  - {label}: {_rows(rows, 6)}.")
    return out
