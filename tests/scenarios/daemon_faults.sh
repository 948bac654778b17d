#!/usr/bin/env bash
# daemon_faults.sh [-v]
#
# Faults of the daemon's own, and who may use it (umacvlan only). Bridge
# device a (mva, ns A, 10.77.0.11) on lower0 (lib.sh topology):
#   1 lower down for 3 s: the daemon's CPU time stays under 5% of the wall
#     time (no busy loop on the lower's socket error); up again: a>x answers
#   2 100 add/del cycles: the daemon holds as many fds after them as before
#   3 out of file descriptors (RLIMIT_NOFILE lowered to what it holds, then
#     20 clients that connect and say nothing): no busy loop (CPU under 5%
#     for 2 s), a `link add` meanwhile fails with a message and leaves
#     nothing behind, and once the clients are gone requests work again
#   4 a change the kernel refuses (a TAP's MTU tops out at 65521; the lower's
#     is 65535): `link set mtu 65530` reports the refusal (exit 2, a message)
#     and changes nothing; a later `link set mtu 9000` works; a new device
#     on that lower takes 65521 (the kernel's macvlan would take 65535)
#   5 an unprivileged user (made with useradd, run with runuser): the CLI
#     says it needs root or CAP_NET_ADMIN and creates nothing; even with the
#     socket opened up to everyone, the daemon refuses it (EPERM) and it
#     cannot create, change or list devices
#   6 spoofchk: b (mvb, ns B) captures what a sends; a frame a sends with a
#     source MAC not its own reaches b while spoofchk is off (the kernel's
#     behaviour), not once `link set mva type macvlan spoofchk on`; a's own
#     frames (ping) still do
#   7 limits: a daemon started with --max-devices 3 --max-sources 2 refuses
#     the 4th device and a source list of 3 (exit 2, a message), and
#     nothing is left behind
# Exit: 0 as expected, 1 otherwise, 2 setup error.

set -uo pipefail
UMV_DEFAULT_IMPL=umacvlan
. "$(dirname "$0")/lib.sh"
umv_init "$@" --impl umacvlan

UNPRIV=umvtest$$
CLK_TCK=$(getconf CLK_TCK)

