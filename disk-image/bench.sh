#!/bin/sh
# Disk image benchmarks (numbers go to BENCHMARKS.md, "disk images").
# Usage: disk-image/bench.sh [WORKDIR] [SIZE_BYTES]   (default 1.5 GiB)
# Needs qemu-img. Makes a disk from /usr files with holes, converts it to
# streamOptimized VMDK with qemu-img, then compares, in one run:
#   - sequential read of the whole disk: ours vs `qemu-img convert -O raw`
#   - the same as a file export (both write a sparse raw file)
#   - random 4 KiB read latency on the VMDK and on the raw file
#   - time to open the test appliance's VMDK inside its .ova
#   - inflate backends (libdeflate, flate2 zlib-rs/miniz_oxide/zlib-ng)
set -eu
cd "$(dirname "$0")/.."
W=${1:-/var/tmp/ovf-run-disk-bench}
SIZE=${2:-1610612736}
mkdir -p "$W"
cargo build --release -p disk-image --example bench_disk >/dev/null 2>&1
B=target/release/examples/bench_disk
now() { date +%s.%N; }
if [ ! -f "$W/disk.vmdk" ]; then
    $B make "$W/disk.raw" "$SIZE"
    qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$W/disk.raw" "$W/disk.vmdk"
fi
ls -l "$W/disk.raw" "$W/disk.vmdk"
cat "$W/disk.vmdk" "$W/disk.raw" > /dev/null  # everything from the page cache
# Other work on the machine spoils the numbers: show the CPU idle share
# (vmstat "id" column) over 3 s before and after.
idle() { echo "cpu idle $(vmstat 1 4 | tail -n 3 | awk '{s += $15} END {print int(s / 3)}')% ($1)"; }
idle before
echo "== inflate backends on the first 2000 grains (one core, best of 5)"
disk-image/benches/inflate/run.sh "$W/disk.vmdk" 2000
echo "== sequential read, 3 rounds each"
for i in 1 2 3; do
    rm -f "$W/q.raw"
    /usr/bin/time -f "qemu-img convert -O raw: %e s (user %U s, sys %S s)" \
        qemu-img convert -O raw "$W/disk.vmdk" "$W/q.raw"
    rm -f "$W/o.raw"
    /usr/bin/time -f "  (export: user %U s, sys %S s)" $B export "$W/disk.vmdk" "$W/o.raw"
    $B seq "$W/disk.vmdk" 1048576
    $B seq "$W/disk.vmdk" 131072
done
idle after
cmp "$W/q.raw" "$W/o.raw" && echo "exports identical"
echo "== random 4 KiB reads"
$B random "$W/disk.vmdk" 20000
$B random "$W/disk.raw" 20000
echo "== open the appliance disk from its .ova"
for ova in "${XDG_CACHE_HOME:-$HOME/.cache}"/ovf-run/appliances/*.ova; do
    [ -f "$ova" ] || continue
    # offset and size of the .vmdk member, from tar's verbose block listing
    line=$(tar -tvR -f "$ova" | grep '\.vmdk$' | head -n1)
    block=$(echo "$line" | sed 's/^block \([0-9]*\):.*/\1/')
    size=$(echo "$line" | awk '{print $5}')
    $B open "$ova" $(( (block + 1) * 512 )) "$size" 50
    t0=$(now)
    qemu-img info "json:{\"driver\":\"vmdk\",\"file\":{\"driver\":\"raw\",\"offset\":$(( (block + 1) * 512 )),\"size\":$size,\"file\":{\"driver\":\"file\",\"filename\":\"$ova\"}}}" >/dev/null
    t1=$(now)
    echo "qemu-img info (process, for scale): $(echo "$t1 - $t0" | bc) s"
done
echo "== open a 256 GiB (virtual) streamOptimized VMDK, for size independence"
if [ ! -f "$W/big.vmdk" ]; then
    truncate -s 256G "$W/big.raw"
    printf 'hello' | dd of="$W/big.raw" bs=1 seek=$((100 << 30)) conv=notrunc 2>/dev/null
    qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$W/big.raw" "$W/big.vmdk"
    rm -f "$W/big.raw"
fi
$B open "$W/big.vmdk" 0 "$(stat -c %s "$W/big.vmdk")" 50
rm -f "$W/q.raw" "$W/o.raw"
