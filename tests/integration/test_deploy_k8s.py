"""Kubernetes manifests (deploy/k8s): every overlay renders with `kubectl kustomize`, and the
rendered objects agree with each other and with the contracts: references resolve, ports and
probes match the service configs, topics match proto/topics.yaml, pods run non-root on a
read-only root filesystem with enough time to drain. No cluster is needed.

The production overlay reads its secrets from files that are never committed; the test writes
throwaway ones into a copy of the tree, and checks that without them nothing renders.
"""
import base64
import hashlib
import os
import secrets
import shutil
import subprocess

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from deploy_support import (SERVICES, config_keys, contract_topics, drain_ms, image_uid,
                            listen_port, local_port, require_tool, schema_keys)
from harness import free_port, paths, sanitizers

K8S = paths.SOURCE_DIR / "deploy" / "k8s"
OVERLAYS = ("dev", "production")
NAMESPACES = {"dev": "hookline-dev", "production": "hookline"}
API_VERSIONS = {
    "Deployment": "apps/v1", "Service": "v1", "ConfigMap": "v1", "Secret": "v1",
    "Job": "batch/v1", "HorizontalPodAutoscaler": "autoscaling/v2",
    "PodDisruptionBudget": "policy/v1", "NetworkPolicy": "networking.k8s.io/v1",
    "ServiceMonitor": "monitoring.coreos.com/v1", "Kafka": "kafka.strimzi.io/v1beta2",
    "KafkaNodePool": "kafka.strimzi.io/v1beta2", "KafkaTopic": "kafka.strimzi.io/v1beta2",
    "Cluster": "postgresql.cnpg.io/v1",
}
WORKLOADS = ("Deployment", "Job")


def kubectl():
    return os.environ.get("HL_KUBECTL") or require_tool("kubectl", "kubernetes-client")


def kustomize(path):
    return subprocess.run([kubectl(), "kustomize", str(path)], capture_output=True, text=True,
                          timeout=120)


def copy_tree(tmp_path):
    dst = tmp_path / "k8s"
    shutil.copytree(K8S, dst, ignore=shutil.ignore_patterns("secrets"))
    return dst


def write_production_secrets(overlay):
    """Throwaway secrets in the layout deploy/README.md asks for; returns the tokens."""
    d = overlay / "secrets"
    d.mkdir()
    values = {"github-webhook-secret": secrets.token_hex(16),
              "stripe-webhook-secret": "whsec_" + secrets.token_hex(16),
              "metrics-token": secrets.token_urlsafe(24)}
    (d / "hookline.env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    (d / "postgres.env").write_text(f"username=hookline\npassword={secrets.token_hex(12)}\n")
    for kind in ("persister", "auditor", "reader"):
        (d / f"postgres-{kind}.env").write_text(
            f"username=hookline_{kind}\npassword={secrets.token_hex(12)}\n")
    key = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    (d / "auditor-checkpoint-key.pem").write_bytes(key)
    auditor = yaml.safe_load((K8S / "base" / "config" / "auditor.yaml").read_text())
    auditor["tokens"] = [
        {"name": "prometheus", "roles": ["metrics"],
         "sha256": hashlib.sha256(values["metrics-token"].encode()).hexdigest()},
        {"name": "auditors", "roles": ["auditor"],
         "sha256": hashlib.sha256(secrets.token_bytes(16)).hexdigest()}]
    (d / "auditor.yaml").write_text(yaml.safe_dump(auditor))
    return values


class Rendered:
    def __init__(self, name, docs):
        self.name = name
        self.docs = docs

    def of(self, kind):
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind, name):
        found = [d for d in self.of(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.name}: expected one {kind} {name}, found {len(found)}"
        return found[0]

    def workloads(self):
        return [(d, d["spec"]["template"]["spec"]) for d in self.docs if d["kind"] in WORKLOADS]

    def component(self, svc):
        return self.get("Deployment", f"hookline-{svc}")

    def config_of(self, svc):
        """The service's YAML as mounted from its ConfigMap, parsed."""
        pod = self.component(svc)["spec"]["template"]["spec"]
        vol = next(v for v in pod["volumes"] if v["name"] == "config")
        cm = self.get("ConfigMap", vol["configMap"]["name"])
        return yaml.safe_load(cm["data"][f"{svc}.yaml"])

    def secret_value(self, name, key):
        s = self.get("Secret", name)
        if key in (s.get("stringData") or {}):
            return s["stringData"][key]
        return base64.b64decode(s["data"][key]).decode()


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request, tmp_path_factory):
    tree = copy_tree(tmp_path_factory.mktemp(request.param))
    overlay = tree / "overlays" / request.param
    if request.param == "production":
        write_production_secrets(overlay)
    r = kustomize(overlay)
    assert r.returncode == 0, f"kubectl kustomize overlays/{request.param} failed:\n{r.stderr}"
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    assert docs, f"overlays/{request.param} rendered nothing"
    return Rendered(request.param, docs)


