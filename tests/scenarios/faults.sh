#!/usr/bin/env bash
# faults.sh [--impl kernel|umacvlan|both] [-v]
#
# What happens to the lower, and what the devices must do about it, with the
# kernel's macvlan as the oracle. A bridge device a (mva, ns A, 10.77.0.11)
# and one that stays in the lower's namespace (mvh, ns H, no address), on
# lower0 (lib.sh topology), a fresh topology per case:
#   1 lower down   ip link set lower0 down: a loses its carrier, a>x fails;
#                  lower0 up: LOWER_UP again, a>x answers
#   2 lower rename lower0 -> lowerX (down, rename, up): mvh shows @lowerX, a
#                  device added with `link lowerX` joins the same port (its
#                  usedbcqueuelen follows mvh's bcqueuelen), a>x answers
#   3 lower moved  ip link set lower0 netns H2: the devices stay, without
#                  carrier; lower0 up in H2: a>x answers; H2 deleted: a goes
#   4 lower's namespace deleted: a goes, and the lower's veth peer with it
#                  (nothing keeps H alive); H made again with the same names:
#                  a new a follows the carrier (peer down: NO-CARRIER; up:
#                  LOWER_UP) and answers
# Expected values are the kernel's (6.18) measured behaviour; with --impl
# both, any kernel/umacvlan difference fails the run.
# Exit: 0 as expected (and identical with --impl both), 1 otherwise, 2 setup error.

# shellcheck disable=SC2317  # the case functions are called as "case$N"
set -uo pipefail
. "$(dirname "$0")/lib.sh"
umv_init "$@"

SETTLE=3

flags_of() { ip -n "$1" -o link show "$2" 2>/dev/null | sed -n 's/^[0-9]*: [^ ]*: <\([^>]*\)>.*/\1/p'; }
has_flag() { case ",$(flags_of "$1" "$2")," in *",$3,"*) echo yes ;; *) echo no ;; esac; }
present() { if ip -n "$1" link show "$2" >/dev/null 2>&1; then echo present; else echo gone; fi; }
lower_of() { umv_mv "$1" link show "$2" 2>/dev/null | sed -n '1s/^[0-9]*: [^@]*@\([^:]*\):.*/\1/p'; }
used_bcq() { umv_mv "$1" -d link show "$2" 2>/dev/null | sed -n 's/.*usedbcqueuelen \([0-9]*\).*/\1/p'; }

# topo TAG: fresh topology with a (bridge, ns A) and mvh (bridge, ns H).
topo() {
    umv_topo_up "$1" off &&
        umv_mkdev mva bridge "$NS_A" 10.77.0.11/24 &&
        umv_mkdev mvh bridge "$NS_H" "" bcqueuelen 4000
}

case1() {   # lower admin down / up
    topo "$1" || { umv_rec "1: setup" ERR ok; return; }
    umv_rec "1: a>x before" "$(umv_yn umv_ping "$NS_A" 10.77.0.1)" yes
    ip -n "$NS_H" link set lower0 down
    umv_rec "1: lower down: a NO-CARRIER" "$(umv_settle yes "$SETTLE" has_flag "$NS_A" mva NO-CARRIER)" yes
    umv_rec "1: lower down: a>x" "$(umv_yn umv_ping "$NS_A" 10.77.0.1)" no
    ip -n "$NS_H" link set lower0 up
    umv_rec "1: lower up: a LOWER_UP" "$(umv_settle yes "$SETTLE" has_flag "$NS_A" mva LOWER_UP)" yes
    umv_wait_for 5 umv_link_ready "$NS_H" lower0
    umv_rec "1: lower up: a>x" "$(umv_yn umv_ping "$NS_A" 10.77.0.1 5)" yes
    umv_topo_down
}

case2() {   # lower renamed
    topo "$1" || { umv_rec "2: setup" ERR ok; return; }
    ip -n "$NS_H" link set lower0 down &&
        ip -n "$NS_H" link set lower0 name lowerX &&
        ip -n "$NS_H" link set lowerX up
    umv_rec "2: rename (rc)" "$?" 0
    umv_wait_for 5 umv_link_ready "$NS_H" lowerX
    umv_rec "2: mvh shows its lower as" "$(umv_settle lowerX "$SETTLE" lower_of "$NS_H" mvh)" lowerX
    local rc msg
    umv_run_capture rc msg umv_mv "$NS_H" link add link lowerX name mvn type macvlan mode bridge
    umv_rec "2: add on lowerX (rc)" "$rc" 0
    umv_rec "2: the new device shares the port (usedbcqueuelen)" "$(used_bcq "$NS_H" mvn)" 4000
    umv_rec "2: a>x after the rename" "$(umv_yn umv_ping "$NS_A" 10.77.0.1 5)" yes
    umv_topo_down
}

