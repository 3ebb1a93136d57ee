"""One fault scenario: its own topics and schema on the private stack, the services it runs
(any number of ingresses, persisters and auditors, each restartable in its slot), background
`hookline replay` runs, and the verdict.

The verdict of every scenario is the same: each replay's ledger is checked by `hookline verify`
(every event answered 202 stored exactly once, in order per message, every request with its
lineage), the auditor's own count of open gaps must be 0 and its hash chains intact, every
request must have ended in a 202 (the replay's retry budget must outlast the fault, otherwise
the events skipped after a failure would go unchecked), and the services must still be
running. Everything measured is printed, and kept in `summary` for the table at the end."""
import collections
import http.client
import json
import os
import random
import signal
import subprocess
import time
import urllib.error
import urllib.request

import psycopg2

from auditor_support import TOKENS, auditor_config
from harness import free_port, kafkaio, paths, pgio
from ingress_support import DEMO_SECRET, ingress_config, metrics_text, standard_source
from persister_support import persister_config

SOURCE = "fault"
SECRET_ENV = "HL_FAULT_SOURCE_SECRET"
TOKEN_ENV = "HL_FAULT_AUDITOR_TOKEN"
PARTITIONS = {"events": 6, "lineage": 3, "dlq": 1, "checkpoints": 1}
DUPLICATE_RATIO = 0.05  # share of events the replay sends a second time (provider resends)

Stopped = collections.namedtuple("Stopped", "svc code seconds metrics_before metrics_last")


def metric_sum(text, name):
    """Sum of every sample of one metric in Prometheus text (None when absent)."""
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith(name) and len(line) > len(name) and line[len(name)] in " {":
            total += float(line.rsplit(" ", 1)[1])
            seen = True
    return total if seen else None


def status_counts(text):
    """{status: count} from the hookline_ingress_requests_total{source,status} samples."""
    out = {}
    for line in text.splitlines():
        if line.startswith("hookline_ingress_requests_total{") and 'status="' in line:
            st = line.split('status="', 1)[1].split('"', 1)[0]
            out[st] = out.get(st, 0) + int(float(line.rsplit(" ", 1)[1]))
    return out


VERIFY_LINES = {
    "accepted events": "accepted_events",
    "stored": "stored",
    "missing rows (gaps)": "missing_rows",
    "duplicate rows": "duplicate_rows",
    "idempotency violations": "idempotency_violations",
    "ordering violations": "ordering_violations",
    "auditor gaps": "auditor_gaps",
}


def parse_verify(text):
    """The figures of `hookline verify`'s table."""
    fig = {}
    for line in text.splitlines():
        s = line.strip()
        for label, key in VERIFY_LINES.items():
            rest = s[len(label):].strip()
            if s.startswith(label + " ") and rest.lstrip("-").isdigit():
                fig[key] = int(rest)
        if s.startswith("lineage coverage") and "request ids" in s:
            # "lineage coverage       100.000 % (12 of 12 request ids)"
            inside = s[s.index("(") + 1:s.index(")")].split()
            fig["lineage_complete"], fig["lineage_checked"] = int(inside[0]), int(inside[2])
        if s.startswith("verify:"):
            fig["verdict"] = s.split(":", 1)[1].strip()
    return fig


class _Schema:
    """What the harness' config builders read from a schema: its name."""

    def __init__(self, name):
        self.name = name


