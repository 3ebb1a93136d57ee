"""The auditor against real Kafka and Postgres: lineage fed straight into hookline.lineage."""
import contextlib
import json
import threading
import time

import pytest
import requests

from auditor_support import (LineageProducer, auditor_config, get, hdr, ingress_record,
                             lineage_count, now_us, persisted_record, post, uuid7, wait_for)


@pytest.fixture
def auditor(stack, topics, pg_schema, service, free_port, tmp_path):
    def start(**over):
        cfg = auditor_config(stack, topics, pg_schema, free_port(), tmp_path / "cp.pem", **over)
        return service("auditor", cfg)
    return start


def feed(topic, records):
    p = LineageProducer(topic)
    for r in records:
        p.send(r["request_id"] if isinstance(r, dict) else "bad", r)
    p.flush()


def test_lineage_by_request_and_message(auditor, topics, pg_schema):
    svc = auditor()
    ok = ingress_record(uuid7(), message_id="m-ok", offset=7)
    rej = ingress_record(uuid7(), status=401, error_code="bad_signature")
    feed(topics["lineage"], [ok, rej, persisted_record(ok)])
    wait_for(lambda: lineage_count(pg_schema) == 3, 30, "3 lineage rows")

    r = get(svc, f"/v1/requests/{ok['request_id']}")
    assert r.status_code == 200, r.text
    stages = [x["stage"] for x in r.json()["lineage"]]
    assert stages == ["ingress", "persisted"]
    assert r.json()["lineage"][0]["record"]["offset"] == 7

    r = get(svc, f"/v1/requests/{rej['request_id']}")
    assert r.status_code == 200
    (row,) = r.json()["lineage"]
    assert row["status"] == 401 and row["error_code"] == "bad_signature"

    r = get(svc, "/v1/messages/m-ok")
    assert r.status_code == 200, r.text
    assert {x["stage"] for x in r.json()["lineage"]} == {"ingress", "persisted"}
    assert get(svc, f"/v1/requests/{uuid7()}").status_code == 404

    r = get(svc, "/v1/requests", params={"status": 401})
    assert [x["request_id"] for x in r.json()["requests"]] == [rej["request_id"]]


def test_invalid_records_skipped_and_counted(auditor, topics, pg_schema):
    svc = auditor()
    good = ingress_record(uuid7())
    bad = [b"not json", json.dumps({"v": 1, "stage": "ingress"}),
           json.dumps(dict(good, status="202")), json.dumps(dict(good, extra=1)),
           json.dumps(dict(good, source="x" * 65)), json.dumps(dict(good, v=2)),
           # Beyond the integer columns they go to: refused, not a batch that fails for ever.
           json.dumps(dict(good, status=2**31)), json.dumps(dict(good, partition=-2**31 - 1))]
    p = LineageProducer(topics["lineage"])
    for b in bad:
        p.send(good["request_id"], b)
    p.send(good["request_id"], good)
    p.flush()
    wait_for(lambda: lineage_count(pg_schema) == 1, 30, "the one valid row")
    m = get(svc, "/metrics", role="metrics").text
    line = [x for x in m.splitlines() if x.startswith("hookline_auditor_lineage_invalid_total")]
    assert line and line[0].split()[-1] == str(len(bad)), line
    assert svc.running()


def test_restart_is_idempotent_and_chains_verify(auditor, topics, pg_schema):
    group = "auditor-restart"
    svc = auditor(group_id=group)
    recs = [ingress_record(uuid7(), offset=i) for i in range(300)]
    feed(topics["lineage"], recs)
    wait_for(lambda: lineage_count(pg_schema) == 300, 60, "300 rows")
    assert svc.stop() == 0
    svc = auditor(group_id=group)
    more = [ingress_record(uuid7()) for _ in range(30)]
    feed(topics["lineage"], more)
    wait_for(lambda: lineage_count(pg_schema) == 330, 60, "330 rows")
    time.sleep(1)
    assert lineage_count(pg_schema) == 330
    v = get(svc, "/v1/verify").json()
    assert v["ok"] is True
    assert sum(c["rows"] for c in v["chains"]) == 330
    # The rollups were written with the rows: a restart neither lost nor repeated any.
    assert get(svc, "/v1/latency?stage=ack").json()["stages"]["ack"]["count"] == 330
    for c in v["chains"]:
        assert c["head_seq"] == c["rows"]


