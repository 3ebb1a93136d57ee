"""Scenario 0: no fault. The three services on the private stack, one replay, and the same
verdict as every scenario (verify: nothing lost, nothing twice, in order, lineage complete;
0 auditor gaps; hash chains intact). It is the smoke test of the broker the stack runs:
tests/run runs it alone on a Kafka 4 broker (HOOKLINE_KAFKA_VERSION=4, see
deploy/local/versions.env), and the scenario fails when the broker that answered is not the
Kafka version the stack was asked for. The fault suite's own run leaves it out (tests/run
passes -k 'not pipeline'): every other scenario covers the path without a fault already.
"""
import os
import re

# What deploy/local/stack starts for each HOOKLINE_KAFKA_VERSION (unset: KAFKA_VERSION).
_VERSION_KEYS = {"": "KAFKA_VERSION", "3": "KAFKA_VERSION", "4": "KAFKA4_VERSION"}


def expected_kafka_version(source_dir):
    asked = os.environ.get("HOOKLINE_KAFKA_VERSION", "")
    if asked not in _VERSION_KEYS:
        return asked
    text = open(os.path.join(source_dir, "deploy", "local", "versions.env")).read()
    return re.search(rf"^{_VERSION_KEYS[asked]}=(\S+)$", text, re.M).group(1)


def running_kafka_version(state_dir):
    """The version the broker logged at its start ("Kafka version: X"), or None."""
    path = os.path.join(state_dir, "logs", "kafka-server.log")
    try:
        with open(path) as f:
            found = re.findall(r"INFO Kafka version: (\S+) ", f.read())
    except OSError:
        return None
    return found[-1] if found else None


def test_pipeline_without_a_fault(fault):
    sc = fault.scenario("pipeline")
    want = expected_kafka_version(fault.stack.source_dir)
    got = running_kafka_version(fault.stack.state)
    sc.note(f"broker: Kafka {got} (asked for {want})")
    sc.start("auditor")
    sc.start("persister")
    sc.start("ingress")
    sc.replay("main", sc.url("ingress"), fault.events)
    problems = sc.judge()
    if got != want:
        problems.append(f"the private broker runs Kafka {got}, not the {want} asked for")
    sc.finish(problems)
