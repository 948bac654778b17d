#!/usr/bin/env bash
# source.sh [--impl kernel|umacvlan|both] [-v]
#
# Source mode, on fresh topologies (see lib.sh). lower0 gets 10.77.0.2/24 in
# the host namespace; a source-mode device s (mvs, no address) lives in ns A,
# a bridge-mode device b (10.77.0.12) in ns B; x is 10.77.0.1.
#  s: "mode source" + "macaddr add <x>": s gets a copy of x's unicast and
#     broadcast frames while the lower's stack and b still get them; after
#     "macaddr del <x>" s gets nothing from x (source devices never get floods).
#  d: "mode source nodst" + "macaddr add <x>": x's frames stop at s: x cannot
#     reach the lower's stack (dynamic or static ARP) nor b; after
#     "macaddr flush" everything works again and s sees nothing.
#  m: leaving source mode empties the list; the mode change back shows 0 remotes.
# Expected values are the kernel's measured behaviour (spec: macvlan-semantics.md).
# Exit: 0 as expected (and identical with --impl both), 1 otherwise, 2 setup error.

set -uo pipefail
. "$(dirname "$0")/lib.sh"
umv_init "$@"

# capture_during NS IF FILTER CMD... : start a capture, run CMD (its yes/no goes
# to $CD_RESULT), wait a bounded time for a frame, stop; $CD_SEEN = yes/no.
capture_during() {
    local ns=$1 ifc=$2 filt=$3; shift 3
    CD_SEEN=ERR; CD_RESULT=ERR
    umv_cap_start "$ns" "$ifc" "$filt" || return 0
    local pid=$UMV_CAP_PID out=$UMV_CAP_OUT
    CD_RESULT=$(umv_yn "$@")
    umv_wait_for "$UMV_CAP_WAIT" umv_file_has_lines "$out"
    umv_cap_stop "$pid"
    CD_SEEN=$(umv_cap_seen "$out")
}

# show DEV NS: umv_show with x's MAC written as <x>.
show() { local v; v=$(umv_show "$2" "$1"); echo "${v//$XMAC/<x>}"; }

# setup_source MODEARGS... : lower0 address, source device mvs (list: x) in A,
# bridge device mvb in B.
setup_source() {
    # shellcheck disable=SC2034  # msg is set by umv_run_capture
    local rc msg p=$1; shift
    ip -n "$NS_H" addr add 10.77.0.2/24 dev lower0
    XMAC=$(umv_mac "$NS_X" xeth)
    LMAC=$(umv_mac "$NS_H" lower0)
    umv_run_capture rc msg umv_mv "$NS_H" link add link lower0 name mvs type macvlan "$@"
    umv_rec "$p: create $* (rc)" "$rc" 0
    umv_run_capture rc msg umv_mv "$NS_H" link set dev mvs type macvlan macaddr add "$XMAC"
    umv_rec "$p: macaddr add <x> (rc)" "$rc" 0
    SHOW=$(show mvs "$NS_H")
    ip -n "$NS_H" link set mvs netns "$NS_A" && ip -n "$NS_A" link set mvs up || return 1
    umv_wait_for 5 umv_link_ready "$NS_A" mvs
    umv_mkdev mvb bridge "$NS_B" 10.77.0.12/24 || return 1
}

