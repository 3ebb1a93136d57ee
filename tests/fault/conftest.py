"""Fixtures of the fault-injection suite.

The suite never touches the shared local stack: before anything of the integration harness is
imported, the environment is pointed at free ports (harness.paths reads them at import), and
the session fixture `private_stack` starts Kafka and Postgres on them with deploy/local/stack
and a temporary state folder, once, and resets it at the end. Each scenario gets its
own topics, schema, services and log folder (<build>/fault-logs/<tag>/<scenario>/).

Settings (tests/fault/run sets them from its options):
  HL_BUILD_DIR          the build with the three services and tools/hookline [<repo>/build]
  HL_FAULT_EVENTS       events (originals) per scenario [100000; 1000000 with HL_FAULT_LONG]
  HL_FAULT_LONG=1       longer variants: more events, more kills, longer outages
  HL_FAULT_SETTLE_S     how long verify waits for rows and lineage to arrive [90]
  HL_FAULT_SEED         seed for the kill timings and replay seeds [time-based, printed]
"""
import json
import os
import random
import secrets
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SOURCE_DIR = HERE.parents[1]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Ports and state of the private stack, chosen before harness.paths reads the environment.
# Whatever HL_KAFKA_PORT / HL_PG_PORT the caller had set (the shared stack's, say) is replaced.
_PORTS = {"kafka": _free_port(), "controller": _free_port(), "pg": _free_port()}
os.environ.update(HL_SOURCE_DIR=str(SOURCE_DIR), HL_KAFKA_PORT=str(_PORTS["kafka"]),
                  HL_KAFKA_BROKERS=f"127.0.0.1:{_PORTS['kafka']}",
                  HL_PG_PORT=str(_PORTS["pg"]), HL_PG_HOST="127.0.0.1")
os.environ.pop("HL_STATE_DIR", None)
sys.path.insert(0, str(SOURCE_DIR / "tests" / "integration"))
sys.path.insert(0, str(HERE))

from harness import paths  # noqa: E402
from harness.procs import ServiceFactory  # noqa: E402
# A skip fails the test unless tests/allowed-skips.txt lists it (the hooks are found by name).
from harness.noskip import (pytest_make_collect_report,  # noqa: E402,F401
                            pytest_runtest_makereport)

from fault_stack import PrivateStack  # noqa: E402
from scenario import Scenario  # noqa: E402

assert paths.PG_PORT == _PORTS["pg"] and paths.KAFKA_BROKERS.endswith(f":{_PORTS['kafka']}"), \
    "harness.paths was imported before the fault suite could point it at the private stack"


def _on_sigterm(signum, frame):
    # Python's default would die on the spot and leave the private broker and Postgres running;
    # as an interrupt, pytest stops the scenario's services and resets the stack first.
    raise KeyboardInterrupt(f"signal {signum}")


signal.signal(signal.SIGTERM, _on_sigterm)

LONG = os.environ.get("HL_FAULT_LONG", "") not in ("", "0")
EVENTS = int(os.environ.get("HL_FAULT_EVENTS") or (1_000_000 if LONG else 100_000))
SEED = int(os.environ.get("HL_FAULT_SEED") or time.time_ns() % 1_000_000)
TAG = secrets.token_hex(3)
LOG_ROOT = paths.BUILD_DIR / "fault-logs" / TAG

OPTS = {
    # A broker restart takes 10-25 s here; each attempt meanwhile costs up to the ingress's
    # ack timeout (5 s) plus Retry-After (1 s): 100 retries outlast any outage the suite makes.
    "max_retries": 100,
    "max_retry_wait_ms": 1000,
    "timeout_ms": 15000,
    "settle_s": int(os.environ.get("HL_FAULT_SETTLE_S") or 90),
    "replay_timeout_s": 3600 if LONG else 900,
}

_summaries = []


class Fault:
    """What a scenario test gets: the stack, the settings, and scenario()."""

    def __init__(self, stack, request):
        self.stack = stack
        self.events = EVENTS
        self.long = LONG
        self.rng = random.Random(f"{SEED}-{request.node.name}")
        self.opts = OPTS
        self.sc = None

    def scenario(self, name):
        work = LOG_ROOT / name
        factory = ServiceFactory(work)
        hookline = str(paths.find_binary("hookline"))
        self.sc = Scenario(name, self.stack, factory, str(work), TAG, self.opts, hookline,
                           rng=self.rng)
        return self.sc