class Replay:
    """`hookline replay --no-verify` in the background; the ledger it leaves in its evidence
    folder (requests.ndjson) is what `hookline verify` checks afterwards."""

    def __init__(self, sc, label, url, count, concurrency, seed, opts, rate=None):
        self.sc, self.label, self.count = sc, label, count
        self.dir = os.path.join(sc.work, f"replay-{label}")
        os.makedirs(self.dir, exist_ok=True)
        self.evidence = os.path.join(self.dir, "evidence")
        self.ledger = os.path.join(self.evidence, "requests.ndjson")
        self.argv = [
            sc.hookline, "replay", "--url", url, "--source", SOURCE,
            "--scheme", "standard-webhooks", "--secret-env", SECRET_ENV,
            "--count", str(count), "--events-per-message", "3",
            "--duplicate-ratio", str(DUPLICATE_RATIO), "--concurrency", str(concurrency),
            "--seed", str(seed), "--run-id", f"{sc.tag}-{label}",
            "--max-retries", str(opts["max_retries"]),
            "--max-retry-wait-ms", str(opts["max_retry_wait_ms"]),
            "--timeout-ms", str(opts["timeout_ms"]),
            "--no-verify", "--no-progress", "--json", "--evidence", self.evidence]
        if rate:
            self.argv += ["--rate", str(rate)]
        self.out_path = os.path.join(self.dir, "stdout.json")
        self.err_path = os.path.join(self.dir, "stderr.txt")
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         env=dict(os.environ, **{SECRET_ENV: DEMO_SECRET}))
        self.t0 = time.monotonic()
        self.elapsed = None
        self.results = None

    def running(self):
        return self.proc.poll() is None

    def wait(self, timeout):
        """Waits for the replay to finish sending; returns its results (results.json)."""
        if self.results is not None:
            return self.results
        try:
            self.proc.wait(max(1, timeout - (time.monotonic() - self.t0)))
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"replay {self.label} still sending after {timeout:.0f} s"
                                 " (killed): a hang")
        with open(self.out_path) as f:
            text = f.read()
        # --no-verify leaves the verification criteria unmeasured, so the gate says FAIL (1);
        # 2 is a real error (no answer at all, bad options).
        if self.proc.returncode not in (0, 1) or not text.strip():
            with open(self.err_path) as f:
                err = f.read()
            raise AssertionError(f"hookline replay {self.label} exited {self.proc.returncode}:"
                                 f" {err[-2000:]}")
        self.results = json.loads(text)
        self.elapsed = self.results["duration_s"]  # first request to last answer
        return self.results

    def stop(self):
        if self.running():
            self.proc.kill()
            self.proc.wait(10)


