"""bench/capacity on a small synthetic results file and the real production overlay: the
figures follow the measured CPU per request, the run used is the highest fixed rate achieved,
the overlay check says no where a rate needs more than the overlay has, and bad input stops
with status 2 and a reason."""
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

SOURCE_DIR = Path(os.environ.get("HL_SOURCE_DIR") or Path(__file__).resolve().parents[2])
CAPACITY = SOURCE_DIR / "bench" / "capacity"
OVERLAY = SOURCE_DIR / "deploy" / "k8s" / "overlays" / "production"
BASE = SOURCE_DIR / "deploy" / "k8s" / "base"

# Round figures, so that halving them gives exact figures after the page's rounding.
US = {"ingress": 240.0, "broker": 120.0, "persister": 18.0, "postgres": 60.0, "auditor": 30.0,
      "load generator": 40.0, "unattributed": 6.0, "total": 554.0}
RESULTS = {
    "command": "bench/run --quick", "commit": "synthetic", "finished_utc": "2026-01-01T00:00:00Z",
    "machine": {"cpus": 2},
    "cpu_us": {"closed loop": dict(US), "5000 req/s": dict(US),
               # Saturated (82 % achieved): its figures must not be used.
               "10000 req/s": {k: v * 7 for k, v in US.items()}},
    "achieved_rps_at_5000": 4900.0, "achieved_rps_at_10000": 8200.0,
    "persister_rows_per_s": 20000.0, "copy_rows_per_s": 30000.0,
}


