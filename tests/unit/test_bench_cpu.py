"""bench/lib/procs.py's CPU accounting, which the benchmark's CPU-per-request table rests on:
a busy process is charged what it burned and an idle one nothing; with tree=True a parent is
charged its children's CPU, live or already reaped (a Postgres postmaster and its backends);
a process that ends during the window leaves its part without a figure, never a zero; and
bench/run refuses a baseline run it cannot compare with, before it installs or starts anything."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SOURCE_DIR = Path(os.environ.get("HL_SOURCE_DIR") or Path(__file__).resolve().parents[2])
sys.path.insert(0, str(SOURCE_DIR / "bench" / "lib"))

from procs import CpuMeter, ProcessGone, cpu_seconds, pg_children_by_owner  # noqa: E402

# Burns s seconds of CPU once the file `go` exists, then creates `done`; wall time does not
# matter, so a loaded machine only makes it slower. It gives up after 120 s without `go`, so
# a test killed half-way leaves nothing spinning.
BURN = ("import os, sys, time\n"
        "t0 = time.monotonic()\n"
        "while not os.path.exists({go!r}):\n"
        "    if time.monotonic() - t0 > 120: sys.exit(1)\n"
        "    time.sleep(0.01)\n"
        "t = time.process_time()\n"
        "while time.process_time() - t < {s}: pass\n"
        "open({done!r}, 'w').close()\n")
LINGER = "time.sleep(120)\n"


def burn(tmp_path, name, s):
    return BURN.format(go=str(tmp_path / "go"), done=str(tmp_path / name), s=s)


@pytest.fixture
def procs():
    """Processes started by a test, each in its own process group, all killed at its end."""
    started = []

    def start(code):
        p = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
        started.append(p)
        return p
    yield start
    for p in started:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


def wait_for(path, timeout=60):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_busy_and_idle_processes_are_charged_what_they_used(tmp_path, procs):
    busy = procs(burn(tmp_path, "done", 0.6) + LINGER)
    idle = procs(LINGER)
    time.sleep(0.3)  # both started (an interpreter's start-up is not in the window)
    with CpuMeter({"busy": ([busy.pid], False), "idle": ([idle.pid], False)}) as m:
        (tmp_path / "go").touch()
        wait_for(tmp_path / "done")
    assert 0.5 <= m.seconds["busy"] <= 0.9, m.seconds
    assert m.seconds["idle"] < 0.1, m.seconds
    # The machine was at least as busy as the busy process, and the rest is the residual.
    assert m.seconds["machine"] >= m.seconds["busy"] - 0.05, m.seconds
    assert abs(m.seconds["unattributed"]
               - (m.seconds["machine"] - m.seconds["busy"] - m.seconds["idle"])) < 1e-9
    m.add("load generator", 0.25)
    assert abs(m.seconds["unattributed"] - (m.seconds["machine"] - m.seconds["busy"]
                                            - m.seconds["idle"] - 0.25)) < 1e-9
    us = m.per_request_us(2000)
    assert us["busy"] == round(m.seconds["busy"] * 1e6 / 2000, 1), us
    assert us["total"] == round(m.seconds["machine"] * 1e6 / 2000, 1), us
    assert m.per_request_us(0) is None


def test_a_part_of_several_processes_is_their_sum(tmp_path, procs):
    a = procs(burn(tmp_path, "a", 0.3) + LINGER)
    b = procs(burn(tmp_path, "b", 0.3) + LINGER)
    time.sleep(0.3)
    with CpuMeter({"both": ([a.pid, b.pid], False)}) as m:
        (tmp_path / "go").touch()
        wait_for(tmp_path / "a")
        wait_for(tmp_path / "b")
    assert 0.5 <= m.seconds["both"] <= 0.8, m.seconds


def test_tree_counts_live_and_reaped_children(tmp_path, procs):
    # A parent that burns nothing itself: one child burns and is reaped inside the window,
    # another burns and stays alive until the window has closed.
    reaped, live = burn(tmp_path, "reaped", 0.4), burn(tmp_path, "live", 0.4) + LINGER
    parent = procs(
        "import subprocess, sys, time\n"
        f"k = subprocess.Popen([sys.executable, '-c', {live!r}])\n"
        f"subprocess.run([sys.executable, '-c', {reaped!r}])\n"
        f"open({str(tmp_path / 'parent')!r}, 'w').close()\n" + LINGER)
    time.sleep(0.5)
    with CpuMeter({"tree": ([parent.pid], True), "alone": ([parent.pid], False)}) as m:
        (tmp_path / "go").touch()
        for name in ("reaped", "live", "parent"):
            wait_for(tmp_path / name)
    assert 0.7 <= m.seconds["tree"] <= 1.3, m.seconds
    assert m.seconds["alone"] < 0.2, m.seconds


def test_postgres_cpu_is_split_by_whose_backends_used_it(tmp_path, procs):
    # A stand-in postmaster whose children carry Postgres' process titles: a backend whose
    # client is a connection the "persister" holds, one whose client nobody named holds, and a
    # background process, each burning its own amount; one more child burns and ends inside
    # the window, so only the postmaster's reaped total knows it.
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        owner = procs("import socket, time\n"
                      f"c = socket.create_connection(('127.0.0.1', {srv.getsockname()[1]}))\n"
                      f"open({str(tmp_path / 'connected')!r}, 'w').close()\n" + LINGER)
        wait_for(tmp_path / "connected")
        conn, (_, client_port) = srv.accept()
        with conn, socket.socket() as stranger:
            stranger.connect(srv.getsockname())
            titles = {"backend": f"postgres: c: u d 127.0.0.1({client_port}) idle",
                      "unowned": f"postgres: c: u d 127.0.0.1({stranger.getsockname()[1]}) idle",
                      "bg": "postgres: c: checkpointer"}
            burns = {"backend": 0.5, "unowned": 0.2, "bg": 0.3}
            codes = {k: burn(tmp_path, k, burns[k]) + LINGER for k in titles}
            ended = burn(tmp_path, "ended", 0.3)
            spawn = "".join(f"subprocess.Popen([{titles[k]!r}, '-c', {codes[k]!r}],"
                            " executable=sys.executable)\n" for k in titles)
            parent = procs("import subprocess, sys, time\n" + spawn
                           + f"subprocess.run([sys.executable, '-c', {ended!r}])\n" + LINGER)
            deadline = time.monotonic() + 30
            while len(pg_children_by_owner(parent.pid, {})) < 4:
                assert time.monotonic() < deadline, "the stand-in's children never started"
                time.sleep(0.05)
            time.sleep(0.5)
            with CpuMeter({"postgres": ([parent.pid], True)},
                          pg_split=("postgres", parent.pid, {"persister": owner.pid})) as m:
                (tmp_path / "go").touch()
                for name in ("backend", "unowned", "bg", "ended"):
                    wait_for(tmp_path / name)
                time.sleep(0.2)  # the ended child reaped
    split = m.split
    assert set(split) == {"persister", "other", "background", "ended"}, split
    assert 0.4 <= split["persister"] <= 0.7, split
    assert 0.1 <= split["other"] <= 0.35, split
    assert 0.2 <= split["background"] <= 0.45, split
    assert 0.2 <= split["ended"] <= 0.5, split
    assert abs(sum(split.values()) - m.seconds["postgres"]) < 1e-6
    per = m.split_per_request_us(1000)
    assert per["persister"] == round(split["persister"] * 1000, 1)


def test_a_process_that_ends_in_the_window_leaves_no_figure(tmp_path, procs):
    short = procs(burn(tmp_path, "done", 0.2))  # exits after burning
    other = procs(LINGER)
    time.sleep(0.3)
    with CpuMeter({"short": ([short.pid], False), "other": ([other.pid], False)}) as m:
        (tmp_path / "go").touch()
        short.wait()
    assert m.seconds["short"] is None and m.gone == ["short"], (m.seconds, m.gone)
    assert m.seconds["other"] is not None
    assert m.per_request_us(100)["short"] is None
    with pytest.raises(ProcessGone):
        cpu_seconds(short.pid)
    with pytest.raises(ProcessGone):
        cpu_seconds(short.pid, tree=True)


def baseline_refused(tmp_path, content, *args):
    path = tmp_path / "baseline.json"
    path.write_text(content)
    r = subprocess.run([sys.executable, str(SOURCE_DIR / "bench" / "run"), "--quick",
                        "--baseline", str(path), "--build", str(tmp_path / "no-build"), *args],
                       capture_output=True, text=True, timeout=60)
    # Refused by the argument check (status 2) before anything was installed or built.
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "installing" not in r.stdout and "building" not in r.stdout, r.stdout
    assert not (tmp_path / "no-build").exists()
    return r.stderr


def test_bench_run_refuses_a_baseline_it_cannot_compare(tmp_path):
    good = json.loads((SOURCE_DIR / "bench" / "results" / "cpu-baseline.json").read_text())
    assert "not comparable" in baseline_refused(tmp_path, json.dumps(good), "--no-profile")
    other = dict(good, machine=dict(good["machine"], cpus=64))
    assert "cpus 64" in baseline_refused(tmp_path, json.dumps(other))
    assert "cannot be read" in baseline_refused(tmp_path, "{not json")
    assert "no CPU-per-request" in baseline_refused(tmp_path, json.dumps({"raw": {}}))


def test_context_switches_of_every_thread_are_counted(tmp_path, procs):
    # Two threads that each sleep 200 times: at least 400 voluntary switches in the window.
    sleeper = procs(
        "import os, threading, time\n"
        f"while not os.path.exists({str(tmp_path / 'go')!r}): time.sleep(0.01)\n"
        "done = []\n"
        "def nap():\n"
        "    for _ in range(200): time.sleep(0.001)\n"
        "    done.append(1)\n"
        "    time.sleep(120)  # alive while the window closes: an ended thread's count is gone\n"
        "for _ in range(2): threading.Thread(target=nap, daemon=True).start()\n"
        "while len(done) < 2: time.sleep(0.01)\n"
        f"open({str(tmp_path / 'done')!r}, 'w').close()\n" + LINGER)
    idle = procs(LINGER)
    time.sleep(0.3)
    with CpuMeter({"sleeper": ([sleeper.pid], False), "idle": ([idle.pid], False),
                   "tree": ([idle.pid], True)}) as m:
        (tmp_path / "go").touch()
        wait_for(tmp_path / "done")
    per = m.switches_per_request(100)
    assert per["sleeper"] >= 4.0, per   # 400 and more over 100 requests
    assert per["idle"] < 0.1, per
    assert "tree" not in per, per      # not counted for a tree


def test_bench_run_refuses_a_baseline_rev_without_the_pipeline(tmp_path):
    r = subprocess.run([sys.executable, str(SOURCE_DIR / "bench" / "run"), "--quick",
                        "--only", "http", "--baseline-rev", "HEAD",
                        "--build", str(tmp_path / "no-build")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "--baseline-rev measures in the pipeline phase" in r.stderr, r.stderr
    assert not (tmp_path / "no-build").exists()


def same_run_raw(turns):
    """Raw pipeline figures of a --baseline-rev run: (this, baseline) pipeline parts per
    repetition, split evenly over the five components."""
    def turn(total, rps):
        return {"cpu_us": {n: total / 5 for n in ("ingress", "broker", "persister", "postgres",
                                                   "auditor")}, "throughput_rps": rps}
    return {"pipeline": {"same_run": {"rate": 5000, "pairs": [
        {"this": turn(t, 4900.0), "baseline": turn(b, 4800.0)} for t, b in turns]}}}


def test_same_run_comparison_is_the_median_of_paired_ratios():
    import report  # noqa: E402  (bench/lib, on the path above)
    from notes import closing_notes  # noqa: E402

    class Settings:
        quick, reps = True, 3

        def as_dict(self):
            return {"quick": True, "reps": 3, "payload_bytes": 512, "concurrency": 64}
    # Paired ratios 0.5, 0.9 and 0.857: the median is 0.857, not 0.75 (the ratio of the
    # builds' medians, 300 / 400, would ignore which turns ran together).
    raw = same_run_raw([(200.0, 400.0), (450.0, 500.0), (300.0, 350.0)])
    meta = {"machine": {"cpus": 2, "cpu_model": "m", "mem_gb": 1, "kernel": "k",
                        "load_before": "0"}, "commit": "abc", "finished_utc": "now",
            "duration_s": 1.0, "baseline_commit": "0123456789abcdef",
            "command": "bench/run --quick"}
    # A file baseline given as well: the figure measured in this run wins.
    meta["baseline"] = {"file": "x.json", "cpu_us": {"5000 req/s": {"pipeline": 10.0}}}
    j = report.summarise(raw, Settings(), meta)
    same = j["cpu_same_run"]
    assert same["pipeline_ratios"] == [0.5, 0.9, 0.857]
    assert same["pipeline_ratio"] == 0.857
    assert same["this"]["pipeline"] == 300.0 and same["baseline"]["pipeline"] == 400.0
    assert j["cpu_ratio_baseline_at_5000"] == 0.857
    bar = next(b for b in j["bars"] if b["key"] == "cpu_ratio_baseline_at_5000")
    assert bar["value"] == 0.857 and bar["met"] is False
    md = "\n".join(report._cpu_table(j))
    assert "this build and the baseline's in turns" in md and "0123456789ab" in md
    assert "| this ÷ baseline (ratio of the medians) | 0.75 |" in md
    assert "Measured in this run, in turns" in "\n".join(closing_notes(j, {}))
    # Halved in every repetition: the bar is met.
    j = report.summarise(same_run_raw([(100.0, 400.0), (240.0, 500.0), (150.0, 500.0)]),
                         Settings(), dict(meta, baseline=None))
    assert j["cpu_ratio_baseline_at_5000"] == 0.3
    assert next(b for b in j["bars"] if b["key"] == "cpu_ratio_baseline_at_5000")["met"]
    # No turn measured (the comparison failed): said so, and the file baseline's figure stays.
    parts = {n: 4.0 for n in ("ingress", "broker", "persister", "postgres", "auditor")}
    run = {"cpu_us": parts, "p50_ms": 1.0, "p95_ms": 1.0, "p99_ms": 1.0, "p999_ms": 1.0,
           "throughput_rps": 5000.0, "errors": 0,
           "auditor": {s: {"count": 0} for s in ("ack", "e2e")}}
    failed = {"pipeline": {"rates": {"5000": [run]},
                           "same_run": {"rate": 5000, "pairs": [], "error": "boom"}}}
    j = report.summarise(failed, Settings(), dict(meta, baseline={
        "file": "x.json", "cpu_us": {"5000 req/s": {"pipeline": 10.0}}}))
    assert j["cpu_same_run"]["error"] == "boom"
    assert j["cpu_ratio_baseline_at_5000"] == 2.0  # 20 µs now against the file's 10
    assert "Not measured: boom" in "\n".join(report._cpu_table(j))
    assert "did not run: boom" in "\n".join(closing_notes(j, {}))


def assert_gone(pid, after):
    """pid ends (or is a zombie) within 10 s; else it is killed and the test fails."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except FileNotFoundError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    pytest.fail(f"the command's child {pid} still runs after {after}")