def test_production_does_not_render_without_its_secret_files(tmp_path):
    r = kustomize(copy_tree(tmp_path) / "overlays" / "production")
    assert r.returncode != 0, "production rendered with the example secrets"
    assert "secrets/" in r.stderr, r.stderr


def test_every_overlay_has_every_part(rendered):
    for svc in SERVICES:
        rendered.component(svc)
        rendered.get("Service", f"hookline-{svc}")
        rendered.get("PodDisruptionBudget", f"hookline-{svc}")
    hpa = rendered.get("HorizontalPodAutoscaler", "hookline-ingress")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "hookline-ingress")
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert "replicas" not in rendered.component("ingress")["spec"], \
        "the autoscaler owns the ingress replica count"
    rendered.get("Job", "hookline-migrate")
    assert rendered.of("ServiceMonitor") and rendered.of("NetworkPolicy")
    assert len(rendered.of("Kafka")) == 1 and rendered.of("KafkaNodePool")
    assert len(rendered.of("Cluster")) == 1


def test_api_versions_and_namespace(rendered):
    for d in rendered.docs:
        kind = d["kind"]
        assert kind in API_VERSIONS, f"unexpected kind {kind}"
        assert d["apiVersion"] == API_VERSIONS[kind], (kind, d["apiVersion"])
        assert d["metadata"].get("namespace") == NAMESPACES[rendered.name], \
            (kind, d["metadata"]["name"])


def _refs(rendered):
    """(what, kind, name, key or None) for every ConfigMap/Secret reference."""
    out = []
    for wl, pod in rendered.workloads():
        where = f"{wl['kind']}/{wl['metadata']['name']}"
        for c in pod.get("containers", []) + pod.get("initContainers", []):
            for e in c.get("env", []):
                vf = e.get("valueFrom") or {}
                if "configMapKeyRef" in vf:
                    out.append((where, "ConfigMap", vf["configMapKeyRef"]["name"],
                                vf["configMapKeyRef"]["key"]))
                if "secretKeyRef" in vf:
                    out.append((where, "Secret", vf["secretKeyRef"]["name"],
                                vf["secretKeyRef"]["key"]))
            for ef in c.get("envFrom", []):
                if "configMapRef" in ef:
                    out.append((where, "ConfigMap", ef["configMapRef"]["name"], None))
                if "secretRef" in ef:
                    out.append((where, "Secret", ef["secretRef"]["name"], None))
        for v in pod.get("volumes", []):
            if "configMap" in v:
                keys = [i["key"] for i in v["configMap"].get("items", [])] or [None]
                out += [(where, "ConfigMap", v["configMap"]["name"], k) for k in keys]
            if "secret" in v:
                keys = [i["key"] for i in v["secret"].get("items", [])] or [None]
                out += [(where, "Secret", v["secret"]["secretName"], k) for k in keys]
    for cl in rendered.of("Cluster"):
        sec = cl["spec"]["bootstrap"]["initdb"]["secret"]["name"]
        out += [(f"Cluster/{cl['metadata']['name']}", "Secret", sec, k)
                for k in ("username", "password")]
        for role in cl["spec"].get("managed", {}).get("roles", []):
            out += [(f"Cluster/{cl['metadata']['name']} role {role['name']}", "Secret",
                     role["passwordSecret"]["name"], k) for k in ("username", "password")]
    for sm in rendered.of("ServiceMonitor"):
        for ep in sm["spec"]["endpoints"]:
            bt = ep.get("bearerTokenSecret")
            if bt:
                out.append((f"ServiceMonitor/{sm['metadata']['name']}", "Secret", bt["name"],
                            bt["key"]))
    return out


