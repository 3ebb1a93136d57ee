"""Tampering behind the auditor's back, with the database owner's powers, is caught: edits,
deletions and reorders by the chain walk, an edited column derived from the record by its
re-derivation, rows outside the walked range by the range check, a consistent rewrite of a whole
chain by a signed checkpoint saved earlier."""
import hashlib

import pytest

from auditor_support import (LineageProducer, auditor_config, get, ingress_record,
                             lineage_count, post, uuid7, wait_for)

TRIGGER = "lineage_no_update_delete"


@pytest.fixture
def loaded(stack, topics, pg_schema, service, free_port, tmp_path):
    """An auditor with 90 rows stored; returns (svc, chain with the most rows)."""
    svc = service("auditor", auditor_config(stack, topics, pg_schema, free_port(),
                                            tmp_path / "cp.pem"))
    p = LineageProducer(topics["lineage"])
    for i in range(90):
        rec = ingress_record(uuid7(), offset=i)
        p.send(rec["request_id"], rec)
    p.flush()
    wait_for(lambda: lineage_count(pg_schema) == 90, 60, "90 rows")
    chain = pg_schema.query("SELECT chain FROM lineage GROUP BY chain ORDER BY count(*) DESC "
                            "LIMIT 1")[0][0]
    return svc, chain


