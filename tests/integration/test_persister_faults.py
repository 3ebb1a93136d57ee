"""hookline-persister under faults, against the real local Kafka and Postgres: kill -9 and
restart, a Postgres outage, and a group member leaving mid-run. Each ends exactly once."""
import signal
import threading
import time

from persister_support import (EventProducer, PgAt, PrivatePostgres, count_rows, lineage, metric,
                               persister_config, pg_offsets, rss_kb, wait_for,
                               wait_offsets_at_end)


def produce_workload(topic, n_messages, events=2, dup_every=7, prefix="m", body_pad=0):
    """n_messages x events records plus a redelivery of every dup_every-th one. Returns
    (producer, {(message_id, event_type): first request id}, number of records)."""
    prod = EventProducer(topic)
    first = {}
    total = 0
    for i in range(n_messages):
        mid = f"{prefix}-{i:06d}"
        for e in range(events):
            et = f"ev{e}"
            body = {"id": mid, "type": et, "pad": "p" * body_pad}
            rid = prod.send(mid, et, body)
            first.setdefault((mid, et), rid)
            total += 1
            if (i * events + e) % dup_every == 0:
                prod.send(mid, et, body)
                total += 1
    prod.flush()
    return prod, first, total


def assert_exactly_once(schema, first, prod):
    rows = schema.query("SELECT message_id, event_type, request_id::text, kafka_partition,"
                        " kafka_offset FROM webhook_events")
    assert len(rows) == len(first), f"{len(rows)} rows for {len(first)} unique events"
    for m, e, rid, p, o in rows:
        assert rid == first[(m, e)]
        assert (p, o) == prod.delivered[rid]


def persisted_lineage(kafka_consume, topic, at_least, timeout=30):
    lin = lineage(kafka_consume, topic, at_least + 10_000, timeout=timeout)
    return [r for _, r in lin if r["stage"] == "persisted"]


def test_kill9_mid_run_then_restart(stack, topics, pg_schema, service, free_port,
                                    kafka_consume):
    prod, first, total = produce_workload(topics["events"], 2500)
    group = f"g-{topics['events']}"
    cfg = persister_config(stack, topics, pg_schema, free_port(), group, batch_max=50,
                           batch_linger_ms=5)
    svc = service("persister", cfg)
    wait_for(lambda: count_rows(pg_schema) >= 800, 60, "a part of the rows", interval=0.02)
    svc.stop(signal.SIGKILL)
    stored_at_kill = count_rows(pg_schema)
    assert stored_at_kill < len(first), "killed too late to test anything"
    svc2 = service("persister", cfg)
    wait_offsets_at_end(pg_schema, group, topics["events"], timeout=90)
    assert_exactly_once(pg_schema, first, prod)
    # Offsets live in the batch's transaction: the restarted member resumes exactly where the
    # table ends, so nothing committed before the kill is consumed again (no extra duplicates).
    dups = total - len(first)
    assert metric(svc2, "hookline_persister_duplicates_total") <= dups
    # Lineage is at least once: the restarted member produces the lineage of the batches
    # committed before the kill again (from Postgres), with the same flags. Count requests.
    persisted = persisted_lineage(kafka_consume, topics["lineage"], 1)
    dup_requests = {r["request_id"] for r in persisted if r["duplicate"]}
    assert len(dup_requests) <= dups
    assert not dup_requests & {r["request_id"] for r in persisted if not r["duplicate"]}
    assert svc2.stop() == 0


