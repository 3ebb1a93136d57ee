"""The auditor's page in headless Chromium (Debian's): sign in, look up a known request id,
see its timeline, the latency histograms as SVG and the open gaps; keep a screenshot."""
import html
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests

from auditor_support import (TOKENS, LineageProducer, auditor_config, ingress_record,
                             lineage_count, persisted_record, uuid7, wait_for)
from harness import paths

CHROMIUM = "/usr/bin/chromium"


def chromium(args, url, timeout=90):
    with tempfile.TemporaryDirectory() as profile:
        cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", f"--user-data-dir={profile}", "--window-size=1200,900",
               "--virtual-time-budget=10000", *args, url]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout


def sign_in_page(tmp_path, port, token, next_path):
    """A local page that posts the sign-in form at once (what a person does by hand)."""
    p = tmp_path / "signin.html"
    p.write_text(
        "<!DOCTYPE html><html><body><form id='f' method='post' "
        f"action='http://127.0.0.1:{port}/login'>"
        f"<input name='token' value='{html.escape(token)}'>"
        f"<input name='next' value='{html.escape(next_path)}'></form>"
        "<script>document.getElementById('f').submit()</script></body></html>")
    return p.as_uri()


def test_page_shows_timeline(stack, topics, pg_schema, service, free_port, tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} absent: deploy/local/install-deps installs chromium")
    port = free_port()
    svc = service("auditor", auditor_config(stack, topics, pg_schema, port, tmp_path / "k.pem"))
    ok = ingress_record(uuid7(), message_id="page-msg", source="github")
    lost = ingress_record(uuid7(), message_id="page-gap")
    p = LineageProducer(topics["lineage"])
    for r in (ok, persisted_record(ok), lost):
        p.send(r["request_id"], r)
    p.flush()
    wait_for(lambda: lineage_count(pg_schema) == 3, 30, "rows")
    # The gap shows once its 2 s grace has passed.
    wait_for(lambda: lost["request_id"] in requests.get(
        svc.url + "/v1/gaps", headers={"Authorization": f"Bearer {TOKENS['auditor']}"},
        timeout=10).text, 15, "the gap")

    # Without a token the page is the sign-in form.
    r = requests.get(svc.url + "/?id=x", timeout=10)
    assert r.status_code == 401 and 'action="/login"' in r.text

    url = sign_in_page(tmp_path, port, TOKENS["auditor"], f"/?id={ok['request_id']}")
    dom = chromium(["--dump-dom"], url)
    assert 'id="timeline"' in dom, dom[:2000]
    timeline = dom[dom.index('id="timeline"'):dom.index("</table>", dom.index('id="timeline"'))]
    assert ok["request_id"] in timeline
    assert "stage-ingress" in timeline and "stage-persisted" in timeline
    assert "github" in timeline and "page-msg" in timeline
    for stage in ("ack", "queue", "persist", "e2e"):
        assert f'id="hist-{stage}"' in dom
    assert "<svg" in dom and "<rect" in dom
    gaps = dom[dom.index('id="gaps"'):]
    assert lost["request_id"] in gaps and ok["request_id"] not in gaps
    assert "<script" not in dom.split("</head>")[0]  # the page itself carries no script

    art = paths.BUILD_DIR / "test-artifacts"
    art.mkdir(parents=True, exist_ok=True)
    shot = art / "auditor-page.png"
    chromium([f"--screenshot={shot}"], url)
    assert shot.exists() and shot.stat().st_size > 10000

    # A wrong token is turned away with the form again.
    bad = chromium(["--dump-dom"], sign_in_page(tmp_path, port, "wrong-token", "/?id=x"))
    assert 'id="note"' in bad and 'id="timeline"' not in bad
