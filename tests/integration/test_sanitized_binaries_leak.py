"""The whole chain on the real sanitized binaries: each service stopped with SIGTERM, and the
CLI, made to leak (a preloaded library drops a block), fail their test. CMake registers this
file only in a build configured with -DHL_SANITIZE=ON (tests/run's sanitized pass).

Needs a C compiler (the one the build uses) for the leaking library."""
import os
import subprocess
from pathlib import Path

import pytest

from harness import paths, sanitizers


LEAK_LIB_C = r"""
#include <stdlib.h>
#include <string.h>
static void *volatile kept;
__attribute__((constructor)) static void leak_at_load(void)
{
    char *p = malloc(99);
    memset(p, 1, 99);
    kept = p;
    kept = NULL;
}
"""


def _leak_preload(binary, tmp_path):
    """LD_PRELOAD that makes `binary` leak 99 bytes at load time: the sanitizer runtime first
    (it must come first), then a library whose constructor drops a malloc'd block."""
    lib = tmp_path / "libleak.so"
    (tmp_path / "leak.c").write_text(LEAK_LIB_C)
    subprocess.run([sanitizers.compiler(), "-shared", "-fPIC", "-g", str(tmp_path / "leak.c"), "-o",
                    str(lib)], check=True, capture_output=True, timeout=120)
    ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True)
    asan = [line.split()[2] for line in ldd.stdout.splitlines() if "libasan" in line]
    assert asan, f"{binary} does not load libasan:\n{ldd.stdout}"
    return f"{asan[0]} {lib}"


@pytest.fixture(autouse=True)
def sanitized_build():
    """Registered by CMake in a -DHL_SANITIZE=ON build only; run anywhere else it fails rather
    than skip, since a skip would check nothing."""
    assert sanitizers.ENABLED, "needs HL_SANITIZED_SERVICES=1 and a sanitized build"


def _service_config(name, stack, topics, pg_schema, port, tmp_path):
    from auditor_support import auditor_config
    from ingress_support import ingress_config, standard_source
    from persister_support import persister_config
    if name == "ingress":
        return ingress_config(port, topics, [standard_source()])
    if name == "persister":
        return persister_config(stack, topics, pg_schema, port, f"g-{topics['events']}")
    return auditor_config(stack, topics, pg_schema, port, tmp_path / "cp.pem")


@pytest.mark.parametrize("name", ["ingress", "persister", "auditor"])
def test_a_leaking_service_fails_its_test(name, stack, service, free_port, topics, pg_schema,
                                          tmp_path):
    """Each real service, made to leak: it stops on SIGTERM by returning from main, so
    LeakSanitizer runs and reports, and the fixture turns the report into a failure."""
    from ingress_support import DEMO_SECRET
    preload = _leak_preload(paths.find_binary(name), tmp_path)
    svc = service(name, _service_config(name, stack, topics, pg_schema, free_port(), tmp_path),
                  env={"HL_TEST_DEMO_SECRET": DEMO_SECRET, "LD_PRELOAD": preload})
    assert svc.get("/healthz")[0] == 200
    assert svc.stop() != 0  # halt_on_error: the leak check's verdict is the exit code
    assert not svc.killed
    assert len(svc.sanitizer_reports) == 1, svc.log_tail()
    assert "99 byte(s) leaked" in svc.sanitizer_reports[0]
    assert "leak_at_load" in svc.sanitizer_reports[0]
    problems = service.stop_all()
    assert len(problems) == 1 and "sanitizer report" in problems[0], problems
    service.problems.clear()


def test_a_leaking_cli_run_leaves_a_report_file(tmp_path):
    """The CLI run by a test itself: its report lands in the test's sanitizer folder, which
    the autouse fixture scans at teardown."""
    hookline = paths.find_binary("hookline")
    preload = _leak_preload(hookline, tmp_path)
    r = subprocess.run([str(hookline), "--help"], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "LD_PRELOAD": preload})
    assert r.returncode != 0, r.stdout
    folder = Path(os.environ["ASAN_OPTIONS"].split("log_path=", 1)[1].split(":")[0]).parent
    found = sanitizers.scan_files(folder)
    assert len(found) == 1, found
    (path, reps), = found.items()
    assert path.name.startswith("report.") and "99 byte(s) leaked" in reps[0]
    # Seen and asserted: remove it, or the autouse fixture would fail this test.
    path.unlink()
