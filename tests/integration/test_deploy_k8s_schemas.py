"""The rendered Kubernetes overlays against the schemas of the APIs they are applied to, offline:
custom resources against their operator's CRD (Strimzi 0.47.0 for overlays/dev and
overlays/production, Strimzi 1.2.0 for the -strimzi1 overlays, CloudNativePG 1.30.0 for all),
with unknown fields as errors; core objects against the Kubernetes API models of Debian's
python3-kubernetes (k8s_schemas.py says what that covers). A misspelt key in a manifest file,
a value of the wrong type and a missing required field each fail the check, naming the object
and the path.
"""
import pytest
import yaml

import k8s_schemas
from test_deploy_k8s import copy_tree, kustomize, write_production_secrets

CNPG = "cloudnative-pg-1.30.0"
VARIANTS = {
    "dev": ("strimzi-0.47.0", CNPG),
    "production": ("strimzi-0.47.0", CNPG),
    "dev-strimzi1": ("strimzi-1.2.0", CNPG),
    "production-strimzi1": ("strimzi-1.2.0", CNPG),
}


def render(tree, overlay):
    r = kustomize(tree / "overlays" / overlay)
    assert r.returncode == 0, f"kubectl kustomize overlays/{overlay} failed:\n{r.stderr}"
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    assert docs, f"overlays/{overlay} rendered nothing"
    return docs


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    t = copy_tree(tmp_path_factory.mktemp("k8s"))
    write_production_secrets(t / "overlays" / "production")
    return t


@pytest.fixture(scope="module")
def rendered(tree):
    return {v: render(tree, v) for v in VARIANTS}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_object_matches_its_schema(variant, rendered):
    docs = rendered[variant]
    kinds = {d["kind"] for d in docs}
    assert {"Kafka", "KafkaNodePool", "KafkaTopic", "Cluster", "Deployment"} <= kinds, kinds
    found = k8s_schemas.all_problems(docs, VARIANTS[variant])
    assert not found, "\n".join(found)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_other_strimzi_line_does_not_serve_the_api(variant, rendered):
    """Strimzi 1.x serves only kafka.strimzi.io/v1 and 0.47 no v1: each overlay fits one."""
    other = "strimzi-1.2.0" if VARIANTS[variant][0] == "strimzi-0.47.0" else "strimzi-0.47.0"
    kafka = next(d for d in rendered[variant] if d["kind"] == "Kafka")
    found = k8s_schemas.problems(kafka, (other, CNPG))
    assert found and "no schema for" in found[0], found


@pytest.mark.parametrize("base", ["dev", "production"])
def test_strimzi1_overlay_changes_only_the_strimzi_api_and_kafka_version(base, rendered):
    old = {(d["kind"], d["metadata"]["name"]): d for d in rendered[base]}
    new = {(d["kind"], d["metadata"]["name"]): d for d in rendered[f"{base}-strimzi1"]}
    assert old.keys() == new.keys()
    for key, d in new.items():
        if not d["apiVersion"].startswith("kafka.strimzi.io/"):
            assert d == old[key], f"{key} differs"
            continue
        assert d["apiVersion"] == "kafka.strimzi.io/v1", key
        assert old[key]["apiVersion"] == "kafka.strimzi.io/v1beta2", key
        if key[0] == "Kafka":
            assert d["spec"]["kafka"]["version"].startswith("4."), d["spec"]["kafka"]
            assert old[key]["spec"]["kafka"]["version"].startswith("3."), old[key]["spec"]
            continue
        assert {**d, "apiVersion": None} == {**old[key], "apiVersion": None}, f"{key} differs"


# file under deploy/k8s, text in it, its misspelling, words the report must hold
TYPOS = {
    "kafkatopic": ("base/kafka.yaml", "  partitions: 6", "  partitons: 6",
                   ("KafkaTopic/hookline-events", "partitons")),
    "kafka_listener": ("base/kafka.yaml", "        tls: false", "        tsl: false",
                       ("Kafka/hookline", "listeners.0", "tsl")),
    "cnpg_cluster": ("base/postgres.yaml", "  primaryUpdateStrategy: unsupervised",
                     "  primaryUpdateStrategie: unsupervised",
                     ("Cluster/hookline-pg", "primaryUpdateStrategie")),
    "deployment": ("base/ingress.yaml", "readOnlyRootFilesystem: true",
                   "readOnlyRootFileSystem: true",
                   ("Deployment/hookline-ingress", "readOnlyRootFileSystem", "unknown field")),
}


@pytest.mark.parametrize("variant", ["dev", "dev-strimzi1"])
def test_misspelt_keys_in_manifests_fail(variant, tmp_path):
    """Each misspelling in its own file of one copy of the tree; one render finds them all."""
    tree = copy_tree(tmp_path)
    for path, text, wrong, _ in TYPOS.values():
        f = tree / path
        src = f.read_text()
        assert text in src, f"{path} no longer holds {text!r}: revisit this test"
        f.write_text(src.replace(text, wrong, 1))
    found = k8s_schemas.all_problems(render(tree, variant), VARIANTS[variant])
    for typo, (_, _, _, words) in sorted(TYPOS.items()):
        assert any(all(w in p for w in words) for p in found), \
            f"{typo}: no report with {words}; reports: {found}"


def _first(docs, kind):
    return next(d for d in docs if d["kind"] == kind)


@pytest.mark.parametrize("variant", ["production", "production-strimzi1"])
def test_wrong_types_and_missing_required_fields_fail(variant, rendered):
    docs = rendered[variant]
    sets = VARIANTS[variant]
    cases = [
        (_first(docs, "KafkaTopic"), ["spec", "partitions"], "six", "spec.partitions"),
        (_first(docs, "Cluster"), ["spec", "instances"], "three", "spec.instances"),
        (_first(docs, "Deployment"), ["spec", "template", "spec", "containers", 0, "ports", 0,
                                      "containerPort"], "http", "containerPort"),
        (_first(docs, "Service"), ["spec", "ports", 0, "port"], True, "port"),
    ]
    for doc, path, value, words in cases:
        bad = k8s_schemas.with_change(doc, path, value)
        found = k8s_schemas.problems(bad, sets)
        assert any(words in p for p in found), f"{path} = {value!r} passed: {found}"
    # Required fields: the node pool's roles (Strimzi), the Deployment's selector (core).
    pool = k8s_schemas.with_change(_first(docs, "KafkaNodePool"), ["spec"], drop="roles")
    assert any("roles" in p and "required" in p for p in k8s_schemas.problems(pool, sets))
    dep = k8s_schemas.with_change(_first(docs, "Deployment"), ["spec"], drop="selector")
    assert any("spec.selector: required field" in p for p in k8s_schemas.problems(dep, sets))
