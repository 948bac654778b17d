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

  hostile SOCKET MODE [--seconds S]
      A control-socket client that misbehaves for S seconds: "slow" sends a
      valid request one byte a second, "silent" connects and sends nothing,
      "noread" sends a request and never reads the reply, "halfway" sends half
      a request and disconnects (again and again), "flood" sends 10 MB
      without a newline. Prints what it did.

  send-frame IFACE DST SRC [--count N] [--ethertype T]
      [--interval S]
      Sends N frames DST <- SRC (MACs as aa:bb:..) out of IFACE, whatever
      IFACE's own MAC is (a spoofed source, say), S seconds apart (0.05).

  set-bclim IFACE N
      Sets a kernel macvlan's broadcast cutoff (IFLA_MACVLAN_BC_CUTOFF) over
      rtnetlink: the iproute2 6.1 here has no `bclim` keyword.

  storm IFACE [--seconds S]
      Sends broadcast frames out of IFACE (AF_PACKET) as fast as it can for S
      seconds; prints how many.

  udp-gso-send DST PORT [--segment B] [--per-send K] [--sends N]
      Sends N*K numbered datagrams of B bytes to DST:PORT, K to a send
      (UDP_SEGMENT, as QUIC stacks send: one super-frame where the device
      offers UDP segmentation), 2 ms between sends.

  udp-gso-recv BIND PORT COUNT [--segment B] [--timeout S] [--ready FILE]
      Binds BIND:PORT, creates FILE once bound, receives until COUNT distinct
      datagrams of udp-gso-send have come or S seconds have passed; prints
      "received R intact I" (intact: the size and every byte as sent). Exit
      0 when all COUNT came intact.

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


REQUEST = b'{"op":"show"}\n'


def control_socket(path: str):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


def send_with_netns(s, data: bytes) -> None:
    fd = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        socket.send_fds(s, [data], [fd])
    finally:
        os.close(fd)


def cmd_hostile(args) -> int:
    end = time.monotonic() + args.seconds
    done = 0
    try:
        if args.mode == "slow":
            s = control_socket(args.socket)
            send_with_netns(s, REQUEST[:1])
            for b in REQUEST[1:]:
                if time.monotonic() >= end:
                    break
                time.sleep(1)
                try:
                    s.send(bytes([b]))
                except OSError:
                    break  # the daemon gave up on us: fine
                done += 1
        elif args.mode == "silent":
            s = control_socket(args.socket)
            time.sleep(max(0.0, end - time.monotonic()))
        elif args.mode == "noread":
            held = []
            while time.monotonic() < end:
                s = control_socket(args.socket)
                send_with_netns(s, REQUEST)
                held.append(s)
                done += 1
                time.sleep(0.2)
        elif args.mode == "halfway":
            while time.monotonic() < end:
                s = control_socket(args.socket)
                send_with_netns(s, REQUEST[: len(REQUEST) // 2])
                s.close()
                done += 1
                time.sleep(0.05)
        elif args.mode == "flood":
            s = control_socket(args.socket)
            s.settimeout(max(0.1, end - time.monotonic()))
            chunk = b"a" * 65536
            try:
                send_with_netns(s, chunk)
                done = len(chunk)
                while done < 10 * 1024 * 1024 and time.monotonic() < end:
                    done += s.send(chunk)
            except OSError:
                pass  # refused (EMSGSIZE answer, then closed): fine
            time.sleep(max(0.0, end - time.monotonic()))
        else:
            print(f"umvnet hostile: unknown mode {args.mode}", file=sys.stderr)
            return 2
    except OSError as e:
        print(f"umvnet hostile {args.mode}: {e}", file=sys.stderr)
        return 2
    print(f"hostile {args.mode}: {done}")
    return 0


def mac_bytes(text: str) -> bytes:
    return bytes(int(x, 16) for x in text.split(":"))


def cmd_send_frame(args) -> int:
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(args.ethertype))
        sock.bind((args.iface, 0))
        frame = (mac_bytes(args.dst) + mac_bytes(args.src) +
                 struct.pack("!H", args.ethertype) + b"umacvlan-send-frame").ljust(60, b"\0")
        for i in range(args.count):
            if i and args.interval > 0:
                time.sleep(args.interval)
            sock.send(frame)
    except (OSError, ValueError) as e:
        print(f"umvnet send-frame: {e}", file=sys.stderr)
        return 2
    return 0


def nla(kind: int, payload: bytes) -> bytes:
    head = struct.pack("=HH", 4 + len(payload), kind)
    return (head + payload).ljust((4 + len(payload) + 3) & ~3, b"\0")


def cmd_set_bclim(args) -> int:
    IFLA_LINKINFO, IFLA_INFO_KIND, IFLA_INFO_DATA = 18, 1, 2
    IFLA_MACVLAN_BC_CUTOFF = 9
    NLA_F_NESTED = 0x8000
    RTM_NEWLINK, NLM_F_REQUEST, NLM_F_ACK = 16, 1, 4
    try:
        index = socket.if_nametoindex(args.iface)
        data = nla(IFLA_MACVLAN_BC_CUTOFF, struct.pack("=i", args.value))
        info = nla(IFLA_INFO_KIND, b"macvlan\0") + nla(IFLA_INFO_DATA | NLA_F_NESTED, data)
        body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, 0, 0)
        body += nla(IFLA_LINKINFO | NLA_F_NESTED, info)
        msg = struct.pack("=IHHII", 16 + len(body), RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, 1, 0)
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        sock.sendto(msg + body, (0, 0))
        reply = sock.recv(65536)
    except OSError as e:
        print(f"umvnet set-bclim: {e}", file=sys.stderr)
        return 2
    err = struct.unpack_from("=i", reply, 16)[0]
    if err != 0:
        print(f"umvnet set-bclim: {os.strerror(-err)}", file=sys.stderr)
        return 2
    return 0


