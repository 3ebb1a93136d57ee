"""The harness notices sanitizer reports: harness.sanitizers.reports() finds each kind of
report (AddressSanitizer, LeakSanitizer, UndefinedBehaviorSanitizer, a deadly signal) in a log
and nothing in a clean service log, also when request data quoted in a JSON log line looks like
a report; it recognises what the compiler's own sanitizer runtime prints today; and the
`service` fixture turns a report in a service's log into a teardown failure. The whole chain
on the real sanitized binaries is test_sanitized_binaries_leak.py (sanitized build only).

Needs a C compiler with -fsanitize=address,undefined (the one the build uses)."""
import os
import subprocess
from pathlib import Path

import pytest

from harness import paths, sanitizers

# Captured from a program built with gcc -fsanitize=address,undefined on the test machine.
ASAN_UAF = """\
=================================================================
==2268==ERROR: AddressSanitizer: heap-use-after-free on address 0x602000000012 at pc 0x5623fdd1a4e3 bp 0x7ffe068da630 sp 0x7ffe068da628
READ of size 1 at 0x602000000012 thread T0
    #0 0x5623fdd1a4e2 in main /tmp/san/bad.c:10
    #1 0x7fa9f8645249 in __libc_start_call_main ../sysdeps/nptl/libc_start_call_main.h:58

0x602000000012 is located 2 bytes inside of 8-byte region [0x602000000010,0x602000000018)
freed by thread T0 here:
    #0 0x7fa9f90b76a8 in __interceptor_free ../../../../src/libsanitizer/asan/asan_malloc_linux.cpp:52
    #1 0x5623fdd1a45d in main /tmp/san/bad.c:10

SUMMARY: AddressSanitizer: heap-use-after-free /tmp/san/bad.c:10 in main
Shadow bytes around the buggy address:
  0x0c047fff7ff0: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
=>0x0c047fff8000: fa fa[fd]fa fa fa fa fa fa fa fa fa fa fa fa fa
==2268==ABORTING
"""

LSAN_LEAK = """\

=================================================================
==2195==ERROR: LeakSanitizer: detected memory leaks

Direct leak of 64 byte(s) in 1 object(s) allocated from:
    #0 0x7f0924cb89cf in __interceptor_malloc ../../../../src/libsanitizer/asan/asan_malloc_linux.cpp:69
    #1 0x55c4e7068330 in main /tmp/san/bad.c:7

Indirect leak of 32 byte(s) in 1 object(s) allocated from:
    #0 0x7f0924cb89cf in __interceptor_malloc ../../../../src/libsanitizer/asan/asan_malloc_linux.cpp:69
    #1 0x55c4e7068340 in main /tmp/san/bad.c:8

SUMMARY: AddressSanitizer: 96 byte(s) leaked in 2 allocation(s).
"""

UBSAN_OVERFLOW = """\
bad.c:9:40: runtime error: signed integer overflow: 2 + 2147483646 cannot be represented in type 'int'
    #0 0x562f83d2a436 in main /tmp/san/bad.c:9
    #1 0x7fd293445249 in __libc_start_call_main ../sysdeps/nptl/libc_start_call_main.h:58
"""

DEADLY_SIGNAL = """\
AddressSanitizer:DEADLYSIGNAL
=================================================================
==4100==ERROR: AddressSanitizer: SEGV on unknown address 0x000000000000 (pc 0x55d0 bp 0x7ffd sp 0x7ffd T3)
==4100==The signal is caused by a READ memory access.
    #0 0x55d0 in hl_batch_flush services/persister/batch_writer.c:210
SUMMARY: AddressSanitizer: SEGV services/persister/batch_writer.c:210 in hl_batch_flush
==4100==ABORTING
"""

LSAN_CANNOT_RUN = """\
==5120==LeakSanitizer has encountered a fatal error.
==5120==HINT: For debugging, try setting environment variable LSAN_OPTIONS=verbosity=1:log_threads=1
==5120==HINT: LeakSanitizer does not work under ptrace (strace, gdb, etc)
"""

CLEAN_LOG = """\
{"ts":"2026-11-25T19:27:46.120Z","level":"info","svc":"ingress","msg":"ingress started","listen":"127.0.0.1:40411"}
{"ts":"2026-11-25T19:27:46.310Z","level":"warn","svc":"ingress","request_id":"01a21432-5fd2-7735-b0af-06e88c15586a","msg":"rejected: invalid_json","detail":"x.c:1:2: runtime error: "}
{"ts":"2026-11-25T19:27:46.311Z","level":"warn","svc":"ingress","msg":"bad header ==1==ERROR: AddressSanitizer: SUMMARY: AddressSanitizer: 1"}
{"ts":"2026-11-25T19:27:47.002Z","level":"info","svc":"ingress","msg":"signal 15: draining"}
{"ts":"2026-11-25T19:27:47.150Z","level":"info","svc":"ingress","msg":"drained, exiting"}
"""


