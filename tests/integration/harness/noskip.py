"""A skipped test is a failed test, unless tests/allowed-skips.txt names it.

A skip exits 0, so ctest (and tests/fault/run) would read a test that checked nothing as a pass.
These hooks turn every skip, whether from a skipif mark, a pytest.skip() in a test or fixture,
a module-level skip or an xfail, into a failure that quotes the skip's reason. A skip that
tests/allowed-skips.txt lists by name (the test's exact file::name, and a text the reason
must contain) stays a skip; when HL_ALLOWED_SKIPS_LOG names a file, one line per such
skip is appended to it, and tests/run prints them in its summary.

The conftest.py files of tests/integration, tests/fault and tests/unit import these hooks.
"""
import os
from pathlib import Path

import pytest

ALLOW_FILE = Path(__file__).resolve().parents[2] / "allowed-skips.txt"


def load_allowed(path=ALLOW_FILE):
    """[(test id, reason text)] from lines `file.py::test_name | text in the reason`;
    blank lines and lines starting with # are ignored. A line without ' | ' is an error, so
    an entry cannot allow every reason by accident."""
    allowed = []
    if not path.exists():
        return allowed
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, reason = (x.strip() for x in line.partition(" | "))
        if not sep or not name or not reason:
            raise ValueError(f"{path}:{n}: expected 'file.py::test | reason text', got {line!r}")
        allowed.append((name, reason))
    return allowed


ALLOWED = load_allowed()


def skip_reason(longrepr):
    """The reason pytest recorded for a skip: longrepr is (file, line, 'Skipped: reason')."""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def allowed(test_id, reason, entries=None):
    return any(test_id == name and text in reason
               for name, text in (ALLOWED if entries is None else entries))


def _test_id(nodeid):
    """file.py::name whatever the rootdir: the file part is reduced to its base name."""
    path, sep, rest = nodeid.partition("::")
    return f"{os.path.basename(path)}{sep}{rest}"


def judge_skip(report, nodeid):
    if getattr(report, "wasxfail", None) is not None:
        reason = f"xfail: {report.wasxfail}"
    elif report.skipped:
        reason = skip_reason(report.longrepr)
    else:
        return
    test_id = _test_id(nodeid)
    if allowed(test_id, reason):
        log = os.environ.get("HL_ALLOWED_SKIPS_LOG")
        if log:
            with open(log, "a") as f:
                f.write(f"{test_id}: {reason}\n")
        return
    report.outcome = "failed"
    report.longrepr = (f"{test_id} was skipped ({reason}); a skip checks nothing, so it fails "
                       f"unless {ALLOW_FILE.relative_to(ALLOW_FILE.parents[1])} lists it")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    judge_skip(outcome.get_result(), item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped:
        judge_skip(rep, rep.nodeid)
