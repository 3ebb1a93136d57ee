#!/usr/bin/python3
"""A stand-in service for testing the `service` fixture itself: serves GET /healthz on the
port of http.listen in the YAML given with --config, and misbehaves on request:

  FAKE_EXIT_AT_START=N   print a message and exit N before listening
  FAKE_IGNORE_TERM=1     ignore SIGTERM (must be SIGKILLed)
  FAKE_ORPHAN=1          start a child in its process group that outlives a SIGKILL of this one
  FAKE_TERM_EXIT=N       exit N on SIGTERM (default 0)
  FAKE_SANITIZER_REPORT=1  on SIGTERM, write a LeakSanitizer report to stderr before exiting
                         (what an instrumented service with a leak does at exit)
"""
import http.server
import os
import re
import signal
import subprocess
import sys

LEAK_REPORT = """
=================================================================
==PID==ERROR: LeakSanitizer: detected memory leaks

Direct leak of 64 byte(s) in 1 object(s) allocated from:
    #0 0x7f0924cb89cf in __interceptor_malloc ../../../../src/libsanitizer/asan/asan_malloc_linux.cpp:69
    #1 0x55c4e7068330 in main fake_service.c:7

SUMMARY: AddressSanitizer: 64 byte(s) leaked in 1 allocation(s).
"""


def main():
    cfg = sys.argv[sys.argv.index("--config") + 1]
    text = open(cfg, encoding="utf-8").read()
    print(f"fake service: config {cfg}", flush=True)
    if os.environ.get("FAKE_EXIT_AT_START"):
        print("fake service: refusing to start: bad value for field http.listen", flush=True)
        sys.exit(int(os.environ["FAKE_EXIT_AT_START"]))
    port = int(re.search(r'listen:\s*"?[0-9.]+:(\d+)', text).group(1))
    if os.environ.get("FAKE_IGNORE_TERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        code = int(os.environ.get("FAKE_TERM_EXIT", "0"))
        report = os.environ.get("FAKE_SANITIZER_REPORT") == "1"

        def on_term(*_):
            if report:
                sys.stderr.write(LEAK_REPORT.replace("PID", str(os.getpid())))
                sys.stderr.flush()
            os._exit(code)
        signal.signal(signal.SIGTERM, on_term)
    if os.environ.get("FAKE_ORPHAN"):
        subprocess.Popen(["sleep", "300"])

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"status":"ok"}' if self.path == "/healthz" else b"{}"
            self.send_response(200 if self.path == "/healthz" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    print(f"fake service: listening on {port}", flush=True)
    http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()


if __name__ == "__main__":
    main()
