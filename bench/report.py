#!/usr/bin/env python3
"""Parsers and the final table for bench/run.sh (standard library only).

  report.py iperf FILE
      FILE is `iperf3 -J` output: prints "GBIT_PER_S BYTES SECONDS" of what
      the receiver got (end.sum_received) and the sender's TCP
      retransmissions (end.sum_sent.retransmits, -1 when absent); exit 1
      when there is no received sum.
  report.py ping FILE
      FILE is iputils ping output: prints "P50_US P99_US RECEIVED SENT" from
      the per-packet "time=" values (nearest-rank percentiles); exit 1 when
      no reply came back.
  report.py compare JSON...
      The medians of several runs' JSON files side by side, one line per
      figure and implementation.
  report.py meta KEY=VALUE...
      Prints a JSON object of the pairs (values that look like numbers
      become numbers).
  report.py table RAW CORE META OUT
      RAW: one JSON object a line, one per measurement
      ({"figure", "impl", "repeat", "value", "detail"}; value a number, or a
      word such as "timeout" or "failed"); CORE: Google Benchmark JSON of the
      core micro-benchmark (may be missing); META: a JSON object describing
      the run. Prints the table (medians, ratios to the kernel and to vde)
      and writes OUT: the meta, the core results, every run and the medians.

Nothing here judges a figure: the bench reports, it never fails on one.
"""
import json
import math
import re
import statistics
import sys

IMPLS = ("kernel", "umacvlan", "vde")

# key, label ({n}: the scale's device count; {cc2}: the second congestion
# control), unit as recorded, factor from it to the label's unit, decimals.
FIGURES = [
    ("tcp_dd", "TCP dev>dev (Gbit/s)", "Gbit/s", 1, 2),
    ("tcp_dh", "TCP dev>host (Gbit/s)", "Gbit/s", 1, 2),
    ("tcp_hd", "TCP host>dev (Gbit/s)", "Gbit/s", 1, 2),
    ("tcp_dd_cc2", "TCP dev>dev, {cc2} (Gbit/s)", "Gbit/s", 1, 2),
    ("tcp_dh_cc2", "TCP dev>host, {cc2} (Gbit/s)", "Gbit/s", 1, 2),
    ("udp_dd", "UDP 64B dev>dev (kpps rx)", "datagrams/s", 1e-3, 0),
    ("udp_dh", "UDP 64B dev>host (kpps rx)", "datagrams/s", 1e-3, 0),
    ("udp_gso_dd", "UDP GSO 1400B dev>dev (kpps rx)", "datagrams/s", 1e-3, 0),
    ("udp_gso_dh", "UDP GSO 1400B dev>host (kpps rx)", "datagrams/s", 1e-3, 0),
    ("ping_p50", "ping dev>dev p50 (us)", "us", 1, 0),
    ("ping_p99", "ping dev>dev p99 (us)", "us", 1, 0),
    ("cpu_per_gbit", "forwarder CPU s/Gbit, TCP dev>dev", "CPU s/Gbit", 1, 3),
    ("scale_create", "create {n} devices (s)", "s", 1, 2),
    ("scale_delete", "delete {n} devices (s)", "s", 1, 2),
    ("scale_tcp_dd", "TCP dev>dev, {n} devs (Gbit/s)", "Gbit/s", 1, 2),
    ("scale_udp_dd", "UDP 64B dev>dev, {n} devs (kpps)", "datagrams/s", 1e-3, 0),
    ("scale_bcast", "bcast to {n} devs (kcopies/s)", "copies/s", 1e-3, 0),
    ("scale_base_tcp_dd", "TCP dev>dev, 2 devs, scale rounds (Gbit/s)", "Gbit/s", 1, 2),
    ("scale_base_udp_dd", "UDP 64B dev>dev, 2 devs, scale rounds (kpps)", "datagrams/s", 1e-3, 0),
    ("scale_tcp_per_base", "TCP dev>dev, {n} devs / 2 devs", "quotient", 1, 2),
    ("scale_udp_per_base", "UDP 64B dev>dev, {n} devs / 2 devs", "quotient", 1, 2),
    ("rss_1", "daemon RSS, 1 device (MiB)", "kB", 1 / 1024, 1),
    ("rss_100", "daemon RSS, 100 devices (MiB)", "kB", 1 / 1024, 1),
    ("rss_n", "daemon RSS, {n} devices (MiB)", "kB", 1 / 1024, 1),
    ("idle_cpu", "daemon idle CPU, {n} devs (% core)", "% of a core", 1, 2),
]


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def cmd_iperf(path):
    try:
        with open(path) as f:
            d = json.load(f)
        s = d["end"]["sum_received"]
        retransmits = int(d["end"].get("sum_sent", {}).get("retransmits", -1))
        print(f'{s["bits_per_second"] / 1e9:.4f} {int(s["bytes"])} {s["seconds"]:.3f} '
              f'{retransmits}')
        return 0
    except (OSError, ValueError, KeyError, TypeError):
        return 1


