"""hookline replay against the real services: the signing side of every scheme agrees with
the ingress's verifying side, and the 30K replay (10,000 messages x 3 events, 5 % duplicates,
concurrency 50) through ingress -> Kafka -> persister -> Postgres, with the auditor, PASSes
the default gate with an intact evidence folder; verify then catches a removed row, a
reordered pair and a row committed after its successor (but not rows of one transaction);
lineage and dlq as thin clients; deploy/local/replay-demo pointed at the test's services.
Each test starts its own services against its own topics and schema. Against sanitized
binaries the gate's two latency limits are stretched and the demo's open-loop rate lowered
(they are about speed); every other criterion keeps its default."""
import base64
import json
import os
import subprocess
import time
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from auditor_support import TOKENS, auditor_config
from harness import paths, sanitizers
from ingress_support import DEMO_SECRET, ingress_config, standard_source
from persister_support import persister_config


def binary(name):
    try:
        return str(paths.find_binary(name))
    except FileNotFoundError as e:
        pytest.fail(f"the end-to-end replay needs every binary built: {e}")


@pytest.fixture(autouse=True)
def _binaries():
    for n in ("hookline", "ingress", "persister", "auditor"):
        binary(n)


def fast_ingress(port, topics, sources):
    cfg = ingress_config(port, topics, sources)
    # One civetweb worker per keep-alive connection: more workers than replay connections.
    cfg["http"]["threads"] = 96
    cfg["log_level"] = "warn"
    return cfg


