"""The database owner against the auditor's signatures and its own positions: a whole chain
forged in the table, an outcome forged in another chain to hide a gap, the tail since the last
checkpoint rewritten (or extended) while the auditor was stopped, and its resume offsets moved
past records. Real Kafka, real Postgres, the owner's powers (triggers disabled, direct writes,
hashes recomputed with the documented formula)."""
import json
import time

import pytest

from auditor_support import (LineageProducer, auditor_config, behind_its_back, get,
                             ingress_record, lineage_count, now_us, persisted_record, post,
                             uuid7, wait_for)
from test_auditor_tamper import chain_hash, metric, rehash_from, verify, verify_sql_clean

COLUMNS = ("chain, seq, lineage_offset, request_id, stage, ts_us, ts, source, message_id,"
           " event_type, status, error_code, kafka_partition, kafka_offset, latency_us, record,"
           " prev_hash, hash")


def feed(topic, recs):
    p = LineageProducer(topic)
    for rec in recs:
        p.send(rec["request_id"], rec)
    p.flush()


def start(service, stack, topics, pg_schema, port, key, group, **over):
    return service("auditor", auditor_config(stack, topics, pg_schema, port, key, group=group,
                                             **over))


def forge_rows(schema, chain, recs, first_offset):
    """Appends recs to `chain` (a new chain when it has no rows) as the writer would: every
    column derived from the record, each hash by the formula onto the previous one. Returns
    the new rows' ids."""
    head = schema.query("SELECT seq, hash FROM lineage WHERE chain = %s ORDER BY seq DESC"
                        " LIMIT 1", (chain,))
    seq, prev = (head[0][0], bytes(head[0][1])) if head else (0, bytes(32))
    conn = schema.connect(autocommit=False)
    ids = []
    try:
        with conn.cursor() as cur:
            cur.execute("ALTER TABLE lineage DISABLE TRIGGER USER")
            for i, rec in enumerate(recs):
                seq += 1
                record = json.dumps(rec)
                lo = first_offset + i
                h = chain_hash(prev, [chain, seq, lo, rec["request_id"], rec["stage"],
                                      rec["ts_us"], record])
                cur.execute(f"INSERT INTO lineage ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s,"
                            " to_timestamp(%s / 1e6), %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                            " RETURNING id",
                            (chain, seq, lo, rec["request_id"], rec["stage"], rec["ts_us"],
                             rec["ts_us"], rec.get("source"), rec.get("message_id"),
                             rec.get("event_type"), rec.get("status"), rec.get("error_code"),
                             rec.get("partition"), rec.get("offset"), rec.get("latency_us"),
                             record, prev, h))
                ids.append(cur.fetchone()[0])
                prev = h
            cur.execute("ALTER TABLE lineage ENABLE TRIGGER USER")
        conn.commit()
    finally:
        conn.close()
    return ids


def signed_chains(svc):
    r = post(svc, "/v1/checkpoints", role="admin")
    assert r.status_code == 201, r.text
    return {c["chain"]: c for c in r.json()["checkpoints"]}


def sign_round(svc):
    """How many heads one signing round signed."""
    r = post(svc, "/v1/checkpoints", role="admin")
    assert r.status_code == 201, r.text
    return r.json()["signed_now"]


