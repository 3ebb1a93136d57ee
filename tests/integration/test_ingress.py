"""hookline-ingress against the real broker over real HTTP: every row of DESIGN.md's status
table, the Kafka record (key, exact body bytes, headers), lineage, rotation, limits."""
import hashlib
import http.client
import json
import socket
import time
import uuid

import pytest

from harness import dump_yaml, sanitizers

from ingress_support import (DEMO_SECRET, ROTATED_SECRET, Client, error_code, ingress_config,
                             metric_value, metrics_port, metrics_text, sign_github, sign_standard,
                             sign_stripe, standard_source)

ENV = {"HL_TEST_DEMO_SECRET": DEMO_SECRET}


@pytest.fixture
def ingress(service, topics, free_port):
    def start(sources=None, env=None, **top):
        port = free_port()
        cfg = ingress_config(port, topics, sources or [standard_source()], **top)
        svc = service("ingress", cfg, env={**ENV, **(env or {})})
        return svc, Client(port)
    return start


# ingress_config's http.request_timeout_ms, in seconds. Limits below are multiples of it,
# stretched in the sanitized pass (sanitizers.slack), since they are about speed.
REQUEST_TIMEOUT_S = 2


def body_of(msg_type="invoice.paid", **extra):
    d = {"type": msg_type}
    d.update(extra)
    return json.dumps(d).encode()


def lineage_for(kafka_consume, topics, request_ids, timeout=20):
    """The ingress lineage records of the given request ids (dict rid -> record)."""
    want = set(request_ids)
    found = {}
    deadline = time.monotonic() + timeout
    while want - set(found) and time.monotonic() < deadline:
        for m in kafka_consume(topics["lineage"], 10000, timeout=2):
            rec = json.loads(m.value)
            if rec["request_id"] in want:
                assert m.key.decode() == rec["request_id"]
                found[rec["request_id"]] = rec
    return found


def test_accepted_record_is_exact(ingress, topics, kafka_consume):
    svc, c = ingress()
    # Odd whitespace, a non-ASCII character and a trailing newline must survive byte for byte.
    body = b'{"type":"invoice.paid",  "amount": 4200, "name": "J\xc3\xa9r\xc3\xb4me"}\n'
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    t0 = time.time()
    status, data, h = c.post_standard(body, msg_id="msg_exact_1", extra={"traceparent": tp})
    assert status == 202, data
    ans = json.loads(data)
    assert ans == {"status": "accepted", "request_id": h["x-request-id"], "message_id": "msg_exact_1"}
    assert uuid.UUID(h["x-request-id"]).version == 7
    msgs = kafka_consume(topics["events"], 1, timeout=20)
    assert len(msgs) == 1
    m = msgs[0]
    assert m.key == b"msg_exact_1"
    assert m.value == body
    assert m.headers["hl-request-id"].decode() == h["x-request-id"]
    assert m.headers["hl-source"] == b"demo"
    assert m.headers["hl-event-type"] == b"invoice.paid"
    assert m.headers["content-type"] == b"application/json"
    assert m.headers["traceparent"].decode() == tp
    received = int(m.headers["hl-received-us"])
    assert abs(received / 1e6 - t0) < 5
    assert sorted(k for k, _ in m.header_list) == sorted(
        ["hl-request-id", "hl-source", "hl-event-type", "hl-received-us", "content-type", "traceparent",
         "hl-body-sha256", "hl-signature-headers"])
    # The body's digest as received, and exactly the headers that authenticated it.
    digest = hashlib.sha256(body).hexdigest()
    assert m.headers["hl-body-sha256"].decode() == digest
    signed = json.loads(m.headers["hl-signature-headers"])
    assert sorted(signed) == ["webhook-id", "webhook-signature", "webhook-timestamp"]
    assert signed["webhook-id"] == "msg_exact_1"
    assert signed["webhook-signature"] == sign_standard(DEMO_SECRET, "msg_exact_1",
                                                        int(signed["webhook-timestamp"]),
                                                        body)["webhook-signature"]
    lin = lineage_for(kafka_consume, topics, [h["x-request-id"]])[h["x-request-id"]]
    assert lin["body_sha256"] == digest
    assert lin["stage"] == "ingress" and lin["status"] == 202 and lin["error_code"] is None
    assert (lin["partition"], lin["offset"]) == (m.partition, m.offset)
    assert lin["message_id"] == "msg_exact_1" and lin["source"] == "demo"
    assert lin["received_us"] == received


