#!/usr/bin/env python3
"""Generates ingress_corpus.jsonl and auditor_corpus.jsonl: hostile requests with the answer
each must get (status and error.code). Deterministic: no clock, no randomness; timestamps are
written as offsets that tests/integration/test_badinput.py resolves when it sends.

Ingress case fields:
  name       unique, stable
  method     request method
  path       request target
  headers    [[name, value], ...] sent after the signing headers (so a repeat is a duplicate);
             "{now}", "{now+N}", "{now-N}" are replaced by the Unix time
  body_b64   the body bytes, base64
  sign       null: send headers as given; else {"ts_offset": s, "signed_body_b64": b64 or
             null (= the body), "id": webhook id or null} = sign validly with the test
             source's secret for the scheme of the path's source
  sign_as    (optional) the source whose secret and scheme sign, when the path does not end
             in a source's name
  transport  "plain" (Content-Length set from the body), "lying_cl" (send header
             Content-Length: cl and body bytes as given, then half-close), "chunked"
             (Transfer-Encoding: chunked, chunk size `chunk`), "raw" (send raw_b64 verbatim)
  expect_status, expect_code (null when the answer has no JSON error, i.e. 202)

Sources the test ingress runs (see test_badinput.py): sw standard-webhooks (message id from
webhook-id, event type /type), st stripe, gh hmac-sha256 hex with prefix sha256=, sh
hmac-sha256 base64 (Shopify style), br bearer; st/gh/sh/br take /messageId and /eventType from
the body. max_body is 8192 for every source."""
import base64
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
MAX_BODY = 8192

cases = []


def b64(b):
    return base64.b64encode(b).decode()


def add(name, path, body=b"", headers=(), sign=None, method="POST", status=202, code=None,
        transport="plain", ctype="application/json", **extra):
    if isinstance(body, str):
        body = body.encode()
    hdrs = [list(h) for h in headers]
    if ctype is not None and not any(h[0].lower() == "content-type" for h in hdrs):
        hdrs.insert(0, ["Content-Type", ctype])
    c = {"name": name, "method": method, "path": path, "headers": hdrs, "body_b64": b64(body),
         "sign": sign, "transport": transport, "expect_status": status, "expect_code": code}
    c.update(extra)
    assert all(x["name"] != name for x in cases), name
    cases.append(c)


def signed(ts_offset=0, signed_body=None, wid=None):
    return {"ts_offset": ts_offset,
            "signed_body_b64": None if signed_body is None else b64(signed_body), "id": wid}


SIGN = signed()
SW, ST, GH, SH, BR = ("/v1/webhooks/" + s for s in ("sw", "st", "gh", "sh", "br"))


def ev(mid="m-1", et="order.created", **more):
    d = {"messageId": mid, "eventType": et}
    d.update(more)
    return json.dumps(d, separators=(",", ":")).encode()


SWBODY = b'{"type":"order.created","n":1}'
GOOD = ev()

# ---- routing, methods, content types --------------------------------------------------------
for p, code in (("/v1/webhooks/nope", "unknown_source"), ("/v1/webhooks/", "unknown_source"),
                ("/v1/webhooks/SW", "unknown_source"), ("/v1/webhooks/sw/extra", "unknown_source"),
                ("/v1/webhooks/" + "a" * 300, "unknown_source"), ("/v1/webhooks/sw%20", "unknown_source"),
                ("/v1/webhooks/gh;x", "unknown_source"),
                ("/v1/webhook/sw", "not_found"), ("/", "not_found"), ("/v2/webhooks/sw", "not_found"),
                ("/api/webhook", "not_found")):
    add(f"route {p[:40]}", p, GOOD, status=404, code=code)
# NUL, separators and dot segments, percent-encoded or not, around a real source's name: signed
# with that source's secret (sign_as), so only the routing can refuse them. The name is decoded
# once and must then be [a-z0-9_-]{1,64} as a whole; encoded letters are still letters.
for p in ("sw%00x", "sw%00", "%00sw", "sw%2Fx", "sw%2fx", "sw%5Cx", "x/%2e%2e/sw", "x/../sw",
          "./sw", "sw%2e", "sw.", "sw%", "sw%0", "sw%zz", "sw%2500", "sw%0A", "sw;x", "sw%3Bx"):
    add(f"route encoded /v1/webhooks/{p}", "/v1/webhooks/" + p, SWBODY, sign=SIGN, sign_as="sw",
        status=404, code="unknown_source")
