"""The auditor's read API: percentiles, error budget, gaps, the role matrix and bad input."""
import json
import time

import pytest
import requests

from harness import free_port, paths
from harness.procs import ServiceFactory

from auditor_support import (TOKENS, LineageProducer, auditor_config, get, ingress_record,
                             lineage_count, now_us, persisted_record, post, uuid7, wait_for)
from ingress_support import metric_value


@pytest.fixture
def svc(stack, topics, pg_schema, service, free_port, tmp_path):
    return service("auditor", auditor_config(stack, topics, pg_schema, free_port(),
                                             tmp_path / "cp.pem"))


@pytest.fixture(scope="module")
def shared(stack, module_topics, module_pg_schema, run_id, tmp_path_factory):
    """One auditor for the tests that only read (role matrix, bad input)."""
    factory = ServiceFactory(paths.BUILD_DIR / "integration-logs" / run_id / "auditor-api-shared")
    cfg = auditor_config(stack, module_topics, module_pg_schema, free_port(),
                         tmp_path_factory.mktemp("key") / "cp.pem")
    try:
        yield factory("auditor", cfg)
    finally:
        problems = factory.stop_all()
        assert not problems, problems


def feed(topic, records):
    p = LineageProducer(topic)
    for r in records:
        p.send(r["request_id"], r)
    p.flush()


def within(value, expected, rel=0.01):
    return abs(value - expected) <= expected * rel + 1


def test_percentiles_and_error_budget(svc, topics, pg_schema):
    recs = []
    # 100 accepted requests: ack 1..100 ms, queue 5 ms, persist 2 ms; source "stripe".
    for i in range(1, 101):
        ing = ingress_record(uuid7(), latency_us=i * 1000, offset=i)
        recs += [ing, persisted_record(ing, queue_us=5000, persist_us=2000)]
    # 10 rejected: 6 bad_signature (401), 4 unavailable (503, slow).
    recs += [ingress_record(uuid7(), status=401, error_code="bad_signature", latency_us=500)
             for _ in range(6)]
    recs += [ingress_record(uuid7(), status=503, error_code="unavailable", latency_us=900)
             for _ in range(4)]
    feed(topics["lineage"], recs)
    wait_for(lambda: lineage_count(pg_schema) == len(recs), 60, "all rows")

    lat = get(svc, "/v1/latency").json()["stages"]
    ack = lat["ack"]
    assert ack["count"] == 110
    assert within(ack["p50"], 45000, 0.02)  # 110 samples: 10 under 1 ms, then 1..100 ms
    assert within(ack["max"], 100000) and within(ack["p99"], 99000, 0.02)
    assert lat["queue"]["count"] == 100 and within(lat["queue"]["p50"], 5000)
    assert lat["persist"]["count"] == 100 and within(lat["persist"]["p99_9"], 2000)
    e2e = lat["e2e"]
    assert e2e["count"] == 100
    assert within(e2e["p50"], 50000 + 7000, 0.02) and within(e2e["max"], 107000, 0.02)
    assert sum(b[2] for b in ack["buckets"]) == 110

    live = get(svc, "/v1/latency?live=1&stage=queue").json()["stages"]
    assert list(live) == ["queue"] and live["queue"]["count"] == 100
    assert get(svc, "/v1/latency?source=nope").json()["stages"]["ack"]["count"] == 0

    b = get(svc, "/v1/error-budget").json()
    assert b["total"] == 110
    assert b["by_status"] == {"202": 100, "401": 6, "503": 4}
    assert b["by_error_code"] == {"bad_signature": 6, "unavailable": 4}
    # good: below 500 and ack <= 100 ms: all 100 accepted + 6 rejected by the client's fault.
    assert b["slo"]["good"] == 106 and b["slo"]["bad"] == 4
    assert b["slo"]["met"] is True  # 106/110 = 0.9636 >= 0.9
    assert b["slo"]["e2e_count"] == 100 and b["slo"]["e2e_within"] == 100