def behind_its_back(schema, *sql):
    """Runs statements as the table owner with the append-only trigger disabled."""
    conn = schema.connect(autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute(f"ALTER TABLE lineage DISABLE TRIGGER {TRIGGER}")
            for s in sql:
                cur.execute(s)
            cur.execute(f"ALTER TABLE lineage ENABLE TRIGGER {TRIGGER}")
        conn.commit()
    finally:
        conn.close()


def row_id(schema, chain, seq):
    return schema.query("SELECT id FROM lineage WHERE chain = %s AND seq = %s", (chain, seq))[0][0]


def verify(svc, chain):
    r = get(svc, f"/v1/verify?chain={chain}")
    assert r.status_code == 200, r.text
    (c,) = r.json()["chains"]
    return c


def test_untouched_chain_verifies(loaded):
    svc, chain = loaded
    c = verify(svc, chain)
    assert c["ok"] is True and c["first_bad"] is None and c["rows"] >= 30


def test_edit_is_named(loaded, pg_schema):
    svc, chain = loaded
    rid = row_id(pg_schema, chain, 10)
    behind_its_back(pg_schema, f"UPDATE lineage SET record = replace(record, '202', '200') "
                               f"WHERE id = {rid}")
    c = verify(svc, chain)
    assert c["ok"] is False
    assert c["first_bad"]["id"] == rid and c["first_bad"]["seq"] == 10
    assert c["first_bad"]["reason"] == "hash_mismatch"
    assert c["rows"] == 9


def test_delete_is_named(loaded, pg_schema):
    svc, chain = loaded
    after = row_id(pg_schema, chain, 6)
    behind_its_back(pg_schema, f"DELETE FROM lineage WHERE chain = {chain} AND seq = 5")
    c = verify(svc, chain)
    assert c["ok"] is False
    assert c["first_bad"] == {"id": after, "seq": 6, "expected_seq": 5, "reason": "seq_gap"}


def test_reorder_is_named(loaded, pg_schema):
    svc, chain = loaded
    a, b = row_id(pg_schema, chain, 3), row_id(pg_schema, chain, 4)
    behind_its_back(pg_schema,
                    f"UPDATE lineage SET seq = 1000000 WHERE id = {a}",
                    f"UPDATE lineage SET seq = 3 WHERE id = {b}",
                    f"UPDATE lineage SET seq = 4 WHERE id = {a}")
    c = verify(svc, chain)
    assert c["ok"] is False and c["first_bad"]["seq"] == 3 and c["first_bad"]["id"] == b


def chain_hash(prev, row):
    chain, seq, lo, rid, stage, ts_us, record = row
    text = "\n".join(["hl-lineage-v1", str(chain), str(seq), str(lo), rid, stage, str(ts_us),
                      record])
    return hashlib.sha256(bytes(prev) + text.encode()).digest()


def test_rewritten_chain_fails_against_saved_checkpoint(loaded, pg_schema):
    svc, chain = loaded
    r = post(svc, "/v1/checkpoints", role="admin")
    assert r.status_code == 201, r.text
    saved = [c for c in r.json()["checkpoints"] if c["chain"] == chain][0]
    ok = post(svc, "/v1/verify", json=saved).json()
    assert ok["ok"] is True and ok["checkpoint"]["signature_valid"] is True

    # A superuser edits row 2 and recomputes every later hash, so the chain is consistent.
    rows = pg_schema.query("SELECT id, chain, seq, lineage_offset, request_id, stage, ts_us, record"
                           " FROM lineage WHERE chain = %s ORDER BY seq", (chain,))
    stmts, prev = [], bytes(32)
    for (rid, *row) in rows:
        if row[1] == 2:
            row[6] = row[6].replace("202", "201")
            stmts.append(f"UPDATE lineage SET record = '{row[6]}', status = 201 WHERE id = {rid}")
        h = chain_hash(prev, row)
        stmts.append(f"UPDATE lineage SET prev_hash = '\\x{prev.hex()}'::bytea, "
                     f"hash = '\\x{h.hex()}'::bytea WHERE id = {rid}")
        prev = h
    behind_its_back(pg_schema, *stmts)

    assert verify(svc, chain)["ok"] is True  # the walk alone cannot tell
    res = post(svc, "/v1/verify", json=saved).json()
    assert res["ok"] is False
    assert res["checkpoint"]["signature_valid"] is True
    assert res["checkpoint"]["hash_matches"] is False

    forged = dict(saved, seq=saved["seq"] - 1)
    res = post(svc, "/v1/verify", json=forged).json()
    assert res["ok"] is False and res["checkpoint"]["signature_valid"] is False


# Columns the reports and filters read, each derived from `record`, with a value the record
# does not say. The rows of `loaded` are accepted ingress records (status 202, no error code).
DERIVED = [("status", "500"), ("latency_us", "1"), ("error_code", "'internal'"),
           ("kafka_offset", "kafka_offset + 1"), ("kafka_partition", "5"),
           ("source", "'github'"), ("message_id", "'msg-forged'"), ("event_type", "'t.forged'"),
           ("ts", "ts + interval '1 second'")]


def test_each_derived_column_edit_is_named(loaded, pg_schema):
    svc, chain = loaded
    for k, (column, value) in enumerate(DERIVED):
        seq = 5 + k
        rid = row_id(pg_schema, chain, seq)
        (before,) = pg_schema.query(f"SELECT {column}::text FROM lineage WHERE id = %s", (rid,))[0]
        behind_its_back(pg_schema, f"UPDATE lineage SET {column} = {value} WHERE id = {rid}")
        c = verify(svc, chain)
        assert c["ok"] is False, column
        assert c["first_bad"] == {"id": rid, "seq": seq, "expected_seq": seq,
                                  "reason": "column_mismatch", "column": column}
        assert c["rows"] == seq - 1
        if column == "status":  # the report shows what the hashed record says
            (req,) = pg_schema.query("SELECT request_id FROM lineage WHERE id = %s", (rid,))[0]
            shown = get(svc, f"/v1/requests/{req}").json()["lineage"]
            assert [r["status"] for r in shown] == [202]
        restore = "NULL" if before is None else f"'{before}'::{pg_type(pg_schema, column)}"
        behind_its_back(pg_schema, f"UPDATE lineage SET {column} = {restore} WHERE id = {rid}")
        assert verify(svc, chain)["ok"] is True, f"{column} not restored"


def pg_type(schema, column):
    return schema.query("SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
                        " WHERE attrelid = 'lineage'::regclass AND attname = %s", (column,))[0][0]


def forge_copy(schema, rid, chain_sql, seq_sql, drop):
    """Inserts a copy of row rid at another (chain, seq), constraints dropped as an owner can."""
    cols = ("lineage_offset, request_id, stage, ts_us, ts, source, message_id, event_type,"
            " status, error_code, kafka_partition, kafka_offset, latency_us, record, prev_hash,"
            " hash")
    conn = schema.connect(autocommit=False)
    try:
        with conn.cursor() as cur:
            for con in drop:
                cur.execute(f"ALTER TABLE lineage DROP CONSTRAINT IF EXISTS {con}")
            cur.execute(f"INSERT INTO lineage (chain, seq, {cols}) SELECT {chain_sql}, {seq_sql},"
                        f" {cols.replace('lineage_offset', 'lineage_offset + 100000')}"
                        f" FROM lineage WHERE id = %s RETURNING id", (rid,))
            new = cur.fetchone()[0]
        conn.commit()
        return new
    finally:
        conn.close()


def test_constraints_refuse_rows_outside_a_chain(loaded, pg_schema):
    _, chain = loaded
    rid = row_id(pg_schema, chain, 3)
    for chain_sql, seq_sql in [("chain", "0"), ("chain", "-4"), ("-1", "1"), ("256", "1")]:
        with pytest.raises(Exception, match="violates check constraint"):
            forge_copy(pg_schema, rid, chain_sql, seq_sql, drop=())


@pytest.mark.parametrize("where", ["seq_zero", "seq_negative", "beyond_head"])
def test_row_outside_walked_range_is_named(loaded, pg_schema, where):
    svc, chain = loaded
    (head,) = pg_schema.query("SELECT max(seq) FROM lineage WHERE chain = %s", (chain,))[0]
    seq_sql = {"seq_zero": "0", "seq_negative": "-7", "beyond_head": str(head + 3)}[where]
    forged = forge_copy(pg_schema, row_id(pg_schema, chain, 3), "chain", seq_sql,
                        drop=("lineage_seq_positive",))
    c = verify(svc, chain)
    assert c["ok"] is False and c["first_bad"]["id"] == forged
    assert c["first_bad"]["reason"] == ("seq_gap" if where == "beyond_head" else "outside_chain")
    if where != "beyond_head":  # the reports show no row the walk cannot read
        (req,) = pg_schema.query("SELECT request_id FROM lineage WHERE id = %s", (forged,))[0]
        shown = get(svc, f"/v1/requests/{req}").json()["lineage"]
        assert forged not in [r["id"] for r in shown] and len(shown) == 1


def test_row_in_negative_chain_is_named(loaded, pg_schema):
    svc, chain = loaded
    forged = forge_copy(pg_schema, row_id(pg_schema, chain, 1), "-1", "1",
                        drop=("lineage_chain_range",))
    r = get(svc, "/v1/verify")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is False
    (bad,) = [c for c in body["chains"] if not c["ok"]]
    assert bad["chain"] == -1
    assert bad["first_bad"]["id"] == forged and bad["first_bad"]["reason"] == "chain_out_of_range"
    (req,) = pg_schema.query("SELECT request_id FROM lineage WHERE id = %s", (forged,))[0]
    assert forged not in [r["id"] for r in get(svc, f"/v1/requests/{req}").json()["lineage"]]
