#!/usr/bin/env bash
# modes_matrix.sh [--impl kernel|umacvlan|both] [-v]
#
# For every ordered pair of modes (private, vepa, bridge) for devices a and b,
# without and with hairpin on the switch port facing the lower, on a fresh
# topology each time, measure seven yes/no checks:
#   1 a>b     a pings b
#   2 a>x     a pings x (outside host)
#   3 x>a     x pings a
#   4 b>x     b pings x
#   5 bc>b    a broadcast ARP request sent by a is seen on b (tcpdump -p on mvb)
#   6 bc>x    the same broadcast is seen by x
#   7 static  a pings b with permanent ARP entries on both sides
# The results are checked against the expected table (the measured table of
# shared/spec/macvlan-semantics.md plus what its rules imply; the kernel is the
# oracle). With --impl both, kernel and umacvlan are printed side by side and
# any difference fails the run.
# Exit: 0 all as expected/identical, 1 mismatch or difference, 2 setup error.

set -uo pipefail
. "$(dirname "$0")/lib.sh"
umv_init "$@"

# UMV_MODES / UMV_HAIRPINS narrow the matrix for debugging (a partial run
# still checks the expected table for the rows it ran).
read -r -a MODES <<<"${UMV_MODES:-private vepa bridge}"
read -r -a HAIRPINS <<<"${UMV_HAIRPINS:-off on}"
CHECKS=(a\>b a\>x x\>a b\>x bc\>b bc\>x static)
declare -A RES       # RES[impl|ma/mb|hp] = "c1 c2 c3 c4 c5 c6 c7"
ORDER=()             # "ma/mb|hp" in run order
FAIL=0

# Expected results. Source: "T" = the spec's measured table, "R" = the spec's
# rules (frames from the wire / sent by a device). The kernel wins: if it
# disagrees, the run fails and the disagreement is printed.
expected() {   # ma mb hp -> 7 words
    local ma=$1 mb=$2 hp=$3 c1 c5 c7
    if [ "$ma" = bridge ] && [ "$mb" = bridge ]; then c1=yes
    elif [ "$ma" = private ] || [ "$mb" = private ]; then c1=no
    elif [ "$hp" = on ]; then c1=yes
    else c1=no; fi
    if [ "$hp" = off ]; then
        { [ "$ma" = bridge ] && [ "$mb" = bridge ]; } && c5=yes || c5=no
        { [ "$ma" = bridge ] && [ "$mb" = bridge ]; } && c7=yes || c7=no
    else
        { [ "$ma" != private ] && [ "$mb" != private ]; } && c5=yes || c5=no
        c7=yes
    fi
    echo "$c1 yes yes yes $c5 yes $c7"
}
# Which expected cells come from the measured table (T) vs the rules (R).
exp_source() { # ma mb hp checkidx
    case "$4" in
        1|2|3|4) echo T ;;
        7) if [ "$3" = off ] && [ "$1/$2" = bridge/bridge ]; then echo R; else echo T; fi ;;
        *) echo R ;;
    esac
}

