#!/usr/bin/env bash
# errors.sh [--impl kernel|umacvlan|both] [-v]
#
# Bad inputs. Each case runs one "$MV ..." command in the host namespace and
# records its exit code and first stderr line, and whether the namespace's
# state ("ip -d link show" + "$MV -d link show mvs0") is unchanged afterwards.
# The expected exit codes are those measured with iproute2 6.1 on kernel 6.18
# (1 = refused by the command-line parser, 2 = refused by the kernel,
# 255 = incomplete command line). With --impl both the exit codes and state
# outcomes of kernel and umacvlan must be equal; messages are printed side by
# side but not compared.
#
# Setup (host namespace): lower0 with mvb0 (bridge, up), mvc0 (bridge, up),
# mvs0 (source, down), mvdup (bridge, down, MAC = mvb0's); lower1 (a veth whose
# peer is also in the host namespace) with mvp1 (passthru, up).
# Exit: 0 as expected (and identical with --impl both), 1 otherwise, 2 setup error.

set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/error_cases.sh"
umv_init "$@"

declare -A RC=() MSG=() ST=() DESC=() ERC=() EST=()
IDS=()

snapshot() {   # -> file $1
    {
        ip -n "$NS_H" -d link show
        echo "--- $MV -d link show mvs0"
        umv_mv "$NS_H" -d link show mvs0 2>&1
    } >"$1"
}

# tcase ID DESCRIPTION EXPECTED_RC EXPECTED_STATE(same|changed) MV-ARGS...
tcase() {
    local id=$1 desc=$2 erc=$3 est=$4; shift 4
    local before="$UMV_TMP/snap.before" after="$UMV_TMP/snap.after" rc msg st
    if [ -z "${DESC[$id]:-}" ]; then IDS+=("$id"); DESC[$id]=$desc; ERC[$id]=$erc; EST[$id]=$est; fi
    snapshot "$before"
    umv_run_capture rc msg umv_mv "$NS_H" "$@"
    snapshot "$after"
    if cmp -s "$before" "$after"; then st=same; else st=changed; fi
    if [ "$st" = changed ]; then
        umv_vlog "$id state change:"; [ "$UMV_VERBOSE" = 1 ] && diff "$before" "$after" >&2
        # put things back for the next case: a new "mve" is the only expected change
        if ip -n "$NS_H" link show mve >/dev/null 2>&1; then
            st="changed ($(umv_show "$NS_H" mve))"
            umv_mv "$NS_H" link del mve >/dev/null 2>&1
        fi
    fi
    RC[$UMV_IMPL|$id]=$rc; MSG[$UMV_IMPL|$id]=$msg; ST[$UMV_IMPL|$id]=$st
}


run_impl() {
    umv_set_impl "$1"
    if ! errors_setup; then
        umv_topo_down
        SETUP_FAILED=1
        return
    fi
    error_cases
    umv_topo_down
}

START=$SECONDS
SETUP_FAILED=0
for impl in "${UMV_IMPLS[@]}"; do run_impl "$impl"; done

FAIL=$SETUP_FAILED
echo "== errors (expected = iproute2 6.1 + kernel 6.18 measured)"
printf '%-4s %-34s %-4s' id case exp
for i in "${UMV_IMPLS[@]}"; do printf ' %-8s' "${i:0:8}"; done
printf ' %-28s %s\n' state status
for id in "${IDS[@]}"; do
    st=ok; rcs=(); sts=()
    for i in "${UMV_IMPLS[@]}"; do
        r=${RC[$i|$id]-?}; s=${ST[$i|$id]-?}
        rcs+=("$r"); sts+=("$s")
        [ "$r" = "${ERC[$id]}" ] && [ "$s" = "${EST[$id]}" ] || st=MISMATCH
    done
    if [ ${#UMV_IMPLS[@]} -eq 2 ] && { [ "${rcs[0]}" != "${rcs[1]}" ] || [ "${sts[0]}" != "${sts[1]}" ]; }; then
        [ "$st" = ok ] && st=DIFF || st="$st+DIFF"
    fi
    [ "$st" = ok ] || FAIL=1
    printf '%-4s %-34s %-4s' "$id" "${DESC[$id]}" "${ERC[$id]}"
    for r in "${rcs[@]}"; do printf ' %-8s' "$r"; done
    stshow=${sts[0]}
    [ ${#sts[@]} -eq 2 ] && [ "${sts[0]}" != "${sts[1]}" ] && stshow="${sts[0]} | ${sts[1]}"
    [ "$stshow" != "${EST[$id]}" ] && [ "$st" != ok ] && stshow="$stshow (exp ${EST[$id]})"
    printf ' %-28s %s\n' "$stshow" "$st"
    for i in "${UMV_IMPLS[@]}"; do
        printf '       %-9s %s\n' "$i:" "${MSG[$i|$id]-}"
    done
done
echo "errors: $(( SECONDS - START ))s, $([ "$FAIL" = 0 ] && echo PASS || echo FAIL)"
exit "$FAIL"