def test_every_configmap_and_secret_reference_resolves(rendered):
    refs = _refs(rendered)
    assert len(refs) > 10
    problems = []
    for where, kind, name, key in refs:
        found = [d for d in rendered.of(kind) if d["metadata"]["name"] == name]
        if not found:
            problems.append(f"{where}: {kind} {name} is not rendered")
            continue
        data = {**(found[0].get("data") or {}), **(found[0].get("stringData") or {})}
        if key is not None and key not in data:
            problems.append(f"{where}: {kind} {name} has no key {key}")
    assert not problems, "\n".join(problems)


def test_ports_and_probes_match_the_service_configs(rendered):
    for svc in SERVICES:
        dep = rendered.component(svc)
        pod = dep["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        cfg = rendered.config_of(svc)
        port = listen_port(cfg["http"]["listen"])
        assert port == local_port(svc), f"{svc}: Kubernetes port {port} != local {local_port(svc)}"
        assert cfg["http"]["listen"].startswith("0.0.0.0:"), f"{svc} must listen on all addresses"
        named = {p["name"]: p["containerPort"] for p in c["ports"]}
        want = [port]
        if "metrics_listen" in cfg:  # the ingress: /metrics on a port of its own
            assert cfg["metrics_listen"].startswith("0.0.0.0:"), f"{svc}: Prometheus cannot reach it"
            assert named.get("metrics") == listen_port(cfg["metrics_listen"]), named
            want.append(named["metrics"])
        assert list(named.values()) == want, f"{svc}: container ports {named} != {want}"
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            get = c[probe]["httpGet"]
            assert get["path"] == path, f"{svc}: {probe} on {get['path']}"
            assert named.get(get["port"], get["port"]) == port, f"{svc}: {probe} port"
        svc_obj = rendered.get("Service", f"hookline-{svc}")
        for sp in svc_obj["spec"]["ports"]:
            assert named.get(sp["targetPort"], sp["targetPort"]) == port, (svc, sp)
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert svc_obj["spec"]["selector"].items() <= labels.items(), f"{svc}: Service selects nothing"


def test_service_configs_use_only_known_keys_and_contract_topics(rendered):
    topics = contract_topics()
    for svc in SERVICES:
        cfg = rendered.config_of(svc)
        known = schema_keys(svc)
        unknown = [path for path, key in config_keys(cfg) if key not in known]
        assert not unknown, f"{svc}: keys its schema does not know: {unknown}"
        for key in ("events_topic", "lineage_topic", "dlq_topic"):
            name = (cfg.get("kafka") or {}).get(key)
            assert name is None or name in topics, f"{svc}: kafka.{key} {name} not in the contract"


def test_ingress_gets_every_source_secret(rendered):
    cfg = rendered.config_of("ingress")
    (c,) = rendered.component("ingress")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in c.get("env", [])}
    wanted = [s["env"] for src in cfg["sources"] for s in src.get("secrets") or [] if s.get("env")]
    assert wanted
    for var in wanted:
        assert var in env, f"ingress config reads {var}, the Deployment does not set it"
        assert "secretKeyRef" in env[var].get("valueFrom", {}), f"{var} must come from a Secret"


