# Shared paths and helpers for the ovf-run test-bed scripts.
# Sourced, never executed. Everything cached lives under $OVF_RUN_CACHE
# (default ~/.cache/ovf-run) so a fresh clone reuses what a previous run built.

OVF_RUN_CACHE="${OVF_RUN_CACHE:-$HOME/.cache/ovf-run}"
OVF_RUN_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
QEMU_PREFIX="$OVF_RUN_CACHE/qemu"
# OVF_RUN_TESTHOST_DIR selects another test host build (e.g. one made with
# OVF_RUN_TESTHOST_KERNEL=bookworm by scripts/build-testhost, for comparisons).
TESTHOST_DIR="${OVF_RUN_TESTHOST_DIR:-$OVF_RUN_CACHE/testhost}"
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

# A private apt configuration under the cache: the machine's sources plus
# "<codename>-backports" on the same mirrors (derived by
# scripts/lib/backports-sources.py), so nothing in /etc/apt changes. Used for
# the private QEMU (scripts/setup-deps) and the test host's kernel
# (scripts/build-testhost).
APT_DIR="$OVF_RUN_CACHE/apt"
apt_private() {
    apt-get -o APT::Sandbox::User=root -o Dir::Etc::SourceParts="$APT_DIR/sources.list.d" \
        -o Dir::Etc::SourceList="$APT_DIR/sources.list" \
        -o Dir::State::Lists="$APT_DIR/lists" "$@"
}
apt_private_cache() {
    apt-cache -o Dir::Etc::SourceParts="$APT_DIR/sources.list.d" \
        -o Dir::Etc::SourceList="$APT_DIR/sources.list" \
        -o Dir::State::Lists="$APT_DIR/lists" "$@"
}
private_apt_sources() {
    . /etc/os-release
    local codename="${VERSION_CODENAME:?/etc/os-release names no VERSION_CODENAME}"
    rm -rf "$APT_DIR/sources.list.d"
    mkdir -p "$APT_DIR/sources.list.d" "$APT_DIR/lists/partial"
    cp /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list "$APT_DIR/sources.list.d/" 2>/dev/null || true
    cat /etc/apt/sources.list > "$APT_DIR/sources.list" 2>/dev/null || : > "$APT_DIR/sources.list"
    python3 "$OVF_RUN_REPO/scripts/lib/backports-sources.py" "$codename" \
        "$APT_DIR/sources.list" "$APT_DIR"/sources.list.d/*.sources \
        > "$APT_DIR/sources.list.d/ovf-run-backports.sources" ||
        die "cannot derive a $codename-backports source from the machine's apt sources"
    apt_private update -q >/dev/null || apt_private update
}
# Refresh the private lists unless they are there already.
private_apt_ready() {
    ls "$APT_DIR/lists/"*backports*Packages* >/dev/null 2>&1 || private_apt_sources
}


# Lines in a file; 0 when it does not exist.
count_lines() {
    if [ -f "$1" ]; then wc -l < "$1"; else echo 0; fi
}
