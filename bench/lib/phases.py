"""The measured phases of bench/run. Each returns plain dicts of per-repetition figures;
report.py takes the medians. ctx carries the stack, settings, work folder and secrets."""
import json
import os
import re
import subprocess
import threading
import time
import urllib.parse

from load import Profile, producer_perf, write_wrk_script, wrk
from procs import (CpuMeter, Proc, RssSampler, children_cpu_seconds, free_port, http_get, log,
                   metric, run, wait_http, wait_port)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


# --- service configurations ------------------------------------------------------------------

def ingress_config(ctx, name, events, lineage, sources):
    port = free_port()
    srcs = [{"name": s, "scheme": "standard-webhooks", "secrets": [{"env": "HL_BENCH_SECRET"}],
             "message_id_header": "webhook-id", "event_type": "/type"} for s in sources]
    cfg = {"http": {"listen": f"127.0.0.1:{port}", "threads": 128},
           "kafka": {"brokers": ctx.stack.brokers, "events_topic": events,
                     "lineage_topic": lineage},
           "log_level": "warn", "ack_mode": "durable", "sources": srcs,
           "metrics_listen": f"127.0.0.1:{free_port()}",
           # Every load generator connects from 127.0.0.1, as a reverse proxy would.
           "max_connections_per_client": 1000000}
    return _write(ctx, name, cfg), port


def start_service(ctx, svc, cfg_path, port, ready="/readyz", build=None):
    binary = os.path.join(build or ctx.build, "services", svc, f"hookline-{svc}")
    env = dict(os.environ, HL_BENCH_SECRET=ctx.secret)
    p = Proc(svc, [binary, "--config", cfg_path], os.path.join(ctx.work, f"{svc}.log"), env=env,
             cwd=ctx.work)
    wait_http(f"http://127.0.0.1:{port}{ready}", timeout=90, proc=p)
    return p


def _write(ctx, name, cfg):
    path = os.path.join(ctx.work, f"{name}.yaml")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)  # JSON is YAML
    return path


# --- the machine's limits and the ingress under wrk -----------------------------------------

def phase_http(ctx):
    """nginx `return 202` and hookline-ingress (durable) under the same wrk load."""
    s = ctx.settings
    nginx_dir = os.path.join(ctx.work, "nginx")
    os.makedirs(nginx_dir, exist_ok=True)
    nport = free_port()
    with open(os.path.join(nginx_dir, "nginx.conf"), "w") as f:
        f.write(f"""worker_processes auto;
pid {nginx_dir}/nginx.pid;
error_log {nginx_dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    client_body_temp_path {nginx_dir}/body;
    server {{
        listen 127.0.0.1:{nport};
        location / {{ return 202; }}
    }}
}}
""")
    nginx = Proc("nginx", [ctx.nginx, "-e", f"{nginx_dir}/error.log", "-p", nginx_dir, "-c",
                           f"{nginx_dir}/nginx.conf", "-g", "daemon off;"],
                 os.path.join(nginx_dir, "stdout.log"))
    ev, li = f"{ctx.tag}-http-events", f"{ctx.tag}-http-lineage"
    ctx.stack.create_topics({ev: 6, li: 3})
    cfg, iport = ingress_config(ctx, "ingress-http", ev, li, ["bench"])
    ingress = start_service(ctx, "ingress", cfg, iport)
    wait_port(nport, timeout=30, proc=nginx)
    out = {"nginx": [], "ingress": [], "ingress_rss": [], "nginx_replay": []}
    script = os.path.join(ctx.work, "requests.lua")
    try:
        for rep in range(s.reps):
            write_wrk_script(script, ctx.secret, "/v1/webhooks/bench", 3000, s.payload_bytes,
                             f"{ctx.tag}-wrk{rep}")
            if rep == 0:  # warm-up: connections, producer batches, page cache
                wrk(f"http://127.0.0.1:{nport}", script, 1)
                wrk(f"http://127.0.0.1:{iport}", script, 2)
            n = wrk(f"http://127.0.0.1:{nport}", script, s.wrk_seconds)
            last = rep == s.reps - 1
            with RssSampler({"ingress": ingress.pid}) as rss, \
                    Profile(os.path.join(ctx.work, "perf-http.data"), ctx.profile and last):
                i = wrk(f"http://127.0.0.1:{iport}", script, s.wrk_seconds)
            if last:
                ctx.perf_targets["http"] = {"hookline-ingress": ("pid", ingress.pid)}
            out["nginx"].append(n)
            out["ingress"].append(i)
            out["ingress_rss"].append(rss.result.get("ingress", {}).get("max_mb"))
            # The load generator's own ceiling: the same closed-loop replay that drives hookline
            # and the seed peers, against nginx.
            rp = ctx.replay.run(f"http://127.0.0.1:{nport}", "nginx", s.closed_count,
                                s.concurrency)
            out["nginx_replay"].append(rp)
            log(f"wrk rep {rep + 1}: nginx {n['rps']:,.0f} req/s, ingress {i['rps']:,.0f} req/s"
                f" (non-2xx {i['non_2xx']}, socket errors {i['socket_errors']});"
                f" replay against nginx {rp['throughput_rps']:,.0f} req/s")
    finally:
        ingress.stop()
        nginx.stop()
    return out


