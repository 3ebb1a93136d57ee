"""Tampering behind the auditor's back, with the database owner's powers, is caught: edits,
deletions and reorders by the chain walk, an edited column derived from the record by its
re-derivation, rows outside the walked range by the range check, a consistent rewrite of a whole
chain by a signed checkpoint saved earlier."""
import hashlib
import json
import os
import subprocess
import threading
import time

import pytest

from auditor_support import (TOKENS, LineageProducer, auditor_config, behind_its_back, get,
                             ingress_record, lineage_count, post, uuid7, wait_for)
from harness import paths, sanitizers

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


def rehash_from(schema, chain, start, edit):
    """What an owner who knows the formula does: edits rows from seq `start` on (edit(row) ->
    dict of new column values, the record and its derived columns alike) and recomputes every
    hash from there, so the chain walks clean. Returns the UPDATE statements."""
    rows = schema.query("SELECT id, chain, seq, lineage_offset, request_id, stage, ts_us, record,"
                        " prev_hash FROM lineage WHERE chain = %s ORDER BY seq", (chain,))
    stmts, prev = [], None
    for (rid, *row, stored_prev) in rows:
        seq = row[1]
        if seq < start:
            continue
        prev = bytes(stored_prev) if prev is None else prev
        changes = edit(row) or {}
        if "record" in changes:
            row[6] = changes["record"]
        sets = [f"{k} = '{v}'" if isinstance(v, str) else f"{k} = {v}" for k, v in changes.items()]
        h = chain_hash(prev, row)
        sets += [f"prev_hash = '\\x{prev.hex()}'::bytea", f"hash = '\\x{h.hex()}'::bytea"]
        stmts.append(f"UPDATE lineage SET {', '.join(sets)} WHERE id = {rid}")
        prev = h
    return stmts


def to_201(row):
    if row[1] == 2:
        return {"record": row[6].replace('"status": 202', '"status": 201'), "status": 201}
    return None


def sign_now(svc, chain):
    r = post(svc, "/v1/checkpoints", role="admin")
    assert r.status_code == 201, r.text
    return [c for c in r.json()["checkpoints"] if c["chain"] == chain][0]


def test_rewritten_chain_fails_against_saved_checkpoint(loaded, pg_schema):
    svc, chain = loaded
    saved = sign_now(svc, chain)
    ok = post(svc, "/v1/verify", json=saved).json()
    assert ok["ok"] is True and ok["checkpoint"]["signature_valid"] is True

    # A superuser edits row 2 and recomputes every later hash, so the chain is consistent.
    behind_its_back(pg_schema, *rehash_from(pg_schema, chain, 1, to_201))

    res = post(svc, "/v1/verify", json=saved).json()
    assert res["ok"] is False
    assert res["checkpoint"]["signature_valid"] is True
    assert res["checkpoint"]["hash_matches"] is False

    forged = dict(saved, seq=saved["seq"] - 1)
    res = post(svc, "/v1/verify", json=forged).json()
    assert res["ok"] is False and res["checkpoint"]["signature_valid"] is False


def metric(svc, name):
    text = get(svc, "/metrics", role="metrics").text
    vals = [float(l.split()[-1]) for l in text.splitlines() if l.startswith(name + " ")]
    return vals[0] if vals else 0.0


def test_signing_while_rows_arrive_refuses_nothing(loaded, pg_schema, topics):
    """Heads signed while the writer keeps storing rows: no refusal and no alarm. (The heads
    this process wrote, read again after the outside checkpoints, were once held against a
    walk that ended at the head read before them: every signing under load was refused.)"""
    svc, chain = loaded
    before = metric(svc, "hookline_auditor_checkpoint_refusals_total")
    stop = threading.Event()
    sent = [0]

    def produce():
        p = LineageProducer(topics["lineage"])
        while not stop.is_set():
            for _ in range(20):
                rec = ingress_record(uuid7(), offset=100000 + sent[0])
                p.send(rec["request_id"], rec)
                sent[0] += 1
            p.flush()
            time.sleep(0.02)

    t = threading.Thread(target=produce, daemon=True)
    t.start()
    signed = 0
    try:
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            r = post(svc, "/v1/checkpoints", role="admin")
            assert r.status_code == 201, r.text
            signed += len(r.json()["checkpoints"])
            time.sleep(0.2)
    finally:
        stop.set()
        t.join(30)
    wait_for(lambda: lineage_count(pg_schema) == 90 + sent[0], 60, "every row stored")
    assert sent[0] > 500 and signed >= 10
    assert metric(svc, "hookline_auditor_checkpoint_refusals_total") == before
    assert "ALARM" not in svc.log_text()


