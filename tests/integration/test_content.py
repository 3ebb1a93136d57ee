"""The content of stored events bound to the hash-chained history, and stored events verified
again against their providers' signatures (services/auditor/README.md, "Content check" and
"Signature re-verification"). Events go through the real ingress, Kafka, persister and
auditor; the tampering is done with the database owner's powers."""
import base64
import hashlib
import json
import os
import subprocess
import time
from urllib.parse import quote

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from auditor_support import TOKENS, auditor_config, get, lineage_count, post, wait_for
from harness import paths, sanitizers
from harness.procs import run_binary
from ingress_support import DEMO_SECRET, Client, ingress_config, standard_source
from persister_support import EventProducer, event_headers, persister_config

ED_KEY = ed25519.Ed25519PrivateKey.generate()
ED_PUB = "whpk_" + base64.b64encode(ED_KEY.public_key().public_bytes(
    serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()
ENV = {"HL_TEST_DEMO_SECRET": DEMO_SECRET}


def sources(tmp_path):
    (tmp_path / "tok").write_text("tok-abc-0123456789")
    (tmp_path / "tok").chmod(0o600)
    return [standard_source(),  # demo: HMAC (whsec_ secret)
            {"name": "edkey", "scheme": "standard-webhooks", "public_keys": [ED_PUB],
             "message_id_header": "webhook-id", "event_type": "/type"},
            {"name": "ops", "scheme": "bearer", "secrets": [{"file": str(tmp_path / "tok")}]}]


@pytest.fixture
def pipeline(stack, topics, pg_schema, service, free_port, tmp_path):
    """Ingress, persister and an auditor that holds the public-key source's key (and the bearer
    source's token file, which it may not use) but not the HMAC secret. The files the auditor
    and `hookline reverify` read give every source a 1 s timestamp tolerance: applied at
    re-verification, it would refuse every event a test checks."""
    ing_cfg = ingress_config(free_port(), topics, sources(tmp_path), log_level="info")
    ing = service("ingress", ing_cfg, env=ENV)
    service("persister", persister_config(stack, topics, pg_schema, free_port(),
                                          f"persister-{tmp_path.name[-8:]}"))
    strict = [{**s, "timestamp_tolerance_s": 1} for s in sources(tmp_path)]
    aud_sources = tmp_path / "auditor-sources.yaml"
    aud_sources.write_text(yaml.safe_dump(ingress_config(
        free_port(), topics, [s for s in strict if s["name"] != "demo"])))
    aud = service("auditor", auditor_config(stack, topics, pg_schema, free_port(),
                                            tmp_path / "cp.pem",
                                            signature_sources=str(aud_sources)))
    ing_file = tmp_path / "ingress.yaml"
    ing_file.write_text(yaml.safe_dump({**ing_cfg, "sources": strict}))
    return ing, aud, ing_file


def post_demo(c, n, tag):
    for i in range(n):
        body = json.dumps({"type": "invoice.paid", "n": i, "note": "caf\u00e9"},
                          ensure_ascii=False).encode() + b"\n"
        status, data, _ = c.post_standard(body, msg_id=f"{tag}-{i}")
        assert status == 202, data


def post_ed(c, msg_id, ts=None):
    body = json.dumps({"type": "order.shipped", "id": msg_id}).encode()
    ts = str(ts or int(time.time()))
    sig = ED_KEY.sign(f"{msg_id}.{ts}.".encode() + body)
    h = {"webhook-id": msg_id, "webhook-timestamp": ts,
         "webhook-signature": "v1a," + base64.b64encode(sig).decode()}
    status, data, _ = c.request("POST", "/v1/webhooks/edkey", body, h)
    assert status == 202, data
    return body


def stored(schema, n):
    return schema.query("SELECT count(*) FROM lineage WHERE stage = 'persisted'")[0][0] >= n


def loaded_pipeline(pipeline, pg_schema, n=6):
    ing, aud, ing_file = pipeline
    c = Client(ing.port)
    post_demo(c, n, "cc")
    post_ed(c, "ed-1")
    c.close()
    wait_for(lambda: stored(pg_schema, n + 1), 60, f"{n + 1} persisted lineage records")
    return aud


def behind_its_back(schema, *sql):
    """As the tables' owner, as whoever owns the database can (webhook_events has no trigger)."""
    conn = schema.connect(autocommit=False)
    try:
        with conn.cursor() as cur:
            for s in sql:
                cur.execute(s)
        conn.commit()
    finally:
        conn.close()


def content(aud):
    r = get(aud, "/v1/verify/content")
    assert r.status_code == 200, r.text
    return r.json()


def row_of(schema, msg_id):
    return schema.query("SELECT id FROM webhook_events WHERE message_id = %s", (msg_id,))[0][0]


def assert_named(c, msg_id, row, reasons):
    assert c["ok"] is False and c["bad"] == 1, c
    fb = c["first_bad"]
    assert (fb["source"], fb["message_id"], fb["event_type"], fb["row_id"]) == (
        "demo", msg_id, "invoice.paid", row), fb
    assert fb["reasons"] == reasons, fb
    assert c["bad_events"] == [fb]


def test_stored_content_is_bound_to_the_lineage(pipeline, pg_schema):
    aud = loaded_pipeline(pipeline, pg_schema)
    rows = pg_schema.query("SELECT message_id, raw_body, encode(body_sha256, 'hex'), payload,"
                           " signature_headers, request_id::text FROM webhook_events"
                           " WHERE source = 'demo' ORDER BY id")
    assert len(rows) == 6
    for mid, raw, digest, payload, sig, rid in rows:
        raw = bytes(raw)
        assert raw.endswith(b"\n") and "café".encode() in raw  # byte for byte
        assert digest == hashlib.sha256(raw).hexdigest()
        assert payload == json.loads(raw)
        assert sorted(sig) == ["webhook-id", "webhook-signature", "webhook-timestamp"]
        assert sig["webhook-id"] == mid
        recs = pg_schema.query("SELECT stage, record FROM lineage WHERE request_id = %s", (rid,))
        assert {s: json.loads(r)["body_sha256"] for s, r in recs} == {"ingress": digest,
                                                                       "persisted": digest}
    c = content(aud)
    assert c["ok"] is True and c["bad"] == 0 and c["first_bad"] is None
    assert c["events_checked"] == 7 and c["bound"] == 7
    assert c["rows_without_lineage"] == 0 and c["rows_pending_lineage"] == 0


def test_payload_edit_is_named(pipeline, pg_schema):
    aud = loaded_pipeline(pipeline, pg_schema)
    row = row_of(pg_schema, "cc-2")
    behind_its_back(pg_schema, f"UPDATE webhook_events SET payload = jsonb_set(payload, '{{n}}', "
                               f"'99') WHERE id = {row}")
    assert_named(content(aud), "cc-2", row, ["payload_mismatch"])


def test_raw_body_edit_is_named(pipeline, pg_schema):
    """Body, payload and digest column all rewritten consistently: only the lineage disagrees."""
    aud = loaded_pipeline(pipeline, pg_schema)
    row = row_of(pg_schema, "cc-3")
    forged = b'{"type":"invoice.paid","n":3000}'
    behind_its_back(pg_schema,
                    f"UPDATE webhook_events SET raw_body = '\\x{forged.hex()}'::bytea,"
                    f" payload = '{forged.decode()}'::jsonb,"
                    f" body_sha256 = sha256('\\x{forged.hex()}'::bytea) WHERE id = {row}")
    assert_named(content(aud), "cc-3", row, ["raw_body_mismatch", "digest_mismatch"])


def test_raw_body_removed_is_named(pipeline, pg_schema):
    aud = loaded_pipeline(pipeline, pg_schema)
    row = row_of(pg_schema, "cc-0")
    behind_its_back(pg_schema, f"UPDATE webhook_events SET raw_body = NULL WHERE id = {row}")
    assert_named(content(aud), "cc-0", row, ["raw_body_mismatch"])


def test_digest_column_edit_is_named(pipeline, pg_schema):
    aud = loaded_pipeline(pipeline, pg_schema)
    row = row_of(pg_schema, "cc-4")
    behind_its_back(pg_schema, f"UPDATE webhook_events SET body_sha256 = sha256('x'::bytea)"
                               f" WHERE id = {row}")
    assert_named(content(aud), "cc-4", row, ["digest_mismatch"])


def test_deleted_row_is_named(pipeline, pg_schema):
    aud = loaded_pipeline(pipeline, pg_schema)
    first, second = row_of(pg_schema, "cc-1"), row_of(pg_schema, "cc-5")
    behind_its_back(pg_schema, f"DELETE FROM webhook_events WHERE id IN ({first}, {second})")
    c = content(aud)
    assert c["ok"] is False and c["bad"] == 2
    assert sorted((e["message_id"], e["row_id"], e["reasons"]) for e in c["bad_events"]) == [
        ("cc-1", first, ["row_missing"]), ("cc-5", second, ["row_missing"])]
    # In the order of the history: the first bad one is the earlier lineage record.
    assert [e["lineage_id"] for e in c["bad_events"]] == sorted(e["lineage_id"] for e in c["bad_events"])
    assert c["first_bad"] == c["bad_events"][0]
    # Put back under another id, as a forger would have to: still not the row the history names.
    behind_its_back(pg_schema,
                    "INSERT INTO webhook_events (source, message_id, event_type, request_id,"
                    " received_at, kafka_partition, kafka_offset, payload) VALUES ('demo', 'cc-1',"
                    " 'invoice.paid', gen_random_uuid(), now(), 0, 0, '{}')")
    assert content(aud)["first_bad"]["reasons"] == ["row_missing"]


def test_row_key_swap_is_named(pipeline, pg_schema):
    aud = loaded_pipeline(pipeline, pg_schema)
    row = row_of(pg_schema, "cc-2")
    behind_its_back(pg_schema, f"UPDATE webhook_events SET message_id = 'other' WHERE id = {row}")
    assert_named(content(aud), "cc-2", row, ["row_key_mismatch"])


def forge_row(mid, persisted_at="now() - interval '1 hour'", digest=True):
    """An INSERT of a well-formed demo event that no lineage record names."""
    body = json.dumps({"type": "invoice.paid", "n": mid}).encode()
    raw = f"'\\x{body.hex()}'::bytea"
    sha = f"sha256({raw})" if digest else "NULL"
    return ("INSERT INTO webhook_events (source, message_id, event_type, request_id, received_at,"
            " kafka_partition, kafka_offset, payload, raw_body, body_sha256, persisted_at)"
            f" VALUES ('demo', '{mid}', 'invoice.paid', gen_random_uuid(), now(), 0, 7,"
            f" '{body.decode()}', {raw}, {sha}, {persisted_at})")


def test_row_without_lineage_is_named(pipeline, pg_schema):
    """A row inserted with no lineage record is named, with or without a digest (as a row from
    before migration 006 would look); one stored in the last two minutes may still be waiting for
    its lineage record and is only counted, one dated in the future is not given that grace."""
    aud = loaded_pipeline(pipeline, pg_schema)
    behind_its_back(pg_schema, forge_row("forged-1"), forge_row("forged-2", digest=False),
                    forge_row("forged-3", persisted_at="now()"),
                    forge_row("forged-4", persisted_at="now() + interval '1 day'"))
    rows = {m: row_of(pg_schema, m) for m in ("forged-1", "forged-2", "forged-4")}
    c = content(aud)
    assert c["ok"] is False and c["bad"] == 3 and c["events_checked"] == 7, c
    assert c["rows_without_lineage"] == 3 and c["rows_pending_lineage"] == 1, c
    assert c["bad_events"] == [
        {"lineage_id": None, "request_id": None, "source": "demo", "message_id": m,
         "event_type": "invoice.paid", "row_id": rows[m], "reasons": ["row_without_lineage"]}
        for m in sorted(rows, key=rows.get)]
    assert c["first_bad"] == c["bad_events"][0]


def test_row_fields_edit_is_named(pipeline, pg_schema):
    """The row's request id, Kafka partition and offset and reception time are bound to the
    persisted lineage record as well; an edit of each is named with the column."""
    aud = loaded_pipeline(pipeline, pg_schema)
    r = {m: row_of(pg_schema, m) for m in ("cc-0", "cc-1", "cc-2", "cc-3")}
    behind_its_back(pg_schema,
                    f"UPDATE webhook_events SET request_id = gen_random_uuid() WHERE id = {r['cc-0']}",
                    "UPDATE webhook_events SET kafka_partition = kafka_partition + 1"
                    f" WHERE id = {r['cc-1']}",
                    f"UPDATE webhook_events SET kafka_offset = kafka_offset + 1 WHERE id = {r['cc-2']}",
                    "UPDATE webhook_events SET received_at = received_at - interval '1 microsecond'"
                    f" WHERE id = {r['cc-3']}")
    c = content(aud)
    assert c["ok"] is False and c["bad"] == 4 and c["rows_without_lineage"] == 0, c
    got = {e["message_id"]: (e["row_id"], e["reasons"], e["fields"]) for e in c["bad_events"]}
    assert got == {
        "cc-0": (r["cc-0"], ["row_field_mismatch"], ["request_id"]),
        "cc-1": (r["cc-1"], ["row_field_mismatch"], ["kafka_partition"]),
        "cc-2": (r["cc-2"], ["row_field_mismatch"], ["kafka_offset"]),
        "cc-3": (r["cc-3"], ["row_field_mismatch"], ["received_at"])}, c


def move_row(schema, row, set_clause="", to_id=None):
    """The row deleted and put back under a new id (to_id, or the sequence's next), column for
    column (SET changes some), in one transaction: what a Postgres failover that lost the row's
    commit leaves once the persister has written the Kafka record again. Returns the new id."""
    cols = [r[0] for r in schema.query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name = 'webhook_events' AND column_name <> 'id' ORDER BY ordinal_position")]
    names = ", ".join(cols)
    into, pick = (names, names) if to_id is None else (f"id, {names}", f"{to_id}, {names}")
    behind_its_back(schema, f"CREATE TEMP TABLE moved ON COMMIT DROP AS"
                            f" SELECT {names} FROM webhook_events WHERE id = {row}",
                    f"DELETE FROM webhook_events WHERE id = {row}",
                    f"UPDATE moved SET {set_clause}" if set_clause else "SELECT 1",
                    f"INSERT INTO webhook_events ({into}) SELECT {pick} FROM moved")
    if to_id is not None:
        return to_id
    return schema.query("SELECT max(id) FROM webhook_events")[0][0]


def test_row_written_again_after_a_lost_commit_is_a_rewrite(pipeline, pg_schema):
    """A persisted record whose row a failover lost, the same Kafka record stored again under
    another id: not a deletion, listed as rewritten, and the new row held to the record; a copy
    that is not the same Kafka record, or not the same body, is named."""
    aud = loaded_pipeline(pipeline, pg_schema)
    row = row_of(pg_schema, "cc-2")
    # Dated an hour back: a row stored a moment ago would only be pending if it were unnamed.
    again = move_row(pg_schema, row, "persisted_at = now() - interval '1 hour'")
    assert again != row
    c = content(aud)
    assert c["ok"] is True and c["bad"] == 0 and c["rows_without_lineage"] == 0, c
    assert c["rows_pending_lineage"] == 0, c
    assert c["rows_rewritten"] == 1 and c["events_checked"] == 7, c
    (e,) = c["rewritten_events"]
    assert (e["message_id"], e["named_row_id"], e["row_id"]) == ("cc-2", row, again), e
    # The copy is held to the record: a body edited on the way is named, with both ids.
    behind_its_back(pg_schema, f"UPDATE webhook_events SET payload = jsonb_set(payload, '{{n}}',"
                               f" '99') WHERE id = {again}")
    c = content(aud)
    assert c["ok"] is False and c["bad"] == 1 and c["rows_rewritten"] == 0, c
    fb = c["first_bad"]
    assert (fb["row_id"], fb["named_row_id"], fb["reasons"]) == (again, row,
                                                                 ["payload_mismatch"]), fb
    # Another Kafka record's row (another offset) is not the one the history names (dated an
    # hour back, past the grace a row stored a moment ago has for its lineage record).
    other = move_row(pg_schema, row_of(pg_schema, "cc-4"),
                     "kafka_offset = kafka_offset + 1, persisted_at = now() - interval '1 hour'")
    c = content(aud)
    got = sorted((e["message_id"], e["row_id"], e["reasons"]) for e in c["bad_events"])
    assert ("cc-4", other, ["row_without_lineage"]) in got, c
    assert any(m == "cc-4" and r == ["row_missing"] for m, _, r in got), c


def test_row_id_given_again_after_a_lost_commit_is_a_rewrite(pipeline, pg_schema):
    """A failover loses the id sequence's advance with the rows, so the promoted database hands
    the lost ids out again, to whichever records it writes first: a record's named id may hold
    another event, its own Kafka record stored elsewhere. Both are rewrites, each event held to
    its own record; without the record's own copy the other event at its id is still named."""
    aud = loaded_pipeline(pipeline, pg_schema)
    first, second = row_of(pg_schema, "cc-1"), row_of(pg_schema, "cc-4")
    back = "persisted_at = now() - interval '1 hour'"
    # cc-1 written again first, under a new id; then cc-4, under the id cc-1 had.
    again = move_row(pg_schema, first, back)
    move_row(pg_schema, second, back, to_id=first)
    c = content(aud)
    assert c["ok"] is True and c["bad"] == 0 and c["rows_without_lineage"] == 0, c
    assert c["rows_rewritten"] == 2 and c["events_checked"] == 7, c
    assert sorted((e["message_id"], e["named_row_id"], e["row_id"])
                  for e in c["rewritten_events"]) == [("cc-1", first, again),
                                                      ("cc-4", second, first)], c
    # The event at the named id is held to its own record: edited, it is named, and only it.
    behind_its_back(pg_schema, f"UPDATE webhook_events SET payload = jsonb_set(payload, '{{n}}',"
                               f" '99') WHERE id = {first}")
    c = content(aud)
    assert c["ok"] is False and c["bad"] == 1 and c["rows_rewritten"] == 1, c
    fb = c["first_bad"]
    assert (fb["message_id"], fb["row_id"], fb["named_row_id"], fb["reasons"]) == (
        "cc-4", first, second, ["payload_mismatch"]), fb
    # Another event at the named id is not the record's row: without its own copy, cc-1 is
    # named with the event it found there.
    behind_its_back(pg_schema, f"DELETE FROM webhook_events WHERE id = {again}")
    c = content(aud)
    got = {e["message_id"]: (e["row_id"], e["reasons"]) for e in c["bad_events"]}
    assert got["cc-1"][0] == first and "row_key_mismatch" in got["cc-1"][1], c


CONTENT_ATTACKS = {
    "payload": ("cc-2", lambda row: [f"UPDATE webhook_events SET payload = jsonb_set(payload,"
                                     f" '{{n}}', '99') WHERE id = {row}"], ["payload_mismatch"]),
    "raw_body": ("cc-3", lambda row: [f"UPDATE webhook_events SET raw_body = raw_body ||"
                                      f" '\\x20'::bytea WHERE id = {row}"],
                 ["raw_body_mismatch"]),
    "deleted": ("cc-1", lambda row: [f"DELETE FROM webhook_events WHERE id = {row}"],
                ["row_missing"]),
    "no_lineage": ("forged-1", lambda row: [forge_row("forged-1")], ["row_without_lineage"]),
}


@pytest.mark.parametrize("how", sorted(CONTENT_ATTACKS))
def test_verify_and_page_include_the_content(pipeline, pg_schema, how):
    """GET /v1/verify (and so the page's status) holds the stored events to the lineage too: an
    attack on webhook_events alone leaves every chain clean, yet the answer is not ok and names
    the event; POST /v1/verify (a saved checkpoint) says so as well."""
    aud = loaded_pipeline(pipeline, pg_schema)
    v = get(aud, "/v1/verify").json()
    assert (v["ok"], v["chain_ok"], v["content"]["ok"]) == (True, True, True), v
    assert v["content"]["events_checked"] == 7
    assert 'id="chain-status" data-chain-ok="true" class="ok"' in get(aud, "/?verify=1").text
    mid, attack, reasons = CONTENT_ATTACKS[how]
    row = row_of(pg_schema, mid) if how != "no_lineage" else None
    behind_its_back(pg_schema, *attack(row))
    if row is None:
        row = row_of(pg_schema, mid)
    v = get(aud, "/v1/verify").json()
    assert v["ok"] is False and v["chain_ok"] is True, v
    assert all(c["ok"] for c in v["chains"])
    fb = v["content"]["first_bad"]
    assert (fb["message_id"], fb["row_id"], fb["reasons"]) == (mid, row, reasons), fb
    assert v["content"] == {**content(aud), "elapsed_us": v["content"]["elapsed_us"]}
    page = get(aud, "/?verify=1").text
    assert 'id="chain-status" data-chain-ok="true" class="bad"' in page
    assert f"source demo, message id {mid}, row {row}: {' '.join(reasons)}" in page
    r = post(aud, "/v1/checkpoints", role="admin")
    assert r.status_code == 201, r.text
    (cp,) = r.json()["checkpoints"][:1]
    res = post(aud, "/v1/verify", json=cp).json()
    assert res["ok"] is False and res["chain_ok"] is True, res
    assert res["content"]["first_bad"] == fb


def run_verify(aud, stack, schema, tmp_path, rid):
    """`hookline verify` of a one-request ledger (a rejected request: no stored event expected)."""
    ledger = tmp_path / "requests.ndjson"
    ledger.write_text(json.dumps({"message_id": "none", "event_type": "t.created",
                                  "delivery_id": "", "duplicate": False, "status": 400,
                                  "attempts": 1, "latency_us": 1000,
                                  "request_id": rid}) + "\n")
    env = {**os.environ, **sanitizers.child_env(), "HL_T_TOKEN": TOKENS["auditor"]}
    return subprocess.run([str(paths.find_binary("hookline")), "verify", "--requests", str(ledger),
                           "--auditor", aud.url, "--auditor-token-env", "HL_T_TOKEN",
                           "--settle-timeout-ms", "2000", "--pg", stack.pg_dsn, "--pg-schema",
                           schema.name], capture_output=True, text=True, timeout=300, env=env)


def test_cli_verify_names_the_bad_event(pipeline, pg_schema, stack, tmp_path):
    aud = loaded_pipeline(pipeline, pg_schema)
    c = Client(pipeline[0].port)
    status, data, _ = c.post_standard(b'{"type":"x"}', secret="whsec_" + "A" * 32)
    c.close()
    assert status == 401
    rid = json.loads(data)["request_id"]
    wait_for(lambda: get(aud, f"/v1/requests/{rid}").status_code == 200, 60, "rejection lineage")
    r = run_verify(aud, stack, pg_schema, tmp_path, rid)
    assert "content check          ok" in r.stdout, r.stdout + r.stderr
    assert "under another row id" not in r.stdout, r.stdout
    # An event a failover made the persister write again is counted, and still ok.
    move_row(pg_schema, row_of(pg_schema, "cc-5"), "persisted_at = now() - interval '1 hour'")
    r = run_verify(aud, stack, pg_schema, tmp_path, rid)
    assert r.returncode == 0 and "content check          ok" in r.stdout, r.stdout + r.stderr
    assert ("    1 event intact under another row id than its lineage names (written again"
            " after a Postgres failover lost its commit, or moved by hand: rewritten_events in"
            " GET /v1/verify/content)\n") in r.stdout, r.stdout
    row = row_of(pg_schema, "cc-3")
    behind_its_back(pg_schema, f"UPDATE webhook_events SET payload = '{{}}' WHERE id = {row}")
    r = run_verify(aud, stack, pg_schema, tmp_path, rid)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "content check          FAILED" in r.stdout
    assert (f"1 bad event; first: source demo message id cc-3 event type invoice.paid "
            f"(row {row}): payload_mismatch") in r.stdout, r.stdout
    assert "verify: VIOLATIONS" in r.stdout
    behind_its_back(pg_schema, f"UPDATE webhook_events SET kafka_offset = kafka_offset + 1"
                               f" WHERE id = {row}")
    r = run_verify(aud, stack, pg_schema, tmp_path, rid)
    assert r.returncode == 1, r.stdout + r.stderr
    assert (f"(row {row}): payload_mismatch row_field_mismatch (kafka_offset)\n") in r.stdout, \
        r.stdout


# --- the persister's own check of its input ----------------------------------------------------

def test_digest_mismatch_is_dead_lettered_with_its_digest(stack, topics, pg_schema, service,
                                                          free_port, tmp_path, kafka_consume):
    service("persister", persister_config(stack, topics, pg_schema, free_port(),
                                          f"persister-{tmp_path.name[-8:]}"))
    aud = service("auditor", auditor_config(stack, topics, pg_schema, free_port(),
                                            tmp_path / "cp.pem"))
    p = EventProducer(topics["events"])
    body = b'{"type":"t.created","id":"dm-1"}'
    claimed = hashlib.sha256(b"another body").hexdigest()
    rid = p.send_raw(b"dm-1", body, event_headers("stripe", "t.created") +
                     [("hl-body-sha256", claimed)])
    good = p.send_raw(b"dm-2", body, event_headers("stripe", "t.created") +
                      [("hl-body-sha256", hashlib.sha256(body).hexdigest())])
    p.flush()
    (dl,) = kafka_consume(topics["dlq"], 1, timeout=60)
    assert dl.key == b"dm-1" and dl.value == body
    assert dl.headers["hl-error"] == b"body_digest_mismatch"
    assert dl.headers["hl-body-sha256"].decode() == claimed
    wait_for(lambda: lineage_count(pg_schema) == 2, 60, "2 lineage records")
    recs = {r: json.loads(t) for r, t in pg_schema.query("SELECT request_id, record FROM lineage")}
    assert recs[rid]["stage"] == "dead_lettered"
    assert recs[rid]["error_code"] == "body_digest_mismatch"
    assert recs[rid]["body_sha256"] == claimed
    assert recs[good]["stage"] == "persisted"
    assert pg_schema.query("SELECT message_id FROM webhook_events") == [("dm-2",)]
    assert content(aud)["ok"] is True


# --- signature re-verification -----------------------------------------------------------------

def reverify(ing_file, schema, stack, *args, env=ENV):
    e = {**os.environ, **sanitizers.child_env(), **(env or {})}
    if env is None:
        e.pop("HL_TEST_DEMO_SECRET", None)
    return subprocess.run([str(paths.find_binary("hookline")), "reverify", "--config",
                           str(ing_file), "--pg", stack.pg_dsn, "--pg-schema", schema.name, *args],
                          capture_output=True, text=True, timeout=60, env=e)


def test_cli_reverify_hmac_and_public_key_sources(pipeline, pg_schema, stack):
    _, _, ing_file = pipeline
    loaded_pipeline(pipeline, pg_schema)
    r = reverify(ing_file, pg_schema, stack, "--source", "demo", "--message-id", "cc-1")
    assert r.returncode == 0, r.stdout + r.stderr
    ts = json.loads(pg_schema.query("SELECT signature_headers::text FROM webhook_events"
                                    " WHERE message_id = 'cc-1'")[0][0])["webhook-timestamp"]
    assert "signature       ok" in r.stdout and f"({ts}; no tolerance applied)" in r.stdout
    assert "matches the stored digest" in r.stdout and "reverify: OK" in r.stdout
    r = reverify(ing_file, pg_schema, stack, "--source", "edkey", "--message-id", "ed-1",
                 "--event-type", "order.shipped")
    assert r.returncode == 0 and "signature       ok" in r.stdout, r.stdout + r.stderr
    # Edited after the fact (body and payload, consistently): the signature no longer holds.
    for mid in ("cc-1", "ed-1"):
        behind_its_back(pg_schema, f"UPDATE webhook_events SET raw_body = raw_body || '\\x20'::bytea"
                                   f" WHERE message_id = '{mid}'")
    r = reverify(ing_file, pg_schema, stack, "--source", "demo", "--message-id", "cc-1")
    assert r.returncode == 1 and "signature       bad_signature" in r.stdout, r.stdout + r.stderr
    assert "DIFFERS from the stored digest" in r.stdout and "reverify: FAILED" in r.stdout
    r = reverify(ing_file, pg_schema, stack, "--source", "edkey", "--message-id", "ed-1")
    assert r.returncode == 1 and "signature       bad_signature" in r.stdout, r.stdout + r.stderr


def test_old_event_reverifies_without_tolerance(pipeline, pg_schema, stack):
    """Signed 10 s before it arrived (inside the ingress's 300 s): the auditor's and the CLI's
    copies of the source allow 1 s, which re-verification must not apply; the signed timestamp
    is shown."""
    ing, aud, ing_file = pipeline
    old = int(time.time()) - 10
    c = Client(ing.port)
    post_ed(c, "ed-old", ts=old)
    c.close()
    wait_for(lambda: stored(pg_schema, 1), 60, "persisted")
    r = get(aud, "/v1/events/edkey/ed-old/signature")
    assert r.status_code == 200, r.text
    (e,) = r.json()["events"]
    assert e["signature"] == "ok" and e["signed_timestamp"] == old
    r = reverify(ing_file, pg_schema, stack, "--source", "edkey", "--message-id", "ed-old")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"({old}; no tolerance applied)" in r.stdout


def test_api_signature_public_key_source(pipeline, pg_schema):
    aud = loaded_pipeline(pipeline, pg_schema)
    r = get(aud, "/v1/events/edkey/ed-1/signature?event_type=order.shipped")
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["ok"] is True and a["source"] == "edkey" and a["message_id"] == "ed-1"
    (e,) = a["events"]
    assert e["signature"] == "ok" and e["scheme"] == "standard-webhooks"
    assert e["event_type"] == "order.shipped" and e["body_sha256_matches_column"] is True
    assert isinstance(e["signed_timestamp"], int)
    behind_its_back(pg_schema, "UPDATE webhook_events SET raw_body = convert_to(replace("
                               "convert_from(raw_body, 'UTF8'), 'shipped', 'lost'), 'UTF8')"
                               " WHERE message_id = 'ed-1'")
    a = get(aud, "/v1/events/edkey/ed-1/signature").json()
    assert a["ok"] is False and a["events"][0]["signature"] == "bad_signature"


def test_reverify_names_payload_edit_and_moved_message_id(pipeline, pg_schema, stack):
    """The signature still holds over the raw body, yet the payload column no longer is its parse,
    or the row was moved to another message id than the one the signature covers."""
    _, aud, ing_file = pipeline
    loaded_pipeline(pipeline, pg_schema)
    r = reverify(ing_file, pg_schema, stack, "--source", "demo", "--message-id", "cc-1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "payload         matches the raw body" in r.stdout
    assert "signed id       cc-1 (matches the message id)" in r.stdout
    (e,) = get(aud, "/v1/events/edkey/ed-1/signature").json()["events"]
    assert (e["payload_matches_raw_body"], e["signed_message_id"],
            e["message_id_matches_signed_id"]) == (True, "ed-1", True), e
    behind_its_back(pg_schema,
                    "UPDATE webhook_events SET payload = jsonb_set(payload, '{n}', '99')"
                    " WHERE message_id = 'cc-1'",
                    "UPDATE webhook_events SET payload = jsonb_set(payload, '{id}', '\"ed-2\"')"
                    " WHERE message_id = 'ed-1'",
                    "UPDATE webhook_events SET message_id = 'cc-moved' WHERE message_id = 'cc-2'",
                    "UPDATE webhook_events SET message_id = 'ed-moved' WHERE message_id = 'ed-1'")
    r = reverify(ing_file, pg_schema, stack, "--source", "demo", "--message-id", "cc-1")
    assert r.returncode == 1 and "signature       ok" in r.stdout, r.stdout + r.stderr
    assert "payload         DIFFERS from the raw body" in r.stdout
    assert "reverify: FAILED" in r.stdout
    r = reverify(ing_file, pg_schema, stack, "--source", "demo", "--message-id", "cc-moved")
    assert r.returncode == 1 and "signature       ok" in r.stdout, r.stdout + r.stderr
    assert "payload         matches the raw body" in r.stdout
    assert "signed id       cc-2 (DIFFERS from the message id)" in r.stdout
    a = get(aud, "/v1/events/edkey/ed-moved/signature").json()
    (e,) = a["events"]
    assert a["ok"] is False and e["signature"] == "ok", a
    assert (e["payload_matches_raw_body"], e["signed_message_id"],
            e["message_id_matches_signed_id"]) == (False, "ed-1", False), e


def test_payload_numbers_are_compared_exactly(pipeline, pg_schema, stack):
    """Numbers as jsonb keeps them: integers past 2^53 (the ingress takes JSON integers up to 64
    bits), -0 and 2.50e1 match their jsonb spelling; the owner moving such an integer by one in
    the payload column (the same double) is named, by the signature endpoint and by `hookline
    reverify` alike."""
    ing, aud, ing_file = pipeline
    c = Client(ing.port)
    big = b'"big": 9223372036854775807, "odd": 9007199254740993, "z": -0, "r": 2.50e1'
    body = b'{"type": "order.shipped", "id": "ed-big", ' + big + b'}'
    ts = str(int(time.time()))
    sig = ED_KEY.sign(f"ed-big.{ts}.".encode() + body)
    status, data, _ = c.request("POST", "/v1/webhooks/edkey", body, {
        "webhook-id": "ed-big", "webhook-timestamp": ts,
        "webhook-signature": "v1a," + base64.b64encode(sig).decode()})
    assert status == 202, data
    status, data, _ = c.post_standard(b'{"type": "invoice.paid", ' + big + b'}\n',
                                      msg_id="cc-big")
    assert status == 202, data
    c.close()
    wait_for(lambda: stored(pg_schema, 2), 60, "2 persisted lineage records")

    def matches():
        (e,) = get(aud, "/v1/events/edkey/ed-big/signature").json()["events"]
        assert e["signature"] == "ok", e
        r = reverify(ing_file, pg_schema, stack, "--source", "demo", "--message-id", "cc-big")
        return e["payload_matches_raw_body"], r
    pm, r = matches()
    assert pm is True and r.returncode == 0, r.stdout + r.stderr
    assert "payload         matches the raw body" in r.stdout
    for key, value in (("big", "9223372036854775806"), ("odd", "9007199254740992")):
        behind_its_back(pg_schema, f"UPDATE webhook_events SET payload = jsonb_set(payload,"
                                   f" '{{{key}}}', '{value}') WHERE message_id IN"
                                   " ('ed-big', 'cc-big')")
        pm, r = matches()
        assert pm is False and r.returncode == 1, (key, r.stdout + r.stderr)
        assert "payload         DIFFERS from the raw body" in r.stdout
        behind_its_back(pg_schema, "UPDATE webhook_events SET payload ="
                                   " convert_from(raw_body, 'UTF8')::jsonb"
                                   " WHERE message_id IN ('ed-big', 'cc-big')")
        assert matches()[0] is True


def test_signature_bad_input(pipeline, pg_schema, stack, tmp_path):
    ing, aud, ing_file = pipeline
    loaded_pipeline(pipeline, pg_schema, n=1)
    c = Client(ing.port)
    assert c.request("POST", "/v1/webhooks/ops", b'{"messageId":"op-1","eventType":"e"}',
                     {"Authorization": "Bearer tok-abc-0123456789"})[0] == 202
    c.close()
    wait_for(lambda: stored(pg_schema, 3), 60, "persisted")

    def api(path):
        r = get(aud, path)
        return r.status_code, r.json()["error"]["code"]

    # The HMAC secret was not given to the auditor: that source is not one it can check.
    assert api("/v1/events/demo/cc-0/signature") == (404, "unknown_source")
    assert api("/v1/events/nosuch/x/signature") == (404, "unknown_source")
    assert api("/v1/events/edkey/never-stored/signature") == (404, "not_found")
    assert api("/v1/events/edkey/ed-1/signature?event_type=other") == (404, "not_found")
    assert api("/v1/events/ops/op-1/signature") == (409, "not_reverifiable")
    assert api("/v1/events/edkey//signature") == (400, "bad_message_id")
    assert api("/v1/events/edkey/a%01b/signature") == (400, "bad_message_id")
    assert api("/v1/events/edkey/a%7Fb/signature") == (400, "bad_message_id")
    assert api("/v1/events/edkey/" + "x" * 257 + "/signature") == (400, "bad_message_id")
    assert api("/v1/events/Bad!/x/signature") == (400, "bad_source")
    assert api("/v1/events/edkey/ed-1") == (404, "not_found")
    assert api("/v1/events/edkey/ed-1/signature?foo=1") == (400, "unknown_parameter")
    assert get(aud, "/v1/events/edkey/ed-1/signature", role=None).status_code == 401
    # An id with a slash and a space, percent-encoded.
    assert api("/v1/events/edkey/" + quote("a/b c", safe="") + "/signature") == (404, "not_found")

    def cli(*args, env=ENV):
        r = reverify(ing_file, pg_schema, stack, *args, env=env)
        return r.returncode, r.stderr

    rc, err = cli("--source", "nosuch", "--message-id", "x")
    assert rc == 2 and "source 'nosuch' is not configured" in err
    rc, err = cli("--source", "demo", "--message-id", "never-stored")
    assert rc == 1 and "no stored event with source 'demo', message id 'never-stored'" in err
    rc, err = cli("--source", "demo", "--message-id", "")
    assert rc == 2 and "--message-id (1..256)" in err
    rc, err = cli("--source", "demo", "--message-id", "x" * 257)
    assert rc == 2 and "--message-id (1..256)" in err
    rc, err = cli("--source", "demo", "--message-id", "a\x01b")
    assert rc == 2 and "control characters" in err
    rc, err = cli("--source", "ops", "--message-id", "op-1")
    assert rc == 2 and "bearer tokens" in err
    rc, err = cli("--source", "demo")
    assert rc == 2 and "are required" in err
    # The key is missing: the secret's variable is not set for this run.
    rc, err = cli("--source", "demo", "--message-id", "cc-0", env=None)
    assert rc == 2 and "source 'demo' secret 0 (env HL_TEST_DEMO_SECRET" in err, err
    assert DEMO_SECRET not in err
    r = subprocess.run([str(paths.find_binary("hookline")), "reverify", "--config",
                        str(tmp_path / "absent.yaml"), "--source", "demo", "--message-id", "x"],
                       capture_output=True, text=True, timeout=60,
                       env={**os.environ, **sanitizers.child_env()})
    assert r.returncode == 2 and "absent.yaml" in r.stderr


def test_auditor_without_keys_says_so(stack, topics, pg_schema, service, free_port, tmp_path):
    aud = service("auditor", auditor_config(stack, topics, pg_schema, free_port(),
                                            tmp_path / "cp.pem"))
    r = get(aud, "/v1/events/edkey/x/signature")
    assert r.status_code == 409 and r.json()["error"]["code"] == "no_keys"


def test_auditor_refuses_unusable_signature_sources(stack, topics, pg_schema, free_port,
                                                    tmp_path):
    """A key it cannot read stops the auditor at start (exit 2), naming the source and the
    variable, never a value."""
    bad = tmp_path / "sources.yaml"
    bad.write_text(yaml.safe_dump(ingress_config(free_port(), topics, [standard_source(
        env="HL_T_NOT_SET")])))
    cfg = auditor_config(stack, topics, pg_schema, free_port(), tmp_path / "cp.pem",
                         signature_sources=str(bad))
    r = run_binary("auditor", cfg)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "signature_sources" in out and "source 'demo' secret 0 (env HL_T_NOT_SET" in out
    cfg["signature_sources"] = str(tmp_path / "absent.yaml")
    r = run_binary("auditor", cfg)
    assert r.returncode == 2 and "absent.yaml" in r.stdout + r.stderr