def nearest_rank(sorted_values, p):
    k = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[k - 1]


def cmd_ping(path):
    rtts, sent = [], 0
    with open(path, errors="replace") as f:
        for line in f:
            m = re.search(r"time=([0-9.]+) ms", line)
            if m:
                rtts.append(float(m.group(1)) * 1000)
            m = re.match(r"(\d+) packets transmitted", line)
            if m:
                sent = int(m.group(1))
    if not rtts:
        return 1
    rtts.sort()
    print(f"{nearest_rank(rtts, 50):.1f} {nearest_rank(rtts, 99):.1f} {len(rtts)} {sent}")
    return 0


def median_of(values):
    nums = [v for v in values if is_number(v)]
    if nums:
        return statistics.median(nums), len(nums) < len(values)
    if values:
        return values[0], False  # every run said the same kind of thing
    return None, False


def fmt(v, factor, decimals, partial):
    if v is None:
        return "-"
    if not is_number(v):
        return str(v)
    return f"{v * factor:.{decimals}f}" + ("*" if partial else "")


def ratio(a, b):
    if is_number(a) and is_number(b) and b > 0:
        return a / b
    return None


# derived figure: (numerator, denominator), both from the same round
QUOTIENTS = {
    "scale_tcp_per_base": ("scale_tcp_dd", "scale_base_tcp_dd"),
    "scale_udp_per_base": ("scale_udp_dd", "scale_base_udp_dd"),
}


def quotient_runs(runs):
    """One run per implementation and repeat of each QUOTIENTS figure: the
    round's numerator over its denominator ("failed" when either is not a
    number)."""
    by_key = {(r["figure"], r["impl"], r["repeat"]): r["value"] for r in runs}
    out = []
    for key, (num, den) in QUOTIENTS.items():
        for (fig, impl, rep), a in by_key.items():
            if fig != num or (den, impl, rep) not in by_key:
                continue
            q = ratio(a, by_key[(den, impl, rep)])
            out.append({"figure": key, "impl": impl, "repeat": rep,
                        "value": q if q is not None else "failed", "detail": {}})
    return out


