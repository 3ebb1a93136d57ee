"""Helpers for the persister's integration tests: records produced the way the ingress
produces them, a config for one test's topics and schema, and waits on Postgres."""
import json
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

from harness import paths


def uuid7():
    """A UUIDv7 text (48-bit ms time, version 7, variant 10, random rest)."""
    ms = int(time.time() * 1000)
    rnd = uuid.uuid4().int & ((1 << 74) - 1)
    v = (ms << 80) | (0x7 << 76) | ((rnd >> 62) << 64) | (0b10 << 62) | (rnd & ((1 << 62) - 1))
    return str(uuid.UUID(int=v))


def event_headers(source, event_type, request_id=None, received_us=None):
    rid = request_id or uuid7()
    return [("hl-request-id", rid), ("hl-source", source), ("hl-event-type", event_type),
            ("hl-received-us", str(received_us or int(time.time() * 1e6))),
            ("content-type", "application/json"),
            ("traceparent", f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01")]


class EventProducer:
    """acks=all idempotent producer; send() returns the request id, flush() waits for all and
    fills .delivered with {request_id: (partition, offset)}."""

    def __init__(self, topic):
        self.topic = topic
        self.p = Producer({"bootstrap.servers": paths.KAFKA_BROKERS, "acks": "all",
                           "enable.idempotence": True, "linger.ms": 5})
        self.delivered = {}
        self.errors = []

    def _cb(self, rid):
        def cb(err, msg):
            if err is not None:
                self.errors.append(err)
            else:
                self.delivered[rid] = (msg.partition(), msg.offset())
        return cb

    def send_raw(self, key, value, headers):
        rid = dict(headers).get("hl-request-id") or uuid7()
        while True:
            try:
                self.p.produce(self.topic, key=key, value=value, headers=headers,
                               on_delivery=self._cb(rid))
                break
            except BufferError:
                self.p.poll(0.1)
        self.p.poll(0)
        return rid

    def send(self, message_id, event_type, body=None, source="stripe"):
        if body is None:
            body = {"id": message_id, "type": event_type, "data": {"amount": 100}}
        value = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return self.send_raw(message_id, value, event_headers(source, event_type))

    def flush(self, timeout=60):
        left = self.p.flush(timeout)
        assert left == 0 and not self.errors, f"produce failed: {left} left, {self.errors[:3]}"


def produce_events(topic, prefix, n, event_type="ev0"):
    """Sends n events with message ids <prefix>-00000.. and waits for them; returns the
    producer (its .delivered tells where each went)."""
    p = EventProducer(topic)
    for i in range(n):
        p.send(f"{prefix}-{i:05d}", event_type)
    p.flush()
    return p


def persister_config(stack, topics, schema, port, group, **over):
    cfg = {
        "kafka": {"brokers": stack.brokers, "events_topic": topics["events"],
                  "lineage_topic": topics["lineage"], "dlq_topic": topics["dlq"]},
        "postgres": {"conninfo": stack.pg_dsn, "schema": schema.name},
        "http": {"listen": f"127.0.0.1:{port}"},
        "group_id": group,
        "log_level": "info",
    }
    cfg.update(over)
    return cfg


def end_offsets(topic, partitions=6):
    c = Consumer({"bootstrap.servers": paths.KAFKA_BROKERS, "group.id": "hl-test-watermarks"})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(partitions)}
    finally:
        c.close()


def kafka_committed(topic, group, partitions=6):
    c = Consumer({"bootstrap.servers": paths.KAFKA_BROKERS, "group.id": group,
                  "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


def pg_offsets(schema, group, topic):
    rows = schema.query("SELECT kafka_partition, next_offset FROM consumer_offsets"
                        " WHERE consumer_group = %s AND topic = %s", (group, topic))
    return {p: o for p, o in rows}


def wait_for(pred, timeout, what, interval=0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def wait_offsets_at_end(schema, group, topic, timeout=60):
    ends = end_offsets(topic)
    want = {p: o for p, o in ends.items() if o > 0}
    wait_for(lambda: all(pg_offsets(schema, group, topic).get(p) == o for p, o in want.items()),
             timeout, f"consumer_offsets to reach {want}")
    return want


def count_rows(schema):
    return schema.query("SELECT count(*) FROM webhook_events")[0][0]


def metric(svc, name):
    """Value of an unlabelled metric from /metrics, or None."""
    status, body, _ = svc.get("/metrics")
    assert status == 200
    text = body.decode() if isinstance(body, bytes) else body
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def lineage(kafka_consume, topic, n, timeout=30):
    out = []
    for m in kafka_consume(topic, n, timeout=timeout):
        out.append((m.key.decode() if m.key else None, json.loads(m.value)))
    return out


PG_BIN = "/usr/lib/postgresql/15/bin"


class PrivatePostgres:
    """A throwaway Postgres cluster for a test that must stop Postgres: the shared one serves
    other tests running at the same time. As root, initdb and postgres run as the `postgres` system user (as
    deploy/local/stack does). Migrations are applied to its public schema."""

    def __init__(self, port):
        import os
        import subprocess
        import tempfile
        # Under /var/tmp: pytest's own tmp folders are private to root, out of postgres' reach.
        tmp_dir = tempfile.mkdtemp(prefix="hl-persister-pg-", dir="/var/tmp")
        self.port = port
        self.dir = tmp_dir
        self.data = os.path.join(tmp_dir, "data")
        self.log = os.path.join(tmp_dir, "postgres.log")
        self.sock = tmp_dir
        self.conninfo = f"host=127.0.0.1 port={port} dbname=hookline user=hookline"
        self._root = os.geteuid() == 0
        if self._root:
            subprocess.run(["chown", "postgres:", tmp_dir], check=True)
            os.chmod(tmp_dir, 0o755)
        self._as_pg([f"{PG_BIN}/initdb", "-D", self.data, "-U", "hookline", "--auth=trust",
                     "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions"])
        with open(os.path.join(self.data, "postgresql.auto.conf"), "a") as f:
            f.write(f"port = {port}\nlisten_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{self.sock}'\nshared_buffers = 32MB\n"
                    "max_connections = 30\nfsync = on\nsynchronous_commit = on\n")
        self.start()
        self._as_pg([f"{PG_BIN}/psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(port), "-U",
                     "hookline", "-d", "postgres", "-c", "CREATE DATABASE hookline"])
        subprocess.run([str(paths.MIGRATE_SCRIPT), "--schema", "public", "--conninfo",
                        self.conninfo], check=True, capture_output=True, timeout=120)

    def _as_pg(self, cmd):
        import subprocess
        if self._root:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RuntimeError(f"{cmd} failed ({r.returncode}): {r.stdout} {r.stderr}")

    def start(self):
        self._as_pg(["setsid", f"{PG_BIN}/pg_ctl", "-D", self.data, "-l", self.log, "-w",
                     "-t", "60", "-s", "start"])

    def stop(self, mode="fast"):
        self._as_pg([f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30", "-s",
                     "stop"])

    def running(self):
        import os
        return os.path.exists(os.path.join(self.data, "postmaster.pid"))

    def query(self, sql, params=None):
        import psycopg2
        conn = psycopg2.connect(self.conninfo, connect_timeout=5)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def destroy(self):
        import shutil
        if self.running():
            try:
                self.stop("immediate")
            except Exception:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


class PgAt:
    """The query()/name interface of the pg_schema fixture, for a private cluster."""

    def __init__(self, pg, name="public"):
        self.pg = pg
        self.name = name

    def query(self, sql, params=None):
        return self.pg.query(sql, params)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