def test_traceparent_generated_when_invalid(ingress, topics, kafka_consume):
    svc, c = ingress()
    bad = "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
    status, _, _ = c.post_standard(body_of(), extra={"traceparent": bad})
    assert status == 202
    m = kafka_consume(topics["events"], 1, timeout=20)[0]
    tp = m.headers["traceparent"].decode()
    assert tp != bad and len(tp) == 55 and tp.startswith("00-")


def test_duplicate_is_accepted(ingress, topics, kafka_consume):
    svc, c = ingress()
    body = body_of()
    for _ in range(2):
        status, data, _ = c.post_standard(body, msg_id="msg_dup")
        assert status == 202, data
    msgs = kafka_consume(topics["events"], 2, timeout=20)
    assert [m.key for m in msgs] == [b"msg_dup", b"msg_dup"]
    assert msgs[0].partition == msgs[1].partition  # same key, same partition: order kept


def test_authentication_failures(ingress, topics, kafka_consume):
    svc, c = ingress()
    body = body_of()
    now = int(time.time())
    h = sign_standard(DEMO_SECRET, "msg_a", now, body)
    cases = {
        "tampered body": (body.replace(b"paid", b"void"), h, "bad_signature"),
        "wrong secret": (body, sign_standard(ROTATED_SECRET, "msg_a", now, body), "bad_signature"),
        "stale timestamp": (body, sign_standard(DEMO_SECRET, "msg_a", now - 400, body), "stale_timestamp"),
        "future timestamp": (body, sign_standard(DEMO_SECRET, "msg_a", now + 400, body), "stale_timestamp"),
        "no signature": (body, {}, "missing_signature"),
        "garbage signature": (body, {**h, "webhook-signature": "v1,%%%"}, "malformed_signature"),
    }
    rids = []
    for name, (b, hdrs, code) in cases.items():
        status, data, rh = c.request("POST", "/v1/webhooks/demo", b, hdrs)
        assert status == 401, name
        assert error_code(data) == code, name
        assert json.loads(data)["request_id"] == rh["x-request-id"]
        rids.append(rh["x-request-id"])
    assert kafka_consume(topics["events"], 1, timeout=3) == []
    lin = lineage_for(kafka_consume, topics, rids)
    assert set(lin) == set(rids)
    assert all(r["status"] == 401 and r["error_code"] for r in lin.values())
    log = svc.log_text()
    assert DEMO_SECRET not in log and ROTATED_SECRET not in log
    assert log.count('"msg":"rejected"') >= len(cases)


def test_secret_rotation(ingress, tmp_path):
    # Rotation in progress: the old secret (env) and the new one (file) are both active.
    new_file = tmp_path / "new.secret"
    new_file.write_text(ROTATED_SECRET + "\n")
    new_file.chmod(0o600)  # secret files must be private
    both = standard_source(secrets=[{"env": "HL_TEST_DEMO_SECRET"}, {"file": str(new_file)}])
    svc, c = ingress([both])
    assert c.post_standard(body_of(), secret=ROTATED_SECRET)[0] == 202  # rotated in
    assert c.post_standard(body_of(), secret=DEMO_SECRET)[0] == 202
    svc.stop()
    # Rotation finished: the old secret is gone.
    only_new = standard_source(secrets=[{"file": str(new_file)}])
    svc2, c2 = ingress([only_new])
    status, data, _ = c2.post_standard(body_of(), secret=DEMO_SECRET)
    assert status == 401 and error_code(data) == "bad_signature"  # rotated out
    assert c2.post_standard(body_of(), secret=ROTATED_SECRET)[0] == 202


