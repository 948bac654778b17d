#!/usr/bin/env python3
"""Turn a device's TX checksum offload on or off, or show it (what
`ethtool -K IFACE tx on|off` does; ethtool itself is not needed).

  txcsum.py IFACE on|off|show      (run in the device's namespace)

bench/run.sh turns it off on the bridge port facing the lower during vde's
rounds: the kernel then segments and checksums what the outside host sends
before it reaches the lower, as a wire would. vde_pcapplug reads frames
with libpcap, which knows neither GSO super-frames nor partial checksums;
the kernel's macvlan and umacvlan take those whole and run with the
offload on. Uses the legacy ETHTOOL_[GS]TXCSUM ioctl; TSO follows (the
kernel drops it without checksum offload and brings it back with it).
"""
import array
import fcntl
import socket
import struct
import sys

SIOCETHTOOL = 0x8946
ETHTOOL_GTXCSUM = 0x16
ETHTOOL_STXCSUM = 0x17
IFREQ_SIZE = 40


def ethtool_value(ifname: str, cmd: int, data: int = 0) -> int:
    value = array.array("I", [cmd, data])  # struct ethtool_value
    ifreq = struct.pack("16sP", ifname.encode(), value.buffer_info()[0])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s, SIOCETHTOOL, ifreq.ljust(IFREQ_SIZE, b"\0"))
    return value[1]


def main(argv) -> int:
    if len(argv) != 3 or argv[2] not in ("on", "off", "show"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    ifname, what = argv[1], argv[2]
    try:
        if what != "show":
            ethtool_value(ifname, ETHTOOL_STXCSUM, 1 if what == "on" else 0)
        print("on" if ethtool_value(ifname, ETHTOOL_GTXCSUM) else "off")
    except OSError as e:
        print(f"txcsum.py: {ifname}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
