"""The auditor keeps up: a burst of lineage records is stored with bounded consumer lag, and
the chains verify quickly. Prints the figures (rows/s stored, rows/s verified, peak lag)."""
import json
import time

from confluent_kafka import Producer

from auditor_support import auditor_config, get, ingress_record, lineage_count, uuid7, wait_for
from harness import paths, sanitizers

N = 30000


def test_burst_is_stored_with_bounded_lag(stack, topics, pg_schema, service, free_port,
                                          tmp_path):
    svc = service("auditor", auditor_config(stack, topics, pg_schema, free_port(),
                                            tmp_path / "cp.pem", batch_linger_ms=50))
    p = Producer({"bootstrap.servers": paths.KAFKA_BROKERS, "acks": "all", "linger.ms": 20,
                  "enable.idempotence": True})
    payloads = []
    for i in range(N):
        rec = ingress_record(uuid7(), offset=i)
        payloads.append((rec["request_id"], json.dumps(rec)))
    t0 = time.time()
    for key, value in payloads:
        while True:
            try:
                p.produce(topics["lineage"], key=key, value=value)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0
    produced_s = time.time() - t0

    peak_lag = 0

    def done():
        nonlocal peak_lag
        m = get(svc, "/metrics", role="metrics").text
        for line in m.splitlines():
            if line.startswith("hl_auditor_consumer_lag"):
                peak_lag = max(peak_lag, int(float(line.split()[-1])))
        return lineage_count(pg_schema) == N
    window = sanitizers.slack(120)  # a speed bound: stretched for sanitized builds
    wait_for(done, window, f"{N} rows", interval=0.5)
    stored_s = time.time() - t0

    m = get(svc, "/metrics", role="metrics").text
    batch = {x.split()[0]: float(x.split()[-1]) for x in m.splitlines()
             if x.startswith(("hl_auditor_batch_seconds_sum", "hl_auditor_batch_seconds_count"))}
    writer_rate = N / batch["hl_auditor_batch_seconds_sum"]
    v = get(svc, "/v1/verify").json()
    assert v["ok"] is True and sum(c["rows"] for c in v["chains"]) == N
    verify_rate = N / (v["elapsed_us"] / 1e6)
    print(f"\nauditor: {N} lineage records produced in {produced_s:.2f}s, stored in "
          f"{stored_s:.2f}s ({N / stored_s:.0f} rows/s end to end), peak lag {peak_lag}, "
          f"drained {stored_s - produced_s:.2f}s after the last produce, batch writer "
          f"{writer_rate:.0f} rows/s, verify {verify_rate:.0f} rows/s")
    # Bounded: everything stored within the window, and the lag never exceeded the burst.
    assert peak_lag <= N
    assert stored_s < window
