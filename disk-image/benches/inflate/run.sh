#!/bin/sh
# Inflate backends on the grains of a streamOptimized VMDK, one build per
# flate2 backend. Usage: disk-image/benches/inflate/run.sh IMAGE.vmdk [MAX_GRAINS]
set -eu
cd "$(dirname "$0")"
for f in zlib-rs miniz zlib-ng; do
    cargo build --release --quiet --features "$f" --target-dir "target/$f" 2>/dev/null
done
for f in zlib-rs miniz zlib-ng; do
    "target/$f/release/inflate-bench" "$@"
done
