"""CMake stops at configure time, naming the library, when a pkg-config module it needs lists
a library that is not installed (libcyaml's file names -lyaml, which Debian's libcyaml-dev
does not pull in): otherwise configure passes and every link fails later with
"cannot find -lyaml". A project of a few lines runs the top-level CMakeLists.txt's check
(tools/cmake/HlPkgConfig.cmake) on the machine's own libcyaml.pc, copied with one more, absent,
library and put first on PKG_CONFIG_PATH; the unchanged copy must pass, so the failure is the
missing library's alone."""
import os
import subprocess

import pytest

from harness import paths

ABSENT = "hl_absent_dependency"
PROJECT = """cmake_minimum_required(VERSION 3.18)
project(hl_pkg_check_probe NONE)
list(APPEND CMAKE_MODULE_PATH "{modules}")
include(HlPkgConfig)
hl_pkg_check(CYAML libcyaml)
"""


def _libcyaml_pc():
    r = subprocess.run(["pkg-config", "--variable=pcfiledir", "libcyaml"], capture_output=True,
                       text=True, timeout=30)
    if r.returncode != 0:
        pytest.fail("pkg-config does not know libcyaml: run deploy/local/install-deps")
    return os.path.join(r.stdout.strip(), "libcyaml.pc")


def _configure(tmp_path, name, pc_text):
    d = tmp_path / name
    (d / "pkgconfig").mkdir(parents=True)
    (d / "pkgconfig" / "libcyaml.pc").write_text(pc_text)
    (d / "src").mkdir()
    (d / "src" / "CMakeLists.txt").write_text(
        PROJECT.format(modules=paths.SOURCE_DIR / "tools" / "cmake"))
    env = {**os.environ, "PKG_CONFIG_PATH": str(d / "pkgconfig")}
    return subprocess.run(["cmake", "-S", str(d / "src"), "-B", str(d / "build")], env=env,
                          capture_output=True, text=True, timeout=120)


def test_configure_names_a_missing_library_of_a_pkg_config_module(tmp_path):
    text = open(_libcyaml_pc()).read()
    assert "-lyaml" in text, "libcyaml.pc no longer names -lyaml: revisit this test"
    ok = _configure(tmp_path, "unchanged", text)
    assert ok.returncode == 0, f"the check refused the unchanged libcyaml.pc:\n{ok.stderr}"
    bad = _configure(tmp_path, "absent", text.replace("-lyaml", f"-lyaml -l{ABSENT}"))
    assert bad.returncode != 0, "configure passed although libcyaml.pc names a missing library"
    assert f"-l{ABSENT}" in bad.stderr and "libcyaml" in bad.stderr, bad.stderr


def test_the_build_uses_the_check():
    text = (paths.SOURCE_DIR / "CMakeLists.txt").read_text()
    assert "pkg_check_modules(" not in text, "a pkg-config module found without hl_pkg_check"
    assert "hl_pkg_check(CYAML libcyaml)" in text