daemon_pid() { umv_daemon_pids "$UMACVLAN_SOCKET" | head -1; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
mtu_of() { ip -n "$1" -o link show "$2" 2>/dev/null | sed -n 's/.* mtu \([0-9]*\) .*/\1/p'; }
present() { if ip -n "$1" link show "$2" >/dev/null 2>&1; then echo present; else echo gone; fi; }

# "yes" when pid used less than 5% of a core over $2 seconds, else "no (N%)".
cpu_below_5pct() {
    local pid=$1 secs=$2 t0 t1 pct
    t0=$(cpu_ticks "$pid")
    sleep "$secs"
    t1=$(cpu_ticks "$pid")
    pct=$(awk -v d=$((t1 - t0)) -v s="$secs" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", 100 * d / hz / s }')
    umv_note "CPU over ${secs} s: ${pct}% of a core"
    awk -v p="$pct" 'BEGIN { exit !(p < 5) }' && echo yes || echo "no (${pct}%)"
}

remove_user() { userdel "$UNPRIV" >/dev/null 2>&1 || true; }

run() {
    umv_set_impl umacvlan
    if ! umv_topo_up df off || ! umv_mkdev mva bridge "$NS_A" 10.77.0.11/24; then
        umv_log "setup failed"
        return 2
    fi
    local pid rc msg
    pid=$(daemon_pid)

    # 1: lower down.
    ip -n "$NS_H" link set lower0 down
    sleep 0.5
    umv_rec "1: lower down: daemon CPU under 5% for 3 s" "$(cpu_below_5pct "$pid" 3)" yes
    ip -n "$NS_H" link set lower0 up
    umv_wait_for 5 umv_link_ready "$NS_A" mva
    umv_rec "1: lower up: a>x" "$(umv_yn umv_ping "$NS_A" 10.77.0.1 5)" yes

    # 2: fd leak.
    local i before after
    for i in 1 2 3; do
        umv_mv "$NS_H" link add link lower0 name mvt type macvlan mode bridge >/dev/null 2>&1
        umv_mv "$NS_H" link del mvt >/dev/null 2>&1
    done
    before=$(fd_count "$pid")
    for i in $(seq 1 100); do
        umv_mv "$NS_H" link add link lower0 name mvt up type macvlan mode bridge >/dev/null 2>&1 ||
            umv_log "add $i failed"
        umv_mv "$NS_H" link del mvt >/dev/null 2>&1 || umv_log "del $i failed"
    done
    after=$(fd_count "$pid")
    umv_note "2: daemon fds before $before, after 100 add/del cycles $after"
    umv_rec "2: fds after 100 add/del cycles" "$([ "$after" -le "$before" ] && echo same || echo "more ($before -> $after)")" same

    # 3: out of file descriptors.
    local held limits
    held=$(fd_count "$pid")
    limits=$(prlimit --pid "$pid" --nofile --output SOFT --noheadings | tr -d ' ')
    prlimit --pid "$pid" --nofile=$((held + 2)):
    local pids=()
    for i in $(seq 1 20); do
        ip netns exec "$NS_H" "$UMV_PYTHON" "$UMV_PY" hostile "$UMACVLAN_SOCKET" silent --seconds 4 \
            >/dev/null 2>&1 &
        pids+=($!); echo $! >>"$UMV_TMP/pids"
    done
    sleep 0.5
    umv_rec "3: out of fds: daemon CPU under 5% for 2 s" "$(cpu_below_5pct "$pid" 2)" yes
    umv_run_capture rc msg umv_mv "$NS_H" link add link lower0 name mvfd type macvlan mode bridge
    umv_note "3: link add while out of fds: exit $rc: $msg"
    umv_rec "3: link add while out of fds fails" "$([ "$rc" != 0 ] && echo yes || echo no)" yes
    umv_rec "3: ... and leaves nothing behind" "$(present "$NS_H" mvfd)" gone
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    prlimit --pid "$pid" --nofile="$limits":
    umv_rec "3: the daemon survived" "$([ "$(daemon_pid)" = "$pid" ] && echo yes || echo no)" yes
    umv_run_capture rc msg umv_mv "$NS_H" link add link lower0 name mvfd type macvlan mode bridge
    umv_rec "3: fds back: link add works" "$rc" 0
    umv_mv "$NS_H" link del mvfd >/dev/null 2>&1

    # 4: a kernel refusal on link set.
    ip -n "$NS_H" link set lower0 mtu 65535
    umv_run_capture rc msg umv_mv "$NS_A" link set mva mtu 65530
    umv_note "4: link set mtu 65530: exit $rc: $msg"
    umv_rec "4: mtu 65530 refused by the kernel (rc)" "$rc" 2
    umv_rec "4: ... with a message" "$([ -n "$msg" ] && echo yes || echo no)" yes
    umv_rec "4: ... mtu unchanged" "$(mtu_of "$NS_A" mva) $(umv_mv "$NS_A" -d link show mva | sed -n 's/.* mtu \([0-9]*\) .*/\1/p')" "1500 1500"
    umv_run_capture rc msg umv_mv "$NS_A" link set mva mtu 9000
    umv_rec "4: then mtu 9000 (rc)" "$rc" 0
    umv_rec "4: ... mtu 9000" "$(mtu_of "$NS_A" mva)" 9000
    umv_run_capture rc msg umv_mv "$NS_H" link add link lower0 name mvbig type macvlan mode bridge
    umv_rec "4: a new device on that lower (rc)" "$rc" 0
    umv_rec "4: ... takes the highest MTU a TAP can" "$(mtu_of "$NS_H" mvbig)" 65521
    umv_mv "$NS_H" link del mvbig >/dev/null 2>&1
    ip -n "$NS_A" link set mva mtu 1500
    ip -n "$NS_H" link set lower0 mtu 1500

    # 5: an unprivileged user.
    trap 'remove_user; umv_cleanup' EXIT
    useradd --no-create-home --shell /usr/sbin/nologin "$UNPRIV" 2>/dev/null || true
    if ! id "$UNPRIV" >/dev/null 2>&1; then
        umv_rec "5: useradd" failed ok
    else
        umv_run_capture rc msg ip netns exec "$NS_H" runuser -u "$UNPRIV" -- env UMACVLAN_SOCKET="$UMACVLAN_SOCKET" \
            "$MV" link add link lower0 name mvu type macvlan mode bridge
        umv_note "5: as $UNPRIV: exit $rc: $msg"
        umv_rec "5: unprivileged link add refused" "$([ "$rc" != 0 ] && echo yes || echo no)" yes
        umv_rec "5: ... the CLI says why" "$(case "$msg" in *"root or CAP_NET_ADMIN"*) echo yes ;; *) echo no ;; esac)" yes
        umv_rec "5: ... nothing created" "$(present "$NS_H" mvu)" gone
        # Open the socket to everyone: the daemon's own check must refuse.
        chmod 0711 "$UMV_TMP"; chmod 0755 "$(dirname "$UMACVLAN_SOCKET")"; chmod 0666 "$UMACVLAN_SOCKET"
        umv_run_capture rc msg ip netns exec "$NS_H" runuser -u "$UNPRIV" -- env UMACVLAN_SOCKET="$UMACVLAN_SOCKET" \
            "$MV" link add link lower0 name mvu type macvlan mode bridge
        umv_note "5: as $UNPRIV through an open socket: exit $rc: $msg"
        umv_rec "5: open socket: the daemon refuses link add (rc)" "$rc" 2
        umv_rec "5: ... the daemon says why" "$(case "$msg" in *"the daemon refused"*) echo yes ;; *) echo no ;; esac)" yes
        umv_rec "5: ... still nothing created" "$(present "$NS_H" mvu)" gone
        umv_run_capture rc msg ip netns exec "$NS_A" runuser -u "$UNPRIV" -- env UMACVLAN_SOCKET="$UMACVLAN_SOCKET" \
            "$MV" link set mva down
        umv_rec "5: open socket: link set refused (rc)" "$rc" 2
        umv_rec "5: ... mva still up" "$(ip -n "$NS_A" link show mva | grep -c ',UP')" 1
        local shown
        shown=$(ip netns exec "$NS_A" runuser -u "$UNPRIV" -- env UMACVLAN_SOCKET="$UMACVLAN_SOCKET" \
            "$MV" link show 2>/dev/null | grep -c mva)
        umv_rec "5: open socket: link show lists nothing" "$shown" 0
        chmod 0600 "$UMACVLAN_SOCKET"; chmod 0700 "$(dirname "$UMACVLAN_SOCKET")" "$UMV_TMP"
        remove_user
    fi
    # 6: spoofchk.
    umv_mkdev mvb bridge "$NS_B" 10.77.0.12/24 || umv_log "creating mvb failed"
    local bmac spoof=02:99:00:00:00:99
    bmac=$(umv_mac "$NS_B" mvb)
    spoof_seen() {
        umv_cap_start "$NS_B" mvb "ether src $spoof" || { echo ERR; return; }
        ip netns exec "$NS_A" "$UMV_PYTHON" "$UMV_PY" send-frame mva "$bmac" "$spoof" --count 3
        sleep 1
        umv_cap_stop "$UMV_CAP_PID"
        umv_cap_seen "$UMV_CAP_OUT"
    }
    umv_rec "6: spoofchk off: a's spoofed frame reaches b" "$(spoof_seen)" yes
    umv_run_capture rc msg umv_mv "$NS_A" link set dev mva type macvlan spoofchk on
    umv_rec "6: spoofchk on (rc)" "$rc" 0
    umv_rec "6: shown in -d" "$(umv_mv "$NS_A" -d link show mva | grep -c 'spoofchk on')" 1
    umv_rec "6: spoofchk on: a's spoofed frame reaches b" "$(spoof_seen)" no
    umv_rec "6: spoofchk on: a>b still answers" "$(umv_yn umv_ping "$NS_A" 10.77.0.12)" yes

    # 7: limits, on a daemon started by hand with lower ones.
    pid=$(daemon_pid)
    kill -TERM "$pid"
    umv_wait_for 5 sh -c "! kill -0 $pid 2>/dev/null"
    ip netns exec "$NS_D" "$MV" daemon --socket "$UMACVLAN_SOCKET" --max-devices 3 --max-sources 2 \
        --log-file "$TOPO_DIR/limits.log" </dev/null >/dev/null 2>&1 &
    echo $! >>"$UMV_TMP/pids"
    umv_wait_for 5 test -S "$UMACVLAN_SOCKET"
    umv_run_capture rc msg umv_mv "$NS_H" link add link lower0 name mvl3 type macvlan mode bridge
    umv_rec "7: 3rd device (rc)" "$rc" 0
    umv_run_capture rc msg umv_mv "$NS_H" link add link lower0 name mvl4 type macvlan mode bridge
    umv_note "7: 4th device: exit $rc: $msg"
    umv_rec "7: 4th device refused (rc)" "$rc" 2
    umv_rec "7: ... says the limit" "$(case "$msg" in *limit*) echo yes ;; *) echo no ;; esac)" yes
    umv_rec "7: ... nothing left behind" "$(present "$NS_H" mvl4)" gone
    umv_mv "$NS_H" link del mvl3 >/dev/null 2>&1
    umv_run_capture rc msg umv_mv "$NS_H" link add link lower0 name mvl5 type macvlan mode source \
        macaddr set 02:00:00:00:aa:01 02:00:00:00:aa:02 02:00:00:00:aa:03
    umv_note "7: 3 source entries: exit $rc: $msg"
    umv_rec "7: 3 source entries refused (rc)" "$rc" 2
    umv_rec "7: ... nothing left behind" "$(present "$NS_H" mvl5)" gone
    umv_topo_down
}

START=$SECONDS
run; rc=$?
[ $rc = 2 ] && exit 2
umv_report "the daemon's own faults (umacvlan only)"; rc=$?
umv_print_notes
echo "daemon_faults: $((SECONDS - START))s, $([ $rc = 0 ] && echo PASS || echo FAIL)"
exit $rc