def test_pods_are_non_root_read_only_and_bounded(rendered):
    uid = image_uid()
    for wl, pod in rendered.workloads():
        what = f"{wl['kind']}/{wl['metadata']['name']}"
        psc = pod.get("securityContext") or {}
        assert psc.get("runAsNonRoot") is True, f"{what}: runAsNonRoot"
        assert psc.get("runAsUser") == uid, f"{what}: runAsUser != the image's uid {uid}"
        for c in pod["containers"]:
            sc = c.get("securityContext") or {}
            assert sc.get("readOnlyRootFilesystem") is True, f"{what}: readOnlyRootFilesystem"
            assert sc.get("allowPrivilegeEscalation") is False, f"{what}: allowPrivilegeEscalation"
            assert "ALL" in (sc.get("capabilities") or {}).get("drop", []), f"{what}: capabilities"
            for part in ("requests", "limits"):
                res = (c.get("resources") or {}).get(part) or {}
                assert {"cpu", "memory"} <= res.keys(), f"{what}: resources.{part} {res}"


def test_termination_grace_covers_pre_stop_and_drain(rendered):
    for svc in SERVICES:
        pod = rendered.component(svc)["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        pre = 0
        cmd = (((c.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command")
        if cmd:
            assert cmd[0] == "sleep" and len(cmd) == 2, f"{svc}: unexpected preStop {cmd}"
            pre = int(cmd[1])
        need_ms = pre * 1000 + drain_ms(svc, rendered.config_of(svc))
        grace = pod.get("terminationGracePeriodSeconds", 30)
        assert grace * 1000 > need_ms, \
            f"{svc}: terminationGracePeriodSeconds {grace} <= preStop {pre}s + drain {need_ms - pre * 1000}ms"


def _broker_nodes(rendered, cluster):
    return sum(p["spec"]["replicas"] for p in rendered.of("KafkaNodePool")
               if p["metadata"]["labels"].get("strimzi.io/cluster") == cluster
               and "broker" in p["spec"]["roles"])


def test_kafka_topics_match_the_contract(rendered):
    (kafka,) = rendered.of("Kafka")
    cluster = kafka["metadata"]["name"]
    brokers = _broker_nodes(rendered, cluster)
    topics = {}
    for t in rendered.of("KafkaTopic"):
        assert t["metadata"]["labels"]["strimzi.io/cluster"] == cluster
        spec = t["spec"]
        topics[spec.get("topicName", t["metadata"]["name"])] = spec["partitions"]
        rf, isr = spec["replicas"], int(spec["config"]["min.insync.replicas"])
        assert rf <= brokers, f"{spec['topicName']}: {rf} replicas on {brokers} brokers"
        # acks=all must survive one node down, and a lone copy must still be writable.
        assert isr == (1 if rf == 1 else rf - 1), f"{spec['topicName']}: rf {rf}, min ISR {isr}"
        if rendered.name == "production":
            assert (rf, isr) == (3, 2), f"{spec['topicName']}: production needs rf 3, min ISR 2"
    assert topics == contract_topics()
    conf = kafka["spec"]["kafka"]["config"]
    assert conf["auto.create.topics.enable"] is False or conf["auto.create.topics.enable"] == "false"
    assert int(conf["offsets.topic.replication.factor"]) <= brokers


def test_addresses_point_at_the_operator_services(rendered):
    (kafka,) = rendered.of("Kafka")
    (pg,) = rendered.of("Cluster")
    env_cms = [cm for cm in rendered.of("ConfigMap") if "kafka-brokers" in (cm.get("data") or {})]
    assert len(env_cms) == 1
    data = env_cms[0]["data"]
    plain = [lst for lst in kafka["spec"]["kafka"]["listeners"] if not lst.get("tls")]
    assert plain, "the services speak plaintext Kafka inside the cluster"
    assert data["kafka-brokers"] == f"{kafka['metadata']['name']}-kafka-bootstrap:{plain[0]['port']}"
    conninfo = dict(kv.split("=", 1) for kv in data["postgres-conninfo"].split())
    assert conninfo["host"] == f"{pg['metadata']['name']}-rw"
    initdb = pg["spec"]["bootstrap"]["initdb"]
    assert (conninfo["dbname"], conninfo["user"]) == (initdb["database"], initdb["owner"])
    assert "password" not in conninfo, "the password comes from a Secret, not a ConfigMap"
    assert rendered.secret_value(initdb["secret"]["name"], "username") == initdb["owner"]
    for key in ("persister-postgres-conninfo", "auditor-postgres-conninfo",
                "auditor-postgres-read-conninfo"):
        own = dict(kv.split("=", 1) for kv in data[key].split())
        assert (own["host"], own["dbname"]) == (conninfo["host"], conninfo["dbname"]), key
        assert "password" not in own, key


def _env(container, name):
    (e,) = [e for e in container["env"] if e["name"] == name]
    return e


# Which role each service's connections use, and the variables that carry its password.
SERVICE_ROLES = {
    ("persister", "HOOKLINE_POSTGRES_CONNINFO", "PGPASSWORD"): "hookline_persister",
    ("auditor", "HOOKLINE_POSTGRES_CONNINFO", "PGPASSWORD"): "hookline_auditor",
    ("auditor", "HOOKLINE_POSTGRES_READ_CONNINFO", "HOOKLINE_POSTGRES_READ_PASSWORD"):
        "hookline_reader",
}


def test_each_service_signs_in_as_a_managed_role_of_its_own(rendered):
    """The operator makes one role per service (spec.managed.roles) with no attribute that
    could undo the grants, the migration Job grants exactly those roles as the owner, and each
    service's conninfo names its role while its password comes from that role's Secret."""
    (pg,) = rendered.of("Cluster")
    owner = pg["spec"]["bootstrap"]["initdb"]["owner"]
    managed = {r["name"]: r for r in pg["spec"]["managed"]["roles"]}
    assert set(managed) == set(SERVICE_ROLES.values()) and owner not in managed
    for name, role in managed.items():
        assert role.get("ensure", "present") == "present" and role["login"] is True, name
        for attr in ("superuser", "createrole", "createdb", "replication", "bypassrls"):
            assert role.get(attr) is False, f"{name}: {attr} must be set false"
        assert not role.get("inRoles"), f"{name} must not be a member of another role"
        assert rendered.secret_value(role["passwordSecret"]["name"], "username") == name
    env_cm = next(cm for cm in rendered.of("ConfigMap") if "kafka-brokers" in (cm.get("data") or {}))
    for (svc, conn_var, pw_var), role in SERVICE_ROLES.items():
        (c,) = rendered.component(svc)["spec"]["template"]["spec"]["containers"]
        key = _env(c, conn_var)["valueFrom"]["configMapKeyRef"]["key"]
        conninfo = dict(kv.split("=", 1) for kv in env_cm["data"][key].split())
        assert conninfo["user"] == role, f"{svc}: {conn_var} signs in as {conninfo['user']}"
        ref = _env(c, pw_var)["valueFrom"]["secretKeyRef"]
        assert ref["name"] == managed[role]["passwordSecret"]["name"], (svc, pw_var, ref)
        assert ref["key"] == "password"
    (job,) = [d for d in rendered.of("Job") if d["metadata"]["name"] == "hookline-migrate"]
    (c,) = job["spec"]["template"]["spec"]["containers"]
    granted = {e["name"]: e.get("value") for e in c["env"]}
    assert {granted[f"HOOKLINE_PG_{k.upper()}_ROLE"] for k in ("persister", "auditor", "reader")} \
        == set(managed)
    assert "HOOKLINE_PG_CREATE_ROLES" not in granted, "the operator makes the roles"
    mig = dict(kv.split("=", 1) for kv in
               env_cm["data"][_env(c, "HOOKLINE_PG_CONNINFO")["valueFrom"]["configMapKeyRef"]["key"]].split())
    assert mig["user"] == owner, "migrations run as the owner"


def test_auditor_metrics_token_is_one_the_auditor_accepts(rendered):
    cfg = rendered.config_of("auditor")
    (sm,) = rendered.of("ServiceMonitor")
    ep = next(e for e in sm["spec"]["endpoints"] if e.get("bearerTokenSecret"))
    token = rendered.secret_value(ep["bearerTokenSecret"]["name"], ep["bearerTokenSecret"]["key"])
    digest = hashlib.sha256(token.encode()).hexdigest()
    roles = [t["roles"] for t in cfg["tokens"] if t["sha256"] == digest]
    assert roles and "metrics" in roles[0], "the ServiceMonitor's token has no metrics role"
    # The endpoint's port is the auditor Service's port, and only the auditor's.
    ports = {p["name"] for p in rendered.get("Service", "hookline-auditor")["spec"]["ports"]}
    assert ep["port"] in ports
    others = [p["name"] for s in ("ingress", "persister")
              for p in rendered.get("Service", f"hookline-{s}")["spec"]["ports"]]
    assert ep["port"] not in others, "the token must not be sent to other services"
    key = rendered.secret_value("hookline-secrets", "auditor-checkpoint-key")
    assert "BEGIN PRIVATE KEY" in key and not cfg["checkpoint"].get("generate_if_missing")


def _selects(selector, labels):
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        has = e["key"] in labels
        if e["operator"] == "In" and not (has and labels[e["key"]] in e["values"]):
            return False
        if e["operator"] == "NotIn" and has and labels[e["key"]] in e["values"]:
            return False
        if e["operator"] == "Exists" and not has:
            return False
    return True


def test_selectors_select_something(rendered):
    pods = [wl["spec"]["template"]["metadata"]["labels"] for wl, _ in rendered.workloads()]
    for kind in ("PodDisruptionBudget", "NetworkPolicy"):
        for obj in rendered.of(kind):
            sel = obj["spec"]["selector" if kind == "PodDisruptionBudget" else "podSelector"]
            assert any(_selects(sel, p) for p in pods), f"{kind} {obj['metadata']['name']}"
    for sm in rendered.of("ServiceMonitor"):
        svcs = [s for s in rendered.of("Service")
                if _selects(sm["spec"]["selector"], s["metadata"].get("labels") or {})]
        assert {s["metadata"]["name"] for s in svcs} >= {f"hookline-{x}" for x in SERVICES}
        ports = {p["name"] for s in svcs for p in s["spec"]["ports"]}
        for ep in sm["spec"]["endpoints"]:
            assert ep["port"] in ports and ep["path"] == "/metrics"


def test_network_policies_admit_the_service_ports(rendered):
    for svc in SERVICES:
        labels = rendered.component(svc)["spec"]["template"]["metadata"]["labels"]
        port = local_port(svc)
        allowed = [p.get("port") for np in rendered.of("NetworkPolicy")
                   if _selects(np["spec"]["podSelector"], labels)
                   for rule in np["spec"].get("ingress") or [] for p in rule.get("ports") or []]
        assert port in allowed, f"no NetworkPolicy admits {svc} on {port}"


def _pod_environment(rendered, container):
    """The environment a container gets from literal values and ConfigMap/Secret keys."""
    env = {}
    for e in container.get("env", []):
        vf = e.get("valueFrom")
        if vf is None:
            env[e["name"]] = e["value"]
        elif "configMapKeyRef" in vf:
            ref = vf["configMapKeyRef"]
            env[e["name"]] = rendered.get("ConfigMap", ref["name"])["data"][ref["key"]]
        else:
            ref = vf["secretKeyRef"]
            env[e["name"]] = rendered.secret_value(ref["name"], ref["key"])
    return env


def _start_with_config(svc, cfg_text, env, tmp_path):
    """Starts the built service on `cfg_text`; returns its exit code if it stopped within a
    few seconds (a configuration error exits 2 at once), or None if it was still running."""
    cfg = tmp_path / f"{svc}.yaml"
    cfg.write_text(cfg_text)
    log = open(tmp_path / f"{svc}.log", "w")
    proc = subprocess.Popen([str(paths.find_binary(svc)), "--config", str(cfg)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        return proc.wait(timeout=4)
    except subprocess.TimeoutExpired:
        return None
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


@pytest.mark.parametrize("svc", SERVICES)
def test_built_service_accepts_its_kubernetes_config(svc, tmp_path_factory):
    """The ConfigMap and environment of the dev overlay, given to the real binary: it must
    get past configuration (with Kafka and Postgres pointed at a closed port it keeps running
    and retrying), and the same config with a bad value must stop it with exit code 2."""
    tmp = tmp_path_factory.mktemp(f"run-{svc}")
    r = kustomize(K8S / "overlays" / "dev")
    assert r.returncode == 0, r.stderr
    rendered = Rendered("dev", [d for d in yaml.safe_load_all(r.stdout) if d])
    pod = rendered.component(svc)["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **_pod_environment(rendered, c),
           **sanitizers.child_env()}
    # Addresses of this machine instead of the cluster's: nothing listens on port 1.
    # The metrics port too: the manifests' own (9464) is a running demo's.
    env.update(HOOKLINE_KAFKA_BROKERS="127.0.0.1:1", HOOKLINE_HTTP_LISTEN="127.0.0.1:0",
               HOOKLINE_METRICS_LISTEN=f"127.0.0.1:{free_port()}",
               HOOKLINE_POSTGRES_CONNINFO="host=127.0.0.1 port=1 dbname=hookline user=hookline")
    if svc == "auditor":
        key = tmp / "checkpoint.pem"
        key.write_text(rendered.secret_value("hookline-secrets", "auditor-checkpoint-key"))
        key.chmod(0o600)
        env["HOOKLINE_AUDITOR_CHECKPOINT_KEY_FILE"] = str(key)
    vol = next(v for v in pod["volumes"] if v["name"] == "config")
    text = rendered.get("ConfigMap", vol["configMap"]["name"])["data"][f"{svc}.yaml"]
    rc = _start_with_config(svc, text, env, tmp)
    log = (tmp / f"{svc}.log").read_text()
    assert rc is None, f"{svc} refused its Kubernetes config (exit {rc}):\n{log[-2000:]}"
    assert not sanitizers.reports(log), f"{svc}: sanitizer report:\n{log[-4000:]}"
    bad = yaml.safe_load(text)
    bad["log_level"] = "chatty"
    rc = _start_with_config(svc, yaml.safe_dump(bad), env, tmp)
    log = (tmp / f"{svc}.log").read_text()
    assert not sanitizers.reports(log), f"{svc}: sanitizer report:\n{log[-4000:]}"
    assert rc == 2, f"{svc} accepted log_level 'chatty' (exit {rc})"


def test_ingress_metrics_only_on_their_own_port_and_service(rendered):
    """The ingress's /metrics: a container port of its own, a Service of its own (not the one
    that takes webhooks), scraped by the ServiceMonitor, reachable from monitoring only; and no
    ServiceMonitor endpoint scrapes the webhook port."""
    cfg = rendered.config_of("ingress")
    mport, wport = listen_port(cfg["metrics_listen"]), listen_port(cfg["http"]["listen"])
    assert mport != wport
    public = rendered.get("Service", "hookline-ingress")["spec"]["ports"]
    assert all(p["port"] != mport and p.get("targetPort") != "metrics" for p in public), public
    (msvc,) = [s for s in rendered.of("Service")
               if any(p.get("targetPort") == "metrics" for p in s["spec"]["ports"])]
    assert [p["port"] for p in msvc["spec"]["ports"]] == [mport]
    (sm,) = rendered.of("ServiceMonitor")
    assert _selects(sm["spec"]["selector"], msvc["metadata"].get("labels") or {})
    scraped = {ep["port"] for ep in sm["spec"]["endpoints"]}
    assert msvc["spec"]["ports"][0]["name"] in scraped
    assert not {p["name"] for p in public} & scraped, "the webhook port would be scraped"
    labels = rendered.component("ingress")["spec"]["template"]["metadata"]["labels"]
    rules = [rule for np in rendered.of("NetworkPolicy") if _selects(np["spec"]["podSelector"], labels)
             for rule in np["spec"].get("ingress") or []
             if any(p.get("port") == mport for p in rule.get("ports") or [])]
    assert rules and all(rule.get("from") for rule in rules), "metrics port open to everyone"