def cmd_table(raw_path, core_path, meta_path, out_path):
    runs = []
    with open(raw_path) as f:
        for line in f:
            if line.strip():
                runs.append(json.loads(line))
    runs += quotient_runs(runs)
    try:
        with open(core_path) as f:
            core = json.load(f).get("benchmarks", [])
    except (OSError, ValueError):
        core = []
    with open(meta_path) as f:
        meta = json.load(f)
    n = meta.get("scale_devices", 1000)
    cc2 = meta.get("tcp_congestion_control_2", "none")

    rows, figures, any_partial = [], [], False
    for key, label, unit, factor, decimals in FIGURES:
        label = label.format(n=n, cc2=cc2)
        per_impl = {i: [r["value"] for r in runs if r["figure"] == key and r["impl"] == i]
                    for i in IMPLS}
        if not any(per_impl.values()):
            continue
        med, cells = {}, []
        for i in IMPLS:
            m, partial = median_of(per_impl[i])
            any_partial |= partial
            med[i] = m
            cells.append(fmt(m, factor, decimals, partial))
        # A quotient is compared within its implementation, not across.
        uk = ratio(med["umacvlan"], med["kernel"]) if unit != "quotient" else None
        uv = ratio(med["umacvlan"], med["vde"]) if unit != "quotient" else None
        cells += [f"{uk:.2f}" if uk is not None else "-", f"{uv:.2f}" if uv is not None else "-"]
        rows.append((label, cells))
        figures.append({"figure": key, "label": label, "unit": unit,
                        "factor_to_label_unit": factor,
                        "medians": med, "runs": per_impl,
                        "ratios": {"umacvlan/kernel": uk, "umacvlan/vde": uv}})

    head = ("figure", "kernel", "umacvlan", "vde", "umacvlan/kernel", "umacvlan/vde")
    widths = [max(36, max((len(r[0]) for r in rows), default=0) + 2), 11, 11, 9, 17, 12]
    print("".join(h.ljust(w) for h, w in zip(head, widths)).rstrip())
    for label, cells in rows:
        print("".join(c.ljust(w) for c, w in zip((label, *cells), widths)).rstrip())
    if any_partial:
        print("* median of the runs that measured (the others: see the JSON)")
    # The floor under ping through any userspace forwarder (bench/wakecost.cc).
    num = (int, float)
    sc, same, cross = (meta.get("machine_" + k) for k in
                       ("syscall_us", "wake_rtt_same_cpu_us", "wake_rtt_cross_cpu_us"))
    if isinstance(sc, num) and isinstance(same, num):
        print(f"this machine: a system call {sc:.2f} us; a wake-up round trip between two threads "
              f"{same:.2f} us on one CPU" +
              (f", {cross:.2f} us across two" if isinstance(cross, num) else ""))

    with open(out_path, "w") as f:
        json.dump({"meta": meta, "core": core, "figures": figures, "runs": runs}, f, indent=1)
        f.write("\n")
    return 0


def cmd_meta(pairs):
    meta = {}
    for p in pairs:
        k, _, v = p.partition("=")
        try:
            meta[k] = int(v) if re.fullmatch(r"-?\d+", v) else float(v) if re.fullmatch(
                r"-?\d+\.\d*", v) else v
        except ValueError:
            meta[k] = v
    print(json.dumps(meta))
    return 0


def cmd_compare(paths):
    """Medians of several JSON files side by side, in the labels' units."""
    runs = []
    for p in paths:
        with open(p) as f:
            runs.append({fig["figure"]: fig for fig in json.load(f)["figures"]})
    print("figure / impl".ljust(44) + "".join(f"run {i + 1}".ljust(12) for i in range(len(paths))))
    for key, _, _, factor, decimals in FIGURES:
        if not any(key in r for r in runs):
            continue
        label = next(r[key]["label"] for r in runs if key in r)
        for impl in IMPLS:
            cells = [fmt(r[key]["medians"].get(impl), factor, decimals, False) if key in r
                     else "-" for r in runs]
            if all(c == "-" for c in cells):
                continue
            print(f"{label} {impl}".ljust(44) + "".join(c.ljust(12) for c in cells).rstrip())
    for i, p in enumerate(paths):
        print(f"run {i + 1}: {p}")
    return 0


def main(argv):
    if len(argv) == 3 and argv[1] == "iperf":
        return cmd_iperf(argv[2])
    if len(argv) == 3 and argv[1] == "ping":
        return cmd_ping(argv[2])
    if len(argv) >= 2 and argv[1] == "meta":
        return cmd_meta(argv[2:])
    if len(argv) >= 3 and argv[1] == "compare":
        return cmd_compare(argv[2:])
    if len(argv) == 6 and argv[1] == "table":
        return cmd_table(*argv[2:])
    print(__doc__.strip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
