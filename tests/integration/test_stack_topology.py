"""The local stack's topology switch and the topic replication it passes on, with what can be
checked without starting a cluster: bad values are refused before anything starts, a state
folder keeps its topology, status lists every node of the production topology, and
create-topics.py refuses a replication it cannot honour before it connects anywhere. The
topology itself (three nodes, the standby, replication 3 with min.insync.replicas 2) runs
under the fault suite's scenarios p1-p5 (tests/fault)."""
import os
import subprocess

from harness import free_port, paths

CREATE_TOPICS = paths.SOURCE_DIR / "deploy" / "local" / "create-topics.py"


def stack(state, *args):
    """deploy/local/stack on a state folder of its own, every port a free one (nothing of
    the shared stack answers there). Should a refusal under test not happen, nothing starts
    either: no services are built in HL_BUILD_DIR, and `java` is a stand-in that fails, so
    the first Kafka node's storage format stops the script."""
    ports = {k: str(free_port()) for k in (
        "HL_KAFKA_PORT", "HL_KAFKA_CONTROLLER_PORT", "HL_KAFKA_PORT_2", "HL_KAFKA_PORT_3",
        "HL_KAFKA_CONTROLLER_PORT_2", "HL_KAFKA_CONTROLLER_PORT_3", "HL_PG_PORT",
        "HL_PG_STANDBY_PORT")}
    bin_dir = state.parent / f"{state.name}-bin"
    bin_dir.mkdir(exist_ok=True)
    java = bin_dir / "java"
    java.write_text("#!/bin/sh\necho 'java stand-in: not starting anything' >&2\nexit 1\n")
    java.chmod(0o755)
    env = dict(os.environ, HL_STATE_DIR=str(state), HL_BUILD_DIR=str(bin_dir / "no-build"),
               PATH=f"{bin_dir}:{os.environ['PATH']}", **ports)
    return subprocess.run([str(paths.STACK_SCRIPT), *args], capture_output=True, text=True,
                          timeout=60, env=env, stdin=subprocess.DEVNULL), ports


def test_unknown_topology_is_refused_before_anything_starts(tmp_path):
    state = tmp_path / "state"
    r, _ = stack(state, "up", "--infra-only", "--topology", "triple")
    assert r.returncode != 0
    assert "--topology triple: expected single or production" in r.stderr
    assert not state.exists() or sorted(p.name for p in state.iterdir()) == []


def test_state_keeps_its_topology(tmp_path):
    # A state folder made by a single-node "up" (its Kafka data, its topology file).
    state = tmp_path / "state"
    (state / "kafka" / "data").mkdir(parents=True)
    (state / "topology").write_text("single\n")
    r, _ = stack(state, "up", "--infra-only", "--topology", "production")
    assert r.returncode != 0
    assert "was made with --topology single: run 'stack reset' first" in r.stderr
    assert (state / "topology").read_text() == "single\n"
    assert not (state / "kafka-1").exists() and not (state / "run").exists()


def test_status_lists_every_node_of_the_production_topology(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "topology").write_text("production\n")
    r, ports = stack(state, "status")
    assert r.returncode == 1, r.stdout + r.stderr  # nothing runs
    lines = r.stdout.splitlines()
    assert "stack: topology production" in lines
    for name, port in (("kafka-1", "HL_KAFKA_PORT"), ("kafka-2", "HL_KAFKA_PORT_2"),
                       ("kafka-3", "HL_KAFKA_PORT_3"), ("postgres", "HL_PG_PORT"),
                       ("standby", "HL_PG_STANDBY_PORT")):
        line = [ln for ln in lines if ln.split()[1:2] == [name]]
        assert len(line) == 1, (name, r.stdout)
        assert f"127.0.0.1:{ports[port]}" in line[0] and line[0].endswith("stopped")


def test_an_unknown_topology_in_the_state_is_an_error(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "topology").write_text("sideways\n")
    r, _ = stack(state, "status")
    assert r.returncode != 0 and "unknown topology 'sideways'" in r.stderr


def test_create_topics_refuses_more_in_sync_than_copies(tmp_path):
    contract = str(paths.SOURCE_DIR / "proto" / "topics.yaml")
    r = subprocess.run(["/usr/bin/python3", str(CREATE_TOPICS), "--replication-factor", "2",
                        "--min-insync-replicas", "3", f"127.0.0.1:{free_port()}", contract],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert "min.insync.replicas 3 must be between 1 and the replication factor 2" in r.stderr


def test_create_topics_refuses_a_contract_without_a_valid_replication(tmp_path):
    topics = "topics:\n  - name: a.topic\n    partitions: 2\n"
    for bad in ("", "replication:\n  factor: 3\n",
                "replication:\n  factor: 1\n  min_insync_replicas: 2\n",
                "replication:\n  factor: 3\n  min_insync_replicas: 0\n"):
        f = tmp_path / "topics.yaml"
        f.write_text(bad + topics)
        r = subprocess.run(["/usr/bin/python3", str(CREATE_TOPICS), f"127.0.0.1:{free_port()}",
                            str(f)], capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        assert r.returncode != 0, bad
        assert "replication needs factor and min_insync_replicas" in r.stderr, (bad, r.stderr)


def test_the_contract_asks_three_copies_two_in_sync():
    import importlib.util
    spec = importlib.util.spec_from_file_location("create_topics", CREATE_TOPICS)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.read_replication(paths.SOURCE_DIR / "proto" / "topics.yaml") == \
        {"factor": 3, "min_insync_replicas": 2}
    topics = mod.read_topics(paths.SOURCE_DIR / "proto" / "topics.yaml")
    assert [t["name"] for t in topics] == \
        ["hookline.events", "hookline.lineage", "hookline.dlq", "hookline.checkpoints"]
    # The checkpoints outside the database are kept for good.
    assert topics[-1]["config"] == {"retention.ms": "-1"}
