#!/bin/sh
# Boot discovery against the classic way of getting a kernel out of a disk.
#
#   boot-discovery/benches/bench-discovery.sh [APPLIANCE.ova ...]
#
# For each test-bed appliance: tar x the VMDK, qemu-img convert it to raw
# (not timed), then time, with a warm page cache, N runs of
#   ovf-run:   examples/discover DISK.raw (partition table, filesystems,
#              grub.cfg, default entry, kernel + initrd read into memory)
#   reference: debugfs -R 'cat grub.cfg' + 'dump kernel' + 'dump initrd'
#              on the partition holding them, paths given by hand (what a
#              person does after reading grub.cfg; it finds nothing itself).
set -eu
N=${N:-20}
here=$(cd "$(dirname "$0")/../.." && pwd)
cargo build -q --release -p boot-discovery --example discover --manifest-path "$here/Cargo.toml"
bin="$here/target/release/examples/discover"
[ $# -gt 0 ] || set -- "$HOME"/.cache/ovf-run/appliances/debian-bookworm-*.ova
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ms() { echo $(( ($2 - $1) / 1000000 )); }
for ova in "$@"; do
  name=$(basename "$ova" .ova)
  rm -rf "$tmp"/*
  tar -C "$tmp" -xf "$ova" --wildcards '*.vmdk'
  qemu-img convert -O raw "$tmp"/*.vmdk "$tmp/disk.raw"
  out=$("$bin" "$tmp/disk.raw" 2>/dev/null)
  kernel=$(echo "$out" | sed -n 's/^kernel: *\([^ ]*\) .*/\1/p')
  initrd=$(echo "$out" | sed -n 's/^initrd: *\([^ ]*\) .*/\1/p')
  # Partition start in bytes: the one the kernel was read from.
  part=$(echo "$out" | sed -n 's/^kernel:.* on partition \([0-9]*\) .*/\1/p')
  start=$(sfdisk -d "$tmp/disk.raw" | sed -n "s|^$tmp/disk.raw$part : start= *\([0-9]*\),.*|\1|p")
  dev="$tmp/disk.raw?offset=$((start * 512))"
  cfg=/boot/grub/grub.cfg; case "$kernel" in /boot/*) ;; *) cfg=/grub/grub.cfg;; esac
  t0=$(date +%s%N)
  i=0; while [ $i -lt "$N" ]; do "$bin" "$tmp/disk.raw" >/dev/null 2>&1; i=$((i+1)); done
  t1=$(date +%s%N)
  i=0; while [ $i -lt "$N" ]; do
    debugfs -R "cat $cfg" "$dev" >/dev/null 2>&1
    debugfs -R "dump $kernel $tmp/k" "$dev" >/dev/null 2>&1
    debugfs -R "dump $initrd $tmp/i" "$dev" >/dev/null 2>&1
    i=$((i+1))
  done
  t2=$(date +%s%N)
  ours=$(ms "$t0" "$t1"); ref=$(ms "$t1" "$t2")
  echo "$name: discover ${ours} ms / $N runs ($((ours / N)) ms each), debugfs ${ref} ms / $N runs ($((ref / N)) ms each), ratio $(echo "scale=2; $ref / $ours" | bc)x"
done
