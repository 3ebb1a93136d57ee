"""The persister's producer (lineage and dead letters) declared fatal by librdkafka mid-run,
as a broker failover can do to an idempotent producer, against the real Kafka and Postgres.

The test hook HOOKLINE_PERSISTER_PRODUCER_FATAL_AFTER_COMMITS makes librdkafka raise the
fatal error right after a batch commit, before that batch's lineage is produced. Checked: the
service keeps running, replaces the producer (counted and logged), every event is stored once,
every stored event has its `persisted` lineage record, and poison records sent after the
replacement still reach the dead-letter topic."""
from harness.kafkaio import consume
from persister_support import (EventProducer, end_offsets, event_headers, metric,
                               persister_config, wait_for, wait_offsets_at_end)

FATAL_ENV = "HOOKLINE_PERSISTER_PRODUCER_FATAL_AFTER_COMMITS"
RESTARTS = "hookline_persister_kafka_producer_restarts_total"


def test_fatal_producer_replaced(stack, topics, pg_schema, service, free_port):
    group = f"g-{topics['events']}"
    svc = service("persister", persister_config(stack, topics, pg_schema, free_port(), group,
                                                batch_max=50, batch_linger_ms=20),
                  env={FATAL_ENV: "3"})
    assert metric(svc, RESTARTS) == 0
    prod = EventProducer(topics["events"])
    good = [prod.send(f"m-{i:04d}", "created") for i in range(600)]
    prod.flush()
    wait_offsets_at_end(pg_schema, group, topics["events"])
    wait_for(lambda: metric(svc, RESTARTS) == 1, 30, "the producer replaced")

    # Poison records after the replacement: the new handle carries the dead letters.
    poison = [prod.send_raw(f"bad-{i}", b'{"id": ', event_headers("stripe", "created"))
              for i in range(5)]
    prod.flush()
    wait_offsets_at_end(pg_schema, group, topics["events"])
    dlq = consume(stack.brokers, topics["dlq"], len(poison) + 1, timeout=15)
    assert sorted(dict(m.headers)["hl-request-id"].decode() for m in dlq) == sorted(poison)

    rows = pg_schema.query("SELECT request_id::text, count(*) OVER (PARTITION BY message_id)"
                           " FROM webhook_events")
    assert sorted(r for r, _ in rows) == sorted(good)
    assert {n for _, n in rows} == {1}
    # Every stored event's lineage reached the topic, including the batch committed just
    # before the fatal error (its records were queued on the failed handle).
    want = set(good) | set(poison)
    records = wait_for(lambda: (lambda n: n if n >= len(want) else None)(
        sum(end_offsets(topics["lineage"], partitions=3).values())), 30, "the lineage records")
    got = {m.key.decode() for m in consume(stack.brokers, topics["lineage"], records, timeout=20)}
    assert want <= got, f"{len(want - got)} events without lineage"
    assert metric(svc, RESTARTS) == 1
    assert svc.running()
    assert "kafka producer fatal error" in svc.log_text()
    assert svc.stop() == 0


def test_fatal_hook_refuses_bad_values(stack, topics, pg_schema, service, free_port):
    for bad in ("0", "three", "-1"):
        svc = service("persister", persister_config(stack, topics, pg_schema, free_port(), "g"),
                      env={FATAL_ENV: bad}, wait_healthy=False)
        assert svc.proc.wait(30) == 2
        assert f"{FATAL_ENV}: '{bad}' is not a positive integer" in svc.log_text()
