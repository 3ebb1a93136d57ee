"""SIGTERM under load: /readyz fails, requests in flight finish, the producer is flushed, the
process exits 0; every request that got 202 is in the topic and none hangs."""
import json
import signal
import threading
import time

import socket

from ingress_support import DEMO_SECRET, Client, error_code, ingress_config, sign_standard, standard_source


def test_sigterm_under_load(service, topics, free_port, kafka_consume):
    port = free_port()
    cfg = ingress_config(port, topics, [standard_source()], log_level="info")
    svc = service("ingress", cfg, env={"HL_TEST_DEMO_SECRET": DEMO_SECRET})
    outcomes = []  # (message id, status or exception name)
    stop = threading.Event()
    lock = threading.Lock()

    def client(n):
        c = Client(port, timeout=10)
        i = 0
        while not stop.is_set():
            mid = f"drain-{n}-{i}"
            i += 1
            try:
                status, _, _ = c.post_standard(json.dumps({"type": "drain", "i": i}).encode(), msg_id=mid)
            except TimeoutError:
                status = "timeout"
            except OSError as e:  # refused / reset once the server has closed
                status = type(e).__name__
                time.sleep(0.05)
            with lock:
                outcomes.append((mid, status))
        c.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    svc.proc.send_signal(signal.SIGTERM)
    code = svc.proc.wait(20)
    stop.set()
    for t in threads:
        t.join(15)
        assert not t.is_alive(), "a client is stuck"
    assert code == 0
    statuses = [s for _, s in outcomes]
    assert "timeout" not in statuses
    accepted = [m for m, s in outcomes if s == 202]
    assert len(accepted) > 50, f"too little load: {len(accepted)}"
    assert set(statuses) <= {202, 503, "ConnectionRefusedError", "ConnectionResetError",
                             "BrokenPipeError", "RemoteDisconnected", "ConnectionAbortedError"}, set(statuses)
    msgs = kafka_consume(topics["events"], len(accepted) + 100, timeout=10)
    stored = {m.key.decode() for m in msgs}
    missing = [m for m in accepted if m not in stored]
    assert not missing, f"{len(missing)} accepted but not stored, e.g. {missing[:5]}"
    log = svc.log_text()
    assert "drained, exiting" in log


def test_sigterm_lets_in_flight_request_finish(service, topics, free_port, kafka_consume):
    port = free_port()
    cfg = ingress_config(port, topics, [standard_source()])
    cfg["http"]["request_timeout_ms"] = 5000
    svc = service("ingress", cfg, env={"HL_TEST_DEMO_SECRET": DEMO_SECRET})
    body = json.dumps({"type": "drain.inflight", "pad": "x" * 50}).encode()
    hdrs = sign_standard(DEMO_SECRET, "inflight-1", int(time.time()), body)
    head = "POST /v1/webhooks/demo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    head += f"Content-Length: {len(body)}\r\n\r\n"
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(head.encode() + body[:10])  # in flight: the worker is reading the body
    time.sleep(0.3)
    svc.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    c = Client(port)
    status, data, _ = c.request("GET", "/readyz")
    assert status == 503 and json.loads(data)["draining"] is True
    status, data, h = c.post_standard(json.dumps({"type": "late"}).encode())
    assert status == 503 and error_code(data) == "unavailable" and h["retry-after"]
    assert h.get("connection", "").lower() == "close"
    assert svc.proc.poll() is None  # still waiting for the request in flight
    s.sendall(body[10:])
    answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 202"), answer[:80]
    s.close()
    assert svc.proc.wait(20) == 0
    msgs = kafka_consume(topics["events"], 1, timeout=10)
    assert [m.key for m in msgs] == [b"inflight-1"] and msgs[0].value == body