@pytest.fixture(scope="session")
def private_stack():
    for b in ("ingress", "persister", "auditor", "hookline"):
        paths.find_binary(b)  # fails with the paths it looked at
    stack = PrivateStack(SOURCE_DIR, paths.BUILD_DIR, _PORTS["kafka"], _PORTS["controller"],
                         _PORTS["pg"])
    print(f"\nfault: build {paths.BUILD_DIR}; {EVENTS:,} events per scenario"
          f"{' (long variants)' if LONG else ''}; seed {SEED}; logs {LOG_ROOT}", flush=True)
    try:
        took = stack.up()
        _summaries.append({"scenario": "(private stack up)", "duration_s": round(took, 1)})
        yield stack
    finally:
        t = time.monotonic()
        stack.down()
        print(f"fault: private stack reset in {time.monotonic() - t:.1f} s", flush=True)


@pytest.fixture
def fault(private_stack, request):
    f = Fault(private_stack, request)
    t0 = time.monotonic()
    try:
        yield f
    finally:
        sc = f.sc
        if sc is not None:
            for r in sc.replays:
                r.stop()
            leftovers = sc.stop_all()
            sc.summary["duration_s"] = round(time.monotonic() - t0, 1)
            rep = getattr(request.node, "rep_call", None)
            if rep is None:
                sc.summary["outcome"] = "STOPPED"  # interrupted, or failed before its verdict
            elif rep.passed and not sc.summary.get("problems") and not leftovers:
                sc.summary["outcome"] = "PASS"
            else:
                sc.summary["outcome"] = "FAIL"
            if leftovers:
                sc.summary.setdefault("problems", []).extend(leftovers)
            _summaries.append(sc.summary)
            print(f"[{sc.name}] scenario took {sc.summary['duration_s']:.1f} s", flush=True)
            assert not leftovers, "; ".join(leftovers)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.rep_call = rep


def pytest_terminal_summary(terminalreporter):
    if not _summaries:
        return
    tr = terminalreporter
    tr.write_sep("=", "fault-injection summary")
    tr.write_line(f"{'scenario':<20} {'result':<6} {'time s':>7} {'send s':>7} {'drain s':>7}"
                  f" {'events':>9} {'sent':>9} {'accepted':>9} {'retries':>7} {'lost':>5}"
                  f" {'dup':>4} {'order':>5} {'lineage':>15} {'gaps':>4}")
    for s in _summaries:
        if "events" not in s:
            tr.write_line(f"{s['scenario']:<20} {s.get('outcome', ''):<6}"
                          f" {s.get('duration_s', 0):>7.1f}")
            for p in s.get("problems", []):
                tr.write_line(f"    PROBLEM: {p}")
            continue
        lin = f"{s.get('lineage_complete', 0)}/{s.get('lineage_checked', 0)}"
        tr.write_line(f"{s['scenario']:<20} {s.get('outcome', '?'):<6} {s['duration_s']:>7.1f}"
                      f" {max(s.get('send_s') or [0]):>7.1f} {s.get('catch_up_s', 0):>7.1f}"
                      f" {s['events']:>9,} {s['sent']:>9,} {s['accepted']:>9,}"
                      f" {s['retries']:>7,} {s.get('missing_rows', 0):>5}"
                      f" {s.get('duplicate_rows', 0):>4} {s.get('ordering_violations', 0):>5}"
                      f" {lin:>15} {str(s.get('auditor_gaps')):>4}")
        for a in s.get("actions", []):
            tr.write_line(f"    {a}")
        for p in s.get("problems", []):
            tr.write_line(f"    PROBLEM: {p}")
    LOG_ROOT.mkdir(parents=True, exist_ok=True)
    out = LOG_ROOT / "summary.json"
    out.write_text(json.dumps({"events": EVENTS, "long": LONG, "seed": SEED,
                               "scenarios": _summaries}, indent=1))
    tr.write_line(f"summary and logs: {LOG_ROOT}")
