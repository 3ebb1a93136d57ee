"""The three services' /metrics, scraped live after traffic went through the pipeline: one naming
scheme (hookline_<service>_...), distributions as histograms, no series that can never count,
`promtool check metrics` clean, and every exported metric named in its service's README. The
shipped Prometheus configuration passes `promtool check config`, and every metric the Grafana
dashboard's PromQL names is one the services export."""
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from auditor_support import auditor_config, hdr, lineage_count, wait_for
from deploy_support import require_tool
from ingress_support import DEMO_SECRET, Client, ingress_config, metrics_text, standard_source
from persister_support import persister_config

ROOT = Path(__file__).resolve().parents[2]
OBS = ROOT / "deploy" / "observability"
SERVICES = ("ingress", "persister", "auditor")


@pytest.fixture
def pipeline(stack, topics, pg_schema, service, free_port, tmp_path):
    ing = service("ingress", ingress_config(free_port(), topics, [standard_source()]),
                  env={"HL_TEST_DEMO_SECRET": DEMO_SECRET})
    pers = service("persister", persister_config(stack, topics, pg_schema, free_port(),
                                                 f"persister-{tmp_path.name[-8:]}"))
    aud = service("auditor", auditor_config(stack, topics, pg_schema, free_port(),
                                            tmp_path / "cp.pem"))
    c = Client(ing.port)
    for i in range(10):
        status, data, _ = c.post_standard(json.dumps({"type": "t.x", "n": i}).encode(),
                                          msg_id=f"metrics-{i}")
        assert status == 202, data
    # One unknown source and one forged signature: their series count too.
    assert c.request("POST", "/v1/webhooks/nosuch", b"{}")[0] == 404
    assert c.post_standard(b'{"type":"x"}', secret="whsec_" + "A" * 32, msg_id="forged")[0] == 401
    c.close()
    wait_for(lambda: lineage_count(pg_schema) == 10 * 2 + 2, 60, "every lineage row stored")
    texts = {}
    status, texts["ingress"] = metrics_text(ing)
    assert status == 200
    for name, svc in (("persister", pers), ("auditor", aud)):
        status, body, _ = svc.get("/metrics", headers=hdr("metrics"))
        assert status == 200
        texts[name] = body.decode() if isinstance(body, bytes) else body
    return texts


def families(text):
    """{name: type} from the # TYPE lines."""
    out = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            out[name] = kind
    return out


def samples(text):
    """[(name, labels text)] of every sample line."""
    out = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s", line)
            assert m, line
            out.append((m.group(1), m.group(2) or ""))
    return out


def test_promtool_check_metrics_passes_for_every_service(pipeline):
    promtool = require_tool("promtool", "prometheus")
    for svc in SERVICES:
        r = subprocess.run([promtool, "check", "metrics"], input=pipeline[svc],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), \
            f"{svc}: promtool check metrics: {r.stdout}{r.stderr}"


def test_one_naming_scheme_and_histograms_for_distributions(pipeline):
    for svc in SERVICES:
        fams = families(pipeline[svc])
        assert fams, svc
        for name, kind in fams.items():
            assert name.startswith(f"hookline_{svc}_"), (svc, name)
        for name, labels in samples(pipeline[svc]):
            # A quantile label belongs to a summary; distributions here are histograms.
            assert "quantile=" not in labels, (svc, name, labels)
    assert families(pipeline["persister"])["hookline_persister_batch_size"] == "histogram"
    assert 'hookline_persister_batch_size_bucket{le="1"}' in pipeline["persister"]


def test_no_series_that_can_never_count(pipeline):
    ing = pipeline["ingress"]
    unknown = [lb for name, lb in samples(ing)
               if name == "hookline_ingress_requests_total" and 'source="_unknown"' in lb]
    assert unknown, "requests for unknown sources are still counted"
    counted = re.search(r'^hookline_ingress_requests_total\{source="_unknown",status="404"\} (\d+)$',
                        ing, re.M)
    assert counted and int(counted.group(1)) >= 1, "the request for an unknown source counted"
    for lb in unknown:
        assert 'status="202"' not in lb and 'status="401"' not in lb, lb