def test_forged_chain_is_never_signed(stack, topics, pg_schema, service, free_port, tmp_path):
    svc = start(service, stack, topics, pg_schema, free_port(), tmp_path / "cp.pem", None)
    feed(topics["lineage"], [ingress_record(uuid7(), offset=i) for i in range(30)])
    wait_for(lambda: lineage_count(pg_schema) == 30, 60, "30 rows")
    assert sign_round(svc) >= 1
    # Chain 7 is inside 0..255, but the lineage topic has 3 partitions: no auditor writes it.
    forged = forge_rows(pg_schema, 7, [ingress_record(uuid7(), offset=i) for i in range(5)], 0)
    assert verify_sql_clean(pg_schema, 7)
    before = metric(svc, "hookline_auditor_checkpoint_refusals_total")
    assert sign_round(svc) == 0
    assert 7 not in signed_chains(svc)
    assert not pg_schema.query("SELECT 1 FROM lineage_checkpoints WHERE chain = 7")
    assert metric(svc, "hookline_auditor_checkpoint_refusals_total") >= before + 1
    wait_for(lambda: "ALARM checkpoint refused: chain 7 is no partition" in svc.log_text(), 10,
             "the alarm")
    c = verify(svc, 7)
    assert c["ok"] is False
    assert c["first_bad"] == {"id": forged[0], "seq": 1, "expected_seq": 1,
                              "reason": "no_partition"}
    assert get(svc, "/v1/verify").json()["ok"] is False


def test_outcome_forged_in_another_chain_hides_no_gap(stack, topics, pg_schema, service,
                                                      free_port, tmp_path):
    svc = start(service, stack, topics, pg_schema, free_port(), tmp_path / "cp.pem", None)
    ing = ingress_record(uuid7(), received_us=now_us() - 10_000_000)
    feed(topics["lineage"], [ing])
    wait_for(lambda: [g["request_id"] for g in get(svc, "/v1/gaps").json()["gaps"]]
             == [ing["request_id"]], 30, "the gap open")
    wait_for(lambda: metric_gaps(svc) == (1, 0), 30, "the gap metric: one open")
    (chain,) = pg_schema.query("SELECT chain FROM lineage WHERE request_id = %s",
                               (ing["request_id"],))[0]
    other = (chain + 1) % 3
    closing = persisted_record(ing, queue_us=9_000_000)  # late: past the grace
    (lo,) = pg_schema.query("SELECT coalesce(max(lineage_offset), 0) + 1000 FROM lineage"
                            " WHERE chain = %s", (other,))[0]
    forge_rows(pg_schema, other, [closing], lo)
    assert verify_sql_clean(pg_schema, other)
    # The same record in the request's own chain would close it (the control); in another
    # chain it is no outcome of this request.
    gaps = get(svc, "/v1/gaps?state=all").json()["gaps"]
    assert [(g["request_id"], g["state"]) for g in gaps] == [(ing["request_id"], "open")]
    time.sleep(3.5)  # the gap scan runs every second: three of them
    assert metric_gaps(svc) == (1, 0)
    forge_rows(pg_schema, chain, [closing], lo + 5000)
    wait_for(lambda: get(svc, "/v1/gaps").json()["gaps"] == [], 15, "closed in its own chain")
    wait_for(lambda: metric_gaps(svc) == (0, 1), 15, "the gap metric: one closed")


def metric_gaps(svc):
    text = get(svc, "/metrics", role="metrics").text
    out = {}
    for line in text.splitlines():
        for state in ("open", "closed"):
            if line.startswith(f'hookline_auditor_gaps{{state="{state}"}} '):
                out[state] = int(float(line.split()[-1]))
    return out.get("open"), out.get("closed")


def signed_then_tail(svc, topics, pg_schema):
    """60 rows signed, then a tail of 60 more written after the last signature, and svc
    stopped. Returns the chain with the most rows, its checkpoint's seq and its head seq."""
    feed(topics["lineage"], [ingress_record(uuid7(), offset=i) for i in range(60)])
    wait_for(lambda: lineage_count(pg_schema) == 60, 60, "60 rows")
    sealed = signed_chains(svc)
    assert set(sealed) == {0, 1, 2}
    feed(topics["lineage"], [ingress_record(uuid7(), offset=100 + i) for i in range(60)])
    wait_for(lambda: lineage_count(pg_schema) == 120, 60, "120 rows")
    assert svc.stop() == 0
    chain = pg_schema.query("SELECT chain FROM lineage GROUP BY chain ORDER BY count(*) DESC"
                            " LIMIT 1")[0][0]
    (head,) = pg_schema.query("SELECT max(seq) FROM lineage WHERE chain = %s", (chain,))[0]
    cp_seq = sealed[chain]["seq"]
    assert head > cp_seq + 2
    return chain, cp_seq, head


