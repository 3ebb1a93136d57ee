"""hookline-persister against the real local Kafka and Postgres: exactly once in the table, per
message order, offsets, lineage, dead letters, metrics, configuration errors, SIGTERM."""
import collections
import json
import random

import pytest

from persister_support import (EventProducer, count_rows, end_offsets, event_headers,
                               kafka_committed, lineage, metric, persister_config, pg_offsets,
                               uuid7, wait_for, wait_offsets_at_end)

EVENT_TYPES = ["created", "updated", "completed"]


def test_unique_events_stored_once_in_message_order(stack, topics, pg_schema, service,
                                                     free_port, kafka_consume):
    """Several events per message plus redeliveries: every unique event once, the first
    delivery wins, per-message order kept, offsets committed in Postgres and Kafka."""
    rng = random.Random(7)
    prod = EventProducer(topics["events"])
    sent = []  # (message_id, event_type, request_id) in send order
    first = {}
    for i in range(300):
        mid = f"msg-{i:04d}"
        for et in EVENT_TYPES:
            rid = prod.send(mid, et, {"id": mid, "type": et, "seq": EVENT_TYPES.index(et)})
            sent.append((mid, et, rid))
            first.setdefault((mid, et), rid)
            if rng.random() < 0.15:  # a provider retry of the same event
                sent.append((mid, et, prod.send(mid, et, {"id": mid, "type": et, "retry": 1})))
    prod.flush()
    unique = len(first)
    dups = len(sent) - unique
    assert dups > 50

    group = f"g-{topics['events']}"
    svc = service("persister", persister_config(stack, topics, pg_schema, free_port(), group,
                                                batch_max=64, batch_linger_ms=10))
    wait_offsets_at_end(pg_schema, group, topics["events"])
    rows = pg_schema.query("SELECT message_id, event_type, request_id::text, kafka_partition,"
                           " kafka_offset, persisted_at, payload FROM webhook_events")
    assert len(rows) == unique
    assert {(m, e) for m, e, *_ in rows} == set(first)
    for m, e, rid, part, off, _, payload in rows:
        assert rid == first[(m, e)], "the first delivery of an event is the one stored"
        assert (part, off) == prod.delivered[rid]
        assert "retry" not in payload
    by_msg = collections.defaultdict(list)
    for m, e, rid, part, off, at, _ in rows:
        by_msg[m].append((off, at, e))
    for m, evs in by_msg.items():
        evs.sort()
        assert [e for _, _, e in evs] == EVENT_TYPES, f"{m} stored out of order: {evs}"
        ats = [at for _, at, _ in evs]
        assert ats == sorted(ats), f"{m}: a later event committed before an earlier one"

    # Offsets: Postgres holds the end of every partition; Kafka follows for lag monitoring.
    ends = {p: o for p, o in end_offsets(topics["events"]).items() if o > 0}
    assert pg_offsets(pg_schema, group, topics["events"]) == ends
    wait_for(lambda: kafka_committed(topics["events"], group) == {**{p: -1001 for p in range(6)},
                                                                  **ends},
             20, "Kafka committed offsets to follow Postgres")

    # Lineage: one persisted record per consumed record, duplicates flagged without a row id.
    lin = lineage(kafka_consume, topics["lineage"], len(sent) + 1, timeout=20)
    assert len(lin) == len(sent)
    ids = {rid: (m, e) for m, e, rid in sent}
    row_ids = dict(pg_schema.query("SELECT request_id::text, id FROM webhook_events"))
    ndup = 0
    for key, rec in lin:
        assert rec["v"] == 1 and rec["stage"] == "persisted" and key == rec["request_id"]
        assert (rec["message_id"], rec["event_type"]) == ids[rec["request_id"]]
        assert (rec["partition"], rec["offset"]) == prod.delivered[rec["request_id"]]
        assert rec["consumed_us"] <= rec["committed_us"] <= rec["ts_us"]
        if rec["duplicate"]:
            ndup += 1
            assert rec["row_id"] is None
        else:
            assert rec["row_id"] == row_ids[rec["request_id"]]
    assert ndup == dups

    assert metric(svc, "hookline_persister_rows_total") == unique
    assert metric(svc, "hookline_persister_duplicates_total") == dups
    assert metric(svc, "hookline_persister_dead_letters_total") == 0
    assert metric(svc, "hookline_persister_consumer_lag") == 0
    status, _, _ = svc.get("/readyz")
    assert status == 200
    assert svc.stop() == 0, svc.log_tail()
    assert '"left the group"' in svc.log_text()


