"""Invalid auditor configuration stops it at start with exit code 2 and names the field."""
import subprocess

import pytest

from auditor_support import TOKENS, sha
from harness.procs import run_binary


def base(tmp_path, **over):
    cfg = {"http": {"listen": "127.0.0.1:0"},
           "checkpoint": {"key_file": str(tmp_path / "k.pem"), "generate_if_missing": True},
           "tokens": [{"name": "a", "sha256": sha(TOKENS["auditor"]), "roles": ["auditor"]}]}
    cfg.update(over)
    return cfg


CASES = [
    ({"tokens": []}, "tokens"),
    ({"tokens": [{"name": "a", "sha256": "z" * 64, "roles": ["auditor"]}]}, "sha256"),
    ({"tokens": [{"name": "a", "sha256": "ab", "roles": ["auditor"]}]}, "sha256"),
    ({"tokens": [{"name": "a", "sha256": "a" * 64, "roles": ["root"]}]}, "roles"),
    ({"checkpoint": {}}, "checkpoint.key_file"),
    ({"checkpoint": {"key_file": "/nonexistent/dir/k.pem"}}, "key_file"),
    ({"checkpoint": {"key_file": "k.pem", "public_keys": ["zz" * 32]}}, "public_keys"),
    ({"checkpoint": {"key_file": "k.pem", "public_keys": ["ab" * 31]}}, "public_keys"),
    ({"checkpoint": {"key_file": "k.pem", "public_keys": ["ab" * 32] * 16}}, "public_keys"),
    ({"batch_max": 100000}, "batch_max"),
    ({"gap_grace_s": 0, "batch_linger_ms": 999999}, "batch_linger_ms"),
    ({"slo": {"target": 1.5}}, "slo.target"),
    ({"log_level": "loud"}, "log_level"),
    ({"unknown_key": 1}, "unknown_key"),
    ({"postgres": {"read_conninfo": "host=127.0.0.1 port"}}, "postgres.read_conninfo"),
    ({"postgres": {"read_conninfo": "postgresql://x:y@[::1"}}, "postgres.read_conninfo"),
    ({"postgres": {"read_conninfo": "a" * 5000}}, "read_conninfo"),
    ({"postgres": {"read_only": "host=x"}}, "read_only"),
]


@pytest.mark.parametrize("over,field", CASES, ids=[c[1] + str(i) for i, c in enumerate(CASES)])
def test_bad_config_exits_2(tmp_path, over, field):
    r = run_binary("auditor", base(tmp_path, **over))
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert field in (r.stdout + r.stderr)


def test_bad_read_conninfo_is_refused_without_echoing_it(tmp_path):
    # A conninfo may carry a password: neither it nor libpq's message quoting it is printed.
    r = run_binary("auditor", base(tmp_path, postgres={
        "read_conninfo": "user=hookline_reader password=s3cret-value s3cret-tail"}))
    out = r.stdout + r.stderr
    assert r.returncode == 2 and "postgres.read_conninfo" in out, out
    assert "s3cret" not in out, out


def test_bad_key_file_exits_2(tmp_path):
    key = tmp_path / "k.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    key.chmod(0o600)
    r = run_binary("auditor", base(tmp_path, checkpoint={"key_file": str(key)}))
    assert r.returncode == 2 and "Ed25519" in r.stdout + r.stderr


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_key_file_readable_by_others_exits_2(tmp_path, mode):
    """A real Ed25519 key, opened to its group or others."""
    key = tmp_path / "k.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)], check=True)
    key.chmod(mode)
    r = run_binary("auditor", base(tmp_path, checkpoint={"key_file": str(key)}))
    out = r.stdout + r.stderr
    assert r.returncode == 2, (r.returncode, out)
    assert "checkpoint.key_file" in out and "readable by group or others" in out, out


@pytest.mark.parametrize("how", ["config", "env"])
def test_key_file_shared_when_told(tmp_path, how):
    """secret_files_shared (or HOOKLINE_SECRET_FILES_SHARED) lets a 0440 key file through, as
    a Kubernetes Secret volume mounts it: the start goes on to read the key (here one that is
    no Ed25519 key, so it still stops, for that reason)."""
    key = tmp_path / "k.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    key.chmod(0o440)
    over = {"checkpoint": {"key_file": str(key)}}
    env = None
    if how == "config":
        over["secret_files_shared"] = True
    else:
        env = {"HOOKLINE_SECRET_FILES_SHARED": "true"}
    r = run_binary("auditor", base(tmp_path, **over), env=env)
    out = r.stdout + r.stderr
    assert r.returncode == 2 and "Ed25519" in out and "readable by group" not in out, out


def test_no_config_is_usage_error():
    r = run_binary("auditor", None, args=[])
    assert r.returncode == 2 and "usage" in r.stdout + r.stderr