def cmd_storm(args) -> int:
    try:
        mac = iface_mac(args.iface)
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88B5))
        sock.bind((args.iface, 0))
    except OSError as e:
        print(f"umvnet storm: {args.iface}: {e}", file=sys.stderr)
        return 2
    frame = (b"\xff" * 6 + mac + struct.pack("!H", 0x88B5)).ljust(60, b"\0")
    end = time.monotonic() + args.seconds
    sent = 0
    while time.monotonic() < end:
        for _ in range(256):
            try:
                sock.send(frame)
                sent += 1
            except OSError:
                pass  # a full queue: keep pushing
    print(f"storm: {sent} broadcasts in {args.seconds}s")
    return 0


UDP_SEGMENT = 103  # linux/udp.h


def gso_datagram(seq: int, size: int) -> bytes:
    """Datagram number seq of udp-gso-send: its number, then a pattern of it."""
    body = bytes((seq * 7 + i) & 0xFF for i in range(size - 4))
    return struct.pack("!I", seq) + body


def cmd_udp_gso_send(args) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((args.dst, args.port))
    s.setsockopt(socket.SOL_UDP, UDP_SEGMENT, args.segment)
    seq = 0
    for _ in range(args.sends):
        buf = b"".join(gso_datagram(seq + k, args.segment) for k in range(args.per_send))
        s.send(buf)
        seq += args.per_send
        time.sleep(0.002)
    return 0


def cmd_udp_gso_recv(args) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((args.bind, args.port))
    if args.ready:
        open(args.ready, "w").close()
    seen, intact = set(), set()
    deadline = time.monotonic() + args.timeout
    while len(seen) < args.count:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([s], [], [], left)[0]:
            break
        d = s.recv(65536)
        if len(d) < 4:
            continue
        seq = struct.unpack("!I", d[:4])[0]
        seen.add(seq)
        if len(d) == args.segment and d == gso_datagram(seq, args.segment):
            intact.add(seq)
    print(f"received {len(seen)} intact {len(intact)}")
    return 0 if len(intact) == args.count else 1


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
    ph = sub.add_parser("hostile")
    ph.add_argument("socket")
    ph.add_argument("mode")
    ph.add_argument("--seconds", type=float, default=5.0)
    pf = sub.add_parser("send-frame")
    pf.add_argument("iface")
    pf.add_argument("dst")
    pf.add_argument("src")
    pf.add_argument("--count", type=int, default=3)
    pf.add_argument("--ethertype", type=lambda v: int(v, 0), default=0x88B5)
    pf.add_argument("--interval", type=float, default=0.05)
    pb = sub.add_parser("set-bclim")
    pb.add_argument("iface")
    pb.add_argument("value", type=int)
    ps = sub.add_parser("storm")
    ps.add_argument("iface")
    ps.add_argument("--seconds", type=float, default=5.0)
    pg = sub.add_parser("udp-gso-send")
    pg.add_argument("dst")
    pg.add_argument("port", type=int)
    pg.add_argument("--segment", type=int, default=1000)
    pg.add_argument("--per-send", type=int, default=20)
    pg.add_argument("--sends", type=int, default=50)
    pr = sub.add_parser("udp-gso-recv")
    pr.add_argument("bind")
    pr.add_argument("port", type=int)
    pr.add_argument("count", type=int)
    pr.add_argument("--segment", type=int, default=1000)
    pr.add_argument("--timeout", type=float, default=10.0)
    pr.add_argument("--ready", default="")
    args = p.parse_args()
    if args.cmd == "udp-gso-send":
        return cmd_udp_gso_send(args)
    if args.cmd == "udp-gso-recv":
        return cmd_udp_gso_recv(args)
    if args.cmd == "ping":
        return cmd_ping(args)
    if args.cmd == "hostile":
        return cmd_hostile(args)
    if args.cmd == "storm":
        return cmd_storm(args)
    if args.cmd == "send-frame":
        return cmd_send_frame(args)
    if args.cmd == "set-bclim":
        return cmd_set_bclim(args)
    return cmd_arp_probe(args)


if __name__ == "__main__":
    sys.exit(main())
