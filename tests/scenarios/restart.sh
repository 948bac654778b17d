#!/usr/bin/env bash
# restart.sh [-v]
#
# Restarts lose nothing (umacvlan only: the kernel's macvlan never restarts).
# Two bridge devices a (mva, ns A, 10.77.0.11) and b (mvb, ns B, 10.77.0.12)
# on lower0, plus two devices in the lower's namespace that carry every
# setting the state file must keep: mvs (source nodst, two remotes, down) and
# mvq (vepa, bcqueuelen 3000, spoofchk on, down).
#   1 kill -9 while ping a>b, ping a>x and iperf3 a>b run; the next CLI call
#     starts a new daemon: the pings answer again, iperf3 runs on to the end
#     with traffic after the restart, `umacvlan -d -j link show` (in H, A and
#     B, counters left out) is identical before and after
#   2 kill -9, then `umacvlan daemon` started by hand: the same
#   3 SIGTERM (a clean stop): the devices stay (ip link show), the next start
#     lists them identically and a>b answers again
#   4 a corrupt state file: moved aside with a logged reason; the daemon
#     starts empty and the kernel's devices are left alone
#   5 a crash in the middle of `link add`s (made by hand after a kill -9):
#     a pending record whose TAP was made is adopted, one whose TAP was
#     not is dropped; a stale nftables table of this daemon's in the
#     lower's namespace is removed by the next start, its live table stays
#   6 kill -9 right after five `link add`s (the state file is written whole
#     at the next tick; until then the journal of adds holds them): all five
#     come back, with their mode; the next start folds the journal into the
#     state file
#   7 `umacvlan daemon --cleanup`: every device goes, and the state file
# Exit: 0 as expected, 1 otherwise, 2 setup error.

set -uo pipefail
UMV_DEFAULT_IMPL=umacvlan
. "$(dirname "$0")/lib.sh"
umv_init "$@" --impl umacvlan
command -v iperf3 >/dev/null 2>&1 || umv_die "missing tool: iperf3"

IPERF_SECONDS=8

daemon_pid() { umv_daemon_pids "$UMACVLAN_SOCKET" | head -1; }

# The macvlan view of every device in H, A and B, counters and indexes left out.
show_all() {
    local ns
    for ns in "$NS_H" "$NS_A" "$NS_B"; do
        umv_mv "$ns" -d -j link show 2>/dev/null |
            "$UMV_PYTHON" -c '
import json, sys
for l in json.load(sys.stdin):
    l.pop("stats64", None)
    print(json.dumps(l, sort_keys=True))'
    done
}

# Replies after a point in time: ping -D prints "[epoch] 64 bytes from ...".
replies_after() {
    awk -v t="$2" -F'[][]' '/bytes from/ && $2 + 0 > t { n++ } END { print n + 0 }' "$1"
}

wait_gone() { umv_wait_for 5 sh -c "! kill -0 $1 2>/dev/null"; }

iperf_listening() { ip netns exec "$NS_B" ss -Hltn 'sport = :5201' 2>/dev/null | grep -q .; }

# Seconds of iperf3 intervals that moved bytes, after epoch second $2.
iperf_after() {
    "$UMV_PYTHON" - "$1" "$2" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception:
    print("no-result"); sys.exit()
start = d.get("start", {}).get("timestamp", {}).get("timesecs", 0)
t = float(sys.argv[2])
moved = sum(1 for i in d.get("intervals", [])
            if start + i["sum"]["end"] > t and i["sum"]["bytes"] > 0)
print(moved)
EOF
}

