"""Process, port and memory helpers for bench/run: every process the benchmark starts goes
through Proc so that it can be stopped by its own pid, and RssSampler reads VmRSS of chosen
pids from /proc while a phase runs."""
import os
import re
import signal
import socket
import statistics
import subprocess
import threading
import time
import urllib.request


def log(msg):
    print(f"bench: {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


class Proc:
    """A child process in its own session, logged to a file, stopped by pid only."""

    live = []

    def __init__(self, name, argv, logpath, env=None, cwd=None):
        self.name = name
        self.log = open(logpath, "ab")
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                  cwd=cwd, start_new_session=True)
        self.pid = self.p.pid
        Proc.live.append(self)

    def alive(self):
        return self.p.poll() is None

    def stop(self, grace=20, sig=signal.SIGTERM):
        if self.alive():
            try:
                os.kill(self.pid, sig)
                self.p.wait(grace)
            except subprocess.TimeoutExpired:
                log(f"{self.name} (pid {self.pid}) ignored {sig.name} for {grace} s: SIGKILL")
                os.kill(self.pid, signal.SIGKILL)
                self.p.wait(10)
            except ProcessLookupError:
                pass
        self.log.close()
        if self in Proc.live:
            Proc.live.remove(self)
        return self.p.returncode

    @classmethod
    def stop_all(cls):
        for p in list(reversed(cls.live)):
            p.stop(grace=10)


def http_get(url, token=None, timeout=3):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read().decode()


