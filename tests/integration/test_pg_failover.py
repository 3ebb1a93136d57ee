"""The persister and the auditor through what a Postgres failover does to a session, against a
private Postgres (the shared one is left alone) and the shared Kafka.

Both services get a multi-host conninfo whose first host is dead, with
target_session_attrs=read-write, as a production overlay lists its primary and standbys.
Mid-run the server turns read-only (default_transaction_read_only on, reloaded: every write of
an open session fails with SQLSTATE 25006, and a read-write connection is refused, as on a
standby or a demoted primary), then writable again (a new primary), and then every session of
the two services is terminated (57P01, as a primary shutting down does). Checked: nothing is
refused or dead-lettered while read-only, both services reconnect by themselves, and Postgres
ends with every event once and every lineage record once."""
import time

import psycopg2

from auditor_support import LineageProducer, auditor_config, ingress_record, lineage_count, uuid7
from persister_support import (PgAt, PrivatePostgres, count_rows, end_offsets, metric,
                               persister_config, produce_events, wait_for,
                               wait_offsets_at_end)
from harness.kafkaio import consume

PHASE = 600


def set_read_only(pg, on):
    # The admin session itself stays writable, to change the setting back.
    conn = psycopg2.connect(pg.conninfo + " options='-c default_transaction_read_only=off'",
                            connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("ALTER SYSTEM SET default_transaction_read_only = "
                        + ("on" if on else "off"))
            cur.execute("SELECT pg_reload_conf()")
    finally:
        conn.close()


def service_backends(pg):
    return pg.query("SELECT pid FROM pg_stat_activity WHERE datname = 'hookline'"
                    " AND backend_type = 'client backend' AND pid <> pg_backend_pid()")


def test_read_only_then_terminated_sessions(stack, topics, service, free_port, tmp_path):
    pg = PrivatePostgres(free_port())
    try:
        schema = PgAt(pg)
        dead = free_port()  # nothing listens there: the first host of the list is down
        conninfo = (f"host=127.0.0.1,127.0.0.1 port={dead},{pg.port} dbname=hookline"
                    " user=hookline target_session_attrs=read-write")
        pgcfg = {"conninfo": conninfo, "schema": "public", "connect_timeout_ms": 1000}
        group = f"g-{topics['events']}"
        persister = service("persister", persister_config(
            stack, topics, schema, free_port(), group, batch_max=100, batch_linger_ms=10,
            retry_cap_ms=500, postgres=pgcfg))
        auditor = service("auditor", auditor_config(
            stack, topics, schema, free_port(), tmp_path / "ckpt.key", postgres=pgcfg))

        produce_events(topics["events"], "a", PHASE)
        wait_offsets_at_end(schema, group, topics["events"], timeout=60)
        wait_for(lambda: lineage_count(schema) == PHASE, 60, "the auditor to store phase a")

        # Read-only: every write fails with 25006; new read-write sessions are refused.
        set_read_only(pg, True)
        t_ro = time.monotonic()
        # Redeliveries of stored events first: a batch of them only takes the statement way
        # (no new key to number), where a refused statement used to isolate rows one by one.
        produce_events(topics["events"], "a", 50)
        wait_for(lambda: metric(persister, "hookline_persister_retries_total") >= 2, 30,
                 "the persister to retry on the read-only server")
        produce_events(topics["events"], "b", PHASE)
        # The persister writes no lineage while it cannot commit: the auditor gets some of its
        # own (ingress records of requests answered 503), so it meets the read-only server too.
        lp = LineageProducer(topics["lineage"])
        for i in range(20):
            rid = uuid7()
            lp.send(rid, ingress_record(rid, status=503, error_code="unavailable"))
        lp.flush()
        wait_for(lambda: "postgres server is read-only; reconnecting" in auditor.log_text(), 30,
                 "the auditor to drop its read-only session")
        time.sleep(2)
        assert count_rows(schema) == PHASE  # nothing written while read-only
        assert persister.running() and auditor.running()
        set_read_only(pg, False)
        t_rw = time.monotonic()
        wait_offsets_at_end(schema, group, topics["events"], timeout=60)
        print(f"read-only for {t_rw - t_ro:.1f} s; phase b stored "
              f"{time.monotonic() - t_rw:.2f} s after the server was writable again")

        # Terminated sessions (57P01) while a burst is being written.
        produce_events(topics["events"], "c", PHASE)
        killed = 0
        for _ in range(5):
            for (pid,) in service_backends(pg):
                killed += pg.query("SELECT pg_terminate_backend(%s)", (pid,))[0][0]
            time.sleep(0.3)
        assert killed >= 2
        t_kill = time.monotonic()
        wait_offsets_at_end(schema, group, topics["events"], timeout=60)
        print(f"{killed} sessions terminated; phase c stored "
              f"{time.monotonic() - t_kill:.2f} s after the last termination round")

        rows = pg.query("SELECT message_id, count(*) FROM webhook_events GROUP BY message_id")
        want = {f"{p}-{i:05d}" for p in "abc" for i in range(PHASE)}
        assert {m for m, _ in rows} == want
        assert {n for _, n in rows} == {1}
        assert count_rows(schema) == 3 * PHASE
        # Nothing was refused: a read-only server is an outage, not a bad record.
        assert not list(consume(stack.brokers, topics["dlq"], 1, timeout=3))
        assert metric(persister, "hookline_persister_dead_letters_total") == 0
        # The auditor stored every lineage record exactly once (one row per record: the table
        # is unique by partition and offset), and every stored event has its lineage.
        records = sum(end_offsets(topics["lineage"], partitions=3).values())
        assert records >= 3 * PHASE
        wait_for(lambda: lineage_count(schema) == records, 90, f"{records} lineage rows")
        time.sleep(1)
        assert lineage_count(schema) == records
        assert pg.query("SELECT count(*) FROM webhook_events w WHERE NOT EXISTS (SELECT 1"
                        " FROM lineage l WHERE l.request_id = w.request_id::text"
                        " AND l.stage = 'persisted')")[0][0] == 0
        assert persister.stop() == 0
        assert auditor.stop() == 0
    finally:
        pg.destroy()
