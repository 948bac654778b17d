#!/usr/bin/env python3
"""Tiny network probes for the umacvlan scenario tests (no iputils needed).

Run inside a network namespace (ip netns exec NS python3 umvnet.py ...).

  ping DST [--deadline S] [--interval S]
      Send ICMP echo requests to DST every --interval seconds until the first
      matching echo reply arrives (exit 0) or --deadline seconds have passed
      (exit 1). Like `ping -c 1 -w DEADLINE -i INTERVAL`.

  arp-probe IFACE TARGET_IP [--count N] [--interval S] [--sender-ip IP]
      Send N broadcast ARP requests "who-has TARGET_IP" out of IFACE through an
      AF_PACKET socket, with IFACE's own MAC as source (like arping).

Exit codes: 0 success, 1 no reply, 2 usage or socket error.
"""
import argparse
import fcntl
import os
import select
import socket
import struct
import sys
import time


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def cmd_ping(args) -> int:
    dst = socket.gethostbyname(args.dst)
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    except OSError as e:
        print(f"umvnet ping: socket: {e}", file=sys.stderr)
        return 2
    ident = (os.getpid() ^ int(time.time() * 1000)) & 0xFFFF
    payload = b"umacvlan-scenario" + bytes(range(32))
    start = time.monotonic()
    deadline = start + args.deadline
    next_send = start
    seq = 0
    while True:
        now = time.monotonic()
        if now >= deadline:
            if not args.quiet:
                print(f"umvnet ping {dst}: no reply in {args.deadline}s ({seq} sent)")
            return 1
        if now >= next_send:
            seq += 1
            hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
            csum = checksum(hdr + payload)
            pkt = struct.pack("!BBHHH", 8, 0, csum, ident, seq) + payload
            try:
                sock.sendto(pkt, (dst, 0))
            except OSError:
                pass  # e.g. EHOSTUNREACH after a failed ARP resolution: keep trying
            next_send = now + args.interval
        timeout = max(0.0, min(next_send, deadline) - time.monotonic())
        r, _, _ = select.select([sock], [], [], timeout)
        if not r:
            continue
        try:
            data, addr = sock.recvfrom(65535)
        except OSError:
            continue
        if addr[0] != dst or len(data) < 20:
            continue
        ihl = (data[0] & 0x0F) * 4
        icmp = data[ihl:ihl + 8]
        if len(icmp) < 8:
            continue
        typ, code, _, rid, rseq = struct.unpack("!BBHHH", icmp)
        if typ == 0 and rid == ident:
            if not args.quiet:
                ms = (time.monotonic() - start) * 1000
                print(f"umvnet ping {dst}: reply seq={rseq} after {ms:.1f} ms")
            return 0


def iface_mac(ifname: str) -> bytes:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        info = fcntl.ioctl(s.fileno(), 0x8927,  # SIOCGIFHWADDR
                           struct.pack("256s", ifname.encode()[:15]))
    finally:
        s.close()
    return info[18:24]


def cmd_arp_probe(args) -> int:
    try:
        mac = iface_mac(args.iface)
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
        sock.bind((args.iface, 0))
    except OSError as e:
        print(f"umvnet arp-probe: {args.iface}: {e}", file=sys.stderr)
        return 2
    spa = socket.inet_aton(args.sender_ip)
    tpa = socket.inet_aton(args.target)
    eth = b"\xff" * 6 + mac + struct.pack("!H", 0x0806)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + spa + b"\0" * 6 + tpa
    frame = (eth + arp).ljust(60, b"\0")
    for i in range(args.count):
        if i:
            time.sleep(args.interval)
        try:
            sock.send(frame)
        except OSError as e:
            print(f"umvnet arp-probe: send: {e}", file=sys.stderr)
            return 2
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("ping")
    pp.add_argument("dst")
    pp.add_argument("--deadline", type=float, default=2.0)
    pp.add_argument("--interval", type=float, default=0.2)
    pp.add_argument("-q", "--quiet", action="store_true")
    pa = sub.add_parser("arp-probe")
    pa.add_argument("iface")
    pa.add_argument("target")
    pa.add_argument("--count", type=int, default=2)
    pa.add_argument("--interval", type=float, default=0.2)
    pa.add_argument("--sender-ip", default="0.0.0.0")
    args = p.parse_args()
    if args.cmd == "ping":
        return cmd_ping(args)
    return cmd_arp_probe(args)


if __name__ == "__main__":
    sys.exit(main())
