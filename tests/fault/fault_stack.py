"""The Kafka brokers and Postgres clusters the fault scenarios are allowed to break.

deploy/local/stack with a state folder of its own and free ports, the way bench/run starts its
private stack, so that killing a broker or stopping Postgres never touches the shared stack
on 9092/55432 or anyone using it. `stack reset` removes every trace at the end.

Two topologies, as `stack up --topology` makes them: single (one KRaft node, one Postgres) and
production (three KRaft nodes, topics with 3 copies of which 2 must be in sync, a Postgres
primary with a streaming standby). Besides up and down, the scenarios SIGKILL, SIGSTOP and
SIGCONT brokers and start them again, ask which broker leads which partition and which node is
the active controller, stop Postgres and start it again, or kill the primary and promote the
standby. A broker is found through the pid file the stack script wrote and checked against its
command line before any signal, so a recycled pid is never hit; Postgres is stopped with
pg_ctl on this stack's own data directory."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from ingress_support import _kafka_libs

PG_BIN = "/usr/lib/postgresql/15/bin"
# librdkafka's own log level for the clients asking the cluster: a killed node's refused
# connections are the attack, not news (a failed request still raises).
QUIET = 0


def log(msg):
    print(f"fault: {msg}", flush=True)


class StackError(RuntimeError):
    pass


class PrivateStack:
    def __init__(self, source_dir, build_dir, kafka_port, controller_port, pg_port,
                 state_dir=None, production=None):
        """production: None for the single topology, else the ports of nodes 2 and 3 and of
        the standby: {"kafka": [p2, p3], "controller": [c2, c3], "pg_standby": port}."""
        self.source_dir = str(source_dir)
        self.build_dir = str(build_dir)
        self.script = os.path.join(self.source_dir, "deploy", "local", "stack")
        self.kafka_port, self.controller_port, self.pg_port = kafka_port, controller_port, pg_port
        self.production = production
        self.topology = "production" if production else "single"
        self.state = state_dir or tempfile.mkdtemp(prefix=f"hl-fault-{self.topology}-")
        self.kafka_ports = [kafka_port] + (production["kafka"] if production else [])
        self.nodes = list(range(1, len(self.kafka_ports) + 1))
        # brokers and pg_dsn are also what the integration harness' config builders read.
        self.brokers = ",".join(f"127.0.0.1:{p}" for p in self.kafka_ports)
        if production:
            self.pg_standby_port = production["pg_standby"]
            self.pg_dsn = (f"host=127.0.0.1,127.0.0.1 port={pg_port},{self.pg_standby_port}"
                           " dbname=hookline user=hookline target_session_attrs=read-write"
                           " connect_timeout=5")
        else:
            self.pg_dsn = f"host=127.0.0.1 port={pg_port} dbname=hookline user=hookline"
        # Copies of each topic, and how many must be in sync (proto/topics.yaml's replication
        # on three nodes, 1 and 1 on one).
        self.replication, self.min_insync = (3, 2) if production else (1, 1)
        self.started = False

    def env(self):
        env = dict(os.environ, HL_BUILD_DIR=self.build_dir, HL_STATE_DIR=self.state,
                   HL_KAFKA_PORT=str(self.kafka_port), HL_PG_PORT=str(self.pg_port),
                   HL_KAFKA_CONTROLLER_PORT=str(self.controller_port))
        if self.production:
            for i, (p, c) in enumerate(zip(self.production["kafka"],
                                           self.production["controller"]), 2):
                env[f"HL_KAFKA_PORT_{i}"], env[f"HL_KAFKA_CONTROLLER_PORT_{i}"] = str(p), str(c)
            env["HL_PG_STANDBY_PORT"] = str(self.pg_standby_port)
        return env

    def _stack(self, *args, timeout=300, check=True):
        r = subprocess.run([self.script, *args], env=self.env(), capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise StackError(f"deploy/local/stack {' '.join(args)} exited {r.returncode}:\n"
                             f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        return r

    # --- the whole stack -------------------------------------------------------------------

    def up(self):
        """Kafka, Postgres, topics and migrations (no services). Returns the seconds it took."""
        log(f"private stack ({self.topology}): Kafka {self.brokers}, Postgres {self.pg_dsn},"
            f" state {self.state}")
        t0 = time.monotonic()
        self.started = True
        self._stack("up", "--infra-only", "--topology", self.topology)
        took = time.monotonic() - t0
        log(f"private stack up in {took:.1f} s")
        return took

    def down(self):
        """Stops everything and deletes the state (the Postgres data dir under /var/tmp too)."""
        if not self.started:
            return
        r = self._stack("reset", timeout=240, check=False)
        if r.returncode != 0:
            log(f"stack reset exited {r.returncode}: {r.stdout[-1500:]} {r.stderr[-1500:]}")
        shutil.rmtree(self.state, ignore_errors=True)
        self.started = False
        return r.returncode

    # --- Kafka -----------------------------------------------------------------------------

    def _checked_pid(self, pidfile, marker):
        try:
            with open(pidfile) as f:
                pid = int(f.read().split()[0])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            return None
        return pid if marker in cmdline else None

    def node_pid(self, node=1):
        """The pid of Kafka node `node` (1 on the single topology), None when not running."""
        name = "kafka" if self.topology == "single" else f"kafka-{node}"
        return self._checked_pid(os.path.join(self.state, "run", f"{name}.pid"),
                                 os.path.join(self.state, name, "server.properties"))

    def kafka_pid(self):
        return self.node_pid(1)

    def signal_node(self, node, sig):
        """Sends sig to Kafka node `node`; with SIGKILL waits until it is gone. Returns the pid."""
        pid = self.node_pid(node)
        if pid is None:
            raise StackError(f"Kafka node {node} of the private stack is not running")
        os.kill(pid, sig)
        if sig == signal.SIGKILL:
            _wait_gone(pid, 30, f"Kafka node {node}")
        return pid

    def kill_kafka(self):
        """SIGKILL to the broker (no shutdown of any kind), then waits until it is gone.
        Returns its pid."""
        return self.signal_node(1, signal.SIGKILL)

    def start_kafka(self):
        """Starts every stopped broker again (stack up: parts already running are left alone)
        and waits until each is in the cluster's metadata. Returns the seconds it took."""
        t0 = time.monotonic()
        self._stack("up", "--infra-only")
        return time.monotonic() - t0

    # --- what the cluster says ---------------------------------------------------------------

    def _admin(self, nodes=None):
        """An admin client; `nodes` limits its bootstrap to those nodes (a frozen broker would
        make every request that happens to go to it wait)."""
        ports = [self.kafka_ports[n - 1] for n in nodes] if nodes else self.kafka_ports
        return AdminClient({"bootstrap.servers": ",".join(f"127.0.0.1:{p}" for p in ports),
                            "socket.timeout.ms": 3000, "log_level": QUIET})

    def partitions(self, topic, nodes=None):
        """{partition: (leader, replicas, isr)} of a topic, from the cluster's metadata."""
        md = self._admin(nodes).list_topics(topic=topic, timeout=10)
        t = md.topics[topic]
        return {p.id: (p.leader, list(p.replicas), list(p.isrs)) for p in t.partitions.values()}

    def end_offsets(self, topic, nodes=None):
        """{partition: high watermark}: how many records each partition holds."""
        ports = [self.kafka_ports[n - 1] for n in nodes] if nodes else self.kafka_ports
        c = Consumer({"bootstrap.servers": ",".join(f"127.0.0.1:{p}" for p in ports),
                      "group.id": "hl-fault-watermarks", "enable.auto.commit": False,
                      "log_level": QUIET})
        try:
            out = {}
            for p in self.partitions(topic, nodes):
                out[p] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            return out
        finally:
            c.close()

    def busiest_leader(self, topic):
        """The node leading the partitions of `topic` that hold the most records, with the
        partitions it leads and their share of the records."""
        parts, ends = self.partitions(topic), self.end_offsets(topic)
        load = {}
        for p, (leader, _, _) in parts.items():
            load[leader] = load.get(leader, 0) + ends.get(p, 0)
        node = max(load, key=load.get)
        led = sorted(p for p, (leader, _, _) in parts.items() if leader == node)
        return node, led, load[node] / max(1, sum(ends.values()))

    def active_controller(self, nodes=None):
        """The node id of the KRaft quorum's leader (the active controller), as Kafka's own
        metadata-quorum tool reads it with DescribeQuorum. None when no node answers."""
        ports = [self.kafka_ports[n - 1] for n in nodes] if nodes else self.kafka_ports
        libs = _kafka_libs()  # the jars deploy/local/stack fetched
        argv = ["java", "-Xmx96m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
                "-Dlog4j.configuration=file:/dev/null", "-cp", f"{libs}/*",
                "org.apache.kafka.tools.MetadataQuorumCommand", "--bootstrap-server",
                ",".join(f"127.0.0.1:{p}" for p in ports), "describe", "--status"]
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return None
        m = re.search(r"^LeaderId:\s*(\d+)", r.stdout, re.M)
        return int(m.group(1)) if m else None

    # --- Postgres --------------------------------------------------------------------------

    def pg_data(self):
        return os.path.join(os.path.realpath(os.path.join(self.state, "postgres")), "data")

    def _as_pg(self, argv):
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        r = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise StackError(f"{' '.join(argv)} exited {r.returncode}: {r.stdout} {r.stderr}")

    def stop_pg(self, mode="fast"):
        """pg_ctl stop (fast: sessions are cut, clean shutdown; immediate: no shutdown
        checkpoint, recovery at the next start). Returns the seconds it took."""
        t0 = time.monotonic()
        self._as_pg([f"{PG_BIN}/pg_ctl", "-D", self.pg_data(), "-m", mode, "-w", "-t", "60",
                     "-s", "stop"])
        return time.monotonic() - t0

    def start_pg(self):
        t0 = time.monotonic()
        self._stack("up", "--infra-only")
        return time.monotonic() - t0

    def standby_data(self):
        return os.path.join(os.path.realpath(os.path.join(self.state, "postgres")), "standby")

    def _pg_primary(self):
        """The primary's postmaster pid and the pids of the processes it started."""
        pid = self._checked_pid(os.path.join(self.pg_data(), "postmaster.pid"), self.pg_data())
        if pid is None:
            raise StackError("the private Postgres primary is not running")
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                  text=True).stdout.split()
        return pid, [int(c) for c in children]

    def kill_pg_primary(self):
        """SIGKILL to the primary's postmaster and every process it started, at once: a host
        lost, no shutdown of any kind. Returns the postmaster's pid."""
        pid, children = self._pg_primary()
        os.kill(pid, signal.SIGKILL)
        for c in children:
            try:
                os.kill(c, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _wait_gone(pid, 30, "the Postgres primary")
        return pid

    def promote_standby(self):
        """pg_ctl promote on the standby, waiting until it accepts writes. Returns seconds."""
        t0 = time.monotonic()
        self._as_pg([f"{PG_BIN}/pg_ctl", "-D", self.standby_data(), "-w", "-t", "60", "-s",
                     "promote"])
        return time.monotonic() - t0

    def _pg_value(self, port, sql):
        """The one value a statement answers, as text; None when that Postgres does not."""
        r = subprocess.run([f"{PG_BIN}/psql", "-X", "-A", "-t", "-h", "127.0.0.1", "-p",
                            str(port), "-U", "hookline", "-d", "hookline", "-c", sql],
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        return r.stdout.strip() if r.returncode == 0 else None

    def pg_role(self, port):
        """"primary", "standby" or None (not answering) for the Postgres on that port."""
        v = self._pg_value(port, "SELECT pg_is_in_recovery()")
        if v is None:
            return None
        return "standby" if v == "t" else "primary"

    def hold_replication(self):
        """SIGSTOP to the primary's WAL senders: the primary goes on confirming commits (the
        standby is asynchronous), the standby receives no more of them. Returns their pids."""
        senders = []
        for c in self._pg_primary()[1]:
            try:
                with open(f"/proc/{c}/cmdline", "rb") as f:
                    title = f.read()
            except OSError:
                continue
            if b"walsender" in title:
                try:
                    os.kill(c, signal.SIGSTOP)
                except ProcessLookupError:
                    continue
                senders.append(c)
        return senders

    def release_replication(self, senders):
        """SIGCONT to WAL senders hold_replication() stopped."""
        for pid in senders:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def wal_not_received(self):
        """Bytes of WAL the primary wrote that the standby has not received (None when either
        does not answer)."""
        wrote = self._pg_value(self.pg_port, "SELECT pg_current_wal_lsn()")
        got = self._pg_value(self.pg_standby_port, "SELECT pg_last_wal_receive_lsn()")
        if not wrote or not got:
            return None
        diff = self._pg_value(self.pg_port, f"SELECT pg_wal_lsn_diff('{wrote}', '{got}')::int8")
        return int(diff) if diff else None


def _wait_gone(pid, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            return
        # A dead process nobody has reaped yet (state Z) holds no port and no file.
        if stat[stat.rindex(b")") + 2:].split()[0] == b"Z":
            return
        time.sleep(0.05)
    raise StackError(f"{what} (pid {pid}) still exists {timeout} s after SIGKILL")
