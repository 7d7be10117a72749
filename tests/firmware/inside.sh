#!/bin/bash
# inside.sh WORK OVF_RUN MBR_OVA GRUBONLY_OVA: run inside the KVM test host
# by tests/firmware_boot.rs (one test host job for both boots). Prints
# "FIRMWARE-TEST <what> <result>" lines, then "FIRMWARE-TEST DONE"; exits
# non-zero on the first failure.
set -u
PREFIX=FIRMWARE-TEST
. "$(dirname "$0")/../lib/inside.sh"
work="$1" bin="$2" mbr="$3" grubonly="$4"
standin_uplink
export XDG_CACHE_HOME="$work/cache" XDG_RUNTIME_DIR=/run/firmware-test
rm -rf "$XDG_CACHE_HOME/ovf-run/overlays" "$work"/*.console "$work"/*.stderr "$work"/*.out
mkdir -p "$XDG_RUNTIME_DIR"

# 1. No Linux at all: the default (--firmware auto) falls back to SeaBIOS,
# whose GRUB prints the marker and halts (so the power button does nothing:
# the second signal kills it, as Ctrl-C twice would).
t0=$SECONDS
"$bin" --accept-eula --no-console --net none --console-log "$work/grubonly.console" \
    --timeout 10m "$grubonly" > "$work/grubonly.out" 2> "$work/grubonly.stderr" &
pid=$!
until grep -qa OVF-RUN-GRUB-ONLY "$work/grubonly.console" 2>/dev/null; do
    kill -0 $pid 2>/dev/null || fail "grubonly exited before the marker: $(tail -n 5 "$work/grubonly.stderr")"
    [ $((SECONDS - t0)) -lt 600 ] || fail "grubonly: no marker in 600 s"
    sleep 0.5
done
say "grubonly marker after $((SECONDS - t0)) s"
kill -TERM $pid; sleep 2; kill -TERM $pid 2>/dev/null
wait $pid
say "grubonly stopped (exit $?)"
grep -q 'through the BIOS instead' "$work/grubonly.stderr" ||
    fail "grubonly: no word of the BIOS fallback: $(cat "$work/grubonly.stderr")"
say "grubonly said why: $(grep -o 'no kernel to boot directly.*' "$work/grubonly.stderr" | cut -c1-100)"

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
