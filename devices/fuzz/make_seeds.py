#!/usr/bin/env python3
"""Write the seed corpus of the virtio fuzz targets (seeds/virtio_*), and
the regression inputs for the rings that once hung them (regressions/).

Each seed is a guest as `harness/mod.rs` reads it: a 32-byte header (queue
sizes and ring addresses as a driver programs them, negotiated features,
the net backend's frames) and the guest memory image, laid out the way
Linux's virtio drivers lay out split rings: descriptor table, available
ring, used ring, then request headers and buffers. Run from this folder;
the output is deterministic.
"""
import os
import struct

MEM = 0x10000
W, NEXT, INDIRECT = 2, 1, 4
Q0 = (0x1000, 0x2000, 0x3000)   # desc, avail, used
Q1 = (0x4000, 0x5000, 0x6000)


class Guest:
    def __init__(self, size=16):
        self.mem = bytearray(MEM)
        self.size = size
        self.hdr = bytearray(32)

    def put(self, addr, data):
        self.mem[addr:addr + len(data)] = data

    def ring(self, n, q, chains, flags=0, event_idx=None):
        """Queue `n` at addresses `q`, offering `chains` (lists of
        (addr, len, flags)); descriptors are numbered in order."""
        desc, avail, used = q
        struct.pack_into("<HHHH", self.hdr, n * 8, self.size, desc, avail, used)
        i = 0
        heads = []
        for chain in chains:
            heads.append(i)
            for k, (addr, length, f) in enumerate(chain):
                last = k == len(chain) - 1
                nxt = 0 if last else i + 1
                f = f | (0 if last else NEXT)
                self.put(desc + 16 * i, struct.pack("<QIHH", addr, length, f, nxt))
                i += 1
        self.put(avail, struct.pack("<HH", flags, len(heads)))
        for k, h in enumerate(heads):
            self.put(avail + 4 + 2 * k, struct.pack("<H", h))
        if event_idx is not None:
            self.put(avail + 4 + 2 * self.size, struct.pack("<H", event_idx))

    def write(self, target, name, kind="seeds"):
        os.makedirs(f"{kind}/{target}", exist_ok=True)
        # Trailing zeros are implied (memory starts zeroed).
        image = bytes(self.mem).rstrip(b"\0")
        with open(f"{kind}/{target}/{name}", "wb") as f:
            f.write(bytes(self.hdr) + image)


def blk_header(kind, sector):
    return struct.pack("<IIQ", kind, 0, sector)


def blk(name, event_idx=False, read_only=False, indirect=False):
    g = Guest()
    g.hdr[16] = (1 if event_idx else 0) | (4 if read_only else 0)
    g.put(0x7000, blk_header(0, 1))          # read sectors 1-2
    g.put(0x7010, blk_header(1, 3))          # write sector 3
    g.put(0x7020, blk_header(4, 0))          # flush
    g.put(0x7030, blk_header(8, 0))          # get id
    g.put(0x9400, bytes([0xab]) * 512)
    chains = [
        [(0x7000, 16, 0), (0x9000, 1024, W), (0xa000, 1, W)],
        [(0x7010, 16, 0), (0x9400, 512, 0), (0xa001, 1, W)],
        [(0x7020, 16, 0), (0xa002, 1, W)],
        [(0x7030, 16, 0), (0x9800, 20, W), (0xa003, 1, W)],
        # A buffer across the two memory regions (0x8000).
        [(0x7000, 16, 0), (0x7e00, 1024, W), (0xa004, 1, W)],
    ]
    if indirect:
        # One chain in an indirect table at 0xb000.
        table = b"".join([
            struct.pack("<QIHH", 0x7000, 16, NEXT, 1),
            struct.pack("<QIHH", 0x9000, 512, W | NEXT, 2),
            struct.pack("<QIHH", 0xa005, 1, W, 0),
        ])
        g.put(0xb000, table)
        chains.append([(0xb000, len(table), INDIRECT)])
    g.ring(0, Q0, chains, event_idx=0 if event_idx else None)
    g.write("virtio_blk", name)


def rng(name, event_idx=False):
    g = Guest()
    g.hdr[16] = 1 if event_idx else 0
    g.ring(0, Q0, [
        [(0x8000, 64, W)],
        [(0x9000, 64, 0)],                    # readable: gets nothing
        [(0x9100, 16, W), (0x9200, 4096, W)],
    ], event_idx=0 if event_idx else None)
    g.write("virtio_rng", name)


def net(name, mergeable=True, event_idx=False, frames=(60, 1500), full=0):
    g = Guest(size=16)
    g.hdr[16] = (1 if event_idx else 0) | (2 if mergeable else 0)
    g.hdr[17] = len(frames)
    for i, n in enumerate(frames):
        struct.pack_into("<H", g.hdr, 18 + 2 * i, n)
    g.hdr[26] = full
    # Receive buffers, as Linux posts them: one writable buffer each.
    size = 1526 if not mergeable else 1024
    g.ring(0, Q0, [[(0x8000 + i * 0x800, size, W)] for i in range(4)],
           event_idx=0 if event_idx else None)
    # Two frames to send: header then an Ethernet frame, split in two.
    eth = bytes.fromhex("ffffffffffff525400123456" "0806") + bytes(46)
    g.put(0xa000, bytes(12) + eth[:20])
    g.put(0xa100, eth[20:])
    g.put(0xa200, bytes(12) + eth)
    g.ring(1, Q1, [
        [(0xa000, 32, 0), (0xa100, len(eth) - 20, 0)],
        [(0xa200, 12 + len(eth), 0)],
    ], event_idx=0 if event_idx else None)
    g.write("virtio_net", name)


blk("rw-four-requests")
blk("ro-event-idx", event_idx=True, read_only=True)
blk("indirect", indirect=True)
rng("three-chains")
rng("event-idx", event_idx=True)
net("mergeable")
net("single-buffer-event-idx", mergeable=False, event_idx=True)
net("backend-full", full=0b101, frames=(14, 65535, 3000, 60))


# Regressions: rings whose available index says chains wait while none can
# be taken. The drain loop (worker::drain_queue) and the transmit loop
# spun forever on them before they were refused as broken rings.
def stuck(target, name, avail_idx=None, avail_at=None, queue=0):
    g = Guest()
    q = Q1 if queue == 1 else Q0
    if target == "virtio_net":
        g.ring(0, Q0, [[(0x8000, 2048, W)]])
        g.ring(1, Q1, [[(0xa000, 74, 0)]])
    else:
        g.ring(0, Q0, [[(0x8000, 64, W)]])
    if avail_idx is not None:
        g.put(q[1] + 2, struct.pack("<H", avail_idx))
    if avail_at is not None:
        # The avail ring at guest address 0: virtio-queue takes that for
        # "not set up" and gives no chain, though the index is readable.
        n = queue * 8
        struct.pack_into("<H", g.hdr, n + 4, avail_at)
        g.put(avail_at + 2, struct.pack("<H", 1))
    g.write(target, name, kind="regressions")


stuck("virtio_blk", "avail-index-past-queue-size", avail_idx=1000)
stuck("virtio_blk", "avail-ring-at-address-0", avail_at=0)
stuck("virtio_rng", "avail-index-past-queue-size", avail_idx=1000)
stuck("virtio_net", "tx-avail-index-past-queue-size", avail_idx=1000, queue=1)
stuck("virtio_net", "tx-avail-ring-at-address-0", avail_at=0, queue=1)