case3() {   # lower moved to another namespace
    topo "$1" || { umv_rec "3: setup" ERR ok; return; }
    local h2="${UMV_PFX}${UMV_TOPO}-h2"
    umv_ns_add "$h2"
    ip -n "$NS_H" link set lower0 netns "$h2"
    umv_rec "3: move lower0 (rc)" "$?" 0
    umv_rec "3: moved: a still there" "$(present "$NS_A" mva)" present
    umv_rec "3: moved: mvh still there" "$(present "$NS_H" mvh)" present
    umv_rec "3: moved: a NO-CARRIER" "$(umv_settle yes "$SETTLE" has_flag "$NS_A" mva NO-CARRIER)" yes
    ip -n "$h2" link set lower0 up
    umv_wait_for 5 umv_link_ready "$h2" lower0
    umv_rec "3: lower0 up in H2: a LOWER_UP" "$(umv_settle yes "$SETTLE" has_flag "$NS_A" mva LOWER_UP)" yes
    umv_rec "3: lower0 up in H2: a>x" "$(umv_yn umv_ping "$NS_A" 10.77.0.1 5)" yes
    umv_ns_delete "$h2"
    umv_rec "3: H2 deleted: a" "$(umv_settle gone "$SETTLE" present "$NS_A" mva)" gone
    umv_rec "3: H2 deleted: mvh" "$(umv_settle gone "$SETTLE" present "$NS_H" mvh)" gone
    umv_topo_down
}

case4() {   # the lower's namespace deleted, then made again
    topo "$1" || { umv_rec "4: setup" ERR ok; return; }
    ip netns del "$NS_H"
    umv_rec "4: H deleted: a" "$(umv_settle gone "$SETTLE" present "$NS_A" mva)" gone
    umv_rec "4: H deleted: the lower's peer swp0" "$(umv_settle gone "$SETTLE" present "$NS_SW" swp0)" gone
    # The same names again.
    umv_ns_add "$NS_H"
    ip -n "$NS_H" link add lower0 type veth peer name swp0 netns "$NS_SW" &&
        ip -n "$NS_SW" link set swp0 master br0 &&
        ip -n "$NS_SW" link set swp0 up &&
        ip -n "$NS_H" link set lower0 address "$UMV_LMAC" &&
        ip -n "$NS_H" link set lower0 up
    umv_rec "4: H made again (rc)" "$?" 0
    umv_wait_for 5 umv_link_ready "$NS_H" lower0
    umv_mkdev mva bridge "$NS_A" 10.77.0.11/24
    umv_rec "4: new a>x" "$(umv_yn umv_ping "$NS_A" 10.77.0.1 5)" yes
    ip -n "$NS_SW" link set swp0 down
    umv_rec "4: peer down: new a NO-CARRIER" "$(umv_settle yes "$SETTLE" has_flag "$NS_A" mva NO-CARRIER)" yes
    ip -n "$NS_SW" link set swp0 up
    umv_rec "4: peer up: new a LOWER_UP" "$(umv_settle yes "$SETTLE" has_flag "$NS_A" mva LOWER_UP)" yes
    umv_rec "4: peer up: new a>x" "$(umv_yn umv_ping "$NS_A" 10.77.0.1 5)" yes
    umv_topo_down
}

run_impl() {
    local impl=$1 c t0
    umv_set_impl "$impl"
    for c in ${UMV_CASES:-1 2 3 4}; do
        t0=$SECONDS
        "case$c" "${impl:0:1}f$c"
        umv_vlog "[$impl] case $c: $((SECONDS - t0))s"
    done
}

START=$SECONDS
for impl in "${UMV_IMPLS[@]}"; do run_impl "$impl"; done
umv_report "faults around the lower (expected = kernel 6.18 measured)"; rc=$?
umv_print_notes
echo "faults: $((SECONDS - START))s, $([ $rc = 0 ] && echo PASS || echo FAIL)"
exit $rc
