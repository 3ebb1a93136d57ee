#!/usr/bin/python3
"""Persister throughput against Postgres COPY of the same rows, in the same run.

Fills a fresh topic with N unique events (the ingress's record format), then, for each round:
  - the persister drains the topic into a fresh schema (all migrations applied) with a fresh
    consumer group; rows/s = N / (last batch commit - first row inserted), read from Postgres'
    own clock (consumer_offsets.updated_at, webhook_events.persisted_at), so process start and
    the group join are not counted;
  - COPY (text format, one statement, one transaction) of the same N rows into an identical
    fresh schema; rows/s = N / wall time of the COPY.
Reports the medians of the rounds and their ratio. Needs the local stack (deploy/local/stack up).

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


def run_persister(binary, topic, schema, n, batch_max, linger_ms, logdir):
    group = f"bench-{schema}"
    cfg = os.path.join(logdir, f"{schema}.yaml")
    with open(cfg, "w") as f:
        f.write(json.dumps({
            "kafka": {"brokers": BROKERS, "events_topic": topic,
                      "lineage_topic": topic + "-lineage", "dlq_topic": topic + "-dlq"},
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
    first, last, count = sql("SELECT (SELECT min(persisted_at) FROM webhook_events),"
                             " (SELECT max(updated_at) FROM consumer_offsets),"
                             " (SELECT count(*) FROM webhook_events)", None, schema)[0]
    assert count == n, f"{count} rows stored for {n} records"
    return (last - first).total_seconds()


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
    for f in admin.create_topics([NewTopic(topic, PARTITIONS, 1),
                                  NewTopic(topic + "-lineage", 3, 1),
                                  NewTopic(topic + "-dlq", 1, 1)]).values():
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
            pers, copy = [], []
            for r in range(a.rounds):
                s = f"bench_{tag}_p{bm}_{r}"
                make_schema(s)
                schemas.append(s)
                secs = run_persister(binary, topic, s, a.records, bm, a.linger_ms, logdir)
                pers.append(a.records / secs)
                s = f"bench_{tag}_c{bm}_{r}"
                make_schema(s)
                schemas.append(s)
                copy.append(a.records / run_copy(text, s))
                print(f"batch_max {bm} round {r + 1}: persister {pers[-1]:,.0f} rows/s,"
                      f" COPY {copy[-1]:,.0f} rows/s", flush=True)
            pm, cm = statistics.median(pers), statistics.median(copy)
            results[bm] = (pm, cm)
            print(f"batch_max {bm}: median persister {pm:,.0f} rows/s, median COPY {cm:,.0f}"
                  f" rows/s, ratio {pm / cm:.2f}", flush=True)
        print(json.dumps({"records": a.records, "payload_bytes": a.payload_bytes,
                          "linger_ms": a.linger_ms, "rounds": a.rounds,
                          "results": {str(k): {"persister_rows_s": round(v[0]),
                                               "copy_rows_s": round(v[1]),
                                               "ratio": round(v[0] / v[1], 3)}
                                      for k, v in results.items()}}))
        shutil.rmtree(logdir, ignore_errors=True)  # kept on failure, for the logs
    finally:
        for s in schemas:
            sql(f"DROP SCHEMA IF EXISTS {s} CASCADE")
        for f in admin.delete_topics([topic, topic + "-lineage", topic + "-dlq"]).values():
            f.result()


if __name__ == "__main__":
    sys.exit(main())