def wait_http(url, timeout=60, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http_get(url, timeout=1)[0] == 200:
                return True
        except Exception:  # not listening yet, or 503 while joining
            pass
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited during start; see {proc.log.name}")
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready within {timeout} s")


def wait_port(port, timeout=30, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            pass
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited during start; see {proc.log.name}")
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def metric(url, name, token=None):
    """Sum of the samples of one Prometheus metric (None when absent or unreachable)."""
    try:
        _, text = http_get(url, token)
    except Exception:
        return None
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith(name) and (len(line) == len(name) or line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
            seen = True
    return total if seen else None


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


class RssSampler:
    """Samples VmRSS of {name: pid} every `period` s on a thread; stop() returns
    {name: {"max_mb", "median_mb"}} for the samples taken since start()."""

    def __init__(self, pids, period=0.25):
        self.pids, self.period = dict(pids), period
        self.samples = {n: [] for n in self.pids}
        self._stop = threading.Event()
        self._t = None

    def __enter__(self):
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            for n, pid in self.pids.items():
                v = rss_mb(pid)
                if v is not None:
                    self.samples[n].append(v)
            self._stop.wait(self.period)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.result = {n: {"max_mb": round(max(s), 1), "median_mb": round(median(s), 1)}
                       for n, s in self.samples.items() if s}
        return False


def run(argv, env=None, timeout=None, check=True, cwd=None):
    """Runs a command to completion; returns CompletedProcess with text output."""
    r = subprocess.run(argv, env=env, timeout=timeout, cwd=cwd, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {r.returncode}: {r.stderr[-2000:]}")
    return r


def run_group(argv, timeout=None, cwd=None):
    """Like run(check=False), but the command runs in a process group of its own, and the whole
    group (a build's compilers too) is killed when the command times out or this process is
    interrupted while it waits (an exception: Ctrl-C, or a signal the caller turns into
    SystemExit); the exception is raised again after that. A SIGKILL of this process leaves the
    group running."""
    p = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except BaseException:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            p.communicate(timeout=10)
        except subprocess.TimeoutExpired:  # something that left the group holds the pipes
            p.stdout.close()
            p.stderr.close()
            p.wait()
        raise
    return subprocess.CompletedProcess(argv, p.returncode, out, err)


# --- CPU accounting ----------------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


class ProcessGone(Exception):
    """A process whose CPU was to be read no longer exists."""


def _stat_fields(pid):
    """utime, stime, cutime, cstime of a process (all its threads), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return [int(x) / TICK for x in fields[11:15]]
    except (OSError, IndexError, ValueError) as e:
        raise ProcessGone(pid) from e


def _children(pid):
    path = f"/proc/{pid}/task/{pid}/children"
    try:
        with open(path) as f:
            return sorted(int(x) for x in f.read().split())
    except FileNotFoundError as e:
        if os.path.exists(f"/proc/{pid}"):
            raise RuntimeError(f"{path} cannot be read (a kernel without CONFIG_PROC_CHILDREN?):"
                               " the CPU of a process's children cannot be accounted") from e
        raise ProcessGone(pid) from e


def _tree_seconds(pid, tries=20):
    """A process's own CPU seconds, those of every child it has reaped (cutime, cstime) and
    those of its live children, recursively, as one consistent reading: a child reaped while
    the children are read (its times move into the parent's cutime as it leaves the list)
    would be missed or counted twice, so the reading is taken again until the parent's child
    list and reaped-children times are the same after it as before it."""
    for _ in range(tries):
        kids = _children(pid)
        u, s, cu, cs = _stat_fields(pid)
        try:
            sub = sum(_tree_seconds(k) for k in kids)
        except ProcessGone:
            continue  # a child ended during the reading
        if _children(pid) == kids and _stat_fields(pid)[2:] == [cu, cs]:
            return u + s + cu + cs + sub
    raise RuntimeError(f"the children of pid {pid} kept changing over {tries} readings")


def cpu_seconds(pid, tree=False):
    """CPU seconds used so far by a process and all its threads; ProcessGone when it does not
    exist. With tree=True also by its live children and, through cutime/cstime, by every child
    it has reaped: a Postgres postmaster's figure then covers every backend, including those
    that ended in between."""
    if tree:
        return _tree_seconds(pid)
    u, s, _, _ = _stat_fields(pid)
    return u + s


def context_switches(pid):
    """Voluntary and involuntary context switches of every live thread of a process so far
    (a thread that has ended takes its count with it); ProcessGone when it does not exist."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError as e:
        raise ProcessGone(pid) from e
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if "ctxt_switches:" in line:
                        total += int(line.split()[1])
        except OSError:
            continue  # the thread ended while the others were read
    return total


def children_cpu_seconds():
    """CPU seconds of this process's children that have been reaped so far."""
    t = os.times()
    return t.children_user + t.children_system


def machine_busy_seconds():
    """CPU seconds the whole machine spent on its own work, all cores: user, nice, system, irq
    and softirq. Not idle or iowait, and not steal (time the hypervisor gave to another guest);
    guest time is already inside user."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / TICK


# A Postgres backend's process title names its client: "postgres: <cluster>: <user> <database>
# <host>(<port>) <state>"; the background processes' titles name no client.
_PG_CLIENT = re.compile(r" \d+\.\d+\.\d+\.\d+\((\d+)\)")
PG_BACKGROUND = "background"


def tcp_ports_of(owners):
    """{local TCP port: name} of the sockets each process in owners ({name: pid}) holds; a
    process that is gone holds none."""
    inodes = {}
    for name, pid in owners.items():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue  # closed while listed
            if target.startswith("socket:["):
                inodes[target[8:-1]] = name
    ports = {}
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            if len(f) > 9 and f[9] in inodes:
                ports[int(f[1].rsplit(":", 1)[1], 16)] = inodes[f[9]]
    return ports


def pg_children_by_owner(postmaster, owners):
    """{pid: (owner, CPU seconds)} of the postmaster's live children: a backend is charged to
    the process in owners ({name: pid}) holding its client's end of the connection (the port
    its title names), "other" when none of them does; a child that serves no client (the
    checkpointer, the WAL writer, an autovacuum worker) is PG_BACKGROUND."""
    ports = tcp_ports_of(owners)
    out = {}
    for kid in _children(postmaster):
        try:
            with open(f"/proc/{kid}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            secs = cpu_seconds(kid)
        except (OSError, ProcessGone):
            continue  # ended while listed: its time is in the postmaster's reaped children
        m = _PG_CLIENT.search(title)
        out[kid] = (ports.get(int(m.group(1)), "other") if m else PG_BACKGROUND, secs)
    return out


class CpuMeter:
    """CPU seconds per component over a block, from /proc accounting read before and after.
    parts: {name: ([pid, ...], tree)}: a part may be several processes (the brokers of a
    three-node stack). A part whose process is not a long-lived one (the load generator,
    started and reaped inside the block) is added with add(). A part one of whose processes
    ended during the block has no figure (None, and named in .gone). "unattributed" is the
    rest of the machine's busy time, signed: kernel work not charged to a process, the
    benchmark's own process, perf, anything else running; slightly negative when the
    per-process and the machine's counters tick apart."""

    def __init__(self, parts, pg_split=None):
        """pg_split: (part, postmaster pid, {name: pid}) to split that part's CPU by whose
        backends used it (pg_children_by_owner): .split holds, per owner, the CPU of the
        backends alive at the end of the block since the start of the block (or since they
        began), and "ended" the rest of the part: the postmaster itself and the children that
        ended inside the block (their time is only known as the postmaster's reaped total)."""
        self.parts = {n: (list(pids), tree) for n, (pids, tree) in parts.items()}
        self.pg_split = pg_split
        self.split = None
        self.gone = []

    def _read(self):
        r, sw = {}, {}
        for n, (pids, tree) in self.parts.items():
            try:
                r[n] = sum(cpu_seconds(pid, tree) for pid in pids)
                # A tree's ended children take their switches with them: not counted.
                sw[n] = None if tree else sum(context_switches(pid) for pid in pids)
            except ProcessGone:
                r[n] = sw[n] = None
        r["machine"] = machine_busy_seconds()
        return r, sw

    def _read_split(self):
        if not self.pg_split:
            return None
        _, postmaster, owners = self.pg_split
        try:
            return pg_children_by_owner(postmaster, owners)
        except ProcessGone:
            return None

    def __enter__(self):
        self.t0 = time.monotonic()
        self.split_before = self._read_split()
        self.before, self.sw_before = self._read()
        return self

    def __exit__(self, *exc):
        after, sw_after = self._read()
        # Fewer switches after than before: a thread ended in the window and took its count
        # with it, so the difference means nothing: no figure.
        self.switches = {n: None if v is None or self.sw_before[n] is None
                         or v < self.sw_before[n] else v - self.sw_before[n]
                         for n, v in sw_after.items()}
        self.wall_s = time.monotonic() - self.t0
        used = {}
        for n, v in after.items():
            if v is None or self.before[n] is None:
                used[n] = None
                self.gone.append(n)
            else:
                used[n] = v - self.before[n]
        attributed = sum(v for n, v in used.items() if n != "machine" and v is not None)
        used["unattributed"] = used["machine"] - attributed
        self.seconds = used
        split_after = self._read_split()
        whole = used.get(self.pg_split[0]) if self.pg_split else None
        if whole is not None and self.split_before is not None and split_after is not None:
            self.split = {}
            for pid, (owner, secs) in split_after.items():
                was = self.split_before.get(pid)
                self.split[owner] = self.split.get(owner, 0) + secs - (was[1] if was else 0)
            self.split["ended"] = whole - sum(self.split.values())
        return False

    def add(self, name, seconds):
        """A part measured apart (after the block ended): taken out of "unattributed"."""
        self.seconds[name] = seconds
        self.seconds["unattributed"] -= seconds

    def per_request_us(self, accepted):
        """CPU microseconds per accepted request, per component and in total (the machine's);
        None for a part without a figure."""
        if not accepted:
            return None
        out = {n: None if v is None else round(v * 1e6 / accepted, 1)
               for n, v in self.seconds.items() if n != "machine"}
        out["total"] = round(self.seconds["machine"] * 1e6 / accepted, 1)
        return out

    def split_per_request_us(self, accepted):
        """The split part's CPU microseconds per accepted request by owner (see __init__), or
        None without a split."""
        if not accepted or self.split is None:
            return None
        return {n: round(v * 1e6 / accepted, 1) for n, v in sorted(self.split.items())}

    def switches_per_request(self, accepted):
        """Context switches (voluntary and involuntary, all threads) per accepted request, for
        each part that is not a tree."""
        if not accepted:
            return None
        return {n: round(v / accepted, 2) for n, v in self.switches.items() if v is not None}
