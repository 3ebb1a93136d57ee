"""The Python unit tests (the benchmark's tools) follow the suite's rule on skips: a skipped test
fails unless tests/allowed-skips.txt lists it. noskip.py is loaded by itself, without the
integration harness's package (which needs Kafka and Postgres clients)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "harness"))

from noskip import pytest_make_collect_report, pytest_runtest_makereport  # noqa: E402,F401