def test_poison_records_dead_lettered_good_ones_stored(stack, topics, pg_schema, service,
                                                       free_port, kafka_consume):
    """Poison among good records in the same batches: the good ones are stored, each poison one
    is in the DLQ with its original key, value and headers plus its error."""
    prod = EventProducer(topics["events"])
    good = []
    for i in range(200):
        mid = f"good-{i}"
        good.append(prod.send(mid, "created"))
    poison = {}  # request id -> expected hl-error

    def bad(key, value, headers, code):
        rid = dict(headers).get("hl-request-id") or uuid7()
        hdrs = list(headers)
        if "hl-request-id" not in dict(hdrs):
            hdrs.append(("x-test-id", rid))
        prod.send_raw(key, value, hdrs)
        poison[rid] = (key, value, code)

    bad("bad-json", b'{"id": "bad-json", "type": ', event_headers("stripe", "created"),
        "invalid_json")
    bad("bad-nul", b'{"a": "\\u0000"}', event_headers("stripe", "created"), "invalid_json")
    bad("bad-utf8", b'{"a": "\xff\xfe"}', event_headers("stripe", "created"), "invalid_json")
    bad("too-big", json.dumps({"pad": "x" * 5000}).encode(), event_headers("stripe", "created"),
        "too_large")
    no_source = [h for h in event_headers("stripe", "created") if h[0] != "hl-source"]
    bad("no-source", b'{"ok": true}', no_source, "missing_header")
    bad_rid = [(k, "not-a-uuid" if k == "hl-request-id" else v)
               for k, v in event_headers("stripe", "created")]
    bad("bad-rid", b'{"ok": true}', bad_rid, "bad_header")
    bad(None, b'{"ok": true}', event_headers("stripe", "created"), "missing_key")
    # Valid JSON that only Postgres refuses (numeric out of range): found by bisection.
    bad("pg-refuses", b'{"n": 1e1000000}', event_headers("stripe", "created"), "pg_rejected")
    # The first copy of an event refused by Postgres, a valid redelivery right after it in the
    # same batch: the redelivery is stored (it is not a duplicate of anything stored).
    bad("twice", b'{"n": 1e1000000}', event_headers("stripe", "created"), "pg_rejected")
    good.append(prod.send("twice", "created"))
    for i in range(200, 400):
        good.append(prod.send(f"good-{i}", "created"))
    # Redeliveries of good events inside the same batch: stored once, the first one wins.
    redelivered = [prod.send(f"good-{i}", "created") for i in range(0, 400, 40)]
    prod.flush()

    group = f"g-{topics['events']}"
    svc = service("persister", persister_config(stack, topics, pg_schema, free_port(), group,
                                                batch_max=500, batch_linger_ms=200,
                                                max_record_bytes=4096))
    wait_offsets_at_end(pg_schema, group, topics["events"])
    stored = {r[0] for r in pg_schema.query("SELECT request_id::text FROM webhook_events")}
    assert stored == set(good)

    dlq = kafka_consume(topics["dlq"], len(poison) + 1, timeout=15)
    assert len(dlq) == len(poison)
    seen = set()
    for m in dlq:
        h = {k: (v.decode() if v is not None else None) for k, v in m.headers.items()}
        rid = h.get("hl-request-id") if h.get("hl-request-id") in poison else h.get("x-test-id")
        key, value, code = poison[rid]
        seen.add(rid)
        assert h["hl-error"] == code, (rid, h)
        assert m.key == (key.encode() if key else None)
        assert m.value == value
        assert int(h["hl-attempts"]) >= 1 and int(h["hl-failed-us"]) > 0
        assert h["hl-error-detail"]
        assert h["content-type"] == "application/json"  # original headers kept
    assert seen == set(poison)

    n_lin = len(good) + len(poison) + len(redelivered)
    lin = [r for _, r in lineage(kafka_consume, topics["lineage"], n_lin + 1, timeout=15)]
    assert len(lin) == n_lin
    dead = [r for r in lin if r["stage"] == "dead_lettered"]
    assert len(dead) == len(poison)
    assert sorted(r["error_code"] for r in dead) == sorted(c for _, _, c in poison.values())
    persisted = {r["request_id"]: r for r in lin if r["stage"] == "persisted"}
    assert set(persisted) == set(good) | set(redelivered)
    assert all(persisted[rid]["duplicate"] and persisted[rid]["row_id"] is None
               for rid in redelivered)
    assert not any(persisted[rid]["duplicate"] for rid in good)
    assert metric(svc, "hookline_persister_dead_letters_total") == len(poison)
    assert svc.stop() == 0


