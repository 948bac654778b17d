#!/usr/bin/env bash
# rules.sh [--impl kernel|umacvlan|both] [-v]
#
# Rules of ../shared/spec/macvlan-semantics.md a user can see that the mode
# matrix does not: what known frames injected from outside do to devices,
# and what the lower and the devices' counters show afterwards.
#
# Topology (lib.sh): lower0 in NS_H, its peer swp0 on a bridge in NS_SW.
# Frames "from the wire" are sent with AF_PACKET on swp0 itself, so they
# reach lower0 whatever the bridge would filter (PAUSE, 01:80:c2:...).
# Devices: mva (bridge, 02:77:00:00:00:0a, in NS_A), mvb (bridge,
# 02:77:00:00:00:0b, in NS_B); later mvq alone (bcqueuelen 0).
#
# Rows:
#   shared MAC    a group frame from the wire whose S is mva's own MAC
#                 (another host sharing a VRRP MAC), mva allmulticast: the
#                 kernel delivers it since its 2026 fix (6.18 drops it):
#                 expected = the fixed kernel's, marked "fixed upstream".
#   promisc       lower0's promiscuity and allmulti counts with devices up,
#                 a device allmulticast on, promisc on, both off again.
#   groups        a group nobody joined: the allmulticast device gets it,
#                 its sibling does not.
#   PAUSE         PAUSE frames (to 01:80:c2:00:00:01 and to broadcast) never
#                 reach a device.
#   counters      a device's rx/tx packets and bytes in `ip -s -j` after
#                 known unicast, broadcast and sent frames.
#   bc queue      bcqueuelen 0: a broadcast burst reaches nobody; with bclim
#                 -1 (never queue) the same burst reaches the device whole.
# Exit: 0 every row same (or fixed upstream), 1 otherwise, 2 setup error.

set -uo pipefail
. "$(dirname "$0")/../scenarios/lib.sh"
umv_init "$@"
command -v tcpdump >/dev/null 2>&1 || umv_die "missing tool: tcpdump"

MAC_A=02:77:00:00:00:0a
MAC_B=02:77:00:00:00:0b
MAC_Q=02:77:00:00:00:0c
OUT=02:77:00:00:00:99
GROUP=01:00:5e:7f:00:01
VRRP=01:00:5e:00:00:12
ETH=0x88b5

# inject DST SRC COUNT [ETHERTYPE] [INTERVAL]: frames from the wire.
inject() {
    timeout 30 ip netns exec "$NS_SW" "$UMV_PYTHON" "$UMV_PY" send-frame swp0 "$1" "$2" \
        --count "$3" --ethertype "${4:-$ETH}" --interval "${5:-0.02}"
}

# count NS DEV FILTER CMD...: frames matching FILTER that DEV got while CMD ran.
count() {
    local ns=$1 dev=$2 filter=$3 pid out n; shift 3
    umv_cap_start "$ns" "$dev" "$filter" || { echo ERR; return 0; }
    pid=$UMV_CAP_PID out=$UMV_CAP_OUT
    "$@" >/dev/null 2>&1
    sleep 0.5
    umv_cap_stop "$pid"
    # One line per frame starts with its time; hex dumps of unknown
    # ethertypes follow on lines of their own.
    n=$(grep -cE '^[0-9]{2}:[0-9]{2}:' "$out" 2>/dev/null)
    echo "${n:-0}"
}

# lower_counts: "promiscuity N allmulti N" of lower0.
lower_counts() {
    ip -n "$NS_H" -d -j link show lower0 | "$UMV_PYTHON" -c '
import json, sys
d = json.load(sys.stdin)[0]
print("promiscuity %s allmulti %s" % (d.get("promiscuity", "?"), d.get("allmulti", "?")))'
}

# stats NS DEV: "rx P/B tx P/B" of ip -s -j link show.
stats() {
    ip -n "$1" -s -j link show "$2" | "$UMV_PYTHON" -c '
import json, sys
s = json.load(sys.stdin)[0]["stats64"]
print("%d %d %d %d" % (s["rx"]["packets"], s["rx"]["bytes"], s["tx"]["packets"], s["tx"]["bytes"]))'
}

# delta BEFORE AFTER: the difference of two stats lines.
delta() {
    local -a a b
    read -ra a <<<"$1"; read -ra b <<<"$2"
    echo "rx $((b[0] - a[0]))/$((b[1] - a[1])) tx $((b[2] - a[2]))/$((b[3] - a[3]))"
}

# mk NAME NS MAC [TYPE ARGS...]: a bridge device with a fixed MAC, moved to
# NS and up.
mk() {
    local name=$1 ns=$2 mac=$3; shift 3
    umv_mv "$NS_H" link add link lower0 name "$name" address "$mac" type macvlan mode bridge "$@" \
        >"$UMV_TMP/mk.err" 2>&1 || { umv_log "[$UMV_IMPL] $name: $(head -2 "$UMV_TMP/mk.err")"; return 1; }
    ip -n "$NS_H" link set "$name" netns "$ns" || return 1
    ip -n "$ns" link set "$name" up || return 1
    umv_wait_for 5 umv_link_ready "$ns" "$name"
}

