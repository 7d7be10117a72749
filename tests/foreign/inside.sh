#!/bin/bash
# inside.sh WORK OVF_RUN VMWARE_OVA UEFI_OVA BTRFS_OVA: run inside the KVM
# test host by tests/foreign_appliances.rs (one test host job for the three
# boots). Each appliance is started as a user would, `ovf-run APPLIANCE.ova`
# with the package's own hardware (-d, --ready-when and -p only let the
# script wait and look), to the appliance's web page, then stopped with the
# ACPI power button. Prints "FOREIGN-TEST <what> <result>" lines, then
# "FOREIGN-TEST DONE"; exits non-zero on the first failure.
set -u
PREFIX=FOREIGN-TEST
. "$(dirname "$0")/../lib/inside.sh"
work="$1" bin="$2"; shift 2
standin_uplink
export XDG_CACHE_HOME="$work/cache" XDG_RUNTIME_DIR=/run/foreign-test
rm -rf "$XDG_CACHE_HOME/ovf-run/overlays" "$work"/*.console "$work"/*.stderr "$work"/*.out
mkdir -p "$XDG_RUNTIME_DIR"

for ova in "$@"; do
    v="$(basename "$ova" .ova)"; v="${v#debian-bookworm-}"
    t0=$SECONDS
    "$bin" -d --name "$v" --accept-eula -p 0:80 --ready-when http:80 --ready-timeout 15m \
        --console-log "$work/$v.console" "$ova" > "$work/$v.out" 2> "$work/$v.stderr" ||
        fail "$v exited $?: $(tail -n 5 "$work/$v.stderr"; tail -n 30 "$work/$v.console")"
    say "$v ready after $((SECONDS - t0)) s"
    addr="$("$bin" port "$v" 80)" || fail "$v port"
    curl -s --max-time 20 "http://$addr/" | grep -q OVF-RUN-TEST-PAGE || fail "$v: no page at $addr"
    say "$v page ok"
    # The vmware appliance must power off on the ACPI power button. The
    # others carry Debian's generic initramfs (MODULES=most): in the nested
    # TCG test host their udev is still loading modules minutes after
    # multi-user.target, the ACPI button driver among them (seen at 337 s),
    # so a press before it is lost, as on any PC; stop then kills the VM
    # after its --time, which is reported, not failed.
    if [ "$v" = vmware ]; then
        out="$("$bin" stop --time 120 "$v")" || fail "$v stop exited $?: $out"
        grep -q 'exited with 0 (poweroff)' <<<"$out" || fail "$v did not power off: $out"
    else
        out="$("$bin" stop --time 60 "$v")" || fail "$v stop exited $?: $out"
    fi
    say "$v stop: $out"
done

sleep 1
[ -z "$(left)" ] || fail "processes left: $(left)"
say "nothing left"
say DONE
