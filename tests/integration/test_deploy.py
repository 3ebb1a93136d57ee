"""The container recipe and the compose stack, checked without a Docker engine.

- deploy/docker/build.sh (the Dockerfile's builder stage) runs here into a temporary prefix;
  every binary must be installed and answer --help, and every shared library it links must
  come from a package the Dockerfile's runtime stage installs.
- compose.yaml must be accepted by Debian's docker-compose, and its ports, start order,
  health checks, mounted files and secrets must agree with the local configs and contracts.
- The compose topic step (deploy/docker/create-topics.sh) must create exactly the topics of
  proto/topics.yaml, driven against a stand-in kafka-topics.sh.

None of these need Kafka or Postgres. Kubernetes manifests: test_deploy_k8s.py.
"""
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy_support import (SERVICES, contract_topics, dockerfile_stages,
                            drain_ms, image_uid, listen_port, local_config, local_port,
                            require_tool)
from harness import paths

SRC = paths.SOURCE_DIR
DOCKER_DIR = SRC / "deploy" / "docker"
BUILD_SH = DOCKER_DIR / "build.sh"
COMPOSE = SRC / "compose.yaml"
EXAMPLE_ENV = DOCKER_DIR / "example.env"
CREATE_TOPICS = DOCKER_DIR / "create-topics.sh"

BINARIES = ["hookline-ingress", "hookline-persister", "hookline-auditor", "hookline"]
# Packages every Debian image has (Essential or required by them): not listed in the Dockerfile.
BASE_IMAGE_PACKAGES = {"libc6", "libgcc-s1"}


def runtime_packages():
    _, lines = dockerfile_stages()[-1]
    for line in lines:
        m = re.search(r"apt-get install\s+(.*?)(?:&&|$)", line)
        if m:
            return {w for w in m.group(1).split() if not w.startswith("-")}
    pytest.fail("the Dockerfile's runtime stage installs no packages")


def test_dockerfile_is_multistage_bookworm_nonroot_and_runs_build_sh():
    stages = dockerfile_stages()
    assert len(stages) >= 2, "builder and runtime stages expected"
    assert stages[0][0].startswith("debian:bookworm"), stages[0][0]
    assert stages[-1][0] == "debian:bookworm-slim", stages[-1][0]
    builder = " ".join(stages[0][1])
    assert "deploy/docker/build.sh" in builder and "--prefix /opt/hookline" in builder
    runtime = stages[-1][1]
    assert any(re.match(r"COPY --from=\S+ /opt/hookline /opt/hookline", line) for line in runtime)
    uid = image_uid()
    assert uid >= 1000, "the image must not run as root or a system uid"
    assert any(f"--uid {uid}" in line for line in runtime), "USER must be a created account"
    # One image for every binary: the command chooses it, nothing fixes an ENTRYPOINT.
    assert not any(line.upper().startswith("ENTRYPOINT") for line in runtime)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """build.sh run the way the Dockerfile runs it (minus apt), into a temporary prefix."""
    prefix = tmp_path_factory.mktemp("prefix") / "opt" / "hookline"
    # build.sh's own default build folder, kept between runs so the build is incremental.
    build_dir = Path(os.environ.get("HL_DEPLOY_BUILD_DIR") or SRC / "build-image")
    r = subprocess.run([str(BUILD_SH), "--skip-apt", "--source", str(SRC), "--build-dir",
                        str(build_dir), "--prefix", str(prefix), "--jobs", "2"],
                       capture_output=True, text=True, timeout=3000)
    if r.returncode != 0:
        missing = re.search(r"not built or not found under \S+: (.*)", r.stderr)
        detail = f"missing: {missing.group(1)}" if missing else r.stderr[-3000:]
        pytest.fail(f"deploy/docker/build.sh failed ({r.returncode}); {detail}\n{r.stdout[-2000:]}")
    return prefix


@pytest.mark.parametrize("binary", BINARIES)
def test_build_sh_installs_binary_that_answers_help(installed, binary):
    exe = installed / "bin" / binary
    assert exe.is_file(), f"{binary} is not installed in {installed}/bin"
    assert os.stat(exe).st_mode & stat.S_IXUSR
    r = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"{binary} --help exited {r.returncode}: {r.stderr[-500:]}"
    out = r.stdout + r.stderr
    assert "usage" in out.lower() or binary in out, f"{binary} --help printed no usage: {out!r}"