add("route encoded letters /v1/webhooks/%73w", "/v1/webhooks/%73w", SWBODY, sign=SIGN,
    sign_as="sw")
add("route alias with NUL", "/api/webhooks%00", SWBODY, sign=SIGN, sign_as="sw", status=404,
    code="not_found")
# Overlong UTF-8 and double encodings of separators and dots, other spellings of the prefix and
# the alias: none selects a source. A query string is not part of the name. civetweb matches
# handlers on a normalised, case-folded path, so some reach the webhook handler, whose check of
# the path as sent refuses them.
for p in ("sw%c0%afx", "sw%C0%AFx", "%c0%ae%c0%ae/sw", "%e0%80%afsw", "%252e%252e/sw", "sw%252F",
          "sw%25", "sw/", "/sw", "sw%09", "sw+", "%20sw"):
    add(f"route encoded /v1/webhooks/{p}", "/v1/webhooks/" + p, SWBODY, sign=SIGN, sign_as="sw",
        status=404, code="unknown_source")
for p, code in (("/v1/webhooks%2Fsw", "not_found"), ("/v1/webhooks%2fsw", "not_found"),
                ("/v1%2Fwebhooks/sw", "not_found"), ("//v1/webhooks/sw", "unknown_source"),
                ("/v1//webhooks/sw", "unknown_source"), ("/V1/WEBHOOKS/sw", "unknown_source"),
                ("/api/webhooks/", "not_found"), ("/api/webhooks%2F", "not_found"),
                ("/api/webhooks/sw", "not_found"), ("/API/WEBHOOKS", "unknown_source"),
                ("/api/webhooks/..", "not_found"), ("/x/../v1/webhooks/sw", "unknown_source")):
    add(f"route spelled {p}", p, SWBODY, sign=SIGN, sign_as="sw", status=404, code=code)
add("route with query /v1/webhooks/sw?x=1", "/v1/webhooks/sw?x=1", SWBODY, sign=SIGN,
    sign_as="sw")
add("route alias with query", "/api/webhooks?source=gh", SWBODY, sign=SIGN, sign_as="sw")
add("route encoded letters all /v1/webhooks/%73%77", "/v1/webhooks/%73%77", SWBODY, sign=SIGN,
    sign_as="sw")
add("unknown source with GET", "/v1/webhooks/nope", method="GET", status=404, code="unknown_source")
for m in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS"):
    for src, path in (("sw", SW), ("gh", GH)):
        add(f"method {m} {src}", path, GOOD if m in ("PUT", "PATCH") else b"", method=m,
            status=405, code="method_not_allowed")
add("method GET on alias", "/api/webhooks", method="GET", status=405, code="method_not_allowed")
for ct in (None, "", "text/plain", "application/xml", "application/jsonx", "application/json-patch",
           "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "json",
           "text/json", "application/+json", "application/ json", "*/*"):
    add(f"content-type {ct!r}", GH, GOOD, sign=SIGN, ctype=ct, status=415,
        code="unsupported_media_type")
for i, ct in enumerate(("application/json; charset=utf-8", "APPLICATION/JSON",
                        "application/vnd.example+json")):
    add(f"content-type ok {ct}", GH, ev(f"ct-ok-{i}"), sign=SIGN, ctype=ct)

# ---- body size, lying Content-Length, chunked ------------------------------------------------
big = ev("big", pad="x" * MAX_BODY)
add("body over limit", GH, big, sign=SIGN, status=413, code="body_too_large")
add("body over limit unsigned", SW, big, status=413, code="body_too_large")
add("body at limit", GH, ev("at-limit", pad="y" * (MAX_BODY - len(ev("at-limit", pad="")))), sign=SIGN)
add("body one over limit", GH, ev("over-1", pad="y" * (MAX_BODY + 1 - len(ev("over-1", pad="")))),
    sign=SIGN, status=413, code="body_too_large")
add("lying content-length huge", GH, GOOD, sign=SIGN, transport="lying_cl", cl=50_000_000,
    status=413, code="body_too_large")
add("lying content-length just over", GH, GOOD, sign=SIGN, transport="lying_cl", cl=MAX_BODY + 1,
    status=413, code="body_too_large")
add("lying content-length longer than body", GH, GOOD, sign=SIGN, transport="lying_cl",
    cl=len(GOOD) + 40, status=400, code="bad_request")
