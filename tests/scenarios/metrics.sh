#!/usr/bin/env bash
# metrics.sh [-v] - the daemon's Prometheus endpoint (umacvlan only).
#
#   (a) off by default: a daemon started without --metrics (nor
#       UMACVLAN_METRICS) listens on no TCP port, and a scrape fails.
#   (b) with UMACVLAN_METRICS=127.0.0.1:PORT in the CLI's environment, the
#       daemon it starts on demand serves GET /metrics in its namespace: the
#       text parses (python3-prometheus-client's parser), every family has
#       HELP and TYPE, the labels say where each device is. Two bridge
#       devices a (ns A) and b (ns B) ping each other while, three times
#       over, the script reads `ip -s -j link show` of each device (the TAP:
#       what the kernel counted), then the metrics, then `umacvlan -s -j link
#       show`, then ip again: for rx and tx packets and bytes,
#       ip_before <= metric <= umacvlan <= ip_after, and the counters move.
#       The port has two devices, every drop reason, the broadcast queue;
#       the workers read frames; a refused `link add` counts as refused.
#   (c) a restart (SIGTERM, the next CLI call starts the daemon again)
#       re-adopts both devices: umacvlan_readopted_devices 2, a new start
#       time.
#
# Root. Namespaces are named umv-met-<pid>-*; the daemon lives in one of them
# (UMACVLAN_DAEMON_NETNS) with its socket in a temporary directory; all is
# removed on exit. Environment: UMACVLAN_BIN (the CLI; the daemon is beside
# it). Exit: 0 as expected, 1 otherwise, 2 setup error.

set -uo pipefail
. "$(dirname "$0")/lib.sh"
UMV_DEFAULT_IMPL=umacvlan umv_init "$@"
UMV_PFX="umv-met-$$-"
umv_set_impl umacvlan
command -v curl >/dev/null 2>&1 || umv_die "missing tool: curl"
# Debian's python3 (python3-prometheus-client), not a pyenv one.
PROM_PY=/usr/bin/python3
"$PROM_PY" -c 'import prometheus_client.parser' 2>/dev/null ||
    umv_die "missing python3-prometheus-client (for $PROM_PY)"

PORT=9464  # in the daemon's own namespace: no other listener there
FAILS=0
check() {  # check NAME COMMAND... : one line per check
    local name=$1
    shift
    if "$@"; then echo "ok    $name"; else echo "FAIL  $name"; FAILS=$((FAILS + 1)); fi
}

scrape() {  # scrape FILE : 0 when the daemon answered 200
    local code
    code=$(timeout 10 ip netns exec "$NS_D" curl -s -o "$1" -w '%{http_code}' \
        "http://127.0.0.1:$PORT/metrics" 2>/dev/null)
    [ "$code" = 200 ]
}

# ------------------------------------------------------- (a) off by default

unset UMACVLAN_METRICS
umv_topo_up off || umv_die "topology setup failed"
umv_mkdev mva bridge "$NS_A" 10.77.0.11/24 || umv_die "cannot create mva"
listeners=$(ip netns exec "$NS_D" ss -Hltn 2>/dev/null | wc -l)
check "off: no TCP listener in the daemon's namespace" test "$listeners" = 0
no_scrape() { ! scrape "$1"; }
check "off: the scrape fails" no_scrape "$UMV_TMP/off.txt"
umv_topo_down

# ------------------------------------------------- (b) counters under traffic

export UMACVLAN_METRICS="127.0.0.1:$PORT"
umv_topo_up on || umv_die "topology setup failed"
umv_mkdev mva bridge "$NS_A" 10.77.0.11/24 || umv_die "cannot create mva"
umv_mkdev mvb bridge "$NS_B" 10.77.0.12/24 || umv_die "cannot create mvb"
umv_ping "$NS_A" 10.77.0.12 5 || umv_die "a cannot reach b"
check "on: the daemon says where it serves" \
    umv_wait_for 5 grep -q "metrics on http://127.0.0.1:$PORT/metrics" "$TOPO_DIR/umacvlan.log"