def test_run_group_kills_the_whole_group_on_timeout(tmp_path):
    """A baseline build that times out (or is interrupted) takes its compilers with it: the
    command's children, not only the command, are gone when run_group raises."""
    from procs import run_group
    pidfile = tmp_path / "child"
    script = f"sleep 600 >/dev/null 2>&1 & echo $! > {pidfile}; wait"
    with pytest.raises(subprocess.TimeoutExpired):
        run_group(["sh", "-c", script], timeout=1)
    assert_gone(int(pidfile.read_text()), "the timeout")
    r = run_group(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10)
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")


def test_run_group_kills_the_whole_group_when_interrupted(tmp_path):
    """Ctrl-C while a baseline build runs: the build's children go with it, and the interrupt
    still reaches the caller (the process ends with KeyboardInterrupt)."""
    pidfile = tmp_path / "child"
    code = ("import sys\n"
            f"sys.path.insert(0, {str(SOURCE_DIR / 'bench' / 'lib')!r})\n"
            "from procs import run_group\n"
            f"run_group(['sh', '-c', 'sleep 600 >/dev/null 2>&1 & echo $! > {pidfile}; wait'],"
            " timeout=120)\n")
    p = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (pidfile.exists() and pidfile.read_text().strip()):
        assert time.monotonic() < deadline and p.poll() is None, "the command never started"
        time.sleep(0.05)
    child = int(pidfile.read_text())
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert "KeyboardInterrupt" in err, err
    assert_gone(child, "the interrupt")
