#!/usr/bin/env bash
# tcp.sh [--impl kernel|umacvlan|both] [-v]
#
# TCP through two bridge-mode devices on one lower (local bridge path):
# iperf3 server in ns B (10.77.0.12), client in ns A, 3 seconds.
# Pass: the transfer completes with more than 0 bytes received. The throughput
# is printed for information only; it is never a pass criterion.
# Then UDP sent as QUIC stacks send it (UDP_SEGMENT: 20 datagrams of 1000
# bytes to a send, 50 sends), a to b and a to the outside host x through the
# lower. Pass: all 1000 datagrams arrive intact, and mva's stack handed its
# device super-frames (its tx_packets rose by fewer than half the datagrams),
# as on a kernel macvlan, which offers UDP segmentation offload.
# Exit: 0 pass, 1 fail, 2 setup error.

set -uo pipefail
. "$(dirname "$0")/lib.sh"
umv_init "$@"
command -v iperf3 >/dev/null 2>&1 || umv_die "missing tool: iperf3"

DURATION=${UMV_IPERF_SECONDS:-3}
FAIL=0

# shellcheck disable=SC2317  # called through umv_wait_for
iperf_listening() { ip netns exec "$NS_B" ss -Hltn 'sport = :5201' 2>/dev/null | grep -q .; }

run_impl() {
    local impl=$1 json="$UMV_TMP/iperf-$1.json" spid res
    umv_set_impl "$impl"
    res="setup failed"
    if umv_topo_up "${impl:0:1}t" off &&
       umv_mkdev mva bridge "$NS_A" 10.77.0.11/24 &&
       umv_mkdev mvb bridge "$NS_B" 10.77.0.12/24; then
        timeout $((DURATION + 30)) ip netns exec "$NS_B" iperf3 -s -1 -B 10.77.0.12 -p 5201 \
            >"$UMV_TMP/iperf-server-$impl.log" 2>&1 &
        spid=$!
        echo "$spid" >>"$UMV_TMP/pids"
        if umv_wait_for 10 iperf_listening; then
            timeout $((DURATION + 20)) ip netns exec "$NS_A" \
                iperf3 -c 10.77.0.12 -p 5201 -t "$DURATION" -J >"$json" 2>"$UMV_TMP/iperf-client-$impl.err"
            res=$("$UMV_PYTHON" - "$json" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    print(f"no result ({e.__class__.__name__})"); sys.exit()
if "error" in d:
    print("iperf3 error: " + d["error"]); sys.exit()
s = d.get("end", {}).get("sum_received", {})
b = int(s.get("bytes", 0))
print(f"{b} {b / 1e6:.1f}MB {s.get('bits_per_second', 0) / 1e9:.2f}Gbit/s")
EOF
)
        else
            res="iperf3 server did not listen"
        fi
        umv_kill_pids "$spid"
        wait "$spid" 2>/dev/null
        udp_gso "$impl" b "$NS_B" 10.77.0.12
        udp_gso "$impl" x "$NS_X" 10.77.0.1
    fi
    umv_topo_down
    local bytes=${res%% *}
    if [[ "$bytes" =~ ^[0-9]+$ ]] && [ "$bytes" -gt 0 ]; then
        echo "tcp [$impl] bridge/bridge a->b ${DURATION}s: PASS  received ${res#* } (throughput informational)"
    else
        echo "tcp [$impl] bridge/bridge a->b ${DURATION}s: FAIL  $res"
        FAIL=1
    fi
}

tx_packets() { ip netns exec "$NS_A" cat /sys/class/net/mva/statistics/tx_packets 2>/dev/null || echo 0; }

# udp_gso IMPL NAME NS IP: 1000 datagrams from a to IP in NS, 20 to a send.
udp_gso() {
    local impl=$1 name=$2 ns=$3 ip=$4 ready="$UMV_TMP/gso.ready" out="$UMV_TMP/gso-$1-$2.out"
    local rpid before after frames verdict=PASS
    rm -f "$ready"
    timeout 30 ip netns exec "$ns" "$UMV_PYTHON" "$UMV_PY" udp-gso-recv "$ip" 5300 1000 \
        --timeout 15 --ready "$ready" >"$out" 2>&1 &
    rpid=$!
    echo "$rpid" >>"$UMV_TMP/pids"
    umv_wait_for 5 test -e "$ready" || umv_log "udp-gso [$impl]: receiver not ready"
    before=$(tx_packets)
    umv_in_ns "$NS_A" "$UMV_PYTHON" "$UMV_PY" udp-gso-send "$ip" 5300 || verdict=FAIL
    wait "$rpid" || verdict=FAIL
    after=$(tx_packets)
    frames=$(( after - before ))
    [ "$frames" -lt 500 ] || verdict=FAIL
    echo "udp-gso [$impl] a->$name: $verdict  $(cat "$out"), mva sent $frames frames"
    [ "$verdict" = PASS ] || FAIL=1
}

START=$SECONDS
for impl in "${UMV_IMPLS[@]}"; do run_impl "$impl"; done
echo "tcp: $(( SECONDS - START ))s, $([ $FAIL = 0 ] && echo PASS || echo FAIL)"
exit $FAIL
