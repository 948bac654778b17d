#!/usr/bin/env bash
# hostile.sh [-v]
#
# The data path never waits for the control path (umacvlan only). iperf3
# runs between two bridge devices a (mva, ns A) and b (mvb, ns B) with 0.1 s
# interval reports, while:
#   1 hostile control clients work on the daemon for 5 s: one sends its
#     request a byte a second, one connects and says nothing, one keeps
#     sending requests it never reads the answer of, one disconnects half way
#     through its request again and again, one sends 10 MB without a newline;
#     meanwhile a well-behaved `umacvlan link show` still gets its answer
#   2 50 devices are added to lower0 and removed again, one CLI call each
# Pass: every 0.1 s interval of iperf3 moved data (no gap of 100 ms or more),
# the daemon answered the well-behaved client, and all 50 devices came and
# went. The largest gap and the slowest interval are printed.
# Exit: 0 as expected, 1 otherwise, 2 setup error.

set -uo pipefail
UMV_DEFAULT_IMPL=umacvlan
. "$(dirname "$0")/lib.sh"
umv_init "$@" --impl umacvlan
command -v iperf3 >/dev/null 2>&1 || umv_die "missing tool: iperf3"

iperf_listening() { ip netns exec "$NS_B" ss -Hltn 'sport = :5201' 2>/dev/null | grep -q .; }

# "zero-intervals max-gap-ms slowest-Mbit/s intervals" of an iperf3 -J file.
intervals() {
    "$UMV_PYTHON" - "$1" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception:
    print("none none none 0"); sys.exit()
iv = [i["sum"] for i in d.get("intervals", [])]
zero = sum(1 for i in iv if i["bytes"] == 0)
gap = run = 0.0
for i in iv:
    run = run + (i["end"] - i["start"]) if i["bytes"] == 0 else 0.0
    gap = max(gap, run)
slow = min((i["bits_per_second"] for i in iv), default=0) / 1e6
print(f"{zero} {gap * 1000:.0f} {slow:.0f} {len(iv)}")
EOF
}

# Starts iperf3 a>b for $1 seconds into $2 (server and client in the background).
start_iperf() {
    ip netns exec "$NS_B" iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
    SPID=$!; echo "$SPID" >>"$UMV_TMP/pids"
    umv_wait_for 10 iperf_listening || umv_log "iperf3 server did not listen"
    ip netns exec "$NS_A" iperf3 -c 10.77.0.12 -p 5201 -t "$1" -i 0.1 -J >"$2" 2>/dev/null &
    CPID=$!; echo "$CPID" >>"$UMV_TMP/pids"
}

finish_iperf() {
    wait "$CPID" 2>/dev/null
    umv_kill_pids "$SPID"; wait "$SPID" 2>/dev/null
}

check_intervals() {
    local tag=$1 file=$2 zero gap slow n
    read -r zero gap slow n < <(intervals "$file")
    umv_rec "$tag: iperf3 intervals reported" "$([ "$n" -ge 50 ] && echo yes || echo "no ($n)")" yes
    umv_rec "$tag: 0.1 s intervals without data" "$zero" 0
    umv_note "$tag: largest gap ${gap} ms, slowest 0.1 s interval ${slow} Mbit/s, $n intervals"
}

run() {
    umv_set_impl umacvlan
    if ! umv_topo_up ho off ||
       ! umv_mkdev mva bridge "$NS_A" 10.77.0.11/24 ||
       ! umv_mkdev mvb bridge "$NS_B" 10.77.0.12/24; then
        umv_log "setup failed"
        return 2
    fi
    umv_ping "$NS_A" 10.77.0.12 >/dev/null || umv_log "warning: a>b did not answer before the test"

    # 1: hostile clients.
    start_iperf 7 "$UMV_TMP/iperf-1.json"
    sleep 1
    local mode pids=()
    for mode in slow silent noread halfway flood; do
        ip netns exec "$NS_H" "$UMV_PYTHON" "$UMV_PY" hostile "$UMACVLAN_SOCKET" "$mode" --seconds 5 \
            >"$UMV_TMP/hostile-$mode.out" 2>&1 &
        pids+=($!); echo $! >>"$UMV_TMP/pids"
    done
    sleep 1
    local t0 t1 rc
    t0=$(date +%s%N)
    umv_mv "$NS_A" link show mva >/dev/null 2>&1; rc=$?
    t1=$(date +%s%N)
    umv_rec "1: a well-behaved client is answered" "$rc" 0
    umv_note "1: its answer took $(( (t1 - t0) / 1000000 )) ms while the hostile clients ran"
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    finish_iperf
    check_intervals 1 "$UMV_TMP/iperf-1.json"
    for mode in slow silent noread halfway flood; do
        umv_note "1: $(tail -1 "$UMV_TMP/hostile-$mode.out")"
    done

    # 2: 50 devices come and go.
    start_iperf 10 "$UMV_TMP/iperf-2.json"
    sleep 1
    local i added=0 removed=0
    for i in $(seq 1 50); do
        umv_mv "$NS_H" link add link lower0 name "chn$i" type macvlan mode bridge >/dev/null 2>&1 &&
            added=$((added + 1))
    done
    ip -n "$NS_H" link set dev chn1 up 2>/dev/null
    for i in $(seq 1 50); do
        umv_mv "$NS_H" link del "chn$i" >/dev/null 2>&1 && removed=$((removed + 1))
    done
    finish_iperf
    umv_rec "2: devices added" "$added" 50
    umv_rec "2: devices removed" "$removed" 50
    umv_rec "2: devices left" "$(umv_mv "$NS_H" link show 2>/dev/null | grep -c chn)" 0
    check_intervals 2 "$UMV_TMP/iperf-2.json"
    umv_topo_down
}

START=$SECONDS
run; rc=$?
[ $rc = 2 ] && exit 2
umv_report "hostile clients and churn beside the data path (umacvlan only)"; rc=$?
umv_print_notes
echo "hostile: $((SECONDS - START))s, $([ $rc = 0 ] && echo PASS || echo FAIL)"
exit $rc
