#!/usr/bin/env bash
# churn.sh [--seconds N] [-v]
#
# Devices come, move, change and go while traffic flows (umacvlan only): the
# short form runs in `make test` on the AddressSanitizer build, `make soak`
# runs it for 10 minutes. Two bridge devices a (mva, ns A, 10.77.0.11) and b
# (mvb, ns B, 10.77.0.12) stay put and ping each other every 20 ms the whole
# time (traffic the kernel would deliver); around them, round after round:
# a device is added in the lower's namespace (a random mode), moved to a
# churn namespace, addressed, brought up, given a new MAC and MTU with plain
# ip, changed with `umacvlan link set` (mode, and the source list when it is
# in source mode), brought down, and deleted (with umacvlan, with plain ip,
# or by deleting its namespace); every few rounds the daemon's own view is
# listed with `umacvlan -d -s -j link show`.
# Pass: no ping between a and b lost, the daemon never restarted or died,
# its fds are back where they started, every round's commands succeeded,
# and (AddressSanitizer builds) no report in ASAN_OPTIONS' log_path when
# the daemon stops. Printed: rounds, pings sent and lost, peak RSS, fds.
# Exit: 0 as expected, 1 otherwise, 2 setup error.

set -uo pipefail
UMV_DEFAULT_IMPL=umacvlan
DURATION=20
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) DURATION=$2; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
. "$(dirname "$0")/lib.sh"
umv_init "${args[@]}" --impl umacvlan

MODES=(bridge vepa private source bridge)
daemon_pid() { umv_daemon_pids "$UMACVLAN_SOCKET" | head -1; }
fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
rss_kb() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

FAILED_CMDS=0
must() { "$@" >>"$UMV_TMP/churn.log" 2>&1 || { FAILED_CMDS=$((FAILED_CMDS + 1)); echo "FAILED: $*" >>"$UMV_TMP/churn.log"; }; }

round() {
    local i=$1 ns="${UMV_PFX}ch-c$(( $1 % 3 ))" name="chn$1" mode=${MODES[$(( $1 % 5 ))]}
    local mac
    mac=$(printf '02:cc:%02x:%02x:00:01' $(( (i >> 8) & 255 )) $(( i & 255 )))
    [ -e "/run/netns/$ns" ] || umv_ns_add "$ns"
    must umv_mv "$NS_H" link add link lower0 name "$name" type macvlan mode "$mode"
    must ip -n "$NS_H" link set "$name" netns "$ns"
    must ip -n "$ns" addr add "10.88.$(( i % 250 )).$(( 1 + i % 3 ))/24" dev "$name"
    must ip -n "$ns" link set "$name" up
    must ip -n "$ns" link set "$name" address "$mac"
    must ip -n "$ns" link set "$name" mtu 1400
    if [ "$mode" = source ]; then
        must umv_mv "$ns" link set dev "$name" type macvlan macaddr add 02:00:00:00:aa:01
        must umv_mv "$ns" link set dev "$name" type macvlan macaddr set 02:00:00:00:aa:02 02:00:00:00:aa:03
    else
        must umv_mv "$ns" link set dev "$name" type macvlan mode vepa
        must umv_mv "$ns" link set dev "$name" type macvlan mode bridge bcqueuelen $(( 100 + i ))
    fi
    must ip -n "$ns" link set "$name" down
    case $(( i % 3 )) in
        0) must umv_mv "$ns" link del "$name" ;;
        1) must ip -n "$ns" link del "$name" ;;
        2) umv_ns_delete "$ns" ;;
    esac
    if [ $(( i % 10 )) = 0 ]; then must umv_mv "$NS_A" -d -s -j link show; fi
}

run() {
    umv_set_impl umacvlan
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$UMV_TMP/asan"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$UMV_TMP/ubsan"
    if ! umv_topo_up ch off ||
       ! umv_mkdev mva bridge "$NS_A" 10.77.0.11/24 ||
       ! umv_mkdev mvb bridge "$NS_B" 10.77.0.12/24; then
        umv_log "setup failed"
        return 2
    fi
    umv_ping "$NS_A" 10.77.0.12 5 >/dev/null || umv_log "warning: a>b did not answer before the test"
    # Warm up (the first devices open what the port keeps), then count.
    round 0
    local pid fds0 fds1
    pid=$(daemon_pid)
    fds0=$(fd_count "$pid")
    ip netns exec "$NS_A" ping -i 0.02 -w $((DURATION + 2)) 10.77.0.12 >"$UMV_TMP/ping.out" 2>&1 &
    local ppid=$!
    echo "$ppid" >>"$UMV_TMP/pids"
    sleep 0.5
    local end=$((SECONDS + DURATION)) i=1
    while [ $SECONDS -lt $end ]; do
        round "$i"
        i=$((i + 1))
    done
    wait "$ppid" 2>/dev/null
    local c
    for c in 0 1 2; do umv_ns_delete "${UMV_PFX}ch-c$c"; done
    sleep 0.5
    fds1=$(fd_count "$pid")
    local sent recv rss
    sent=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$UMV_TMP/ping.out")
    recv=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$UMV_TMP/ping.out")
    rss=$(rss_kb "$pid")
    umv_rec "rounds of churn" "$([ "$i" -gt 1 ] && echo yes || echo no)" yes
    umv_rec "commands that failed" "$FAILED_CMDS" 0
    umv_rec "pings a>b lost" "$(( ${sent:-0} - ${recv:-0} ))" 0
    umv_rec "the daemon is the one it was" "$([ "$(daemon_pid)" = "$pid" ] && echo yes || echo no)" yes
    umv_rec "its fds are back where they started" "$([ "$fds1" -le "$fds0" ] && echo yes || echo "no ($fds0 -> $fds1)")" yes
    umv_note "$((i - 1)) rounds in ${DURATION}s; pings a>b: ${sent:-0} sent, $(( ${sent:-0} - ${recv:-0} )) lost; peak RSS ${rss:-?} kB; fds $fds0 -> $fds1"
    [ "$FAILED_CMDS" = 0 ] || umv_note "failed commands: $(grep -c FAILED "$UMV_TMP/churn.log"); first: $(grep -m1 -A2 FAILED "$UMV_TMP/churn.log" | tr '\n' ' ')"
    umv_topo_down
    # The daemon has stopped: a sanitizer reports at exit.
    local reports
    reports=$(cat "$UMV_TMP"/asan* "$UMV_TMP"/ubsan* 2>/dev/null | grep -c "ERROR: \(Address\|Leak\)Sanitizer\|runtime error:")
    umv_rec "sanitizer reports" "$reports" 0
    [ "$reports" = 0 ] || cat "$UMV_TMP"/asan* "$UMV_TMP"/ubsan* >&2
}

START=$SECONDS
run; rc=$?
[ $rc = 2 ] && exit 2
umv_report "churn while traffic flows (umacvlan only)"; rc=$?
umv_print_notes
echo "churn: $((SECONDS - START))s, $([ $rc = 0 ] && echo PASS || echo FAIL)"
exit $rc
