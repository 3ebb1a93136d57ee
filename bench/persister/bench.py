#!/usr/bin/python3
"""Persister throughput against Postgres COPY of the same rows, in the same run.

Fills a fresh topic with N unique events (the ingress's record format), then, for each round:
  - the persister drains the topic into a fresh schema (all migrations applied) with a fresh
    consumer group and a lineage topic of the round's own;
  - COPY (text format, one statement, one transaction) of the same N rows into an identical
    fresh schema.
Both are timed over the same window, first record in to last commit: for COPY from the moment
its first row is sent to the return of COMMIT; for the persister from the first record taken
from Kafka (the smallest consumed_us of its `persisted` lineage records) to the return of its
last batch's COMMIT (the largest committed_us), so process start and the group join are not
counted, the first batch's fetch and parse and the last commit are. rows/s = N / window.
Reports the medians of each method and the median of the rounds' paired ratios (persister /
COPY of the same round). Needs the local stack (deploy/local/stack up).

  /usr/bin/python3 bench/persister/bench.py --build build [--records 200000] [--rounds 3]
      [--batch-max 2000] [--linger-ms 20] [--payload-bytes 300]
"""
import argparse
import io
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import psycopg2
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BROKERS = os.environ.get("HL_KAFKA_BROKERS", "127.0.0.1:9092")
PG = "host=127.0.0.1 port=%s dbname=hookline user=hookline" % os.environ.get("HL_PG_PORT", "55432")
PARTITIONS = 6


def sql(q, params=None, schema=None):
    conn = psycopg2.connect(PG, options=f"-c search_path={schema}" if schema else "")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(q, params)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def make_schema(name):
    sql(f"CREATE SCHEMA {name}")
    subprocess.run([os.path.join(ROOT, "deploy/local/migrate"), "--schema", name], check=True,
                   capture_output=True)


def fill(topic, n, payload_bytes):
    """Produces n unique events; returns the rows as they must land in the table."""
    p = Producer({"bootstrap.servers": BROKERS, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 20, "batch.size": 1000000, "compression.type": "lz4"})
    rows = []
    pad = "x" * max(0, payload_bytes - 80)
    now = int(time.time() * 1e6)
    acked = {}

    def cb(err, msg):
        if err is not None:
            raise RuntimeError(err)
        acked[msg.key()] = (msg.partition(), msg.offset())

    for i in range(n):
        mid = f"bench-{i:08d}"
        rid = str(uuid.uuid4())
        body = json.dumps({"id": mid, "type": "invoice.paid", "amount": i, "pad": pad})
        hdrs = [("hl-request-id", rid), ("hl-source", "stripe"), ("hl-event-type", "invoice.paid"),
                ("hl-received-us", str(now + i)), ("content-type", "application/json")]
        while True:
            try:
                p.produce(topic, key=mid, value=body, headers=hdrs, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.05)
        rows.append([mid, rid, now + i, body])
        if i % 10000 == 0:
            p.poll(0)
    assert p.flush(120) == 0
    for r in rows:
        r.extend(acked[r[0].encode()])
    return rows


