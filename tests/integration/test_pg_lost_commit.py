"""A Postgres failover that loses commits, against the shared Kafka and Postgres.

With an asynchronous standby, a primary can confirm a commit and die before the standby has
it: the promoted standby lacks that batch's rows and its offsets alike. That is simulated here
on one server: after a batch is stored, its rows are deleted and consumer_offsets is rolled
back to where it stood before (as superuser would see it after the promotion), and then the
service's session is terminated, so its next statement needs a new connection. A service that
kept consuming from its in-memory Kafka position would never write those rows again; they must
come back, each once, at their own partition and offset."""
import time

from persister_support import (count_rows, pg_offsets, persister_config, produce_events,
                               wait_for, wait_offsets_at_end)

N = 300


def terminate(schema, app):
    rows = schema.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE application_name = %s", (app,))
    return sum(1 for (ok,) in rows if ok)


def test_persister_writes_lost_commit_again(stack, topics, pg_schema, service, free_port):
    app = f"hl-lost-{pg_schema.name}"
    group = f"g-{topics['events']}"
    cfg = persister_config(stack, topics, pg_schema, free_port(), group, batch_max=50,
                           batch_linger_ms=10, retry_cap_ms=500)
    cfg["postgres"]["conninfo"] = f"{stack.pg_dsn} application_name={app}"
    persister = service("persister", cfg)

    prod_a = produce_events(topics["events"], "a", N)
    stored = wait_offsets_at_end(pg_schema, group, topics["events"])
    # The partition with most records loses its last half: rows and offsets, as a promoted
    # standby that missed the last commits would have them.
    part = max(stored, key=stored.get)
    end = stored[part]
    back = end // 2
    assert back > 0
    lost = pg_schema.query("SELECT message_id, kafka_offset FROM webhook_events WHERE"
                           " kafka_partition = %s AND kafka_offset >= %s", (part, back))
    assert len(lost) == end - back
    pg_schema.query("DELETE FROM webhook_events WHERE kafka_partition = %s AND kafka_offset >= %s"
                    " RETURNING 1", (part, back))
    pg_schema.query("UPDATE consumer_offsets SET next_offset = %s,"
                    " lineage_offset = LEAST(lineage_offset, %s) WHERE consumer_group = %s"
                    " AND topic = %s AND kafka_partition = %s RETURNING 1",
                    (back, back, group, topics["events"], part))
    assert count_rows(pg_schema) == N - len(lost)
    assert pg_offsets(pg_schema, group, topics["events"])[part] == back

    # The session ends (57P01, as a primary going down does); more records make the persister
    # notice, and its retry needs a new connection.
    assert terminate(pg_schema, app) >= 1
    prod_b = produce_events(topics["events"], "b", N)
    wait_offsets_at_end(pg_schema, group, topics["events"])
    wait_for(lambda: count_rows(pg_schema) >= 2 * N, 60,
             f"{len(lost)} lost rows written again", interval=0.5)
    time.sleep(1)  # nothing more arrives: a second copy would not fit the unique key anyway

    rows = pg_schema.query("SELECT message_id, request_id::text, kafka_partition, kafka_offset"
                           " FROM webhook_events")
    assert len(rows) == 2 * N
    want = {f"{p}-{i:05d}" for p in "ab" for i in range(N)}
    assert {r[0] for r in rows} == want
    delivered = {**prod_a.delivered, **prod_b.delivered}
    for mid, rid, p, o in rows:
        assert (p, o) == delivered[rid], mid
    back_rows = {(m, o) for m, _, p, o in rows if p == part and o >= back and m.startswith("a-")}
    assert back_rows == {(m, o) for m, o in lost}
    log = persister.log_text()
    assert "reading the offsets of" in log
    assert persister.stop() == 0