add("lying content-length shorter than body", GH, GOOD, sign=SIGN, transport="lying_cl",
    cl=len(GOOD) - 5, status=401, code="bad_signature")
# civetweb refuses an unusable Content-Length itself (411) before the ingress sees the request.
add("content-length not a number", GH, GOOD, transport="lying_cl", cl="abc", status=411,
    code="bad_request")
add("content-length negative", GH, GOOD, transport="lying_cl", cl="-1", status=411,
    code="bad_request")
add("chunked over limit", GH, big, sign=SIGN, transport="chunked", chunk=1000, status=413,
    code="body_too_large")
add("chunked over limit tiny chunks", SW, b"[" * 100 + b"x" * MAX_BODY, transport="chunked",
    chunk=100, status=413, code="body_too_large")
add("chunked within limit", GH, ev("chunked-ok"), sign=SIGN, transport="chunked", chunk=7)
add("chunked bad signature", GH, ev("chunked-bad"), headers=[["X-Hub-Signature-256", "sha256=" + "0" * 64]],
    transport="chunked", chunk=5, status=401, code="bad_signature")
add("chunked malformed size", GH, b"", transport="raw",
    raw_b64=b64(b"POST /v1/webhooks/gh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"), status=400,
    code="bad_request")
add("empty body", GH, b"", sign=SIGN, status=400, code="invalid_json")

# ---- header floods and malformed requests ----------------------------------------------------
# civetweb keeps the first 64 headers; the flood pushes the signature out, which fails closed.
add("header flood 100 headers", GH, GOOD, headers=[[f"X-Flood-{i}", "v" * 20] for i in range(100)],
    status=401, code="missing_signature")
# Past 64 headers civetweb stops reading headers and the rest (Content-Length included) is read
# as body, so the signature no longer matches: fails closed.
add("header flood before valid signature", GH, ev("flood"), sign=SIGN,
    headers=[[f"X-Flood-{i}", "v"] for i in range(200)], status=401, code="bad_signature")
add("header flood repeated signature", GH, GOOD, sign=SIGN,
    headers=[["X-Hub-Signature-256", "sha256=" + "0" * 64]] * 100, status=401,
    code="malformed_signature")
# Over max_header_bytes civetweb answers 400 itself (not 413/431).
add("header value over max_header_bytes", GH, GOOD, headers=[["X-Big", "v" * 20000]], status=400,
    code="bad_request")
add("many headers over max_header_bytes", GH, GOOD,
    headers=[[f"X-H{i}", "v" * 300] for i in range(60)], status=400, code="bad_request")
# civetweb refuses a tab inside a header value (400) before the ingress sees it.
add("tab inside header value", GH, GOOD, headers=[["X-Hub-Signature-256", "sha256=\t" + "0" * 64]],
    status=400, code="bad_request")
add("request line garbage", GH, b"", transport="raw", raw_b64=b64(b"\x00\x01\x02 garbage\r\n\r\n"),
    status=400, code="bad_request")
add("request line no version", GH, b"", transport="raw", raw_b64=b64(b"POST /v1/webhooks/gh\r\n\r\n"),
    status=400, code="bad_request")
add("header without colon", GH, b"", transport="raw",
    raw_b64=b64(b"POST /v1/webhooks/gh HTTP/1.1\r\nHost: x\r\nnocolon\r\nContent-Length: 0\r\n\r\n"),
    status=400, code="bad_request")

# ---- standard-webhooks signature headers -----------------------------------------------------
VALID_MAC_B64 = b64(b"\x00" * 32)  # well formed, matches nothing
H64 = "0" * 64


def sw_hdrs(sig="v1," + VALID_MAC_B64, wid="msg-x", ts="{now}", fam="webhook"):
    h = []
    if wid is not None:
        h.append([f"{fam}-id", wid])
    if ts is not None:
        h.append([f"{fam}-timestamp", ts])
    if sig is not None:
        h.append([f"{fam}-signature", sig])
    return h


add("sw no signature headers", SW, SWBODY, status=401, code="missing_signature")
add("sw missing signature", SW, SWBODY, headers=sw_hdrs(sig=None), status=401, code="missing_signature")
add("sw missing id", SW, SWBODY, headers=sw_hdrs(wid=None), status=401, code="missing_signature")
add("sw missing timestamp", SW, SWBODY, headers=sw_hdrs(ts=None), status=401, code="missing_signature")
add("sw mixed families", SW, SWBODY, headers=[["webhook-signature", "v1," + VALID_MAC_B64],
                                              ["svix-id", "m"], ["svix-timestamp", "{now}"]],
    status=401, code="missing_signature")