def test_bad_bodies(ingress):
    svc, c = ingress([standard_source(event_type="/type", message_id_header=None,
                                      message_id="/id")])

    def post(body):
        mid = "hdr-unused"
        h = sign_standard(DEMO_SECRET, mid, int(time.time()), body)
        return c.request("POST", "/v1/webhooks/demo", body, h)

    cases = [
        (b"not json", "invalid_json"),
        (b'{"id":"a","id":"b","type":"t"}', "invalid_json"),
        (b"[" * 100 + b"]" * 100, "invalid_json"),
        (b'{"type":"t"}', "missing_field"),
        (b'{"id":"m1"}', "missing_field"),
        (b'{"id":17,"type":"t"}', "invalid_field"),
        (b'{"id":"","type":"t"}', "invalid_field"),
        (json.dumps({"id": "x" * 257, "type": "t"}).encode(), "field_too_long"),
        (json.dumps({"id": "m", "type": "t" * 129}).encode(), "field_too_long"),
    ]
    for body, code in cases:
        status, data, _ = post(body)
        assert status == 400, (body[:40], data)
        assert error_code(data) == code, body[:40]
    assert post(json.dumps({"id": "x" * 256, "type": "t" * 128}).encode())[0] == 202
    # The deepest body accepted (64 levels, the object included) is read on a worker's stack;
    # one level more is refused.
    deep = b'{"id":"deep-%d","type":"t","d":' + b"[" * 63 + b"]" * 63 + b"}"
    assert post(deep % 64)[0] == 202
    status, data, _ = post(b'{"id":"deep-65","type":"t","d":' + b"[" * 64 + b"]" * 64 + b"}")
    assert status == 400 and error_code(data) == "invalid_json"


def test_routing_method_type_size(ingress):
    svc, c = ingress([standard_source(max_body=1000)])
    status, data, h = c.request("POST", "/v1/webhooks/nope", b"{}", {})
    assert status == 404 and error_code(data) == "unknown_source" and h["x-request-id"]
    status, data, h = c.request("GET", "/v1/webhooks/demo")
    assert status == 405 and error_code(data) == "method_not_allowed" and h["allow"] == "POST"
    status, data, _ = c.request("GET", "/nothing/here")
    assert status == 404 and error_code(data) == "not_found"
    body = body_of()
    hdrs = sign_standard(DEMO_SECRET, "m1", int(time.time()), body)
    status, data, _ = c.request("POST", "/v1/webhooks/demo", body, {**hdrs, "Content-Type": "text/plain"})
    assert status == 415 and error_code(data) == "unsupported_media_type"
    status, data, _ = c.request("POST", "/v1/webhooks/demo", body,
                                {**hdrs, "Content-Type": "application/json; charset=utf-8"})
    assert status == 202
    big = json.dumps({"type": "t", "pad": "x" * 1200}).encode()
    status, data, _ = c.post_standard(big)
    assert status == 413 and error_code(data) == "body_too_large"
    # Chunked: no Content-Length, the cap is enforced while reading.
    c2 = Client(svc.port)
    c2.conn.putrequest("POST", "/v1/webhooks/demo")
    for k, v in {**sign_standard(DEMO_SECRET, "m2", int(time.time()), big),
                 "Content-Type": "application/json", "Transfer-Encoding": "chunked"}.items():
        c2.conn.putheader(k, v)
    c2.conn.endheaders()
    try:  # the server may answer and close before the last chunks are sent
        for i in range(0, len(big), 300):
            part = big[i:i + 300]
            c2.conn.send(b"%x\r\n%s\r\n" % (len(part), part))
        c2.conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    r = c2.conn.getresponse()
    assert r.status == 413 and error_code(r.read()) == "body_too_large"
    # A chunked body under the cap is accepted.
    c3 = Client(svc.port)
    small = body_of()
    c3.conn.putrequest("POST", "/v1/webhooks/demo")
    for k, v in {**sign_standard(DEMO_SECRET, "m3", int(time.time()), small),
                 "Content-Type": "application/json", "Transfer-Encoding": "chunked"}.items():
        c3.conn.putheader(k, v)
    c3.conn.endheaders()
    c3.conn.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(small), small))
    r = c3.conn.getresponse()
    assert r.status == 202, r.read()