def test_reports_finds_each_kind_of_report():
    for text, first in [(ASAN_UAF, "==2268==ERROR: AddressSanitizer: heap-use-after-free"),
                        (LSAN_LEAK, "==2195==ERROR: LeakSanitizer: detected memory leaks"),
                        (UBSAN_OVERFLOW, "bad.c:9:40: runtime error: signed integer overflow"),
                        (DEADLY_SIGNAL, "AddressSanitizer:DEADLYSIGNAL"),
                        (LSAN_CANNOT_RUN, "==5120==LeakSanitizer has encountered a fatal")]:
        got = sanitizers.reports(CLEAN_LOG + text)
        assert len(got) == 1, (first, got)
        assert got[0].startswith(first), got[0]
    # The report carries what is needed to act on it: the leak's size and where it was made.
    leak = sanitizers.reports(LSAN_LEAK)[0]
    assert "bad.c:7" in leak and "SUMMARY: AddressSanitizer: 96 byte(s) leaked" in leak
    # Several reports in one log are each found once (a SUMMARY closes its report).
    assert len(sanitizers.reports(ASAN_UAF + UBSAN_OVERFLOW + LSAN_LEAK)) == 3
    # A long report stays one report, its excerpt bounded but keeping the SUMMARY line; a
    # crash seen by several threads at once is one report.
    head, leak_block = LSAN_LEAK.split("\nDirect", 1)
    long_leak = head + ("\nDirect" + leak_block.split("\nSUMMARY")[0]) * 30 + \
        "\nSUMMARY: AddressSanitizer: 2880 byte(s) leaked in 60 allocation(s).\n"
    got = sanitizers.reports(long_leak)
    assert len(got) == 1 and len(got[0].splitlines()) == 40, got
    assert got[0].splitlines()[-1].startswith("SUMMARY: AddressSanitizer: 2880 byte(s)")
    crash = "AddressSanitizer:DEADLYSIGNAL\n" + DEADLY_SIGNAL
    assert len(sanitizers.reports(crash)) == 1


def test_reports_finds_nothing_in_a_clean_log():
    assert sanitizers.reports(CLEAN_LOG) == []
    assert sanitizers.reports("") == []


def test_scan_files_reads_sanitizer_log_files(tmp_path):
    assert sanitizers.scan_files(tmp_path) == {}
    assert sanitizers.scan_files(tmp_path / "missing") == {}
    (tmp_path / "report.4242").write_text(UBSAN_OVERFLOW)
    found = sanitizers.scan_files(tmp_path)
    assert list(found) == [tmp_path / "report.4242"]
    assert "signed integer overflow" in found[tmp_path / "report.4242"][0]
    # Whatever the runtime wrote is a finding, even in a form the patterns do not know.
    (tmp_path / "report.4243").write_text("==4243==WARNING: something new\n")
    assert "something new" in sanitizers.scan_files(tmp_path)[tmp_path / "report.4243"][0]


BAD_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "";
    if (strcmp(what, "leak") == 0) { char *p = malloc(64); p[0] = 1; p = NULL; return 0; }
    if (strcmp(what, "overflow") == 0) { char *p = malloc(8); p[argc + 6] = 1; free(p); return 0; }
    if (strcmp(what, "ub") == 0) { int x = 2147483646 + argc - 1; x += argc; printf("%d\n", x); }
    if (strcmp(what, "uaf") == 0) { char *p = malloc(8); free(p); return p[argc]; }
    return 0;
}
"""


def test_reports_recognises_the_runtime_output(tmp_path):
    """Built with the same flags as -DHL_SANITIZE=ON and run with the options the harness
    gives services: every misdeed yields exactly one report, a clean run none."""
    src = tmp_path / "bad.c"
    src.write_text(BAD_C)
    exe = tmp_path / "bad"
    subprocess.run([sanitizers.compiler(), "-g", "-O1", "-fsanitize=address,undefined",
                    "-fno-omit-frame-pointer", "-fno-sanitize-recover=all", str(src), "-o",
                    str(exe)], check=True, capture_output=True, timeout=120)
    env = {"ASAN_OPTIONS": sanitizers.ASAN_OPTIONS, "UBSAN_OPTIONS": sanitizers.UBSAN_OPTIONS}
    for what in ("leak", "overflow", "ub", "uaf", "clean"):
        r = subprocess.run([str(exe), what], capture_output=True, text=True, env=env,
                           timeout=60)
        got = sanitizers.reports(r.stderr)
        if what == "clean":
            assert r.returncode == 0 and got == [], r.stderr
        else:
            assert r.returncode != 0 and len(got) == 1, (what, r.returncode, r.stderr)


FAKE = str(paths.SOURCE_DIR / "tests" / "integration" / "harness" / "fake_service.py")


def test_service_fixture_fails_on_a_report_in_the_log(service, free_port):
    port = free_port()
    cfg = {"http": {"listen": f"127.0.0.1:{port}", "threads": 1}}
    clean = service(FAKE, cfg)
    assert clean.stop() == 0 and clean.sanitizer_reports == []
    port = free_port()
    bad = service(FAKE, {"http": {"listen": f"127.0.0.1:{port}", "threads": 1}},
                  env={"FAKE_SANITIZER_REPORT": "1"})
    # The exit code alone would not tell: the log is what is scanned.
    assert bad.stop() == 0
    assert len(bad.sanitizer_reports) == 1
    assert "LeakSanitizer: detected memory leaks" in bad.sanitizer_reports[0]
    problems = service.stop_all()
    assert len(problems) == 1 and "1 sanitizer report(s)" in problems[0], problems
    assert str(bad.log_path) in problems[0] and "64 byte(s) leaked" in problems[0]
    # Seen and asserted: clear it, or the fixture would fail this test at teardown.
    service.problems.clear()
