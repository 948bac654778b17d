#!/usr/bin/env bash
# storm.sh [--strict] [-v]
#
# A broadcast storm does not starve unicast (umacvlan only). Three bridge
# devices: a (mva, ns A, 10.77.0.11), b (mvb, ns B, 10.77.0.12) and s (mvs,
# ns S) on lower0. First without a storm, then while s sends broadcasts as
# fast as it can: ping a>b every 50 ms and iperf3 a>b for 4 s.
# Pass: no ping lost during the storm, iperf3 completes during the storm,
# and the storm really flooded b. The throughput with the storm against
# without it is printed; with --strict it must be at least half (a figure
# of the machine's speed, not asserted by default: tests do not depend on
# timing).
# Exit: 0 as expected, 1 otherwise, 2 setup error.

set -uo pipefail
UMV_DEFAULT_IMPL=umacvlan
STRICT=0
args=()
for a in "$@"; do
    if [ "$a" = --strict ]; then STRICT=1; else args+=("$a"); fi
done
. "$(dirname "$0")/lib.sh"
umv_init "${args[@]}" --impl umacvlan
command -v iperf3 >/dev/null 2>&1 || umv_die "missing tool: iperf3"

SECONDS_IPERF=4

iperf_listening() { ip netns exec "$NS_B" ss -Hltn 'sport = :5201' 2>/dev/null | grep -q .; }

# Gbit/s received by one iperf3 run a>b (0 when it failed).
iperf_gbps() {
    ip netns exec "$NS_B" iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
    local spid=$!
    echo "$spid" >>"$UMV_TMP/pids"
    umv_wait_for 10 iperf_listening
    ip netns exec "$NS_A" iperf3 -c 10.77.0.12 -p 5201 -t "$SECONDS_IPERF" -J 2>/dev/null |
        "$UMV_PYTHON" -c '
import json, sys
try:
    d = json.load(sys.stdin)
    print("%.2f" % (d["end"]["sum_received"]["bits_per_second"] / 1e9))
except Exception:
    print("0")'
    umv_kill_pids "$spid"; wait "$spid" 2>/dev/null
}

# Lost pings of 80 at 50 ms a>b.
ping_lost() {
    ip netns exec "$NS_A" ping -q -i 0.05 -c 80 -W 1 10.77.0.12 2>/dev/null |
        sed -n 's/.* \([0-9]*\) received.*/\1/p' | awk '{ print 80 - $1 }'
}

rx_multicast() {
    umv_mv "$1" -s -j link show "$2" 2>/dev/null |
        "$UMV_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)[0]["stats64"]["rx"]["multicast"])' 2>/dev/null ||
        echo 0
}

run() {
    umv_set_impl umacvlan
    local ns_s="${UMV_PFX}st-s"
    if ! umv_topo_up st off || ! umv_ns_add "$ns_s" ||
       ! umv_mkdev mva bridge "$NS_A" 10.77.0.11/24 ||
       ! umv_mkdev mvb bridge "$NS_B" 10.77.0.12/24 ||
       ! umv_mkdev mvs bridge "$ns_s" ""; then
        umv_log "setup failed"
        return 2
    fi
    umv_ping "$NS_A" 10.77.0.12 >/dev/null || umv_log "warning: a>b did not answer before the test"

    local calm stormy lost_calm lost_storm mc0 mc1 spid
    lost_calm=$(ping_lost)
    calm=$(iperf_gbps)
    mc0=$(rx_multicast "$NS_B" mvb)
    ip netns exec "$ns_s" "$UMV_PYTHON" "$UMV_PY" storm mvs --seconds $((SECONDS_IPERF + 6)) \
        >"$UMV_TMP/storm.out" 2>&1 &
    spid=$!; echo "$spid" >>"$UMV_TMP/pids"
    sleep 0.5
    lost_storm=$(ping_lost)
    stormy=$(iperf_gbps)
    wait "$spid" 2>/dev/null
    mc1=$(rx_multicast "$NS_B" mvb)
    umv_rec "no storm: pings lost (of 80)" "$lost_calm" 0
    umv_rec "storm: pings lost (of 80)" "$lost_storm" 0
    umv_rec "storm: iperf3 completes" "$(awk -v g="$stormy" 'BEGIN { print (g > 0) ? "yes" : "no" }')" yes
    umv_rec "storm: b was flooded" "$([ $((mc1 - mc0)) -gt 10000 ] && echo yes || echo no)" yes
    local ratio
    ratio=$(awk -v a="$stormy" -v b="$calm" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "0" }')
    umv_note "iperf3 a>b: ${calm} Gbit/s without the storm, ${stormy} Gbit/s with it (ratio ${ratio})"
    umv_note "$(cat "$UMV_TMP/storm.out"); b took $((mc1 - mc0)) of them"
    if [ "$STRICT" = 1 ]; then
        umv_rec "storm: throughput kept (at least half)" \
            "$(awk -v r="$ratio" 'BEGIN { print (r >= 0.5) ? "yes" : "no" }')" yes
    fi
    umv_topo_down
    umv_ns_delete "$ns_s"
}

START=$SECONDS
run; rc=$?
[ $rc = 2 ] && exit 2
umv_report "broadcast storm beside unicast (umacvlan only)"; rc=$?
umv_print_notes
echo "storm: $((SECONDS - START))s, $([ $rc = 0 ] && echo PASS || echo FAIL)"
exit $rc