def copy_text(rows):
    """The same rows in COPY text format (payload JSON escaped for COPY)."""
    buf = io.StringIO()
    for mid, rid, rus, body, part, off in rows:
        ts = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(rus // 1000000)) + \
            ".%06d+00" % (rus % 1000000)
        b = body.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
        buf.write(f"stripe\t{mid}\tinvoice.paid\t{rid}\t{ts}\t{part}\t{off}\t{b}\n")
    return buf.getvalue()


def run_copy(text, schema):
    conn = psycopg2.connect(PG, options=f"-c search_path={schema}")
    try:
        with conn.cursor() as cur:
            t0 = time.perf_counter()
            cur.copy_expert("COPY webhook_events (source, message_id, event_type, request_id,"
                            " received_at, kafka_partition, kafka_offset, payload) FROM STDIN",
                            io.StringIO(text))
            conn.commit()
            return time.perf_counter() - t0
    finally:
        conn.close()


def persisted_window(lineage_topic, n):
    """Seconds from the first record the persister took from Kafka to the return of its last
    commit, from its n `persisted` lineage records (both times from the persister's clock)."""
    c = Consumer({"bootstrap.servers": BROKERS, "group.id": f"{lineage_topic}-reader",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([lineage_topic])
    first, last, seen = None, None, 0
    deadline = time.monotonic() + 120
    try:
        while seen < n and time.monotonic() < deadline:
            for m in c.consume(10000, 1.0):
                if m.error():
                    continue
                rec = json.loads(m.value())
                if rec.get("stage") != "persisted":
                    continue
                seen += 1
                first = rec["consumed_us"] if first is None else min(first, rec["consumed_us"])
                last = rec["committed_us"] if last is None else max(last, rec["committed_us"])
    finally:
        c.close()
    if seen < n:
        raise RuntimeError(f"{seen} persisted lineage records in {lineage_topic} for {n} rows")
    return (last - first) / 1e6


def run_persister(binary, topic, lineage_topic, schema, n, batch_max, linger_ms, logdir):
    group = f"bench-{schema}"
    cfg = os.path.join(logdir, f"{schema}.yaml")
    with open(cfg, "w") as f:
        f.write(json.dumps({
            "kafka": {"brokers": BROKERS, "events_topic": topic,
                      "lineage_topic": lineage_topic, "dlq_topic": topic + "-dlq"},
            "postgres": {"conninfo": PG, "schema": schema},
            "http": {"listen": "127.0.0.1:0"},
            "group_id": group, "log_level": "warn",
            "batch_max": batch_max, "batch_linger_ms": linger_ms}))  # JSON is YAML
    log = open(os.path.join(logdir, f"{schema}.log"), "wb")
    proc = subprocess.Popen([binary, "--config", cfg], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            done = sql("SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets"
                       " WHERE consumer_group = %s", (group,), schema)[0][0]
            if done >= n:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"persister exited {proc.returncode}, see {log.name}")
            time.sleep(0.05)
        else:
            raise RuntimeError("persister did not drain the topic in 600 s")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log.close()
    count = sql("SELECT count(*) FROM webhook_events", None, schema)[0][0]
    assert count == n, f"{count} rows stored for {n} records"
    return persisted_window(lineage_topic, n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--records", type=int, default=200000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-max", type=int, nargs="+", default=[2000])
    ap.add_argument("--linger-ms", type=int, default=20)
    ap.add_argument("--payload-bytes", type=int, default=300)
    a = ap.parse_args()
    binary = os.path.join(a.build, "services/persister/hookline-persister")
    tag = secrets.token_hex(3)
    topic = f"bench-persister-{tag}"
    admin = AdminClient({"bootstrap.servers": BROKERS})
    lineage = [f"{topic}-lineage-{bm}-{r}" for bm in a.batch_max for r in range(a.rounds)]
    for f in admin.create_topics([NewTopic(topic, PARTITIONS, 1), NewTopic(topic + "-dlq", 1, 1)]
                                 + [NewTopic(t, 3, 1) for t in lineage]).values():
        f.result()
    time.sleep(1)
    schemas = []
    logdir = tempfile.mkdtemp(prefix="bench-persister-")
    try:
        t0 = time.perf_counter()
        rows = fill(topic, a.records, a.payload_bytes)
        print(f"filled {topic}: {a.records} records in {time.perf_counter() - t0:.1f} s",
              flush=True)
        text = copy_text(rows)
        results = {}
        for bm in a.batch_max:
            pers, copy, ratios = [], [], []
            for r in range(a.rounds):
                s = f"bench_{tag}_p{bm}_{r}"
                make_schema(s)
                schemas.append(s)
                secs = run_persister(binary, topic, f"{topic}-lineage-{bm}-{r}", s, a.records,
                                     bm, a.linger_ms, logdir)
                pers.append(a.records / secs)
                s = f"bench_{tag}_c{bm}_{r}"
                make_schema(s)
                schemas.append(s)
                copy.append(a.records / run_copy(text, s))
                ratios.append(pers[-1] / copy[-1])
                print(f"batch_max {bm} round {r + 1}: persister {pers[-1]:,.0f} rows/s,"
                      f" COPY {copy[-1]:,.0f} rows/s, ratio {ratios[-1]:.3f}", flush=True)
            pm, cm, rm = (statistics.median(x) for x in (pers, copy, ratios))
            results[bm] = (pm, cm, rm)
            print(f"batch_max {bm}: median persister {pm:,.0f} rows/s, median COPY {cm:,.0f}"
                  f" rows/s, median of the paired ratios {rm:.3f}", flush=True)
        print(json.dumps({"records": a.records, "payload_bytes": a.payload_bytes,
                          "linger_ms": a.linger_ms, "rounds": a.rounds,
                          "results": {str(k): {"persister_rows_s": round(v[0]),
                                               "copy_rows_s": round(v[1]),
                                               "ratio": round(v[2], 3)}
                                      for k, v in results.items()}}))
        shutil.rmtree(logdir, ignore_errors=True)  # kept on failure, for the logs
    finally:
        for s in schemas:
            sql(f"DROP SCHEMA IF EXISTS {s} CASCADE")
        for f in admin.delete_topics([topic, topic + "-dlq"] + lineage).values():
            f.result()


if __name__ == "__main__":
    sys.exit(main())
