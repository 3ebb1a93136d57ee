"""bench/lib/procs.py's CPU accounting, which the benchmark's CPU-per-request table rests on:
a busy process is charged what it burned and an idle one nothing; with tree=True a parent is
charged its children's CPU, live or already reaped (a Postgres postmaster and its backends);
a process gone or never there reads as zero, not as an error."""
import os
import subprocess
import sys
import time
from pathlib import Path

SOURCE_DIR = Path(os.environ.get("HL_SOURCE_DIR") or Path(__file__).resolve().parents[2])
sys.path.insert(0, str(SOURCE_DIR / "bench" / "lib"))

from procs import CpuMeter, cpu_seconds  # noqa: E402

# Burns s seconds of CPU once the file `go` exists, then creates `done`; wall time does not
# matter, so a loaded machine only makes it slower.
BURN = ("import os, time\n"
        "while not os.path.exists({go!r}): time.sleep(0.01)\n"
        "t = time.process_time()\n"
        "while time.process_time() - t < {s}: pass\n"
        "open({done!r}, 'w').close()\n")


def burn(tmp_path, name, s):
    return BURN.format(go=str(tmp_path / "go"), done=str(tmp_path / name), s=s)


def python(code):
    return subprocess.Popen([sys.executable, "-c", code])


def wait_for(path, timeout=60):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_busy_and_idle_processes_are_charged_what_they_used(tmp_path):
    busy = python(burn(tmp_path, "done", 0.6) + "time.sleep(60)")
    idle = python("import time; time.sleep(60)")
    try:
        time.sleep(0.3)  # both started (an interpreter's start-up is not in the window)
        with CpuMeter({"busy": (busy.pid, False), "idle": (idle.pid, False)}) as m:
            (tmp_path / "go").touch()
            wait_for(tmp_path / "done")
        assert 0.5 <= m.seconds["busy"] <= 0.9, m.seconds
        assert m.seconds["idle"] < 0.1, m.seconds
        # The machine was at least as busy as the busy process.
        assert m.seconds["machine"] >= m.seconds["busy"] - 0.05, m.seconds
        us = m.per_request_us(1000)
        assert abs(us["busy"] - m.seconds["busy"] * 1000) < 1, us
        assert m.per_request_us(0) is None
    finally:
        for p in (busy, idle):
            p.kill()
            p.wait()


def test_tree_counts_live_and_reaped_children(tmp_path):
    # A parent that burns nothing itself: one child burns and is reaped inside the window,
    # another burns and stays alive until the window has closed.
    reaped, live = burn(tmp_path, "reaped", 0.4), burn(tmp_path, "live", 0.4) + "time.sleep(60)"
    parent = python(
        "import subprocess, sys, time\n"
        f"k = subprocess.Popen([sys.executable, '-c', {live!r}])\n"
        f"subprocess.run([sys.executable, '-c', {reaped!r}])\n"
        f"open({str(tmp_path / 'parent')!r}, 'w').close()\n"
        "time.sleep(60)\n")
    try:
        time.sleep(0.5)
        with CpuMeter({"tree": (parent.pid, True), "alone": (parent.pid, False)}) as m:
            (tmp_path / "go").touch()
            for name in ("reaped", "live", "parent"):
                wait_for(tmp_path / name)
            time.sleep(0.1)  # the reaped child's times reach the parent at its wait()
        assert 0.7 <= m.seconds["tree"] <= 1.3, m.seconds
        assert m.seconds["alone"] < 0.2, m.seconds
    finally:
        subprocess.run(["pkill", "-KILL", "-P", str(parent.pid)])
        parent.kill()
        parent.wait()


def test_a_process_that_is_gone_reads_as_zero():
    p = python("pass")
    p.wait()
    assert cpu_seconds(p.pid) == 0.0
    assert cpu_seconds(p.pid, tree=True) == 0.0
    with CpuMeter({"gone": (p.pid, False)}) as m:
        pass
    assert m.seconds["gone"] == 0.0