def test_database_refuses_changes(auditor, topics, pg_schema):
    auditor()
    rec = ingress_record(uuid7())
    feed(topics["lineage"], [rec])
    wait_for(lambda: lineage_count(pg_schema) == 1, 30, "one row")
    import psycopg2
    for sql in ("UPDATE lineage SET stage = 'persisted'", "DELETE FROM lineage",
                "TRUNCATE lineage"):
        with pytest.raises(psycopg2.Error) as e:
            pg_schema.query(sql)
        assert "append-only" in str(e.value)
    assert lineage_count(pg_schema) == 1


def test_sql_and_c_hash_agree(auditor, topics, pg_schema):
    auditor()
    recs = [ingress_record(uuid7(), message_id="ünïcødé \"q\" \\ \n") for _ in range(20)]
    # Records are stored byte for byte, whitespace between tokens included: tabs, newlines
    # and carriage returns, which the row format must escape, next to escaped backslashes.
    raw = [json.dumps(ingress_record(uuid7(), message_id=f"tab\there \\ {i}"), indent="\t")
           .replace("\n", "\r\n") for i in range(5)]
    feed(topics["lineage"], recs + raw)
    wait_for(lambda: lineage_count(pg_schema) == 25, 30, "25 rows")
    rows = pg_schema.query("SELECT count(*) FILTER (WHERE computed = hash), count(*) "
                           "FROM lineage_hash_check")
    assert rows[0][0] == rows[0][1] == 25
    stored = {r[0]: r[1:] for r in
              pg_schema.query("SELECT request_id, record, message_id FROM lineage")}
    for text in raw:
        rec = json.loads(text)
        assert stored[rec["request_id"]] == (text, rec["message_id"])
    for rec in recs:
        assert stored[rec["request_id"]] == (json.dumps(rec), rec["message_id"])


def test_columns_hold_the_record(auditor, topics, pg_schema):
    """Each column the auditor fills from a record holds the record's value, at the edges of its
    type (NULL where the record has no such field), and the chain's own columns are right."""
    auditor()
    big = 2**63 - 1
    accepted = ingress_record(uuid7(), source="s\\t", message_id="m\tå", event_type="e\n",
                              partition=2**31 - 1, offset=big)
    accepted["latency_us"] = big  # ts_us stays what ingress_record made it
    accepted["status"] = 2**31 - 1  # not an HTTP status, but what an int4 column holds
    rejected = ingress_record(uuid7(), status=-2**31, error_code="bad_signature")
    persisted = persisted_record(accepted)
    feed(topics["lineage"], [accepted, rejected, persisted])
    wait_for(lambda: lineage_count(pg_schema) == 3, 30, "3 rows")
    rows = pg_schema.query(
        "SELECT request_id, stage, ts_us, (extract(epoch FROM ts) * 1000000)::int8, source,"
        " message_id, event_type, status, error_code, kafka_partition, kafka_offset, latency_us,"
        " record, length(prev_hash), length(hash), chain, seq, lineage_offset FROM lineage")
    got = {(r[0], r[1]): r[2:] for r in rows}
    for rec in (accepted, rejected, persisted):
        ts, ts_col, source, mid, etype, status, err, part, off, lat, text, lp, lh = \
            got[(rec["request_id"], rec["stage"])][:13]
        assert ts == ts_col == rec["ts_us"]
        assert (source, mid, etype) == (rec.get("source"), rec.get("message_id"),
                                        rec.get("event_type"))
        assert (status, err) == (rec.get("status"), rec.get("error_code"))
        assert (part, off, lat) == (rec.get("partition"), rec.get("offset"),
                                    rec.get("latency_us"))
        assert text == json.dumps(rec) and lp == lh == 32
    chains = pg_schema.query("SELECT chain, array_agg(seq ORDER BY seq),"
                             " array_agg(lineage_offset ORDER BY seq) FROM lineage GROUP BY chain")
    for chain, seqs, offsets in chains:
        assert seqs == list(range(1, len(seqs) + 1)) and offsets == sorted(offsets)
    rows = pg_schema.query("SELECT count(*) FILTER (WHERE computed = hash) FROM lineage_hash_check")
    assert rows[0][0] == 3


