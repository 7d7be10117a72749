# Shared paths and helpers for the ovf-run test-bed scripts.
# Sourced, never executed. Everything cached lives under $OVF_RUN_CACHE
# (default ~/.cache/ovf-run) so a fresh clone reuses what a previous run built.

OVF_RUN_CACHE="${OVF_RUN_CACHE:-$HOME/.cache/ovf-run}"
OVF_RUN_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
QEMU_PREFIX="$OVF_RUN_CACHE/qemu"
TESTHOST_DIR="$OVF_RUN_CACHE/testhost"
APPLIANCE_DIR="$OVF_RUN_CACHE/appliances"
# One TCG test host at a time per machine (2 cores), whatever the cache.
TESTHOST_LOCK="$HOME/.cache/ovf-run/testhost.lock"

log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The QEMU >= 8 unpacked into a private prefix by scripts/setup-deps (10.0
# from bookworm-backports on bookworm). Firmware lives in the seabios and
# ipxe-qemu packages, unpacked beside it; -L points QEMU at all three.
qemu_system() {
    local bin="$QEMU_PREFIX/usr/bin/qemu-system-x86_64"
    [ -x "$bin" ] || die "QEMU prefix missing at $QEMU_PREFIX: run scripts/setup-deps"
    "$bin" -L "$QEMU_PREFIX/usr/share/qemu" -L "$QEMU_PREFIX/usr/share/seabios" \
        -L "$QEMU_PREFIX/usr/lib/ipxe/qemu" "$@"
}

# Hash of the given files: used as a version stamp so that editing a build
# script (or a template it uses) triggers a rebuild of what it produced.
stamp_of() { cat "$@" | sha256sum | cut -c1-12; }

# True when every named Debian package is installed.
have_pkgs() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || return 1
    done
}

# apt-get download into the current directory, resolving a metapackage such
# as linux-image-amd64 to the versioned package it depends on.
apt_resolve_meta() {
    apt-cache depends "$1" | awk '/^ *Depends:/ {print $2; exit}'
}