def test_two_writers_of_the_same_keys_store_each_once(stack, topics, pg_schema, service,
                                                      free_port):
    """Two groups write the same records into one table at once, as a member that lost its
    partitions but has not noticed yet would: each event is stored once, the first delivery,
    whichever writer gets there first (a key stored between the other's probe and its COPY
    sends that batch the ON CONFLICT way)."""
    prod = EventProducer(topics["events"])
    first = {}
    for i in range(1500):
        mid = f"both-{i:05d}"
        for et in ("a", "b"):
            first.setdefault((mid, et), prod.send(mid, et))
            if i % 5 == 0:
                prod.send(mid, et)  # a provider retry
    prod.flush()
    groups = [f"g1-{topics['events']}", f"g2-{topics['events']}"]
    svcs = [service("persister", persister_config(stack, topics, pg_schema, free_port(), g,
                                                  batch_max=100, batch_linger_ms=5))
            for g in groups]
    for g in groups:
        wait_offsets_at_end(pg_schema, g, topics["events"], timeout=120)
    rows = pg_schema.query("SELECT message_id, event_type, request_id::text FROM webhook_events")
    assert len(rows) == len(first)
    assert all(rid == first[(m, e)] for m, e, rid in rows)
    inserted = sum(metric(s, "hookline_persister_rows_total") for s in svcs)
    assert inserted == len(first), "each row counted as inserted by exactly one writer"
    for s in svcs:
        assert s.stop() == 0


@pytest.mark.parametrize("bad,field", [
    ({"max_record_bytes": 1}, "max_record_bytes"),
    ({"batch_max": 1000000}, "batch_max"),
    ({"retry_base_ms": 500, "retry_cap_ms": 100}, "retry_cap_ms"),
    ({"log_level": "loud"}, "log_level"),
    ({"unknown_key": 1}, "unknown_key"),
    ({"kafka": {"events_topic": "bad topic"}}, "events_topic"),
])
def test_bad_configuration_exits_2_naming_the_field(stack, bad, field, free_port, tmp_path):
    from harness import run_binary
    cfg = {"http": {"listen": f"127.0.0.1:{free_port()}"}, "group_id": "never-used",
           "postgres": {"conninfo": "host=127.0.0.1 port=1 connect_timeout=1"},
           "kafka": {"brokers": "127.0.0.1:1"}}
    for k, v in bad.items():
        if isinstance(v, dict):
            cfg.setdefault(k, {}).update(v)
        else:
            cfg[k] = v
    r = run_binary("persister", cfg, timeout=20)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert field in r.stderr


def test_bad_command_line_exits_2(stack):
    from harness import run_binary
    assert run_binary("persister", None, args=["--bogus"]).returncode == 2
    assert run_binary("persister", None, args=["--config", "/nonexistent.yaml"]).returncode == 2