def test_tail_rewritten_behind_checkpoint_caught_by_topic_copy(loaded, pg_schema, topics, stack):
    svc, chain = loaded
    saved = sign_now(svc, chain)
    assert verify(svc, chain)["checkpoint_seq"] == saved["seq"]
    head_id = row_id(pg_schema, chain, saved["seq"])
    # Row 2 edited, everything after re-hashed, and the checkpoints table emptied as well: the
    # database alone now tells a consistent story.
    behind_its_back(pg_schema, *rehash_from(pg_schema, chain, 1, to_201),
             "DELETE FROM lineage_checkpoints")
    assert verify_sql_clean(pg_schema, chain)

    c = verify(svc, chain)
    assert c["ok"] is False
    # The checkpoint fails at its seq; the lineage topic then names the row edited, the first
    # whose record is not the topic's record at its offset.
    assert saved["seq"] > 2 and head_id != row_id(pg_schema, chain, 2)
    assert c["first_bad"] == {"id": row_id(pg_schema, chain, 2), "seq": 2, "expected_seq": 2,
                              "reason": "checkpoint_mismatch", "topic_check": "record_mismatch",
                              "checkpoint_seq": saved["seq"], "intact_through_seq": 0}
    assert get(svc, "/v1/verify").json()["ok"] is False

    # The auditor refuses to sign over it: new rows arrive, the head moves, no signature.
    before = metric(svc, "hookline_auditor_checkpoint_refusals_total")
    p = LineageProducer(topics["lineage"])
    for i in range(30):
        rec = ingress_record(uuid7(), offset=1000 + i)
        p.send(rec["request_id"], rec)
    p.flush()
    wait_for(lambda: lineage_count(pg_schema) == 120, 60, "120 rows")
    r = post(svc, "/v1/checkpoints", role="admin")
    assert r.status_code == 201, r.text
    assert chain not in [k["chain"] for k in r.json()["checkpoints"]]
    assert metric(svc, "hookline_auditor_checkpoint_refusals_total") >= before + 1
    wait_for(lambda: "ALARM checkpoint refused: chain %d" % chain in svc.log_text(), 10,
             "the alarm in the log")


def verify_sql_clean(schema, chain):
    """The SQL view agrees the rewritten chain hashes consistently."""
    (bad,) = schema.query("SELECT count(*) FROM lineage_hash_check WHERE chain = %s"
                          " AND computed <> hash", (chain,))[0]
    return bad == 0


def test_tail_deleted_behind_checkpoint_is_named(loaded, pg_schema):
    svc, chain = loaded
    saved = sign_now(svc, chain)
    cut = saved["seq"] - 2
    behind_its_back(pg_schema, f"DELETE FROM lineage WHERE chain = {chain} AND seq >= {cut}",
             f"DELETE FROM lineage_checkpoints WHERE chain = {chain}")
    c = verify(svc, chain)
    assert c["ok"] is False
    assert c["first_bad"]["reason"] == "checkpoint_beyond_head"
    assert c["first_bad"]["seq"] == cut and c["first_bad"]["checkpoint_seq"] == saved["seq"]


def test_old_checkpoints_verify_after_key_rotation(stack, topics, pg_schema, service, free_port,
                                                   tmp_path):
    old_key = tmp_path / "old.pem"
    svc = service("auditor", auditor_config(stack, topics, pg_schema, free_port(), old_key))
    p = LineageProducer(topics["lineage"])
    for i in range(12):
        rec = ingress_record(uuid7(), offset=i)
        p.send(rec["request_id"], rec)
    p.flush()
    wait_for(lambda: lineage_count(pg_schema) == 12, 60, "12 rows")
    old = post(svc, "/v1/checkpoints", role="admin").json()
    assert old["checkpoints"]
    svc.stop()

    new_key = tmp_path / "new.pem"
    ring = auditor_config(stack, topics, pg_schema, free_port(), new_key)
    ring["checkpoint"]["public_keys"] = [old["public_key"]]
    svc = service("auditor", ring)
    body = get(svc, "/v1/verify").json()
    assert body["ok"] is True and body["checkpoints_outside"]["refused"] == 0
    assert {c["chain"]: c["checkpoint_seq"] for c in body["chains"]} == \
        {k["chain"]: k["seq"] for k in old["checkpoints"]}
    svc.stop()

    # Without the old public key, its checkpoints cannot be told from forgeries: not ok.
    svc = service("auditor", auditor_config(stack, topics, pg_schema, free_port(), new_key))
    body = get(svc, "/v1/verify").json()
    assert body["ok"] is False and body["checkpoints_outside"]["refused"] == len(old["checkpoints"])


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


