"""Broker outages: a private single-node Kafka (the shared one is left alone) is frozen with
SIGSTOP and later killed with SIGKILL and started again. Throughout, the ingress answers 503
with Retry-After within its deadline, never 202 and never hangs, and without a restart it
answers 202 again once the broker is back. Every 202 is in the topic."""
import json
import re
import threading
import time

import pytest

from harness import sanitizers
from harness.kafkaio import consume
from ingress_support import DEMO_SECRET, Client, PrivateKafka, error_code, ingress_config, standard_source

DEADLINE_MS = 1500
# The margins over the ingress's deadline are about speed: sanitizers.slack stretches them in
# the sanitized pass (HL_SANITIZER_SLOWDOWN), as it does the waits for readiness.


@pytest.fixture(scope="module")
def kafka():
    k = PrivateKafka()
    try:
        k.format()
        k.start()
        yield k
    finally:
        k.close()


def body(i):
    return json.dumps({"type": "outage.test", "i": i}).encode()


def wait_ready(c, want, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, data, _ = c.request("GET", "/readyz")
        if (status == 200) == want:
            return True
        time.sleep(0.2)
    return False


def wait_accepting(c, accepted, timeout):
    """Posts until one 202 (its id appended to accepted). Every other answer must be a 503."""
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        mid = f"resume-{time.time_ns()}"
        status, data, _ = c.post_standard(body(n), msg_id=mid)
        n += 1
        if status == 202:
            accepted.append(mid)
            return True
        assert status == 503, data
        time.sleep(0.2)
    return False


def expect_503_in_time(c, accepted, count=3):
    for i in range(count):
        t0 = time.monotonic()
        status, data, h = c.post_standard(body(i), msg_id=f"down-{time.time_ns()}")
        elapsed = time.monotonic() - t0
        assert status == 503, (status, data)
        assert error_code(data) == "unavailable"
        assert h["retry-after"] == "2"
        assert elapsed < DEADLINE_MS / 1000 + sanitizers.slack(1.0), elapsed


def test_broker_outage(service, free_port, kafka, run_id):
    topics = {"events": f"t{run_id}-outage-events", "lineage": f"t{run_id}-outage-lineage"}
    kafka.create_topics({topics["events"]: 3, topics["lineage"]: 1})
    port = free_port()
    cfg = ingress_config(port, topics, [standard_source()], brokers=kafka.brokers,
                         ack_timeout_ms=DEADLINE_MS, max_in_flight=4, retry_after_s=2)
    svc = service("ingress", cfg, env={"HL_TEST_DEMO_SECRET": DEMO_SECRET})
    c = Client(port, timeout=10)
    accepted = []
    assert wait_accepting(c, accepted, sanitizers.slack(30))
    assert wait_ready(c, True, sanitizers.slack(10))

    # 1. Frozen broker: connections stay open, nothing answers.
    kafka.pause()
    try:
        expect_503_in_time(c, accepted)
        assert wait_ready(c, False, sanitizers.slack(10))
        # In-flight cap: four requests wait on the frozen broker; the fifth is refused at once.
        results = []

        def slow(i):
            cc = Client(port, timeout=10)
            results.append(cc.post_standard(body(i), msg_id=f"capped-{i}-{time.time_ns()}")[0])
            cc.close()

        # let earlier abandoned waiters come back
        time.sleep(DEADLINE_MS / 1000 + sanitizers.slack(1.5))
        threads = [threading.Thread(target=slow, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.4)  # not stretched: the four must still be waiting (deadline 1.5 s)
        t0 = time.monotonic()
        status, data, _ = c.post_standard(body(9))
        assert status == 503 and time.monotonic() - t0 < sanitizers.slack(0.5)
        for t in threads:
            t.join(15)
        assert results == [503] * 4
    finally:
        kafka.resume()
    assert wait_accepting(c, accepted, sanitizers.slack(60))
    assert wait_ready(c, True, sanitizers.slack(15))

    # 2. Crashed broker (SIGKILL), then started again on the same data.
    kafka.stop()
    expect_503_in_time(c, accepted)
    assert wait_ready(c, False, sanitizers.slack(10))
    kafka.start()
    assert wait_accepting(c, accepted, sanitizers.slack(90))
    assert wait_ready(c, True, sanitizers.slack(15))
    for i in range(5):
        mid = f"after-{i}-{time.time_ns()}"
        status, data, _ = c.post_standard(body(i), msg_id=mid)
        assert status == 202, data
        accepted.append(mid)
    assert svc.running()  # never restarted

    stored = {m.key.decode() for m in consume(kafka.brokers, topics["events"], 10000, timeout=15)}
    missing = [m for m in accepted if m not in stored]
    assert not missing, f"202 but not in the topic: {missing}"
    assert svc.stop() == 0

    # librdkafka's messages about the lost broker are in the log as JSON lines, not in its own
    # "%3|…" form, and the refused connections are errors from the events' handle.
    lines = svc.log_text().splitlines()
    raw = [line for line in lines if re.match(r"%\d\|", line)]
    assert not raw, f"librdkafka lines not in JSON: {raw[:3]}"
    rk = [json.loads(line) for line in lines if '"component":"librdkafka"' in line]
    assert all(r["svc"] == "ingress" and r["client"] and r["facility"] for r in rk), rk[:3]
    assert any(r["level"] in ("error", "warn") for r in rk), rk[:10]
