"""Offline schema checks of rendered Kubernetes objects, for test_deploy_k8s_schemas.py.

Custom resources are checked against the openAPIV3Schema of their operator's own CRD (copied
under tests/k8s-schemas/, see its README), made strict the way the API server's strict field
validation is: every object schema that lists `properties` (and does not keep unknown fields
on purpose) gets `additionalProperties: false`, so a misspelt key is an error instead of being
pruned in silence. Core objects are checked against the API models of the Kubernetes Python
client (Debian's python3-kubernetes, API 1.22): every key must be a field of its type, with a
value of that type, and required fields present. No OpenAPI document of the core API ships in
a Debian package, so these models are the core schema available offline; autoscaling/v2 is
checked with the field-identical v2beta2 models, which is what that 1.22 API offers.
"""
import copy
import functools

import jsonschema
import kubernetes.client as k8s
import yaml

from harness import paths

SCHEMAS = paths.SOURCE_DIR / "tests" / "k8s-schemas"

# apiVersion, kind -> model class name of the Python client.
CORE_MODELS = {
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Secret"): "V1Secret",
    ("v1", "Service"): "V1Service",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("batch/v1", "Job"): "V1Job",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("networking.k8s.io/v1", "NetworkPolicy"): "V1NetworkPolicy",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2beta2HorizontalPodAutoscaler",
}


def _strict(schema):
    """A copy of an openAPIV3Schema in which unknown keys of described objects are errors."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) if k not in ("enum", "default", "example") else v
           for k, v in schema.items()}
    if ("properties" in schema and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@functools.lru_cache(maxsize=None)
def crd_validators(schema_set):
    """{(apiVersion, kind): jsonschema validator} for every CRD file in one schema folder."""
    out = {}
    for path in sorted((SCHEMAS / schema_set).glob("*.yaml")):
        crd = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if not version.get("served"):
                continue
            schema = _strict(version["schema"]["openAPIV3Schema"])
            out[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    assert out, f"no CRD under {SCHEMAS / schema_set}"
    return out


def _required(cls, attr):
    """True when the client's model refuses None for attr (its required fields)."""
    obj = cls.__new__(cls)
    obj.local_vars_configuration = k8s.Configuration()
    obj.local_vars_configuration.client_side_validation = True
    try:
        setattr(obj, attr, None)
    except ValueError:
        return True
    return False


def _check_model(value, type_name, path, problems):
    if type_name.startswith("list["):
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            _check_model(item, type_name[5:-1], f"{path}[{i}]", problems)
        return
    if type_name.startswith("dict("):
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a map, got {type(value).__name__}")
            return
        inner = type_name[5:-1].split(", ", 1)[1]
        for k, v in value.items():
            _check_model(v, inner, f"{path}.{k}", problems)
        return
    simple = {"str": str, "int": int, "bool": bool, "float": (int, float), "datetime": str,
              "date": str}
    if type_name in simple:
        ok = isinstance(value, simple[type_name]) and not (
            type_name in ("int", "float") and isinstance(value, bool))
        if not ok:
            problems.append(f"{path}: expected {type_name}, got {value!r}")
        return
    if type_name == "object":  # IntOrString, Quantity, RawExtension
        return
    cls = getattr(k8s, type_name)
    if not isinstance(value, dict):
        problems.append(f"{path}: expected a {type_name} object, got {value!r}")
        return
    by_key = {key: attr for attr, key in cls.attribute_map.items()}
    for key, v in value.items():
        if key not in by_key:
            problems.append(f"{path}.{key}: unknown field of {type_name}")
            continue
        _check_model(v, cls.openapi_types[by_key[key]], f"{path}.{key}", problems)
    for attr, key in cls.attribute_map.items():
        if key not in value and _required(cls, attr):
            problems.append(f"{path}.{key}: required field of {type_name} missing")


def problems(doc, schema_sets):
    """Every schema error of one rendered object, as 'Kind/name: path: message' strings.
    schema_sets: the folders under tests/k8s-schemas whose CRDs apply to this render."""
    where = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
    key = (doc.get("apiVersion"), doc.get("kind"))
    out = []
    if key in CORE_MODELS:
        body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind")}
        _check_model(body, CORE_MODELS[key], "", out)
        return [f"{where}: {p.lstrip('.')}" for p in out]
    validators = {}
    for s in schema_sets:
        validators.update(crd_validators(s))
    if key not in validators:
        return [f"{where}: no schema for {key[0]} {key[1]} in {', '.join(schema_sets)}"]
    for err in sorted(validators[key].iter_errors(doc), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in err.absolute_path) or "(top)"
        out.append(f"{where}: {path}: {err.message[:300]}")
    # The CRD schema says only `metadata: {type: object}`; the API server checks ObjectMeta.
    meta = []
    _check_model(doc.get("metadata") or {}, "V1ObjectMeta", "metadata", meta)
    return out + [f"{where}: {p}" for p in meta]


def servicemonitor_problems(doc):
    """No CRD of the Prometheus Operator is available offline: what can be checked is the API
    version and kind, and the fields the operator requires and the tests rely on."""
    where = f"ServiceMonitor/{doc['metadata'].get('name')}"
    out = []
    if doc.get("apiVersion") != "monitoring.coreos.com/v1":
        out.append(f"{where}: apiVersion {doc.get('apiVersion')}")
    spec = doc.get("spec") or {}
    for field in ("selector", "endpoints"):
        if field not in spec:
            out.append(f"{where}: spec.{field} missing")
    for i, ep in enumerate(spec.get("endpoints") or []):
        if not isinstance(ep, dict) or not ep.get("port"):
            out.append(f"{where}: spec.endpoints[{i}].port missing")
    meta = []
    _check_model(doc.get("metadata") or {}, "V1ObjectMeta", "metadata", meta)
    return out + [f"{where}: {p}" for p in meta]


def all_problems(docs, schema_sets):
    out = []
    for d in docs:
        if d.get("kind") == "ServiceMonitor":
            out += servicemonitor_problems(d)
        else:
            out += problems(d, schema_sets)
    return out


def with_change(doc, path, value=None, drop=None):
    """A copy of doc with value set at path (a list of keys and indexes), or with the key
    `drop` removed there instead."""
    doc = copy.deepcopy(doc)
    node = doc
    for p in path[:-1]:
        node = node[p]
    if drop is not None:
        del node[path[-1]][drop]
    else:
        node[path[-1]] = value
    return doc