for i, sig in enumerate(("", " ", "   ", "v1", "v1,", "v1,!!!!", "v1,AAAA", "v2," + VALID_MAC_B64,
                         "v1," + b64(b"\x00" * 31), "v1," + b64(b"\x00" * 33),
                         "v1," + VALID_MAC_B64.rstrip("="), "v1," + VALID_MAC_B64[:-2] + "B=",
                         "v1," + b64(b"\xfb\xff" * 16).replace("+", "-").replace("/", "_"),
                         "V1," + VALID_MAC_B64, ",", ",,,", "v1;" + VALID_MAC_B64,
                         "v1a," + b64(b"\x00" * 63),
                         "v1," + VALID_MAC_B64[:20] + " " + VALID_MAC_B64[20:],
                         " ".join(["v1," + VALID_MAC_B64] * 17), "v1," + "A" * 5000,
                         "\xc3\xa9\xc3\xa9")):
    add(f"sw malformed signature {i}", SW, SWBODY, headers=sw_hdrs(sig=sig), status=401,
        code="malformed_signature")
for i, ts in enumerate(("", "abc", "-5", "1.5", "1 1", "0x10", "+1700000000", "1" * 13,
                        "1e9", "{now}000", "１２３")):
    add(f"sw malformed timestamp {i}", SW, SWBODY, headers=sw_hdrs(ts=ts), status=401,
        code="malformed_signature")
add("sw empty id", SW, SWBODY, headers=sw_hdrs(wid=""), status=401, code="malformed_signature")
add("sw over-long id", SW, SWBODY, headers=sw_hdrs(wid="i" * 257), status=401, code="malformed_signature")
add("sw repeated signature header", SW, SWBODY, sign=SIGN,
    headers=[["webhook-signature", "v1," + VALID_MAC_B64]], status=401, code="malformed_signature")
add("sw repeated id header", SW, SWBODY, sign=SIGN, headers=[["webhook-id", "other"]], status=401,
    code="malformed_signature")
add("sw repeated timestamp header", SW, SWBODY, sign=SIGN, headers=[["webhook-timestamp", "{now}"]],
    status=401, code="malformed_signature")
add("sw wrong mac", SW, SWBODY, headers=sw_hdrs(), status=401, code="bad_signature")
add("sw v1a without public key", SW, SWBODY, headers=sw_hdrs(sig="v1a," + b64(b"\x01" * 64)),
    status=401, code="bad_signature")
add("sw wrong mac stale", SW, SWBODY, headers=sw_hdrs(ts="{now-100000}"), status=401, code="bad_signature")
add("sw 16 entries none match", SW, SWBODY, headers=sw_hdrs(sig=" ".join(["v1," + VALID_MAC_B64] * 16)),
    status=401, code="bad_signature")
add("sw replay on another body", SW, b'{"type":"order.created","n":2}',
    sign=signed(signed_body=SWBODY), status=401, code="bad_signature")
add("sw replay with another id", SW, SWBODY, sign=signed(wid="orig-id"),
    headers=[], status=202, note="a valid signature for its own id is fine")
add("sw stale timestamp", SW, SWBODY, sign=signed(ts_offset=-1000), status=401, code="stale_timestamp")
add("sw future timestamp", SW, SWBODY, sign=signed(ts_offset=1000), status=401, code="stale_timestamp")
add("sw ancient timestamp", SW, SWBODY, sign=signed(ts_offset=-1_700_000_000), status=401,
    code="stale_timestamp")
add("sw far future timestamp", SW, SWBODY, sign=signed(ts_offset=10**11), status=401,
    code="stale_timestamp")
add("sw timestamp inside tolerance", SW, SWBODY, sign=signed(ts_offset=-250))
add("sw valid", SW, SWBODY, sign=SIGN)
add("sw valid id 256 bytes", SW, SWBODY, sign=signed(wid="w" * 256))
# Signed correctly with the svix-* names: this source names webhook-id as its message id, which
# means the signed id of whichever family the request uses, here svix-id.
add("sw svix family without webhook-id", SW, SWBODY, sign=dict(SIGN, family="svix"))
# Leading whitespace of a header value is not part of it (HTTP), so these are well formed.
add("sw timestamp leading space", SW, SWBODY, headers=sw_hdrs(ts=" {now}"), status=401,
    code="bad_signature")