def test_alias_health_and_metrics(ingress):
    svc, c = ingress([standard_source("first"), standard_source("demo")], default_source="demo")
    body = body_of()
    h = sign_standard(DEMO_SECRET, "m-alias", int(time.time()), body)
    status, data, _ = c.request("POST", "/api/webhooks", body, h)
    assert status == 202 and json.loads(data)["message_id"] == "m-alias"
    for path in ("/healthz", "/readyz"):
        status, data, h = c.request("GET", path)
        assert status == 200 and h["x-request-id"], path
    assert json.loads(c.request("GET", "/readyz")[1])["kafka"] is True
    c.request("POST", "/v1/webhooks/demo", body, {})
    # /metrics is not on the webhook port: it tells what each source receives.
    status, data, _ = c.request("GET", "/metrics")
    assert status == 404 and error_code(data) == "not_found"
    status, text = metrics_text(svc)
    assert status == 200
    # ... and the metrics port takes no webhooks.
    m = Client(metrics_port(svc))
    h = sign_standard(DEMO_SECRET, "m-on-metrics-port", int(time.time()), body)
    status, data, _ = m.request("POST", "/v1/webhooks/demo", body, h)
    assert status == 404 and error_code(data) == "not_found"
    m.close()
    assert metric_value(text, "hookline_ingress_requests_total", 'source="demo",status="202"') == 1
    assert metric_value(text, "hookline_ingress_requests_total", 'source="demo",status="401"') == 1
    assert metric_value(text, "hookline_ingress_ack_latency_seconds_count") == 1
    for name in ("hookline_ingress_in_flight", "hookline_ingress_producer_queue_depth",
                 "hookline_ingress_delivery_errors_total", "hookline_ingress_lineage_dropped_total"):
        assert metric_value(text, name) is not None, name


def test_answer_comes_with_the_delivery_report(ingress):
    """The worker that waits for Kafka's acknowledgement is woken by the delivery report, not
    by its deadline: with ack_timeout_ms at 60 s, ten accepted requests in a row are answered
    together in well under one deadline (a report that failed to wake its waiter would hold
    each request for the whole minute, or past the client's own timeout)."""
    svc, c = ingress(ack_timeout_ms=60000)
    status, _, _ = c.post_standard(body_of())  # the producer's first record: metadata, the id
    assert status == 202
    t0 = time.monotonic()
    for i in range(10):
        status, data, _ = c.post_standard(body_of(seq=i))
        assert status == 202, data
    assert time.monotonic() - t0 < sanitizers.slack(30)


def test_rate_limit(ingress):
    svc, c = ingress([standard_source(rate_per_sec=2, burst=3)])
    statuses = []
    for _ in range(6):
        status, data, h = c.post_standard(body_of())
        statuses.append(status)
        if status == 429:
            assert error_code(data) == "rate_limited" and int(h["retry-after"]) >= 1
    assert statuses[:3] == [202, 202, 202] and 429 in statuses[3:]
    time.sleep(1.1)
    assert c.post_standard(body_of())[0] == 202


