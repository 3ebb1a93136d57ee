"""The database owner against what the auditor takes on at start: the checkpoint row's own
columns, which bind where in the lineage topic the rows after it must begin. Real Kafka, real
Postgres, the owner's powers (triggers disabled, direct writes, hashes recomputed with the
documented formula)."""
from auditor_support import behind_its_back, get, uuid7
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
