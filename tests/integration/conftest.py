"""Fixtures shared by every integration test.

Each test run isolates itself on the shared local stack: its own topics (t<run_id>-<n>-<name>)
and its own Postgres schema (t_<run_id>_<n>), both removed at teardown, so several test files
can run at once (ctest -j2) and beside another run or the demo.

Fixtures: stack, run_id, topics / module_topics, pg_schema / module_pg_schema, service,
free_port, kafka_produce, kafka_consume. The same helpers are importable from `harness`.

Sanitized builds (HL_SANITIZED_SERVICES=1, see harness/sanitizers.py and README.md): every
binary runs with leak checking on; a sanitizer report in a service's log fails the test at
teardown, and so does one from any other hookline process the test ran (the CLI, a config
check), whose reports go to files under the test's log folder.
"""
import itertools
import os
import re
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import kafka_consume as _kafka_consume  # noqa: E402
from harness import kafka_produce as _kafka_produce  # noqa: E402
from harness import free_port as _free_port  # noqa: E402
from harness import kafkaio, paths, pgio, sanitizers  # noqa: E402
from harness.procs import ServiceFactory  # noqa: E402
# A skip fails the test unless tests/allowed-skips.txt lists it (the hooks are found by name).
from harness.noskip import (pytest_make_collect_report,  # noqa: E402,F401
                            pytest_runtest_makereport)

# Partition counts of the per-run topics, as in proto/topics.yaml.
TOPIC_PARTITIONS = {"events": 6, "lineage": 3, "dlq": 1, "checkpoints": 1}


@dataclass
class Stack:
    brokers: str
    pg_host: str
    pg_port: int
    pg_dbname: str
    pg_user: str
    pg_dsn: str          # libpq conninfo, e.g. for postgres.conninfo in a service config
    source_dir: Path
    build_dir: Path
    state_dir: Path
    sql_dir: Path
    stack_script: Path
    migrate_script: Path


def _kafka_answers(brokers):
    try:
        kafkaio.admin(brokers).list_topics(timeout=3)
        return True
    except Exception:
        return False