def run(tmp_path, results, overlay=OVERLAY, raw=None):
    """Runs bench/capacity on results (a dict, or raw text); returns (process, page or None)."""
    src = tmp_path / "latest.json"
    src.write_text(raw if raw is not None else json.dumps(results))
    out = tmp_path / "capacity.md"
    if out.exists():
        out.unlink()
    p = subprocess.run([sys.executable, str(CAPACITY), "--results", str(src), "--overlay",
                        str(overlay), "--out", str(out)], capture_output=True, text=True,
                       timeout=60, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    return p, (out.read_text() if out.exists() else None)


def row(page, label, after=None):
    """The cells of the first table row whose first cell is label (below the heading after)."""
    if after:
        page = page[page.index(after):]
    for line in page.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == label:
            return cells[1:]
    raise AssertionError(f"no table row {label!r} in:\n{page}")


def num(cell):
    return float(cell.split()[0].strip("*").replace(",", ""))


def scaled(factor):
    r = copy.deepcopy(RESULTS)
    for run_ in r["cpu_us"].values():
        for k in run_:
            run_[k] *= factor
    return r


def test_halving_every_cost_doubles_the_rate_per_core_and_halves_the_cores(tmp_path):
    p, full = run(tmp_path, RESULTS)
    assert p.returncode == 0, p.stderr
    assert p.stdout == full
    p, half = run(tmp_path, scaled(0.5))
    assert p.returncode == 0, p.stderr
    for part in ("ingress", "persister", "postgres", "auditor"):
        a, b = num(row(full, part)[1]), num(row(half, part)[1])
        assert abs(b - 2 * a) <= 1, (part, a, b)
        assert num(row(full, part)[0]) == US[part]
    for label in ("ingress cores", "broker cores (replication 3)", "persister cores",
                  "auditor cores", "Postgres primary cores", "**total cores**"):
        # 10,000 and 100,000/s: large enough that the page's rounding keeps the figures exact.
        for a, b in zip(row(full, label)[1:], row(half, label)[1:]):
            assert abs(num(b) - num(a) / 2) < 0.001, (label, a, b)
    # 100,000/s × 240 µs at 60 %: 40 cores of ingress, 20 pods of 2 cores.
    assert num(row(full, "ingress cores")[2]) == 40.0
    assert num(row(full, "ingress pods")[2]) == 20


def test_the_broker_cost_is_the_leaders_times_the_modelled_followers(tmp_path):
    p, page = run(tmp_path, RESULTS)
    assert p.returncode == 0, p.stderr
    cells = row(page, "broker, replication 3")
    assert num(cells[0]) == US["broker"] * 2  # 1 + 0.5 × (3 − 1)
    assert "assumption" in cells[2]


def test_the_highest_fixed_rate_achieved_is_used(tmp_path):
    p, page = run(tmp_path, RESULTS)
    assert "From the run **5000 req/s**" in page
    r = copy.deepcopy(RESULTS)
    r["achieved_rps_at_10000"] = 9900.0
    p, page = run(tmp_path, r)
    assert "From the run **10000 req/s**" in page
    assert num(row(page, "ingress")[0]) == US["ingress"] * 7
    r["achieved_rps_at_10000"] = r["achieved_rps_at_5000"] = 10.0
    p, page = run(tmp_path, r)
    assert "From the run **closed loop**" in page


def test_the_overlay_check_reads_the_overlay_and_says_no_where_a_rate_needs_more(tmp_path):
    scale = {(d["kind"], d["metadata"]["name"]): d
             for d in yaml.safe_load_all((OVERLAY / "scale.yaml").read_text()) if d}
    persisters = scale[("Deployment", "hookline-persister")]["spec"]["replicas"]
    hpa_max = scale[("HorizontalPodAutoscaler", "hookline-ingress")]["spec"]["maxReplicas"]
    p, page = run(tmp_path, RESULTS)
    assert p.returncode == 0, p.stderr
    check = "## Checked against the production overlay"
    assert num(row(page, "persister pods", check)[0]) == persisters
    assert num(row(page, "ingress pods (HPA maxReplicas)", check)[0]) == hpa_max
    assert row(page, "**overlay suffices**", check)[2] == "**yes**"  # 1,000/s
    # One persister drains 500 rows/s: 1,000/s needs ceil(1000 / 300) = 4 (yes), 10,000/s 34.
    r = copy.deepcopy(RESULTS)
    r["persister_rows_per_s"] = 500.0
    p, page = run(tmp_path, r)
    cells = row(page, "persister pods", check)
    assert cells[1:3] == ["4", "yes"] and cells[3:5] == ["34", "**no**"], cells
    assert row(page, "**overlay suffices**", check)[4] == "**no**"
    assert "10,000/s: the overlay falls short in persister pods" in page
    # An ingress costing 30 ms per request needs 25 pods of 2 cores at 1,000/s.
    r = copy.deepcopy(RESULTS)
    for run_ in r["cpu_us"].values():
        run_["ingress"] = 30000.0
    p, page = run(tmp_path, r)
    cells = row(page, "ingress pods (HPA maxReplicas)", check)
    assert cells[1:3] == ["25", "**no**"], cells
    assert row(page, "**overlay suffices**", check)[2] == "**no**"


def test_an_overlays_patches_are_applied_over_its_base(tmp_path):
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(
        {"bases": [str(BASE)], "patchesStrategicMerge": ["more.yaml"]}))
    (overlay / "more.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "hookline-persister"}, "spec": {"replicas": 40}}))
    p, page = run(tmp_path, RESULTS, overlay=overlay)
    assert p.returncode == 0, p.stderr
    check = "## Checked against the production overlay"
    assert num(row(page, "persister pods", check)[0]) == 40
    assert "34 of the 40 persisters get no partition of hookline.events" in page


def test_results_without_cpu_per_request_are_refused(tmp_path):
    r = {k: v for k, v in RESULTS.items() if k != "cpu_us"}
    p, page = run(tmp_path, r)
    assert p.returncode == 2 and page is None
    assert "capacity:" in p.stderr and "cpu_us" in p.stderr


def test_a_what_if_run_is_refused(tmp_path):
    r = dict(RESULTS, what_if={"name": "no-lineage"})
    p, page = run(tmp_path, r)
    assert p.returncode == 2 and page is None
    assert "what-if run (bench/run --what-if no-lineage)" in p.stderr
    assert run(tmp_path, RESULTS)[0].returncode == 0  # the same figures without the mark


def test_a_run_missing_a_component_is_refused(tmp_path):
    r = copy.deepcopy(RESULTS)
    del r["cpu_us"]["5000 req/s"]["postgres"]
    p, page = run(tmp_path, r)
    assert p.returncode == 2 and page is None
    assert "postgres" in p.stderr


def test_a_missing_or_malformed_results_file_is_refused(tmp_path):
    p = subprocess.run([sys.executable, str(CAPACITY), "--results", str(tmp_path / "none.json"),
                        "--out", str(tmp_path / "capacity.md")], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and "no such file" in p.stderr
    assert not (tmp_path / "capacity.md").exists()
    p, page = run(tmp_path, None, raw='{"cpu_us": {"closed loop": ')
    assert p.returncode == 2 and page is None
    assert "not a readable JSON" in p.stderr
    p, page = run(tmp_path, None, raw="[1, 2]")
    assert p.returncode == 2 and page is None


def test_a_missing_overlay_is_refused(tmp_path):
    p, page = run(tmp_path, RESULTS, overlay=tmp_path / "nowhere")
    assert p.returncode == 2 and page is None
    assert "no such overlay" in p.stderr


def refused(p, page, *words):
    """Status 2, no page, one line on stderr that names words, and no traceback."""
    assert p.returncode == 2 and page is None, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    for w in words:
        assert w in p.stderr, (w, p.stderr)


def overlay_over_base(tmp_path, kustomization, patches=()):
    """A kustomization folder over the base: kustomization's keys (bases added), and each patch
    (a dict, or raw YAML text) in its own file listed under patchesStrategicMerge."""
    overlay = tmp_path / "overlay"
    overlay.mkdir(exist_ok=True)
    k = {"bases": [str(BASE)], **kustomization}
    for i, patch in enumerate(patches):
        f = f"patch{i}.yaml"
        (overlay / f).write_text(patch if isinstance(patch, str) else yaml.safe_dump(patch))
        k.setdefault("patchesStrategicMerge", []).append(f)
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(k))
    return overlay


def test_a_run_or_figure_of_cpu_us_that_cannot_be_used_is_refused(tmp_path):
    for name, value in (("closed loop", None), ("closed loop", [1, 2]), ("5000 req/s", None)):
        r = copy.deepcopy(RESULTS)
        r["cpu_us"][name] = value
        refused(*run(tmp_path, r), repr(name), "not an object")
    for part, value in (("total", 0), ("total", -3.0), ("load generator", 0)):
        r = copy.deepcopy(RESULTS)
        r["cpu_us"]["5000 req/s"][part] = value
        refused(*run(tmp_path, r), part, "not positive")
    for part, value in (("total", "a lot"), ("unattributed", [1]), ("ingress", True)):
        r = copy.deepcopy(RESULTS)
        r["cpu_us"]["10000 req/s"][part] = value
        refused(*run(tmp_path, r), repr(part), "not a number")
    r = copy.deepcopy(RESULTS)
    r["copy_rows_per_s"] = float("inf")
    refused(*run(tmp_path, r), "copy_rows_per_s")
    # A part whose process ended (null) in a run not used, and a signed unattributed, are fine.
    r = copy.deepcopy(RESULTS)
    r["cpu_us"]["closed loop"]["persister"] = None
    r["cpu_us"]["5000 req/s"]["unattributed"] = -0.4
    p, page = run(tmp_path, r)
    assert p.returncode == 0, p.stderr


def test_overlay_counts_and_cpu_that_cannot_be_used_are_refused(tmp_path):
    persister = {"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": "hookline-persister"}}
    for replicas in ("many", None, 0):
        overlay = overlay_over_base(tmp_path, {}, [{**persister, "spec": {"replicas": replicas}}])
        refused(*run(tmp_path, RESULTS, overlay=overlay), "hookline-persister replicas")
    topic = {"apiVersion": "kafka.strimzi.io/v1beta2", "kind": "KafkaTopic",
             "metadata": {"name": "hookline-events"}}
    for field in ("replicas", "partitions"):
        overlay = overlay_over_base(tmp_path, {}, [{**topic, "spec": {field: "many"}}])
        refused(*run(tmp_path, RESULTS, overlay=overlay), f"hookline-events {field}")
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "hookline-ingress"}}
    overlay = overlay_over_base(tmp_path, {}, [{**hpa, "spec": {"minReplicas": None}}])
    refused(*run(tmp_path, RESULTS, overlay=overlay), "minReplicas")
    pool = {"apiVersion": "kafka.strimzi.io/v1beta2", "kind": "KafkaNodePool",
            "metadata": {"name": "dual-role"}}
    for cpu in ("0", "0m", "four", None, "nan"):
        overlay = overlay_over_base(tmp_path, {}, [
            {**pool, "spec": {"resources": {"limits": {"cpu": cpu}}}}])
        refused(*run(tmp_path, RESULTS, overlay=overlay), "KafkaNodePool dual-role, limits")