def readme_metric_names(svc):
    text = (ROOT / "services" / svc / "README.md").read_text()
    return set(re.findall(r"hookline_[a-z0-9_]+", text))


def test_every_exported_metric_is_in_its_readme(pipeline):
    for svc in SERVICES:
        documented = readme_metric_names(svc)
        missing = sorted(set(families(pipeline[svc])) - documented)
        assert not missing, f"services/{svc}/README.md does not name {missing}"


def promql_metric_names(expr):
    """Metric names an expression selects: identifiers not followed by '(' (functions), not
    PromQL keywords, not label names (inside {} or by/without ()), not durations."""
    keywords = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
                "unless", "bool", "offset", "le", "inf", "nan"}
    stripped = re.sub(r"\{[^}]*\}", "", expr)                       # label matchers
    stripped = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", stripped)
    stripped = re.sub(r"\[[^\]]*\]", "", stripped)                   # ranges
    stripped = re.sub(r'"[^"]*"', "", stripped)                      # strings
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", stripped):
        rest = stripped[m.end():].lstrip()
        word = m.group(0)
        if rest.startswith("(") or word.lower() in keywords:
            continue
        names.add(word)
    return names


def dashboard_exprs():
    dash = json.loads((OBS / "grafana" / "hookline-pipeline.json").read_text())
    exprs = []
    for panel in dash["panels"]:
        for t in panel.get("targets", []):
            exprs.append(t["expr"])
    assert exprs, "the dashboard has no queries"
    return exprs


def exported_series_names(text):
    """Names a query may use: every sample name, so histograms' _bucket/_sum/_count."""
    return {name for name, _ in samples(text)}


def test_dashboard_queries_name_only_exported_metrics(pipeline):
    exported = set()
    for svc in SERVICES:
        exported |= exported_series_names(pipeline[svc])
    used = set()
    for expr in dashboard_exprs():
        names = promql_metric_names(expr)
        assert names, f"no metric in {expr!r}"
        used |= names
    assert not used - exported, f"the dashboard queries metrics nobody exports: {used - exported}"
    # The golden signals are all there.
    for need in ("hookline_ingress_requests_total", "hookline_ingress_ack_latency_seconds_bucket",
                 "hookline_persister_end_to_end_seconds_bucket", "hookline_persister_consumer_lag",
                 "hookline_auditor_consumer_lag", "hookline_auditor_gaps",
                 "hookline_auditor_checkpoint_refusals_total"):
        assert need in used, need


def test_the_metric_name_parser_sees_what_it_must():
    assert promql_metric_names(
        'histogram_quantile(0.99, sum by (le) (rate(hookline_x_seconds_bucket{a="b"}[5m])))'
    ) == {"hookline_x_seconds_bucket"}
    assert promql_metric_names("sum without (instance) (hookline_a) / on (job) hookline_b") \
        == {"hookline_a", "hookline_b"}


def test_prometheus_config_passes_promtool_and_scrapes_every_service():
    promtool = require_tool("promtool", "prometheus")
    cfg = OBS / "prometheus.yml"
    r = subprocess.run([promtool, "check", "config", str(cfg)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    jobs = {j["job_name"] for j in yaml.safe_load(cfg.read_text())["scrape_configs"]}
    assert {f"hookline-{s}" for s in SERVICES} <= jobs, jobs


def test_kubernetes_dashboard_configmap_carries_the_same_dashboard():
    base = ROOT / "deploy" / "k8s" / "base"
    assert "grafana-dashboard.yaml" in yaml.safe_load((base / "kustomization.yaml").read_text())[
        "resources"]
    cm = yaml.safe_load((base / "grafana-dashboard.yaml").read_text())
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["data"] == {"hookline-pipeline.json":
                          (OBS / "grafana" / "hookline-pipeline.json").read_text()}, \
        "deploy/k8s/base/grafana-dashboard.yaml must carry deploy/observability/grafana's JSON"