def test_gaps_open_then_close(svc, topics, pg_schema):
    lost = ingress_record(uuid7(), message_id="gap-me")
    fine = ingress_record(uuid7(), message_id="no-gap")
    feed(topics["lineage"], [lost, fine, persisted_record(fine)])
    wait_for(lambda: lineage_count(pg_schema) == 3, 30, "rows")
    gaps = wait_for(lambda: get(svc, "/v1/gaps").json()["gaps"], 15, "a gap after 2 s grace")
    assert [g["request_id"] for g in gaps] == [lost["request_id"]]
    assert gaps[0]["state"] == "open"

    wait_for(lambda: gap_metric(svc) == (1, 0), 10, "gap metric")

    poison = ingress_record(uuid7(), message_id="poison")
    feed(topics["lineage"], [poison])
    wait_for(lambda: len(get(svc, "/v1/gaps").json()["gaps"]) == 2, 15, "second gap")
    # Counted open before their outcomes are stored: those must close them from memory.
    wait_for(lambda: gap_metric(svc) == (2, 0), 10, "gap metric: two open")

    late = persisted_record(lost)
    late["ts_us"] = late["committed_us"] = now_us()
    dead = {"v": 1, "stage": "dead_lettered", "request_id": poison["request_id"],
            "ts_us": now_us(), "source": "stripe", "message_id": "poison",
            "error_code": "bad_payload", "attempts": 3}
    feed(topics["lineage"], [late, dead])
    wait_for(lambda: get(svc, "/v1/gaps").json()["gaps"] == [], 15, "gaps closed")
    closed = get(svc, "/v1/gaps?state=closed").json()["gaps"]
    assert sorted((g["request_id"], g["state"], g["closed_by"]) for g in closed) == sorted(
        [(lost["request_id"], "closed", "persisted"),
         (poison["request_id"], "closed", "dead_lettered")])
    assert len(get(svc, "/v1/gaps?state=all").json()["gaps"]) == 2
    wait_for(lambda: gap_metric(svc) == (0, 2), 10, "gap metric after both closed")


def gap_metric(svc):
    """(open, closed) from hookline_auditor_gaps."""
    m = get(svc, "/metrics", role="metrics").text
    v = {}
    for line in m.splitlines():
        for state in ("open", "closed"):
            if line.startswith(f'hookline_auditor_gaps{{state="{state}"}} '):
                v[state] = int(float(line.split()[1]))
    return v.get("open"), v.get("closed")


def test_gap_metric_counts_rows_stored_late_and_survives_a_restart(
        stack, topics, pg_schema, service, free_port, tmp_path):
    """The metric is kept incrementally (each lineage row read once): rows that reach the
    table long after their requests were received, outcomes that close an open gap, outcomes
    within the grace (no gap) and a restart that must count everything again."""
    cfg = auditor_config(stack, topics, pg_schema, free_port(), tmp_path / "cp.pem")
    svc = service("auditor", cfg)
    on_time = [ingress_record(uuid7(), message_id=f"ok-{i}") for i in range(20)]
    feed(topics["lineage"], on_time + [persisted_record(r) for r in on_time])
    wait_for(lambda: lineage_count(pg_schema) == 40, 30, "rows")
    time.sleep(3.5)  # past the 2 s grace and a 1 s scan: those rows have been read
    assert gap_metric(svc) == (0, 0)

    # Received 40 s ago, stored only now (their lineage was held up): judged when read.
    old = now_us() - 40_000_000
    lost = ingress_record(uuid7(), message_id="late-lost", received_us=old)
    fixed_late = ingress_record(uuid7(), message_id="late-fixed", received_us=old)
    done_late = persisted_record(fixed_late)
    done_late["ts_us"] = done_late["committed_us"] = now_us()  # 40 s after: a closed gap
    in_time = ingress_record(uuid7(), message_id="late-in-time", received_us=old)
    feed(topics["lineage"], [lost, fixed_late, done_late, in_time, persisted_record(in_time)])
    wait_for(lambda: gap_metric(svc) == (1, 1), 15, "one open, one closed")

    # An open gap closed by an outcome that comes afterwards.
    closing = persisted_record(lost)
    closing["ts_us"] = closing["committed_us"] = now_us()
    feed(topics["lineage"], [closing])
    wait_for(lambda: gap_metric(svc) == (0, 2), 15, "the open gap closed")

    # A new open gap, then a restart: the new process counts the same from the table.
    again = ingress_record(uuid7(), message_id="open-again")
    feed(topics["lineage"], [again])
    wait_for(lambda: gap_metric(svc) == (1, 2), 15, "a new open gap")
    svc.stop()
    svc2 = service("auditor", cfg)
    wait_for(lambda: gap_metric(svc2) == (1, 2), 15, "the same counts after a restart")
    api = {(g["request_id"], g["state"]) for g in get(svc2, "/v1/gaps?state=all").json()["gaps"]}
    assert api == {(lost["request_id"], "closed"), (fixed_late["request_id"], "closed"),
                   (again["request_id"], "open")}


def full_counts(svc):
    return metric_value(get(svc, "/metrics", role="metrics").text,
                        "hookline_auditor_gap_full_counts_total")


