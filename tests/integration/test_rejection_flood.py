"""A flood of rejected requests (unknown sources with invented names, bad signatures) leaves the
auditor's lineage and rollups bounded: unknown sources are recorded under one fixed name, and
rejections are recorded within a budget per client address and in total, the rest counted (in a
metric and, on the next rejection recorded, as `suppressed`). Accepted requests always get
their lineage."""
import json
import time
import uuid

import pytest

from auditor_support import auditor_config, lineage_count, wait_for
from ingress_support import (DEMO_SECRET, Client, ingress_config, metric_value, metrics_text,
                             sign_standard, standard_source)

ENV = {"HL_TEST_DEMO_SECRET": DEMO_SECRET}
BUDGET = 5  # the binding limit of each case, records per second (and burst)


def post_bad_signature(c, i):
    body = json.dumps({"type": "invoice.paid", "n": i}).encode()
    h = sign_standard(DEMO_SECRET, f"bad_{i}", int(time.time()), body)
    h["webhook-signature"] = "v1," + "A" * 44
    return c.request("POST", "/v1/webhooks/demo", body, h)[0]


@pytest.mark.parametrize("per_client,total", [(BUDGET, 100000), (100000, BUDGET)],
                         ids=["per_client", "total"])
def test_flood_of_rejections_leaves_lineage_bounded(service, stack, topics, pg_schema, free_port,
                                                    tmp_path, per_client, total):
    service("auditor", auditor_config(stack, topics, pg_schema, free_port(), tmp_path / "k.pem"))
    port = free_port()
    # The failed-authentication budget (429 before the body is read) is opened wide, so every
    # rejection reaches the lineage writer and its budget is what bounds the history.
    wide = {k: 1000000 for k in ("failed_auth_rate_per_client", "failed_auth_burst_per_client",
                                 "failed_auth_rate", "failed_auth_burst")}
    ing = service("ingress", ingress_config(port, topics, [standard_source()],
                                            lineage_rejected_per_s=total,
                                            lineage_rejected_per_client_per_s=per_client,
                                            **wide),
                  env=ENV)
    c = Client(port)
    accepted, rejected = [], 0
    t0 = time.monotonic()
    for i in range(300):
        name = "x" + uuid.uuid4().hex
        assert c.request("POST", f"/v1/webhooks/{name}", b"{}")[0] == 404
        assert post_bad_signature(c, i) == 401
        rejected += 2
        if i % 15 == 0:
            status, _, h = c.post_standard(json.dumps({"type": "ok", "n": i}).encode())
            assert status == 202
            accepted.append(h["x-request-id"])
    elapsed = time.monotonic() - t0
    time.sleep(1.5)  # the buckets refill: the next rejection is recorded with the count
    assert c.request("POST", "/v1/webhooks/nosuchsource", b"{}")[0] == 404
    rejected += 1

    recorded = BUDGET * (elapsed + 1) + BUDGET + 1  # the bucket's bound over the flood, + last
    wait_for(lambda: lineage_count(pg_schema) >= len(accepted) + 2, 60, "lineage stored")
    time.sleep(2)  # the auditor's batches settle
    rows = pg_schema.query("SELECT request_id, status, source, record FROM lineage"
                           " WHERE stage = 'ingress'")
    rej = [r for r in rows if r[1] != 202]
    assert len(rej) <= recorded, (len(rej), recorded, elapsed)
    assert len(rej) < rejected / 4
    # Every accepted request has its lineage, whatever the flood.
    assert set(accepted) <= {r[0] for r in rows if r[1] == 202}
    # No name the client invented reached the history or the rollups.
    assert {r[2] for r in rows} <= {"demo", ".unknown"}
    assert ".unknown" in {r[2] for r in rej}
    sources = {s for (s,) in pg_schema.query("SELECT DISTINCT source FROM latency_counts")}
    assert sources <= {"demo", ".unknown"}, sources
    # What was not recorded is counted: in the lineage and in the metric.
    suppressed = sum(json.loads(r[3]).get("suppressed", 0) for r in rej)
    assert len(rej) + suppressed == rejected, (len(rej), suppressed, rejected)
    status, text = metrics_text(ing)
    assert status == 200
    assert metric_value(text, "hookline_ingress_lineage_suppressed_total") == suppressed
