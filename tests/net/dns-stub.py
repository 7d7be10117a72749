#!/usr/bin/python3
"""dns-stub ADDR PORT LOG: the host's resolver for the network tests.

The KVM test host has no network, so the resolver that /etc/resolv.conf
names (and that passt forwards the guest's queries to) is this stub: it
answers A queries for names under .ovf-run.test with 192.0.2.53 and
NXDOMAIN for anything else, and logs every query it sees to LOG.
"""
import socket
import struct
import sys

ANSWER = bytes([192, 0, 2, 53])


def qname(msg, off):
    labels = []
    while True:
        n = msg[off]
        off += 1
        if n == 0:
            return ".".join(labels), off
        labels.append(msg[off:off + n].decode("ascii", "replace"))
        off += n


def main():
    addr, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    with open(log, "a", buffering=1) as out:
        print(f"listening on {addr}:{port}", file=out)
        while True:
            msg, peer = s.recvfrom(4096)
            if len(msg) < 12:
                continue
            qid, flags, qd = struct.unpack("!HHH", msg[:6])
            if qd != 1:
                continue
            name, end = qname(msg, 12)
            qtype = struct.unpack("!H", msg[end:end + 2])[0]
            question = msg[12:end + 4]
            ours = name.lower().endswith(".ovf-run.test")
            rcode = 0 if ours else 3
            answers = 1 if ours and qtype == 1 else 0
            hdr = struct.pack("!HHHHHH", qid, 0x8180 | (flags & 0x0100) | rcode, 1, answers, 0, 0)
            body = question
            if answers:
                body += struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + ANSWER
            s.sendto(hdr + body, peer)
            print(f"query {name} type {qtype} from {peer[0]}:{peer[1]} rcode {rcode} answers {answers}", file=out)


if __name__ == "__main__":
    main()