def test_gap_metric_past_what_it_follows_counts_with_the_full_query(
        stack, topics, pg_schema, service, free_port, tmp_path):
    """More accepted requests awaiting an outcome than gap_scan_pending_max (a long outage
    downstream): the metric is counted with the full query, and goes on so while the open gaps
    are many; once outcomes closed all but a few, it follows them one by one again, with the same
    counts as /v1/gaps."""
    cfg = auditor_config(stack, topics, pg_schema, free_port(), tmp_path / "cp.pem",
                         gap_scan_pending_max=100)
    svc = service("auditor", cfg)
    old = now_us() - 30_000_000  # received 30 s ago: past the 2 s grace when read
    waiting = [ingress_record(uuid7(), message_id=f"out-{i}", received_us=old)
               for i in range(150)]
    feed(topics["lineage"], waiting)
    wait_for(lambda: lineage_count(pg_schema) == 150, 30, "rows")
    wait_for(lambda: full_counts(svc), 15, "a full count")
    t0 = time.monotonic()
    assert gap_metric(svc) == (150, 0)
    # 150 open is more than a fifth of 100: it keeps counting with the full query, once every
    # 6 scans (6 s here), not at each.
    time.sleep(3)
    assert full_counts(svc) == 1
    wait_for(lambda: full_counts(svc) == 2, 10, "the second full count")
    assert time.monotonic() - t0 > 4.5
    log = svc.log_text()
    assert "more than 100 accepted requests awaiting an outcome or 40 open gaps" in log, log
    assert "150 open, 0 closed" in log and "the next in 6 s" in log, log

    def outcomes(recs):
        out = []
        for r in recs:
            d = persisted_record(r)
            d["ts_us"] = d["committed_us"] = now_us()
            out.append(d)
        return out

    # Outcomes for 5 (30 s after their requests: closed gaps): 145 open is still too many to
    # follow, so only the next full count sets the gauges, and it does.
    feed(topics["lineage"], outcomes(waiting[145:]))
    wait_for(lambda: gap_metric(svc) == (145, 5), 15, "the full count's 145 open, 5 closed")
    assert full_counts(svc) >= 3

    # The outage ends: outcomes for all but 10.
    feed(topics["lineage"], outcomes(waiting[10:145]))
    wait_for(lambda: lineage_count(pg_schema) == 290, 30, "outcome rows")
    wait_for(lambda: gap_metric(svc) == (10, 140), 20, "10 open, 140 closed")
    wait_for(lambda: "following them one by one again" in svc.log_text(), 15, "one by one")
    assert gap_metric(svc) == (10, 140)
    counted = full_counts(svc)
    # Following them one by one: the next scans make no full count, and still count right.
    feed(topics["lineage"], outcomes(waiting[:1]))
    wait_for(lambda: gap_metric(svc) == (9, 141), 15, "a gap closed one by one")
    assert full_counts(svc) == counted
    api = get(svc, "/v1/gaps?state=all&limit=1000").json()["gaps"]
    assert sum(g["state"] == "open" for g in api) == 9 and len(api) == 150


def test_gap_metric_pairs_outcomes_stored_before_their_requests(svc, topics, pg_schema):
    """The two records of a request come from different producers: an outcome can be stored
    before its ingress record. The metric pairs them as /v1/gaps does, a late one included, and
    an outcome that names no event type (a dead-lettered record) closes its message's element;
    one of another event type of the same message closes nothing."""
    old = now_us() - 20_000_000
    on_time = ingress_record(uuid7(), message_id="early-ok")
    late = ingress_record(uuid7(), message_id="early-late", received_us=old)
    done_late = persisted_record(late)
    done_late["ts_us"] = done_late["committed_us"] = now_us()  # 20 s after, grace 2 s
    poison = ingress_record(uuid7(), message_id="early-poison")
    dead = {"v": 1, "stage": "dead_lettered", "request_id": poison["request_id"],
            "ts_us": poison["ts_us"] + 1000, "source": "stripe", "message_id": "early-poison",
            "error_code": "bad_payload", "attempts": 3}
    other = ingress_record(uuid7(), message_id="early-other", event_type="t.created")
    wrong_type = persisted_record(other)
    wrong_type["event_type"] = "t.deleted"
    outcomes = [persisted_record(on_time), done_late, dead, wrong_type]
    feed(topics["lineage"], outcomes + [on_time, late, poison, other])
    wait_for(lambda: lineage_count(pg_schema) == 8, 30, "rows")
    gaps = wait_for(lambda: (lambda g: g if len(g) == 2 else None)(
        get(svc, "/v1/gaps?state=all").json()["gaps"]), 15, "two gaps past the grace")
    ids = {g["request_id"]: g["state"] for g in gaps}
    assert ids == {late["request_id"]: "closed", other["request_id"]: "open"}
    wait_for(lambda: gap_metric(svc) == (1, 1), 15, "the metric as /v1/gaps counts")


