"""Batches (`split: true`): a SendGrid-signed JSON array becomes one Kafka record per element,
each with its own message id and event type, answered 202 only once every one is stored; a
batch that cannot be stored whole gets 503; malformed batches are refused whole and nothing
is produced; batches posted at once take turns for the delivery waiters rather than
being refused."""
import base64
import json
import threading
import time

from ingress_support import Client, error_code, ingress_config, metric_value, metrics_text

BEARER = "split-test-bearer-token-0123456789"


def sendgrid_key():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, base64.b64encode(spki).decode()


def sendgrid_headers(key, body):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    ts = str(int(time.time()))
    sig = base64.b64encode(key.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
    return {"X-Twilio-Email-Event-Webhook-Signature": sig,
            "X-Twilio-Email-Event-Webhook-Timestamp": ts}


def bearer_source(name="br", **extra):
    s = {"name": name, "scheme": "bearer", "secrets": [{"env": "HL_T_SPLIT_BEARER"}],
         "split": True, "message_id": "/sg_event_id", "event_type": "/event"}
    s.update(extra)
    return s


def post(c, source, body, headers=None):
    h = {"Authorization": f"Bearer {BEARER}"}
    h.update(headers or {})
    return c.request("POST", f"/v1/webhooks/{source}", body, h)


def test_sendgrid_batch_one_record_per_element(service, topics, free_port, kafka_consume):
    key, spki = sendgrid_key()
    sources = [{"name": "sg", "scheme": "sendgrid", "public_keys": [spki], "split": True,
                "message_id": "/sg_event_id", "event_type": "/event"}]
    port = free_port()
    service("ingress", ingress_config(port, topics, sources))
    c = Client(port)
    run = time.time_ns()
    events = [{"email": f"u{i}@example.com", "event": ev, "sg_event_id": f"sg-{run}-{i}",
               "timestamp": 1700000000 + i, "n": 1.5}
              for i, ev in enumerate(["processed", "delivered", "open"])]
    body = json.dumps(events).encode() + b"\r\n"
    status, data, _ = c.request("POST", "/v1/webhooks/sg", body, sendgrid_headers(key, body))
    assert status == 202, data
    answer = json.loads(data)
    assert answer["elements"] == 3 and answer["message_id"] == f"sg-{run}-0", answer
    msgs = kafka_consume(topics["events"], 3, timeout=20)
    got = {m.key.decode(): m for m in msgs}
    assert set(got) == {e["sg_event_id"] for e in events}, sorted(got)
    for e in events:
        m = got[e["sg_event_id"]]
        assert json.loads(m.value) == e  # the element itself, whole
        hdrs = {k: v.decode() for k, v in m.headers.items()}
        assert hdrs["hl-event-type"] == e["event"] and hdrs["hl-source"] == "sg"
    # Each element has its own ingress lineage record.
    lineage = kafka_consume(topics["lineage"], 3, timeout=20)
    ids = {json.loads(m.value).get("message_id") for m in lineage}
    assert {e["sg_event_id"] for e in events} <= ids, ids


def test_bad_batches_refused_whole(service, topics, free_port, kafka_consume):
    port = free_port()
    service("ingress", ingress_config(port, topics, [bearer_source()]),
            env={"HL_T_SPLIT_BEARER": BEARER})
    c = Client(port)
    good = {"sg_event_id": "x", "event": "open"}
    cases = [
        (json.dumps(good), 400, "not_an_array"),
        ("[]", 400, "empty_batch"),
        (json.dumps([good] * 1001), 413, "too_many_elements"),
        (json.dumps([good, {"event": "open"}]), 400, "missing_field"),
        (json.dumps([good, {"sg_event_id": 7, "event": "open"}]), 400, "invalid_field"),
        (json.dumps([good, {"sg_event_id": "y" * 300, "event": "open"}]), 400, "field_too_long"),
        (json.dumps([good, 5]), 400, "missing_field"),
        ('[{"sg_event_id":"a","sg_event_id":"b","event":"e"}]', 400, "invalid_json"),
        ("[" * 100 + "]" * 100, 400, "invalid_json"),
    ]
    for body, want, code in cases:
        status, data, _ = post(c, "br", body.encode())
        assert (status, error_code(data)) == (want, code), (body[:80], status, data)
    # Exactly 1000 elements is accepted, and nothing of the refused ones was produced.
    run = time.time_ns()
    batch = [{"sg_event_id": f"ok-{run}-{i}", "event": "open"} for i in range(1000)]
    status, data, _ = post(c, "br", json.dumps(batch).encode())
    assert status == 202 and json.loads(data)["elements"] == 1000, data
    keys = {m.key.decode() for m in kafka_consume(topics["events"], 1001, timeout=10)}
    assert keys == {e["sg_event_id"] for e in batch}, len(keys)


def test_batch_not_stored_whole_gets_503(service, topics, free_port):
    """A batch needs one delivery waiter per element: with max_in_flight 4, five elements
    cannot all be awaited, so the batch gets 503 (and its retry would too); four are taken."""
    port = free_port()
    service("ingress", ingress_config(port, topics, [bearer_source()], max_in_flight=4),
            env={"HL_T_SPLIT_BEARER": BEARER})
    c = Client(port)
    five = [{"sg_event_id": f"f-{i}-{time.time_ns()}", "event": "open"} for i in range(5)]
    status, data, hdrs = post(c, "br", json.dumps(five).encode())
    assert status == 503 and error_code(data) == "unavailable" and hdrs.get("retry-after"), data
    status, data, _ = post(c, "br", json.dumps(five[:4]).encode())
    assert status == 202 and json.loads(data)["elements"] == 4, data


def test_batch_partly_queued_gets_503(service, topics, free_port, kafka_consume):
    """A producer queue of 100 records: of a 300-element batch the first ones are stored and the
    rest find the queue full, so the batch as a whole gets 503 (not the first element's 202);
    each stored element has a lineage record of its own with the batch's answer and the offset
    Kafka gave it, whatever the rejections' lineage budget, so no stored event is left unnamed;
    a batch that fits is accepted."""
    port = free_port()
    cfg = ingress_config(port, topics, [bearer_source()], queue_max_messages=100)
    service("ingress", cfg, env={"HL_T_SPLIT_BEARER": BEARER})
    c = Client(port)
    run = time.time_ns()
    big = [{"sg_event_id": f"q-{run}-{i}", "event": "open"} for i in range(300)]
    status, data, hdrs = post(c, "br", json.dumps(big).encode())
    assert status == 503 and error_code(data) == "unavailable" and hdrs.get("retry-after"), data
    rid = json.loads(data)["request_id"]
    stored = {m.key.decode(): (m.partition, m.offset)
              for m in kafka_consume(topics["events"], 300, timeout=10)}
    assert 0 < len(stored) < 300, len(stored)
    records = [json.loads(m.value) for m in kafka_consume(topics["lineage"], 300, timeout=20)]
    mine = {r["message_id"]: r for r in records if r.get("request_id") == rid}
    # The lineage handle's queue is as small as the events' here: a record it could not queue
    # is counted in the ingress's metric, never lost without a trace.
    _, text = metrics_text(cfg)
    dropped = metric_value(text, "hookline_ingress_lineage_dropped_total") or 0
    unnamed = set(stored) - set(mine)
    assert len(unnamed) <= dropped, (len(unnamed), dropped)
    assert len(mine) >= len(stored) - dropped >= 1, (len(mine), len(stored), dropped)
    assert {r["status"] for r in mine.values()} == {503}
    # A named element that Kafka acknowledged carries the offset it was stored at (one whose ack
    # did not come in time is named without one).
    located = [mid for mid in set(stored) & set(mine) if "offset" in mine[mid]]
    assert located, "no stored element named with its offset"
    for mid in located:
        assert (mine[mid]["partition"], mine[mid]["offset"]) == stored[mid], mid
    status, data, _ = post(c, "br", json.dumps(big[:50]).encode())
    assert status == 202 and json.loads(data)["elements"] == 50, data


def test_concurrent_batches_take_turns(service, topics, free_port, kafka_consume):
    """Four senders post 600-element batches at once with the default max_in_flight (1,024
    delivery waiters): no two batches fit in the pool together, so each waits its turn for
    the waiters instead of being refused; every batch gets 202 and every element is stored.
    (Refused at once when the pool was short, about half of them got 503.)"""
    port = free_port()
    service("ingress", ingress_config(port, topics, [bearer_source()]),
            env={"HL_T_SPLIT_BEARER": BEARER})
    run = time.time_ns()
    outcomes, lock = [], threading.Lock()

    def sender(k):
        c = Client(port, timeout=30)
        for j in range(4):
            batch = [{"sg_event_id": f"cc-{run}-{k}-{j}-{i}", "event": "open"} for i in range(600)]
            status, data, _ = post(c, "br", json.dumps(batch).encode())
            with lock:
                outcomes.append((status, data[:200]))
        c.close()

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
        assert not t.is_alive(), "a sender is stuck"
    refused = [o for o in outcomes if o[0] != 202]
    print(f"concurrent batches: {len(outcomes)} posted, {len(refused)} not accepted")
    assert len(outcomes) == 16 and not refused, refused[:3]
    keys = {m.key.decode() for m in kafka_consume(topics["events"], 16 * 600, timeout=30)}
    assert len(keys) == 16 * 600, len(keys)