add("gh value leading space", GH, GOOD, headers=[["X-Hub-Signature-256", " sha256=" + H64]],
    status=401, code="bad_signature")
add("sw valid among bad entries", SW, SWBODY, sign=dict(SIGN, extra_entries=["v2,xyz", "v1," + VALID_MAC_B64]))
add("sw signed but body missing type", SW, b'{"n":1}', sign=SIGN, status=400, code="missing_field")
add("sw signed but invalid json", SW, b'{"type":', sign=SIGN, status=400, code="invalid_json")

# ---- stripe --------------------------------------------------------------------------------

add("st missing header", ST, GOOD, status=401, code="missing_signature")
for i, v in enumerate(("", "t=", "v1=" + H64, "t={now}", "t=abc,v1=" + H64, "t=1,t=2,v1=" + H64,
                       "t={now},v1=" + "z" * 64, "t={now},v1=" + "0" * 63, "t={now},v1=" + "0" * 62,
                       "t={now},v1=" + "0" * 66, "garbage", "t={now},,v1=" + H64, ",", "t={now},v1",
                       "t={now};v1=" + H64, "t = {now},v1=" + H64, "t={now},v1=" + H64 + " ",
                       ",".join(["t={now}"] + ["v1=" + H64] * 40), "t={now},v1=" + "0" * 5000,
                       "t=-1,v1=" + H64, "t=1e9,v1=" + H64, "t={now},v0=" + H64)):
    add(f"st malformed {i}", ST, GOOD, headers=[["Stripe-Signature", v]], status=401,
        code="malformed_signature")
add("st repeated header", ST, GOOD, sign=SIGN, headers=[["Stripe-Signature", "t={now},v1=" + H64]],
    status=401, code="malformed_signature")
add("st wrong mac", ST, GOOD, headers=[["Stripe-Signature", "t={now},v1=" + H64]], status=401,
    code="bad_signature")
add("st replay on another body", ST, ev("m-2"), sign=signed(signed_body=GOOD), status=401,
    code="bad_signature")
add("st stale", ST, ev("st-stale"), sign=signed(ts_offset=-1000), status=401, code="stale_timestamp")
add("st future", ST, ev("st-future"), sign=signed(ts_offset=1000), status=401, code="stale_timestamp")
add("st valid", ST, ev("st-ok"), sign=SIGN)
add("st valid uppercase hex", ST, ev("st-upper"), sign=dict(SIGN, upper=True))

# ---- hmac-sha256: GitHub style (hex with prefix) and Shopify style (base64) -----------------
add("gh missing header", GH, GOOD, status=401, code="missing_signature")
for i, v in enumerate(("", "sha256=", H64, "sha1=" + "0" * 40, "sha256=" + "z" * 64, "sha256=" + "0" * 63,
                       "sha256=" + "0" * 62, "sha256=" + "0" * 66, "SHA256=" + H64,
                       "sha256=" + H64 + " ", "sha256= " + H64, "sha256=" + "0" * 5000,
                       "sha256=" + b64(b"\x00" * 32))):
    add(f"gh malformed {i}", GH, GOOD, headers=[["X-Hub-Signature-256", v]], status=401,
        code="malformed_signature")
add("gh repeated header", GH, GOOD, sign=SIGN, headers=[["X-Hub-Signature-256", "sha256=" + H64]],
    status=401, code="malformed_signature")
add("gh wrong mac", GH, GOOD, headers=[["X-Hub-Signature-256", "sha256=" + H64]], status=401,
    code="bad_signature")
add("gh replay on another body", GH, ev("m-3"), sign=signed(signed_body=GOOD), status=401,
    code="bad_signature")
add("gh valid", GH, ev("gh-ok"), sign=SIGN)
add("gh valid uppercase hex", GH, ev("gh-upper"), sign=dict(SIGN, upper=True))
add("sh missing header", SH, GOOD, status=401, code="missing_signature")
for i, v in enumerate(("", "!!!!", "AAAA", b64(b"\x00" * 31), b64(b"\x00" * 33), VALID_MAC_B64.rstrip("="),
                       b64(b"\xfb\xff" * 16).replace("+", "-").replace("/", "_"), H64,
                       VALID_MAC_B64[:-2] + "B=")):
    add(f"sh malformed {i}", SH, GOOD, headers=[["X-Shopify-Hmac-Sha256", v]], status=401,
        code="malformed_signature")
