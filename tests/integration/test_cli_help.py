"""The hookline CLI as a newcomer meets it: every subcommand's --help exits 0 and names every
option it accepts (and only those), options that did nothing are refused, --version prints the
project version, and the errors for a stopped auditor, a stopped broker and a malformed request id
say what is wrong and what to do. Progress lines appear on a terminal and never in a pipe."""
import hashlib
import json
import os
import pty
import re
import select
import socket
import subprocess
from pathlib import Path

import pytest

from harness import paths
from test_cli_latency import DelayServer

ROOT = Path(__file__).resolve().parents[2]
HOOKLINE = paths.find_binary("hookline")

CONN = {"--auditor", "--auditor-token-file", "--auditor-token-env", "--lineage-path"}
PG = {"--pg", "--pg-schema", "--source", "--settle-timeout-ms", "--lineage-via", "--no-auditor"}
OPTIONS = {
    ("replay",): {
        "--count", "--events-per-message", "--duplicate-ratio", "--payload-bytes", "--seed",
        "--run-id", "--input", "--message-id-pointer", "--message-id-header",
        "--event-type-pointer", "--url", "--path", "--scheme", "--secret-file", "--secret-env",
        "--sig-header", "--sig-encoding", "--sig-prefix", "--concurrency", "--rate",
        "--max-retries", "--max-retry-wait-ms", "--timeout-ms", "--criteria", "--evidence",
        "--no-verify", "--json", "--no-progress"} | CONN | PG,
    ("verify",): {"--requests", "--no-progress"} | CONN | PG,
    ("gate",): {"--criteria"},
    ("evidence", "verify"): {"--public-key"},
    ("lineage",): CONN,
    ("dlq", "list"): {"--limit", "--request-id", "--all", "--brokers", "--topic", "--events-topic"},
}
FLAGS = {"--no-verify", "--json", "--no-progress", "--no-auditor", "--all"}