run_impl() {
    umv_set_impl "$1"
    if ! umv_topo_up "${1:0:1}r" off ||
        ! mk mva "$NS_A" "$MAC_A" || ! mk mvb "$NS_B" "$MAC_B"; then
        umv_log "[$1] setup failed"
        umv_topo_down
        SETUP_FAILED=1
        return
    fi
    local s

    # -- the lower's promiscuity and allmulti counts
    sleep 0.5
    umv_rec "promisc: lower, 2 bridge devices up" "$(lower_counts)"
    ip -n "$NS_A" link set mva allmulticast on
    sleep 0.5
    umv_rec "promisc: lower, mva allmulticast" "$(lower_counts)"
    ip -n "$NS_A" link set mva promisc on
    sleep 0.5
    umv_rec "promisc: lower, mva promisc+allmulti" "$(lower_counts)"
    ip -n "$NS_A" link set mva promisc off
    sleep 0.5
    umv_rec "promisc: lower, mva promisc off" "$(lower_counts)"

    # -- a group nobody joined: the allmulticast device takes it
    umv_rec "groups: unjoined group to allmulti mva" \
        "$(count "$NS_A" mva "ether dst $GROUP" inject "$GROUP" "$OUT" 5)" 5
    umv_rec "groups: unjoined group to plain mvb" \
        "$(count "$NS_B" mvb "ether dst $GROUP" inject "$GROUP" "$OUT" 5)" 0

    # -- a group frame from another host that shares mva's MAC (VRRP)
    umv_rec "shared MAC: group from S=mva's MAC to mva" \
        "$(count "$NS_A" mva "ether src $MAC_A and ether dst $VRRP" inject "$VRRP" "$MAC_A" 3)" 3
    umv_upstream "shared MAC: group from S=mva's MAC to mva" \
        "kernels before the 2026 macvlan fix (6.18 here) drop it; umacvlan follows the fix"
    umv_rec "shared MAC: the same group to mvb" \
        "$(count "$NS_B" mvb "ether src $MAC_A and ether dst $VRRP" inject "$VRRP" "$MAC_A" 3)" 0
    ip -n "$NS_A" link set mva allmulticast off
    sleep 0.5
    umv_rec "promisc: lower, mva allmulticast off" "$(lower_counts)"

    # -- PAUSE frames are never flooded
    umv_rec "PAUSE: to 01:80:c2:00:00:01, mva got" \
        "$(count "$NS_A" mva "ether proto 0x8808" inject 01:80:c2:00:00:01 "$OUT" 3 0x8808)" 0
    umv_rec "PAUSE: to broadcast, mva got" \
        "$(count "$NS_A" mva "ether proto 0x8808" inject ff:ff:ff:ff:ff:ff "$OUT" 3 0x8808)" 0

    # -- counters after known traffic: 4 unicast and 3 broadcast frames of
    # 60 bytes in, 5 frames of 60 bytes out (to an outside MAC).
    local before after
    before=$(stats "$NS_A" mva)
    inject "$MAC_A" "$OUT" 4
    inject ff:ff:ff:ff:ff:ff "$OUT" 3
    timeout 30 ip netns exec "$NS_A" "$UMV_PYTHON" "$UMV_PY" send-frame mva "$OUT" "$MAC_A" \
        --count 5 --interval 0.02 >/dev/null 2>&1
    sleep 0.5
    after=$(stats "$NS_A" mva)
    umv_rec "counters: mva ip -s delta" "$(delta "$before" "$after")" "rx 7/420 tx 5/300"

    # -- the broadcast queue: bcqueuelen 0, then bclim -1
    ip -n "$NS_A" link del mva
    ip -n "$NS_B" link del mvb
    sleep 0.5
    if mk mvq "$NS_A" "$MAC_Q" bcqueuelen 0; then
        umv_rec "bc queue: bcqueuelen 0, 20 broadcasts, mvq got" \
            "$(count "$NS_A" mvq "ether proto $ETH" inject ff:ff:ff:ff:ff:ff "$OUT" 20 "$ETH" 0.01)" 0
        if [ "$UMV_IMPL" = kernel ]; then
            ip netns exec "$NS_A" "$UMV_PYTHON" "$UMV_PY" set-bclim mvq -1
        else
            umv_mv "$NS_A" link set mvq type macvlan bclim -1
        fi
        s=$?
        umv_rec "bc queue: bclim -1 accepted" "$s" 0
        sleep 0.5
        umv_rec "bc queue: bcqueuelen 0 + bclim -1, mvq got" \
            "$(count "$NS_A" mvq "ether proto $ETH" inject ff:ff:ff:ff:ff:ff "$OUT" 20 "$ETH" 0.01)" 20
    else
        SETUP_FAILED=1
    fi
    umv_topo_down
}

START=$SECONDS
SETUP_FAILED=0
for impl in "${UMV_IMPLS[@]}"; do run_impl "$impl"; done
umv_report "rules a user can see (expected: the kernel's, or its fix upstream)"
FAIL=$?
[ "$SETUP_FAILED" = 1 ] && FAIL=2
echo "rules: $((SECONDS - START))s, $([ "$FAIL" = 0 ] && echo PASS || echo FAIL)"
exit "$FAIL"