# One kill -9 and restart, started again by `how` (cli or daemon).
crash_and_restart() {
    local how=$1 tag=$2 before="$UMV_TMP/before-$2" after="$UMV_TMP/after-$2"
    local pid t_kill spid ppid1 ppid2 cpid
    show_all >"$before"
    ip netns exec "$NS_B" iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
    spid=$!; echo "$spid" >>"$UMV_TMP/pids"
    umv_wait_for 10 iperf_listening || umv_log "iperf3 server did not listen"
    ip netns exec "$NS_A" ping -D -i 0.1 -w $((IPERF_SECONDS + 2)) 10.77.0.12 >"$UMV_TMP/ping-ab-$tag" 2>&1 &
    ppid1=$!; echo "$ppid1" >>"$UMV_TMP/pids"
    ip netns exec "$NS_A" ping -D -i 0.1 -w $((IPERF_SECONDS + 2)) 10.77.0.1 >"$UMV_TMP/ping-ax-$tag" 2>&1 &
    ppid2=$!; echo "$ppid2" >>"$UMV_TMP/pids"
    ip netns exec "$NS_A" iperf3 -c 10.77.0.12 -p 5201 -t "$IPERF_SECONDS" -i 0.5 -J \
        >"$UMV_TMP/iperf-$tag.json" 2>/dev/null &
    cpid=$!; echo "$cpid" >>"$UMV_TMP/pids"
    sleep 2
    pid=$(daemon_pid)
    t_kill=$(date +%s.%N)
    kill -KILL "$pid"
    wait_gone "$pid"
    umv_rec "$tag: daemon killed (kill -9)" "$(kill -0 "$pid" 2>/dev/null && echo no || echo yes)" yes
    umv_rec "$tag: devices still there" \
        "$(ip -n "$NS_A" link show mva >/dev/null 2>&1 && ip -n "$NS_B" link show mvb >/dev/null 2>&1 && echo yes || echo no)" yes
    sleep 0.5
    if [ "$how" = cli ]; then
        umv_mv "$NS_H" link show >/dev/null 2>&1   # starts a daemon on demand
    else
        ip netns exec "$NS_D" "$MV" daemon --socket "$UMACVLAN_SOCKET" --log-file "$TOPO_DIR/daemon-$tag.log" \
            </dev/null >/dev/null 2>&1 &
        echo $! >>"$UMV_TMP/pids"
        umv_wait_for 5 test -S "$UMACVLAN_SOCKET"
    fi
    umv_rec "$tag: a new daemon runs" "$([ -n "$(daemon_pid)" ] && [ "$(daemon_pid)" != "$pid" ] && echo yes || echo no)" yes
    wait "$cpid" 2>/dev/null; wait "$ppid1" 2>/dev/null; wait "$ppid2" 2>/dev/null
    umv_kill_pids "$spid"; wait "$spid" 2>/dev/null
    local t_back
    t_back=$(awk -v t="$t_kill" 'BEGIN { printf "%.3f", t + 1.5 }')
    umv_rec "$tag: ping a>b answers after the restart" \
        "$([ "$(replies_after "$UMV_TMP/ping-ab-$tag" "$t_back")" -gt 0 ] && echo yes || echo no)" yes
    umv_rec "$tag: ping a>x answers after the restart" \
        "$([ "$(replies_after "$UMV_TMP/ping-ax-$tag" "$t_back")" -gt 0 ] && echo yes || echo no)" yes
    local moved
    moved=$(iperf_after "$UMV_TMP/iperf-$tag.json" "$t_back")
    umv_rec "$tag: iperf3 moves data after the restart" \
        "$([[ "$moved" =~ ^[0-9]+$ ]] && [ "$moved" -gt 0 ] && echo yes || echo no)" yes
    show_all >"$after"
    umv_rec "$tag: -d -j link show identical" "$(cmp -s "$before" "$after" && echo yes || echo no)" yes
    cmp -s "$before" "$after" || diff "$before" "$after" >&2
}