def _pg_answers():
    try:
        pgio.connect().close()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def stack():
    """Kafka on 127.0.0.1:9092 and Postgres on 127.0.0.1:55432, started with
    deploy/local/stack up when either does not answer (the script serialises concurrent
    callers with a lock)."""
    brokers = paths.KAFKA_BROKERS
    if not (_kafka_answers(brokers) and _pg_answers()):
        r = subprocess.run([str(paths.STACK_SCRIPT), "up", "--infra-only"], capture_output=True,
                           text=True, timeout=600)
        if r.returncode != 0:
            pytest.fail(f"deploy/local/stack up failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        if not (_kafka_answers(brokers) and _pg_answers()):
            pytest.fail("stack up returned but Kafka or Postgres does not answer")
    return Stack(brokers=brokers, pg_host=paths.PG_HOST, pg_port=paths.PG_PORT,
                 pg_dbname=paths.PG_DB, pg_user=paths.PG_USER, pg_dsn=paths.PG_CONNINFO,
                 source_dir=paths.SOURCE_DIR, build_dir=paths.BUILD_DIR,
                 state_dir=paths.STATE_DIR, sql_dir=paths.SQL_DIR,
                 stack_script=paths.STACK_SCRIPT, migrate_script=paths.MIGRATE_SCRIPT)


@pytest.fixture(scope="session")
def run_id():
    """Short, unique per pytest process: lower-case, so valid in topic and schema names."""
    return f"{os.getpid() % 100000}{secrets.token_hex(3)}"


# The binaries a sanitized run must find instrumented.
SANITIZED_BINARIES = ("ingress", "persister", "auditor", "hookline")


@pytest.fixture(scope="session", autouse=True)
def _sanitized_build():
    """With HL_SANITIZED_SERVICES=1, refuse to run against binaries without ASan: such a run
    would pass without having checked anything."""
    if not sanitizers.ENABLED:
        return
    plain = []
    for name in SANITIZED_BINARIES:
        try:
            binary = paths.find_binary(name)
        except FileNotFoundError as e:
            pytest.fail(f"HL_SANITIZED_SERVICES=1: {e}")
        if not sanitizers.instrumented(binary):
            plain.append(str(binary))
    if plain:
        pytest.fail("HL_SANITIZED_SERVICES=1 but these binaries are not built with "
                    f"-DHL_SANITIZE=ON: {', '.join(plain)} (HL_BUILD_DIR={paths.BUILD_DIR})")


@pytest.fixture(autouse=True)
def _sanitizer_logs(run_id, request):
    """With HL_SANITIZED_SERVICES=1, hookline processes a test starts by itself (not through
    `service`) write their sanitizer reports to <test log folder>/sanitizer/report.<pid>;
    any such file fails the test at teardown."""
    if not sanitizers.ENABLED:
        yield
        return
    log_dir = (paths.BUILD_DIR / "integration-logs" / run_id / _safe(request.node.name)
               / "sanitizer")
    log_dir.mkdir(parents=True, exist_ok=True)
    saved = {k: os.environ.get(k) for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS")}
    os.environ.update(sanitizers.child_env(log_dir / "report"))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    found = sanitizers.scan_files(log_dir)
    if found:
        path, reps = next(iter(found.items()))
        pytest.fail(f"sanitizer report(s) from {len(found)} process(es) under {log_dir}; "
                    f"the first, {path.name}:\n{reps[0]}", pytrace=False)


_counter = itertools.count(1)
_factories = []  # live service factories, stopped before their topics or schema go away


def _stop_services():
    for f in _factories:
        f.stop_all()


def _topics_cm(stack, run_id, partitions):
    n = next(_counter)
    names = {k: f"t{run_id}-{n}-{k}" for k in partitions}
    # The checkpoint topic as proto/topics.yaml makes it: records never removed.
    configs = ({names["checkpoints"]: kafkaio.contract_config("checkpoints")}
               if "checkpoints" in names else {})
    kafkaio.create_topics(stack.brokers, {names[k]: p for k, p in partitions.items()},
                          configs=configs)
    try:
        yield names
    finally:
        _stop_services()
        failed = kafkaio.delete_topics(stack.brokers, list(names.values()))
        assert not failed, f"could not delete test topics: {failed}"


@pytest.fixture
def topics(stack, run_id):
    """{'events', 'lineage', 'dlq', 'checkpoints': name}: fresh topics (6/3/1/1 partitions) for
    this test, deleted afterwards."""
    yield from _topics_cm(stack, run_id, TOPIC_PARTITIONS)


@pytest.fixture(scope="module")
def module_topics(stack, run_id):
    """As `topics`, shared by the tests of one module."""
    yield from _topics_cm(stack, run_id, TOPIC_PARTITIONS)


@pytest.fixture
def make_topics(stack, run_id):
    """make_topics({'name': partitions, ...}) -> {'name': topic}; all deleted afterwards."""
    made = []

    def make(spec):
        n = next(_counter)
        names = {k: f"t{run_id}-{n}-{k}" for k in spec}
        kafkaio.create_topics(stack.brokers, {names[k]: p for k, p in spec.items()})
        made.extend(names.values())
        return names

    yield make
    _stop_services()
    failed = kafkaio.delete_topics(stack.brokers, made)
    assert not failed, f"could not delete test topics: {failed}"


def _schema_cm(stack, run_id):
    name = f"t_{run_id}_{next(_counter)}"
    conn = pgio.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE SCHEMA "{name}"')
    finally:
        conn.close()
    schema = pgio.PgSchema(name)
    try:
        r = pgio.migrate(name, check=False)
        if r.returncode != 0:
            pytest.fail(f"migrate --schema {name} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        yield schema
    finally:
        _stop_services()
        schema.close_all()
        pgio.drop_schema(name)


@pytest.fixture
def pg_schema(stack, run_id):
    """A schema t_<run_id>_<n> with every proto/sql migration applied. Has .name,
    .connect() (psycopg2, search_path = the schema, autocommit), .query(sql, params),
    .conninfo; unpacks as (name, connect). Dropped CASCADE afterwards."""
    yield from _schema_cm(stack, run_id)


@pytest.fixture(scope="module")
def module_pg_schema(stack, run_id):
    """As `pg_schema`, shared by the tests of one module."""
    yield from _schema_cm(stack, run_id)


def _safe(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80]


@pytest.fixture
def service(stack, run_id, request):
    """service(binary_name, config_dict, env=None, args=None, wait_healthy=True,
    health_timeout=30) -> handle with .proc .pid .port .url .log_path .config_path
    .log_text() .get(path) .stop(sig=SIGTERM, timeout=20) (returns the exit code).

    binary_name: "ingress" / "hookline-ingress" (services/<svc>/hookline-<svc>), "hookline"
    (tools/hookline/hookline) or a path relative to the build dir. The config dict is written
    as YAML and passed with --config; /healthz on http.listen's port must answer 200 before
    this returns (or the process exits: the test fails with the log tail). Logs stay under
    <build>/integration-logs/<run_id>/<test>/. Every process still running at teardown is
    stopped, and teardown fails if one ignored SIGTERM or left a process behind."""
    log_dir = paths.BUILD_DIR / "integration-logs" / run_id / _safe(request.node.name)
    factory = ServiceFactory(log_dir)
    _factories.append(factory)
    try:
        yield factory
    finally:
        problems = factory.stop_all()
        _factories.remove(factory)
        assert not problems, "; ".join(problems)


@pytest.fixture
def free_port():
    """free_port() -> an unused TCP port on 127.0.0.1."""
    return _free_port


@pytest.fixture
def kafka_produce(stack):
    """kafka_produce(topic, key, value, headers=None, partition=None) -> (partition, offset),
    acks=all, waits for the acknowledgement."""
    return _kafka_produce


@pytest.fixture
def kafka_consume(stack):
    """kafka_consume(topic, n, timeout=30, partitions=None) -> list of Message(key, value,
    headers (dict of bytes), partition, offset, topic, timestamp, header_list), read from the
    beginning without joining a group; returns what arrived in time."""
    return _kafka_consume
