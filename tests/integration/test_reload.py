"""Reload without restart: SIGHUP, or a changed config or secret file, swaps in the new sources
while requests keep flowing. A provider's secret is rotated five times under load (ten reloads)
and no request fails; a configuration that fails validation or changes what needs a restart is
refused and counted while traffic continues; a secret file swapped the way a Kubernetes secret
mount swaps it is picked up without a signal; a removed source answers 404, yet a request that
started before the reload finishes with the table it started with; a source's rate-limit state
survives a reload."""
import base64
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

from harness import sanitizers
from harness.yamlout import dump_yaml
from ingress_support import (Client, error_code, ingress_config, metric_value, metrics_text,
                             sign_standard)

RELOADS = 'hookline_ingress_config_reloads_total'


def whsec(tag):
    return "whsec_" + base64.b64encode(f"reload-test-secret-{tag}".encode()).decode()


def write_secret(path, value):
    """Writes a secret file the way an operator would: a new file, mode 0600, renamed over."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(value + "\n")
    tmp.chmod(0o600)
    os.replace(tmp, path)


def source(name, files, **extra):
    s = {"name": name, "scheme": "standard-webhooks", "message_id_header": "webhook-id",
         "event_type": "/type", "secrets": [{"file": str(f)} for f in files]}
    s.update(extra)
    return s


def reloads(cfg, result):
    _, text = metrics_text(cfg)
    return metric_value(text, RELOADS, f'result="{result}"') or 0


def wait_reloads(cfg, result, n, timeout=None):
    deadline = time.monotonic() + (timeout or sanitizers.slack(15.0))
    while time.monotonic() < deadline:
        if reloads(cfg, result) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{RELOADS}{{result={result}}} never reached {n}: {reloads(cfg, result)}")


def rewrite(svc, cfg):
    Path(svc.config_path).write_text(dump_yaml(cfg))


def hup(svc, cfg, result):
    """SIGHUP, and waits until the reload was counted with `result`."""
    before = reloads(cfg, result)
    svc.proc.send_signal(signal.SIGHUP)
    wait_reloads(cfg, result, before + 1)


def ready(port):
    """Does /readyz answer 200 within a few seconds? (It also reflects a once-a-second metadata
    request to the broker, which a loaded machine may time out now and then.)"""
    deadline = time.monotonic() + sanitizers.slack(5.0)
    conn = Client(port)
    try:
        while conn.request("GET", "/readyz")[0] != 200:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True
    finally:
        conn.close()


class Senders:
    """Threads that keep signing and posting to a source with the provider's current secret,
    recording (message id, status)."""

    def __init__(self, port, src, secret, n=4):
        self.port, self.src, self.secret = port, src, secret
        self.outcomes, self.lock, self.stop = [], threading.Lock(), threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(n)]

    def run(self, n):
        c = Client(self.port, timeout=10)
        i = 0
        while not self.stop.is_set():
            mid = f"rl-{n}-{i}-{time.time_ns()}"
            i += 1
            body = json.dumps({"type": "reload", "i": i}).encode()
            try:
                status, data, _ = c.post_standard(body, secret=self.secret, msg_id=mid,
                                                  source=self.src)
            except OSError as e:
                status, data = type(e).__name__, b""
            with self.lock:
                self.outcomes.append((mid, status, data[:200]))
        c.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(20)
            assert not t.is_alive(), "a sender is stuck"

    def count(self):
        with self.lock:
            return len(self.outcomes)

    def wait_more(self, n=20):
        """Lets at least n more requests be answered."""
        start = self.count()
        deadline = time.monotonic() + sanitizers.slack(20.0)
        while self.count() < start + n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.count() >= start + n, "the senders stalled"

    def failures(self):
        with self.lock:
            return [o for o in self.outcomes if o[1] != 202]


def test_secret_rotation_under_load(service, topics, free_port, tmp_path, kafka_consume):
    """Five rotations (new secret added, reload, the provider switches, old one removed,
    reload): ten reloads while senders post without pause, and every request gets 202 and is
    in the topic."""
    port = free_port()
    files = [tmp_path / f"secret-{i}" for i in range(6)]
    for i, f in enumerate(files):
        write_secret(f, whsec(i))
    # The poll is off in effect: every reload here is a SIGHUP's, counted one by one.
    cfg = ingress_config(port, topics, [source("rot", [files[0]])], log_level="info",
                         reload_poll_ms=3600000)
    svc = service("ingress", cfg)
    with Senders(port, "rot", whsec(0)) as senders:
        senders.wait_more()
        for i in range(1, 6):
            cfg["sources"] = [source("rot", [files[i - 1], files[i]])]
            rewrite(svc, cfg)
            hup(svc, cfg, "ok")
            senders.wait_more()
            senders.secret = whsec(i)  # the provider switches to the new secret
            senders.wait_more()
            cfg["sources"] = [source("rot", [files[i]])]
            rewrite(svc, cfg)
            hup(svc, cfg, "ok")
            senders.wait_more()
    assert reloads(cfg, "ok") == 10 and reloads(cfg, "refused") == 0
    print(f"rotation under load: {len(senders.outcomes)} requests across 10 reloads, "
          f"{len(senders.failures())} not accepted")
    assert not senders.failures(), senders.failures()[:5]
    accepted = {m for m, s, _ in senders.outcomes}
    assert len(accepted) > 200, f"too little load: {len(accepted)}"
    stored = {m.key.decode() for m in kafka_consume(topics["events"], len(accepted), timeout=30)}
    missing = accepted - stored
    assert not missing, f"{len(missing)} accepted but not stored, e.g. {sorted(missing)[:5]}"
    # The old secret is gone for good.
    status, data, _ = Client(port).post_standard(b'{"type":"x"}', secret=whsec(4), source="rot")
    assert status == 401, data
    assert svc.log_text().count("config reloaded (SIGHUP)") == 10


def test_refused_reloads_leave_the_running_config(service, topics, free_port, tmp_path):
    """Under traffic: a configuration that fails validation, one naming a missing secret file,
    and one changing http.listen (a restart-only key) are each refused with one log line and a
    count; traffic continues unharmed, /readyz stays 200, and the next good one applies."""
    port = free_port()
    f = tmp_path / "secret"
    write_secret(f, whsec("a"))
    cfg = ingress_config(port, topics, [source("keep", [f])], log_level="info",
                         reload_poll_ms=3600000)
    svc = service("ingress", cfg)
    bad = [
        (dict(cfg, sources=[source("keep", [f], scheme="nope")]), "sources[0].scheme"),
        (dict(cfg, sources=[source("keep", [tmp_path / "missing"])]), "source 'keep' secret 0"),
        (dict(cfg, http=dict(cfg["http"], listen=f"127.0.0.1:{free_port()}")), "'http.listen'"),
        (dict(cfg, max_in_flight=7), "'max_in_flight'"),
    ]
    with Senders(port, "keep", whsec("a")) as senders:
        senders.wait_more()
        for n, (new, why) in enumerate(bad, 1):
            rewrite(svc, new)
            hup(svc, cfg, "refused")
            senders.wait_more()
            line = [ln for ln in svc.log_text().splitlines() if "reload (SIGHUP) refused" in ln]
            assert len(line) == n and why in line[-1], (why, line[-1:])
            assert ready(port)
        rewrite(svc, cfg)
        hup(svc, cfg, "ok")
        senders.wait_more()
    assert reloads(cfg, "refused") == len(bad) and reloads(cfg, "ok") == 1
    assert not senders.failures(), senders.failures()[:5]
    # The listen address did not move.
    assert Client(port).post_standard(b'{"type":"x"}', secret=whsec("a"), source="keep")[0] == 202


def k8s_secret_dir(root, value, gen):
    """The layout of a Kubernetes secret volume: key -> ..data/key, ..data -> ..<gen>. Returns
    the path of the key."""
    d = root / f"..{gen}"
    d.mkdir()
    (d / "key").write_text(value)
    (d / "key").chmod(0o600)
    tmp = root / "..data_tmp"
    tmp.symlink_to(d.name)
    os.replace(tmp, root / "..data")
    key = root / "key"
    if not key.is_symlink():
        key.symlink_to("..data/key")
    return key


def test_secret_file_change_picked_up_without_signal(service, topics, free_port, tmp_path):
    """The secret mounted as a Kubernetes secret volume is updated (a new ..data directory
    swapped in): the ingress accepts the new secret and refuses the old one, no SIGHUP sent."""
    port = free_port()
    mount = tmp_path / "mount"
    mount.mkdir()
    key = k8s_secret_dir(mount, whsec("k1"), "gen1")
    cfg = ingress_config(port, topics, [source("k8s", [key])], reload_poll_ms=200,
                         secret_files_shared=True)
    svc = service("ingress", cfg)
    c = Client(port)
    assert c.post_standard(b'{"type":"x"}', secret=whsec("k1"), source="k8s")[0] == 202
    k8s_secret_dir(mount, whsec("k2"), "gen2")
    wait_reloads(cfg, "ok", 1)
    assert c.post_standard(b'{"type":"x"}', secret=whsec("k2"), source="k8s")[0] == 202
    status, data, _ = c.post_standard(b'{"type":"x"}', secret=whsec("k1"), source="k8s")
    assert status == 401, data
    # Nothing changed since: no more reloads.
    time.sleep(1.0)
    assert reloads(cfg, "ok") == 1 and reloads(cfg, "refused") == 0
    assert "config reloaded (file changed)" in svc.log_text()


def test_removed_source_and_request_in_flight(service, topics, free_port, tmp_path):
    """A request to source b whose body is still arriving when b is removed finishes with 202
    (it keeps the table it started with); new requests to b get 404, a keeps working; and a's
    spent rate limit is still spent after the reload."""
    port = free_port()
    f = tmp_path / "secret"
    write_secret(f, whsec("ab"))
    cfg = ingress_config(port, topics, [source("a", [f], rate_per_sec=1, burst=3),
                                        source("b", [f])], reload_poll_ms=3600000)
    svc = service("ingress", cfg)
    body = b'{"type":"slow","pad":"' + b"x" * 1000 + b'"}'
    h = sign_standard(whsec("ab"), f"slow-{time.time_ns()}", int(time.time()), body)
    head = "POST /v1/webhooks/b HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in h.items())
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    slow = socket.create_connection(("127.0.0.1", port), timeout=10)
    slow.sendall(head.encode() + body[:100])
    time.sleep(0.3)  # the handler is reading the body now
    c = Client(port)
    statuses = [c.post_standard(b'{"type":"x"}', secret=whsec("ab"), source="a")[0]
                for _ in range(4)]
    assert statuses[:3] == [202] * 3 and statuses[3] == 429, statuses
    cfg["sources"] = [source("a", [f], rate_per_sec=1, burst=3)]
    rewrite(svc, cfg)
    hup(svc, cfg, "ok")
    slow.sendall(body[100:])
    resp = slow.recv(4096).decode(errors="replace")
    slow.close()
    assert resp.startswith("HTTP/1.1 202"), resp[:300]
    status, data, _ = c.post_standard(b'{"type":"x"}', secret=whsec("ab"), source="b")
    assert status == 404 and error_code(data) == "unknown_source", data
    status, data, _ = c.post_standard(b'{"type":"x"}', secret=whsec("ab"), source="a")
    assert status == 429, data  # the bucket a spent before the reload is still spent
    time.sleep(1.2)
    assert c.post_standard(b'{"type":"x"}', secret=whsec("ab"), source="a")[0] == 202