add("sh wrong mac", SH, GOOD, headers=[["X-Shopify-Hmac-Sha256", VALID_MAC_B64]], status=401,
    code="bad_signature")
add("sh replay on another body", SH, ev("m-4"), sign=signed(signed_body=GOOD), status=401,
    code="bad_signature")
add("sh valid", SH, ev("sh-ok"), sign=SIGN)

# ---- bearer ----------------------------------------------------------------------------------
add("br missing header", BR, GOOD, status=401, code="missing_signature")
for i, v in enumerate(("", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc",
                       "Bearer " + "t" * 5000, "Bearer" + "t" * 10)):
    add(f"br malformed {i}", BR, GOOD, headers=[["Authorization", v]], status=401,
        code="malformed_signature")
add("br repeated header", BR, GOOD, sign=SIGN, headers=[["Authorization", "Bearer other"]], status=401,
    code="malformed_signature")
for i, v in enumerate(("Bearer wrong", "Bearer hl-test-bearer-token-", "Bearer hl-test-bearer-tok",
                       "Bearer HL-TEST-BEARER-TOKEN")):
    add(f"br wrong token {i}", BR, GOOD, headers=[["Authorization", v]], status=401, code="bad_signature")
add("br valid", BR, ev("br-ok"), sign=SIGN)

# ---- JSON bodies (signed validly, so the body is what is judged) ----------------------------
bad_json = {
    "lone brace": b"{", "close brace": b"}", "missing value": b'{"a":}', "open array": b"[1,2",
    "bare word": b"nul", "single quotes": b"{'messageId':'x'}", "trailing comma": b'{"a":1,}',
    "two values": b"{} {}", "trailing garbage": GOOD + b"x", "bom": b"\xef\xbb\xbf" + GOOD,
    "comment": b'{/*c*/"a":1}', "NaN": b'{"a":NaN}', "Infinity": b'{"a":Infinity}',
    "leading zero": b'{"a":01}', "hex number": b'{"a":0x1}', "unterminated string": b'{"a":"abc',
    "raw control char": b'{"messageId":"a\x01b","eventType":"e"}', "bad escape": b'{"a":"\\x41"}',
    "short unicode escape": b'{"a":"\\u12"}', "lone high surrogate": b'{"a":"\\ud800"}',
    "lone low surrogate": b'{"a":"\\udc00"}', "plus number": b'{"a":+1}', "dot number": b'{"a":.5}',
    "top-level string": b'"x"', "top-level number": b"1", "top-level null": b"null",
    "whitespace only": b"   \n\t ", "depth 65": b"[" * 65 + b"]" * 65,
    "depth 10000": b"[" * 8000, "depth 65 objects": b'{"a":' * 65 + b"1" + b"}" * 65,
    "huge integer": b'{"messageId":"x","eventType":"e","n":123456789012345678901234567890}',
    "huge real": b'{"messageId":"x","eventType":"e","n":1e400}',
    "huge negative real": b'{"messageId":"x","eventType":"e","n":-1e400}',
    "huge exponent": b'{"messageId":"x","eventType":"e","n":1e999999999999}',
    "invalid utf8 ff": b'{"messageId":"\xff","eventType":"e"}',
    "invalid utf8 overlong": b'{"messageId":"\xc0\xaf","eventType":"e"}',
    "invalid utf8 surrogate": b'{"messageId":"\xed\xa0\x80","eventType":"e"}',
    "invalid utf8 truncated": b'{"messageId":"\xe2\x82","eventType":"e"}',
    "invalid utf8 in key": b'{"\xfe":1,"messageId":"x","eventType":"e"}',
    "invalid utf8 outside string": b'{"messageId":"x","eventType":"e"}\xff',
    "nul byte in string": b'{"messageId":"a\x00b","eventType":"e"}',
    "nul byte after body": GOOD + b"\x00",
    "nul byte before body": b"\x00" + GOOD,
    "escaped nul in value": b'{"messageId":"a\\u0000b","eventType":"e"}',
    "escaped nul in key": b'{"a\\u0000":1,"messageId":"x","eventType":"e"}',
    "escaped nul in event type": b'{"messageId":"x","eventType":"\\u0000"}',
    "duplicate messageId": b'{"messageId":"a","messageId":"b","eventType":"e"}',
    "duplicate nested key": b'{"messageId":"a","eventType":"e","o":{"k":1,"k":2}}',
    "duplicate eventType": b'{"messageId":"a","eventType":"e","eventType":"e"}',
}
for k, v in bad_json.items():
    add(f"json {k}", GH, v, sign=SIGN, status=400, code="invalid_json")