ip netns exec "$NS_D" ss -Hltn >"$UMV_TMP/listen.txt" 2>/dev/null
check "on: listens on 127.0.0.1:$PORT only" \
    test "$(awk '{print $4}' "$UMV_TMP/listen.txt")" = "127.0.0.1:$PORT"

# Traffic for the whole comparison: a and b ping each other, and a pings
# the broadcast address, which b receives and does not answer
# (icmp_echo_ignore_broadcasts): a sends more than it receives, b receives
# more than it sends, so a swapped rx/tx would show.
timeout 60 ip netns exec "$NS_A" ping -q -i 0.02 10.77.0.12 >/dev/null 2>&1 &
echo $! >>"$UMV_TMP/pids"; PING_A=$!
timeout 60 ip netns exec "$NS_B" ping -q -i 0.02 10.77.0.11 >/dev/null 2>&1 &
echo $! >>"$UMV_TMP/pids"; PING_B=$!
timeout 60 ip netns exec "$NS_A" ping -q -b -i 0.02 10.77.0.255 >/dev/null 2>&1 &
echo $! >>"$UMV_TMP/pids"; PING_BC=$!

# One round: ip (the TAPs), the metrics, umacvlan's show, ip again.
round() {
    local r=$1 d=$UMV_TMP/round$1
    mkdir -p "$d"
    ip -n "$NS_A" -s -j link show mva >"$d/ip1a.json"
    ip -n "$NS_B" -s -j link show mvb >"$d/ip1b.json"
    scrape "$d/metrics.txt" || { echo "round $r: the scrape failed"; return 1; }
    umv_mv "$NS_A" -s -j link show mva >"$d/umva.json" || return 1
    umv_mv "$NS_B" -s -j link show mvb >"$d/umvb.json" || return 1
    ip -n "$NS_A" -s -j link show mva >"$d/ip2a.json"
    ip -n "$NS_B" -s -j link show mvb >"$d/ip2b.json"
}
for r in 1 2 3; do
    round "$r" || umv_die "round $r could not be read"
    sleep 0.3
done
kill "$PING_A" "$PING_B" "$PING_BC" 2>/dev/null
wait "$PING_A" "$PING_B" "$PING_BC" 2>/dev/null
[ "$UMV_VERBOSE" = 1 ] && cat "$UMV_TMP/round3/metrics.txt"

# A refused request (the name is taken) and one more accepted (show).
umv_mv "$NS_A" link add link lower0 name mva type macvlan mode bridge >/dev/null 2>&1
umv_mv "$NS_A" link show >/dev/null 2>&1
scrape "$UMV_TMP/after.txt" || umv_die "the scrape after the refusal failed"

"$PROM_PY" - "$UMV_TMP" "$NS_A" "$NS_B" "$NS_H" <<'PY'
import json, sys, time
from prometheus_client.parser import text_string_to_metric_families

tmp, ns_a, ns_b, ns_h = sys.argv[1:5]
fails = 0
def check(name, ok, detail=""):
    global fails
    print(("ok    " if ok else "FAIL  ") + name + ("" if ok else "  (" + detail + ")"))
    if not ok:
        fails += 1

def parse(path):
    text = open(path).read()
    samples = {}
    families = {}
    for fam in text_string_to_metric_families(text):
        families[fam.name] = fam
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return text, families, samples

def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))

def stats(path):
    return json.load(open(path))[0]["stats64"]

