#!/usr/bin/env bash
# passthru.sh [--impl kernel|umacvlan|both] [-v]
#
# Passthru mode, on fresh topologies (see lib.sh):
#  p: "mode passthru": the device takes the lower's MAC; the lower becomes
#     promiscuous while the device is up; any second device on that port is
#     refused (exit 2); a and x reach each other; setting the device's MAC sets
#     the lower's; deleting the device gives the lower its MAC back.
#  n: "mode passthru nopromisc": the lower's promiscuity stays 0, traffic works.
#  r: reference: a bridge-mode device on a veth lower (no unicast filter) makes
#     the lower promiscuous while it is up.
# Expected values are the kernel's measured behaviour (spec: macvlan-semantics.md).
# MAC changes and deletions go through $MV (ip's grammar); up/down/addresses
# and namespace moves through plain ip.
# Exit: 0 as expected (and identical with --impl both), 1 otherwise, 2 setup error.

set -uo pipefail
. "$(dirname "$0")/lib.sh"
umv_init "$@"

NEWMAC=02:00:00:aa:bb:01
SETTLE=3

mac_is() { [ "$(umv_mac "$1" "$2")" = "$3" ] && echo yes || echo no; }

run_impl() {
    # shellcheck disable=SC2034  # msg is set by umv_run_capture
    local impl=$1 rc msg orig
    umv_set_impl "$impl"

    # ---- p: passthru, promiscuous
    if umv_topo_up "${impl:0:1}p" off; then
        orig=$(umv_mac "$NS_H" lower0)
        umv_run_capture rc msg umv_mv "$NS_H" link add link lower0 name mvp type macvlan mode passthru
        umv_rec "p: create passthru (rc)" "$rc" 0
        umv_rec "p: device MAC = lower MAC" "$(mac_is "$NS_H" mvp "$orig")" yes
        umv_rec "p: -d link show" "$(umv_show "$NS_H" mvp)" "mode passthru"
        umv_rec "p: lower promiscuity, device down" "$(umv_promisc "$NS_H" lower0)" 0
        umv_run_capture rc msg umv_mv "$NS_H" link add link lower0 name mvq type macvlan mode bridge
        umv_rec "p: 2nd device, bridge (rc)" "$rc" 2
        umv_run_capture rc msg umv_mv "$NS_H" link add link lower0 name mvq type macvlan mode passthru
        umv_rec "p: 2nd device, passthru (rc)" "$rc" 2
        umv_run_capture rc msg umv_mv "$NS_H" link add link mvp name mvq type macvlan mode private
        umv_rec "p: 2nd device on top of mvp (rc)" "$rc" 2
        umv_rec "p: no 2nd device left behind" \
            "$(ip -n "$NS_H" link show mvq >/dev/null 2>&1 && echo no || echo yes)" yes
        ip -n "$NS_H" link set mvp netns "$NS_A" &&
            ip -n "$NS_A" addr add 10.77.0.11/24 dev mvp &&
            ip -n "$NS_A" link set mvp up
        umv_wait_for 5 umv_link_ready "$NS_A" mvp
        umv_rec "p: lower promiscuity, device up" "$(umv_settle 1 $SETTLE umv_promisc "$NS_H" lower0)" 1
        umv_rec "p: a pings x" "$(umv_yn umv_ping "$NS_A" 10.77.0.1)" yes
        umv_rec "p: x pings a" "$(umv_yn umv_ping "$NS_X" 10.77.0.11)" yes
        umv_run_capture rc msg umv_mv "$NS_A" link set dev mvp address "$NEWMAC"
        umv_rec "p: set device MAC (rc)" "$rc" 0
        umv_rec "p: lower MAC follows device MAC" \
            "$(umv_settle yes $SETTLE mac_is "$NS_H" lower0 "$NEWMAC")" yes
        ip -n "$NS_X" neigh flush dev xeth
        umv_rec "p: x pings a after MAC change" "$(umv_yn umv_ping "$NS_X" 10.77.0.11)" yes
        ip -n "$NS_A" link set mvp down
        umv_rec "p: lower promiscuity, device down again" \
            "$(umv_settle 0 $SETTLE umv_promisc "$NS_H" lower0)" 0
        umv_run_capture rc msg umv_mv "$NS_A" link del mvp
        umv_rec "p: delete device (rc)" "$rc" 0
        umv_rec "p: lower MAC restored after delete" \
            "$(umv_settle yes $SETTLE mac_is "$NS_H" lower0 "$orig")" yes
    else
        umv_rec "p: setup" ERR ok
    fi
    umv_topo_down

    # ---- n: passthru nopromisc, then r: reference bridge device on the same lower
    if umv_topo_up "${impl:0:1}n" off; then
        orig=$(umv_mac "$NS_H" lower0)
        umv_run_capture rc msg umv_mv "$NS_H" link add link lower0 name mvn type macvlan mode passthru nopromisc
        umv_rec "n: create passthru nopromisc (rc)" "$rc" 0
        umv_rec "n: device MAC = lower MAC" "$(mac_is "$NS_H" mvn "$orig")" yes
        umv_rec "n: -d link show" "$(umv_show "$NS_H" mvn)" "mode passthru nopromisc"
        ip -n "$NS_H" link set mvn netns "$NS_A" &&
            ip -n "$NS_A" addr add 10.77.0.11/24 dev mvn &&
            ip -n "$NS_A" link set mvn up
        umv_wait_for 5 umv_link_ready "$NS_A" mvn
        umv_rec "n: a pings x" "$(umv_yn umv_ping "$NS_A" 10.77.0.1)" yes
        umv_rec "n: x pings a" "$(umv_yn umv_ping "$NS_X" 10.77.0.11)" yes
        # promiscuity is read after the traffic, so a late change is seen too
        umv_rec "n: lower promiscuity, device up" "$(umv_promisc "$NS_H" lower0)" 0
        umv_run_capture rc msg umv_mv "$NS_A" link del mvn
        umv_rec "n: delete device (rc)" "$rc" 0

        umv_run_capture rc msg umv_mv "$NS_H" link add link lower0 name mvr type macvlan mode bridge
        umv_rec "r: create bridge device after (rc)" "$rc" 0
        ip -n "$NS_H" link set mvr up
        umv_rec "r: lower promiscuity, bridge dev up" "$(umv_settle 1 $SETTLE umv_promisc "$NS_H" lower0)" 1
        ip -n "$NS_H" link set mvr down
        umv_rec "r: lower promiscuity, bridge dev down" "$(umv_settle 0 $SETTLE umv_promisc "$NS_H" lower0)" 0
    else
        umv_rec "n: setup" ERR ok
    fi
    umv_topo_down
}

START=$SECONDS
for impl in "${UMV_IMPLS[@]}"; do run_impl "$impl"; done
umv_report "passthru (expected = kernel 6.18 measured)"; FAIL=$?
echo "passthru: $(( SECONDS - START ))s, $([ $FAIL = 0 ] && echo PASS || echo FAIL)"
exit $FAIL