for cut in (1, 2, 5, 10, 14, 15, 20, 25, len(GOOD) - 2, len(GOOD) - 1):
    add(f"json truncated at {cut}", GH, GOOD[:cut], sign=SIGN, status=400, code="invalid_json")
add("json depth 64 accepted", GH, b'{"messageId":"deep-64","eventType":"e","d":' + b"[" * 63 + b"]" * 63 + b"}",
    sign=SIGN)
add("json brackets inside string", GH, ev("brackets", s="[" * 200 + "{" * 200), sign=SIGN)
add("json same key different case", GH, b'{"messageId":"case-1","MessageId":"x","eventType":"e"}', sign=SIGN)
add("json unicode escapes", GH, ev("uni-\u00e9\U0001f600"), sign=SIGN)
add("json big but representable numbers", GH,
    b'{"messageId":"nums","eventType":"e","a":9223372036854775807,"b":1.7976931348623157e308,"c":-0.0}',
    sign=SIGN)

# ---- message id and event type ---------------------------------------------------------------
fields = [
    ("id missing", b'{"eventType":"e"}', "missing_field"),
    ("id null", b'{"messageId":null,"eventType":"e"}', "missing_field"),
    ("id empty", b'{"messageId":"","eventType":"e"}', "invalid_field"),
    ("id number", b'{"messageId":1,"eventType":"e"}', "invalid_field"),
    ("id real", b'{"messageId":1.0,"eventType":"e"}', "invalid_field"),
    ("id true", b'{"messageId":true,"eventType":"e"}', "invalid_field"),
    ("id object", b'{"messageId":{"a":"b"},"eventType":"e"}', "invalid_field"),
    ("id array", b'{"messageId":["a"],"eventType":"e"}', "invalid_field"),
    ("id 257 bytes", ev("i" * 257), "field_too_long"),
    ("id 300 multibyte", ev("\u00e9" * 150), "field_too_long"),
    ("id nested only", b'{"data":{"messageId":"x"},"eventType":"e"}', "missing_field"),
    ("type missing", b'{"messageId":"x"}', "missing_field"),
    ("type null", b'{"messageId":"x","eventType":null}', "missing_field"),
    ("type empty", b'{"messageId":"x","eventType":""}', "invalid_field"),
    ("type number", b'{"messageId":"x","eventType":7}', "invalid_field"),
    ("type array", b'{"messageId":"x","eventType":[]}', "invalid_field"),
    ("type 129 bytes", ev("x", "t" * 129), "field_too_long"),
    ("top-level array", b'[{"messageId":"x","eventType":"e"}]', "missing_field"),
    ("top-level empty object", b"{}", "missing_field"),
]
for name, body, code in fields:
    add(f"field {name}", GH, body, sign=SIGN, status=400, code=code)
add("field id 256 bytes", GH, ev("j" * 256), sign=SIGN)
add("field type 128 bytes", GH, ev("type-128", "t" * 128), sign=SIGN)
add("sw body type number", SW, b'{"type":5}', sign=SIGN, status=400, code="invalid_field")
add("sw body type 129", SW, json.dumps({"type": "t" * 129}).encode(), sign=SIGN, status=400,
    code="field_too_long")