def run_cli_verify(svc, stack, schema, tmp_path, request_id):
    """`hookline verify` of a one-request ledger (a rejected request: no stored event expected)."""
    ledger = tmp_path / "requests.ndjson"
    ledger.write_text(json.dumps({"message_id": "msg-1", "event_type": "t.created",
                                  "delivery_id": "", "duplicate": False, "status": 400,
                                  "attempts": 1, "latency_us": 1000,
                                  "request_id": request_id}) + "\n")
    env = {**os.environ, **sanitizers.child_env(), "HL_T_TOKEN": TOKENS["auditor"]}
    return subprocess.run([str(paths.find_binary("hookline")), "verify", "--requests", str(ledger),
                           "--auditor", svc.url, "--auditor-token-env", "HL_T_TOKEN",
                           "--settle-timeout-ms", "2000", "--pg", stack.pg_dsn, "--pg-schema",
                           schema.name], capture_output=True, text=True, timeout=300, env=env)


def test_cli_verify_and_page_report_the_tampered_row(loaded, pg_schema, stack, tmp_path):
    svc, chain = loaded
    rid = row_id(pg_schema, chain, 7)
    (req,) = pg_schema.query("SELECT request_id FROM lineage WHERE id = %s", (rid,))[0]
    ok = run_cli_verify(svc, stack, pg_schema, tmp_path, req)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "chain verification     ok" in ok.stdout
    page = get(svc, "/").text
    assert 'id="chain-status" data-chain-ok="true" class="ok"' in page

    behind_its_back(pg_schema, f"UPDATE lineage SET latency_us = 1 WHERE id = {rid}")
    bad = run_cli_verify(svc, stack, pg_schema, tmp_path, req)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "chain verification     FAILED" in bad.stdout
    assert f"chain {chain}: first bad row id {rid} seq 7: column_mismatch" in bad.stdout
    page = get(svc, "/").text
    assert 'id="chain-status" data-chain-ok="false" class="bad"' in page
    assert f"chain {chain}: first bad row id {rid}, seq 7: column_mismatch" in page


def evidence_folder(svc, tmp_path):
    """An evidence folder sealed like `hookline replay --evidence` does, signed by the auditor."""
    ev = tmp_path / "ev"
    ev.mkdir(parents=True, exist_ok=True)
    (ev / "results.json").write_text('{"sent": 1}\n')
    (ev / "report.txt").write_text("gate: PASS\n")
    reseal(ev)
    digest = hashlib.sha256((ev / "SHA256SUMS").read_bytes()).hexdigest()
    r = post(svc, "/v1/evidence", json={"manifest_sha256": digest})
    assert r.status_code == 200, r.text
    (ev / "SHA256SUMS.sig").write_bytes(r.content)
    return ev, r.json()


def reseal(ev):
    lines = [f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.name}\n"
             for f in sorted(ev.iterdir()) if f.name not in ("SHA256SUMS", "SHA256SUMS.sig")]
    (ev / "SHA256SUMS").write_text("".join(lines))


def evidence_verify(ev, *extra):
    return subprocess.run([str(paths.find_binary("hookline")), "evidence", "verify", str(ev),
                           *extra], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **sanitizers.child_env()})


def test_evidence_manifest_signed_with_the_checkpoint_key(loaded, pg_schema, tmp_path):
    svc, chain = loaded
    ev, sig = evidence_folder(svc, tmp_path)
    # End-of-run checkpoints: every chain's head signed now, inside the signature.
    heads = dict(pg_schema.query("SELECT chain, max(seq) FROM lineage GROUP BY chain"))
    assert {c["chain"]: c["seq"] for c in sig["checkpoints"]} == heads
    key = get(svc, "/v1/checkpoints").json()["public_key"]
    assert sig["public_key"] == key
    ok = evidence_verify(ev, "--public-key", key)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "signed: key" in ok.stdout and "intact" in ok.stdout
    # The end-of-run checkpoint still holds against the live history.
    cp = [c for c in sig["checkpoints"] if c["chain"] == chain][0]
    assert post(svc, "/v1/verify", json=cp).json()["ok"] is True

    # A file edited and the manifest recomputed: the signature was made for another manifest.
    (ev / "results.json").write_text('{"sent": 2}\n')
    reseal(ev)
    bad = evidence_verify(ev)
    assert bad.returncode == 1 and "signed for another SHA256SUMS" in bad.stdout, bad.stdout

    # A checkpoint inside moved: neither it nor the signature verifies.
    ev, sig = evidence_folder(svc, tmp_path / "2")
    doc = json.loads((ev / "SHA256SUMS.sig").read_text())
    doc["checkpoints"][0]["seq"] -= 1
    (ev / "SHA256SUMS.sig").write_text(json.dumps(doc))
    bad = evidence_verify(ev)
    assert bad.returncode == 1
    assert "is not signed by a key" in bad.stdout and "signature: does not verify" in bad.stdout

    # Another key than the pinned one; no signature at all, held to a key.
    ev, _ = evidence_folder(svc, tmp_path / "3")
    bad = evidence_verify(ev, "--public-key", "ab" * 32)
    assert bad.returncode == 1 and "not the expected" in bad.stdout
    (ev / "SHA256SUMS.sig").unlink()
    bad = evidence_verify(ev, "--public-key", key)
    assert bad.returncode == 1 and "unsigned" in bad.stdout
    loose = evidence_verify(ev)  # without a key: whole, and said to be unsigned
    assert loose.returncode == 0 and "unsigned" in loose.stdout