def test_other_schemes(ingress, tmp_path, topics, kafka_consume):
    (tmp_path / "stripe").write_text("whsec_stripe_test_secret")
    (tmp_path / "gh").write_text("It's a Secret to Everybody")
    (tmp_path / "tok").write_text("tok-abc-0123456789")
    for name in ("stripe", "gh", "tok"):
        (tmp_path / name).chmod(0o600)  # secret files must be private
    sources = [
        {"name": "stripe", "scheme": "stripe", "secrets": [{"file": str(tmp_path / "stripe")}],
         "message_id": "/id", "event_type": "/type"},
        {"name": "github", "scheme": "hmac-sha256", "header": "X-Hub-Signature-256",
         "prefix": "sha256=", "secrets": [{"file": str(tmp_path / "gh")}],
         "message_id_header": "X-GitHub-Delivery", "event_type_header": "X-GitHub-Event"},
        {"name": "ops", "scheme": "bearer", "secrets": [{"file": str(tmp_path / "tok")}]},
    ]
    svc, c = ingress(sources)
    body = json.dumps({"id": "evt_1", "type": "charge.succeeded"}).encode()
    ok = sign_stripe("whsec_stripe_test_secret", int(time.time()), body)
    assert c.request("POST", "/v1/webhooks/stripe", body, ok)[0] == 202
    bad = sign_stripe("whsec_other", int(time.time()), body)
    assert error_code(c.request("POST", "/v1/webhooks/stripe", body, bad)[1]) == "bad_signature"
    gh = {**sign_github("It's a Secret to Everybody", body), "X-GitHub-Delivery": "d-1", "X-GitHub-Event": "push"}
    assert c.request("POST", "/v1/webhooks/github", body, gh)[0] == 202
    assert c.request("POST", "/v1/webhooks/github", body + b" ", gh)[0] == 401
    b2 = json.dumps({"messageId": "m", "eventType": "e"}).encode()
    assert c.request("POST", "/v1/webhooks/ops", b2, {"Authorization": "Bearer tok-abc-0123456789"})[0] == 202
    assert c.request("POST", "/v1/webhooks/ops", b2, {"Authorization": "Bearer tok-abd"})[0] == 401
    # What authenticated each event travels with it, except a bearer token, which never does.
    msgs = {m.headers["hl-source"].decode(): m for m in kafka_consume(topics["events"], 3, timeout=20)}
    assert sorted(msgs) == ["github", "ops", "stripe"]
    assert json.loads(msgs["stripe"].headers["hl-signature-headers"]) == {"stripe-signature": ok["Stripe-Signature"]}
    assert json.loads(msgs["github"].headers["hl-signature-headers"]) == {
        "x-hub-signature-256": gh["X-Hub-Signature-256"]}
    assert "hl-signature-headers" not in msgs["ops"].headers
    assert all(b"tok-abc" not in v for _, v in msgs["ops"].header_list)
    for m in msgs.values():
        assert m.headers["hl-body-sha256"].decode() == hashlib.sha256(m.value).hexdigest()


def test_keep_alive_and_slow_client(ingress):
    svc, c = ingress()
    # A slow client sends half a body and stalls: it gets 408 or a closed connection within
    # the request timeout (2 s here), and does not hold up others meanwhile.
    s = socket.create_connection(("127.0.0.1", svc.port))
    s.sendall(b"POST /v1/webhooks/demo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 100\r\n\r\n{\"type\":")
    t0 = time.monotonic()
    for _ in range(3):  # the same keep-alive connection serves several requests meanwhile
        assert c.post_standard(body_of())[0] == 202
    s.settimeout(10)
    data = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    elapsed = time.monotonic() - t0
    s.close()
    assert elapsed < sanitizers.slack(3 * REQUEST_TIMEOUT_S), elapsed
    if data:
        assert data.startswith(b"HTTP/1.1 408") or data.startswith(b"HTTP/1.1 400"), data[:60]


