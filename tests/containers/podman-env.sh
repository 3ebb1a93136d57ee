# Sourced by the container tests (tests/compose, tests/fresh-machine): a podman whose whole
# state (images, containers, volumes, networks, events, temp files) lives in one folder of the
# test's own, so nothing the tests build leaks into the machine's podman, and removing the
# folder removes everything. Settings that run here (tests/containers/README.md): runc with
# the cgroupfs manager and no default ulimits (crun cannot set them on this machine kind),
# netavark networks with aardvark-dns names, kept in the same folder.
#
#   hl_podman_env DIR    create DIR's config (once) and point podman at it (exports)
#   hl_podman ARGS...    podman with that state
#   hl_podman_reset      remove every container, pod, volume, network and image, then DIR
#   hl_base_image        the pristine minbase Debian bookworm image, localhost/hookline-base:bookworm:
#                        from mmdebstrap, its rootfs tarball cached for a day in ~/.cache/hookline

HL_BASE_IMAGE=localhost/hookline-base:bookworm

hl_podman_env() {
    local dir=$1
    mkdir -p "$dir/tmp" "$dir/networks"
    if [ ! -f "$dir/containers.conf" ]; then
        cat >"$dir/containers.conf" <<CONF
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$dir/events.log"
tmp_dir = "$dir/tmp"

[network]
network_backend = "netavark"
network_config_dir = "$dir/networks"
CONF
        cat >"$dir/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$dir/root"
runroot = "$dir/runroot"
CONF
    fi
    export HL_PODMAN_DIR=$dir
    export CONTAINERS_CONF=$dir/containers.conf
    export CONTAINERS_STORAGE_CONF=$dir/storage.conf
}

hl_podman() { podman "$@"; }

hl_podman_reset() (
    # A subshell without errexit: every step runs even when one before it found nothing.
    set +e
    local dir=${HL_PODMAN_DIR:?hl_podman_env first}
    podman rm -af -t 5 >/dev/null 2>&1
    podman pod rm -af >/dev/null 2>&1
    podman volume rm -af >/dev/null 2>&1
    podman network prune -f >/dev/null 2>&1
    podman rmi -af >/dev/null 2>&1
    podman system reset -f >/dev/null 2>&1
    # Overlay mounts left by a killed build would keep files busy.
    { grep -o " $dir/[^ ]*" /proc/mounts || true; } | sort -r | xargs -r -n1 umount -l 2>/dev/null
    rm -rf "$dir"
)

hl_base_image() {
    local cache=${XDG_CACHE_HOME:-$HOME/.cache}/hookline tar day
    podman image exists "$HL_BASE_IMAGE" && return 0
    day=$(date -u +%Y%m%d)
    tar=$cache/debian-bookworm-minbase-$day.tar
    if [ ! -s "$tar" ]; then
        mkdir -p "$cache"
        rm -f "$cache"/debian-bookworm-minbase-*.tar
        # --format: the temporary name has no .tar suffix to guess it from (a directory
        # would be made, and then cached under the .tar name).
        mmdebstrap --variant=minbase --format=tar --quiet bookworm "$tar.tmp.$$" >&2 \
            || { rm -rf "$tar.tmp.$$"; echo "base image: mmdebstrap failed" >&2; return 1; }
        mv "$tar.tmp.$$" "$tar"
    fi
    podman import --quiet "$tar" "$HL_BASE_IMAGE" >/dev/null
}