@pytest.mark.parametrize("body", ['{}', '{"manifest_sha256": "xyz"}', 'not json',
                                  '{"manifest_sha256": "' + "a" * 64 + '", "more": 1}'])
def test_evidence_signing_refuses_bad_bodies(loaded, body):
    svc, _ = loaded
    r = post(svc, "/v1/evidence", data=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_body"


def test_tail_deleted_before_any_checkpoint_is_named_by_the_running_auditor(loaded, pg_schema):
    svc, chain = loaded
    (head,) = pg_schema.query("SELECT max(seq) FROM lineage WHERE chain = %s", (chain,))[0]
    assert not pg_schema.query("SELECT 1 FROM lineage_checkpoints")
    behind_its_back(pg_schema, f"DELETE FROM lineage WHERE chain = {chain} AND seq >= {head - 1}")
    c = verify(svc, chain)
    assert c["ok"] is False and c["first_bad"]["reason"] == "checkpoint_beyond_head"
    assert c["first_bad"]["seq"] == head - 1 and c["first_bad"]["checkpoint_seq"] == head


def test_row_hashed_onto_the_head_is_named_by_the_running_auditor(loaded, pg_schema, topics):
    svc, chain = loaded
    (head, lo, prev) = pg_schema.query("SELECT seq, lineage_offset, hash FROM lineage"
                                       " WHERE chain = %s ORDER BY seq DESC LIMIT 1", (chain,))[0]
    rec = ingress_record(uuid7(), offset=999)
    record = json.dumps(rec)
    row = [chain, head + 1, lo + 100000, rec["request_id"], "ingress", rec["ts_us"], record]
    h = chain_hash(prev, row)
    conn = pg_schema.connect(autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO lineage (chain, seq, lineage_offset, request_id, stage, ts_us,"
                        " ts, source, message_id, event_type, status, kafka_partition,"
                        " kafka_offset, latency_us, record, prev_hash, hash) VALUES (%s, %s, %s,"
                        " %s, 'ingress', %s, to_timestamp(%s / 1e6), %s, %s, %s, 202, 0, 999,"
                        " %s, %s, %s, %s) RETURNING id",
                        (chain, head + 1, lo + 100000, rec["request_id"], rec["ts_us"], rec["ts_us"],
                         rec["source"], rec["message_id"], rec["event_type"], rec["latency_us"],
                         record, bytes(prev), h))
            forged = cur.fetchone()[0]
    finally:
        conn.close()
    assert verify_sql_clean(pg_schema, chain)
    c = verify(svc, chain)
    assert c["ok"] is False
    assert c["first_bad"] == {"id": forged, "seq": head + 1, "expected_seq": head + 1,
                              "reason": "unwritten_row"}
    # New lineage arrives: the auditor's batch meets the forged row, reloads the head, goes on
    # on top of it, and still names it.
    n = lineage_count(pg_schema)
    p = LineageProducer(topics["lineage"])
    for i in range(30):
        rec = ingress_record(uuid7(), offset=2000 + i)
        p.send(rec["request_id"], rec)
    p.flush()
    wait_for(lambda: lineage_count(pg_schema) == n + 30, 90, "30 more rows")
    wait_for(lambda: "ALARM chain %d holds rows this auditor did not write" % chain
             in svc.log_text(), 10, "the alarm")
    c = verify(svc, chain)
    assert c["ok"] is False and c["first_bad"]["id"] == forged
    assert c["first_bad"]["reason"] == "unwritten_row"