def replay(*args, env=None, timeout=None):
    timeout = timeout or sanitizers.slack(240)
    cmd = [binary("hookline"), "replay", "--no-progress", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def keys():
    ed = ed25519.Ed25519PrivateKey.generate()
    seed = ed.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    whpk = "whpk_" + base64.b64encode(ed.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()
    eck = ec.generate_private_key(ec.SECP256R1())
    pem = eck.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    spki = base64.b64encode(eck.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    return "whsk_" + base64.b64encode(seed).decode(), whpk, pem, spki


def test_every_scheme_signed_by_the_cli_is_accepted(service, topics, free_port, tmp_path):
    whsk, whpk, pem, spki = keys()
    sources = [
        standard_source(name="std", env="HL_T_STD"),
        {"name": "stdv1a", "scheme": "standard-webhooks", "public_keys": [whpk]},
        {"name": "stripe", "scheme": "stripe", "secrets": [{"env": "HL_T_STRIPE"}]},
        {"name": "github", "scheme": "hmac-sha256", "secrets": [{"env": "HL_T_HMAC"}],
         "header": "X-Hub-Signature-256", "prefix": "sha256=", "encoding": "hex"},
        {"name": "shopify", "scheme": "hmac-sha256", "secrets": [{"env": "HL_T_HMAC"}],
         "header": "X-Shopify-Hmac-Sha256", "encoding": "base64"},
        {"name": "bearer", "scheme": "bearer", "secrets": [{"env": "HL_T_BEARER"}]},
        {"name": "sendgrid", "scheme": "sendgrid", "public_keys": [spki]},
    ]
    env = {"HL_T_STD": DEMO_SECRET, "HL_T_STRIPE": "whsec_stripe_" + uuid.uuid4().hex,
           "HL_T_HMAC": "hmac-" + uuid.uuid4().hex, "HL_T_BEARER": "tok-" + uuid.uuid4().hex}
    port = free_port()
    service("ingress", fast_ingress(port, topics, sources), env=env)
    url = f"http://127.0.0.1:{port}"
    (tmp_path / "whsk").write_text(whsk + "\n")
    (tmp_path / "pem").write_text(pem)
    cases = [
        ("std", ["--scheme", "standard-webhooks"], env["HL_T_STD"]),
        ("stdv1a", ["--scheme", "standard-webhooks", "--secret-file", str(tmp_path / "whsk")], None),
        ("stripe", ["--scheme", "stripe"], env["HL_T_STRIPE"]),
        ("github", ["--scheme", "hmac-sha256", "--sig-header", "X-Hub-Signature-256",
                    "--sig-prefix", "sha256="], env["HL_T_HMAC"]),
        ("shopify", ["--scheme", "hmac-sha256", "--sig-header", "X-Shopify-Hmac-Sha256",
                     "--sig-encoding", "base64"], env["HL_T_HMAC"]),
        ("bearer", ["--scheme", "bearer"], env["HL_T_BEARER"]),
        ("sendgrid", ["--scheme", "sendgrid", "--secret-file", str(tmp_path / "pem")], None),
    ]
    for source, args, secret in cases:
        e = {"HOOKLINE_REPLAY_SECRET": secret} if secret else {}
        r = replay("--url", url, "--source", source, "--count", "9", "--concurrency", "3",
                   "--no-verify", "--json", *args, env=e)
        assert r.returncode == 1, (source, r.stderr)  # FAIL only for the unverified criteria
        res = json.loads(r.stdout)
        assert res["sent"] >= 9 and res["accepted"] == res["sent"], (source, res)
    # Captured requests (--input): stale signatures are replaced, the message id comes from
    # the captured webhook-id header as the source is configured, file order is kept.
    cap = tmp_path / "captured.ndjson"
    mid = f"cap-{uuid.uuid4().hex[:8]}"
    cap.write_text("".join(json.dumps({
        "headers": {"webhook-id": mid, "webhook-timestamp": "1", "webhook-signature": "v1,stale",
                    "Content-Type": "application/json"},
        "body": json.dumps({"type": t, "n": i})}) + "\n" for i, t in enumerate(["a", "b", "c"])))
    r = replay("--url", url, "--source", "std", "--scheme", "standard-webhooks", "--input",
               str(cap), "--message-id-header", "webhook-id", "--event-type-pointer", "/type",
               "--no-verify", "--json", env={"HOOKLINE_REPLAY_SECRET": env["HL_T_STD"]})
    res = json.loads(r.stdout)
    assert res["sent"] == 3 and res["accepted"] == 3 and res["messages"] == 1, r.stderr

    # The check is real: a wrong secret is refused for every request.
    r = replay("--url", url, "--source", "stripe", "--scheme", "stripe", "--count", "3",
               "--no-verify", "--json", "--max-retries", "0",
               env={"HOOKLINE_REPLAY_SECRET": "whsec_wrong"})
    res = json.loads(r.stdout)
    assert res["accepted"] == 0 and res["rejected"] == res["sent"] == 1  # later events skipped
    assert res["skipped"] >= 2


@pytest.fixture
def full_stack(stack, service, topics, pg_schema, free_port, tmp_path):
    iport, pport, aport = free_port(), free_port(), free_port()
    service("persister", persister_config(stack, topics, pg_schema, pport,
                                          f"cli-{uuid.uuid4().hex[:8]}", log_level="warn"))
    service("auditor", auditor_config(stack, topics, pg_schema, aport, tmp_path / "cp.pem",
                                      log_level="warn"))
    service("ingress", fast_ingress(iport, topics, [standard_source()]),
            env={"HL_TEST_DEMO_SECRET": DEMO_SECRET})
    return {"ingress": f"http://127.0.0.1:{iport}", "auditor": f"http://127.0.0.1:{aport}",
            "pg": stack.pg_dsn, "schema": pg_schema}


def common(st):
    return ["--source", "demo", "--pg", st["pg"], "--pg-schema", st["schema"].name,
            "--auditor", st["auditor"], "--auditor-token-env", "HL_T_AUDITOR_TOKEN",
            # How long the CLI waits for Postgres and the auditor to catch up: speed.
            "--settle-timeout-ms", str(int(sanitizers.slack(60000)))]


ENV = {"HOOKLINE_REPLAY_SECRET": DEMO_SECRET, "HL_T_AUDITOR_TOKEN": TOKENS["auditor"]}


def gate_args(tmp_path):
    """Nothing for plain binaries (the default gate). For sanitized ones, a criteria file with
    the default p95/p99 limits (120/200 ms, tools/hookline/README.md) times the sanitizer
    slowdown; the keys left out keep their defaults."""
    if not sanitizers.ENABLED:
        return []
    f = tmp_path / "sanitized-criteria.yaml"
    f.write_text(f"p95_ms_max: {sanitizers.slack(120):.0f}\n"
                 f"p99_ms_max: {sanitizers.slack(200):.0f}\n")
    return ["--criteria", str(f)]


def test_replay_30k_passes_the_gate(full_stack, tmp_path):
    st = full_stack
    ev = tmp_path / "evidence"
    t0 = time.monotonic()
    r = replay("--url", st["ingress"], "--scheme", "standard-webhooks", "--count", "30000",
               "--events-per-message", "3", "--duplicate-ratio", "0.05", "--concurrency", "50",
               "--seed", "42", "--evidence", str(ev), *gate_args(tmp_path), *common(st),
               env=ENV)
    elapsed = time.monotonic() - t0
    print(r.stdout)
    assert r.returncode == 0, f"gate did not PASS:\n{r.stdout}\n{r.stderr}"
    res = json.loads((ev / "results.json").read_text())
    assert res["gate"] == "PASS"
    assert res["sent"] >= 30000 + 1000 and res["accepted"] == res["sent"]
    assert res["duplicates_sent"] > 1000
    assert res["idempotency_violations"] == 0 and res["ordering_violations"] == 0
    assert res["gaps"] == 0 and res["lineage_coverage"] == 1.0
    rows = st["schema"].query("SELECT count(*) FROM webhook_events")[0][0]
    assert rows == 30000  # duplicates stored once
    lin = json.loads((ev / "lineages.json").read_text())
    assert len(lin["sample"]) == 10
    assert all(s["lineage"] and s["lineage"]["lineage"] for s in lin["sample"])
    ok = subprocess.run([binary("hookline"), "evidence", "verify", str(ev)], capture_output=True,
                        text=True)
    assert ok.returncode == 0, ok.stdout
    print(f"30K replay + verify took {elapsed:.1f} s")

    # Lineage coverage through the auditor's API instead of its table, on a small second run
    # judged by a criteria file (latency limits relaxed: this checks the lineage path).
    crit = tmp_path / "criteria.yaml"
    crit.write_text("p95_ms_max: 5000\np99_ms_max: 10000\ngaps_max: 0\n")
    small = replay("--url", st["ingress"], "--scheme", "standard-webhooks", "--count", "300",
                   "--seed", "43", "--lineage-via", "api", "--criteria", str(crit), "--json",
                   *common(st), env=ENV)
    assert small.returncode == 0, small.stdout + small.stderr
    sres = json.loads(small.stdout)
    assert sres["lineage_coverage"] == 1.0 and sres["criteria"]["p95_ms_max"] == 5000

    # deploy/local/replay-demo, pointed at this test's services: table, evidence path, exit code.
    state = tmp_path / "state"
    demo = subprocess.run(
        [str(paths.SOURCE_DIR / "deploy/local/replay-demo")], capture_output=True, text=True,
        timeout=sanitizers.slack(240), env={**os.environ, "HL_BUILD_DIR": str(paths.BUILD_DIR),
                          "HL_STATE_DIR": str(state), "HL_REPLAY_COUNT": "600",
                          # The broker is warm by now: a short warm-up, to run that step.
                          "HL_REPLAY_WARMUP": "1000",
                          "HL_REPLAY_RATE": str(sanitizers.rate(1000)),  # the script's default
                          "HL_INGRESS_URL": st["ingress"], "HL_AUDITOR_URL": st["auditor"],
                          "HOOKLINE_DEMO_SECRET": DEMO_SECRET,
                          # This test's own schema, which the stack's reader role is not
                          # granted: its owner verifies.
                          "HL_REPLAY_PG_USER": "hookline",
                          "HOOKLINE_AUDITOR_TOKEN": TOKENS["auditor"],
                          "HL_REPLAY_ARGS": " ".join([
                              f"--pg-schema {st['schema'].name}", "--no-progress",
                              f"--settle-timeout-ms {int(sanitizers.slack(60000))}",
                              *gate_args(tmp_path)])})
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "gate: PASS" in demo.stdout and "lineage coverage" in demo.stdout
    assert "warm-up     1000 requests first" in demo.stdout, demo.stdout
    evdirs = list((state / "evidence").iterdir())
    assert len(evdirs) == 1 and f"evidence: {evdirs[0]}" in demo.stdout
    assert (evdirs[0] / "SHA256SUMS").is_file()

    # An auditor that does not answer is a connection error (2), unless --no-auditor.
    dead = subprocess.run([binary("hookline"), "verify", "--requests", str(ev / "requests.ndjson"),
                           "--auditor", f"http://127.0.0.1:{paths.free_port()}",
                           "--auditor-token-env", "HL_T_AUDITOR_TOKEN", "--settle-timeout-ms",
                           "1000", "--source", "demo", "--pg", st["pg"], "--pg-schema",
                           st["schema"].name], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **ENV})
    assert dead.returncode == 2 and "auditor not reachable at" in dead.stderr, dead.stdout + dead.stderr
    assert "deploy/local/stack status" in dead.stderr

    # hookline lineage: a thin client of the auditor.
    rid = lin["sample"][0]["request_id"]
    lr = subprocess.run([binary("hookline"), "lineage", rid, "--auditor", st["auditor"],
                         "--auditor-token-env", "HL_T_AUDITOR_TOKEN"], capture_output=True,
                        text=True, env={**os.environ, **ENV}, timeout=30)
    assert lr.returncode == 0, lr.stderr
    stages = {row["stage"] for row in json.loads(lr.stdout)["lineage"]}
    assert {"ingress", "persisted"} <= stages
    unknown = subprocess.run([binary("hookline"), "lineage", str(uuid.uuid4()), "--auditor",
                              st["auditor"], "--auditor-token-env", "HL_T_AUDITOR_TOKEN"],
                             capture_output=True, text=True, env={**os.environ, **ENV}, timeout=30)
    assert unknown.returncode == 1

    # verify sees what is done to the table afterwards: one row removed, one pair reordered.
    ledger = ev / "requests.ndjson"
    conn = st["schema"].connect()
    with conn.cursor() as cur:
        cur.execute("SELECT message_id FROM webhook_events WHERE event_type = 'open'"
                    " ORDER BY message_id LIMIT 4")
        gone, swapped, same_txn, late = [x[0] for x in cur.fetchall()]
        # Rows written by one transaction commit together: their persisted_at order is no
        # violation. A row committed by a later transaction than its successor is one.
        cur.execute("UPDATE webhook_events SET persisted_at = CASE event_type WHEN 'processed'"
                    " THEN now() + interval '1 hour' ELSE now() END WHERE message_id = %s",
                    (same_txn,))
        cur.execute("UPDATE webhook_events SET persisted_at = persisted_at + interval '1 hour'"
                    " WHERE message_id = %s AND event_type = 'processed'", (late,))
        cur.execute("DELETE FROM webhook_events WHERE message_id = %s AND event_type = 'open'",
                    (gone,))
        # Give 'delivered' an offset after 'open' of the same message.
        cur.execute("UPDATE webhook_events SET kafka_offset = kafka_offset + 1000000"
                    " WHERE message_id = %s AND event_type = 'delivered'", (swapped,))
    conn.close()
    v = subprocess.run([binary("hookline"), "verify", "--requests", str(ledger), "--no-auditor",
                        "--settle-timeout-ms", "2000", "--source", "demo", "--pg", st["pg"],
                        "--pg-schema", st["schema"].name], capture_output=True,
                       text=True, timeout=120)
    assert v.returncode == 1, v.stdout + v.stderr
    assert "missing rows (gaps)    1" in v.stdout
    assert "idempotency violations 1" in v.stdout
    assert "ordering violations    2" in v.stdout


def test_dlq_list_and_redrive(stack, topics, kafka_produce, kafka_consume):
    rids = [str(uuid.uuid4()) for _ in range(3)]
    for i, rid in enumerate(rids):
        kafka_produce(topics["dlq"], f"msg-{i}", json.dumps({"messageId": f"msg-{i}"}),
                      headers={"hl-request-id": rid, "hl-source": "demo",
                               "hl-error": "poison", "hl-error-detail": "line 1: bad",
                               "hl-attempts": "5", "hl-failed-us": "1"})
    # The stack's broker, which is not the CLI's default when HL_KAFKA_PORT points elsewhere.
    common_args = ["--brokers", stack.brokers, "--topic", topics["dlq"], "--events-topic",
                   topics["events"]]
    r = subprocess.run([binary("hookline"), "dlq", "list", *common_args], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    listed = [json.loads(line) for line in r.stdout.splitlines()]
    assert sorted(x["headers"]["hl-request-id"] for x in listed) == sorted(rids)
    assert all(x["headers"]["hl-error"] == "poison" for x in listed)
    r = subprocess.run([binary("hookline"), "dlq", "redrive", "--request-id", rids[1],
                        *common_args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "redriven 1 of 3" in r.stdout
    got = kafka_consume(topics["events"], 1, timeout=30)
    assert len(got) == 1 and got[0].key == b"msg-1"
    assert got[0].value == json.dumps({"messageId": "msg-1"}).encode()
    assert got[0].headers["hl-request-id"] == rids[1].encode()
    names = set(got[0].headers)
    assert "hl-error" not in names and "hl-attempts" not in names and "hl-source" in names
    assert "hl-error-detail" not in names and "hl-failed-us" not in names
    # A request id that is not there: nothing redriven, exit 1; a bad one: usage error.
    r = subprocess.run([binary("hookline"), "dlq", "redrive", "--request-id", str(uuid.uuid4()),
                        *common_args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    r = subprocess.run([binary("hookline"), "dlq", "redrive", "--request-id", "x", *common_args],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
