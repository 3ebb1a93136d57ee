"""The closing note of latest.md: for every missed bar, where the CPU went during the phase
that measures it (from the perf profiles taken in the run) and what would close the gap."""

# What each bar's profile is, and what the levers are; the figures come from the run.
CIVETWEB = (
    "A call-graph profile of the ingress alone under wrk (perf record --call-graph dwarf, taken "
    "apart from this run) puts most of the ingress's own samples in the kernel under send(), "
    "and strace counts several send() calls per request: civetweb's "
    "mg_response_header_* calls write the status line and every header with a separate send(), "
    "so each 202 leaves as several TCP segments over loopback, each with its softirq work and "
    "a wake-up of the client. Building the whole response in one buffer and writing it with "
    "one mg_write() (or corking the socket until the body) removes most of that work.")

ADVICE = {
    "ingress_ratio_nginx": ("http", CIVETWEB),
    "persister_ratio_copy": (
        "persister",
        "Postgres, not the persister, holds most of the samples: the batch is one INSERT … "
        "SELECT FROM unnest(text arrays) … ON CONFLICT DO NOTHING, which parses the arrays and "
        "runs a speculative insertion per row, where COPY streams tuples. The persister's own "
        "thread is a small share, led by the JSON and UTF-8 validation of each record. Levers to "
        "try: binary-format array parameters, or COPY into a temporary staging table followed "
        "by one INSERT … SELECT … ON CONFLICT in the same transaction."),
    "p99_ms_at_1000": (
        "rate5000",
        "With acks=all the ack cannot be faster than the broker's acknowledgement, so where the "
        "broker's own p99 is above the bar the bar is out of reach on this machine whatever the "
        "ingress does; the rest of the gap is the pipeline's other work (persister, auditor, "
        "Postgres, the load generator) sharing the two cores with the ack path."),
    "p99_ms_at_5000": (
        "rate5000",
        "The achieved rate in the latency table is below 5,000 req/s: the two cores are "
        "saturated (little idle time in the profile), so open-loop latency is queueing and "
        "grows with the run's length. The largest user is the ingress's civetweb workers. "
        + CIVETWEB + " Next come the broker, Postgres and the load generator itself."),
    "e2e_p99_ms_at_5000": (
        "rate5000",
        "End to end includes the same saturation as the ack at this rate (see the bar above); "
        "the persister's batching adds little once it keeps up."),
    "ratio_seed_queue_rps": (
        "rate5000",
        "The ingress alone under wrk is already below five times the seed queue design's rate, "
        "and the whole pipeline shares the cores with the broker and Postgres. " + CIVETWEB),
    "p99_ratio_seed_queue_at_1000": (
        "rate5000",
        "The seed queue design answers from memory before anything is durable; a durable ack "
        "waits for the broker, whose own p99 at this rate is the floor."),
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
    if key == "ratio_seed_queue_rps":
        return (f"5× the seed queue design is {5 * (j.get('seed_queue_rps') or 0):,.0f} req/s; "
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


def closing_notes(j, profiles):
    missed = [b for b in j["bars"] if b["met"] is False]
    unmeasured = [b for b in j["bars"] if b["met"] is None]
    out = []
    if not missed and len(unmeasured) < len(j["bars"]):
        out.append("Every bar that was measured is met.")
        out.append("")
    for b in missed:
        phase, advice = ADVICE[b["key"]]
        parts = [f"- **{b['bar']}: missed** (measured {b['value']}).", _facts(b["key"], j),
                 advice, f"Profile: *{TITLES[phase]}* below."]
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
