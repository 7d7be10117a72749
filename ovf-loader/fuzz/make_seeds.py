#!/usr/bin/env python3
"""Write the seeds of the gzip and chunks fuzz targets (seeds/gzip,
seeds/chunks) and the chunks regression inputs (regressions/chunks). gzip streams come from Python's gzip module (as
`gzip -c disk.img` would write them), the qcow2 inside one from qemu-img
(../../fuzz/seeds/qcow2). Formats: harness/gzip.rs, harness/chunks.rs.
Run from this folder; the output is deterministic (mtime 0).
"""
import gzip
import os
import struct


def disk(n):
    """A small disk: an MBR-like first sector, then a pattern."""
    d = bytearray(n)
    d[510:512] = b"\x55\xaa"
    for i in range(512, n, 4096):
        d[i:i + 16] = struct.pack("<QQ", i, i * 7)
    return bytes(d)


def gz(data):
    return gzip.compress(data, compresslevel=6, mtime=0)


def write(target, name, data, kind="seeds"):
    os.makedirs(f"{kind}/{target}", exist_ok=True)
    with open(f"{kind}/{target}/{name}", "wb") as f:
        f.write(data)


def kib(n):
    return struct.pack("<I", n >> 10)


raw = disk(64 << 10)
write("gzip", "raw-64k", kib(len(raw)) + gz(raw))
write("gzip", "two-members-128k", kib(128 << 10) + gz(raw) + gz(disk(64 << 10)))
qcow = open("../../fuzz/seeds/qcow2/data-1m.qcow2", "rb").read()
write("gzip", "qcow2-1m", kib(1 << 20) + gz(qcow))
write("gzip", "truncated", kib(len(raw)) + gz(raw)[:200])
# A bomb: 20 MiB of zeros in ~20 KB, declared 1 MiB: refused.
write("gzip", "bomb-20m-declared-1m", kib(1 << 20) + gz(bytes(20 << 20)))
write("gzip", "undeclared-capacity", kib(0) + gz(raw))


def chunked(name, chunk_size, total, lens=None, declared=True, body=None, kind="seeds"):
    if lens is None:
        lens = [chunk_size] * (total // chunk_size)
        if total % chunk_size:
            lens.append(total % chunk_size)
    body = body if body is not None else disk(sum(lens))
    head = struct.pack("<HIBB", chunk_size, total, 1 if declared else 0, len(lens))
    data = head + b"".join(struct.pack("<H", n) for n in lens) + body
    write("chunks", name, data, kind)


# As ovftool splits (there with chunkSize in GiB), scaled down.
chunked("three-even", 4096, 3 * 4096)
chunked("short-last", 4096, 2 * 4096 + 100)
chunked("one-chunk", 4096, 1000)
chunked("undeclared-size", 4096, 8192, declared=False)
chunked("missing-last", 4096, 3 * 4096, lens=[4096, 4096])
# Regressions: a cut last chunk, accepted before check_chunks compared the
# total with ovf:size (found by the target's total == ovf:size check); and a
# chunkSize of 0 (refused by the descriptor parser; check_chunks, which
# divides by it, now refuses it first too).
chunked("cut-last", 4096, 2 * 4096 + 100, lens=[4096, 4096, 60], kind="regressions")
chunked("chunk-size-0", 0, 100, lens=[100], kind="regressions")
