"""The elements of a split batch (one request id, one lineage record per element) before the
auditor: each is its own event for gap detection (an outcome closes only its own element's gap)
and for the latency rollups (every stage counts per element). Real Kafka, real Postgres, lineage
records shaped as the ingress and persister write them."""
import time

from auditor_support import (auditor_config, get, ingress_record, lineage_count, now_us,
                             persisted_record, uuid7, wait_for)
from test_auditor_owner import feed, metric_gaps


def batch(rid, received_us, elements):
    """The ingress records of one accepted split request: one per (message id, event type)."""
    return [ingress_record(rid, message_id=m, event_type=t, received_us=received_us,
                           offset=i) for i, (m, t) in enumerate(elements)]


def test_one_elements_outcome_closes_no_other_gap(stack, topics, pg_schema, service, free_port,
                                                  tmp_path):
    svc = service("auditor", auditor_config(stack, topics, pg_schema, free_port(),
                                            tmp_path / "cp.pem"))
    rid = uuid7()
    ing = batch(rid, now_us() - 10_000_000,
                [("m-a", "t.created"), ("m-b", "t.created"), ("m-a", "t.updated")])
    # Only the first element is stored, in time; the others never are.
    feed(topics["lineage"], ing + [persisted_record(ing[0])])
    wait_for(lambda: lineage_count(pg_schema) == 4, 60, "4 rows")
    want = [(rid, "m-b", "t.created", "open"), (rid, "m-a", "t.updated", "open")]
    gaps = wait_for(lambda: get(svc, "/v1/gaps?state=all").json()["gaps"], 30, "the gaps")
    assert sorted((g["request_id"], g["message_id"], g["event_type"], g["state"])
                  for g in gaps) == sorted(want)
    wait_for(lambda: metric_gaps(svc) == (2, 0), 30, "the gap metric: two open")
    # A late outcome of one of them closes that one alone.
    feed(topics["lineage"], [persisted_record(ing[1], queue_us=9_000_000)])
    wait_for(lambda: metric_gaps(svc) == (1, 1), 30, "the gap metric: one open, one closed")
    gaps = get(svc, "/v1/gaps").json()["gaps"]
    assert [(g["message_id"], g["event_type"]) for g in gaps] == [("m-a", "t.updated")]


def test_batch_latency_counts_every_stage_per_element(stack, topics, pg_schema, service,
                                                      free_port, tmp_path):
    """Three elements, each stored with its own queue time: three samples in every stage, and
    each element's queue sample is its own (not the first element's three times)."""
    svc = service("auditor", auditor_config(stack, topics, pg_schema, free_port(),
                                            tmp_path / "cp.pem"))
    rid = uuid7()
    ing = batch(rid, now_us() - 1_000_000,
                [("m-a", "t.created"), ("m-b", "t.created"), ("m-c", "t.created")])
    queues = [3_000, 40_000, 900_000]
    feed(topics["lineage"], ing)
    wait_for(lambda: lineage_count(pg_schema) == 3, 60, "3 rows")
    feed(topics["lineage"], [persisted_record(e, queue_us=q) for e, q in zip(ing, queues)])
    wait_for(lambda: lineage_count(pg_schema) == 6, 60, "6 rows")
    time.sleep(0.5)
    for live in (0, 1):
        stages = get(svc, f"/v1/latency?live={live}&buckets=1").json()["stages"]
        assert {s: stages[s]["count"] for s in stages} == {
            "ack": 3, "queue": 3, "persist": 3, "e2e": 3}, (live, stages)
        got = sorted(lo for lo, hi, n in stages["queue"]["buckets"] for _ in range(n))
        assert [lo <= q for lo, q in zip(got, queues)] == [True] * 3, (live, got)
        assert [q < lo * 1.05 for lo, q in zip(got, queues)] == [True] * 3, (live, got)
