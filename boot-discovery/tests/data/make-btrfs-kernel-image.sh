#!/bin/bash
# Make tests/data/btrfs-kernel-written.sparse: a btrfs image whose files
# were written by the Linux kernel's btrfs driver (loop mount), for what
# mkfs.btrfs --rootdir cannot make: holes (no extent), preallocated
# extents (fallocate), and compressed extents as the kernel writes them
# (zlib/lzo/zstd set per file with `btrfs property set`, inline and
# regular). Needs root, a kernel
# with btrfs and loop devices, and mkfs.btrfs; run by hand, the output is
# committed (tests/btrfs.rs reads it and knows its contents).
# The image is stored in the sparse form of fuzz/sparse.rs (written by
# fuzz/sparse_seed.py at the repository top), ~225 KiB instead of 128 MiB.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
top="$(cd "$here/../../.." && pwd)"
mkfs="${MKFS_BTRFS:-$HOME/.cache/ovf-run/btrfs-progs/sbin/mkfs.btrfs}"
tmp="$(mktemp -d)"
cleanup() { mountpoint -q "$tmp/mnt" && umount "$tmp/mnt"; rm -rf "$tmp"; }
trap cleanup EXIT
img="$tmp/img"
truncate -s 128M "$img"
"$mkfs" -q -f -n 4096 -m single -d single -L kernel-written -U 0c8f6a1e-44b1-4e25-9a3c-5d7f0b2e6c91 "$img"
mkdir "$tmp/mnt"
text='
def text(n):
    s, i = "", 0
    while len(s) < n:
        s += "line %d of a compressible file\n" % i
        i += 1
    return s[:n].encode()
'
btrfs="$(dirname "$mkfs")/../bin/btrfs"
mount -o loop "$img" "$tmp/mnt"
for algo in zlib lzo zstd; do
    for f in "$algo.txt" "$algo-inline.txt"; do
        : > "$tmp/mnt/$f"
        "$btrfs" property set "$tmp/mnt/$f" compression "$algo"
    done
done
(cd "$tmp/mnt" && python3 -c "$text
import os
with open('holey', 'wb') as f:
    f.write(b'A' * 5000); f.seek(1 << 20); f.write(b'B' * 5000); f.truncate(3 << 20)
with open('prealloc', 'wb') as f:
    os.posix_fallocate(f.fileno(), 0, 1 << 20); f.seek(8192); f.write(b'C' * 100)
for algo in ['zlib', 'lzo', 'zstd']:
    open(algo + '.txt', 'ab').write(text(200000))
    open(algo + '-inline.txt', 'ab').write(text(2000))
")
umount "$tmp/mnt"
"$btrfs" inspect-internal dump-tree -t 5 "$img" | grep -c 'compression [123]' >&2
python3 "$top/fuzz/sparse_seed.py" "$img" "$here/btrfs-kernel-written.sparse"
ls -l "$here/btrfs-kernel-written.sparse"
