"""A Postgres failover that loses commits, against the shared Kafka and Postgres: the persister
and the auditor.

With an asynchronous standby, a primary can confirm a commit and die before the standby has
it: the promoted standby lacks that batch's rows and its offsets alike. That is simulated here
on one server: after a batch is stored, its rows are deleted and consumer_offsets is rolled
back to where it stood before (as superuser would see it after the promotion), and then the
service's session is terminated, so its next statement needs a new connection. A service that
kept consuming from its in-memory Kafka position would never write those rows again; they must
come back, each once, at their own partition and offset."""
import time

from auditor_support import (LineageProducer, auditor_config, behind_its_back, get,
                             ingress_record, lineage_count, uuid7)
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


def send_lineage(topic, n):
    p = LineageProducer(topic)
    for _ in range(n):
        rid = uuid7()
        p.send(rid, ingress_record(rid, status=503, error_code="unavailable"))
    p.flush()


def test_auditor_writes_lost_commit_again(stack, topics, pg_schema, service, free_port,
                                          tmp_path):
    app = f"hl-lost-{pg_schema.name}"
    group = f"auditor-{pg_schema.name}"
    cfg = auditor_config(stack, topics, pg_schema, free_port(), tmp_path / "cp.pem", group=group)
    cfg["postgres"]["conninfo"] = f"{stack.pg_dsn} application_name={app}"
    auditor = service("auditor", cfg)

    send_lineage(topics["lineage"], N)
    wait_for(lambda: lineage_count(pg_schema) == N, 60, f"{N} lineage rows")
    # The longest chain loses its last half: rows and offset together (one transaction), and
    # so its head too, which is the chain's last row.
    chain, length = pg_schema.query("SELECT chain, count(*) FROM lineage GROUP BY chain"
                                    " ORDER BY count(*) DESC LIMIT 1")[0]
    cut = length // 2 + 1
    before = pg_schema.query("SELECT seq, lineage_offset, encode(hash, 'hex') FROM lineage"
                             " WHERE chain = %s AND seq >= %s ORDER BY seq", (chain, cut))
    back = before[0][1]
    behind_its_back(pg_schema, f"DELETE FROM lineage WHERE chain = {int(chain)}"
                               f" AND seq >= {int(cut)}")
    pg_schema.query("UPDATE consumer_offsets SET next_offset = %s WHERE consumer_group = %s"
                    " AND topic = %s AND kafka_partition = %s RETURNING 1",
                    (back, group, topics["lineage"], chain))
    assert lineage_count(pg_schema) == N - len(before)

    assert terminate(pg_schema, app) >= 1
    send_lineage(topics["lineage"], N)
    wait_for(lambda: lineage_count(pg_schema) >= 2 * N, 60,
             f"{len(before)} lost lineage rows written again", interval=0.5)
    time.sleep(1)
    assert lineage_count(pg_schema) == 2 * N
    # Written again onto the head that survived: the same seqs, offsets and hashes.
    after = pg_schema.query("SELECT seq, lineage_offset, encode(hash, 'hex') FROM lineage"
                            " WHERE chain = %s AND seq >= %s AND seq < %s ORDER BY seq",
                            (chain, cut, cut + len(before)))
    assert after == before
    seqs = [s for (s,) in pg_schema.query("SELECT seq FROM lineage WHERE chain = %s"
                                          " ORDER BY seq", (chain,))]
    assert seqs == list(range(1, len(seqs) + 1))
    r = get(auditor, f"/v1/verify?chain={chain}")
    assert r.status_code == 200, r.text
    (c,) = r.json()["chains"]
    assert c["ok"] is True, c
    assert "loading the chain heads again" in auditor.log_text()
    assert auditor.stop() == 0
