"""The Kafka broker and Postgres cluster the benchmark runs against.

By default a private stack: deploy/local/stack with HL_STATE_DIR in a temporary folder and
free ports, so the benchmark may stop its broker for the outage phase without touching anyone
else, and `stack reset` removes every trace afterwards. With shared=True the already running
local stack is used (own topics and schemas only, dropped at the end; no outage phase)."""
import glob
import os
import shutil
import signal
import tempfile
import time

import psycopg2
from confluent_kafka.admin import AdminClient, NewTopic

from procs import free_port, log, run

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
STACK = os.path.join(ROOT, "deploy", "local", "stack")


def _kafka_version():
    with open(os.path.join(ROOT, "deploy", "local", "versions.env")) as f:
        for line in f:
            if line.startswith("KAFKA_VERSION="):
                return line.split("=", 1)[1].strip()
    raise RuntimeError("no KAFKA_VERSION in deploy/local/versions.env")


class Stack:
    def __init__(self, shared, build):
        self.shared = shared
        self.build = build
        self.topics, self.schemas = [], []
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
        self.kafka_libs = os.path.join(cache, "hookline", f"kafka-{_kafka_version()}", "libs")
        if shared:
            self.kafka_port = int(os.environ.get("HL_KAFKA_PORT", 9092))
            self.pg_port = int(os.environ.get("HL_PG_PORT", 55432))
            self.state = None
        else:
            self.kafka_port, self.pg_port = free_port(), free_port()
            self.controller_port = free_port()
            self.state = tempfile.mkdtemp(prefix="hl-bench-stack-")
        self.brokers = f"127.0.0.1:{self.kafka_port}"
        self.pg = f"host=127.0.0.1 port={self.pg_port} dbname=hookline user=hookline"
        self.pg_url = f"postgresql://hookline@127.0.0.1:{self.pg_port}/hookline"

    def env(self):
        e = dict(os.environ, HL_BUILD_DIR=self.build, HL_KAFKA_BROKERS=self.brokers,
                 HL_PG_PORT=str(self.pg_port), HL_KAFKA_PORT=str(self.kafka_port))
        if not self.shared:
            e.update(HL_STATE_DIR=self.state, HL_KAFKA_CONTROLLER_PORT=str(self.controller_port))
        return e

    def up(self):
        if self.shared:
            run([STACK, "status"], env=self.env(), check=False)
            AdminClient({"bootstrap.servers": self.brokers}).list_topics(timeout=10)
            return
        log(f"private stack: Kafka {self.brokers}, Postgres 127.0.0.1:{self.pg_port},"
            f" state {self.state}")
        t0 = time.monotonic()
        run([STACK, "up", "--infra-only"], env=self.env(), timeout=300)
        log(f"private stack up in {time.monotonic() - t0:.1f} s")

    def down(self):
        if self.shared:
            for s in self.schemas:
                try:
                    self.sql(f"DROP SCHEMA IF EXISTS {s} CASCADE")
                except Exception as e:  # keep cleaning the rest
                    log(f"could not drop schema {s}: {e}")
            if self.topics:
                admin = AdminClient({"bootstrap.servers": self.brokers})
                for f in admin.delete_topics(self.topics, operation_timeout=30).values():
                    try:
                        f.result(30)
                    except Exception as e:
                        log(f"could not delete a topic: {e}")
            return
        r = run([STACK, "reset"], env=self.env(), timeout=180, check=False)
        if r.returncode != 0:
            log(f"stack reset failed: {r.stdout[-1000:]} {r.stderr[-1000:]}")
        shutil.rmtree(self.state, ignore_errors=True)

    # --- Kafka -------------------------------------------------------------------------

    def create_topics(self, spec):
        """spec: {name: partitions}. The admin client lives only for the call, so that it does
        not log reconnection attempts while the broker is stopped on purpose."""
        new = [NewTopic(n, p, 1) for n, p in spec.items()]
        admin = AdminClient({"bootstrap.servers": self.brokers})
        for f in admin.create_topics(new, operation_timeout=30).values():
            f.result(30)
        self.topics += list(spec)
        time.sleep(0.5)  # leaders elected before the first produce

    def kafka_pid(self):
        with open(os.path.join(self.state, "run", "kafka.pid")) as f:
            return int(f.read().strip())

    def kafka_pids(self):
        """Every broker's pid: the private one, or each node of the shared stack (one, or three
        with the production topology: run/kafka-N.pid)."""
        if not self.shared:
            return [self.kafka_pid()]
        state = os.environ.get("HL_STATE_DIR") or os.path.join(ROOT, ".hookline")
        pids = []
        for path in sorted(glob.glob(os.path.join(state, "run", "kafka*.pid"))):
            with open(path) as f:
                pids.append(int(f.read().strip()))
        if not pids:
            raise RuntimeError(f"no broker pid file in {state}/run")
        return pids

    def stop_kafka(self):
        """SIGTERM to the private broker (the pid the stack recorded), then wait for its exit."""
        pid = self.kafka_pid()
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        raise RuntimeError(f"private Kafka (pid {pid}) still running 60 s after SIGTERM")

    def start_kafka(self):
        run([STACK, "up", "--infra-only"], env=self.env(), timeout=300)

    def java_class(self, cls, args, heap="256m", timeout=600):
        return run(["java", f"-Xmx{heap}", "-cp", os.path.join(self.kafka_libs, "*"), cls] + args,
                   timeout=timeout)

    # --- Postgres ----------------------------------------------------------------------

    def sql(self, q, params=None):
        conn = psycopg2.connect(self.pg)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(q, params)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def postmaster_pid(self):
        """The postmaster: the parent of a backend of ours, read while the backend lives."""
        conn = psycopg2.connect(self.pg)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                backend = cur.fetchone()[0]
            with open(f"/proc/{backend}/stat") as f:
                return int(f.read().rsplit(")", 1)[1].split()[1])
        finally:
            conn.close()

    def make_schema(self, name):
        """A fresh schema with every migration of proto/sql applied."""
        self.sql(f"CREATE SCHEMA {name}")
        self.schemas.append(name)
        run([os.path.join(ROOT, "deploy", "local", "migrate"), "--schema", name],
            env=self.env(), timeout=120)