port = ns_h + "/lower0"
devs = {"a": ("mva", ns_a), "b": ("mvb", ns_b)}
moved = {}
for r in (1, 2, 3):
    d = f"{tmp}/round{r}"
    text, families, samples = parse(f"{d}/metrics.txt")
    if r == 1:
        lines = text.splitlines()
        for fam in families.values():
            name = fam.name + ("_total" if fam.type == "counter" else "")
            check(f"HELP and TYPE for {name}",
                  f"# TYPE {name} {fam.type}" in lines and any(l.startswith(f"# HELP {name} ") for l in lines))
    for key, (ifname, ns) in devs.items():
        labels = dict(port=port, device=ifname, netns=ns, mode="bridge")
        ip1, ip2 = stats(f"{d}/ip1{key}.json"), stats(f"{d}/ip2{key}.json")
        umv = stats(f"{d}/umv{key}.json")
        for direction in ("rx", "tx"):
            for what in ("packets", "bytes"):
                m = value(samples, f"umacvlan_device_{direction}_{what}_total", **labels)
                lo, hi, u = ip1[direction][what], ip2[direction][what], umv[direction][what]
                ok = m is not None and lo <= m <= u <= hi
                check(f"round {r} {ifname} {direction} {what}: ip {lo} <= metric {m} <= umacvlan {u} <= ip {hi}", ok)
                moved.setdefault((ifname, direction, what), []).append(m or 0)
    if r == 3:
        check("two devices on the port", value(samples, "umacvlan_devices", port=port) == 2)
        check("the broadcast queue's length", value(samples, "umacvlan_port_bcqueue_length", port=port) == 1000)
        check("bcqueue overflows counted (none)",
              value(samples, "umacvlan_port_bcqueue_overflows_total", port=port) == 0)
        reasons = {k[1] for k in samples if k[0] == "umacvlan_port_drops_total"}
        reasons = {dict(l)["reason"] for l in reasons}
        want = {"runt", "oversize", "nodst", "passthru_down", "bc_queue_full", "no_subscriber",
                "unknown_sender", "pause", "spoofed", "bad_vnet_header", "too_big", "io_error",
                "lower_ring_full"}
        check("every drop reason", reasons == want, str(sorted(reasons)))
        frames = sum(v for k, v in samples.items() if k[0] == "umacvlan_worker_frames_total")
        check("the workers read frames", frames > 0, str(frames))
        busy = sum(v for k, v in samples.items() if k[0] == "umacvlan_worker_busy_seconds_total")
        check("the workers were busy some of the time", 0 < busy < 600, str(busy))
        start = value(samples, "umacvlan_daemon_start_time_seconds")
        check("a start time in the last 10 minutes", start is not None and 0 <= time.time() - start < 600,
              str(start))
        check("nothing re-adopted at a first start", value(samples, "umacvlan_readopted_devices") == 0)
a3 = stats(f"{tmp}/round3/ip2a.json")
b3 = stats(f"{tmp}/round3/ip2b.json")
check("one-way traffic: a sends more than it receives, b the opposite",
      a3["tx"]["packets"] > a3["rx"]["packets"] and b3["rx"]["packets"] > b3["tx"]["packets"],
      f"a {a3['rx']['packets']}/{a3['tx']['packets']} b {b3['rx']['packets']}/{b3['tx']['packets']}")
for k, v in moved.items():
    check(f"{k[0]} {k[1]} {k[2]} grows under traffic", v[0] < v[1] < v[2], str(v))

_, _, before = parse(f"{tmp}/round3/metrics.txt")
_, _, after = parse(f"{tmp}/after.txt")
req = lambda s, r: value(s, "umacvlan_control_requests_total", result=r) or 0
check("the refused link add counted as refused", req(after, "refused") == req(before, "refused") + 1,
      f"{req(before, 'refused')} -> {req(after, 'refused')}")
check("requests answered ok are counted", req(after, "ok") >= req(before, "ok") + 1 and req(before, "ok") >= 2)
check("no request in error", req(after, "error") == 0)
open(f"{tmp}/start1", "w").write(str(value(after, "umacvlan_daemon_start_time_seconds")))
sys.exit(1 if fails else 0)
PY
[ $? = 0 ] || FAILS=$((FAILS + 1))

# ------------------------------------------------------------- (c) restart

umv_stop_daemon "$UMACVLAN_SOCKET"
umv_mv "$NS_A" link show mva >/dev/null 2>&1  # starts it again, with the metrics
scrape "$UMV_TMP/restart.txt" || umv_die "the scrape after the restart failed"
check "restart: both devices re-adopted" \
    grep -qx 'umacvlan_readopted_devices 2' "$UMV_TMP/restart.txt"
start2=$(awk '$1 == "umacvlan_daemon_start_time_seconds" { print $2 }' "$UMV_TMP/restart.txt")
check "restart: a later start time" \
    awk -v a="$(cat "$UMV_TMP/start1")" -v b="$start2" 'BEGIN { exit !(b > a) }'

echo "== metrics: $FAILS check(s) failed"
[ "$FAILS" = 0 ]