def _lineage_waiters(pg_schema, own_pid):
    """Backends other than own_pid waiting for a lock on this schema's lineage table."""
    return [r[0] for r in pg_schema.query(
        "SELECT pid FROM pg_locks WHERE relation = %s::regclass AND NOT granted AND pid <> %s",
        (f'"{pg_schema.name}".lineage', own_pid))]


def _quietly(call):
    try:
        call()
    except requests.RequestException:
        pass  # the auditor may answer 503, time out or close: only the server side is checked


def test_stop_cancels_the_queries_the_api_still_runs(auditor, topics, pg_schema):
    # A backend whose client is gone keeps running its statement, and holding its locks, until
    # it next writes to that client. The auditor's API query held up here must end when the
    # auditor stops, not when the lock it waits for is released.
    svc = auditor(gap_scan_interval_s=3600)  # housekeeping reads lineage once, at start
    feed(topics["lineage"], [ingress_record(uuid7())])
    wait_for(lambda: lineage_count(pg_schema) == 1, 30, "the consumer to store a first row")
    holder = pg_schema.connect(autocommit=False)
    with holder.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        own = cur.fetchone()[0]
        cur.execute("LOCK TABLE lineage IN ACCESS EXCLUSIVE MODE")
    try:
        slow = threading.Thread(target=lambda: _quietly(lambda: requests.get(
            svc.url + "/v1/gaps", headers=hdr("auditor"), timeout=3)), daemon=True)
        slow.start()
        waiting = wait_for(lambda: _lineage_waiters(pg_schema, own), 30,
                           "the API's gaps query to wait for the lock")
        rc = svc.stop()
        # The lock is still held: only a cancel from the auditor can end those statements.
        wait_for(lambda: not set(waiting) & set(_lineage_waiters(pg_schema, own)), 10,
                 f"backends {waiting} to stop waiting once the auditor was gone")
        assert rc == 0 and not svc.killed, f"the auditor did not stop on SIGTERM ({rc})"
        slow.join(10)
    finally:
        holder.rollback()


def hist_bucket(v):
    """libs/hist's bucket index (HL_HIST_SUB_BITS 8)."""
    if v < 256:
        return max(v, 0)
    v = min(v, 1 << 36)
    k = v.bit_length() - 1
    return 256 + (k - 8) * 128 + (v >> (k - 7)) - 128


def test_latency_counts_fold_exactly_under_two_writers(auditor, topics, pg_schema):
    """Each batch adds its latency counts as latency_rollup_batches rows; folds move them into
    latency_rollups. Two auditors of one group (whichever partitions each is given) fold the
    one table every 100 ms while batches keep coming: every sample must end up counted once,
    in its own bucket."""
    group = "auditor-fold-" + uuid7()[-8:]
    svcs = [auditor(group_id=group, rollup_fold_ms=100) for _ in range(2)]
    recs = [ingress_record(uuid7(), message_id=f"m{i}", offset=i, latency_us=1000 + 37 * i)
            for i in range(600)]
    for i in range(0, 600, 50):  # many batches, folds in between
        feed(topics["lineage"], recs[i:i + 50])
        feed(topics["lineage"], [persisted_record(r) for r in recs[i:i + 50]])
        time.sleep(0.05)
    wait_for(lambda: lineage_count(pg_schema) == 1200, 60, "1,200 lineage rows")
    wait_for(lambda: pg_schema.query("SELECT count(*) FROM latency_rollup_batches") == [(0,)],
             30, "every batch's counts folded")
    folded = dict(pg_schema.query("SELECT stage, sum(count)::int FROM latency_rollups"
                                  " GROUP BY stage"))
    assert folded == {"ack": 600, "queue": 600, "persist": 600, "e2e": 600}
    ack = dict(pg_schema.query("SELECT bucket, sum(count)::int FROM latency_rollups"
                               " WHERE stage = 'ack' GROUP BY bucket"))
    expected = {}
    for r in recs:
        b = hist_bucket(r["latency_us"])
        expected[b] = expected.get(b, 0) + 1
    assert ack == expected
    assert get(svcs[0], "/v1/latency?stage=ack").json()["stages"]["ack"]["count"] == 600
    assert all(s.running() for s in svcs)