def started_with_alarm(svc, chain, seq):
    """svc once ready, after its start named chain's rows from seq as not vouched for."""
    wait_for(lambda: "ALARM chain %d holds rows this auditor cannot vouch for, from seq %d"
             % (chain, seq) in svc.log_text(), 60, "the alarm at start")
    wait_for(lambda: get(svc, "/readyz", role=None).status_code == 200, 30, "ready")
    assert metric(svc, "hookline_auditor_foreign_rows_total") >= 1
    return svc


@pytest.mark.parametrize("how", ["edited", "appended"])
def test_tail_changed_while_stopped_is_not_adopted(stack, topics, pg_schema, service, free_port,
                                                   tmp_path, how):
    key, group = tmp_path / "cp.pem", "auditor-" + uuid7()[-8:]
    chain, cp_seq, head = signed_then_tail(start(service, stack, topics, pg_schema, free_port(),
                                                 key, group), topics, pg_schema)
    if how == "edited":
        bad_seq = cp_seq + 2

        def edit(row):
            if row[1] == bad_seq:
                return {"record": row[6].replace('"status": 202', '"status": 201'),
                        "status": 201}
            return None
        behind_its_back(pg_schema, *rehash_from(pg_schema, chain, bad_seq, edit))
    else:
        bad_seq = head + 1
        (lo,) = pg_schema.query("SELECT max(lineage_offset) FROM lineage WHERE chain = %s",
                                (chain,))[0]
        # At an offset the topic never reached (one it will reach would stop the writer on
        # the (chain, lineage_offset) key: the owner can always stop the writer).
        forge_rows(pg_schema, chain, [ingress_record(uuid7(), offset=999)], lo + 100000)
    assert verify_sql_clean(pg_schema, chain)
    (bad_id,) = pg_schema.query("SELECT id FROM lineage WHERE chain = %s AND seq = %s",
                                (chain, bad_seq))[0]

    svc = started_with_alarm(start(service, stack, topics, pg_schema, free_port(), key, group),
                             chain, bad_seq)
    c = verify(svc, chain)
    assert c["ok"] is False
    assert c["first_bad"]["id"] == bad_id and c["first_bad"]["seq"] == bad_seq
    assert c["first_bad"]["reason"] == "unwritten_row"
    # Signing: the tampered chain is refused, the others' tails matched the topic and are
    # signed at their heads.
    before = metric(svc, "hookline_auditor_checkpoint_refusals_total")
    after = signed_chains(svc)
    assert after[chain]["seq"] == cp_seq
    for other in {0, 1, 2} - {chain}:
        (h,) = pg_schema.query("SELECT max(seq) FROM lineage WHERE chain = %s", (other,))[0]
        assert after[other]["seq"] == h, (other, after[other], h)
        assert verify(svc, other)["ok"] is True
    assert metric(svc, "hookline_auditor_checkpoint_refusals_total") >= before + 1
    # New lineage still lands (on top of what the table holds) and the alarm stays.
    n = lineage_count(pg_schema)
    feed(topics["lineage"], [ingress_record(uuid7(), offset=300 + i) for i in range(30)])
    wait_for(lambda: lineage_count(pg_schema) == n + 30, 60, "30 more rows")
    assert signed_chains(svc)[chain]["seq"] == cp_seq
    assert verify(svc, chain)["first_bad"]["id"] == bad_id


