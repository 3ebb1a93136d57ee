"""Helpers for the auditor's integration tests: tokens, a config for one test's topics and
schema, lineage records shaped as the ingress and persister write them, and HTTP calls."""
import hashlib
import json
import time
import uuid

import requests
from confluent_kafka import Producer

from harness import paths

TOKENS = {
    "auditor": "aud-" + uuid.uuid4().hex,
    "admin": "adm-" + uuid.uuid4().hex,
    "metrics": "met-" + uuid.uuid4().hex,
}


def sha(tok):
    return hashlib.sha256(tok.encode()).hexdigest()


def auditor_config(stack, topics, schema, port, key_file, group=None, **over):
    cfg = {
        "kafka": {"brokers": stack.brokers, "lineage_topic": topics["lineage"],
                  "events_topic": topics["events"], "dlq_topic": topics["dlq"]},
        "postgres": {"conninfo": stack.pg_dsn, "schema": schema.name},
        "http": {"listen": f"127.0.0.1:{port}", "threads": 4},
        "group_id": group or f"auditor-{uuid.uuid4().hex[:8]}",
        "log_level": "info",
        "batch_linger_ms": 20,
        "gap_grace_s": 2,
        "gap_scan_interval_s": 1,
        "checkpoint": {"key_file": str(key_file), "generate_if_missing": True,
                       "interval_s": 3600, "topic": topics["checkpoints"]},
        "slo": {"ack_ms": 100, "e2e_ms": 1000, "target": 0.9},
        "tokens": [{"name": role, "sha256": sha(tok), "roles": [role]}
                   for role, tok in TOKENS.items()],
    }
    cfg.update(over)
    return cfg


def hdr(role):
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def get(svc, path, role="auditor", **kw):
    return requests.get(svc.url + path, headers=hdr(role) if role else {}, timeout=30, **kw)


def post(svc, path, role="auditor", **kw):
    return requests.post(svc.url + path, headers=hdr(role) if role else {}, timeout=30, **kw)


def uuid7():
    ms = int(time.time() * 1000)
    rnd = uuid.uuid4().int & ((1 << 74) - 1)
    v = (ms << 80) | (0x7 << 76) | ((rnd >> 62) << 64) | (0b10 << 62) | (rnd & ((1 << 62) - 1))
    return str(uuid.UUID(int=v))


def now_us():
    return int(time.time() * 1e6)


def ingress_record(rid, status=202, source="stripe", message_id="msg-1", event_type="t.created",
                   received_us=None, latency_us=1500, error_code=None, partition=0, offset=0):
    recv = received_us or now_us()
    rec = {"v": 1, "stage": "ingress", "request_id": rid, "ts_us": recv + latency_us,
           "source": source, "received_us": recv, "status": status, "latency_us": latency_us,
           "error_code": error_code}
    if status == 202:
        rec.update({"message_id": message_id, "event_type": event_type, "partition": partition,
                    "offset": offset})
    return rec


def persisted_record(ing, queue_us=3000, persist_us=2000, row_id=1):
    consumed = ing["ts_us"] + queue_us
    return {"v": 1, "stage": "persisted", "request_id": ing["request_id"],
            "ts_us": consumed + persist_us, "source": ing["source"],
            "message_id": ing["message_id"], "event_type": ing["event_type"],
            "received_us": ing["received_us"], "partition": ing["partition"],
            "offset": ing["offset"], "consumed_us": consumed, "committed_us": consumed + persist_us,
            "row_id": row_id, "duplicate": False}


class LineageProducer:
    def __init__(self, topic):
        self.topic = topic
        # The ingress's and the persister's partitioner: a request's records share one chain.
        self.p = Producer({"bootstrap.servers": paths.KAFKA_BROKERS, "acks": "all",
                           "enable.idempotence": True, "linger.ms": 5,
                           "partitioner": "murmur2_random"})
        self.errors = []

    def send(self, key, value):
        data = value if isinstance(value, (bytes, str)) else json.dumps(value)
        while True:
            try:
                self.p.produce(self.topic, key=key, value=data,
                               on_delivery=lambda e, m: e and self.errors.append(e))
                break
            except BufferError:
                self.p.poll(0.1)
        self.p.poll(0)

    def flush(self, timeout=60):
        left = self.p.flush(timeout)
        assert left == 0 and not self.errors, (left, self.errors)


def wait_for(pred, timeout, what, interval=0.2):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def lineage_count(schema):
    return schema.query("SELECT count(*) FROM lineage")[0][0]


def behind_its_back(schema, *sql):
    """Runs statements as the tables' owner with every append-only trigger of lineage and
    lineage_checkpoints disabled, as whoever owns the database can."""
    conn = schema.connect(autocommit=False)
    try:
        with conn.cursor() as cur:
            for t in ("lineage", "lineage_checkpoints"):
                cur.execute(f"ALTER TABLE {t} DISABLE TRIGGER USER")
            for s in sql:
                cur.execute(s)
            for t in ("lineage", "lineage_checkpoints"):
                cur.execute(f"ALTER TABLE {t} ENABLE TRIGGER USER")
        conn.commit()
    finally:
        conn.close()