run_impl() {
    # shellcheck disable=SC2034
    local impl=$1 rc msg
    umv_set_impl "$impl"
    local fx fb

    # ---- s: source without nodst
    if umv_topo_up "${impl:0:1}s" off && setup_source s mode source; then
        umv_rec "s: -d link show" "$SHOW" "mode source remotes (1) <x>"
        fx="icmp and ether src $XMAC"
        capture_during "$NS_A" mvs "$fx" umv_ping "$NS_X" 10.77.0.2
        umv_rec "s: x pings lower0" "$CD_RESULT" yes
        umv_rec "s: s sees x's unicast (icmp)" "$CD_SEEN" yes
        fb="arp and ether src $XMAC and ether broadcast and arp dst host 10.77.0.99"
        capture_during "$NS_A" mvs "$fb" umv_arp_probe "$NS_X" xeth 10.77.0.99 10.77.0.1 2
        umv_rec "s: s sees x's broadcast (arp)" "$CD_SEEN" yes
        umv_rec "s: x pings b" "$(umv_yn umv_ping "$NS_X" 10.77.0.12)" yes
        umv_run_capture rc msg umv_mv "$NS_A" link set dev mvs type macvlan macaddr del "$XMAC"
        umv_rec "s: macaddr del <x> (rc)" "$rc" 0
        umv_rec "s: -d link show after del" "$(show mvs "$NS_A")" "mode source remotes (0)"
        capture_during "$NS_A" mvs "$fx" umv_ping "$NS_X" 10.77.0.2
        umv_rec "s: x pings lower0 after del" "$CD_RESULT" yes
        umv_rec "s: s sees x's unicast after del" "$CD_SEEN" no
        capture_during "$NS_A" mvs "$fb" umv_arp_probe "$NS_X" xeth 10.77.0.99 10.77.0.1 2
        umv_rec "s: s sees x's broadcast after del" "$CD_SEEN" no
    else
        umv_rec "s: setup" ERR ok
    fi
    umv_topo_down

    # ---- d: source nodst
    if umv_topo_up "${impl:0:1}d" off && setup_source d mode source nodst; then
        umv_rec "d: -d link show" "$SHOW" "mode source nodst remotes (1) <x>"
        capture_during "$NS_A" mvs "ether src $XMAC" umv_ping "$NS_X" 10.77.0.2
        umv_rec "d: x pings lower0" "$CD_RESULT" no
        umv_rec "d: s sees x's frames" "$CD_SEEN" yes
        umv_rec "d: x pings b" "$(umv_yn umv_ping "$NS_X" 10.77.0.12)" no
        # unicast path alone: static ARP both ways between x and lower0
        ip -n "$NS_X" neigh replace 10.77.0.2 lladdr "$LMAC" dev xeth nud permanent
        ip -n "$NS_H" neigh replace 10.77.0.1 lladdr "$XMAC" dev lower0 nud permanent
        capture_during "$NS_A" mvs "icmp and ether src $XMAC" umv_ping "$NS_X" 10.77.0.2
        umv_rec "d: x pings lower0, static ARP" "$CD_RESULT" no
        umv_rec "d: s sees x's unicast (icmp)" "$CD_SEEN" yes
        umv_run_capture rc msg umv_mv "$NS_A" link set dev mvs type macvlan macaddr flush
        umv_rec "d: macaddr flush (rc)" "$rc" 0
        umv_rec "d: -d link show after flush" "$(show mvs "$NS_A")" "mode source nodst remotes (0)"
        capture_during "$NS_A" mvs "icmp and ether src $XMAC" umv_ping "$NS_X" 10.77.0.2
        umv_rec "d: x pings lower0 after flush, static" "$CD_RESULT" yes
        umv_rec "d: s sees x's unicast after flush" "$CD_SEEN" no
        ip -n "$NS_X" neigh flush dev xeth
        ip -n "$NS_X" neigh del 10.77.0.2 dev xeth 2>/dev/null
        umv_rec "d: x pings b after flush" "$(umv_yn umv_ping "$NS_X" 10.77.0.12)" yes

        # ---- m: mode changes on the same device (list emptied when leaving source)
        umv_run_capture rc msg umv_mv "$NS_A" link set dev mvs type macvlan macaddr set "$XMAC" 02:00:00:00:00:05
        umv_rec "m: macaddr set <x> <other> (rc)" "$rc" 0
        umv_rec "m: -d link show after set" "$(show mvs "$NS_A")" \
            "mode source nodst remotes (2) 02:00:00:00:00:05 <x>"
        umv_run_capture rc msg umv_mv "$NS_A" link set dev mvs type macvlan mode bridge flag null
        umv_rec "m: mode change source -> bridge (rc)" "$rc" 0
        umv_rec "m: -d link show as bridge" "$(show mvs "$NS_A")" "mode bridge"
        umv_run_capture rc msg umv_mv "$NS_A" link set dev mvs type macvlan mode source
        umv_rec "m: mode change bridge -> source (rc)" "$rc" 0
        umv_rec "m: -d link show back in source" "$(show mvs "$NS_A")" "mode source remotes (0)"
    else
        umv_rec "d: setup" ERR ok
    fi
    umv_topo_down
}

START=$SECONDS
for impl in "${UMV_IMPLS[@]}"; do run_impl "$impl"; done
umv_report "source mode (expected = kernel 6.18 measured)"; FAIL=$?
echo "source: $(( SECONDS - START ))s, $([ $FAIL = 0 ] && echo PASS || echo FAIL)"
exit $FAIL