def test_untouched_tail_is_taken_on_after_a_restart(stack, topics, pg_schema, service, free_port,
                                                    tmp_path):
    """The control of the test above: nothing changed, so nothing is refused."""
    key, group = tmp_path / "cp.pem", "auditor-" + uuid7()[-8:]
    svc = start(service, stack, topics, pg_schema, free_port(), key, group)
    feed(topics["lineage"], [ingress_record(uuid7(), offset=i) for i in range(30)])
    # Invalid records and a repeated outcome between rows make no row: still vouched for.
    p = LineageProducer(topics["lineage"])
    ing = ingress_record(uuid7())
    for rec in (ing, persisted_record(ing), persisted_record(ing)):
        p.send(ing["request_id"], rec)
    p.send(ing["request_id"], "not json")
    p.flush()
    wait_for(lambda: lineage_count(pg_schema) == 32, 60, "32 rows")
    signed_chains(svc)
    feed(topics["lineage"], [ingress_record(uuid7(), offset=100 + i) for i in range(30)])
    p.send(ing["request_id"], persisted_record(ing))
    p.flush()
    wait_for(lambda: lineage_count(pg_schema) == 62, 60, "62 rows")
    assert svc.stop() == 0
    svc = start(service, stack, topics, pg_schema, free_port(), key, group)
    wait_for(lambda: get(svc, "/readyz", role=None).status_code == 200, 60, "ready")
    assert "cannot vouch" not in svc.log_text()
    assert metric(svc, "hookline_auditor_foreign_rows_total") == 0
    after = signed_chains(svc)
    for chain in {0, 1, 2}:
        (h,) = pg_schema.query("SELECT coalesce(max(seq), 0) FROM lineage WHERE chain = %s",
                               (chain,))[0]
        if h:
            assert after[chain]["seq"] == h
    v = get(svc, "/v1/verify").json()
    assert v["chain_ok"] is True
    # Lineage only, no stored event: the content part names the persisted record's row.
    assert [e["reasons"] for e in v["content"]["bad_events"]] == [["row_missing"]]
    assert lineage_count(pg_schema) == 62


def test_offsets_moved_past_records_skip_nothing(stack, topics, pg_schema, service, free_port,
                                                 tmp_path):
    key, group = tmp_path / "cp.pem", "auditor-" + uuid7()[-8:]
    svc = start(service, stack, topics, pg_schema, free_port(), key, group)
    feed(topics["lineage"], [ingress_record(uuid7(), offset=i) for i in range(30)])
    wait_for(lambda: lineage_count(pg_schema) == 30, 60, "30 rows")
    assert svc.stop() == 0
    feed(topics["lineage"], [ingress_record(uuid7(), offset=100 + i) for i in range(30)])
    # The owner moves the auditor's resume positions past the new records.
    behind_its_back(pg_schema, "UPDATE consumer_offsets SET next_offset = next_offset + 1000")
    svc = start(service, stack, topics, pg_schema, free_port(), key, group)
    wait_for(lambda: lineage_count(pg_schema) == 60, 60, "the 30 new rows")
    assert get(svc, "/v1/verify").json()["ok"] is True


def small_pages(stack, topics, pg_schema, service, free_port, tmp_path, rows):
    """An auditor whose walks read pages of 10 rows, with `rows` rows stored and verified;
    returns (svc, the chain with the most rows)."""
    cfg = auditor_config(stack, topics, pg_schema, free_port(), tmp_path / "cp.pem")
    svc = service("auditor", cfg, env={"HOOKLINE_AUDITOR_VERIFY_PAGE_ROWS": "10"})
    feed(topics["lineage"], [ingress_record(uuid7(), offset=i) for i in range(rows)])
    wait_for(lambda: lineage_count(pg_schema) == rows, 60, f"{rows} rows")
    chain = pg_schema.query("SELECT chain FROM lineage GROUP BY chain ORDER BY count(*) DESC"
                            " LIMIT 1")[0][0]
    assert verify(svc, chain)["ok"] is True
    return svc, chain