def phase_kafka(ctx):
    """Kafka's ProducerPerformance with the replay's record size: the broker's ceiling. Then
    the broker's acknowledgement latency at 1,000 and 5,000 records/s measured through
    librdkafka with the ingress's producer settings (kafka_probe.py): the floor under any
    durable ack on this machine. (ProducerPerformance can run at a fixed rate too, but each
    run is a fresh JVM whose warm-up lands in the percentiles of a short run.)"""
    s = ctx.settings
    topic = f"{ctx.tag}-perf"
    ctx.stack.create_topics({topic: 6})
    producer_perf(ctx.stack, topic, s.kafka_records // 2, s.payload_bytes)  # JIT warm-up
    out = {"max": [], "fixed": {}}
    for rep in range(s.reps):
        r = producer_perf(ctx.stack, topic, s.kafka_records, s.payload_bytes)
        out["max"].append(r)
        log(f"ProducerPerformance rep {rep + 1}: {r['rps']:,.0f} records/s, p99 {r['p99_ms']} ms")
    probe = os.path.join(ROOT, "bench", "lib", "kafka_probe.py")
    for rate in (1000, 5000):
        out["fixed"][rate] = []
        for rep in range(s.reps):
            r = json.loads(run(["/usr/bin/python3", "-B", probe, ctx.stack.brokers, topic,
                                str(rate), str(s.rate_seconds), str(s.payload_bytes)],
                               timeout=s.rate_seconds + 120).stdout)
            out["fixed"][rate].append(r)
            log(f"librdkafka producer at {rate} records/s rep {rep + 1}: p50 {r['p50_ms']:.2f} ms,"
                f" p99 {r['p99_ms']:.2f} ms, errors {r['errors']}")
    return out


def phase_persister(ctx):
    """bench/persister/bench.py: the persister draining a pre-filled topic against COPY of the
    same rows into the same table, both measured in each round."""
    s = ctx.settings
    argv = ["/usr/bin/python3", "-B", os.path.join(ROOT, "bench", "persister", "bench.py"),
            "--build", ctx.build, "--records", str(s.persister_records), "--rounds", str(s.reps),
            "--payload-bytes", str(s.payload_bytes)]
    ctx.perf_targets["persister"] = {
        "hookline-persister (main thread)": ("comm", "hookline-persis"),
        "postgres": ("comm", "postgres")}
    with Profile(os.path.join(ctx.work, "perf-persister.data"), ctx.profile):
        r = subprocess.run(argv, env=ctx.stack.env(), capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(f"bench/persister/bench.py exited {r.returncode}: {r.stderr[-3000:]}")
    rounds = {"persister": [], "copy": []}
    for line in r.stdout.splitlines():
        if not line.startswith("{"):
            log(f"persister bench: {line}")
        m = re.search(r"round \d+: persister ([\d,]+) rows/s, COPY ([\d,]+) rows/s", line)
        if m:
            rounds["persister"].append(float(m.group(1).replace(",", "")))
            rounds["copy"].append(float(m.group(2).replace(",", "")))
    summary = json.loads([ln for ln in r.stdout.splitlines() if ln.startswith("{")][-1])
    return {"rounds": rounds, "summary": summary}


# --- the seed design -----------------------------------------------------------------------

def phase_seed(ctx):
    """The Express + pg peer in both variants, driven by the same replay as hookline."""
    s = ctx.settings
    peer = os.path.join(ROOT, "bench", "peers", "seed-express")
    out = {v: {"closed": [], "at_1000": [], "rss": []} for v in ("sync", "queue")}
    for rep in range(s.reps):
        for variant in ("sync", "queue"):
            schema = f"bench_{ctx.tag}_seed_{variant}{rep}".replace("-", "_")
            ctx.stack.make_schema(schema)
            port = free_port()
            env = dict(os.environ, SEED_MODE=variant, SEED_PORT=str(port), SEED_SECRET=ctx.secret,
                       SEED_PG=ctx.stack.pg_url, SEED_SCHEMA=schema)
            node = Proc(f"seed-{variant}", ["node", "server.js"],
                        os.path.join(ctx.work, f"seed-{variant}.log"), env=env, cwd=peer)
            try:
                wait_http(f"http://127.0.0.1:{port}/healthz", timeout=30, proc=node)
                url = f"http://127.0.0.1:{port}"
                with RssSampler({"node": node.pid}) as rss:
                    c = ctx.replay.run(url, f"seed-{variant}", s.seed_closed_count, s.concurrency)
                    f = ctx.replay.run(url, f"seed-{variant}", s.rate_count(1000), s.concurrency,
                                       rate=1000)
            finally:
                node.stop()
            out[variant]["closed"].append(c)
            out[variant]["at_1000"].append(f)
            out[variant]["rss"].append(rss.result.get("node", {}).get("max_mb"))
            log(f"seed {variant} rep {rep + 1}: closed-loop {c['throughput_rps']:,.0f} req/s"
                f" ({c['accepted']}/{c['sent']} accepted), at 1000 req/s p99 {f['p99_ms']:.1f} ms"
                f" ({f['throughput_rps']:,.0f} req/s)")
    return out


# --- the whole pipeline ----------------------------------------------------------------------

class Pipeline:
    """ingress + persister + auditor on the benchmark's own topics and schema."""

    def __init__(self, ctx):
        self.ctx = ctx
        t = ctx.tag
        self.events, self.lineage, self.dlq = f"{t}-events", f"{t}-lineage", f"{t}-dlq"
        self.schema = f"bench_{t}".replace("-", "_")
        s = ctx.settings
        self.sources = ["bench", "outage"] + [f"closed-{r}" for r in range(s.reps)] + \
            [f"r{rate}-{r}" for rate in s.rates for r in range(s.reps)] + \
            [f"ab-{v}-{r}" for v in ("baseline", "this") for r in range(s.reps)]
        self.procs, self.cfgs = {}, {}

    def start(self):
        ctx = self.ctx
        ctx.stack.create_topics({self.events: 6, self.lineage: 3, self.dlq: 1})
        ctx.stack.make_schema(self.schema)
        cfg, self.iport = ingress_config(ctx, "ingress", self.events, self.lineage, self.sources)
        self.pport, self.aport = free_port(), free_port()
        pcfg = _write(ctx, "persister", {
            "kafka": {"brokers": ctx.stack.brokers, "events_topic": self.events,
                      "lineage_topic": self.lineage, "dlq_topic": self.dlq},
            "postgres": {"conninfo": ctx.stack.pg, "schema": self.schema},
            "http": {"listen": f"127.0.0.1:{self.pport}"},
            "group_id": f"{ctx.tag}-persister", "log_level": "warn"})
        acfg = _write(ctx, "auditor", {
            "http": {"listen": f"127.0.0.1:{self.aport}", "threads": 4},
            "kafka": {"brokers": ctx.stack.brokers, "lineage_topic": self.lineage},
            "postgres": {"conninfo": ctx.stack.pg, "schema": self.schema},
            "group_id": f"{ctx.tag}-auditor", "log_level": "warn",
            "checkpoint": {"key_file": os.path.join(ctx.work, "auditor-key.pem"),
                           "generate_if_missing": True},
            "tokens": [{"name": "bench", "sha256": ctx.token_sha256,
                        "roles": ["auditor", "admin", "metrics"]}]})
        self.cfgs = {"ingress": (cfg, self.iport), "persister": (pcfg, self.pport),
                     "auditor": (acfg, self.aport)}
        self.url = f"http://127.0.0.1:{self.iport}"
        self.start_services(ctx.build)
        self.warm_up()

    def start_services(self, build):
        for svc, (cfg, port) in self.cfgs.items():
            self.procs[svc] = start_service(self.ctx, svc, cfg, port, build=build)

    def warm_up(self):
        """An unmeasured closed-loop replay first. The broker's JIT compiles the paths this
        workload takes (librdkafka's produce and fetch requests, three topics, two consumer
        groups) for minutes after a start, and that one-off compile work is not what a request
        costs: measured on the local stack at 5,000 req/s, the broker's C2 compiler threads
        used 111, 78 and 44 µs per request in three successive 30,000-request runs."""
        s = self.ctx.settings
        n = s.warmup_count
        if n:
            t0 = time.monotonic()
            r = self.ctx.replay.run(self.url, "bench", n, s.concurrency)
            drained = self.wait_drained()
            log(f"warm-up: {r['accepted']}/{r['sent']} accepted at {r['throughput_rps']:,.0f}"
                f" req/s, drained {drained} s later ({time.monotonic() - t0:.0f} s in all)")

    def pids(self):
        return {n: p.pid for n, p in self.procs.items()}

    def cpu_meter(self):
        """The processes each component's CPU is read from, found once per run: the services,
        the broker(s) and the Postgres postmaster with its backends. With --shared-stack the
        broker and Postgres also serve whatever else uses them, and are charged for it."""
        services, postmaster = self.pids(), self.ctx.stack.postmaster_pid()
        parts = {n: ([p], False) for n, p in services.items()}
        parts["broker"] = (self.ctx.stack.kafka_pids(), False)
        parts["postgres"] = ([postmaster], True)
        return CpuMeter(parts, pg_split=("postgres", postmaster, services))

    def measured(self, run_replay):
        """Runs one replay and waits until the persister and the auditor have drained it; the
        CPU each component used over both, per accepted request, lands in r["cpu_us"]."""
        with self.cpu_meter() as cpu:
            gen0 = children_cpu_seconds()
            r = run_replay()
            gen = children_cpu_seconds() - gen0
            r["drain_s"] = self.wait_drained()
        cpu.add("load generator", gen)
        if cpu.gone:
            log(f"no CPU figure for {', '.join(cpu.gone)}: a process ended during the run")
        r["cpu_s"] = {n: None if v is None else round(v, 3) for n, v in cpu.seconds.items()}
        r["cpu_wall_s"] = round(cpu.wall_s, 2)
        r["cpu_us"] = cpu.per_request_us(r.get("accepted"))
        r["switches"] = cpu.switches_per_request(r.get("accepted"))
        r["postgres_by_owner_us"] = cpu.split_per_request_us(r.get("accepted"))
        return r

    def stop(self):
        for n in ("ingress", "persister", "auditor"):
            if n in self.procs:
                self.procs.pop(n).stop()

    def lags(self):
        return (metric(f"http://127.0.0.1:{self.pport}/metrics", "hookline_persister_consumer_lag"),
                metric(f"http://127.0.0.1:{self.aport}/metrics", "hookline_auditor_consumer_lag",
                       self.ctx.token))

    def wait_drained(self, timeout=120):
        """Until the persister and the auditor report no lag twice in a row."""
        t0, zero = time.monotonic(), 0
        while time.monotonic() - t0 < timeout:
            p, a = self.lags()
            zero = zero + 1 if (p == 0 and a == 0) else 0
            if zero >= 2:
                return time.monotonic() - t0
            time.sleep(0.5)
        log(f"not drained after {timeout} s (lags {self.lags()})")
        return None

    def latency(self, stage, source, t_from_us):
        q = urllib.parse.urlencode({"stage": stage, "source": source, "from": t_from_us,
                                    "to": int(time.time() * 1e6) + 60_000_000, "buckets": 0})
        _, body = http_get(f"http://127.0.0.1:{self.aport}/v1/latency?{q}", self.ctx.token,
                           timeout=30)
        return json.loads(body)["stages"][stage]

    def closed_loop(self):
        s, out = self.ctx.settings, []
        for rep in range(s.reps):
            with RssSampler(self.pids()) as rss:
                r = self.measured(lambda rep=rep: self.ctx.replay.run(
                    self.url, f"closed-{rep}", s.closed_count, s.concurrency))
            r["rss"] = rss.result
            out.append(r)
            log(f"hookline closed-loop rep {rep + 1}: {r['throughput_rps']:,.0f} req/s"
                f" ({r['accepted']}/{r['sent']} accepted), drained {r['drain_s']} s later")
        return out

    def fixed_rates(self):
        s, out = self.ctx.settings, {}
        for rate in s.rates:
            out[rate] = []
            for rep in range(s.reps):
                source = f"r{rate}-{rep}"
                t0 = int(time.time() * 1e6) - 120_000_000
                last = rep == s.reps - 1 and rate == 5000
                # perf samples the whole machine: its own CPU lands in "unattributed" of the
                # repetition it profiles (medians over the repetitions are reported).
                with RssSampler(self.pids()) as rss, \
                        Profile(os.path.join(self.ctx.work, "perf-rate5000.data"),
                                self.ctx.profile and last):
                    r = self.measured(lambda source=source, rate=rate: self.ctx.replay.run(
                        self.url, source, s.rate_count(rate), s.concurrency, rate=rate))
                if last:
                    self.ctx.perf_targets["rate5000"] = {
                        f"hookline-{n}": ("pid", p) for n, p in self.pids().items()}
                r["rss"] = rss.result
                r["auditor"] = {st: self.latency(st, source, t0) for st in ("ack", "e2e")}
                out[rate].append(r)
                e2e = r["auditor"]["e2e"]
                log(f"rate {rate} rep {rep + 1}: achieved {r['throughput_rps']:,.0f} req/s,"
                    f" ack p50 {r['p50_ms']:.2f} p99 {r['p99_ms']:.2f} p99.9 {r['p999_ms']:.2f} ms,"
                    f" e2e p99 {e2e['p99'] / 1000:.1f} ms ({e2e['count']} samples),"
                    f" errors {r['errors']}")
        return out

    def tables(self):
        """The ordinary tables of the benchmark's schema, quoted."""
        rows = self.ctx.stack.sql(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s"
            " AND c.relkind = 'r' ORDER BY 1", (self.schema,))
        return [t for (t,) in rows]

    def hold_autovacuum(self, held):
        """Autovacuum off (held) or on again for the schema's tables and their TOAST tables."""
        v = "off" if held else "on"
        for t in self.tables():
            self.ctx.stack.sql(f"ALTER TABLE {t} SET (autovacuum_enabled = {v},"
                               f" toast.autovacuum_enabled = {v})")

    def same_run(self, base_build, rate):
        """The pipeline's CPU per accepted request at `rate` with this build's services and
        with a baseline build's, in turns on the same broker, Postgres, topics and schema: the
        services are restarted between turns, the order alternates (baseline first in even
        repetitions), and each turn starts with an unmeasured replay and a drained pipeline.
        Both builds read the configurations this run wrote. Autovacuum is held off the
        schema's tables meanwhile and each turn starts after a VACUUM (ANALYZE) of them: an
        autovacuum worker starts when a table's changes pass a share of its size, so it landed
        in whichever turn crossed that line, charged to that turn's build (21 µs per request in
        some turns, 0 in others); held off, no turn pays for another's rows, and the vacuum each
        build's rows need is left out of both."""
        s, pairs = self.ctx.settings, []
        order = (("baseline", base_build), ("this", self.ctx.build))
        try:
            self.hold_autovacuum(True)
            for rep in range(s.reps):
                pair = {}
                for label, build in (order if rep % 2 == 0 else order[::-1]):
                    self.stop()
                    for t in self.tables():
                        self.ctx.stack.sql(f"VACUUM (ANALYZE) {t}")
                    self.start_services(build)
                    self.ctx.replay.run(self.url, "bench", s.ab_warmup_count, s.concurrency)
                    self.wait_drained()
                    r = self.measured(lambda label=label, rep=rep: self.ctx.replay.run(
                        self.url, f"ab-{label}-{rep}", int(rate * s.ab_seconds), s.concurrency,
                        rate=rate))
                    pair[label] = r
                    log(f"same run rep {rep + 1}, {label} build: {r['accepted']} accepted at"
                        f" {r['throughput_rps']:,.0f} req/s, CPU µs per request "
                        + ", ".join(f"{k} {v}" for k, v in (r["cpu_us"] or {}).items())
                        + "; postgres by whose backends: "
                        + ", ".join(f"{k} {v}" for k, v in
                                    (r["postgres_by_owner_us"] or {}).items()))
                pairs.append(pair)
        finally:  # this build's services again, for the phases after, whatever happened
            self.stop()
            self.start_services(self.ctx.build)
            self.hold_autovacuum(False)
        return {"rate": rate, "pairs": pairs}

    def outage(self):
        """Kafka stopped for outage_s under 1,000 req/s of load: memory of each service while
        it is down, and how long the ingress takes to be ready again once it is back."""
        ctx, s = self.ctx, self.ctx.settings
        bg = ctx.replay.start(self.url, "outage", 1000 * (s.outage_s + 60), s.concurrency,
                              rate=1000, extra=["--max-retries", "0", "--timeout-ms", "15000"])
        time.sleep(3)
        with RssSampler(self.pids()) as rss:
            t0 = time.monotonic()
            ctx.stack.stop_kafka()
            log(f"Kafka stopped; waiting {s.outage_s} s")
            time.sleep(max(0, s.outage_s - (time.monotonic() - t0)))
        # The ingress's readiness is polled while the stack restarts the broker, so the time
        # it needs is measured from the moment the restart began.
        back = time.monotonic()
        ready = {}

        def poll_ready():
            while time.monotonic() - back < 180:
                try:
                    if http_get(f"{self.url}/readyz", timeout=1)[0] == 200:
                        ready["s"] = time.monotonic() - back
                        return
                except Exception:  # 503 or refused while Kafka is away
                    pass
                time.sleep(0.1)

        poller = threading.Thread(target=poll_ready, daemon=True)
        poller.start()
        ctx.stack.start_kafka()
        restart_s = time.monotonic() - back
        poller.join()
        ready_s = ready.get("s")
        time.sleep(3)  # some accepted traffic after the return
        res = ctx.replay.finish(bg)
        alive = {n: p.alive() for n, p in self.procs.items()}
        drain = self.wait_drained(timeout=90)
        log(f"outage: peak RSS {rss.result}; broker restarted in {restart_s:.1f} s, ingress ready"
            f" {ready_s} s after the restart began; services alive {alive}")
        return {"rss": rss.result, "kafka_restart_s": restart_s, "ingress_ready_s": ready_s,
                "alive": alive,
                "drained_s": drain,
                "replay": {k: res.get(k) for k in ("sent", "accepted", "errors", "p99_ms")}
                if res else None}