run_scenario() {   # impl ma mb hp idx
    local impl=$1 ma=$2 mb=$3 hp=$4 idx=$5 key="$2/$3|$4"
    local c1=ERR c2=ERR c3=ERR c4=ERR c5=ERR c6=ERR c7=ERR
    if umv_topo_up "${impl:0:1}$idx" "$hp" &&
       umv_mkdev mva "$ma" "$NS_A" 10.77.0.11/24 &&
       umv_mkdev mvb "$mb" "$NS_B" 10.77.0.12/24; then
        local mac_a mac_b pb pxx ob ox
        mac_a=$(umv_mac "$NS_A" mva); mac_b=$(umv_mac "$NS_B" mvb)
        # 1-4 run concurrently (independent traffic), while 5-6 are measured.
        local d="$TOPO_DIR"
        umv_bg_yn "$d/c1" umv_ping "$NS_A" 10.77.0.12
        umv_bg_yn "$d/c2" umv_ping "$NS_A" 10.77.0.1
        umv_bg_yn "$d/c3" umv_ping "$NS_X" 10.77.0.11
        umv_bg_yn "$d/c4" umv_ping "$NS_B" 10.77.0.1
        # 5, 6: one broadcast ARP request from a (for an unused address), two captures.
        local filt="arp and ether src $mac_a and ether broadcast and arp dst host 10.77.0.99"
        if umv_cap_start "$NS_B" mvb "$filt"; then
            pb=$UMV_CAP_PID; ob=$UMV_CAP_OUT
            if umv_cap_start "$NS_X" xeth "$filt"; then
                pxx=$UMV_CAP_PID; ox=$UMV_CAP_OUT
                umv_arp_probe "$NS_A" mva 10.77.0.99 10.77.0.11 2 ||
                    umv_log "[$impl] arp probe from a failed"
                umv_wait_for "$UMV_CAP_WAIT" umv_file_has_lines "$ob" "$ox"
                umv_cap_stop "$pxx"
                c6=$(umv_cap_seen "$ox")
            fi
            umv_cap_stop "$pb"
            c5=$(umv_cap_seen "$ob")
            if [ "$UMV_VERBOSE" = 1 ]; then
                umv_log "  capture on b:"; grep . "$ob" | sed 's/^/    /' >&2
                umv_log "  capture on x:"; grep . "${ox:-/dev/null}" | sed 's/^/    /' >&2
            fi
        fi
        umv_bg_wait
        c1=$(umv_bg_get "$d/c1"); c2=$(umv_bg_get "$d/c2")
        c3=$(umv_bg_get "$d/c3"); c4=$(umv_bg_get "$d/c4")
        # 7: static ARP on both sides.
        ip -n "$NS_A" neigh replace 10.77.0.12 lladdr "$mac_b" dev mva nud permanent &&
        ip -n "$NS_B" neigh replace 10.77.0.11 lladdr "$mac_a" dev mvb nud permanent &&
            c7=$(umv_yn umv_ping "$NS_A" 10.77.0.12)
    else
        umv_log "[$impl] $ma/$mb hairpin $hp: setup failed"
    fi
    umv_topo_down
    RES["$impl|$key"]="$c1 $c2 $c3 $c4 $c5 $c6 $c7"
    printf '%-9s %-15s %-7s %-5s %-5s %-5s %-5s %-5s %-5s %-6s\n' \
        "$impl" "$ma/$mb" "$hp" "$c1" "$c2" "$c3" "$c4" "$c5" "$c6" "$c7"
}

header() {
    printf '%-9s %-15s %-7s %-5s %-5s %-5s %-5s %-5s %-5s %-6s\n' \
        impl modeA/modeB hairpin "${CHECKS[@]}"
}

START=$SECONDS
for impl in "${UMV_IMPLS[@]}"; do
    umv_set_impl "$impl"
    echo "== $impl: MV=$MV"
    header
    idx=0
    ORDER=()
    for hp in "${HAIRPINS[@]}"; do
        for ma in "${MODES[@]}"; do
            for mb in "${MODES[@]}"; do
                idx=$((idx + 1))
                ORDER+=("$ma/$mb|$hp")
                run_scenario "$impl" "$ma" "$mb" "$hp" "$idx"
            done
        done
    done
done

# Check against the expected table (the kernel must match it; so must umacvlan).
echo
for impl in "${UMV_IMPLS[@]}"; do
    nbad=0
    for key in "${ORDER[@]}"; do
        pair=${key%|*}; hp=${key#*|}
        read -r -a got <<<"${RES[$impl|$key]}"
        read -r -a exp <<<"$(expected "${pair%/*}" "${pair#*/}" "$hp")"
        for i in 0 1 2 3 4 5 6; do
            if [ "${got[$i]}" != "${exp[$i]}" ]; then
                echo "MISMATCH vs spec [$impl] $pair hairpin $hp check $((i + 1)) ${CHECKS[$i]}:" \
                     "got ${got[$i]}, spec($(exp_source "${pair%/*}" "${pair#*/}" "$hp" $((i + 1)))) expects ${exp[$i]}"
                nbad=$((nbad + 1))
            fi
        done
    done
    if [ $nbad = 0 ]; then
        echo "[$impl] all ${#ORDER[@]} scenarios x 7 checks match the expected (spec) table"
    else
        echo "[$impl] $nbad cell(s) differ from the expected (spec) table"
        FAIL=1
    fi
done

# Side-by-side comparison.
if [ ${#UMV_IMPLS[@]} -eq 2 ]; then
    echo
    echo "== comparison: kernel | umacvlan   (checks: ${CHECKS[*]})"
    ndiff=0
    for key in "${ORDER[@]}"; do
        k=${RES[kernel|$key]}; u=${RES[umacvlan|$key]}
        mark=same
        [ "$k" != "$u" ] && { mark=DIFF; ndiff=$((ndiff + 1)); }
        printf '%-15s %-4s | %-34s | %-34s %s\n' "${key%|*}" "${key#*|}" "$k" "$u" "$mark"
    done
    if [ $ndiff = 0 ]; then
        echo "kernel and umacvlan identical on all ${#ORDER[@]} scenarios"
    else
        echo "kernel and umacvlan differ on $ndiff scenario(s)"
        FAIL=1
    fi
fi

echo "modes_matrix: $(( SECONDS - START ))s, $([ $FAIL = 0 ] && echo PASS || echo FAIL)"
exit $FAIL
