#!/usr/bin/env bash
# The build recipe of the container image, kept as a script so that it runs the same way inside
# the Dockerfile's builder stage and on a plain Debian machine (CI runs it there through
# tests/integration/test_deploy.py, so the recipe is exercised without a Docker engine).
#
# It installs the build packages (unless --skip-apt), configures and builds the one CMake build
# every other place uses, and lays out an install prefix:
#   PREFIX/bin/                    hookline-ingress, hookline-persister, hookline-auditor,
#                                  hookline, hookline-migrate
#   PREFIX/lib/hookline/           shared libraries built in the tree (run path $ORIGIN/../lib)
#   PREFIX/libexec/hookline/       migrate (deploy/local/migrate, reused as is)
#   PREFIX/share/hookline/sql/     proto/sql/*.sql
#   PREFIX/share/hookline/config/  the services' YAML configs (deploy/local/*.yaml)
#   PREFIX/share/hookline/topics.yaml, lineage.schema.json
#
# Usage: build.sh [--source DIR] [--build-dir DIR] [--prefix DIR] [--jobs N] [--skip-apt]
set -euo pipefail

BINARIES=(hookline-ingress hookline-persister hookline-auditor hookline)
# Build-time Debian packages; the runtime package list is in the Dockerfile.
BUILD_PACKAGES=(build-essential cmake pkg-config
                librdkafka-dev libcivetweb-dev libssl-dev libpq-dev libjansson-dev libcyaml-dev libyaml-dev
                libcmocka-dev)

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=""
prefix=/opt/hookline
jobs=2
skip_apt=0

die() { echo "build.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --source) src=$(cd "${2:?--source needs a directory}" && pwd); shift 2 ;;
        --build-dir) build=${2:?--build-dir needs a directory}; shift 2 ;;
        --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
        --jobs) jobs=${2:?--jobs needs a number}; shift 2 ;;
        --skip-apt) skip_apt=1; shift ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (try --help)" ;;
    esac
done
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || die "--jobs must be a positive integer, got '$jobs'"
[ -f "$src/CMakeLists.txt" ] || die "no CMakeLists.txt in source dir $src"
build=${build:-$src/build-image}
case "$prefix" in /*) ;; *) prefix=$(pwd)/$prefix ;; esac

if [ "$skip_apt" -eq 0 ]; then
    missing=()
    for p in "${BUILD_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        [ "$(id -u)" -eq 0 ] || die "need root to install: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
fi

# Release flags but with debug info, as elsewhere; warnings stay warnings so that a newer
# compiler in an image does not refuse a tree CI has accepted.
# The binaries are linked with their installed run path from the start: libraries built in the
# tree (such as libs/httpd's libssl.so shim for civetweb) are found in PREFIX/lib/hookline,
# relative to the binary, so the prefix can move (image, temp dir) and never points back into
# the build folder.
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHL_WERROR=OFF \
      -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON '-DCMAKE_INSTALL_RPATH=$ORIGIN/../lib/hookline' >/dev/null

# Build only the installed binaries (not the unit tests), and only those whose targets exist,
# so that a missing service is reported by name below rather than as a make error.
# Makefiles list targets as "... name", Ninja as "name: phony".
available=$(cmake --build "$build" --target help | sed -n -e 's/^\.\.\. \([^ ]*\).*/\1/p' \
            -e 's/^\([^ :]*\): .*/\1/p')
targets=()
for b in "${BINARIES[@]}"; do
    grep -qx "$b" <<<"$available" && targets+=("$b")
done
# One target at a time, so one that fails to build does not hide the state of the others.
failed=()
for t in ${targets[@]+"${targets[@]}"}; do
    cmake --build "$build" -j "$jobs" --target "$t" || failed+=("$t")
done

# Copy from the build tree rather than relying on install() rules, so the layout is the same
# whatever each CMakeLists.txt declares.
mkdir -p "$prefix/bin" "$prefix/libexec/hookline" "$prefix/share/hookline/sql" \
         "$prefix/share/hookline/config"
missing_bins=()
for b in "${BINARIES[@]}"; do
    if printf '%s\n' ${failed[@]+"${failed[@]}"} | grep -qx "$b"; then
        missing_bins+=("$b (build failed)")
        continue
    fi
    found=$(find "$build/services" "$build/tools" -maxdepth 2 -type f -name "$b" -perm -u+x \
            2>/dev/null | head -n 1)
    if [ -z "$found" ]; then
        missing_bins+=("$b")
        continue
    fi
    install -m 0755 "$found" "$prefix/bin/$b"
done

# Shared libraries the binaries need that the build itself produced go with them.
mkdir -p "$prefix/lib/hookline"
for b in "${BINARIES[@]}"; do
    [ -f "$prefix/bin/$b" ] || continue
    for lib in $(objdump -p "$prefix/bin/$b" | awk '$1 == "NEEDED" {print $2}'); do
        own=$(find "$build" -name "$lib" -type f 2>/dev/null | head -n 1)
        [ -n "$own" ] && install -m 0644 "$own" "$prefix/lib/hookline/$lib"
    done
done

install -m 0644 "$src"/proto/sql/*.sql "$prefix/share/hookline/sql/"
install -m 0644 "$src/proto/topics.yaml" "$src/proto/lineage.schema.json" "$prefix/share/hookline/"
for svc in ingress persister auditor; do
    if [ -f "$src/deploy/local/$svc.yaml" ]; then
        install -m 0644 "$src/deploy/local/$svc.yaml" "$prefix/share/hookline/config/"
    fi
done
if [ -f "$src/deploy/local/migrate" ]; then
    install -m 0755 "$src/deploy/local/migrate" "$prefix/libexec/hookline/migrate"
else
    missing_bins+=("deploy/local/migrate")
fi
install -m 0755 "$src/deploy/docker/migrate-entrypoint" "$prefix/bin/hookline-migrate"

if [ ${#missing_bins[@]} -gt 0 ]; then
    die "not built or not found under $build: ${missing_bins[*]}"
fi
echo "build.sh: installed ${BINARIES[*]} hookline-migrate into $prefix"