def test_a_kustomization_that_is_not_a_mapping_is_refused(tmp_path):
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump([str(BASE)]))
    refused(*run(tmp_path, RESULTS, overlay=overlay), "not a mapping")


def test_kustomization_keys_that_are_not_applied_are_refused(tmp_path):
    target = {"group": "apps", "version": "v1", "kind": "Deployment",
              "name": "hookline-persister"}
    for key, value in (
            ("patches", [{"target": target, "patch": "[{op: replace, path: /spec/replicas, "
                                                     "value: 40}]"}]),
            ("patchesJson6902", [{"target": target, "path": "replicas.yaml"}]),
            ("replicas", [{"name": "hookline-persister", "count": 40}]),
            ("components", ["../more"]),
            ("namePrefix", "eu-")):
        overlay = overlay_over_base(tmp_path, {key: value})
        refused(*run(tmp_path, RESULTS, overlay=overlay),
                f"kustomization key {key} is not applied by bench/capacity")
    # A strategic-merge directive is a transformation _merge() does not know either.
    overlay = overlay_over_base(tmp_path, {}, [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "hookline-auditor"},
         "$patch": "delete"}])
    refused(*run(tmp_path, RESULTS, overlay=overlay), "$patch")
    # Keys that cannot change the figures read are passed over.
    overlay = overlay_over_base(tmp_path, {
        "namespace": "elsewhere", "commonLabels": {"tier": "x"},
        "images": [{"name": "hookline", "newTag": "1"}],
        "generatorOptions": {"disableNameSuffixHash": True}})
    p, page = run(tmp_path, RESULTS, overlay=overlay)
    assert p.returncode == 0, p.stderr


