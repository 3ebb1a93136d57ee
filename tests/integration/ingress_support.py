"""Helpers for the ingress integration tests: signers for each scheme (written from the
providers' documented formats, independent of the C code), an ingress config builder, a raw
HTTP client, and a private single-node Kafka broker that a test may stop and start without
disturbing the shared one."""
import base64
import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from harness import free_port, paths
from harness.kafkaio import admin, create_topics

DEMO_SECRET = "whsec_" + base64.b64encode(b"integration-test-secret-1").decode()
ROTATED_SECRET = "whsec_" + base64.b64encode(b"integration-test-secret-2").decode()


def sign_standard(secret, msg_id, ts, body, prefix="webhook"):
    key = base64.b64decode(secret[len("whsec_"):])
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return {f"{prefix}-id": msg_id, f"{prefix}-timestamp": str(ts),
            f"{prefix}-signature": "v1," + base64.b64encode(mac).decode()}


def sign_stripe(secret, ts, body):
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={ts},v1={mac}"}


def sign_github(secret, body):
    return {"X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def ingress_config(port, topics, sources, brokers=None, **top):
    cfg = {
        "http": {"listen": f"127.0.0.1:{port}", "threads": 32, "request_timeout_ms": 2000},
        "kafka": {"brokers": brokers or paths.KAFKA_BROKERS, "events_topic": topics["events"],
                  "lineage_topic": topics["lineage"]},
        "log_level": "debug",
        # A port of its own: tests run several ingresses at once, and /metrics is only there.
        "metrics_listen": f"127.0.0.1:{free_port()}",
        "sources": sources,
    }
    cfg.update(top)
    return cfg


def metrics_port(svc_or_config):
    """The port of metrics_listen of an ingress: a service handle (its config file is read) or
    a config dict."""
    cfg = svc_or_config
    if not isinstance(cfg, dict):
        import yaml
        cfg = yaml.safe_load(Path(svc_or_config.config_path).read_text())
    return int(cfg["metrics_listen"].rsplit(":", 1)[1])


def metrics_text(svc_or_config, timeout=5.0):
    """(status, text) of /metrics on the metrics listener of an ingress (see metrics_port)."""
    conn = http.client.HTTPConnection("127.0.0.1", metrics_port(svc_or_config), timeout=timeout)
    try:
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        conn.close()


def standard_source(name="demo", env="HL_TEST_DEMO_SECRET", **extra):
    s = {"name": name, "scheme": "standard-webhooks", "secrets": [{"env": env}],
         "message_id_header": "webhook-id", "event_type": "/type"}
    s.update(extra)
    return {k: v for k, v in s.items() if v is not None}


class Client:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, port, timeout=10.0):
        self.port = port
        self.timeout = timeout
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def request(self, method, path, body=None, headers=None):
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        try:
            self.conn.request(method, path, body=body, headers=h)
            r = self.conn.getresponse()
        except (http.client.HTTPException, ConnectionError):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            self.conn.request(method, path, body=body, headers=h)
            r = self.conn.getresponse()
        data = r.read()
        if r.getheader("Connection", "").lower() == "close":
            self.conn.close()
        return r.status, data, {k.lower(): v for k, v in r.getheaders()}

    def post_standard(self, body, secret=DEMO_SECRET, msg_id=None, ts=None, source="demo",
                      extra=None):
        msg_id = msg_id or f"msg_{time.time_ns()}"
        ts = int(time.time()) if ts is None else ts
        h = sign_standard(secret, msg_id, ts, body)
        h.update(extra or {})
        return self.request("POST", f"/v1/webhooks/{source}", body, h)

    def close(self):
        self.conn.close()


def error_code(data):
    return json.loads(data)["error"]["code"]


def metric_value(text, name, labels=""):
    """The value of one sample of the Prometheus text `text`, or None."""
    want = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return None


# --- a private broker ---------------------------------------------------------------------

def _kafka_libs():
    env = {}
    for line in (paths.SOURCE_DIR / "deploy/local/versions.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            env[k.strip()] = v.strip()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hookline"
    return cache / f"kafka-{env['KAFKA_VERSION']}" / "libs"


class PrivateKafka:
    """A single-node KRaft broker on free ports with its own data dir, built from the jars and
    the server.properties template deploy/local/stack uses. stop() kills it (SIGKILL, a real
    crash), pause()/resume() freeze it (SIGSTOP/SIGCONT), start() starts it again on the same
    data."""

    def __init__(self):
        self.libs = _kafka_libs()
        if not any(self.libs.glob("kafka_*.jar")):
            raise RuntimeError(f"no Kafka jars in {self.libs}: run deploy/local/stack up first")
        self.dir = Path(tempfile.mkdtemp(prefix="hl-ingress-kafka-"))
        self.port = free_port()
        self.controller_port = free_port()
        self.brokers = f"127.0.0.1:{self.port}"
        self.proc = None
        tmpl = (paths.SOURCE_DIR / "deploy/local/kafka/server.properties.in").read_text()
        fill = {"@NODE_ID@": "1", "@VOTERS@": f"1@127.0.0.1:{self.controller_port}",
                "@DATA_DIR@": str(self.dir / "kafka" / "data"), "@KAFKA_PORT@": str(self.port),
                "@CONTROLLER_PORT@": str(self.controller_port), "@RF@": "1", "@MIN_ISR@": "1"}
        props = tmpl
        for k, v in fill.items():
            props = props.replace(k, v)
        (self.dir / "kafka").mkdir()
        self.props = self.dir / "kafka" / "server.properties"
        self.props.write_text(props)
        shutil.copy(paths.SOURCE_DIR / "deploy/local/kafka/log4j.properties", self.dir / "log4j.properties")
        self.logs = self.dir / "logs"
        self.logs.mkdir()

    def _java(self, *args):
        return ["java", "-Xms64m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-Djava.awt.headless=true",
                f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}",
                f"-Dkafka.logs.dir={self.logs}", "-cp", f"{self.libs}/*", *args]

    def format(self):
        while True:
            cid = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
            if not cid.startswith("-"):
                break
        subprocess.run(self._java("kafka.tools.StorageTool", "format", "-t", cid, "-c", str(self.props)),
                       check=True, capture_output=True, timeout=120)

    def start(self, timeout=120.0):
        out = open(self.logs / "kafka.out", "ab")
        self.proc = subprocess.Popen(self._java("kafka.Kafka", str(self.props)), stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"private kafka exited {self.proc.returncode}: "
                                   + (self.logs / "kafka.out").read_text()[-2000:])
            try:
                admin(self.brokers).list_topics(timeout=2)
                return
            except Exception:
                time.sleep(0.5)
        raise TimeoutError("private kafka did not answer")

    def create_topics(self, spec):
        create_topics(self.brokers, spec, timeout=60)

    def pause(self):
        """SIGSTOP, returning only once every thread of the broker is stopped: the signal is
        delivered asynchronously, and a broker thread still running could acknowledge one more
        record after pause() returned."""
        os.killpg(self.proc.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 10
        while not self._all_stopped():
            assert time.monotonic() < deadline, "broker threads still running 10 s after SIGSTOP"
            time.sleep(0.01)

    def _all_stopped(self):
        task_dir = f"/proc/{self.proc.pid}/task"
        for tid in os.listdir(task_dir):
            try:
                with open(f"{task_dir}/{tid}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except FileNotFoundError:
                continue
            if state not in ("T", "t"):
                return False
        return True

    def resume(self):
        os.killpg(self.proc.pid, signal.SIGCONT)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGCONT)
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        self.proc = None

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