class Scenario:
    def __init__(self, name, stack, factory, work, tag, opts, hookline, rng=None):
        self.name, self.stack, self.factory, self.work = name, stack, factory, work
        self.tag, self.opts, self.hookline = tag, opts, hookline
        self.rng = rng or random.Random()
        os.makedirs(work, exist_ok=True)
        self.t0 = time.monotonic()
        self.svc = {}            # (kind, slot) -> running harness Service
        self.cfg = {}            # (kind, slot) -> config dict, kept for restarts
        self.starts = {}         # (kind, slot) -> how many times started
        self.retired = []        # services stopped or killed
        self.lineage_dropped = 0.0
        self.answers = {}        # ingress answers by status, over every instance
        self.judged = False      # the two counters above are final once judge() read them
        self.verified = None     # the auditor's GET /v1/verify answer judge() read
        self.replays = []
        self.summary = {"scenario": name, "actions": []}
        self.topics = {k: f"f{tag}-{name}-{k}" for k in PARTITIONS}
        # The stack's replication: 3 copies, 2 in sync, on the production topology.
        # The checkpoint topic as proto/topics.yaml makes it: records never removed.
        kafkaio.create_topics(stack.brokers, {self.topics[k]: p for k, p in PARTITIONS.items()},
                              timeout=60, replication=stack.replication,
                              min_insync=stack.min_insync,
                              configs={self.topics["checkpoints"]:
                                       kafkaio.contract_config("checkpoints")})
        self.schema = f"f_{tag}_{name}".replace("-", "_")
        conn = psycopg2.connect(stack.pg_dsn, connect_timeout=10)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE SCHEMA "{self.schema}"')
        finally:
            conn.close()
        subprocess.run([str(paths.MIGRATE_SCRIPT), "--schema", self.schema, "--conninfo",
                        stack.pg_dsn], check=True, capture_output=True, timeout=120)
        self.group = f"f{tag}-{name}-persister"
        self.key_file = os.path.join(work, "auditor-key.pem")
        self.monitor = None
        self.note(f"topics {self.topics['events']} (6 partitions), lineage (3), dlq (1),"
                  f" {stack.replication} copies each, min.insync.replicas {stack.min_insync};"
                  f" schema {self.schema}")

    # --- log ---------------------------------------------------------------------------------

    def note(self, text, action=False):
        """Prints one line of what happened (seconds since the scenario began); actions (kills,
        stops, restarts) are also kept for the summary table."""
        t = time.monotonic() - self.t0
        if action:
            self.summary["actions"].append(f"{t:.1f}s {text}")
        print(f"[{self.name} {t:6.1f}s] {text}", flush=True)

    # --- services ----------------------------------------------------------------------------

    def _config(self, kind, port):
        sch = _Schema(self.schema)
        if kind == "ingress":
            cfg = ingress_config(port, self.topics, [standard_source(name=SOURCE, env=SECRET_ENV)],
                                 brokers=self.stack.brokers, log_level="info")
            # One civetweb worker per keep-alive connection of the replays, with room to spare.
            cfg["http"]["threads"] = 96
            cfg["http"]["request_timeout_ms"] = 10000
            return cfg
        if kind == "persister":
            return persister_config(self.stack, self.topics, sch, port, self.group,
                                    log_level="info")
        if kind == "auditor":
            return auditor_config(self.stack, self.topics, sch, port, self.key_file,
                                  group=f"f{self.tag}-{self.name}-auditor", log_level="info",
                                  batch_linger_ms=50, gap_grace_s=5, gap_scan_interval_s=10)
        raise ValueError(kind)

    def start(self, kind, slot=0, **over):
        """Starts (or starts again, same config and port) the service in that slot and waits
        for its /healthz. `over` replaces top-level config keys at the first start."""
        key = (kind, slot)
        if key not in self.cfg:
            self.cfg[key] = self._config(kind, free_port())
            self.cfg[key].update(over)
        env = {SECRET_ENV: DEMO_SECRET} if kind == "ingress" else None
        t = time.monotonic()
        svc = self.factory(kind, self.cfg[key], env=env, health_timeout=60)
        self.svc[key] = svc
        self.starts[key] = self.starts.get(key, 0) + 1
        again = self.starts[key] > 1
        self.note(f"{'restarted' if again else 'started'} {kind}[{slot}] pid {svc.pid} on"
                  f" :{svc.port} (healthy in {time.monotonic() - t:.1f} s)", action=again)
        return svc

    def url(self, kind, slot=0):
        return f"http://127.0.0.1:{self.cfg[(kind, slot)]['http']['listen'].rsplit(':', 1)[1]}"

    def metrics(self, kind, slot=0):
        """/metrics of the running service in that slot ("" when it does not answer)."""
        return self._metrics_of(self.svc.get((kind, slot)), kind)

    def _metrics_of(self, svc, kind):
        if svc is None or not svc.running():
            return ""
        hdr = {"Authorization": f"Bearer {TOKENS['metrics']}"} if kind == "auditor" else None
        try:
            if kind == "ingress":  # on its metrics listener, not the webhook port
                status, text = metrics_text(svc)
                return text if status == 200 else ""
            status, body, _ = svc.get("/metrics", timeout=5, headers=hdr)
        except (OSError, urllib.error.URLError, http.client.HTTPException):
            return ""
        return body.decode(errors="replace") if status == 200 else ""

    def _account(self, kind, text):
        """Adds an ingress's counters (its last scrape) to the scenario's totals."""
        if kind != "ingress" or self.judged:
            return
        self.lineage_dropped += metric_sum(text, "hookline_ingress_lineage_dropped_total") or 0
        for k, v in status_counts(text).items():
            self.answers[k] = self.answers.get(k, 0) + v

    def kill(self, kind, slot=0, sig=signal.SIGKILL, wait=30):
        """Sends sig to the service and waits for it to exit, scraping its /metrics meanwhile
        (a draining ingress still answers them). Returns a Stopped."""
        svc = self.svc.pop((kind, slot))
        before = last = self._metrics_of(svc, kind)
        t = time.monotonic()
        svc.proc.send_signal(sig)
        while svc.proc.poll() is None and time.monotonic() - t < wait:
            if sig != signal.SIGKILL:
                last = self._metrics_of(svc, kind) or last
            time.sleep(0.02)
        if svc.proc.poll() is None:
            svc.proc.kill()
            svc.proc.wait(10)
            raise AssertionError(f"{kind}[{slot}] pid {svc.pid} did not exit within {wait} s of"
                                 f" {signal.Signals(sig).name}; log {svc.log_path}")
        took = time.monotonic() - t
        self._account(kind, last)
        self.retired.append(svc)
        self.note(f"{signal.Signals(sig).name} {kind}[{slot}] pid {svc.pid}: exited"
                  f" {svc.proc.returncode} after {took:.2f} s", action=True)
        return Stopped(svc, svc.proc.returncode, took, before, last)

    def stop_all(self):
        """Stops every service still running (SIGTERM); returns the harness' problems (a
        service that ignored SIGTERM or left a process behind)."""
        for key, svc in list(self.svc.items()):
            self._account(key[0], self._metrics_of(svc, key[0]))
            self.retired.append(self.svc.pop(key))
        return self.factory.stop_all()

    def status_counts(self, slots=(0,)):
        """{status: count} of the answers of the running ingresses in those slots."""
        out = {}
        for s in slots:
            for k, v in status_counts(self.metrics("ingress", s)).items():
                out[k] = out.get(k, 0) + v
        return out

    def answered(self, slots=(0,)):
        """Requests answered so far by the running ingresses in those slots (any status)."""
        return sum(self.status_counts(slots).values())

    # --- Postgres ----------------------------------------------------------------------------

    def _count(self, table):
        try:
            conn = psycopg2.connect(self.stack.pg_dsn, connect_timeout=3)
        except psycopg2.Error:
            return None
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'SELECT count(*) FROM "{self.schema}".{table}')
                return cur.fetchone()[0]
        except psycopg2.Error:
            return None
        finally:
            conn.close()

    def rows(self):
        """Rows in webhook_events, or None while Postgres does not answer."""
        return self._count("webhook_events")

    def lineage_rows(self):
        """Rows in the auditor's lineage table, or None while Postgres does not answer."""
        return self._count("lineage")

    # --- load --------------------------------------------------------------------------------

    def replay(self, label, url, count, concurrency=50, seconds=None):
        """Starts a replay. With `seconds` it is paced open-loop (`--rate`) to send for about
        that long, so an attack timed against its progress fits on a fast host too; without,
        it sends as fast as the answers come."""
        rate = max(1, round(count * (1 + DUPLICATE_RATIO) / seconds)) if seconds else None
        seed = self.rng.randrange(1, 1 << 30)
        r = Replay(self, label, url, count, concurrency, seed, self.opts, rate)
        self.replays.append(r)
        pace = f"at {rate:,} req/s" if rate else "closed-loop"
        self.note(f"replay {label}: {count:,} events (+~{DUPLICATE_RATIO:.0%} resends) -> {url},"
                  f" {concurrency} connections {pace}, seed {seed}, up to"
                  f" {self.opts['max_retries']} retries each waiting"
                  f" <= {self.opts['max_retry_wait_ms']} ms")
        return r

    def wait_answered(self, fraction, replays, slots=(0,), timeout=900):
        """Until the ingresses answered `fraction` of the replays' expected requests (or the
        replays ended). Returns the count reached."""
        want = fraction * sum(r.count for r in replays) * (1 + DUPLICATE_RATIO)
        deadline = time.monotonic() + timeout
        n = 0
        while time.monotonic() < deadline:
            n = self.answered(slots)
            if n >= want or not any(r.running() for r in replays):
                return n
            time.sleep(0.1)
        raise AssertionError(f"{self.name}: only {n:.0f} requests answered in {timeout} s")

    # --- verdict -----------------------------------------------------------------------------

    def wait_drained(self, rows_want, lineage_want, stall_s=60, cap_s=900):
        """Until webhook_events holds rows_want rows and the lineage table lineage_want rows,
        or neither count moved for stall_s (a loss, or a stuck service: verify then says
        which). Returns (seconds, rows, lineage rows, reached)."""
        t0 = time.monotonic()
        last, moved = None, t0
        while True:
            now = time.monotonic()
            cur = (self.rows(), self.lineage_rows())
            if None not in cur and cur[0] >= rows_want and cur[1] >= lineage_want:
                return now - t0, cur[0], cur[1], True
            if cur != last:
                last, moved = cur, now
            if now - moved > stall_s or now - t0 > cap_s:
                return now - t0, cur[0], cur[1], False
            time.sleep(1)

    def verify(self, replay):
        """`hookline verify` on the replay's ledger. Returns (exit code, figures, output)."""
        argv = [self.hookline, "verify", "--requests", replay.ledger, "--pg", self.stack.pg_dsn,
                "--pg-schema", self.schema, "--source", SOURCE, "--auditor", self.url("auditor"),
                "--auditor-token-env", TOKEN_ENV,
                "--settle-timeout-ms", str(self.opts["settle_s"] * 1000)]
        t = time.monotonic()
        r = subprocess.run(argv, capture_output=True, text=True,
                           timeout=self.opts["settle_s"] * 3 + 300,
                           env=dict(os.environ, **{TOKEN_ENV: TOKENS["auditor"]}))
        fig = parse_verify(r.stdout)
        fig["verify_s"] = round(time.monotonic() - t, 1)
        return r.returncode, fig, r.stdout + r.stderr

    def lineage_breakdown(self, replay):
        """For the requests of a ledger whose lineage is incomplete: which stage is missing,
        and whether the event's row is in the table anyway (a commit whose `persisted` record
        never reached the auditor)."""
        reqs = []
        with open(replay.ledger) as f:
            for line in f:
                o = json.loads(line)
                if o["request_id"]:
                    reqs.append(o)
        conn = psycopg2.connect(self.stack.pg_dsn, connect_timeout=10,
                                options=f"-c search_path={self.schema}")
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT request_id, array_agg(DISTINCT stage) FROM lineage"
                            " WHERE request_id = ANY(%s) GROUP BY request_id",
                            ([o["request_id"] for o in reqs],))
                stages = {rid: set(st) for rid, st in cur.fetchall()}
                cur.execute("SELECT message_id, event_type FROM webhook_events WHERE source = %s",
                            (SOURCE,))
                stored = set(cur.fetchall())
        finally:
            conn.close()
        out = {"no_ingress_record": [], "accepted_no_commit_record_row_stored": [],
               "accepted_no_commit_record_no_row": []}
        for o in reqs:
            st = stages.get(o["request_id"], set())
            if "ingress" not in st:
                out["no_ingress_record"].append(o)
            if o["status"] == 202 and not st & {"persisted", "dead_lettered"}:
                k = "accepted_no_commit_record_row_stored" \
                    if (o["message_id"], o["event_type"]) in stored \
                    else "accepted_no_commit_record_no_row"
                out[k].append(o)
        return out

    def missing_rows_detail(self, replay):
        """For events answered 202 but absent from the table: what the auditor holds about
        them (a `persisted` record claiming a commit that is not there is the worst case)."""
        led = []
        with open(replay.ledger) as f:
            for line in f:
                o = json.loads(line)
                if o["status"] == 202:
                    led.append(o)
        conn = psycopg2.connect(self.stack.pg_dsn, connect_timeout=10,
                                options=f"-c search_path={self.schema}")
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT message_id, event_type FROM webhook_events WHERE source = %s",
                            (SOURCE,))
                stored = set(cur.fetchall())
                gone = [o for o in led if (o["message_id"], o["event_type"]) not in stored]
                cur.execute("SELECT request_id, record FROM lineage WHERE stage = 'persisted'"
                            " AND request_id = ANY(%s)", ([o["request_id"] for o in gone],))
                persisted = {rid: json.loads(rec) for rid, rec in cur.fetchall()}
                cur.execute("SELECT kafka_partition, next_offset FROM consumer_offsets"
                            " WHERE consumer_group = %s ORDER BY 1", (self.group,))
                offsets = cur.fetchall()
        finally:
            conn.close()
        claimed = [persisted[o["request_id"]] for o in gone if o["request_id"] in persisted]
        return {"missing": len(gone), "with_persisted_record": len(claimed),
                "persisted_records_not_duplicate": sum(1 for c in claimed
                                                       if not c.get("duplicate")),
                "distinct_committed_us": sorted({c.get("committed_us") for c in claimed})[:10],
                "persister_offsets": offsets, "examples": gone[:3], "records": claimed[:3]}

    def auditor_open_gaps(self):
        """Open gaps from GET /v1/gaps, with a patient timeout (verify gives up on the auditor
        after 5 s, and prints no figure then). None when the auditor does not answer."""
        req = urllib.request.Request(self.url("auditor") + "/v1/gaps?state=open&limit=1000",
                                     headers={"Authorization": f"Bearer {TOKENS['auditor']}"})
        t = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=300) as r:
                body = json.loads(r.read())
        except (OSError, urllib.error.URLError, ValueError) as e:
            self.note(f"GET /v1/gaps failed after {time.monotonic() - t:.1f} s: {e}")
            return None
        self.note(f"GET /v1/gaps answered in {time.monotonic() - t:.1f} s")
        return len(body.get("gaps") or [])

    def auditor_chains(self):
        """GET /v1/verify: the auditor walks every hash chain it wrote."""
        req = urllib.request.Request(self.url("auditor") + "/v1/verify",
                                     headers={"Authorization": f"Bearer {TOKENS['auditor']}"})
        with urllib.request.urlopen(req, timeout=300) as r:
            return json.loads(r.read())

    def judge(self):
        """Waits for every replay, verifies each, and returns every problem found."""
        problems = []
        tot = collections.Counter()
        send_s = []
        for r in self.replays:
            res = r.wait(self.opts["replay_timeout_s"])
            send_s.append(round(r.elapsed, 1))
            self.note(f"replay {r.label} sent for {r.elapsed:.1f} s: sent {res['sent']:,},"
                      f" accepted {res['accepted']:,}, retries {res['retries']:,},"
                      f" transport errors {res.get('transport_errors', 0):,},"
                      f" skipped {res['skipped']:,}, {res['throughput_rps']:,.0f} req/s")
            tot["events"] += r.count
            for k in ("sent", "accepted", "retries", "skipped", "transport_errors"):
                tot[k] += res.get(k, 0)
            if res["accepted"] != res["sent"] or res["skipped"]:
                problems.append(f"replay {r.label}: {res['sent'] - res['accepted']} requests not"
                                f" accepted after retries, {res['skipped']} skipped (the retry"
                                " budget did not cover the fault, or a request was refused)")
        for (kind, slot), svc in self.svc.items():
            if not svc.running():
                problems.append(f"{kind}[{slot}] pid {svc.pid} died (exit"
                                f" {svc.proc.returncode}); log {svc.log_path}")
        # The persister and the auditor catch up after the fault at their own pace; verify
        # judges a settled pipeline, and the catch-up time is reported. Every event ends as one
        # row; every request has its ingress record and every accepted one its persisted one.
        took, rows, lin, ok = self.wait_drained(tot["events"], tot["sent"] + tot["accepted"])
        self.note(f"{'caught up' if ok else 'NOT caught up (counts stalled)'} {took:.1f} s after"
                  f" the replays ended: {rows:,} of {tot['events']:,} rows, {lin:,} of at least"
                  f" {tot['sent'] + tot['accepted']:,} lineage rows")
        tot["catch_up_s"] = round(took, 1)
        gaps = []
        for r in self.replays:
            code, fig, out = self.verify(r)
            self.note(f"hookline verify {r.label} (exit {code}, {fig['verify_s']} s):\n"
                      + "\n".join("      " + ln.strip() for ln in out.strip().splitlines()))
            tot["verify_s"] += fig["verify_s"]
            if code != 0:
                problems.append(f"hookline verify {r.label} exited {code}")
            need = ("accepted_events", "stored", "missing_rows", "duplicate_rows",
                    "ordering_violations", "lineage_complete", "lineage_checked")
            if any(k not in fig for k in need):
                problems.append(f"hookline verify {r.label}: unreadable output")
                continue
            for k in need:
                tot[k] += fig[k]
            gaps.append(fig.get("auditor_gaps"))
            for k, what in (("missing_rows", "events answered 202 missing from the table (lost)"),
                            ("duplicate_rows", "events stored more than once"),
                            ("ordering_violations", "ordering violations")):
                if fig[k]:
                    problems.append(f"{r.label}: {fig[k]} {what}")
            if fig["missing_rows"]:
                detail = self.missing_rows_detail(r)
                self.write_json(r, "missing-rows.json", detail)
                problems.append(f"{r.label}: of the {detail['missing']} lost events,"
                                f" {detail['persisted_records_not_duplicate']} have a `persisted`"
                                f" lineage record claiming a commit (committed_us"
                                f" {detail['distinct_committed_us']}); persister offsets"
                                f" {detail['persister_offsets']}")
            if fig["lineage_complete"] != fig["lineage_checked"]:
                miss = self.lineage_breakdown(r)
                path = self.write_json(r, "lineage-missing.json", miss)
                desc = ", ".join(f"{k.replace('_', ' ')}: {len(v)}" for k, v in miss.items())
                only_stored = miss["accepted_no_commit_record_row_stored"] and not (
                    miss["no_ingress_record"] or miss["accepted_no_commit_record_no_row"])
                why = ("; rows stored without their `persisted` record: the signature of a"
                       " persister stopped between its commit and its lineage delivery"
                       if only_stored else "")
                problems.append(f"{r.label}: lineage incomplete for"
                                f" {fig['lineage_checked'] - fig['lineage_complete']} of"
                                f" {fig['lineage_checked']} request ids ({desc}{why}; {path})")
        if self.replays and (not gaps or None in gaps) and ("auditor", 0) in self.svc:
            gaps.append(self.auditor_open_gaps())
            if gaps[-1] is None:
                problems.append("the auditor's open gaps could not be read (GET /v1/gaps)")
        known = [g for g in gaps if g is not None]
        if known and max(known) > 0:
            problems.append(f"the auditor reports {max(known)} open gaps")
        if ("auditor", 0) in self.svc:
            body = self.auditor_chains()
            chains = body.get("chains") or []
            rows = sum(c.get("rows", 0) for c in chains)
            self.note(f"auditor hash chains: ok={body.get('ok')}, {len(chains)} chains,"
                      f" {rows:,} rows")
            self.verified = body
            content = body.get("content") or {}
            self.note(f"auditor content check: ok={content.get('ok')}, bad {content.get('bad')},"
                      f" rows written again after a lost commit {content.get('rows_rewritten')}")
            if body.get("ok") is not True:
                broken = [c for c in chains if c.get("ok") is not True][:3]
                problems.append(f"auditor /v1/verify: not ok; chain_ok {body.get('chain_ok')}"
                                f" {json.dumps(broken)[:600]}; content: bad {content.get('bad')},"
                                " first bad"
                                f" {json.dumps(content.get('first_bad'))[:600]}")
            shape = (body.get("checkpoints_outside") or {}).get("topic_shape")
            if shape == "wrong":
                problems.append("auditor: the checkpoint topic's shape is wrong: "
                                f"{body['checkpoints_outside'].get('topic_shape_error')}")
        for (kind, _), svc in self.svc.items():
            self._account(kind, self._metrics_of(svc, kind))
        self.judged = True
        answers = {k: v for k, v in self.answers.items() if v}
        self.note(f"ingress answers by status (every instance, last scrape): {answers};"
                  f" lineage records dropped by the ingresses: {self.lineage_dropped:.0f}")
        self.summary.update(tot, send_s=send_s, auditor_gaps=max(known) if known else None,
                            lineage_dropped=int(self.lineage_dropped), answers=answers)
        return problems

    def finish(self, problems):
        """Records the scenario's problems for the summary and fails the test on any."""
        self.summary["problems"] = list(problems)
        assert not problems, "\n".join(problems)

    def write_json(self, replay, name, obj):
        path = os.path.join(replay.dir, name)
        with open(path, "w") as f:
            json.dump(obj, f, indent=1, default=str)
        return path
