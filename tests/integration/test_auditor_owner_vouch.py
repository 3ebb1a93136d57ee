"""The database owner against what the auditor takes on at start: the checkpoint row's own
columns, which bind where in the lineage topic the rows after it must begin. Real Kafka, real
Postgres, the owner's powers (triggers disabled, direct writes, hashes recomputed with the
documented formula)."""
import json
import time

from auditor_support import (behind_its_back, get, ingress_record, lineage_count, uuid7,
                             wait_for)
from test_auditor_owner import (sign_round, signed_chains, signed_then_tail, start,
                                started_with_alarm)
from test_auditor_tamper import chain_hash, verify, verify_sql_clean


def cut_row_and_move_checkpoint_offset(schema, chain, cp_seq):
    """Deletes the row just after the checkpoint's, renumbers and re-hashes the rows after it
    onto the checkpoint's hash, and moves the checkpoint row's lineage_offset onto the deleted
    row's (its stored hash untouched), so the topic's records seem to start after the row that
    is gone. Returns (the deleted row's offset, the checkpoint row's own offset)."""
    rows = schema.query("SELECT id, seq, lineage_offset, request_id, stage, ts_us, record, hash"
                        " FROM lineage WHERE chain = %s AND seq >= %s ORDER BY seq",
                        (chain, cp_seq))
    (cp_id, _, cp_off, *_rest, prev) = rows[0]
    gone_id, gone_off = rows[1][0], rows[1][2]
    stmts = [f"DELETE FROM lineage WHERE id = {gone_id}",
             f"UPDATE lineage SET lineage_offset = {gone_off} WHERE id = {cp_id}"]
    prev = bytes(prev)
    for (rid, seq, lo, req, stage, ts_us, record, _h) in rows[2:]:
        h = chain_hash(prev, [chain, seq - 1, lo, req, stage, ts_us, record])
        stmts.append(f"UPDATE lineage SET seq = {seq - 1}, prev_hash = '\\x{prev.hex()}'::bytea,"
                     f" hash = '\\x{h.hex()}'::bytea WHERE id = {rid}")
        prev = h
    behind_its_back(schema, *stmts)
    return gone_off, cp_off


def test_checkpoint_row_offset_moved_is_not_vouched_for(stack, topics, pg_schema, service,
                                                        free_port, tmp_path):
    """The checkpoint row's lineage_offset is one of its hashed fields: moved (its stored hash
    kept), the row no longer hashes to the outside checkpoint, so nothing after it is taken on
    at start, nor signed; the owner putting the offset back afterwards changes nothing."""
    key, group = tmp_path / "cp.pem", "auditor-" + uuid7()[-8:]
    chain, cp_seq, _head = signed_then_tail(start(service, stack, topics, pg_schema, free_port(),
                                                  key, group), topics, pg_schema)
    _gone_off, cp_off = cut_row_and_move_checkpoint_offset(pg_schema, chain, cp_seq)
    (cp_id,) = pg_schema.query("SELECT id FROM lineage WHERE chain = %s AND seq = %s",
                               (chain, cp_seq))[0]

    svc = started_with_alarm(start(service, stack, topics, pg_schema, free_port(), key, group),
                             chain, cp_seq)
    sign_round(svc)
    assert signed_chains(svc)[chain]["seq"] == cp_seq  # the rewritten tail is not signed
    # The owner puts the checkpoint row's offset back: the table alone is consistent again.
    behind_its_back(pg_schema, f"UPDATE lineage SET lineage_offset = {cp_off} WHERE id = {cp_id}")
    assert verify_sql_clean(pg_schema, chain)
    c = verify(svc, chain)
    assert c["ok"] is False
    assert c["first_bad"]["id"] == cp_id and c["first_bad"]["seq"] == cp_seq
    assert get(svc, "/v1/verify").json()["ok"] is False
    # And after another restart the row deleted is named from the topic's records.
    assert svc.stop() == 0
    svc = started_with_alarm(start(service, stack, topics, pg_schema, free_port(), key, group),
                             chain, cp_seq + 1)
    assert verify(svc, chain)["first_bad"]["seq"] == cp_seq + 1


def test_verify_answers_while_a_chain_is_vouched_for(stack, topics, pg_schema, service,
                                                     free_port, tmp_path):
    """At start a long tail is held to the lineage topic (chain 2: 120,000 rows, no checkpoint)
    after chains 0 and 1: the Kafka and Postgres reads take a while, and verify (which takes the
    lock the writer's heads are under) of a chain already taken on must not wait for them."""
    from confluent_kafka import Producer
    from harness import paths
    p = Producer({"bootstrap.servers": paths.KAFKA_BROKERS, "acks": "all", "linger.ms": 20})
    n = 120_000
    for i in range(n + 20):
        rec = ingress_record(uuid7(), offset=i)
        while True:
            try:
                p.produce(topics["lineage"], key=rec["request_id"], value=json.dumps(rec),
                          partition=2 if i < n else i % 2)
                break
            except BufferError:
                p.poll(0.1)
    assert p.flush(120) == 0
    key, group = tmp_path / "cp.pem", "auditor-" + uuid7()[-8:]
    svc = start(service, stack, topics, pg_schema, free_port(), key, group)
    wait_for(lambda: lineage_count(pg_schema) == n + 20, 300, "every row", interval=1)
    assert svc.stop() == 0
    svc = start(service, stack, topics, pg_schema, free_port(), key, group)
    tail = "consumer: chain %d: rows 1..%d since the newest checkpoint match the lineage topic"
    wait_for(lambda: tail % (1, 10) in svc.log_text(), 60, "chain 1 vouched for", interval=0.02)
    t0 = time.time()
    r = get(svc, "/v1/verify?chain=0")
    answered = time.time()
    assert r.status_code == 200 and r.json()["chains"][0]["ok"] is True, r.text
    assert tail % (2, n) not in svc.log_text(), f"chain 2 vouched for before verify answered" \
        f" ({answered - t0:.2f} s)"
    wait_for(lambda: tail % (2, n) in svc.log_text(), 120, "chain 2 vouched for", interval=0.2)
    assert get(svc, "/v1/verify").json()["chain_ok"] is True