def test_build_sh_installs_migrations_configs_and_migrate(installed):
    share = installed / "share" / "hookline"
    want = sorted(p.name for p in (SRC / "proto" / "sql").glob("*.sql"))
    assert want and sorted(p.name for p in (share / "sql").glob("*.sql")) == want
    assert (share / "topics.yaml").read_text() == (SRC / "proto" / "topics.yaml").read_text()
    for svc in SERVICES:
        if (SRC / "deploy" / "local" / f"{svc}.yaml").is_file():
            assert (share / "config" / f"{svc}.yaml").is_file(), f"{svc}.yaml not installed"
    runner = installed / "libexec" / "hookline" / "migrate"
    assert runner.read_bytes() == (SRC / "deploy" / "local" / "migrate").read_bytes(), \
        "the image must reuse deploy/local/migrate unchanged"
    assert os.access(installed / "bin" / "hookline-migrate", os.X_OK)


def test_migrate_entrypoint_refuses_bad_environment_and_times_out(installed):
    exe = str(installed / "bin" / "hookline-migrate")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOOKLINE_", "PG"))}
    r = subprocess.run([exe], capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode != 0 and "HOOKLINE_PG_CONNINFO" in r.stderr
    r = subprocess.run([exe], capture_output=True, text=True, timeout=30,
                       env={**env, "HOOKLINE_PG_CONNINFO": "host=127.0.0.1 port=1",
                            "HOOKLINE_MIGRATE_WAIT_S": "soon"})
    assert r.returncode == 2 and "HOOKLINE_MIGRATE_WAIT_S" in r.stderr
    r = subprocess.run([exe], capture_output=True, text=True, timeout=30,
                       env={**env, "HOOKLINE_PG_CONNINFO": "host=127.0.0.1 port=1",
                            "HOOKLINE_PG_CREATE_ROLES": "yes"})
    assert r.returncode == 2 and "HOOKLINE_PG_CREATE_ROLES" in r.stderr, r.stderr
    # Nothing listens on port 1: with no time to wait it gives up at once, saying why.
    r = subprocess.run([exe], capture_output=True, text=True, timeout=30,
                       env={**env, "HOOKLINE_PG_CONNINFO": "host=127.0.0.1 port=1 dbname=x",
                            "HOOKLINE_MIGRATE_WAIT_S": "0"})
    assert r.returncode == 1 and "not accepting connections" in r.stderr, r.stderr


def _needed_libraries(exe):
    out = subprocess.run([require_tool("objdump", "binutils"), "-p", str(exe)], capture_output=True, text=True,
                         check=True).stdout
    needed = re.findall(r"^\s*NEEDED\s+(\S+)", out, re.M)
    resolved = {}
    for line in subprocess.run(["ldd", str(exe)], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        m = re.match(r"\s*(\S+) => (\S+)", line)
        if m:
            resolved[m.group(1)] = m.group(2)
    return needed, resolved


def test_runtime_stage_installs_every_linked_library(installed):
    """Every library a binary links either ships in the prefix or comes from a package the
    runtime stage installs; nothing is looked up in the build folder."""
    wanted = runtime_packages()
    problems = []
    for binary in BINARIES:
        exe = installed / "bin" / binary
        dyn = subprocess.run(["objdump", "-p", str(exe)], capture_output=True, text=True).stdout
        for path in re.findall(r"^\s*(?:RUNPATH|RPATH)\s+(\S+)", dyn, re.M):
            for d in path.split(":"):
                if not d.startswith("$ORIGIN"):
                    problems.append(f"{binary}: run path {d} depends on where it was built")
        needed, resolved = _needed_libraries(exe)
        for lib in needed:
            path = resolved.get(lib)
            if path is None or path == "not":
                problems.append(f"{binary}: {lib} does not resolve")
                continue
            if Path(path).resolve().is_relative_to(installed.resolve()):
                continue  # built in the tree and shipped in PREFIX/lib/hookline
            owner = subprocess.run(["dpkg", "-S", os.path.realpath(path)], capture_output=True,
                                   text=True)
            if owner.returncode != 0:
                owner = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
            pkg = owner.stdout.split(":", 1)[0].strip() if owner.returncode == 0 else None
            if pkg is None:
                problems.append(f"{binary}: {lib} ({path}) belongs to no Debian package")
            elif pkg not in wanted and pkg not in BASE_IMAGE_PACKAGES:
                problems.append(f"{binary}: {lib} comes from {pkg}, not installed by the image")
    assert not problems, "\n".join(problems)


def test_build_sh_refuses_bad_arguments(tmp_path):
    for args, says in ((["--jobs", "two"], "--jobs"), (["--frobnicate"], "unknown argument"),
                       (["--source", str(tmp_path)], "no CMakeLists.txt")):
        r = subprocess.run([str(BUILD_SH), "--skip-apt", "--prefix", str(tmp_path / "p"), *args],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and says in r.stderr, (args, r.stderr)
    assert not (tmp_path / "p").exists(), "a refused run must not install anything"


# --- create-topics.sh ---------------------------------------------------------------------

@pytest.fixture
def fake_kafka_topics(tmp_path):
    log = tmp_path / "calls"
    tool = tmp_path / "kafka-topics.sh"
    tool.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\n')
    tool.chmod(0o755)
    return tool, log


def run_create_topics(tool, *args):
    return subprocess.run(["sh", str(CREATE_TOPICS), *args], capture_output=True, text=True,
                          env={**os.environ, "KAFKA_TOPICS_BIN": str(tool)}, timeout=30)


def test_create_topics_creates_the_contract_topics(fake_kafka_topics):
    tool, log = fake_kafka_topics
    r = run_create_topics(tool, "kafka:19092", str(SRC / "proto" / "topics.yaml"))
    assert r.returncode == 0, r.stderr
    created = {}
    for call in log.read_text().splitlines():
        argv = call.split()
        assert argv[argv.index("--bootstrap-server") + 1] == "kafka:19092"
        assert "--create" in argv and "--if-not-exists" in argv
        assert argv[argv.index("--replication-factor") + 1] == "1"
        created[argv[argv.index("--topic") + 1]] = int(argv[argv.index("--partitions") + 1])
    assert created == contract_topics()


@pytest.mark.parametrize("content,args", [
    ("topics:\n  - name: a.b\n    key: x\n", []),                    # no partitions
    ("topics:\n  - name: a.b\n    partitions: 0\n", []),             # zero partitions
    ("topics: []\n", []),                                              # nothing to create
    ("topics:\n  - name: a.b\n    partitions: 2\n", ["0"]),          # replication 0
    ("topics:\n  - name: a.b\n    partitions: 2\n", ["three"]),      # replication not a number
])
def test_create_topics_refuses_bad_input_and_creates_nothing(tmp_path, fake_kafka_topics,
                                                               content, args):
    tool, log = fake_kafka_topics
    f = tmp_path / "topics.yaml"
    f.write_text(content)
    r = run_create_topics(tool, "k:1", str(f), *args)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "create-topics:" in r.stderr
    assert not log.exists(), "no topic may be created from a bad file"


def test_create_topics_missing_file(tmp_path, fake_kafka_topics):
    tool, log = fake_kafka_topics
    r = run_create_topics(tool, "k:1", str(tmp_path / "absent.yaml"))
    assert r.returncode == 2 and "cannot read" in r.stderr and not log.exists()


# --- compose.yaml -------------------------------------------------------------------------

def compose_config(env_file, extra_env=None):
    exe = require_tool("docker-compose", "docker-compose")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    env.update(extra_env or {})
    return subprocess.run([exe, "--env-file", str(env_file), "-f", str(COMPOSE), "config"],
                          capture_output=True, text=True, env=env, cwd=SRC, timeout=120)


@pytest.fixture(scope="module")
def compose():
    r = compose_config(EXAMPLE_ENV)
    assert r.returncode == 0, f"docker-compose config refused compose.yaml:\n{r.stderr}"
    return yaml.safe_load(r.stdout)


def test_compose_has_the_whole_stack(compose):
    svcs = compose["services"]
    for name in ("kafka", "topics", "postgres", "migrate", "ingress", "persister-1",
                 "persister-2", "auditor"):
        assert name in svcs, f"compose.yaml has no {name} service"
    assert svcs["kafka"]["image"] == "apache/kafka:3.9.1"
    assert svcs["topics"]["image"] == "apache/kafka:3.9.1"
    assert svcs["postgres"]["image"] == "postgres:15-bookworm"
    kenv = svcs["kafka"]["environment"]
    assert kenv["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kenv["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{kenv['KAFKA_NODE_ID']}@kafka:9093"
    assert str(kenv["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]) == "false"
    hookline = [s for s in svcs.values() if s.get("image", "").startswith("hookline")]
    assert {s["image"] for s in hookline} == {hookline[0]["image"]}, "one image for all binaries"
    assert all(s["build"]["dockerfile"] == "deploy/docker/Dockerfile" for s in hookline)


def _published(svc):
    out = {}
    for p in svc.get("ports", []):
        m = re.match(r"^(?:(\d+\.\d+\.\d+\.\d+):)?(\d+):(\d+)(?:/tcp)?$", str(p))
        assert m, f"unexpected port syntax {p!r}"
        assert m.group(1) == "127.0.0.1", f"{p}: the local stack listens on 127.0.0.1 only"
        out[int(m.group(2))] = int(m.group(3))
    return out


def test_compose_ports_match_the_local_stack_and_service_configs(compose):
    svcs = compose["services"]
    assert _published(svcs["kafka"]) == {9092: 9092}
    assert _published(svcs["postgres"]) == {55432: 5432}
    for name, svc in (("ingress", "ingress"), ("persister-1", "persister"), ("auditor", "auditor")):
        port = local_port(svc)
        listen = svcs[name]["environment"]["HOOKLINE_HTTP_LISTEN"]
        assert listen_port(listen) == port and listen.startswith("0.0.0.0:")
        # The ingress publishes its metrics listener too (HOOKLINE_METRICS_LISTEN).
        extra = {}
        if "HOOKLINE_METRICS_LISTEN" in svcs[name]["environment"]:
            mport = listen_port(svcs[name]["environment"]["HOOKLINE_METRICS_LISTEN"])
            extra = {mport: mport}
        assert _published(svcs[name]) == {port: port, **extra}, name
        assert f"127.0.0.1:{port}/readyz" in " ".join(svcs[name]["healthcheck"]["test"])
    # The second persister shares the container port, published on the next host port.
    assert _published(svcs["persister-2"]) == {local_port("persister") + 1: local_port("persister")}


def test_compose_starts_in_order_of_health(compose):
    svcs = compose["services"]
    dep = {n: {k: v["condition"] for k, v in s.get("depends_on", {}).items()}
           for n, s in svcs.items()}
    assert dep["topics"] == {"kafka": "service_healthy"}
    assert dep["migrate"] == {"postgres": "service_healthy"}
    assert dep["ingress"]["kafka"] == "service_healthy"
    assert dep["ingress"]["topics"] == "service_completed_successfully"
    for n in ("persister-1", "persister-2", "auditor"):
        assert dep[n]["migrate"] == "service_completed_successfully", n
        assert dep[n]["topics"] == "service_completed_successfully", n
    for n in ("kafka", "postgres", "ingress", "persister-1", "persister-2", "auditor"):
        assert svcs[n].get("healthcheck", {}).get("test"), f"{n} has no health check"
    for n in ("topics", "migrate"):
        assert svcs[n]["restart"] == "no", f"one-shot {n} must not restart"


def test_compose_services_run_hardened_with_mounted_local_configs(compose):
    uid = image_uid()
    for n, svc in (("ingress", "ingress"), ("persister-1", "persister"),
                   ("persister-2", "persister"), ("auditor", "auditor")):
        s = compose["services"][n]
        assert s["user"].split(":")[0] == str(uid) and s["read_only"] is True
        assert "ALL" in s["cap_drop"]
        grace = s["stop_grace_period"]
        m = re.fullmatch(r"(\d+)s", grace)
        assert m, f"{n}: stop_grace_period {grace!r} not in seconds"
        assert int(m.group(1)) * 1000 > drain_ms(svc, local_config(svc)), \
            f"{n}: stop_grace_period {grace} does not leave time to drain"
        cfg = s["command"][s["command"].index("--config") + 1]
        mounts = {v.split(":")[1]: v.split(":")[0] for v in s["volumes"]}
        host = Path(mounts[cfg])
        assert host.parent == SRC / "deploy" / "local", f"{n} must read deploy/local configs"
        assert host.is_file(), f"{n}: {host} does not exist"
    for v in compose["services"]["topics"]["volumes"]:
        assert Path(v.split(":")[0]).is_file(), v


def test_compose_passes_ingress_source_secrets(compose):
    cfg = local_config("ingress")
    assert cfg is not None, "deploy/local/ingress.yaml is missing"
    env = compose["services"]["ingress"]["environment"]
    for src in cfg.get("sources", []):
        for sec in src.get("secrets") or []:
            if sec.get("env"):
                assert sec["env"] in env, f"source {src['name']}: {sec['env']} not passed"


def test_compose_auditor_can_get_its_checkpoint_key(compose):
    """compose points the auditor's key file into the auditor-keys volume, where the auditor
    creates the key on first start; that needs generate_if_missing in the local config."""
    cfg = local_config("auditor")
    assert cfg is not None, "deploy/local/auditor.yaml is missing"
    s = compose["services"]["auditor"]
    key = s["environment"]["HOOKLINE_AUDITOR_CHECKPOINT_KEY_FILE"]
    volumes = {v.split(":")[1]: v.split(":")[0] for v in s["volumes"]}
    assert os.path.dirname(key) in volumes, "the key file must live in a volume"
    assert volumes[os.path.dirname(key)] in compose["volumes"], "a named volume keeps the key"
    assert (cfg.get("checkpoint") or {}).get("generate_if_missing") is True, \
        "deploy/local/auditor.yaml must set checkpoint.generate_if_missing for compose"


def test_compose_takes_secrets_only_from_the_environment(tmp_path):
    empty = tmp_path / "empty.env"
    empty.write_text("")
    r = compose_config(empty)
    assert r.returncode != 0 and "HOOKLINE_PG_PASSWORD" in r.stderr, r.stderr
    # Every secret-looking value in the file is a required interpolation, never a literal.
    raw = yaml.safe_load(COMPOSE.read_text())
    for name, svc in raw["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|TOKEN", key):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]*\}", str(value)), (name, key, value)
    r = compose_config(EXAMPLE_ENV, {"HOOKLINE_PG_PASSWORD": "from-the-environment",
                                     "HOOKLINE_PG_PERSISTER_PASSWORD": "persister-pw",
                                     "HOOKLINE_PG_AUDITOR_PASSWORD": "auditor-pw",
                                     "HOOKLINE_PG_READER_PASSWORD": "reader-pw"})
    assert r.returncode == 0, r.stderr
    out = yaml.safe_load(r.stdout)
    svcs = out["services"]
    assert svcs["postgres"]["environment"]["POSTGRES_PASSWORD"] == "from-the-environment"
    assert svcs["migrate"]["environment"]["PGPASSWORD"] == "from-the-environment"
    # Each service signs in as its own role with its own password (proto/sql/007_roles.sql).
    for svc, conn, pw, role, value in (
            ("persister-1", "HOOKLINE_POSTGRES_CONNINFO", "PGPASSWORD", "hookline_persister", "persister-pw"),
            ("persister-2", "HOOKLINE_POSTGRES_CONNINFO", "PGPASSWORD", "hookline_persister", "persister-pw"),
            ("auditor", "HOOKLINE_POSTGRES_CONNINFO", "PGPASSWORD", "hookline_auditor", "auditor-pw"),
            ("auditor", "HOOKLINE_POSTGRES_READ_CONNINFO", "HOOKLINE_POSTGRES_READ_PASSWORD",
             "hookline_reader", "reader-pw")):
        env = svcs[svc]["environment"]
        assert f"user={role}" in env[conn].split() and env[pw] == value, (svc, conn)
    mig = svcs["migrate"]["environment"]
    assert "user=hookline" in mig["HOOKLINE_PG_CONNINFO"].split()
    assert mig["HOOKLINE_PG_CREATE_ROLES"] == "1"
    for kind, value in (("persister", "persister-pw"), ("auditor", "auditor-pw"),
                        ("reader", "reader-pw")):
        assert mig[f"HOOKLINE_PG_{kind.upper()}_ROLE"] == f"hookline_{kind}"
        assert mig[f"HOOKLINE_PG_{kind.upper()}_PASSWORD"] == value


# --- deploy/README.md ---------------------------------------------------------------------

def test_readme_covers_three_ways_and_names_existing_files():
    readme = (SRC / "deploy" / "README.md").read_text()
    for needle in ("deploy/local/stack up", "docker-compose", "kubectl apply -k",
                   "overlays/dev", "overlays/production", "partitions"):
        assert needle in readme, f"deploy/README.md does not mention {needle}"
    for ref in set(re.findall(r"`((?:deploy|proto)/[A-Za-z0-9_./-]+)`", readme)):
        assert (SRC / ref.rstrip("/")).exists(), f"deploy/README.md names missing {ref}"