def test_duplicate_seq_at_a_page_edge_is_named(stack, topics, pg_schema, service, free_port,
                                               tmp_path):
    """With the (chain, seq) key dropped, a second row at the seq that ends a page of the walk
    (pages of 10 rows here) is the next page's first row, not skipped with the first."""
    svc, chain = small_pages(stack, topics, pg_schema, service, free_port, tmp_path, 90)
    cols = ("lineage_offset, request_id, stage, ts_us, ts, source, message_id, event_type,"
            " status, error_code, kafka_partition, kafka_offset, latency_us, record, prev_hash,"
            " hash")
    conn = pg_schema.connect(autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute("ALTER TABLE lineage DISABLE TRIGGER USER")
            cur.execute("ALTER TABLE lineage DROP CONSTRAINT lineage_chain_seq")
            cur.execute("ALTER TABLE lineage DROP CONSTRAINT lineage_chain_offset")
            # The very row at seq 10 again: same offset, record and hashes.
            cur.execute(f"INSERT INTO lineage (chain, seq, {cols}) SELECT chain, seq, {cols}"
                        " FROM lineage WHERE chain = %s AND seq = 10 RETURNING id", (chain,))
            forged = cur.fetchone()[0]
            cur.execute("ALTER TABLE lineage ENABLE TRIGGER USER")
        conn.commit()
    finally:
        conn.close()
    c = verify(svc, chain)
    assert c["ok"] is False
    assert c["first_bad"] == {"id": forged, "seq": 10, "expected_seq": 11,
                              "reason": "duplicate_seq"}
    assert c["rows"] == 10


def test_seq_gap_wider_than_a_page_is_named(stack, topics, pg_schema, service, free_port,
                                            tmp_path):
    """A page of the walk asks for one page's seqs (pages of 10 rows here): rows deleted over
    more than a page's width leave such a page empty, and the walk still goes on to the row
    after them and names the gap, rather than ending there as if the chain did."""
    svc, chain = small_pages(stack, topics, pg_schema, service, free_port, tmp_path, 120)
    after = pg_schema.query("SELECT id FROM lineage WHERE chain = %s AND seq = 35",
                            (chain,))[0][0]
    behind_its_back(pg_schema, f"DELETE FROM lineage WHERE chain = {chain}"
                               " AND seq BETWEEN 12 AND 34")
    c = verify(svc, chain)
    assert c["ok"] is False
    assert c["first_bad"] == {"id": after, "seq": 35, "expected_seq": 12, "reason": "seq_gap"}
    assert c["rows"] == 11


def test_checkpoint_topic_shape_is_checked(stack, topics, make_topics, pg_schema, service,
                                           free_port, tmp_path):
    """The outside copy's promise (one partition, records never removed) is asked of Kafka, not
    assumed: a topic that breaks it is an ALARM, a metric at 0 and named by every verify."""
    svc = start(service, stack, topics, pg_schema, free_port(), tmp_path / "cp.pem", None)
    wait_for(lambda: metric(svc, "hookline_auditor_checkpoint_topic_ok") == 1, 30, "the shape checked")
    outside = get(svc, "/v1/verify").json()["checkpoints_outside"]
    assert outside["topic_shape"] == "ok" and "topic_shape_error" not in outside

    bad = make_topics({"cp": 2})["cp"]  # two partitions, the broker's default retention
    cfg = auditor_config(stack, topics, pg_schema, free_port(), tmp_path / "cp2.pem")
    cfg["checkpoint"]["topic"] = bad
    svc2 = service("auditor", cfg)
    wait_for(lambda: "ALARM checkpoint topic %s does not keep checkpoints" % bad
             in svc2.log_text(), 30, "the alarm")
    assert metric(svc2, "hookline_auditor_checkpoint_topic_ok") == 0
    assert 'hookline_auditor_checkpoint_topic_ok 0' in get(svc2, "/metrics", role="metrics").text
    outside = get(svc2, "/v1/verify").json()["checkpoints_outside"]
    assert outside["topic_shape"] == "wrong"
    assert "partitions is 2" in outside["topic_shape_error"]
    assert "retention.ms is" in outside["topic_shape_error"]


@pytest.mark.parametrize("how", ["tail", "chain"])
def test_rows_deleted_below_a_checkpoint_stay_reported(stack, topics, pg_schema, service,
                                                       free_port, tmp_path, how):
    """Rows deleted at or below a chain's newest outside checkpoint while the auditor was
    stopped (its tail, or the whole chain): the restart reads their records again and stores
    them again, byte for byte, but the deletion is an ALARM, a count and named by every verify
    for as long as the process runs."""
    key, group = tmp_path / "cp.pem", "auditor-" + uuid7()[-8:]
    svc = start(service, stack, topics, pg_schema, free_port(), key, group)
    feed(topics["lineage"], [ingress_record(uuid7(), offset=i) for i in range(60)])
    wait_for(lambda: lineage_count(pg_schema) == 60, 60, "60 rows")
    sealed = signed_chains(svc)
    assert svc.stop() == 0
    chain = pg_schema.query("SELECT chain FROM lineage GROUP BY chain ORDER BY count(*) DESC"
                            " LIMIT 1")[0][0]
    cp_seq = sealed[chain]["seq"]
    assert cp_seq > 3
    missing = 1 if how == "chain" else cp_seq - 2
    snap = "SELECT seq, lineage_offset, record, hash FROM lineage WHERE chain = %s ORDER BY seq"
    rows = pg_schema.query(snap, (chain,))
    behind_its_back(pg_schema, f"DELETE FROM lineage WHERE chain = {chain} AND seq >= {missing}")

    svc = start(service, stack, topics, pg_schema, free_port(), key, group)
    wait_for(lambda: "ALARM chain %d lost rows below its checkpoint: first missing seq %d"
             " (checkpoint seq %d)" % (chain, missing, cp_seq) in svc.log_text(), 60, "the alarm")
    wait_for(lambda: lineage_count(pg_schema) == 60, 60, "the 60 rows stored again")
    assert pg_schema.query(snap, (chain,)) == rows  # the same rows, the same hashes
    assert metric(svc, "hookline_auditor_history_shorter_than_checkpoint_total") == 1
    assert metric(svc, "hookline_auditor_foreign_rows_total") == 0
    c = verify(svc, chain)
    assert c["ok"] is False
    assert c["first_bad"] == {"id": 0, "seq": missing, "expected_seq": missing,
                              "reason": "rows_deleted_below_checkpoint"}
    for other in {0, 1, 2} - {chain}:
        assert verify(svc, other)["ok"] is True
    assert get(svc, "/v1/verify").json()["ok"] is False
    # New lineage still lands and the report stays.
    feed(topics["lineage"], [ingress_record(uuid7(), offset=100 + i) for i in range(30)])
    wait_for(lambda: lineage_count(pg_schema) == 90, 60, "30 more rows")
    assert verify(svc, chain)["first_bad"]["reason"] == "rows_deleted_below_checkpoint"


def copy_row(schema, chain, seq, /, **cols):
    """Inserts a copy of the row at (chain, seq) with `cols` changed, as the owner can with the
    constraints dropped. Returns its id."""
    names = ("chain, seq, lineage_offset, request_id, stage, ts_us, ts, source, message_id,"
             " event_type, status, error_code, kafka_partition, kafka_offset, latency_us,"
             " record, prev_hash, hash").split(", ")
    sel = ", ".join(f"%({n})s" if n in cols else n for n in names)
    conn = schema.connect(autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute("ALTER TABLE lineage DISABLE TRIGGER USER")
            for col in ("chain", "seq", "ts_us"):
                cur.execute(f"ALTER TABLE lineage ALTER {col} DROP NOT NULL")
            cur.execute(f"INSERT INTO lineage ({', '.join(names)}) SELECT {sel} FROM lineage"
                        " WHERE chain = %(c)s AND seq = %(s)s RETURNING id",
                        dict(cols, c=chain, s=seq))
            rid = cur.fetchone()[0]
            cur.execute("ALTER TABLE lineage ENABLE TRIGGER USER")
        conn.commit()
    finally:
        conn.close()
    return rid


def test_rows_with_null_seq_or_chain_are_named(stack, topics, pg_schema, service, free_port,
                                               tmp_path):
    """NULL escapes every comparison: a row whose seq or chain is NULL (NOT NULL dropped) is
    named by verify as a stray row, and the next start still loads the chain's head."""
    key, group = tmp_path / "cp.pem", "auditor-" + uuid7()[-8:]
    svc = start(service, stack, topics, pg_schema, free_port(), key, group)
    feed(topics["lineage"], [ingress_record(uuid7(), offset=i) for i in range(30)])
    wait_for(lambda: lineage_count(pg_schema) == 30, 60, "30 rows")
    chain = pg_schema.query("SELECT chain FROM lineage GROUP BY chain ORDER BY count(*) DESC"
                            " LIMIT 1")[0][0]
    assert get(svc, "/v1/verify").json()["ok"] is True
    no_seq = copy_row(pg_schema, chain, 2, seq=None, lineage_offset=900001)
    c = verify(svc, chain)
    assert c["ok"] is False
    assert c["first_bad"]["id"] == no_seq and c["first_bad"]["reason"] == "outside_chain"
    assert get(svc, "/v1/verify").json()["ok"] is False
    assert svc.stop() == 0
    svc = start(service, stack, topics, pg_schema, free_port(), key, group)
    wait_for(lambda: get(svc, "/readyz", role=None).status_code == 200, 60, "ready")
    assert "loading chain" not in svc.log_text()
    feed(topics["lineage"], [ingress_record(uuid7(), offset=100 + i) for i in range(30)])
    wait_for(lambda: lineage_count(pg_schema) == 61, 60, "30 more rows")
    assert verify(svc, chain)["first_bad"]["id"] == no_seq

    behind_its_back(pg_schema, f"DELETE FROM lineage WHERE id = {no_seq}")
    assert get(svc, "/v1/verify").json()["ok"] is True
    no_chain = copy_row(pg_schema, chain, 3, chain=None, lineage_offset=900002)
    r = get(svc, "/v1/verify").json()
    assert r["ok"] is False
    assert r["stray_row"] == {"id": no_chain, "reason": "no_chain"}
    assert all(c["ok"] for c in r["chains"])


@pytest.mark.parametrize("how", ["ts_infinity", "ts_us_null"])
def test_unreadable_row_is_named(stack, topics, pg_schema, service, free_port, tmp_path, how):
    """A column the walk cannot read (ts 'infinity', ts_us NULL) names its row, not a 503."""
    svc = start(service, stack, topics, pg_schema, free_port(), tmp_path / "cp.pem", None)
    feed(topics["lineage"], [ingress_record(uuid7(), offset=i) for i in range(30)])
    wait_for(lambda: lineage_count(pg_schema) == 30, 60, "30 rows")
    chain = pg_schema.query("SELECT chain FROM lineage GROUP BY chain ORDER BY count(*) DESC"
                            " LIMIT 1")[0][0]
    (rid,) = pg_schema.query("SELECT id FROM lineage WHERE chain = %s AND seq = 3", (chain,))[0]
    if how == "ts_infinity":
        behind_its_back(pg_schema, f"UPDATE lineage SET ts = 'infinity' WHERE id = {rid}")
        want = {"id": rid, "seq": 3, "expected_seq": 3, "reason": "column_mismatch",
                "column": "ts"}
    else:
        behind_its_back(pg_schema, "ALTER TABLE lineage ALTER ts_us DROP NOT NULL",
                        f"UPDATE lineage SET ts_us = NULL WHERE id = {rid}")
        want = {"id": rid, "seq": 3, "expected_seq": 3, "reason": "unreadable_row"}
    c = verify(svc, chain)
    assert c["ok"] is False and c["first_bad"] == want
    r = get(svc, "/v1/verify")
    assert r.status_code == 200 and r.json()["ok"] is False