def test_gap_metric_after_a_restart_finds_outcomes_stored_before_its_first_row(
        stack, topics, pg_schema, service, free_port, tmp_path):
    """A new process starts reading at the first accepted request of the window: outcomes
    stored before it (here before their own ingress records) are looked up in the table before
    their elements count as open, typed and typeless ones alike."""
    cfg = auditor_config(stack, topics, pg_schema, free_port(), tmp_path / "cp.pem")
    svc = service("auditor", cfg)
    typed = ingress_record(uuid7(), message_id="first-typed", event_type="t.first")
    dead = ingress_record(uuid7(), message_id="first-dead")
    dl = {"v": 1, "stage": "dead_lettered", "request_id": dead["request_id"],
          "ts_us": dead["ts_us"] + 1000, "source": "stripe", "message_id": "first-dead",
          "error_code": "bad_payload", "attempts": 3}
    lost = ingress_record(uuid7(), message_id="first-lost")  # one open gap, to wait for
    feed(topics["lineage"], [persisted_record(typed), dl, typed, dead, lost])
    wait_for(lambda: lineage_count(pg_schema) == 5, 30, "rows")
    wait_for(lambda: gap_metric(svc) == (1, 0), 15, "one open gap")
    svc.stop()
    svc2 = service("auditor", cfg)
    # The counts of a pass are set at once: any other first answer would be wrong.
    assert wait_for(lambda: (lambda m: m if m[0] else None)(gap_metric(svc2)), 15,
                    "the metric after a restart") == (1, 0)
    gaps = get(svc2, "/v1/gaps?state=all").json()["gaps"]
    assert [g["request_id"] for g in gaps] == [lost["request_id"]]


def test_gap_metric_reads_a_row_committed_after_later_ones(stack, topics, pg_schema, service,
                                                          free_port, tmp_path):
    """Ids are taken at insert and seen at commit: a lineage transaction that commits after
    later rows were stored and read leaves its row below the scan's position. The scan looks
    at such ids again (until the grace is over), so the row still counts. The grace is longer
    than the scan's lag (5 s) here, so that the later rows are read well within it."""
    svc = service("auditor", auditor_config(stack, topics, pg_schema, free_port(),
                                            tmp_path / "cp.pem", gap_grace_s=20))
    slow = ingress_record(uuid7(), message_id="slow-commit")
    conn = pg_schema.connect(autocommit=False)
    try:
        with conn.cursor() as cur:  # chain 9: no partition of the topic, no writer's chain
            cur.execute("INSERT INTO lineage (chain, seq, lineage_offset, request_id, stage,"
                        " ts_us, ts, source, message_id, event_type, status, record, prev_hash,"
                        " hash) VALUES (9, 1, 0, %s, 'ingress', %s, to_timestamp(%s / 1e6),"
                        " 'stripe', 'slow-commit', 't.created', 202, %s, %s, %s)",
                        (slow["request_id"], slow["ts_us"], slow["ts_us"], json.dumps(slow),
                         bytes(32), bytes(32)))
        # A closed gap stored after it: once counted, the scan has read past the open insert.
        late = ingress_record(uuid7(), message_id="marker", received_us=now_us() - 40_000_000)
        done = persisted_record(late)
        done["ts_us"] = done["committed_us"] = now_us()
        feed(topics["lineage"], [late, done])
        wait_for(lambda: gap_metric(svc) == (0, 1), 30, "the later rows read")
        conn.commit()
    finally:
        conn.close()
    wait_for(lambda: gap_metric(svc) == (1, 1), 40, "the row committed late, an open gap")
    gaps = get(svc, "/v1/gaps").json()["gaps"]
    assert [g["request_id"] for g in gaps] == [slow["request_id"]]