def test_latency_counts_read_before_the_fold(auditor, topics, pg_schema):
    """Counts not yet folded are read too (latency_counts is both tables)."""
    svc = auditor(rollup_fold_ms=600000)
    recs = [ingress_record(uuid7(), offset=i) for i in range(40)]
    feed(topics["lineage"], recs)
    wait_for(lambda: lineage_count(pg_schema) == 40, 30, "40 rows")
    (batch_rows,) = pg_schema.query("SELECT count(*) FROM latency_rollup_batches")[0]
    assert batch_rows > 0
    assert get(svc, "/v1/latency?stage=ack").json()["stages"]["ack"]["count"] == 40


@contextlib.contextmanager
def row_held(pg_schema, table, source):
    """Holds the one row of `table` with this source locked (FOR UPDATE), as another
    transaction would, until the block ends."""
    hold = pg_schema.connect(autocommit=False)
    try:
        with hold.cursor() as cur:
            cur.execute(f"SELECT 1 FROM {table} WHERE source = %s FOR UPDATE", (source,))
            assert cur.fetchall() == [(1,)]
        yield
    finally:
        hold.rollback()
        hold.close()


def test_a_held_batch_row_stalls_neither_the_fold_nor_the_lineage(auditor, topics, pg_schema):
    """A fold skips batch rows another transaction holds (another auditor's fold) instead of
    waiting for them or failing: lineage goes on being stored and its counts folded around the
    held row, which is folded once let go."""
    pg_schema.query("INSERT INTO latency_rollup_batches (minute, stage, source, outcome, buckets,"
                    " counts) VALUES (now(), 'ack', 'held', 'accepted', '{5}', '{7}')")
    with row_held(pg_schema, "latency_rollup_batches", "held"):
        svc = auditor(rollup_fold_ms=100)
        recs = [ingress_record(uuid7(), offset=i) for i in range(60)]
        for i in range(0, 60, 20):
            feed(topics["lineage"], recs[i:i + 20])
            time.sleep(0.3)
        wait_for(lambda: lineage_count(pg_schema) == 60, 30, "60 rows")
        wait_for(lambda: pg_schema.query(
            "SELECT source, count(*) FROM latency_rollup_batches GROUP BY source") == [("held", 1)],
            30, "every batch row folded but the held one")
        assert pg_schema.query("SELECT sum(count)::int FROM latency_rollups WHERE stage = 'ack'"
                               ) == [(60,)]
    feed(topics["lineage"], [ingress_record(uuid7(), offset=60)])  # a batch: the next fold
    wait_for(lambda: pg_schema.query("SELECT count(*) FROM latency_rollup_batches") == [(0,)],
             30, "the held row folded once let go")
    assert pg_schema.query("SELECT source, sum(count)::int FROM latency_rollups WHERE stage = 'ack'"
                           " GROUP BY source ORDER BY source") == [("held", 7), ("stripe", 61)]
    assert "folding the latency counts failed" not in svc.log_text()


def fold_errors(svc):
    m = get(svc, "/metrics", role="metrics").text
    (line,) = [x for x in m.splitlines()
               if x.startswith("hookline_auditor_rollup_fold_errors_total")]
    return float(line.split()[-1])


