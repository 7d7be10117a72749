# Sourced by the tests' inside.sh scripts, which run in the KVM test host:
# say/fail with the test's line prefix ($PREFIX), left (ovf-run and passt
# processes still running) and standin_uplink (the test host has only
# loopback, and passt copies the host's addresses and default route: a TAP
# nobody reads stands in for an uplink; nothing leaves).
. "$(dirname "${BASH_SOURCE[0]}")/../net/unchroot.sh"
say() { echo "$PREFIX $*"; }
fail() { say "FAIL $*"; exit 1; }
# One pgrep per name: pgrep -x matches the 15-character process name, and
# refuses (matching nothing) a pattern longer than that.
left() { { pgrep -x passt; pgrep -x passt.avx2; pgrep -x ovf-run; } | tr '\n' ' '; }
standin_uplink() {
    ip link set lo up
    { ip tuntap add ext0 mode tap && ip addr add 10.0.2.15/24 dev ext0 &&
      ip link set ext0 up && ip route add default via 10.0.2.2 dev ext0 onlink; } ||
        fail "setup cannot make the stand-in uplink"
}