def run(*args, env=None, timeout=60, cwd=None):
    return subprocess.run([str(HOOKLINE), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


def test_top_level_help_and_version():
    r = run("--help")
    assert r.returncode == 0 and r.stderr == ""
    for cmd in ("replay", "verify", "gate", "evidence verify", "lineage", "dlq list",
                "dlq redrive", "--version"):
        assert cmd in r.stdout, cmd
    # The top-level help and dlq's agree on redrive's options.
    assert "dlq redrive --request-id ID | --all" in r.stdout
    assert "--request-id ID" in run("dlq", "--help").stdout
    version = re.search(r"project\(hookline VERSION ([0-9.]+)",
                        (ROOT / "CMakeLists.txt").read_text()).group(1)
    r = run("--version")
    assert r.returncode == 0 and r.stdout == f"hookline {version}\n"


@pytest.mark.parametrize("cmd", sorted(OPTIONS), ids=" ".join)
def test_every_subcommand_help_exits_0_and_names_exactly_its_options(cmd):
    for args in ([*cmd, "--help"], [*cmd, "-h"]):
        r = run(*args)
        assert r.returncode == 0, (args, r.stderr)
        assert r.stderr == "" and r.stdout.startswith("usage: hookline"), args
        named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", r.stdout)) - {"--help"}
        assert named == OPTIONS[cmd], (cmd, named ^ OPTIONS[cmd])
    # Each named option is accepted: with two stray arguments every command stops with a usage
    # error after parsing, never at an unknown option, and never does anything.
    for opt in sorted(OPTIONS[cmd]):
        val = [] if opt in FLAGS else ["x"]
        r = run(*cmd, opt, *val, "stray-1", "stray-2", timeout=30)
        assert r.returncode == 2, (cmd, opt, r.stdout, r.stderr)
        assert "unrecognized option" not in r.stderr, (cmd, opt, r.stderr)


def test_help_of_the_command_groups_exits_0():
    for group in ("evidence", "dlq"):
        r = run(group, "--help")
        assert r.returncode == 0 and r.stdout.startswith("usage: hookline " + group), group
    r = run("dlq", "redrive", "--help")
    assert r.returncode == 0 and "--all" in r.stdout
    # `evidence verify --help` is help, not a folder named --help.
    r = run("evidence", "verify", "--help")
    assert r.returncode == 0 and "SHA256SUMS" in r.stdout and "--help" not in r.stdout


@pytest.mark.parametrize("opt", sorted(PG))
def test_lineage_refuses_the_options_it_used_to_ignore(opt):
    val = [] if opt in FLAGS else ["x"]
    r = run("lineage", opt, *val, "0190f0f0-aaaa-7bbb-8ccc-ddddeeeeffff")
    assert r.returncode == 2
    assert "unrecognized option" in r.stderr, r.stderr


def test_a_stopped_auditor_is_named_with_what_to_do():
    port = closed_port()
    r = run("lineage", "0190f0f0-aaaa-7bbb-8ccc-ddddeeeeffff", "--auditor",
            f"http://127.0.0.1:{port}")
    assert r.returncode == 2 and r.stdout == ""
    assert f"auditor not reachable at http://127.0.0.1:{port}" in r.stderr
    assert "deploy/local/stack status" in r.stderr
    assert "input/output error" not in r.stderr


def test_a_stopped_broker_is_named_without_raw_client_lines():
    port = closed_port()
    for args in (["dlq", "list"], ["dlq", "redrive", "--all"]):
        r = run(*args, "--brokers", f"127.0.0.1:{port}")
        assert r.returncode == 2 and r.stdout == "", r
        assert f"Kafka broker not reachable at 127.0.0.1:{port}" in r.stderr, r.stderr
        assert "deploy/local/stack status" in r.stderr
        # librdkafka's own format is "%3|<time>|FAIL|rdkafka#consumer-1| [thrd:...]".
        raw = [ln for ln in r.stderr.splitlines() if re.match(r"^%\d\|", ln) or "[thrd:" in ln]
        assert not raw, raw
        assert len(r.stderr.splitlines()) <= 2, r.stderr


@pytest.mark.parametrize("bad, why", [
    ("1234", "it has 4 characters, not 36"),
    ("0190f0f0aaaa-7bbb-8ccc-ddddeeeeffff-", "character 9 should be '-'"),
    ("0190f0f0-aaaa-7bbb-8ccc-ddddeeeeffzz", "character 35 ('z') is not a hex digit"),
    ("0190F0F0-aaaa-7bbb-8ccc-ddddeeeeffff", "it mixes upper- and lower-case"),
])
def test_a_malformed_request_id_says_why(bad, why):
    for args in (["lineage", bad], ["dlq", "redrive", "--request-id", bad]):
        r = run(*args)
        assert r.returncode == 2 and r.stdout == ""
        assert f"'{bad}' is not a request id: {why}" in r.stderr, r.stderr
        assert "8-4-4-4-12 hex digits" in r.stderr


def test_the_token_is_found_in_the_local_stack_and_named_when_refused(tmp_path):
    """Without a token anywhere else, lineage sends the local stack's demo token (run from the
    repository's root, as the demo does); an auditor that refuses it gets a message that names
    the file, and one with no token at all says where it looked."""
    got = {}

    import threading
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]

    def serve():
        for _ in range(2):
            c, _ = srv.accept()
            data = b""
            while b"\r\n\r\n" not in data:
                data += c.recv(4096)
            auth = re.search(rb"Authorization: Bearer ?(\S*)", data)
            got.setdefault("tokens", []).append(auth.group(1).decode() if auth else None)
            body = b'{"error":{"code":"malformed_token","message":"no"}}'
            c.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    env = {k: v for k, v in os.environ.items() if k != "HOOKLINE_AUDITOR_TOKEN"}
    rid = "0190f0f0-aaaa-7bbb-8ccc-ddddeeeeffff"
    r = run("lineage", rid, "--auditor", f"http://127.0.0.1:{port}", env=env, cwd=ROOT)
    assert r.returncode == 2
    assert "auditor answered 401 malformed_token" in r.stderr
    assert "deploy/local/secrets/auditor-demo.token" in r.stderr
    r = run("lineage", rid, "--auditor", f"http://127.0.0.1:{port}", env=env, cwd=tmp_path)
    assert r.returncode == 2
    assert "no auditor token found" in r.stderr and "--auditor-token-file" in r.stderr
    t.join(10)
    demo = (ROOT / "deploy/local/secrets/auditor-demo.token").read_text().strip()
    assert got["tokens"] == [demo, ""]


def make_evidence(folder, n=5):
    folder.mkdir()
    lines = []
    for i in range(n):
        data = os.urandom(1 << 16)
        (folder / f"f{i}.bin").write_bytes(data)
        lines.append(f"{hashlib.sha256(data).hexdigest()}  f{i}.bin\n")
    (folder / "SHA256SUMS").write_text("".join(lines))


def run_on_terminal(*args, timeout=60):
    """Runs hookline with stderr on a pseudo-terminal (stdout a pipe); (rc, stdout, stderr)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([str(HOOKLINE), *args], stdout=subprocess.PIPE, stderr=slave,
                         stdin=subprocess.DEVNULL)
    os.close(slave)
    err = b""
    while True:
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        err += chunk
    out = p.stdout.read()
    rc = p.wait(timeout)
    os.close(master)
    return rc, out.decode(), err.decode(errors="replace")


def test_progress_on_a_terminal_and_none_in_a_pipe(tmp_path):
    ev = tmp_path / "ev"
    make_evidence(ev)
    r = run("evidence", "verify", str(ev))
    assert r.returncode == 0 and "intact" in r.stdout
    assert "checking" not in r.stderr + r.stdout and "\r" not in r.stderr + r.stdout
    rc, out, err = run_on_terminal("evidence", "verify", str(ev))
    assert rc == 0 and "intact" in out
    assert "checking 5 of 5 files" in err, err
    assert "checking" not in out


def test_replay_progress_on_a_terminal_and_none_in_a_pipe():
    args = ["replay", "--count", "500", "--events-per-message", "1", "--duplicate-ratio", "0",
            "--concurrency", "2", "--rate", "200", "--no-verify", "--json"]
    with DelayServer(delay_s=0.002) as s:
        url = ["--url", f"http://127.0.0.1:{s.port}"]
        r = run(*args, *url, timeout=120)
        rc, out, err = run_on_terminal(*args, *url, timeout=120)
    # --no-verify leaves the verification criteria unmeasured: FAIL (1), results on stdout.
    assert r.returncode == 1 and json.loads(r.stdout)["sent"] == 500
    assert "\r" not in r.stderr and "sent " not in r.stderr, r.stderr
    assert rc == 1 and json.loads(out)["sent"] == 500
    assert re.search(r"\r  sent \d+/500  rate", err), err


def test_verify_progress_on_a_terminal_and_none_in_a_pipe(stack, pg_schema, tmp_path):
    """Three accepted events that never reach the table: verify waits for them (settle time),
    showing how many arrived on a terminal, then reports them missing."""
    ledger = tmp_path / "requests.ndjson"
    ledger.write_text("".join(json.dumps({
        "message_id": f"never-{i}", "event_type": "t.x", "delivery_id": "", "duplicate": False,
        "status": 202, "attempts": 1, "latency_us": 1000,
        "request_id": f"0190a0b0-0000-7000-8000-{i:012d}"}) + "\n" for i in range(3)))
    args = ["verify", "--requests", str(ledger), "--no-auditor", "--pg", stack.pg_dsn,
            "--pg-schema", pg_schema.name, "--settle-timeout-ms", "1500"]
    r = run(*args)
    assert r.returncode == 1 and "missing rows (gaps)    3" in r.stdout, r.stdout + r.stderr
    assert "\r" not in r.stderr and "postgres:" not in r.stderr, r.stderr
    rc, out, err = run_on_terminal(*args)
    assert rc == 1 and "missing rows (gaps)    3" in out
    assert "postgres: 0 of 3 accepted events stored" in err, err
    rc, out, err = run_on_terminal(*args, "--no-progress")
    assert rc == 1 and "postgres:" not in err


def test_replay_stays_quiet_in_a_pipe_when_nothing_answers(tmp_path):
    """A replay against a closed port in a pipe: the error, and no progress line."""
    port = closed_port()
    r = run("replay", "--count", "3", "--no-verify", "--max-retries", "0", "--url",
            f"http://127.0.0.1:{port}", timeout=120)
    assert r.returncode == 2
    assert f"ingress not reachable at http://127.0.0.1:{port}" in r.stderr
    assert "\r" not in r.stderr and "sent " not in r.stderr
