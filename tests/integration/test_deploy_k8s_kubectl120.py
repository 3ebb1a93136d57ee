"""Every Kubernetes overlay renders with the oldest kubectl deploy/local/install-deps can give,
Debian 12's kubernetes-client (kubectl 1.20, kustomize v2.0.3), and renders the same objects
as with the kubectl the other deploy tests use (HL_KUBECTL or the PATH's, often newer).

The Debian package is fetched with `apt-get download` into ~/.cache/hookline (or
$XDG_CACHE_HOME/hookline) and unpacked there, never installed, so it does not replace the
machine's kubectl. Hash suffixes of generated names differ between kustomize versions and are
compared without the suffix; everything else must be equal.
"""
import base64
import fcntl
import os
import pathlib
import re
import subprocess
import tempfile

import pytest
import yaml

from test_deploy_k8s import K8S, copy_tree, kubectl, write_production_secrets

PACKAGE = "kubernetes-client"
OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml"))
HASHED = re.compile(r"^(.+)-[a-z0-9]{10}$")


def candidate_version():
    r = subprocess.run(["apt-cache", "policy", PACKAGE], capture_output=True, text=True,
                       timeout=60)
    m = re.search(r"Candidate: (\S+)", r.stdout)
    if r.returncode != 0 or not m or m.group(1) == "(none)":
        pytest.fail(f"apt has no candidate for {PACKAGE}: {r.stdout}{r.stderr}")
    return m.group(1)


def debian_kubectl():
    """Path of the unpacked kubectl of the kubernetes-client that apt would install."""
    version = candidate_version()
    cache = pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache")
    root = cache / "hookline"
    root.mkdir(parents=True, exist_ok=True)
    dest = root / f"{PACKAGE}_{version}"
    binary = dest / "usr" / "bin" / "kubectl"
    with open(root / f"{PACKAGE}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be fetching it
        if not binary.exists():
            with tempfile.TemporaryDirectory(dir=root) as tmp:
                r = subprocess.run(["apt-get", "download", f"{PACKAGE}={version}"], cwd=tmp,
                                   capture_output=True, text=True, timeout=300)
                debs = list(pathlib.Path(tmp).glob("*.deb"))
                assert r.returncode == 0 and len(debs) == 1, \
                    f"apt-get download {PACKAGE}={version} failed:\n{r.stdout}{r.stderr}"
                subprocess.run(["dpkg-deb", "-x", str(debs[0]), f"{tmp}/x"], check=True,
                               timeout=120)
                os.rename(f"{tmp}/x", dest)
    return binary


def render(kubectl_path, overlay):
    r = subprocess.run([str(kubectl_path), "kustomize", str(overlay)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, f"{kubectl_path} kustomize {overlay.name} failed:\n{r.stderr}"
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    assert docs, f"{kubectl_path} kustomize {overlay.name} rendered nothing"
    return docs


def _clean(value, names):
    """Empty maps dropped (v2.0.3 writes `annotations: {}`), generated names unsuffixed."""
    if isinstance(value, dict):
        return {k: _clean(v, names) for k, v in value.items() if v != {}}
    if isinstance(value, list):
        return [_clean(v, names) for v in value]
    if isinstance(value, str):
        return names.get(value, value)
    return value


def normalized(docs):
    """The objects by (apiVersion, kind, namespace, name), comparable across kustomizes."""
    names = {}
    for d in docs:
        m = HASHED.match(d["metadata"]["name"])
        if d["kind"] in ("ConfigMap", "Secret") and m:
            names[d["metadata"]["name"]] = m.group(1)
    out = {}
    for d in docs:
        d = _clean(d, names)
        if d["kind"] == "Secret" and "data" in d:
            # Base64 folded over lines by one version, on one line by the other.
            d["data"] = {k: base64.b64decode("".join(v.split())) for k, v in d["data"].items()}
        key = (d["apiVersion"], d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])
        assert key not in out, f"{key} rendered twice"
        out[key] = d
    return out


@pytest.fixture(scope="module")
def old_kubectl():
    path = debian_kubectl()
    r = subprocess.run([str(path), "version", "--client"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return path, r.stdout


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    t = copy_tree(tmp_path_factory.mktemp("k8s"))
    write_production_secrets(t / "overlays" / "production")
    return t


def test_the_debian_kubectl_is_the_old_one(old_kubectl):
    """It must stay older than kustomize components (kubectl 1.21), or this file tests little."""
    m = re.search(r'Major:"1", Minor:"(\d+)"', old_kubectl[1])
    assert m and int(m.group(1)) < 21, old_kubectl[1]


def test_every_overlay_is_checked():
    assert {"dev", "production", "dev-strimzi1", "production-strimzi1"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_the_same_with_debian_kubectl(overlay, old_kubectl, tree):
    old = normalized(render(old_kubectl[0], tree / "overlays" / overlay))
    new = normalized(render(kubectl(), tree / "overlays" / overlay))
    assert old.keys() == new.keys(), \
        f"only with kubectl 1.20: {sorted(old.keys() - new.keys())}; " \
        f"only with {kubectl()}: {sorted(new.keys() - old.keys())}"
    differ = [key for key in sorted(old) if old[key] != new[key]]
    assert not differ, f"{overlay}: objects that differ between the kubectls: {differ}"
