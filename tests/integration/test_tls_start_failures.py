"""A service configured for TLS that cannot set TLS up stops at once with an error line that
says why and a non-zero exit code, instead of running without a listener: a certificate
file that is missing, a key that does not belong to the certificate, a key that is no key,
and an OpenSSL that civetweb cannot load at run time (provoked with a preloaded library
that refuses civetweb's dlopen of "libcrypto.so", the way a runtime image without Debian's
libssl-dev does). The same configuration with a good certificate and key serves TLS, so each
failure is the TLS setup's and nothing else's.

Kafka and Postgres are pointed at a closed port: every service gets past its start with
them unreachable (it keeps retrying). Sanitizer reports in a service's log fail the test
(the `service` fixture scans it).
"""
import datetime
import json
import shutil
import socket
import ssl
import subprocess
import time

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harness import dump_yaml, free_port, paths, sanitizers

SERVICES = ("ingress", "persister", "auditor")
# A hang guard, not a speed bound: a failed TLS setup exits in well under a second.
EXIT_WAIT_S = sanitizers.slack(15)
SERVE_WAIT_S = sanitizers.slack(30)

# Refuses dlopen("libcrypto.so") and passes every other name on.
NO_LIBCRYPTO_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>
void *dlopen(const char *file, int mode)
{
    static void *(*next)(const char *, int);
    if (next == NULL) next = (void *(*)(const char *, int))dlsym(RTLD_NEXT, "dlopen");
    if (file != NULL && strcmp(file, "libcrypto.so") == 0) return NULL;
    return next(file, mode);
}
"""


def _pem_pair(cn="127.0.0.1"):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    cert, key = _pem_pair()
    _, other_key = _pem_pair()
    (d / "cert.pem").write_bytes(cert)
    (d / "key.pem").write_bytes(key)
    (d / "other-key.pem").write_bytes(other_key)
    (d / "not-a-key.pem").write_text("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n"
                                     "-----END PRIVATE KEY-----\n")
    return d


@pytest.fixture(scope="module")
def no_libcrypto(tmp_path_factory):
    """A shared library to preload that makes civetweb's dlopen("libcrypto.so") fail."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler: deploy/local/install-deps installs build-essential")
    d = tmp_path_factory.mktemp("preload")
    (d / "no_libcrypto.c").write_text(NO_LIBCRYPTO_C)
    so = d / "no_libcrypto.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(so), str(d / "no_libcrypto.c"),
                    "-ldl"], check=True, capture_output=True, timeout=60)
    return so


def _config(svc, tmp, port, cert, key):
    """The local stack's config of svc, as a file, with TLS on `port` and Kafka and Postgres
    on a closed port."""
    src = paths.SOURCE_DIR
    cfg = yaml.safe_load((src / "deploy" / "local" / f"{svc}.yaml").read_text())
    cfg["http"].update({"listen": f"127.0.0.1:{port}s", "threads": 4, "tls_cert": str(cert),
                        "tls_key": str(key)})
    cfg["kafka"]["brokers"] = "127.0.0.1:1"
    if "postgres" in cfg:
        cfg["postgres"]["conninfo"] = "host=127.0.0.1 port=1 dbname=hookline user=hookline"
    if svc == "auditor":
        cfg["checkpoint"]["key_file"] = str(tmp / "checkpoint.pem")
    if "metrics_listen" in cfg:  # not the local stack's port: a running demo holds it
        cfg["metrics_listen"] = f"127.0.0.1:{free_port()}"
    for source in cfg.get("sources") or []:
        for secret in source.get("secrets") or []:
            if secret.get("file"):
                secret["file"] = str(src / secret["file"])
    # The harness reads the port from http.listen, which the "s" suffix confuses: pass a file.
    path = tmp / f"{svc}.yaml"
    path.write_text(dump_yaml(cfg))
    return ["--config", str(path)]


def _error_lines(text):
    out = []
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("level") == "error" and rec.get("component") != "librdkafka":
            out.append(rec["msg"])
    return out


def _tls_answers(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
            with ctx.wrap_socket(raw) as tls:
                tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return tls.recv(64).startswith(b"HTTP/1.1 200")
    except (OSError, ssl.SSLError):
        return False


@pytest.mark.parametrize("svc", SERVICES)
def test_good_certificate_serves_tls(svc, service, pki, tmp_path):
    port = free_port()
    proc = service(svc, None, wait_healthy=False,
                   args=_config(svc, tmp_path, port, pki / "cert.pem", pki / "key.pem"))
    deadline = time.monotonic() + SERVE_WAIT_S
    while not _tls_answers(port):
        assert proc.running(), f"{svc} stopped:\n{proc.log_tail()}"
        assert time.monotonic() < deadline, f"{svc}: no TLS answer on {port}\n{proc.log_tail()}"
        time.sleep(0.2)
    assert proc.stop() == 0, proc.log_tail()


CASES = {
    # case: (cert, key, preload, words the error line must hold)
    "missing_cert": ("absent.pem", "key.pem", False, ("cannot load tls_cert",)),
    # OpenSSL compares the key with the certificate already while loading it.
    "key_of_another_cert": ("cert.pem", "other-key.pem", False, ("tls_key", "mismatch")),
    "key_not_a_key": ("cert.pem", "not-a-key.pem", False, ("cannot load tls_key",)),
    "no_loadable_libcrypto": ("cert.pem", "key.pem", True,
                              ("cannot load OpenSSL", "libcrypto.so")),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("svc", SERVICES)
def test_tls_setup_failure_stops_the_service(svc, case, service, pki, no_libcrypto, tmp_path):
    cert, key, preload, words = CASES[case]
    env = {}
    if preload:
        env["LD_PRELOAD"] = str(no_libcrypto)
        if sanitizers.ENABLED:
            # ASan wants its runtime first in the list of loaded libraries.
            env["ASAN_OPTIONS"] = sanitizers.ASAN_OPTIONS + ":verify_asan_link_order=0"
    port = free_port()
    proc = service(svc, None, env=env, wait_healthy=False,
                   args=_config(svc, tmp_path, port, pki / cert, pki / key))
    try:
        rc = proc.proc.wait(timeout=EXIT_WAIT_S)
    except subprocess.TimeoutExpired:
        rc = None
    log = proc.log_text()
    assert rc is not None, f"{svc} kept running after a failed TLS setup:\n{log[-3000:]}"
    assert rc != 0, f"{svc} exited 0 after a failed TLS setup:\n{log[-3000:]}"
    errors = _error_lines(log)
    assert any(all(w in e for w in words) for e in errors), \
        f"{svc}: no error line with {words}; error lines: {errors}\n{log[-3000:]}"
    assert not paths.port_open("127.0.0.1", port), f"{svc}: port {port} open"
