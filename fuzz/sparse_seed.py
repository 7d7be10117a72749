#!/usr/bin/env python3
"""Turn image files into seeds for the vhd/vhdx fuzz targets: the format of
harness/sparse_image.rs (image length u32, then offset u32 + length u16 +
bytes for every run of non-zero 4 KiB pages). Usage:
    sparse_seed.py IMAGE OUT
"""
import struct
import sys

PAGE = 4096
src, out = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
recs = [struct.pack("<I", len(data))]
i = 0
while i < len(data):
    if not any(data[i:i + PAGE]):
        i += PAGE
        continue
    start = i
    while i < len(data) and any(data[i:i + PAGE]) and i - start < 60 * 1024:
        i += PAGE
    chunk = data[start:i].rstrip(b"\0")
    recs.append(struct.pack("<IH", start, len(chunk)) + chunk)
open(out, "wb").write(b"".join(recs))