def test_paging(svc, topics, pg_schema):
    feed(topics["lineage"], [ingress_record(uuid7(), received_us=now_us() - 1000 * i)
                             for i in range(25)])
    wait_for(lambda: lineage_count(pg_schema) == 25, 30, "rows")
    seen, cursor = [], None
    for _ in range(10):
        q = "/v1/requests?limit=10" + (f"&cursor={cursor}" if cursor else "")
        page = get(svc, q).json()
        seen += [r["request_id"] for r in page["requests"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 25 and len(set(seen)) == 25


# (method, path, roles allowed). Everything else gets 403 with a valid token, 401 without.
MATRIX = [
    ("GET", "/v1/requests", {"auditor", "admin"}),
    ("GET", "/v1/requests/0190a0a0-0000-7000-8000-000000000000", {"auditor", "admin"}),
    ("GET", "/v1/messages/m-1", {"auditor", "admin"}),
    ("GET", "/v1/gaps", {"auditor", "admin"}),
    ("GET", "/v1/latency", {"auditor", "admin"}),
    ("GET", "/v1/error-budget", {"auditor", "admin"}),
    ("GET", "/v1/verify", {"auditor", "admin"}),
    ("POST", "/v1/verify", {"auditor", "admin"}),
    ("GET", "/v1/checkpoints", {"auditor", "admin"}),
    ("POST", "/v1/checkpoints", {"admin"}),
    ("GET", "/metrics", {"metrics", "admin"}),
    ("GET", "/", {"auditor", "admin"}),
]


@pytest.mark.parametrize("method,path,allowed", MATRIX, ids=[f"{m} {p}" for m, p, _ in MATRIX])
def test_role_matrix(shared, method, path, allowed):
    for role in ["auditor", "admin", "metrics", None, "bogus"]:
        headers = {}
        if role == "bogus":
            headers = {"Authorization": "Bearer not-a-known-token"}
        elif role:
            headers = {"Authorization": f"Bearer {TOKENS[role]}"}
        r = requests.request(method, shared.url + path, headers=headers, timeout=30,
                             data=b"{}" if method == "POST" else None)
        if role in allowed:
            assert r.status_code not in (401, 403), (role, r.status_code, r.text)
            assert r.status_code < 500, (role, r.status_code, r.text)
        elif role in (None, "bogus"):
            assert r.status_code == 401, (role, r.status_code)
        else:
            assert r.status_code == 403, (role, r.status_code)
            assert r.json()["error"]["code"] == "forbidden"


def test_health_needs_no_token(shared):
    assert requests.get(shared.url + "/healthz", timeout=5).status_code == 200
    assert requests.get(shared.url + "/readyz", timeout=5).status_code == 200


@pytest.mark.parametrize("value", ["Basic abc", "Bearer", "Bearer ", "Bearer a b",
                                   "Bearer " + "x" * 300, "Bearer \u00e9t\u00e9", "bearer",
                                   "Bearer tok;en"])
def test_malformed_tokens_401(shared, value):
    r = requests.get(shared.url + "/v1/gaps", headers={"Authorization": value.encode("utf-8")},
                     timeout=10)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] in ("malformed_token", "unauthorized")


BAD = [
    "/v1/requests?limit=0", "/v1/requests?limit=abc", "/v1/requests?limit=100000",
    "/v1/requests?limit=-1", "/v1/requests?from=yesterday", "/v1/requests?to=2026-13-01T00:00:00Z",
    "/v1/requests?from=2026-01-01T00:00:00", "/v1/requests?cursor=abc", "/v1/requests?cursor=1.x",
    "/v1/requests?status=abc", "/v1/requests?status=999", "/v1/requests?source=a%20b",
    "/v1/requests?nope=1", "/v1/requests?limit=1&limit=2", "/v1/requests?from=10&to=5",
    "/v1/requests/" + "a" * 37, "/v1/requests/%01abc", "/v1/messages/" + "m" * 300,
    "/v1/gaps?state=sideways", "/v1/latency?stage=warp", "/v1/latency?live=2",
    "/v1/verify?chain=-1", "/v1/verify?chain=x", "/v1/checkpoints?chain=99999",
    "/v1/requests?from=%00", "/v1/requests?" + "&".join(f"k{i}=1" for i in range(20)),
    "/v1/requests?limit=" + "9" * 600, "/?id=%07",
]


@pytest.mark.parametrize("path", BAD)
def test_bad_parameters_400(shared, path):
    r = get(shared, path)
    assert r.status_code == 400, (path, r.status_code, r.text)
    assert r.json()["error"]["code"]


@pytest.mark.parametrize("body", [b"", b"not json", b"{}", b'{"chain":0}', b"[1,2]",
                                  json.dumps({"chain": 0, "seq": 1, "hash": "zz" * 32,
                                              "ts_us": 1, "key_id": "0" * 16,
                                              "signature": "00" * 64}).encode(),
                                  b"x" * 5000])
def test_bad_checkpoint_body_400(shared, body):
    r = post(shared, "/v1/verify", data=body)
    assert r.status_code == 400, r.text


def test_unknown_paths_and_methods(shared):
    assert get(shared, "/v1/nothing").status_code == 404
    r = requests.delete(shared.url + "/v1/gaps", headers={"Authorization":
                                                       f"Bearer {TOKENS['admin']}"}, timeout=5)
    assert r.status_code in (404, 405)
