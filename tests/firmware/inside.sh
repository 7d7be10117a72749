#!/bin/bash
# inside.sh WORK OVF_RUN MBR_OVA GRUBONLY_OVA: run inside the KVM test host
# by tests/firmware_boot.rs (one test host job for both boots). Prints
# "FIRMWARE-TEST <what> <result>" lines, then "FIRMWARE-TEST DONE"; exits
# non-zero on the first failure.
set -u
. "$(dirname "$0")/../net/unchroot.sh"
work="$1" bin="$2" mbr="$3" grubonly="$4"
say() { echo "FIRMWARE-TEST $*"; }
fail() { say "FAIL $*"; exit 1; }
left() { pgrep -x 'passt(\.avx2)?|ovf-run' | tr '\n' ' '; }

# passt needs an uplink to copy (a TAP nobody reads; nothing leaves).
ip link set lo up
{ ip tuntap add ext0 mode tap && ip addr add 10.0.2.15/24 dev ext0 &&
  ip link set ext0 up && ip route add default via 10.0.2.2 dev ext0 onlink; } ||
    fail "setup cannot make the stand-in uplink"
export XDG_CACHE_HOME="$work/cache" XDG_RUNTIME_DIR=/run/firmware-test
rm -rf "$XDG_CACHE_HOME/ovf-run/overlays" "$work"/*.console "$work"/*.stderr "$work"/*.out
mkdir -p "$XDG_RUNTIME_DIR"

# 1. No Linux at all: the default (--firmware auto) falls back to SeaBIOS,
# whose GRUB prints the marker and halts (so the power button does nothing
# and stop kills it after its grace time).
t0=$SECONDS
"$bin" -d --name grubonly --accept-eula --net none --console-log "$work/grubonly.console" \
    --ready-when console:OVF-RUN-GRUB-ONLY --ready-timeout 10m "$grubonly" \
    > "$work/grubonly.out" 2> "$work/grubonly.stderr" ||
    fail "grubonly exited $?: $(tail -n 5 "$work/grubonly.stderr"; tail -n 5 "$work/grubonly.console")"
grep -q 'through the BIOS instead' "$work/grubonly.stderr" ||
    fail "grubonly: no word of the BIOS fallback: $(cat "$work/grubonly.stderr")"
say "grubonly marker after $((SECONDS - t0)) s"
"$bin" stop --time 5 grubonly > /dev/null 2>&1
say "grubonly stopped"

# 2. The mbr appliance through SeaBIOS and its own GRUB: ready, serves its
# page through -p, powers off on the ACPI power button.
t0=$SECONDS
"$bin" -d --name bios --accept-eula --firmware bios --cpus 1 --memory 768 -p 0:80 \
    --ready-when http:80 --ready-timeout 15m --console-log "$work/bios.console" "$mbr" \
    > "$work/bios.out" 2> "$work/bios.stderr" ||
    fail "bios exited $?: $(tail -n 5 "$work/bios.stderr"; tail -n 20 "$work/bios.console")"
say "bios ready after $((SECONDS - t0)) s"
grep -q 'SeaBIOS' "$work/bios.console" || fail "bios: no SeaBIOS banner on the console"
addr="$("$bin" port bios 80)" || fail "bios port"
curl -s --max-time 20 "http://$addr/" | grep -q OVF-RUN-TEST-PAGE || fail "bios curl at $addr"
say "bios page ok"
out="$("$bin" stop --time 120 bios)" || fail "bios stop exited $?: $out"
say "bios stop: $out"

sleep 1
[ -z "$(left)" ] || fail "processes left: $(left)"
say "nothing left"
say DONE
