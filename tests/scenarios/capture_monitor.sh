#!/usr/bin/env bash
# capture_monitor.sh [-v] - `umacvlan capture` and `umacvlan monitor`
# (umacvlan only: the kernel's macvlan has neither).
#
#   (a) capture dev: `capture dev mva -w FILE -c 10 icmp` while mva pings
#       mvb five times; tcpdump reads the file back: the same ten frames,
#       byte for byte, as a tcpdump on mva itself wrote (both directions).
#   (b) capture port: the decision lines for frames whose fate the
#       conformance suite verified against the kernel's macvlan (bridge to
#       bridge unicast delivered inside the port, bridge broadcast to the
#       bridge siblings and the wire but not to a vepa device, vepa to the
#       wire only, a reply from outside to its device, a spoofed source
#       dropped with spoofchk); every frame the capture says went to mvb is
#       seen by a tcpdump on mvb; the summary counts them.
#   (c) a BPF filter: `capture port lower0 -c 3 arp` prints three ARP lines
#       and nothing else, and exits by itself.
#   (d) the capture of a device ends when the device is deleted (exit 0,
#       the reason said).
#   (e) bad input changes nothing: an unknown device, a wrong filter, a
#       missing dev/port, a wrong count or monitor word: an ip-style error,
#       a non-zero exit, and no capture started in the daemon.
#   (f) monitor -j: added, changed (mtu, up), moved (to another namespace),
#       refused (a name in use), drops by reason (spoofed), removed, the
#       lower's carrier off and on, in that order; `monitor link -c 1` in
#       text prints one "[LINK] added" line and exits by itself.
#
# Root. Namespaces are named umv-cap-<pid>-*; the daemon lives in one of
# them with its socket in a temporary directory; all is removed on exit.
# Environment: UMACVLAN_BIN (the CLI; the daemon is beside it). Exit: 0 as
# expected, 1 otherwise, 2 setup error.

set -uo pipefail
. "$(dirname "$0")/lib.sh"
UMV_DEFAULT_IMPL=umacvlan umv_init "$@"
UMV_PFX="umv-cap-$$-"
umv_set_impl umacvlan
command -v tcpdump >/dev/null 2>&1 || umv_die "missing tool: tcpdump"

