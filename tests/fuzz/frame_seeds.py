#!/usr/bin/env python3
"""Writes the seed corpus of umacvlan_core_fuzz (src/core/port_fuzz.cc) to
tests/fuzz/corpus/frame/. Run it again after changing the input format there;
the output is deterministic.

The format, as port_fuzz.cc reads it:
  byte 0      bit 0: the lower filters unicast
  byte 1      devices - 1 (mod 6); device i is 02:00:00:00:00:0<i+1>
  byte 2+i    device i: mode = b % 5 (private vepa bridge passthru source),
              bcqueuelen = (b >> 3) % 3, bclim = b % 4 - 1, 0x20 nodst
              (source mode; the source list is 02:..:0<b%8> and the lower's
              02:..:ee), 0x40 down, 0x80 allmulti; all join 01:00:5e:00:00:01
  then frames, each after three bytes: bit 0 transmit (else receive), the
  sending device (mod 8), the frame length (mod 80). For the first frame
  these are bytes 5..7, shared with devices 3..5.
"""
import os
import struct

MODES = {"private": 0, "vepa": 1, "bridge": 2, "passthru": 3, "source": 4}
LOWER = "02:00:00:00:00:ee"
BROADCAST = "ff:ff:ff:ff:ff:ff"
GROUP = "01:00:5e:00:00:01"  # every device's subscription
OTHER_GROUP = "01:00:5e:00:00:02"  # nobody's


def mac(text):
    return bytes(int(part, 16) for part in text.split(":"))


def dev(n):
    return "02:00:00:00:00:%02x" % (n + 1)


def device(mode, down=False, allmulti=False, nodst=False, bcqueuelen=None, bclim=None):
    """The smallest byte that configures one device so (None: any value)."""
    for b in range(256):
        if (b % 5 == MODES[mode] and bool(b & 0x40) == down and bool(b & 0x80) == allmulti
                and (mode != "source" or bool(b & 0x20) == nodst)
                and bcqueuelen in (None, (b >> 3) % 3) and bclim in (None, b % 4 - 1)):
            return b
    raise ValueError("no byte for that device")


def frame(dst, src, ethertype=0x0800, payload=b"\x45\x00\x00\x14" + bytes(16)):
    return mac(dst) + mac(src) + struct.pack("!H", ethertype) + payload


def seed(devices, frames, unicast_filter=False):
    """frames: (direction, sending device, frame bytes); direction "tx" or "rx"."""
    assert 1 <= len(devices) <= 3, "devices 3..5 share bytes with the first frame"
    out = bytearray([1 if unicast_filter else 0, len(devices) - 1])
    out += bytes(devices) + bytes(3 - len(devices))
    for direction, sender, data in frames:
        assert len(data) < 80
        out += bytes([1 if direction == "tx" else 0, sender, len(data)]) + data
    return bytes(out)


def seeds():
    bridge = device("bridge")
    yield "bridge_unicast_between_devices", seed(
        [bridge, bridge], [("tx", 0, frame(dev(1), dev(0))), ("tx", 1, frame(dev(0), dev(1)))])
    yield "bridge_broadcast_from_device", seed(
        [bridge, bridge, bridge], [("tx", 0, frame(BROADCAST, dev(0), 0x0806))])
    yield "bridge_multicast_reflected_by_switch", seed(
        [bridge, bridge], [("rx", 0, frame(GROUP, dev(0))), ("rx", 0, frame(GROUP, dev(1)))])
    yield "vepa_pair_unicast_out_and_back", seed(
        [device("vepa"), device("vepa")],
        [("tx", 0, frame(dev(1), dev(0))), ("rx", 0, frame(dev(1), dev(0)))])
    yield "private_rx_unicast_and_broadcast", seed(
        [device("private"), device("private")],
        [("rx", 0, frame(dev(0), "02:00:00:00:00:99")), ("rx", 0, frame(BROADCAST, LOWER)),
         ("tx", 1, frame(GROUP, dev(1)))])
    yield "passthru_rx_any_unicast", seed(
        [device("passthru")],
        [("rx", 0, frame("02:00:00:00:00:77", "02:00:00:00:00:99")),
         ("tx", 0, frame(LOWER, dev(0)))])
    yield "source_nodst_with_bridge", seed(
        [device("source", nodst=True, bclim=1), bridge],
        [("rx", 0, frame(dev(1), "02:00:00:00:00:02")), ("rx", 0, frame(BROADCAST, LOWER))])
    yield "source_without_nodst", seed(
        [device("source", bclim=2), device("vepa")],
        [("rx", 0, frame(dev(1), LOWER)), ("rx", 0, frame(GROUP, "02:00:00:00:00:06"))])
    yield "down_device_gets_nothing", seed(
        [bridge, device("bridge", down=True)],
        [("tx", 0, frame(dev(1), dev(0))), ("tx", 0, frame(BROADCAST, dev(0)))])
    yield "allmulti_unsubscribed_group", seed(
        [device("vepa", allmulti=True), device("bridge")],
        [("rx", 0, frame(OTHER_GROUP, "02:00:00:00:00:99")), ("tx", 1, frame(OTHER_GROUP, dev(1)))])
    yield "broadcast_queue_limits", seed(
        [device("bridge", bcqueuelen=1, bclim=0), device("bridge", bcqueuelen=2, bclim=0),
         device("vepa", bcqueuelen=1, bclim=0)],
        [("rx", 0, frame(BROADCAST, "02:00:00:00:00:99"))] * 3)
    yield "unicast_filter_unknown_destination", seed(
        [device("vepa")], [("rx", 0, frame("02:00:00:00:00:55", "02:00:00:00:00:99"))],
        unicast_filter=True)
    yield "runts_and_vlan_tags", seed(
        [bridge, bridge],
        [("rx", 0, mac(dev(0))), ("tx", 0, frame(dev(1), dev(0))[:13]),
         ("rx", 0, frame(dev(1), LOWER, 0x8100, b"\x00\x05\x08\x00" + bytes(20))),
         ("tx", 1, frame(BROADCAST, dev(1), 0x88a8, b"\x00\x05\x81\x00\x00\x06\x08\x06"))])
    yield "mixed_modes_every_destination", seed(
        [device("private"), device("vepa"), bridge],
        [("tx", 2, frame(dev(0), dev(2))), ("tx", 2, frame(LOWER, dev(2))),
         ("tx", 1, frame(GROUP, dev(1))), ("rx", 0, frame(GROUP, LOWER)),
         ("rx", 0, frame(dev(2), dev(1))), ("tx", 0, frame(BROADCAST, "02:00:00:00:00:42"))])


def main():
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "frame")
    os.makedirs(out_dir, exist_ok=True)
    for name, data in seeds():
        assert len(data) < 2048
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
