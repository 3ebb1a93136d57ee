"""Start hookline binaries for a test, wait for /healthz, stop them and check nothing remains."""
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

from . import paths, sanitizers
from .yamlout import dump_yaml


def http_get(url, timeout=2.0, headers=None):
    """(status, body bytes, headers) — any HTTP status, not an exception for 4xx/5xx."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def _port_from_config(config):
    listen = ((config or {}).get("http") or {}).get("listen")
    if not listen:
        return None
    # civetweb marks a TLS port with an "s" suffix ("127.0.0.1:8443s").
    return int(str(listen).rsplit(":", 1)[1].rstrip("sr"))


def _group_members(pgid):
    """Live (non-zombie) processes of a process group, from /proc. A zombie counts as gone:
    it holds no resources, and whoever inherited it may not reap it promptly."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces or parentheses: split after the last ')'.
        fields = stat[stat.rindex(b")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] != b"Z":
            members.append(int(entry))
    return members


def _group_alive(pgid):
    return bool(_group_members(pgid))


class Service:
    """One running binary. Its process group is its own, so stop() can verify that nothing it
    started (or forked) outlives it."""

    def __init__(self, name, binary, config_path, log_path, proc, port):
        self.name = name
        self.binary = binary
        self.config_path = config_path
        self.log_path = log_path
        self.proc = proc
        self.pid = proc.pid
        self.port = port
        self.url = f"http://127.0.0.1:{port}" if port else None
        self.killed = False
        self.left_behind = False
        # Sanitizer reports found in the log once the process had exited (see stop()).
        self.sanitizer_reports = []

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=60):
        return "\n".join(self.log_text().splitlines()[-lines:])

    def running(self):
        return self.proc.poll() is None

    def get(self, path, timeout=5.0, headers=None):
        return http_get(self.url + path, timeout, headers)

    def wait_healthy(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} before /healthz answered; "
                    f"log {self.log_path}:\n{self.log_tail()}")
            try:
                status, _, _ = http_get(self.url + "/healthz", timeout=1.0)
                if status == 200:
                    return
                last = f"HTTP {status}"
            except (OSError, urllib.error.URLError) as e:
                last = str(e)
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} /healthz not 200 within {timeout}s ({last}); "
                           f"log {self.log_path}:\n{self.log_tail()}")

    def stop(self, sig=signal.SIGTERM, timeout=None):
        """Send sig, wait up to timeout (20 s, stretched for sanitized binaries, whose leak
        check runs at exit), then SIGKILL (self.killed = True). Returns the exit code as
        subprocess reports it (negative for a signal). Once the process is gone its log is
        scanned for sanitizer reports (self.sanitizer_reports)."""
        if timeout is None:
            timeout = sanitizers.slack(20.0)
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                self.proc.kill()
                self.proc.wait(10)
        # Anything the binary started in its group must be gone too; give it a moment to exit
        # on its own, then record the leak and kill it so it cannot disturb later tests.
        for _ in range(20):
            if not _group_alive(self.pid):
                break
            time.sleep(0.05)
        else:
            self.left_behind = True
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            for _ in range(100):
                if not _group_alive(self.pid):
                    break
                time.sleep(0.05)
        self.sanitizer_reports = sanitizers.reports(self.log_text())
        return self.proc.returncode

    def leftovers(self):
        """True when the process or anything in its process group is still alive."""
        return self.proc.poll() is None or _group_alive(self.pid)


class ServiceFactory:
    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.started = []
        self.problems = []
        self._n = 0

    def __call__(self, binary_name, config_dict, env=None, args=None, wait_healthy=True,
                 health_timeout=None, config_flag="--config"):
        binary = paths.find_binary(binary_name)
        if health_timeout is None:
            health_timeout = sanitizers.slack(30.0)
        self._n += 1
        base = f"{os.path.basename(binary)}-{self._n}"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        cmd = [str(binary)]
        config_path = None
        if config_dict is not None:
            config_path = self.log_dir / f"{base}.yaml"
            config_path.write_text(dump_yaml(config_dict))
            cmd += [config_flag, str(config_path)]
        cmd += list(args or [])
        log_path = self.log_dir / f"{base}.log"
        full_env = dict(os.environ)
        # Sanitizer reports go to stderr, i.e. into this service's own log, which stop() scans.
        full_env.update(sanitizers.child_env())
        full_env.update({k: str(v) for k, v in (env or {}).items()})
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        svc = Service(base, binary, config_path, log_path, proc, _port_from_config(config_dict))
        self.started.append(svc)
        if wait_healthy:
            if svc.port is None:
                svc.stop()
                raise ValueError("wait_healthy needs http.listen in the config")
            try:
                svc.wait_healthy(health_timeout)
            except Exception:
                svc.stop(signal.SIGKILL, 5)
                raise
        return svc

    def stop_all(self):
        """Stop every service still running; returns (and keeps) the problems seen: services
        that needed SIGKILL, left a process behind, or wrote a sanitizer report to their log
        (whether they were stopped here or earlier by the test)."""
        bad = self.problems
        for svc in reversed(self.started):
            if svc.running():
                svc.stop()
                if svc.killed:
                    bad.append(f"{svc.name} ignored SIGTERM for {sanitizers.slack(20):.0f}s "
                               f"(log {svc.log_path})")
            if svc.leftovers():
                svc.stop(signal.SIGKILL, 5)
            if svc.left_behind and not getattr(svc, "_reported", False):
                svc._reported = True
                bad.append(f"{svc.name} left a process behind in its group (pgid {svc.pid})")
            if not getattr(svc, "_sanitizer_reported", False):
                # A service that died on its own was never stop()ped: scan its log here.
                svc.sanitizer_reports = sanitizers.reports(svc.log_text())
                if svc.sanitizer_reports:
                    svc._sanitizer_reported = True
                    bad.append(f"{svc.name}: {len(svc.sanitizer_reports)} sanitizer report(s) "
                               f"in {svc.log_path}; the first:\n{svc.sanitizer_reports[0]}")
        return bad


def run_binary(binary_name, config_dict=None, args=None, env=None, timeout=30.0, log_dir=None,
               config_flag="--config"):
    """Run a binary to completion (e.g. a config check that must exit 2). Returns
    subprocess.CompletedProcess with text stdout/stderr."""
    import tempfile
    binary = paths.find_binary(binary_name)
    cmd = [str(binary)]
    tmp = None
    if config_dict is not None:
        if log_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="hl-cfg-")
            log_dir = tmp.name
        cfg = os.path.join(str(log_dir), f"{os.path.basename(binary)}-run.yaml")
        with open(cfg, "w") as f:
            f.write(dump_yaml(config_dict))
        cmd += [config_flag, cfg]
    cmd += list(args or [])
    full_env = dict(os.environ)
    full_env.update({k: str(v) for k, v in (env or {}).items()})
    try:
        return subprocess.run(cmd, capture_output=True, text=True, env=full_env,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    finally:
        if tmp is not None:
            tmp.cleanup()