FAILS=0
check() {  # check NAME COMMAND... : one line per check
    local name=$1
    shift
    if "$@"; then echo "ok    $name"; else echo "FAIL  $name"; FAILS=$((FAILS + 1)); fi
}
# bg NAME CMD... : CMD in the background (stdout NAME.out, stderr NAME.err), pid in BG
bg() {
    local name=$1
    shift
    "$@" >"$UMV_TMP/$name.out" 2>"$UMV_TMP/$name.err" &
    BG=$!
    echo "$BG" >>"$UMV_TMP/pids"
}
# ended PID SECONDS : 0 when PID exits within SECONDS; its status in ENDED_RC
ended() {
    local pid=$1 i
    for ((i = 0; i < $2 * 10; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid"
            ENDED_RC=$?
            return 0
        fi
        sleep 0.1
    done
    return 1
}
captures_started() { grep -c "capture [0-9]* of .* started" "$TOPO_DIR/umacvlan.log" 2>/dev/null || true; }
monitors_started() { grep -c "monitor [0-9]* started" "$TOPO_DIR/umacvlan.log" 2>/dev/null || true; }
more_monitors_than() { [ "$(monitors_started)" -gt "$1" ]; }
# frames FILE : tcpdump's reading of a pcap, one line per frame, no time stamps
frames() { tcpdump -r "$1" -nn -e -x -t 2>/dev/null; }

umv_topo_up cap || umv_die "topology setup failed"
umv_mkdev mva bridge "$NS_A" 10.77.0.11/24 || umv_die "cannot create mva"
umv_mkdev mvb bridge "$NS_B" 10.77.0.12/24 || umv_die "cannot create mvb"
umv_mkdev mvv vepa "$NS_H" 10.77.0.13/24 || umv_die "cannot create mvv"
umv_mkdev mvs bridge "$NS_H" "" spoofchk on || umv_die "cannot create mvs"
umv_ping "$NS_A" 10.77.0.12 5 || umv_die "a cannot reach b"
MAC_A=$(umv_mac "$NS_A" mva)
MAC_B=$(umv_mac "$NS_B" mvb)

# ------------------------------------------------------------- (a) dev
echo "== (a) capture dev mva -w FILE -c 10 icmp, read back by tcpdump"
bg ref timeout 30 ip netns exec "$NS_A" tcpdump -n -p -i mva --immediate-mode -U -w "$UMV_TMP/ref.pcap" icmp
REF=$BG
umv_wait_for 5 grep -q "listening on" "$UMV_TMP/ref.err" || umv_die "tcpdump on mva did not start"
bg capdev timeout 30 ip netns exec "$NS_A" "$MV" capture dev mva -w "$UMV_TMP/cap.pcap" -c 10 icmp
CAP=$BG
umv_wait_for 5 grep -q "listening on dev mva" "$UMV_TMP/capdev.err" || umv_die "capture did not start: $(cat "$UMV_TMP/capdev.err")"
ip netns exec "$NS_A" ping -c 5 -i 0.2 -q 10.77.0.12 >/dev/null 2>&1
check "capture -c 10 ends by itself after 5 pings" ended "$CAP" 10
check "... with status 0" test "${ENDED_RC:-x}" = 0
sleep 1
kill -INT "$REF" 2>/dev/null
wait "$REF" 2>/dev/null
frames "$UMV_TMP/cap.pcap" >"$UMV_TMP/cap.txt"
frames "$UMV_TMP/ref.pcap" >"$UMV_TMP/ref.txt"
ncap=$(grep -c "ethertype IPv4" "$UMV_TMP/cap.txt")
check "the pcap holds 10 frames (5 requests, 5 replies): $ncap" test "$ncap" = 10
check "5 echo requests from mva" test "$(grep -c "^$MAC_A > $MAC_B.*ICMP echo request" "$UMV_TMP/cap.txt")" = 5
check "5 echo replies to mva" test "$(grep -c "^$MAC_B > $MAC_A.*ICMP echo reply" "$UMV_TMP/cap.txt")" = 5
check "the same frames, byte for byte, as tcpdump on mva saw" \
    diff <(head -n "$(wc -l <"$UMV_TMP/cap.txt")" "$UMV_TMP/ref.txt") "$UMV_TMP/cap.txt"
check "summary: 10 packets captured" grep -q "^10 packets captured" "$UMV_TMP/capdev.err"

# ------------------------------------------------------------ (b) port
echo "== (b) capture port lower0: the decisions in words"
umv_cap_start "$NS_B" mvb "icmp" || umv_die "tcpdump on mvb"
SEEN_B=$UMV_CAP_OUT
SEEN_B_PID=$UMV_CAP_PID
bg capport timeout 60 ip netns exec "$NS_H" "$MV" capture port lower0
CAP=$BG
umv_wait_for 5 grep -q "listening on port lower0" "$UMV_TMP/capport.err" || umv_die "port capture did not start: $(cat "$UMV_TMP/capport.err")"
ip netns exec "$NS_A" ping -c 2 -i 0.2 -q 10.77.0.12 >/dev/null 2>&1   # bridge -> bridge
ip netns exec "$NS_A" ping -c 2 -i 0.2 -q 10.77.0.1 >/dev/null 2>&1    # bridge -> outside
ip -n "$NS_A" neigh flush dev mva
ip netns exec "$NS_A" ping -c 1 -q 10.77.0.12 >/dev/null 2>&1          # ARP broadcast first
ip netns exec "$NS_H" ping -c 1 -W 1 -q 10.77.0.11 >/dev/null 2>&1  # vepa: its ARP never back
ip netns exec "$NS_H" "$UMV_PYTHON" "$UMV_PY" send-frame mvs ff:ff:ff:ff:ff:ff 02:66:00:00:00:01 --count 3
sleep 0.5
kill -INT "$CAP"
check "Ctrl-C ends the port capture" ended "$CAP" 5
check "... with status 0" test "${ENDED_RC:-x}" = 0
umv_cap_stop "$SEEN_B_PID"
L=$UMV_TMP/capport.out
check "bridge to bridge: from mva, echo request, to mvb (unicast), not the wire" \
    grep -qE "from mva .*10\.77\.0\.11 > 10\.77\.0\.12 ICMP echo request.*: to mvb \(unicast\)$" "$L"
check "bridge to outside: from mva, echo request, out the wire only" \
    grep -qE "from mva .*10\.77\.0\.11 > 10\.77\.0\.1 ICMP echo request.*: to wire$" "$L"
check "outside to bridge: from lower0, echo reply, to mva (unicast)" \
    grep -qE "from lower0 .*10\.77\.0\.1 > 10\.77\.0\.11 ICMP echo reply.*: to mva \(unicast\)$" "$L"
check "bridge broadcast (ARP): to mvb and mvs (flood) and the wire, not to vepa mvv" \
    grep -qE "from mva .*ARP.*who-has 10\.77\.0\.12.*: to (mvb|mvs) \(flood\), (mvb|mvs) \(flood\), wire$" "$L"
check "vepa broadcast (ARP from mvv): out the wire only, not to the bridge devices" \
    grep -qE "from mvv .*ARP.*who-has 10\.77\.0\.11 tell 10\.77\.0\.13.*: to wire$" "$L"
no_vepa_back() { ! grep -qE "who-has 10\.77\.0\.11 tell 10\.77\.0\.13.*to mv" "$L"; }
check "... and no copy of it reached mva" no_vepa_back
check "spoofed source with spoofchk: dropped (spoofed)" \
    test "$(grep -cE "from mvs 02:66:00:00:00:01 > ff:ff:ff:ff:ff:ff.*dropped \(spoofed" "$L")" = 3
to_b=$(grep -cE "ICMP echo request.*to mvb \(unicast\)" "$L")
at_b=$(grep -c "ICMP echo request" "$SEEN_B")
check "every echo request the capture sent to mvb, mvb saw ($to_b, $at_b)" test "$to_b" = "$at_b" -a "$to_b" -ge 3
nlines=$(grep -c . "$L")
check "summary counts the lines printed ($nlines)" grep -q "^$nlines packets captured" "$UMV_TMP/capport.err"
check "summary reports the daemon's drops" grep -q "packets dropped by umacvlan" "$UMV_TMP/capport.err"

# ----------------------------------------------------------- (c) filter
echo "== (c) capture port lower0 -c 3 arp"
bg capf timeout 30 ip netns exec "$NS_H" "$MV" capture port lower0 -c 3 arp
CAP=$BG
umv_wait_for 5 grep -q "listening on port lower0" "$UMV_TMP/capf.err" || umv_die "filtered capture did not start"
for i in 1 2 3; do
    ip -n "$NS_A" neigh flush dev mva
    ip netns exec "$NS_A" ping -c 1 -W 1 -q 10.77.0.12 >/dev/null 2>&1
done
check "three frames then it ends by itself" ended "$CAP" 10
check "three lines, every one ARP" test "$(grep -c . "$UMV_TMP/capf.out")" = 3 -a "$(grep -c ' ARP' "$UMV_TMP/capf.out")" = 3

# ------------------------------------------------------------ (d) end
echo "== (d) the capture of a deleted device ends"
bg capdel timeout 30 ip netns exec "$NS_H" "$MV" capture dev mvs
CAP=$BG
umv_wait_for 5 grep -q "listening on dev mvs" "$UMV_TMP/capdel.err" || umv_die "capture of mvs did not start"
umv_mv "$NS_H" link del mvs
check "it ends within 5 s" ended "$CAP" 5
check "... with status 0" test "${ENDED_RC:-x}" = 0
check "... saying the device was deleted" grep -q "mvs was deleted" "$UMV_TMP/capdel.err"

# -------------------------------------------------------- (e) bad input
echo "== (e) bad input changes nothing"
before=$(captures_started)
refused() {  # refused PATTERN ARGS... : non-zero exit, PATTERN on stderr, nothing on stdout
    local pat=$1 rc
    shift
    umv_mv "$NS_A" "$@" >"$UMV_TMP/bad.out" 2>"$UMV_TMP/bad.err"
    rc=$?
    [ "$rc" != 0 ] && grep -q -- "$pat" "$UMV_TMP/bad.err" && ! grep -q . "$UMV_TMP/bad.out"
}
check "capture dev nosuch: Cannot find device" refused 'Cannot find device "nosuch"' capture dev nosuch
check "capture dev mva with a wrong filter" refused 'Error: ' capture dev mva 'port (((('
check "capture with neither dev nor port" refused 'Error: ' capture mva
check "capture -c 0" refused 'Error: argument "0" is wrong' capture dev mva -c 0
check "capture -c x" refused 'Error: argument "x" is wrong' capture dev mva -c x
check "monitor with an unknown word" refused 'Error: ' monitor frobnicate
check "no capture started in the daemon by any of them" test "$(captures_started)" = "$before"

# ---------------------------------------------------------- (f) monitor
echo "== (f) monitor -j"
mbefore=$(monitors_started)
bg mon timeout 60 ip netns exec "$NS_H" "$MV" -j monitor
MON=$BG
umv_wait_for 5 more_monitors_than "$mbefore" || umv_die "monitor did not start: $(head -3 "$UMV_TMP/mon.err")"
umv_mv "$NS_H" link add link lower0 name mvm type macvlan mode bridge
umv_mv "$NS_H" link set mvm mtu 1400
ip -n "$NS_H" link set mvm up
sleep 0.3
ip -n "$NS_H" link set mvm netns "$NS_B"
umv_mv "$NS_H" link add link lower0 name mvv type macvlan mode bridge 2>/dev/null
umv_mv "$NS_H" link add link lower0 name mvs2 type macvlan mode bridge spoofchk on
ip -n "$NS_H" link set mvs2 up
ip netns exec "$NS_H" "$UMV_PYTHON" "$UMV_PY" send-frame mvs2 ff:ff:ff:ff:ff:ff 02:66:00:00:00:02 --count 20 --interval 0.05
sleep 1.5
ip -n "$NS_B" link del mvm
ip -n "$NS_SW" link set swp0 down
umv_wait_for 5 grep -q '"carrier":false' "$UMV_TMP/mon.out"
ip -n "$NS_SW" link set swp0 up
umv_wait_for 5 grep -q '"carrier":true' "$UMV_TMP/mon.out"
sleep 0.3
kill -INT "$MON"
check "Ctrl-C ends the monitor (status 0)" ended "$MON" 5
[ "${ENDED_RC:-x}" = 0 ] || echo "      monitor exit ${ENDED_RC:-?}: $(head -3 "$UMV_TMP/mon.err")"
"$UMV_PYTHON" - "$UMV_TMP/mon.out" >"$UMV_TMP/mon.check" 2>&1 <<'EOF'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
want = [
    ("added", lambda e: e["type"] == "link" and e["event"] == "added" and e["name"] == "mvm"
        and e["link"] == "lower0" and e["mode"] == "bridge" and e["up"] is False),
    ("changed mtu", lambda e: e["type"] == "link" and e["event"] == "changed" and e["name"] == "mvm"
        and e["changes"] == ["mtu"] and e["mtu"] == 1400),
    ("changed up", lambda e: e["type"] == "link" and e["event"] == "changed" and e["name"] == "mvm"
        and e["changes"] == ["up"] and e["up"] is True),
    ("moved", lambda e: e["type"] == "link" and e["event"] == "moved" and e["name"] == "mvm"
        and "netns" in e["changes"] and e["netns"].startswith("umv-cap-") and e["netns"].endswith("-b")),
    ("refused", lambda e: e["type"] == "refused" and e["op"] == "add" and e["name"] == "mvv"
        and e["error"] == "EEXIST" and e["errno"] == 17),
    ("added mvs2", lambda e: e["type"] == "link" and e["event"] == "added" and e["name"] == "mvs2"),
    ("drops spoofed", lambda e: e["type"] == "drops" and e["port"] == "lower0"
        and e["drops"].get("spoofed", 0) > 0),
    ("removed", lambda e: e["type"] == "link" and e["event"] == "removed" and e["name"] == "mvm"),
    ("carrier off", lambda e: e["type"] == "port" and e["event"] == "carrier" and e["name"] == "lower0"
        and e["carrier"] is False),
    ("carrier on", lambda e: e["type"] == "port" and e["event"] == "carrier" and e["carrier"] is True),
]
i = 0
for name, pred in want:
    while i < len(events) and not pred(events[i]):
        i += 1
    if i == len(events):
        print(f"missing in order: {name}")
        sys.exit(1)
    print(f"seen: {name}: {json.dumps(events[i])}")
    i += 1
total = sum(e["drops"].get("spoofed", 0) for e in events if e["type"] == "drops")
print(f"spoofed drops reported: {total}")
sys.exit(0 if total == 20 else 1)
EOF
MON_RC=$?

sed 's/^/      /' "$UMV_TMP/mon.check"
check "the events, in order, and every spoofed frame counted once" test "$MON_RC" = 0

echo "== (f) monitor link -c 1 (text)"
mbefore=$(monitors_started)
bg mont timeout 30 ip netns exec "$NS_H" "$MV" monitor link -c 1
MON=$BG
umv_wait_for 5 more_monitors_than "$mbefore" || umv_die "monitor did not start"
umv_mv "$NS_H" link add link lower0 name mvt type macvlan mode private
check "one line, then it exits by itself" ended "$MON" 5
check "... [LINK] added mvt@lower0 mode private" \
    grep -q '^\[LINK\] added mvt@lower0 mode private' "$UMV_TMP/mont.out"
check "... and nothing else" test "$(grep -c . "$UMV_TMP/mont.out")" = 1

if [ "$FAILS" = 0 ]; then echo "capture_monitor: all checks passed"; exit 0; fi
for f in capport.out capport.err cap.txt ref.txt mon.out; do
    echo "---- $f"
    head -40 "$UMV_TMP/$f"
done
echo "capture_monitor: $FAILS check(s) FAILED"
exit 1