run() {
    umv_set_impl umacvlan
    if ! umv_topo_up rs off ||
       ! umv_mkdev mva bridge "$NS_A" 10.77.0.11/24 ||
       ! umv_mkdev mvb bridge "$NS_B" 10.77.0.12/24 ||
       ! umv_mv "$NS_H" link add link lower0 name mvs type macvlan mode source nodst \
            macaddr set 02:00:00:00:00:31 02:00:00:00:00:32 ||
       ! umv_mv "$NS_H" link add link lower0 name mvq type macvlan mode vepa bcqueuelen 3000 spoofchk on; then
        umv_log "setup failed"
        return 2
    fi
    umv_ping "$NS_A" 10.77.0.12 >/dev/null || umv_log "warning: a>b did not answer before the test"
    [ "$(show_all | wc -l)" = 4 ] || umv_log "warning: show lists $(show_all | wc -l) devices, not 4"

    crash_and_restart cli 1
    crash_and_restart daemon 2

    # 3: a clean stop.
    local before="$UMV_TMP/before-3" after="$UMV_TMP/after-3" pid
    show_all >"$before"
    pid=$(daemon_pid)
    kill -TERM "$pid"; wait_gone "$pid"
    umv_rec "3: SIGTERM stops the daemon" "$(kill -0 "$pid" 2>/dev/null && echo no || echo yes)" yes
    umv_rec "3: devices stay after a clean stop" \
        "$(ip -n "$NS_A" link show mva >/dev/null 2>&1 && ip -n "$NS_H" link show mvq >/dev/null 2>&1 && echo yes || echo no)" yes
    show_all >"$after"
    umv_rec "3: -d -j link show identical" "$(cmp -s "$before" "$after" && echo yes || echo no)" yes
    cmp -s "$before" "$after" || diff "$before" "$after" >&2
    umv_rec "3: a>b after the restart" "$(umv_yn umv_ping "$NS_A" 10.77.0.12 3)" yes

    # 4: a corrupt state file.
    local state="${UMACVLAN_SOCKET%.sock}.state.json"
    pid=$(daemon_pid)
    kill -TERM "$pid"; wait_gone "$pid"
    echo '{"umacvlan_state": 1, "ports": [ {"lower": "garbage"' >"$state"
    umv_rec "4: show after a corrupt state (devices)" "$(show_all | wc -l)" 0
    umv_rec "4: the corrupt file is moved aside" \
        "$(ls "$state".corrupt-* >/dev/null 2>&1 && echo yes || echo no)" yes
    umv_rec "4: the daemon says why" \
        "$(grep -q "not a valid state" "${UMACVLAN_SOCKET%.sock}.log" && echo yes || echo no)" yes
    umv_rec "4: the kernel's devices are left alone" \
        "$(ip -n "$NS_A" link show mva >/dev/null 2>&1 && echo yes || echo no)" yes

    # 5: leftovers of a crashed run (on a port made again after case 4).
    umv_mv "$NS_H" link add link lower0 name mvc type macvlan mode bridge >/dev/null 2>&1
    local table inst
    table=$(ip netns exec "$NS_H" nft list tables netdev 2>/dev/null | awk '/umacvlan_/ { print $3; exit }')
    inst=$(echo "$table" | sed -n 's/^umacvlan_\([0-9a-f]*\)_.*/\1/p')
    if [ -z "$inst" ]; then
        umv_rec "5: the daemon's nftables table" "not found" found
    else
        # The records below go into the whole file, which holds mvc's port
        # once the daemon's tick has written it (the journal then goes).
        umv_wait_for 5 test ! -e "$state.adds" || umv_log "5: the journal was not folded in"
        pid=$(daemon_pid)
        kill -KILL "$pid"; wait_gone "$pid"
        ip netns exec "$NS_H" nft add table netdev "umacvlan_${inst}_99"
        # Two `link add`s cut short: one had made its TAP, one had not.
        ip -n "$NS_H" tuntap add mode tap multi_queue vnet_hdr name mvp1
        "$UMV_PYTHON" - "$state" "$(stat -L -c %i "/run/netns/$NS_H")" <<'PY'
import json, sys
path, ns = sys.argv[1], int(sys.argv[2])
st = json.load(open(path))
for name in ("mvp1", "mvp2"):
    st["ports"][0]["devices"].append({
        "name": name, "ifindex": 0, "netns": ns, "mac": "02:00:00:00:77:01", "mode": "bridge",
        "flags": 0, "bcqueuelen": 1000, "sources": [], "spoofchk": False, "mtu": 1500,
        "up": False, "pending": True})
json.dump(st, open(path, "w"))
PY
        umv_mv "$NS_H" link show >/dev/null 2>&1   # starts a daemon on demand
        umv_rec "5: stale nftables table removed" \
            "$(ip netns exec "$NS_H" nft list tables netdev | grep -q "umacvlan_${inst}_99" && echo no || echo yes)" yes
        umv_rec "5: live nftables table kept" \
            "$(ip netns exec "$NS_H" nft list tables netdev | grep -q "$table" && echo yes || echo no)" yes
        umv_rec "5: pending add whose TAP was made: adopted" \
            "$(umv_mv "$NS_H" link show mvp1 >/dev/null 2>&1 && echo yes || echo no)" yes
        umv_rec "5: pending add without a TAP: dropped" \
            "$(grep -c "mvp2: its .link add. was cut short before" "${UMACVLAN_SOCKET%.sock}.log")" 1
        umv_mv "$NS_H" link del mvp1 >/dev/null 2>&1
    fi

    # 6: kill -9 right after adds: the same shell kills it as the fifth
    # returns, before the daemon's tick writes the whole file (most runs).
    pid=$(daemon_pid)
    ip netns exec "$NS_H" sh -c '
        for i in 1 2 3 4 5; do "$1" link add link lower0 name "mvj$i" type macvlan mode vepa || exit 1; done
        [ -e "$2" ] && echo "journal there at the kill" || echo "no journal at the kill (a tick wrote the file)"
        kill -KILL "$3"' _ "$MV" "$state.adds" "$pid" >"$UMV_TMP/journal.out" 2>&1
    umv_log "6: $(tail -1 "$UMV_TMP/journal.out")"
    wait_gone "$pid"
    local back=0
    for i in 1 2 3 4 5; do
        umv_mv "$NS_H" -d link show "mvj$i" 2>/dev/null | grep -q "macvlan mode vepa" && back=$((back + 1))
    done
    umv_rec "6: devices added right before a kill -9, back with their mode" "$back" 5
    umv_rec "6: the start folded the journal into the state file" \
        "$([ -e "$state.adds" ] && echo no || echo yes)" yes
    for i in 1 2 3 4 5; do umv_mv "$NS_H" link del "mvj$i" >/dev/null 2>&1; done

    # 7: --cleanup.
    pid=$(daemon_pid)
    kill -TERM "$pid"; wait_gone "$pid"
    ip netns exec "$NS_D" "$MV" daemon --socket "$UMACVLAN_SOCKET" --cleanup >/dev/null 2>&1
    umv_rec "7: --cleanup exit code" "$?" 0
    umv_rec "7: --cleanup removed the device" \
        "$(ip -n "$NS_H" link show mvc >/dev/null 2>&1 && echo no || echo yes)" yes
    umv_rec "7: --cleanup removed the state file" "$([ -e "$state" ] && echo no || echo yes)" yes
    umv_topo_down
}

START=$SECONDS
run; rc=$?
[ $rc = 2 ] && exit 2
umv_report "restart (umacvlan only)"; rc=$?
echo "restart: $((SECONDS - START))s, $([ $rc = 0 ] && echo PASS || echo FAIL)"
exit $rc