def test_oversized_headers_get_json_error(ingress):
    svc, c = ingress(max_header_bytes=2048)
    s = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
    s.sendall(b"POST /v1/webhooks/demo HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4000 + b"\r\n\r\n")
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    s.close()
    assert data.split(b" ")[1] in (b"413", b"431", b"400"), data[:80]
    assert b"X-Request-Id:" in data


def test_slow_headers_are_cut_off(ingress):
    """A client trickling its headers (one byte every 200 ms) is disconnected once the request
    timeout (2 s here) has passed, instead of holding a worker."""
    svc, c = ingress()
    s = socket.create_connection(("127.0.0.1", svc.port))
    t0 = time.monotonic()
    closed = False
    try:
        for b in b"POST /v1/webhooks/demo HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
            s.sendall(bytes([b]))
            time.sleep(0.2)
            if time.monotonic() - t0 > 15:
                break
        s.settimeout(5)
        data = s.recv(100)  # b"": closed; otherwise it must be an error answer
        closed = data == b"" or data.startswith(b"HTTP/1.1 4")
    except OSError:
        closed = True
    elapsed = time.monotonic() - t0
    s.close()
    assert closed and elapsed < sanitizers.slack(4 * REQUEST_TIMEOUT_S), elapsed
    assert c.post_standard(body_of())[0] == 202


def test_asymmetric_schemes(ingress):
    """SendGrid's ECDSA P-256 event webhook and Standard Webhooks v1a (Ed25519), with keys
    made here and signatures made with the cryptography package."""
    import base64

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    ec_key = ec.generate_private_key(ec.SECP256R1())
    spki = ec_key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    raw = ed_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    sources = [
        {"name": "sendgrid", "scheme": "sendgrid", "public_keys": [base64.b64encode(spki).decode()],
         "message_id": "/0/sg_event_id", "event_type": "/0/event"},
        {"name": "v1a", "scheme": "standard-webhooks",
         "public_keys": ["whpk_" + base64.b64encode(raw).decode()],
         "message_id_header": "webhook-id", "event_type": "/type"},
    ]
    svc, c = ingress(sources)
    body = json.dumps([{"email": "a@example.com", "event": "delivered", "sg_event_id": "sg-1"}]).encode() + b"\r\n"
    ts = str(int(time.time()))
    sig = base64.b64encode(ec_key.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
    h = {"X-Twilio-Email-Event-Webhook-Signature": sig, "X-Twilio-Email-Event-Webhook-Timestamp": ts}
    status, data, _ = c.request("POST", "/v1/webhooks/sendgrid", body, h)
    assert status == 202 and json.loads(data)["message_id"] == "sg-1"
    status, data, _ = c.request("POST", "/v1/webhooks/sendgrid", body.replace(b"delivered", b"bounce"), h)
    assert status == 401 and error_code(data) == "bad_signature"
    b2 = body_of("order.shipped")
    content = f"msg_v1a.{ts}.".encode() + b2
    h2 = {"webhook-id": "msg_v1a", "webhook-timestamp": ts,
          "webhook-signature": "v1a," + base64.b64encode(ed_key.sign(content)).decode()}
    assert c.request("POST", "/v1/webhooks/v1a", b2, h2)[0] == 202
    h2["webhook-id"] = "msg_v1b"
    assert error_code(c.request("POST", "/v1/webhooks/v1a", b2, h2)[1]) == "bad_signature"


def test_fast_ack_mode(ingress, topics, kafka_consume):
    svc, c = ingress(ack_mode="fast")
    status, data, _ = c.post_standard(body_of(), msg_id="msg_fast")
    assert status == 202
    msgs = kafka_consume(topics["events"], 1, timeout=20)
    assert [m.key for m in msgs] == [b"msg_fast"]


def test_tls(service, topics, free_port, tmp_path):
    """With tls_cert and an "s" listen port the ingress speaks TLS 1.2+ only."""
    import datetime
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    (tmp_path / "key.pem").chmod(0o600)  # key files must be private
    port = free_port()
    cfg = ingress_config(port, topics, [standard_source()])
    cfg["http"].update({"listen": f"127.0.0.1:{port}s", "tls_cert": str(tmp_path / "cert.pem"),
                        "tls_key": str(tmp_path / "key.pem")})
    # The harness reads the port from http.listen, which the "s" suffix confuses: pass the file.
    (tmp_path / "ingress.yaml").write_text(dump_yaml(cfg))
    svc = service("ingress", None, env=ENV, wait_healthy=False,
                  args=["--config", str(tmp_path / "ingress.yaml")])
    ctx = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    ctx.check_hostname = False
    deadline = time.monotonic() + 20
    while True:
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
            conn.request("GET", "/healthz")
            r = conn.getresponse()
            r.read()
            assert r.status == 200
            break
        except (ConnectionRefusedError, ssl.SSLError):
            assert svc.running() and time.monotonic() < deadline, svc.log_tail()
            time.sleep(0.1)
    body = body_of()
    conn.request("POST", "/v1/webhooks/demo", body=body,
                 headers={"Content-Type": "application/json",
                          **sign_standard(DEMO_SECRET, "msg_tls", int(time.time()), body)})
    r = conn.getresponse()
    assert r.status == 202, r.read()
    r.read()
    assert conn.sock.version() in ("TLSv1.2", "TLSv1.3")
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        c11 = http.client.HTTPSConnection("127.0.0.1", port, context=old, timeout=5)
        c11.request("GET", "/healthz")
        c11.getresponse()


def test_unusable_secrets_refused_at_start(service, topics, free_port, tmp_path):
    """A secret file readable by its group, one holding a NUL byte, raw secrets under 16
    bytes, and a secret variable set but empty (beside a good file) stop the start with exit 2 and a message naming the source; the secret itself is never
    printed. With secret_files_shared the group-readable file is accepted."""
    from harness.procs import run_binary
    (tmp_path / "nul").write_bytes(b"0123456789abcdef\x00ghijklmnop\n")
    (tmp_path / "nul").chmod(0o600)
    (tmp_path / "shared").write_text("whsec_stripe_secret_of_good_length\n")
    (tmp_path / "shared").chmod(0o640)
    (tmp_path / "good").write_text("whsec_stripe_secret_of_good_length\n")
    (tmp_path / "good").chmod(0o600)
    cases = [
        ({"name": "groupread", "scheme": "stripe", "secrets": [{"file": str(tmp_path / "shared")}]},
         {}, "readable by group or others"),
        ({"name": "nulfile", "scheme": "stripe", "secrets": [{"file": str(tmp_path / "nul")}]},
         {}, "NUL byte"),
        ({"name": "shortgh", "scheme": "hmac-sha256", "header": "X-Hub-Signature-256",
          "secrets": [{"env": "HL_T_SHORT"}]}, {"HL_T_SHORT": "short-secret-15"}, "16 bytes"),
        ({"name": "shortbr", "scheme": "bearer", "secrets": [{"env": "HL_T_SHORT"}]},
         {"HL_T_SHORT": "short-secret-15"}, "16 bytes"),
        # A variable set but empty is a mistake, never a stand-in for the file beside it.
        ({"name": "emptyenv", "scheme": "stripe",
          "secrets": [{"env": "HL_T_EMPTY", "file": str(tmp_path / "good")}]},
         {"HL_T_EMPTY": ""}, "env HL_T_EMPTY, file"),
    ]
    for src, env, why in cases:
        r = run_binary("ingress", ingress_config(free_port(), topics, [src]), env=env)
        assert r.returncode == 2, (src["name"], r.returncode, r.stderr[-2000:])
        assert f"'{src['name']}'" in r.stderr and why in r.stderr, r.stderr[-2000:]
        assert "short-secret-15" not in r.stderr and "ghijklmnop" not in r.stderr
        if src["name"] == "emptyenv":
            assert "set but empty" in r.stderr, r.stderr[-2000:]
    # The opt-out for mounted Kubernetes secrets, whose mode the operator sets: it starts.
    service("ingress", ingress_config(free_port(), topics, [cases[0][0]], secret_files_shared=True))


def test_standard_message_id_follows_the_signed_family(ingress):
    """A standard-webhooks source whose message id is webhook-id (or unset) takes the signed id
    of the header family the request used: svix-id for the Svix SDK's names. A pointer stays a
    pointer."""
    sources = [standard_source(name="named"),
               standard_source(name="unset", message_id_header=None),
               standard_source(name="pointer", message_id_header=None, message_id="/id")]
    svc, c = ingress(sources)
    body = json.dumps({"type": "t", "id": "from-body"}).encode()
    for source in ("named", "unset"):
        for family in ("webhook", "svix"):
            mid = f"{family}-{source}-{uuid.uuid4().hex[:8]}"
            h = sign_standard(DEMO_SECRET, mid, int(time.time()), body, prefix=family)
            status, data, _ = c.request("POST", f"/v1/webhooks/{source}", body, h)
            assert status == 202, (source, family, data)
            assert json.loads(data)["message_id"] == mid
    h = sign_standard(DEMO_SECRET, "svix-p", int(time.time()), body, prefix="svix")
    status, data, _ = c.request("POST", "/v1/webhooks/pointer", body, h)
    assert status == 202 and json.loads(data)["message_id"] == "from-body"
