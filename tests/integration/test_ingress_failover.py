"""A fatal idempotent-producer error under load, against the real broker and Postgres.

librdkafka declares an idempotent producer fatal when a failover desynchronises its sequence
numbers ("out of order sequence number"); until now the ingress then answered 503 for good.
Here the ingress runs with its test hook (`test_fault_signals: 1`): SIGUSR1 raises that
fatal error in the events producer, SIGUSR2 in the lineage producer, while eight providers
post events and retry every 503 with the same message id. Checked: requests waiting on the
failed producer (which lingers, so some always are) are answered 503 (never anything but 202
or 503), 202s resume by themselves
without a restart, the replacements are counted and logged, and Postgres holds every
accepted event exactly once and nothing else."""
import json
import signal
import threading
import time

from ingress_support import (DEMO_SECRET, Client, ingress_config, metric_value, metrics_text,
                             standard_source)
from persister_support import persister_config, wait_for

SENDERS = 8
PER_SENDER = 40
# The events producer lingers 200 ms, so each provider's request is nearly always waiting in
# the producer when the fault strikes: there are requests in flight to answer 503.
LINGER_MS = 200
RESTARTS = "hookline_ingress_kafka_producer_restarts_total"


class Provider(threading.Thread):
    """Posts PER_SENDER events one after the other, each retried on 503 until it is 202."""

    def __init__(self, port, n):
        super().__init__(daemon=True)
        self.client = Client(port, timeout=15)
        self.n = n
        self.answers = []  # (message id, status, start, end) of every attempt
        self.accepted = []

    def run(self):
        for i in range(PER_SENDER):
            mid = f"fo-{self.n}-{i}"
            body = json.dumps({"type": "failover.test", "i": i}).encode()
            for _ in range(200):
                t0 = time.monotonic()
                status, _, _ = self.client.post_standard(body, msg_id=mid)
                self.answers.append((mid, status, t0, time.monotonic()))
                if status == 202:
                    self.accepted.append(mid)
                    break
                time.sleep(0.02)
            time.sleep(0.01)
        self.client.close()


def restarts(svc, producer):
    _, text = metrics_text(svc)
    return metric_value(text, RESTARTS, f'producer="{producer}"')


def test_fatal_producer_error_recovers(service, free_port, topics, pg_schema, stack):
    iport, pport = free_port(), free_port()
    ingress = service("ingress", ingress_config(iport, topics, [standard_source()],
                                                log_level="info", test_fault_signals=1,
                                                linger_ms=LINGER_MS),
                      env={"HL_TEST_DEMO_SECRET": DEMO_SECRET})
    service("persister", persister_config(stack, topics, pg_schema, pport, f"g-{topics['events']}"))
    assert restarts(ingress, "events") == 0

    providers = [Provider(iport, n) for n in range(SENDERS)]
    for p in providers:
        p.start()
    wait_for(lambda: sum(len(p.accepted) for p in providers) >= 60, 60, "60 events accepted")
    fault_at = time.monotonic()
    ingress.proc.send_signal(signal.SIGUSR1)
    wait_for(lambda: restarts(ingress, "events") == 1, 30, "the events producer replaced")
    time.sleep(0.5)
    ingress.proc.send_signal(signal.SIGUSR2)
    wait_for(lambda: restarts(ingress, "lineage") == 1, 30, "the lineage producer replaced")
    for p in providers:
        p.join(180)
        assert not p.is_alive(), "a provider did not finish"

    answers = [a for p in providers for a in p.answers]
    accepted = [m for p in providers for m in p.accepted]
    statuses = {s for _, s, _, _ in answers}
    assert statuses <= {202, 503}, statuses
    assert len(accepted) == SENDERS * PER_SENDER  # every event was accepted in the end
    # Requests in flight when the error struck, or sent before the replacement, got 503.
    refused = [a for a in answers if a[1] == 503 and a[3] >= fault_at]
    assert refused, "no request was answered 503 after the fatal error"
    # 202s resumed: the first 202 to a request sent after the last 503 of the fault.
    last_refused = max(a[3] for a in refused)
    resumed = min(a[3] for a in answers if a[1] == 202 and a[2] >= fault_at)
    print(f"fatal error -> first 202 after it: {resumed - fault_at:.3f} s; "
          f"503s after it: {len(refused)}; last 503 {last_refused - fault_at:.3f} s after it")
    assert ingress.running()  # recovered without a restart
    _, body, _ = ingress.get("/healthz")
    assert json.loads(body)["status"] == "ok"

    rows = wait_for(lambda: (lambda r: r if len(r) >= len(accepted) else None)(
        pg_schema.query("SELECT message_id, count(*) FROM webhook_events GROUP BY message_id")),
        90, "every accepted event in Postgres")
    stored = {m: n for m, n in rows}
    assert set(stored) == set(accepted), "Postgres does not hold exactly the accepted events"
    assert set(stored.values()) == {1}
    total = pg_schema.query("SELECT count(*) FROM webhook_events")[0][0]
    assert total == len(accepted)
    _, text = metrics_text(ingress)
    assert metric_value(text, "hookline_ingress_lineage_dropped_total") == 0

    log = ingress.log_text()
    assert "kafka producer fatal error; replacing the producer" in log
    assert log.count("kafka producer replaced") == 2
    assert ingress.stop() == 0