def test_postgres_outage_waits_bounded_then_stores_everything(stack, topics, service, free_port):
    pg = PrivatePostgres(free_port())
    try:
        schema = PgAt(pg)
        group = f"g-{topics['events']}"
        cfg = persister_config(stack, topics, schema, free_port(), group, batch_max=200,
                               batch_linger_ms=10, retry_cap_ms=1000,
                               postgres={"conninfo": pg.conninfo, "schema": "public",
                                         "connect_timeout_ms": 1000})
        prod1, first, total1 = produce_workload(topics["events"], 1000, prefix="a")
        svc = service("persister", cfg)
        wait_offsets_at_end(schema, group, topics["events"], timeout=60)

        # Keep producing through the outage, ~25 MB, so an unpaused consumer would balloon.
        stop_producing = threading.Event()
        later = {}

        def keep_producing():
            p = EventProducer(topics["events"])
            i = 0
            while not stop_producing.is_set() and i < 12_000:
                mid = f"b-{i:06d}"
                later[(mid, "ev0")] = p.send(mid, "ev0", {"id": mid, "pad": "q" * 2000})
                i += 1
                if i % 500 == 0:
                    time.sleep(0.05)
            p.flush()
            later["_producer"] = p

        pg.stop()
        t0 = time.monotonic()
        th = threading.Thread(target=keep_producing)
        th.start()
        wait_for(lambda: metric(svc, "hookline_persister_paused") == 1, 20, "paused gauge")
        base = rss_kb(svc.pid)
        peak = base
        while time.monotonic() - t0 < 10:
            peak = max(peak, rss_kb(svc.pid))
            status, _, _ = svc.get("/readyz")
            assert status != 200, "ready while Postgres is down"
            time.sleep(0.25)
        assert svc.running()
        assert metric(svc, "hookline_persister_retries_total") >= 2
        stop_producing.set()
        th.join(120)
        pg.start()

        wait_offsets_at_end(schema, group, topics["events"], timeout=120)
        prod2 = later.pop("_producer")
        assert_exactly_once(schema, {**first, **later}, _Merged(prod1, prod2))
        # Paused partitions fetch nothing: memory held while waiting is the batch in hand plus
        # librdkafka's bounded queue, not the ~25 MB produced meanwhile.
        assert peak - base < 20_000, f"RSS grew {peak - base} kB while waiting"
        assert metric(svc, "hookline_persister_paused") == 0
        wait_for(lambda: svc.get("/readyz")[0] == 200, 10, "ready again")
        assert svc.stop() == 0, svc.log_tail()
    finally:
        pg.destroy()


class _Merged:
    def __init__(self, *producers):
        self.delivered = {}
        for p in producers:
            self.delivered.update(p.delivered)


def test_two_members_one_leaves_mid_run(stack, topics, pg_schema, service, free_port,
                                        kafka_consume):
    group = f"g-{topics['events']}"
    cfg_a = persister_config(stack, topics, pg_schema, free_port(), group, batch_max=50,
                             batch_linger_ms=5)
    cfg_b = persister_config(stack, topics, pg_schema, free_port(), group, batch_max=50,
                             batch_linger_ms=5)
    a = service("persister", cfg_a)
    b = service("persister", cfg_b)
    wait_for(lambda: (metric(a, "hookline_persister_assigned_partitions") or 0) > 0 and
             (metric(b, "hookline_persister_assigned_partitions") or 0) > 0, 30,
             "both members assigned")
    done = {}

    def produce():
        done["w"] = produce_workload(topics["events"], 3000, prefix="c")

    th = threading.Thread(target=produce)
    th.start()
    wait_for(lambda: count_rows(pg_schema) >= 1000, 60, "a part of the rows", interval=0.05)
    assert a.stop() == 0, a.log_tail()
    th.join(120)
    prod, first, total = done["w"]
    wait_offsets_at_end(pg_schema, group, topics["events"], timeout=90)
    assert_exactly_once(pg_schema, first, prod)
    assert metric(b, "hookline_persister_assigned_partitions") == 6
    # The leaver finished its batch before giving its partitions up, and the stayer started
    # from the offsets in Postgres: no record was applied twice.
    persisted = persisted_lineage(kafka_consume, topics["lineage"], total)
    assert sum(1 for r in persisted if not r["duplicate"]) == len(first)
    assert len(persisted) == total
    assert b.stop() == 0