def test_the_autoscaler_note_stays_within_min_and_max_replicas(tmp_path):
    # 240 µs a request against 70 % of a 0.5-core request: the target alone wants 1 pod at
    # 1,000/s and 69 at 100,000/s; the overlay's autoscaler runs 3 to 20.
    p, page = run(tmp_path, RESULTS)
    assert p.returncode == 0, p.stderr
    note = next(line for line in page.splitlines() if "autoscaler targets" in line)
    assert "would run 3 pods at 1,000/s (its minReplicas; the target alone would want 1)" in note
    assert "20 pods at 100,000/s (its maxReplicas; the target alone would want 69)" in note
    assert "1 pod at" not in note and "69 pods" not in note


def test_unattributed_cpu_is_in_the_machine_total_only(tmp_path):
    p, page = run(tmp_path, RESULTS)
    assert p.returncode == 0, p.stderr
    label = ("unattributed (not charged to any measured process: kernel work, the benchmark's "
             "own process, anything else running)")
    assert num(row(page, label)[0]) == US["unattributed"]
    assert "unattributed cores" not in page
    # 100,000/s: (240 + 240 + 18 + 30 + 60) µs at 60 % is 98 cores, without the 6 µs
    # unattributed (which would make it 99).
    assert num(row(page, "**total cores**")[2]) == 98.0


def test_the_page_names_every_assumption_it_uses_and_the_warm_up(tmp_path):
    r = copy.deepcopy(RESULTS)
    r["settings"] = {"warmup_count": 300_000}
    p, page = run(tmp_path, r)
    assert p.returncode == 0, p.stderr
    assert row(page, "`LINEAGE_COPY_FACTOR`")[0] == "1.0"
    assert row(page, "`LINEAGE_PG_SHARE`")[0] == "0.667"
    assert "nearly empty" not in page and "time partitioning" not in page
    assert "warm-up of 300,000 requests" in page
    assert "300,000 `webhook_events` rows and 600,000 `lineage` rows" in page
    p, page = run(tmp_path, RESULTS)
    assert "record no warm-up" in page