def test_a_backlog_is_folded_in_rounds_and_exactly(auditor, topics, pg_schema):
    """20,000 batch rows waiting (an outage of the folds, say) take several rounds of 2,000 and
    more than one fold, each within its time budget; every count lands once."""
    pg_schema.query("INSERT INTO latency_rollup_batches (minute, stage, source, outcome, buckets,"
                    " counts) SELECT date_trunc('minute', now()) - (i % 7) * interval '1 minute',"
                    " 'ack', 'backlog', 'accepted', ARRAY[i % 50, 100 + i % 3], ARRAY[1, 2]"
                    " FROM generate_series(1, 20000) AS i")
    svc = auditor(rollup_fold_ms=100, log_level="debug")
    wait_for(lambda: pg_schema.query("SELECT count(*) FROM latency_rollup_batches") == [(0,)],
             120, "the backlog folded")
    folds = [x for x in svc.log_text().splitlines() if "rollup rows in" in x]
    assert len(folds) >= 2 and any("(more to fold)" in x for x in folds), folds
    got = dict(pg_schema.query("SELECT bucket, sum(count)::int FROM latency_rollups"
                               " WHERE source = 'backlog' GROUP BY bucket"))
    expected = {}
    for i in range(1, 20001):
        expected[i % 50] = expected.get(i % 50, 0) + 1
        expected[100 + i % 3] = expected.get(100 + i % 3, 0) + 2
    assert got == expected
    assert pg_schema.query("SELECT count(*) FROM latency_rollups WHERE source = 'backlog'") == [
        (len(expected) * 7,)]
    assert fold_errors(svc) == 0


def test_a_failed_fold_moves_nothing_and_lineage_goes_on(auditor, topics, pg_schema):
    """A fold that cannot lock a rollup row within a second fails whole: its rows stay where
    latency_counts reads them, lineage is still stored meanwhile, the failure is counted, and
    the fold succeeds once the row is free."""
    minute = "timestamptz '2026-01-01 00:00Z'"  # one minute for both rows, whenever run
    pg_schema.query(f"INSERT INTO latency_rollups (minute, stage, source, outcome, bucket, count)"
                    f" VALUES ({minute}, 'ack', 'locked', 'accepted', 3, 1)")
    pg_schema.query(f"INSERT INTO latency_rollup_batches (minute, stage, source, outcome,"
                    f" buckets, counts) VALUES ({minute}, 'ack', 'locked', 'accepted', '{{3}}',"
                    f" '{{4}}')")
    with row_held(pg_schema, "latency_rollups", "locked"):
        svc = auditor(rollup_fold_ms=100)
        wait_for(lambda: fold_errors(svc) >= 1, 30, "a fold that failed on the lock")
        recs = [ingress_record(uuid7(), offset=i) for i in range(30)]
        feed(topics["lineage"], recs)
        wait_for(lambda: lineage_count(pg_schema) == 30, 30, "30 rows while the fold fails")
        assert pg_schema.query("SELECT sum(count)::int FROM latency_counts"
                               " WHERE source = 'locked'") == [(5,)]
        # Not moved: still a batch row, and the rollup row as it was.
        assert pg_schema.query("SELECT count(*) FROM latency_rollup_batches"
                               " WHERE source = 'locked'") == [(1,)]
        assert pg_schema.query("SELECT count::int FROM latency_rollups"
                               " WHERE source = 'locked'") == [(1,)]
        assert "folding the latency counts failed" in svc.log_text()
    wait_for(lambda: pg_schema.query("SELECT count(*) FROM latency_rollup_batches") == [(0,)],
             30, "folded once the row is free")
    assert pg_schema.query("SELECT count::int FROM latency_rollups WHERE source = 'locked'"
                           ) == [(5,)]
    assert pg_schema.query("SELECT sum(count)::int FROM latency_rollups WHERE source = 'stripe'"
                           " AND stage = 'ack'") == [(30,)]
