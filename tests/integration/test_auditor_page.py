"""The auditor's page in headless Chromium (Debian's): sign in, look up a known request id,
see its timeline, the latency histograms as SVG and the open gaps; keep a screenshot."""
import html
import os
import re
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


def histogram(dom, stage):
    """(the sample count the chart's heading states, [(lo, hi, count)] of its bars, its
    caption) for one stage's SVG chart."""
    start = dom.index(f'id="hist-{stage}"')
    fig = dom[start:dom.index("</figure>", start)]
    heading = re.search(rf">{stage}: (\d+) samples<", fig)
    assert heading, fig[:500]
    bars = [(int(lo), int(hi), int(n)) for lo, hi, n in
            re.findall(r"<title>(-?\d+)\u2013(-?\d+) \u00b5s: (\d+)</title>", fig)]
    return int(heading.group(1)), bars, fig[fig.index("<figcaption>"):]


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
    # Each chart holds exactly the samples sent: the ack latency of both ingress records,
    # the queue and persist times of the persisted one, and its end to end (received to
    # committed). One bar each, whose bucket bounds hold the value, and tight ones (the
    # histogram's buckets are a few per cent wide); the axis and caption say the same.
    e2e = ok["latency_us"] + 3000 + 2000  # persisted_record's default queue_us and persist_us
    want = {"ack": (2, ok["latency_us"]), "queue": (1, 3000), "persist": (1, 2000),
            "e2e": (1, e2e)}
    for stage, (count, value) in want.items():
        samples, bars, caption = histogram(dom, stage)
        assert samples == count, (stage, samples, bars)
        assert len(bars) == 1 and bars[0][2] == count, (stage, bars)
        lo, hi, _ = bars[0]
        assert lo <= value <= hi and hi - lo <= value * 0.1, (stage, value, lo, hi)
        assert f">{lo} \u00b5s</text>" in dom and f">{hi} \u00b5s</text>" in dom, stage
        p50 = int(re.search(r"p50 (\d+)", caption).group(1))
        assert lo <= p50 <= hi, (stage, p50, lo, hi)
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
