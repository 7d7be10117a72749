#!/bin/bash
# inside.sh WORK OVF_RUN OVA: run inside the KVM test host by
# tests/cloud_init.rs. Boots the cloud-init test appliance with
# --prop hostname=sandbox-42 --prop instance-id=i-42 and a base64 user-data
# (a #cloud-config writing a file and printing a line), under user-mode
# networking (cloud-final waits for network-online.target), waits for the
# appliance's "OVF-RUN-CLOUD-READY" line, then stops it with SIGTERM (ACPI
# power button). First mounts WORK/env.iso (the environment's CD-ROM image
# the test planned through the library) with this kernel's iso9660 driver
# and compares its ovf-env.xml with WORK/env.xml. Prints "CLOUD-INIT-TEST <what>" lines; exits non-zero on a
# failure. The console is WORK/console.
set -u
. "$(dirname "$0")/../net/unchroot.sh"
work="$1" bin="$2" ova="$3"
say() { echo "CLOUD-INIT-TEST $*"; }
# passt copies the host's addresses and default route: a stand-in uplink
# (a TAP nobody reads; nothing leaves).
ip link set lo up
{ ip tuntap add ext0 mode tap && ip addr add 10.0.2.15/24 dev ext0 &&
  ip link set ext0 up && ip route add default via 10.0.2.2 dev ext0 onlink; } ||
    { say "FAIL setup cannot make the stand-in uplink"; exit 1; }
export XDG_CACHE_HOME="$work/cache"
# The environment's ISO image, mounted by the test host's own kernel.
mkdir -p "$work/mnt"
if ! mount -t iso9660 -o loop,ro "$work/env.iso" "$work/mnt" 2> "$work/mount-err"; then
    say "FAIL iso: mount: $(cat "$work/mount-err")"
elif ! cmp -s "$work/mnt/ovf-env.xml" "$work/env.xml"; then
    say "FAIL iso: ovf-env.xml differs or is missing: $(ls -la "$work/mnt")"
else
    say "iso ok label=$(blkid -o value -s LABEL "$work/env.iso") ovf-env.xml matches"
fi
umount "$work/mnt" 2>/dev/null
user_data="$(base64 -w0 <<'YAML'
#cloud-config
write_files:
  - path: /var/lib/ovf-run-test/user-data
    content: "written-by-user-data\n"
runcmd:
  - [ sh, -c, 'echo "OVF-RUN-USERDATA $(cat /var/lib/ovf-run-test/user-data) on $(hostname)" > /dev/ttyS0' ]
YAML
)"
t0=$SECONDS
"$bin" --accept-eula --no-console --console-log "$work/console" \
    --prop hostname=sandbox-42 --prop instance-id=i-42 --prop "user-data=$user_data" \
    "$ova" 2> "$work/stderr" &
vmm=$!
for _ in $(seq 1500); do
    grep -q OVF-RUN-CLOUD-READY "$work/console" 2>/dev/null && break
    kill -0 $vmm 2>/dev/null || break
    sleep 1
done
if grep -q OVF-RUN-CLOUD-READY "$work/console" 2>/dev/null; then
    say "ready after $((SECONDS - t0)) s"
else
    say "FAIL no OVF-RUN-CLOUD-READY after $((SECONDS - t0)) s"
fi
# The user-data's runcmd line may come just before or after the marker.
sleep 2
kill -TERM $vmm 2>/dev/null
wait $vmm
status=$?
say "ovf-run exited $status"
