"""Requests through ingress -> persister -> auditor on real Kafka and Postgres: lineage,
percentiles and error budget come back right; a stopped persister leaves gaps that close when
it is restarted."""
import json
import time

import pytest

from auditor_support import auditor_config, get, lineage_count, wait_for
from ingress_support import DEMO_SECRET, Client, ingress_config, standard_source
from persister_support import persister_config

ENV = {"HL_TEST_DEMO_SECRET": DEMO_SECRET}


@pytest.fixture
def pipeline(stack, topics, pg_schema, service, free_port, tmp_path):
    group = f"persister-{tmp_path.name[-8:]}"
    ing = service("ingress", ingress_config(free_port(), topics, [standard_source()],
                                            log_level="info"), env=ENV)
    pers_cfg = persister_config(stack, topics, pg_schema, free_port(), group)
    pers = service("persister", pers_cfg)
    aud = service("auditor", auditor_config(stack, topics, pg_schema, free_port(),
                                            tmp_path / "cp.pem"))
    return ing, pers, pers_cfg, aud


def post_events(ing, n, tag):
    c = Client(ing.port)
    ids = []
    for i in range(n):
        body = json.dumps({"type": "invoice.paid", "n": i}).encode()
        status, data, _ = c.post_standard(body, msg_id=f"{tag}-{i}")
        assert status == 202, data
        ids.append(json.loads(data)["request_id"])
    c.close()
    return ids


def test_requests_through_the_pipeline(pipeline, pg_schema):
    ing, _, _, aud = pipeline
    ids = post_events(ing, 40, "e2e")
    c = Client(ing.port)
    status, data, _ = c.post_standard(b'{"type":"x"}', secret="whsec_" + "A" * 32, msg_id="forged")
    c.close()
    assert status == 401
    rejected = json.loads(data)
    rejected_id = rejected["request_id"]
    wait_for(lambda: lineage_count(pg_schema) == 81, 60, "40 x 2 + 1 lineage rows")

    for rid in ids[:5]:
        rows = get(aud, f"/v1/requests/{rid}").json()["lineage"]
        assert [r["stage"] for r in rows] == ["ingress", "persisted"]
        assert rows[0]["status"] == 202 and rows[1]["record"]["row_id"] is not None
    (rej,) = get(aud, f"/v1/requests/{rejected_id}").json()["lineage"]
    assert rej["status"] == 401 and rej["error_code"] == rejected["error"]["code"]

    msg = get(aud, "/v1/messages/e2e-3").json()
    assert len(msg["events"]) == 1 and msg["events"][0]["request_id"] == ids[3]

    lat = get(aud, "/v1/latency").json()["stages"]
    assert lat["ack"]["count"] == 41
    for stage in ("queue", "persist", "e2e"):
        assert lat[stage]["count"] == 40, (stage, lat[stage])
        assert 0 <= lat[stage]["p50"] <= lat[stage]["p99"] <= lat[stage]["max"]
    assert lat["e2e"]["p50"] >= lat["persist"]["p50"]

    b = get(aud, "/v1/error-budget").json()
    assert b["total"] == 41 and b["by_status"] == {"202": 40, "401": 1}
    assert b["by_error_code"] == {rejected["error"]["code"]: 1}
    assert get(aud, "/v1/verify").json()["ok"] is True
    assert get(aud, "/v1/gaps").json()["gaps"] == []


def test_stopped_persister_leaves_gaps_that_close(pipeline, pg_schema, service):
    ing, pers, pers_cfg, aud = pipeline
    post_events(ing, 5, "before")
    wait_for(lambda: lineage_count(pg_schema) == 10, 60, "first 5 persisted")
    assert pers.stop() == 0

    lost = post_events(ing, 8, "during")
    gaps = wait_for(lambda: get(aud, "/v1/gaps").json()["gaps"], 30, "gaps after grace")
    wait_for(lambda: len(get(aud, "/v1/gaps").json()["gaps"]) == 8, 15, "8 gaps")
    assert sorted(g["request_id"] for g in get(aud, "/v1/gaps").json()["gaps"]) == sorted(lost)

    service("persister", pers_cfg)
    wait_for(lambda: get(aud, "/v1/gaps").json()["gaps"] == [], 60, "gaps closed")
    closed = get(aud, "/v1/gaps?state=closed").json()["gaps"]
    assert sorted(g["request_id"] for g in closed) == sorted(lost)
    assert all(g["closed_by"] == "persisted" for g in closed)
    assert gaps  # seen open before the restart
    # The ingress and the persister partition lineage alike: each request's records, keyed by
    # its request id, are in one chain, the only one whose outcome closes its gap.
    assert pg_schema.query("SELECT count(*) FROM (SELECT request_id FROM lineage GROUP BY"
                           " request_id HAVING count(DISTINCT chain) > 1) x")[0][0] == 0
    assert pg_schema.query("SELECT count(DISTINCT chain) FROM lineage")[0][0] > 1
