"""The Kafka broker and Postgres cluster the fault scenarios are allowed to break.

deploy/local/stack with a state folder of its own and free ports, the way bench/run starts its
private stack, so that killing the broker or stopping Postgres never touches the shared stack
on 9092/55432 or anyone using it. `stack reset` removes every trace at the end. Besides up and
down, the scenarios need four operations: SIGKILL the broker, start it again, stop Postgres,
start it again. The broker is found through the pid file the stack script wrote and checked
against its command line before the signal, so a recycled pid is never hit; Postgres is
stopped with pg_ctl on this stack's own data directory."""
import os
import shutil
import signal
import subprocess
import tempfile
import time

PG_BIN = "/usr/lib/postgresql/15/bin"


def log(msg):
    print(f"fault: {msg}", flush=True)


class StackError(RuntimeError):
    pass


class PrivateStack:
    def __init__(self, source_dir, build_dir, kafka_port, controller_port, pg_port,
                 state_dir=None):
        self.source_dir = str(source_dir)
        self.build_dir = str(build_dir)
        self.script = os.path.join(self.source_dir, "deploy", "local", "stack")
        self.kafka_port, self.controller_port, self.pg_port = kafka_port, controller_port, pg_port
        self.state = state_dir or tempfile.mkdtemp(prefix="hl-fault-stack-")
        # brokers and pg_dsn are also what the integration harness' config builders read.
        self.brokers = f"127.0.0.1:{kafka_port}"
        self.pg_dsn = f"host=127.0.0.1 port={pg_port} dbname=hookline user=hookline"
        self.started = False

    def env(self):
        return dict(os.environ, HL_BUILD_DIR=self.build_dir, HL_STATE_DIR=self.state,
                    HL_KAFKA_PORT=str(self.kafka_port), HL_PG_PORT=str(self.pg_port),
                    HL_KAFKA_CONTROLLER_PORT=str(self.controller_port))

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
        log(f"private stack: Kafka {self.brokers}, Postgres 127.0.0.1:{self.pg_port},"
            f" state {self.state}")
        t0 = time.monotonic()
        self.started = True
        self._stack("up", "--infra-only")
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

    def kafka_pid(self):
        return self._checked_pid(os.path.join(self.state, "run", "kafka.pid"),
                                 os.path.join(self.state, "kafka", "server.properties"))

    def kill_kafka(self):
        """SIGKILL to the broker (no shutdown of any kind), then waits until it is gone.
        Returns its pid."""
        pid = self.kafka_pid()
        if pid is None:
            raise StackError("the private broker is not running")
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 30, "Kafka")
        return pid

    def start_kafka(self):
        """Starts the broker again (stack up: parts already running are left alone) and waits
        until it answers metadata. Returns the seconds it took."""
        t0 = time.monotonic()
        self._stack("up", "--infra-only")
        return time.monotonic() - t0

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