def auditor_cases():
    """(name, method, path, token key, extra headers, expected status, expected code or None).
    Token keys: none, auditor, admin, metrics, or a literal Authorization value after 'raw:'."""
    out = []

    def a(name, path, tok="auditor", status=400, code=None, method="GET", headers=()):
        path = path.replace(" ", "%20")
        out.append({"name": name, "method": method, "path": path, "token": tok,
                    "headers": [list(h) for h in headers], "expect_status": status,
                    "expect_code": code})

    # tokens
    a("no token", "/v1/requests", tok="none", status=401)
    for i, v in enumerate(("", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "bearer",
                           "Bearer " + "t" * 5000, "Token abc", "Bearer a b")):
        a(f"malformed token {i}", "/v1/requests", tok="raw:" + v, status=401)
    a("unknown token", "/v1/requests", tok="raw:Bearer not-a-token", status=401)
    a("tab in token header", "/v1/requests", tok="raw:Bearer\tx", status=400)  # civetweb refuses it
    a("metrics token on api", "/v1/requests", tok="metrics", status=403)
    a("auditor token on checkpoints", "/v1/checkpoints", tok="auditor", method="POST", status=403)
    # The first Authorization header is the one that counts: a valid one after it does not help.
    a("repeated authorization", "/v1/requests", tok="raw:Bearer x",
      headers=[["Authorization", "{auditor}"]], status=401)
    # ids
    a("request id too long", "/v1/requests/" + "r" * 300, status=400)
    a("request id control char", "/v1/requests/a%01b", status=400)
    a("request id nul", "/v1/requests/a%00b", status=404)  # civetweb refuses %00 in a path
    a("message id too long", "/v1/messages/" + "m" * 300, status=400)
    a("message id control char", "/v1/messages/a%1fb", status=400)
    # limits
    for v in ("0", "-1", "abc", "1.5", "99999999999999999999", "", "1e3", "+5", " 5", "100000"):
        a(f"limit {v!r}", f"/v1/requests?limit={v}", status=400)
    # cursors
    for v in ("abc", "1", "1.", ".1", "-1.2", "1.-2", "+1.2", "1.2.3", "9" * 30 + ".1", "a.b", "%00.1"):
        a(f"cursor {v!r}", f"/v1/requests?cursor={v}", status=400)
    # time ranges
    for v in ("yesterday", "2026-13-01T00:00:00Z", "2026-01-32T00:00:00Z", "2026-01-01T25:00:00Z",
              "2026-01-01T00:00:00", "2026-01-01 00:00:00Z", "2026-01-01T00:00:00.1234567Z",
              "2026-01-01T00:00:00+01:00", "-5", "1e6", "99999999999999999999", "1969-12-31T23:59:59Z"):
        a(f"from {v!r}", f"/v1/requests?from={v}", status=400)
    a("to before from", "/v1/requests?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", status=400)
    # parameters
    a("unknown parameter", "/v1/requests?bogus=1", status=400)
    a("duplicate parameter", "/v1/requests?limit=1&limit=2", status=400)
    a("too many parameters", "/v1/requests?" + "&".join(f"p{i}=1" for i in range(20)), status=400)
    a("parameter value too long", "/v1/requests?source=" + "s" * 600, status=400)
    a("parameter nul", "/v1/requests?source=a%00b", status=400)
    a("bad source", "/v1/requests?source=a%20b", status=400)
    a("source too long", "/v1/requests?source=" + "s" * 65, status=400)
    a("status not integer", "/v1/requests?status=abc", status=400)
    a("gaps bad state", "/v1/gaps?state=maybe", status=400)
    a("latency bad stage", "/v1/latency?stage=nowhere", status=400)
    # The error codes of services/auditor/README.md, by case name prefix (first match wins).
    codes = [("malformed token", "malformed_token"), ("no token", "unauthorized"),
             ("unknown token", "unauthorized"), ("repeated authorization", "unauthorized"),
             ("metrics token", "forbidden"), ("auditor token", "forbidden"),
             ("request id nul", "not_found"), ("request id", "invalid_id"),
             ("message id", "invalid_id"), ("limit", "bad_integer"), ("status", "bad_integer"),
             ("cursor '%00", "bad_parameter"), ("cursor", "bad_cursor"), ("from", "bad_time"),
             ("to before", "bad_range"), ("unknown parameter", "unknown_parameter"),
             ("duplicate parameter", "duplicate_parameter"),
             ("too many parameters", "too_many_parameters"), ("parameter", "bad_parameter"),
             ("bad source", "bad_source"), ("source too long", "bad_source"),
             ("gaps bad state", "bad_state"), ("latency bad stage", "bad_stage")]
    for c in out:
        c["expect_code"] = next((code for pre, code in codes if c["name"].startswith(pre)), None)
    return out


def main():
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names))
    with open(HERE / "ingress_corpus.jsonl", "w") as f:
        for c in cases:
            f.write(json.dumps(c, sort_keys=True, ensure_ascii=True) + "\n")
    aud = auditor_cases()
    assert len({c["name"] for c in aud}) == len(aud)
    with open(HERE / "auditor_corpus.jsonl", "w") as f:
        for c in aud:
            f.write(json.dumps(c, sort_keys=True, ensure_ascii=True) + "\n")
    print(f"{len(cases)} ingress cases, {len(aud)} auditor cases")


if __name__ == "__main__":
    main()
