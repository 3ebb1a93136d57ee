"""Where things are: the source tree, the build tree, the stack's state folder, the ports."""
import os
import socket
from pathlib import Path

SOURCE_DIR = Path(os.environ.get("HL_SOURCE_DIR") or Path(__file__).resolve().parents[3]).resolve()
BUILD_DIR = Path(os.environ.get("HL_BUILD_DIR") or SOURCE_DIR / "build").resolve()
STATE_DIR = Path(os.environ.get("HL_STATE_DIR") or SOURCE_DIR / ".hookline").resolve()
STACK_SCRIPT = SOURCE_DIR / "deploy" / "local" / "stack"
MIGRATE_SCRIPT = SOURCE_DIR / "deploy" / "local" / "migrate"
SQL_DIR = SOURCE_DIR / "proto" / "sql"

KAFKA_BROKERS = os.environ.get("HL_KAFKA_BROKERS") or \
    f"127.0.0.1:{os.environ.get('HL_KAFKA_PORT', '9092')}"
PG_HOST = os.environ.get("HL_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("HL_PG_PORT", "55432"))
PG_DB = "hookline"
PG_USER = "hookline"
PG_CONNINFO = f"host={PG_HOST} port={PG_PORT} dbname={PG_DB} user={PG_USER}"


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now.

    The kernel picks it from the ephemeral range, so two test files running in parallel do not
    collide the way fixed port numbers would."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host, port, timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def find_binary(name):
    """Resolve "ingress", "hookline-ingress", "hookline" or a path relative to the build dir."""
    if "/" in name:
        p = Path(name)
        return p if p.is_absolute() else BUILD_DIR / p
    short = name[len("hookline-"):] if name.startswith("hookline-") else name
    candidates = [
        BUILD_DIR / "services" / short / f"hookline-{short}",
        BUILD_DIR / "tools" / short / f"hookline-{short}",
        BUILD_DIR / "tools" / "hookline" / name,
        BUILD_DIR / "tools" / short / short,
    ]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    raise FileNotFoundError(
        f"no built binary for {name!r} under {BUILD_DIR} (looked at "
        + ", ".join(str(c) for c in candidates) + ")")
