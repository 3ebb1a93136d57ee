"""What test_deploy.py and test_deploy_k8s.py read from the tree: the topic contract, the
services' local configs, their schema keys and defaults, and the Dockerfile's user."""
import re
import shutil

import pytest
import yaml

from harness import paths

SRC = paths.SOURCE_DIR
DOCKERFILE = SRC / "deploy" / "docker" / "Dockerfile"
SERVICES = ("ingress", "persister", "auditor")
# Ports of the local stack (DESIGN.md), used when a service's local YAML does not set one.
DEFAULT_PORTS = {"ingress": 8080, "persister": 8081, "auditor": 8090}
# The config key that bounds how long a service takes to stop after SIGTERM.
DRAIN_KEYS = {"ingress": "drain_timeout_ms", "persister": "shutdown_timeout_ms",
              "auditor": "shutdown_timeout_ms"}


def require_tool(name, package):
    """The tool's path; a clear failure (not a skip) when CI lacks it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: add the Debian package {package} to "
                    "deploy/local/install-deps")
    return path


def contract_topics():
    doc = yaml.safe_load((SRC / "proto" / "topics.yaml").read_text())
    return {t["name"]: int(t["partitions"]) for t in doc["topics"]}


def local_config(svc):
    p = SRC / "deploy" / "local" / f"{svc}.yaml"
    return yaml.safe_load(p.read_text()) if p.is_file() else None


def listen_port(listen):
    m = re.search(r":(\d+)s?$", str(listen))
    assert m, f"listen address {listen!r} has no port"
    return int(m.group(1))


def local_port(svc):
    cfg = local_config(svc)
    if cfg and (cfg.get("http") or {}).get("listen"):
        return listen_port(cfg["http"]["listen"])
    return DEFAULT_PORTS[svc]


def _service_sources(svc):
    d = SRC / "services" / svc
    texts = [p.read_text() for p in (d / "config.c", d / "config.h") if p.is_file()]
    if not texts:
        pytest.fail(f"services/{svc}/config.c is missing: cannot check its configuration")
    return "\n".join(texts)


def drain_ms(svc, cfg):
    """The service's stop deadline: from `cfg` when set, else its compiled-in default."""
    key = DRAIN_KEYS[svc]
    if cfg and cfg.get(key) is not None:
        return int(cfg[key])
    text = _service_sources(svc)
    # X(key, default, ...) in the ingress's tables, X(KIND, key, default, ...) in the others'.
    m = (re.search(rf"X\(\s*(?:[A-Z0-9]+\s*,\s*)?{key}\s*,\s*(\d+)", text)
         or re.search(rf"default_u32\(\s*&c->{key}\s*,\s*(\d+)\s*\)", text))
    assert m, f"no default for {key} found in services/{svc}/config.[ch]"
    return int(m.group(1))


def schema_keys(svc):
    """Every key name the service's libcyaml schema knows (its own tables, the X-macro knob
    lists and the shared kafka/postgres/http sections). Flat: nesting is not checked."""
    text = _service_sources(svc)
    for p in (SRC / "libs" / "config" / "src").glob("*.c"):
        text += "\n" + p.read_text()
    keys = set(re.findall(r'CYAML_FIELD_\w+\(\s*"([a-z0-9_]+)"', text))
    keys |= set(re.findall(r"\bX\(\s*(?:[A-Z0-9]+\s*,\s*)?([a-z][a-z0-9_]*)\s*,", text))
    # Field helper macros used inside the tables: FOO_STR(key, max), the max a number or a
    # contract constant.
    keys |= set(re.findall(r"^\s+[A-Z][A-Z0-9_]*\(\s*([a-z][a-z0-9_]*)\s*,\s*(?:\d+|[A-Z][A-Z0-9_]*)"
                           r"\s*\)",
                           text, re.M))
    return keys


def config_keys(doc, prefix=""):
    """(dotted path, key) for every mapping key in a parsed YAML document."""
    out = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.append((prefix + str(k), str(k)))
            out += config_keys(v, prefix + str(k) + ".")
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += config_keys(v, f"{prefix[:-1]}[{i}].")
    return out


def dockerfile_stages():
    """[(base image, [instruction lines])] per FROM, continuation lines joined. A FROM's
    ${ARG} is the default of the ARG declared before the first FROM."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages = []
    args = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], line.split()[1])
            stages.append((image, []))
        elif not stages:
            m = re.match(r"ARG\s+(\w+)=(\S+)$", line, re.IGNORECASE)
            assert m, f"before the first FROM only ARG NAME=DEFAULT, not: {line}"
            args[m.group(1)] = m.group(2)
        else:
            stages[-1][1].append(line)
    return stages


def image_uid():
    _, lines = dockerfile_stages()[-1]
    users = [line.split()[1] for line in lines if line.upper().startswith("USER ")]
    assert users, "the runtime stage sets no USER"
    return int(users[-1].split(":")[0])
