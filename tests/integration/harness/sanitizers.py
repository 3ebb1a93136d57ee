"""Running the integration tests against binaries built with -DHL_SANITIZE=ON (ASan+UBSan).

Switch: HL_SANITIZED_SERVICES=1 (set automatically by ctest in a build configured with
HL_SANITIZE=ON). With it, every hookline binary a test starts runs with leak checking on and
halts on the first error; the session refuses to run when the binaries under HL_BUILD_DIR are
not instrumented, so a sanitized run can never pass by testing a plain build. Time bounds that
are about speed (never those about correctness) are stretched with `slack()`.

Whatever the switch, every service log and every sanitizer log file is scanned with
`reports()`: any report (memory error, leak, undefined behaviour) fails the test that ran
the binary.
"""
import os
import re
import shutil
from pathlib import Path

import pytest

ENABLED = os.environ.get("HL_SANITIZED_SERVICES", "") == "1"

# Leak checking runs at exit, so services must exit normally on SIGTERM (they drain and
# return from main). halt_on_error: the first report ends the process with a non-zero code.
ASAN_OPTIONS = "detect_leaks=1:halt_on_error=1:strict_string_checks=1"
UBSAN_OPTIONS = "print_stacktrace=1:halt_on_error=1"

# How much longer a speed-bound step may take under ASan+UBSan. On the 2-core test machine the
# sanitized ingress spent 1.9-2.5x the CPU time of the plain one per request (closed-loop
# replay of 6,000 requests, two runs each); 4 leaves room for a machine shared with other
# work. HL_SANITIZER_SLOWDOWN overrides it.
SLOWDOWN = float(os.environ.get("HL_SANITIZER_SLOWDOWN", "4")) if ENABLED else 1.0


def slack(seconds):
    """A time bound about speed, stretched by SLOWDOWN when the binaries are sanitized."""
    return seconds * SLOWDOWN


def rate(per_second):
    """An offered load in requests per second, lowered by SLOWDOWN when the binaries are
    sanitized, so that an open-loop run measures latency and not a queue growing without
    end."""
    return max(1, int(per_second / SLOWDOWN))


def child_env(log_path=None):
    """The sanitizer variables for a child process: reports go to stderr, or to
    `<log_path>.<pid>` when log_path is given. Empty when the switch is off, so a plain run
    sees exactly the environment it always did."""
    if not ENABLED:
        return {}
    suffix = f":log_path={log_path}" if log_path else ""
    return {"ASAN_OPTIONS": ASAN_OPTIONS + suffix, "UBSAN_OPTIONS": UBSAN_OPTIONS + suffix}


# The first line of each kind of report, by kind. Anchored at the start of a line: the
# services log one JSON object per line (starting with "{"), so request data quoted in a log
# line can never look like a report.
_KINDS = [
    ("signal", re.compile(r"^\w+Sanitizer:DEADLYSIGNAL")),
    # Also the leak checker failing to run at all (it cannot stop the threads, say): a run
    # whose leaks went unchecked must not pass as clean.
    ("error", re.compile(r"^==\d+==\s*(?:ERROR: \w+Sanitizer\b|\w+Sanitizer has encountered "
                         r"a fatal error|\w+Sanitizer CHECK failed)")),
    ("ub", re.compile(r"^(?:\S+:\d+(?::\d+)?|<unknown>): runtime error: ")),
    ("tsan", re.compile(r"^WARNING: ThreadSanitizer: ")),
    ("summary", re.compile(
        r"^SUMMARY: (?:AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|"
        r"ThreadSanitizer)\b")),
]
_EXCERPT_LINES = 40


def _kind(line):
    for kind, pattern in _KINDS:
        if pattern.match(line):
            return kind
    return None


def reports(text):
    """The sanitizer reports found in `text` (a service log or a sanitizer log file), each as
    an excerpt of its first 40 lines (plus its SUMMARY line when that comes later); [] for a
    clean log. A report runs to its SUMMARY line, or to the next report when it has none
    (UBSan halting at once prints none); the DEADLYSIGNAL lines of a crash and the ERROR
    line after them are one report."""
    lines = text.splitlines()
    out = []
    i = 0
    while i < len(lines):
        kind = _kind(lines[i])
        if kind is None:
            i += 1
            continue
        has_error = kind != "signal"
        j = i + 1
        while j < len(lines) and kind != "summary":
            k = _kind(lines[j])
            if k == "summary":
                j += 1
                break
            if k == "signal" and not has_error:
                pass
            elif k == "error" and not has_error:
                has_error = True
            elif k is not None:
                break
            j += 1
        block = lines[i:j]
        if len(block) > _EXCERPT_LINES:
            block = (block[:_EXCERPT_LINES - 2]
                     + [f"[... {len(block) - _EXCERPT_LINES + 1} more lines]", block[-1]])
        out.append("\n".join(block))
        i = j
    return out


def scan_files(directory):
    """{path: [report, ...]} for every sanitizer log file (`*.<pid>`) under directory."""
    found = {}
    d = Path(directory)
    if not d.is_dir():
        return found
    for p in sorted(d.iterdir()):
        if p.is_file():
            got = reports(p.read_text(errors="replace"))
            # A log file exists only because the runtime wrote to it: keep it even when none
            # of the patterns above match, so a new kind of report cannot slip through.
            found[p] = got or [p.read_text(errors="replace")[:4000]]
    return found


_instrumented = {}


def instrumented(binary):
    """True when the executable links the AddressSanitizer runtime (gcc and clang both leave
    the __asan_init symbol in it)."""
    key = str(binary)
    if key not in _instrumented:
        with open(binary, "rb") as f:
            _instrumented[key] = b"__asan_init" in f.read()
    return _instrumented[key]


def compiler():
    """The C compiler the build was configured with (CMakeCache.txt under HL_BUILD_DIR), else
    cc or gcc from PATH; fails the test when there is none."""
    from harness import paths
    cache = paths.BUILD_DIR / "CMakeCache.txt"
    if cache.is_file():
        for line in cache.read_text().splitlines():
            if line.startswith("CMAKE_C_COMPILER:"):
                return line.split("=", 1)[1]
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler found to build a sanitizer sample")
    return cc
