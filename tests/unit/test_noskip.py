"""The suite's rule on skips (tests/integration/harness/noskip.py) held to what pytest does: a
throwaway test folder with every kind of skip is run in a child pytest, with the hooks wired in
as tests/unit/conftest.py wires them, and every skip must come out a failure that quotes its
reason; the integration and fault suites' conftest files must wire the same hooks."""
import ast
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
sys.path.insert(0, str(TESTS / "integration" / "harness"))

import noskip  # noqa: E402

SKIPPING = '''
import pytest

@pytest.fixture
def gone():
    pytest.skip("fixture-reason")

def test_passes():
    assert True

def test_called():
    pytest.skip("called-reason")

@pytest.mark.skipif(True, reason="mark-reason")
def test_marked():
    pass

@pytest.mark.xfail(reason="xfail-reason")
def test_xfail():
    assert False

def test_fixture(gone):
    pass
'''

MODULE_LEVEL = '''
import pytest
pytest.skip("module-reason", allow_module_level=True)

def test_never():
    pass
'''


def run_child(tmp_path, text, *extra):
    (tmp_path / "test_skipping.py").write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra, str(tmp_path)],
        capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(HERE), "PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"},
        cwd=tmp_path)


def test_every_kind_of_skip_fails_and_quotes_its_reason(tmp_path):
    # -p conftest: tests/unit/conftest.py (on PYTHONPATH) loaded as a plugin, as for this suite.
    r = run_child(tmp_path, SKIPPING, "-p", "conftest")
    out = r.stdout + r.stderr
    last = out.strip().splitlines()[-1]
    assert r.returncode == 1, out
    # A skip in the setup (a mark, a fixture) fails as an error, one in the call as a failure.
    assert "2 failed, 1 passed, 2 errors" in last and "skip" not in last and "xfail" not in last, out
    for test, reason in (("test_called", "called-reason"), ("test_marked", "mark-reason"),
                         ("test_xfail", "xfail: xfail-reason"),
                         ("test_fixture", "fixture-reason")):
        assert f"test_skipping.py::{test} was skipped ({reason})" in out, (test, out)


def test_a_module_level_skip_fails_the_collection(tmp_path):
    r = run_child(tmp_path, MODULE_LEVEL, "-p", "conftest")
    out = r.stdout + r.stderr
    assert r.returncode == 2, out  # a collection error: the run stops, failed
    assert "test_skipping.py was skipped (module-reason)" in out, out


def test_without_the_hooks_the_same_tests_pass(tmp_path):
    """The control: pytest alone reads those skips as a success (a module-level skip leaves
    nothing run: exit 5, with no error)."""
    r = run_child(tmp_path, SKIPPING)
    assert r.returncode == 0 and "1 passed, 3 skipped, 1 xfailed" in r.stdout, r.stdout
    r = run_child(tmp_path, MODULE_LEVEL)
    assert r.returncode == 5 and "1 skipped" in r.stdout and "error" not in r.stdout, r.stdout


def test_allowed_list_entries(tmp_path):
    f = tmp_path / "allowed.txt"
    f.write_text("# comment\n\ntest_x.py::test_y | no podman\n")
    entries = noskip.load_allowed(f)
    assert entries == [("test_x.py::test_y", "no podman")]
    assert noskip.allowed("test_x.py::test_y", "skipped: no podman here", entries)
    assert not noskip.allowed("test_x.py::test_y", "another reason", entries)
    assert not noskip.allowed("test_x.py::test_z", "no podman", entries)
    f.write_text("test_x.py::test_y\n")  # no reason: would allow any reason, so refused
    try:
        noskip.load_allowed(f)
    except ValueError as e:
        assert "expected 'file.py::test | reason text'" in str(e)
    else:
        raise AssertionError("an entry without a reason was accepted")
    # The project's own list allows nothing.
    assert noskip.load_allowed() == []


def imported_names(path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("noskip"):
            names |= {a.name for a in node.names}
    return names


def test_each_suite_wires_the_hooks():
    hooks = {"pytest_make_collect_report", "pytest_runtest_makereport"}
    assert hooks <= imported_names(TESTS / "unit" / "conftest.py")
    assert hooks <= imported_names(TESTS / "integration" / "conftest.py")
    # The fault suite defines its own report hook, which must hand each report to judge_skip.
    fault = TESTS / "fault" / "conftest.py"
    assert {"pytest_make_collect_report", "judge_skip"} <= imported_names(fault)
    tree = ast.parse(fault.read_text())
    (hook,) = [n for n in tree.body if isinstance(n, ast.FunctionDef)
               and n.name == "pytest_runtest_makereport"]
    calls = {c.func.id for c in ast.walk(hook)
             if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
    assert "judge_skip" in calls
