#!/usr/bin/env bash
# bench/run.sh - umacvlan against the kernel's macvlan and vde_switch, in one
# run, on one topology, the three alternating within each repeat (`make
# bench`; needs root). It reports; it never fails on a figure.
#
# What it measures (each figure the median of --repeat runs; each repeat
# runs kernel, then umacvlan, then vde, so slow drifts of a shared machine
# reach all three alike):
#   - first, once: the core's decision rate (build/src/core/
#     umacvlan_core_bench, Google Benchmark, 0.3 s per case), and what
#     this machine charges for a system call and for a wake-up round trip
#     between two threads, on one CPU and across two (bench/wakecost.cc):
#     the floor under ping through any userspace forwarder, printed under
#     the table and kept in the JSON's meta;
#   - TCP: iperf3 -t --seconds (one stream), device a to device b (bridge
#     mode), a to the outside host x through the lower, x to a (each run's
#     retransmissions go into the JSON), with the congestion control a new
#     namespace gets (net.ipv4.tcp_congestion_control, the host's; bbr on
#     this machine) or --cc NAME's (iperf3 -C); the table's header and the
#     JSON say which. a to b and a to x run once more with a second one
#     (--cc2 NAME; default cubic, or bbr when the first is cubic; "none"
#     skips them): pacing (bbr) against bursts (cubic) is where the
#     implementations differ most, so the table shows both;
#   - 64-byte frames (22 bytes of UDP payload) received per second, a to b
#     and a to x: bench/udpblast.cc (built into build/bench/ on first use)
#     sends with sendmmsg(2) as fast as it can for --seconds; the receiver
#     counts what its socket got (recvmmsg), first datagram to last. Not
#     iperf3: it writes one datagram per syscall and, on this machine, tops
#     out at a third of what the kernel's macvlan delivers (~200k vs ~520k
#     a second), so it would measure itself;
#   - UDP as QUIC stacks send it, a to b and a to x: udpblast --gso, 1400-byte
#     datagrams handed to the kernel 44 at a time (UDP_SEGMENT: one 61 KiB
#     super-frame that a device with UDP segmentation offload passes on
#     whole); the figure is again datagrams received per second;
#   - ping a to b: BENCH_PINGS (1000) requests BENCH_PING_INTERVAL (2 ms)
#     apart, p50 and p99 of the per-packet round trips (nearest rank);
#   - the forwarder's CPU per gigabit over the TCP a-to-b run: utime+stime
#     (/proc/PID/stat) of the umacvlan daemon, of vde_switch+vde_pcapplug;
#   - scale (skipped with --quick; kernel and umacvlan, vde shows "-"):
#     BENCH_SCALE_N (1000) more bridge devices up on lower0 in its
#     namespace, one CLI call each (`ip link add link lower0 name dN up type
#     macvlan mode bridge`, the same words to umacvlan; for umacvlan the
#     daemon is started first, off the clock), timed; TCP and 64-byte a to
#     b beside them; x sends 64-byte broadcasts at BENCH_BCAST_RATE (10000)
#     a second for BENCH_BCAST_SECONDS (3), and the copies per second are
#     the rise of the 1000 devices' rx_packets over the sending; umacvlan's
#     daemon: VmRSS with 1, 100 and 1000 devices, idle CPU (% of a core over
#     BENCH_IDLE_SECONDS, 5) with 1000; the deletion of the 1000, timed.
#     Each scale round first runs TCP and 64-byte a to b with a and b
#     alone, so that it has its own pair (the table's "1000 devs / 2 devs"
#     rows: the median of the rounds' quotients).
#     Each timed step gets BENCH_STEP_TIMEOUT (150) seconds at most and is
#     reported as "timeout" past that; that implementation's later scale
#     rounds are then skipped.
#
# Topology (tests/scenarios/lib.sh's umv_topo_up; namespaces "umvb-<id>-..."
# deleted on exit, also on failure and Ctrl-C; the host's namespace is never
# touched): ns H holds lower0 (veth) whose peer swp0 is on bridge br0 in ns
# SW with x (xeth 10.77.0.1, ns X); a is 10.77.0.11 (MAC 02:77:00:00:00:11,
# ns A), b 10.77.0.12 (02:77:00:00:00:12, ns B); IPv6 off everywhere; static
# neighbour entries for a, b and x, so no figure depends on ARP. Kernel and
# umacvlan make a and b on lower0 in H and move them to A and B; umacvlan's
# daemon is started on demand with a private socket (UMACVLAN_SOCKET) and
# lives in ns D (UMACVLAN_DAEMON_NETNS); it is stopped after each round.
# vde: vde_switch in ns V with two TAP ports (-t mva -t mvb) moved to A and
# B, and vde_pcapplug on lower0 in H plugging the switch onto the lower;
# both run only during vde's rounds. Two things make that plug work here:
# its capture in immediate mode (bench/pcap_immediate.c, LD_PRELOAD), and
# swp0 without TX checksum offload during vde's rounds (bench/txcsum.py),
# so that x's frames reach the lower segmented and checksummed, as off a
# wire (libpcap takes neither GSO super-frames nor partial checksums; the
# kernel and umacvlan take them whole). Otherwise the same device names,
# MACs, addresses and tool options for all three.
#
# Output: progress, then the table (medians, umacvlan/kernel and
# umacvlan/vde) on stdout; every run, the medians and the settings in a
# JSON file (--json PATH, default build/bench-<time>.json; `bench/report.py
# compare A.json B.json ...` puts runs side by side). Exit status: 0,
# 1 when a figure could not be measured (the table says "failed"), 2 when
# the topology or the helpers could not be made.
#
# Usage: bench/run.sh [--repeat N] [--seconds N] [--quick] [--cc NAME]
#                     [--cc2 NAME|none] [--only kernel|umacvlan|vde] [--json PATH]
# Environment: UMACVLAN_BIN, CORE_BENCH (defaults under build/), BENCH_BUILD
# (where the helpers are built, build/bench), and the BENCH_* above.
set -uo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_REPO=$(cd "$BENCH_DIR/.." && pwd)
BENCH_START=$(date +%s)

usage() {
    cat >&2 <<EOF
usage: $(basename "$0") [--repeat N] [--seconds N] [--quick] [--cc NAME] [--cc2 NAME|none] [--only kernel|umacvlan|vde] [--json PATH]
  --repeat N   runs per figure, the median is reported (default 3)
  --seconds N  seconds of each TCP and 64-byte run (default 4)
  --quick      skip the scale part (1000 devices)
  --cc NAME    TCP congestion control of the iperf3 runs (default: a new
               namespace's, net.ipv4.tcp_congestion_control)
  --cc2 NAME   a second congestion control for TCP dev>dev and dev>host
               (default: cubic, or bbr when the first is cubic; none: skip)
  --only IMPL  measure one implementation
  --json PATH  where to write the JSON (default build/bench-<time>.json)
EOF
}

REPEAT=3
SECS=4
QUICK=0
CC=""
CC2=""
ONLY=""
JSON_OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --repeat) [ $# -ge 2 ] || { usage; exit 2; }; REPEAT=$2; shift 2 ;;
        --seconds) [ $# -ge 2 ] || { usage; exit 2; }; SECS=$2; shift 2 ;;
        --quick) QUICK=1; shift ;;
        --cc) [ $# -ge 2 ] || { usage; exit 2; }; CC=$2; shift 2 ;;
        --cc2) [ $# -ge 2 ] || { usage; exit 2; }; CC2=$2; shift 2 ;;
        --only) [ $# -ge 2 ] || { usage; exit 2; }; ONLY=$2; shift 2 ;;
        --json) [ $# -ge 2 ] || { usage; exit 2; }; JSON_OUT=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage; exit 2 ;;
    esac
done
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || { echo "--repeat: a positive integer" >&2; exit 2; }
[[ "$SECS" =~ ^[1-9][0-9]*$ ]] || { echo "--seconds: a positive integer" >&2; exit 2; }
cc_available() { tr ' ' '\n' </proc/sys/net/ipv4/tcp_available_congestion_control | grep -qxF -- "$1"; }
# cc_check OPTION NAME: exit 2 unless this kernel has congestion control NAME.
cc_check() {
    cc_available "$2" && return
    echo "$1: \"$2\" is not available here ($(cat /proc/sys/net/ipv4/tcp_available_congestion_control))" >&2
    exit 2
}
[ -z "$CC" ] || cc_check --cc "$CC"
[ -z "$CC2" ] || [ "$CC2" = none ] || cc_check --cc2 "$CC2"
case "$ONLY" in
    "") IMPLS=(kernel umacvlan vde) ;;
    kernel|umacvlan|vde) IMPLS=("$ONLY") ;;
    *) usage; exit 2 ;;
esac
# A relative --json is the caller's; the defaults below are the repo's.
if [ -n "$JSON_OUT" ]; then
    case "$JSON_OUT" in /*) ;; *) JSON_OUT="$PWD/$JSON_OUT" ;; esac
fi
cd "$BENCH_REPO" || exit 2
[ -n "$JSON_OUT" ] || JSON_OUT="$BENCH_REPO/build/bench-$(date +%Y%m%d-%H%M%S).json"

CORE_BENCH=${CORE_BENCH:-build/src/core/umacvlan_core_bench}
BENCH_BUILD=${BENCH_BUILD:-build/bench}
UDPBLAST_BIN="$BENCH_BUILD/udpblast"
PCAP_SHIM="$BENCH_BUILD/pcap_immediate.so"
WAKECOST_BIN="$BENCH_BUILD/wakecost"
SCALE_N=${BENCH_SCALE_N:-1000}
STEP_TIMEOUT=${BENCH_STEP_TIMEOUT:-150}
BCAST_RATE=${BENCH_BCAST_RATE:-10000}
BCAST_SECONDS=${BENCH_BCAST_SECONDS:-3}
PINGS=${BENCH_PINGS:-1000}
PING_INTERVAL=${BENCH_PING_INTERVAL:-0.002}
IDLE_SECONDS=${BENCH_IDLE_SECONDS:-5}
[ "$SCALE_N" -ge 100 ] 2>/dev/null || { echo "BENCH_SCALE_N: at least 100" >&2; exit 2; }

IP_X=10.77.0.1 IP_A=10.77.0.11 IP_B=10.77.0.12
MAC_A=02:77:00:00:00:11 MAC_B=02:77:00:00:00:12
IPERF_PORT=5201 UDP_PORT=9100
CLK_TCK=$(getconf CLK_TCK)

# shellcheck source-path=SCRIPTDIR source=../tests/scenarios/lib.sh
. "$BENCH_REPO/tests/scenarios/lib.sh"
[ "$(id -u)" = 0 ] || umv_die "bench/run.sh needs root (network namespaces)"
for t in iperf3 ping ss c++ cc; do
    command -v "$t" >/dev/null 2>&1 || umv_die "missing tool: $t"
done
for i in "${IMPLS[@]}"; do
    case "$i" in
        umacvlan) umv_umacvlan_bin >/dev/null ;;
        vde) for t in vde_switch vde_pcapplug; do
                 command -v "$t" >/dev/null 2>&1 || umv_die "missing tool: $t (Debian package vde2)"
             done ;;
    esac
done
# shellcheck disable=SC2119 # the bench's options are parsed above, not by lib.sh
umv_init
UMV_PFX="umvb-${UMV_ID}-"          # the bench's namespaces, told apart from the tests'
RAW="$UMV_TMP/runs.jsonl"
: >"$RAW"
BENCH_FAILED=0
FWD_PIDS=()                        # the current implementation's userspace forwarder

say() { printf '%s\n' "$*"; }
elapsed() { local s=$(( $(date +%s) - BENCH_START )); printf '%d:%02d' $(( s / 60 )) $(( s % 60 )); }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# calc EXPR: floating point arithmetic (awk), "%.6g".
calc() { awk "BEGIN { printf \"%.6g\", $1 }"; }
is_num() { [[ "$1" =~ ^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]]; }

# rec FIGURE IMPL REPEAT VALUE [DETAIL_JSON]: one measurement (VALUE a number,
# or a word: failed, timeout, skipped).
rec() {
    local fig=$1 impl=$2 r=$3 v=$4 detail=${5:-}
    [ -n "$detail" ] || detail='{}'
    is_num "$v" || v="\"$v\""
    printf '{"figure": "%s", "impl": "%s", "repeat": %s, "value": %s, "detail": %s}\n' \
        "$fig" "$impl" "$r" "$v" "$detail" >>"$RAW"
    printf '   %-14s %-9s %s\n' "$fig" "$impl" "${4}"
    case "$4" in failed) BENCH_FAILED=1 ;; esac
    return 0
}

# Sum of utime+stime (clock ticks) of the forwarder's processes.
fwd_ticks() {
    local p t=0 v
    for p in "${FWD_PIDS[@]}"; do
        v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }')
        t=$(( t + ${v:-0} ))
    done
    echo "$t"
}
daemon_rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
# run_waited CMD...: CMD in the background, waited for. Bash runs a trap only once
# the foreground command is over, but interrupts a `wait` at once: so a
# Ctrl-C during a long step cleans up now, not minutes later.
run_waited() {
    "$@" &
    local pid=$!
    echo "$pid" >>"$UMV_TMP/pids"
    wait "$pid"
}
pid_of_file() { local p; p=$(tr -dc '0-9' <"$1" 2>/dev/null); [ -n "$p" ] && echo "$p"; }

# -------------------------------------------------------------- helpers ---

# build_helper OUT SRC COMPILER FLAGS...: OUT built from SRC unless it is
# newer already (into $BENCH_BUILD, build/bench by default).
build_helper() {
    local out=$1 src=$2; shift 2
    [ -e "$out" ] && [ "$out" -nt "$src" ] && return 0
    say "== building $out"
    mkdir -p "$(dirname "$out")" && "$@" -o "$out.tmp" "$src" && mv "$out.tmp" "$out"
}
build_helpers() {
    build_helper "$UDPBLAST_BIN" "$BENCH_DIR/udpblast.cc" c++ -O2 -std=c++20 -Wall -Wextra &&
        build_helper "$PCAP_SHIM" "$BENCH_DIR/pcap_immediate.c" cc -O2 -Wall -Wextra -shared -fPIC &&
        build_helper "$WAKECOST_BIN" "$BENCH_DIR/wakecost.cc" c++ -O2 -std=c++20 -Wall -Wextra -pthread
}

# -------------------------------------------------------------- devices ---

# mk_dev NAME MAC NS CIDR: NAME on lower0 with $MV (bridge mode, in H),
# moved to NS, addressed and up.
mk_dev() {
    local name=$1 mac=$2 ns=$3 cidr=$4 errf="$UMV_TMP/mkdev.err"
    # To a file, never a pipe: a daemon the CLI starts could keep it open.
    if ! umv_mv "$NS_H" link add link lower0 name "$name" address "$mac" \
            type macvlan mode bridge >"$errf" 2>&1; then
        umv_log "[$UMV_IMPL] creating $name failed: $(head -3 "$errf")"
        return 1
    fi
    ip -n "$NS_H" link set "$name" netns "$ns" &&
        ip -n "$ns" addr add "$cidr" dev "$name" &&
        ip -n "$ns" link set "$name" up || return 1
    umv_wait_for 5 umv_link_ready "$ns" "$name" || umv_log "warning: [$UMV_IMPL] $name not LOWER_UP"
    return 0
}

swp0_txcsum() { ip netns exec "$NS_SW" "$UMV_PYTHON" "$BENCH_DIR/txcsum.py" swp0 "$1" >/dev/null; }

# vde: a switch with two TAP ports (named as the other devices) in ns V,
# moved to A and B, and vde_pcapplug plugging it onto lower0 in H. Two
# things make the plug work here (see pcap_immediate.c and txcsum.py): its
# capture in immediate mode, and the bridge port facing the lower without
# TX checksum offload for the time of vde's round, so that the outside
# host's frames reach the lower segmented and checksummed, as off a wire.
vde_up() {
    local dir="$UMV_TMP/vde" p
    rm -rf "$dir" && mkdir -p "$dir"
    swp0_txcsum off || { umv_log "cannot turn swp0's TX checksum offload off"; return 1; }
    ip netns exec "$NS_V" vde_switch -d -p "$dir/switch.pid" -s "$dir/ctl" -M "$dir/mgmt" \
        -t mva -t mvb </dev/null >"$dir/switch.log" 2>&1 ||
        { umv_log "vde_switch failed: $(head -3 "$dir/switch.log")"; return 1; }
    umv_wait_for 5 pid_of_file "$dir/switch.pid" || { umv_log "vde_switch wrote no pid"; return 1; }
    p=$(pid_of_file "$dir/switch.pid"); echo "$p" >>"$UMV_TMP/pids"; FWD_PIDS=("$p")
    umv_wait_for 5 ip -n "$NS_V" link show mvb || { umv_log "vde_switch made no TAP"; return 1; }
    ip -n "$NS_V" link set mva netns "$NS_A" && ip -n "$NS_V" link set mvb netns "$NS_B" &&
        ip -n "$NS_A" link set mva address "$MAC_A" && ip -n "$NS_B" link set mvb address "$MAC_B" &&
        ip -n "$NS_A" addr add "$IP_A/24" dev mva && ip -n "$NS_B" addr add "$IP_B/24" dev mvb &&
        ip -n "$NS_A" link set mva up && ip -n "$NS_B" link set mvb up || return 1
    ip netns exec "$NS_H" env LD_PRELOAD="$PCAP_SHIM" \
        vde_pcapplug -d -P "$dir/plug.pid" -s "$dir/ctl" lower0 </dev/null >"$dir/plug.log" 2>&1 ||
        { umv_log "vde_pcapplug failed: $(head -3 "$dir/plug.log")"; return 1; }
    umv_wait_for 5 pid_of_file "$dir/plug.pid" || { umv_log "vde_pcapplug wrote no pid"; return 1; }
    p=$(pid_of_file "$dir/plug.pid"); echo "$p" >>"$UMV_TMP/pids"; FWD_PIDS+=("$p")
}

# dev_up IMPL: devices a and b of IMPL, reachable from each other and x.
dev_up() {
    local impl=$1
    FWD_PIDS=()
    UMV_IMPL=$impl
    case "$impl" in
        kernel|umacvlan)
            umv_set_impl "$impl"
            mk_dev mva "$MAC_A" "$NS_A" "$IP_A/24" && mk_dev mvb "$MAC_B" "$NS_B" "$IP_B/24" || return 1
            if [ "$impl" = umacvlan ]; then
                mapfile -t FWD_PIDS < <(umv_daemon_pids "$UMACVLAN_SOCKET" | sort -u)
                [ ${#FWD_PIDS[@]} -gt 0 ] || { umv_log "no umacvlan daemon found"; return 1; }
            fi ;;
        vde) vde_up || return 1 ;;
    esac
    # Static neighbours: no ARP in any figure. With 1000 kernel bridge
    # devices on a veth lower, a device's broadcast is copied to the 1000
    # siblings within its own transmit (softirqs off), the CPU's backlog
    # (netdev_max_backlog, 1000) overflows and the copy for the wire is
    # dropped: the kernel could not resolve x at all.
    if ! { ip -n "$NS_A" neigh replace "$IP_B" lladdr "$MAC_B" dev mva nud permanent &&
           ip -n "$NS_A" neigh replace "$IP_X" lladdr "$UMV_XMAC" dev mva nud permanent &&
           ip -n "$NS_B" neigh replace "$IP_A" lladdr "$MAC_A" dev mvb nud permanent &&
           ip -n "$NS_B" neigh replace "$IP_X" lladdr "$UMV_XMAC" dev mvb nud permanent &&
           ip -n "$NS_X" neigh replace "$IP_A" lladdr "$MAC_A" dev xeth nud permanent &&
           ip -n "$NS_X" neigh replace "$IP_B" lladdr "$MAC_B" dev xeth nud permanent; }; then
        umv_log "[$impl] static neighbours failed"
        return 1
    fi
    umv_wait_for 10 ip netns exec "$NS_A" ping -c 1 -W 1 "$IP_B" ||
        { umv_log "[$impl] a cannot reach b"; return 1; }
    umv_wait_for 10 ip netns exec "$NS_A" ping -c 1 -W 1 "$IP_X" ||
        { umv_log "[$impl] a cannot reach x"; return 1; }
}

# shellcheck disable=SC2317 # called through umv_wait_for
dev_gone() { ! ip -n "$1" link show "$2" >/dev/null 2>&1; }

# dev_down IMPL [keep]: remove a and b (and stop the forwarder; "keep" keeps
# umacvlan's daemon for the scale round's deletions).
dev_down() {
    local impl=$1 keep=${2:-}
    case "$impl" in
        kernel) ip -n "$NS_A" link del mva 2>/dev/null; ip -n "$NS_B" link del mvb 2>/dev/null ;;
        umacvlan)
            umv_mv "$NS_A" link del mva >/dev/null 2>&1
            umv_mv "$NS_B" link del mvb >/dev/null 2>&1
            [ -n "$keep" ] || umv_stop_daemon "$UMACVLAN_SOCKET" ;;
        vde) umv_kill_pids "${FWD_PIDS[@]}"; swp0_txcsum on ;;
    esac
    # Whatever is left (a failed CLI call, a TAP closing late) goes by hand.
    umv_wait_for 5 dev_gone "$NS_A" mva || ip -n "$NS_A" link del mva 2>/dev/null
    umv_wait_for 5 dev_gone "$NS_B" mvb || ip -n "$NS_B" link del mvb 2>/dev/null
    [ -n "$keep" ] || FWD_PIDS=()
    return 0
}

# --------------------------------------------------------- measurements ---

# shellcheck disable=SC2317 # called through umv_wait_for
iperf_listening() { ip netns exec "$1" ss -Hltn "sport = :$2" | grep -q .; }

# run_iperf FIGURE IMPL REPEAT SRC_NS DST_NS DST_IP [cpu]: one TCP stream for
# --seconds; with "cpu", also the forwarder's CPU seconds per gigabit.
# RUN_CC, when set, is the congestion control instead of --cc's.
run_iperf() {
    local fig=$1 impl=$2 r=$3 src=$4 dst=$5 ip=$6 cpu=${7:-}
    local out="$UMV_TMP/iperf.json" spid t0 t1 gbps bytes secs retrans cc=${RUN_CC-$CC}
    ip netns exec "$dst" iperf3 -s -1 -p "$IPERF_PORT" >"$UMV_TMP/iperf-s.log" 2>&1 &
    spid=$!; echo "$spid" >>"$UMV_TMP/pids"
    if ! umv_wait_for 5 iperf_listening "$dst" "$IPERF_PORT"; then
        umv_kill_pids "$spid"; rec "$fig" "$impl" "$r" failed '{"error": "iperf3 server"}'; return
    fi
    t0=$(fwd_ticks)
    run_waited timeout $(( SECS + 20 )) ip netns exec "$src" iperf3 -c "$ip" -p "$IPERF_PORT" -t "$SECS" ${cc:+-C "$cc"} -J \
        >"$out" 2>"$UMV_TMP/iperf-c.err"
    t1=$(fwd_ticks)
    umv_wait_for 5 eval "! umv_pid_alive $spid"
    umv_kill_pids "$spid"; wait "$spid" 2>/dev/null
    if ! read -r gbps bytes secs retrans < <("$UMV_PYTHON" "$BENCH_DIR/report.py" iperf "$out"); then
        rec "$fig" "$impl" "$r" failed '{"error": "no iperf3 result"}'; return
    fi
    # Retransmissions in the JSON: frames a forwarder reorders or drops
    # show there, not always in the rate.
    rec "$fig" "$impl" "$r" "$gbps" "{\"bytes\": $bytes, \"seconds\": $secs, \"retransmits\": $retrans}"
    if [ -n "$cpu" ] && [ ${#FWD_PIDS[@]} -gt 0 ] && [ "$bytes" -gt 0 ]; then
        rec cpu_per_gbit "$impl" "$r" "$(calc "($t1 - $t0) / $CLK_TCK / ($bytes * 8 / 1e9)")" \
            "{\"cpu_seconds\": $(calc "($t1 - $t0) / $CLK_TCK"), \"gbit\": $(calc "$bytes * 8 / 1e9")}"
    fi
}

json_field() { sed -n "s/.*\"$2\": \([-0-9.e]*\).*/\1/p" "$1" | head -1; }

# run_udp FIGURE IMPL REPEAT SRC_NS DST_NS DST_IP [gso]: 64-byte frames (22
# bytes of UDP payload), or with "gso" 1400-byte datagrams 44 to a send
# (UDP_SEGMENT), as fast as the sender can for --seconds; the figure is what
# the receiver got per second.
run_udp() {
    local fig=$1 impl=$2 r=$3 src=$4 dst=$5 ip=$6 size=(--len 22)
    [ "${7:-}" = gso ] && size=(--len 1400 --gso 44)
    local ready="$UMV_TMP/udp.ready" rout="$UMV_TMP/udp-r.json" sout="$UMV_TMP/udp-s.json" rpid
    rm -f "$ready" "$rout" "$sout"
    ip netns exec "$dst" "$UDPBLAST_BIN" recv --port "$UDP_PORT" --wait 15 --idle 0.5 \
        --ready "$ready" >"$rout" 2>"$UMV_TMP/udp-r.err" &
    rpid=$!; echo "$rpid" >>"$UMV_TMP/pids"
    if ! umv_wait_for 5 test -e "$ready"; then
        umv_kill_pids "$rpid"; rec "$fig" "$impl" "$r" failed '{"error": "receiver"}'; return
    fi
    run_waited timeout $(( SECS + 10 )) ip netns exec "$src" "$UDPBLAST_BIN" send --dst "$ip" \
        --port "$UDP_PORT" "${size[@]}" --seconds "$SECS" >"$sout" 2>"$UMV_TMP/udp-s.err"
    umv_wait_for 20 eval "! umv_pid_alive $rpid" || umv_kill_pids "$rpid"
    wait "$rpid" 2>/dev/null
    local rate got window sent
    rate=$(json_field "$rout" rate); got=$(json_field "$rout" received)
    window=$(json_field "$rout" window); sent=$(json_field "$sout" sent)
    if [ -z "$rate" ] || [ "${got:-0}" = 0 ]; then
        rec "$fig" "$impl" "$r" failed "{\"received\": ${got:-0}, \"sent\": ${sent:-0}}"; return
    fi
    rec "$fig" "$impl" "$r" "$rate" \
        "{\"received\": $got, \"window\": $window, \"sent\": ${sent:-0}, \"send_seconds\": $(json_field "$sout" seconds)}"
}

# run_ping IMPL REPEAT: a to b, BENCH_PINGS requests BENCH_PING_INTERVAL apart.
run_ping() {
    local impl=$1 r=$2 out="$UMV_TMP/ping.out" p50 p99 got sent
    run_waited timeout 120 ip netns exec "$NS_A" ping -n -i "$PING_INTERVAL" -c "$PINGS" -W 1 "$IP_B" \
        >"$out" 2>&1
    if ! read -r p50 p99 got sent < <("$UMV_PYTHON" "$BENCH_DIR/report.py" ping "$out"); then
        rec ping_p50 "$impl" "$r" failed; rec ping_p99 "$impl" "$r" failed; return
    fi
    rec ping_p50 "$impl" "$r" "$p50" "{\"received\": $got, \"sent\": $sent}"
    rec ping_p99 "$impl" "$r" "$p99" "{\"received\": $got, \"sent\": $sent}"
}

BASIC_FIGURES=(tcp_dd tcp_dh tcp_hd udp_dd udp_dh udp_gso_dd udp_gso_dh ping_p50 ping_p99)  # and the --cc2 ones

basic_round() {
    local impl=$1 r=$2 f
    say "-- [$(elapsed)] repeat $r/$REPEAT: $impl"
    if ! dev_up "$impl"; then
        for f in "${BASIC_FIGURES[@]}"; do rec "$f" "$impl" "$r" failed; done
        dev_down "$impl"
        return
    fi
    run_iperf tcp_dd "$impl" "$r" "$NS_A" "$NS_B" "$IP_B" cpu
    run_iperf tcp_dh "$impl" "$r" "$NS_A" "$NS_X" "$IP_X"
    run_iperf tcp_hd "$impl" "$r" "$NS_X" "$NS_A" "$IP_A"
    if [ -n "$CC2" ]; then
        RUN_CC=$CC2 run_iperf tcp_dd_cc2 "$impl" "$r" "$NS_A" "$NS_B" "$IP_B"
        RUN_CC=$CC2 run_iperf tcp_dh_cc2 "$impl" "$r" "$NS_A" "$NS_X" "$IP_X"
    fi
    run_udp udp_dd "$impl" "$r" "$NS_A" "$NS_B" "$IP_B"
    run_udp udp_dh "$impl" "$r" "$NS_A" "$NS_X" "$IP_X"
    run_udp udp_gso_dd "$impl" "$r" "$NS_A" "$NS_B" "$IP_B" gso
    run_udp udp_gso_dh "$impl" "$r" "$NS_A" "$NS_X" "$IP_X" gso
    run_ping "$impl" "$r"
    dev_down "$impl"
}

# ---------------------------------------------------------------- scale ---

# scale_cli FROM TO VERB SECONDS: one $MV call per device dFROM..dTO in H
# ("add": up, bridge mode; "del"), at most SECONDS in all. Sets SCALE_MS to
# the time taken; returns timeout's status (124: it ran out).
scale_cli() {
    local from=$1 to=$2 verb=$3 limit=$4 t0 rc
    t0=$(now_ms)
    # shellcheck disable=SC2016
    run_waited timeout "$limit" ip netns exec "$NS_H" bash -c '
        mv=$1 verb=$2
        for ((i = $3; i <= $4; i++)); do
            if [ "$verb" = add ]; then
                "$mv" link add link lower0 name "d$i" up type macvlan mode bridge || exit 1
            else
                "$mv" link del "d$i" || exit 1
            fi
        done' _ "$MV" "$verb" "$from" "$to" >"$UMV_TMP/scale.out" 2>&1
    rc=$?
    SCALE_MS=$(( $(now_ms) - t0 ))
    [ $rc = 0 ] || umv_log "[$UMV_IMPL] $verb d$from..d$to: rc $rc: $(tail -2 "$UMV_TMP/scale.out")"
    return $rc
}

scale_count() { ip netns exec "$NS_H" sh -c 'ls -d /sys/class/net/d[0-9]* 2>/dev/null | wc -l'; }
scale_rx_sum() {
    ip netns exec "$NS_H" sh -c 'cat /sys/class/net/d[0-9]*/statistics/rx_packets 2>/dev/null' |
        awk '{ s += $1 } END { print s + 0 }'
}

# Broadcasts from x at a fixed rate; copies the scale devices received per
# second while it sent.
run_bcast() {
    local impl=$1 r=$2 out="$UMV_TMP/bcast.json" s0 s1 sent secs
    s0=$(scale_rx_sum)
    run_waited timeout $(( BCAST_SECONDS + 10 )) ip netns exec "$NS_X" "$UDPBLAST_BIN" send \
        --dst 255.255.255.255 --dev xeth --port 9 --len 22 --rate "$BCAST_RATE" \
        --seconds "$BCAST_SECONDS" >"$out" 2>"$UMV_TMP/bcast.err"
    s1=$(scale_rx_sum)   # right away: copies over the sending, not a backlog after it
    sent=$(json_field "$out" sent); secs=$(json_field "$out" seconds)
    if [ -z "$sent" ] || [ "$sent" = 0 ]; then
        rec scale_bcast "$impl" "$r" failed "{\"error\": \"$(head -1 "$UMV_TMP/bcast.err")\"}"; return
    fi
    rec scale_bcast "$impl" "$r" "$(calc "($s1 - $s0) / $secs")" \
        "{\"copies\": $((s1 - s0)), \"broadcasts_sent\": $sent, \"seconds\": $secs, \"devices\": $SCALE_N}"
}

SCALE_FIGURES=(scale_create scale_tcp_dd scale_udp_dd scale_bcast scale_delete)
declare -A SCALE_GAVE_UP=()

# scale_round IMPL REPEAT (kernel or umacvlan).
scale_round() {
    local impl=$1 r=$2 f to from=1 total=0 made status=ok left pid=""
    say "-- [$(elapsed)] scale, repeat $r/$REPEAT: $impl, $SCALE_N devices"
    if [ -n "${SCALE_GAVE_UP[$impl]:-}" ]; then
        say "   skipped: ${SCALE_GAVE_UP[$impl]} in an earlier round"
        return
    fi
    umv_set_impl "$impl"
    UMV_IMPL=$impl
    # First the two devices alone, in this round: the table's "N devs / 2
    # devs" rows divide each round's pair, so the machine's drift between
    # the basic part and this one stays out. umacvlan's daemon is stopped
    # after them (dev_down), so the RSS figures below start from a new one.
    if dev_up "$impl"; then
        run_iperf scale_base_tcp_dd "$impl" "$r" "$NS_A" "$NS_B" "$IP_B"
        run_udp scale_base_udp_dd "$impl" "$r" "$NS_A" "$NS_B" "$IP_B"
    else
        for f in scale_base_tcp_dd scale_base_udp_dd; do rec "$f" "$impl" "$r" failed; done
    fi
    dev_down "$impl"
    FWD_PIDS=()
    if [ "$impl" = umacvlan ]; then
        # The daemon is started before the clock runs (any call starts it).
        umv_mv "$NS_H" link show >/dev/null 2>&1
        pid=$(umv_daemon_pids "$UMACVLAN_SOCKET" | sort -u | head -1)
        [ -n "$pid" ] || { for f in "${SCALE_FIGURES[@]}"; do rec "$f" "$impl" "$r" failed; done; return; }
    fi
    # Created in three steps (1, 100, N) to read the daemon's RSS at each;
    # only the CLI calls are timed.
    for to in 1 100 "$SCALE_N"; do
        left=$(( STEP_TIMEOUT - total / 1000 ))
        if [ "$left" -le 0 ]; then status=timeout; break; fi
        scale_cli "$from" "$to" add "$left"
        case $? in 0) ;; 124) status=timeout ;; *) status=failed ;; esac
        total=$(( total + SCALE_MS ))
        [ "$status" = ok ] || break
        if [ -n "$pid" ]; then
            case "$to" in 1) f=rss_1 ;; 100) f=rss_100 ;; *) f=rss_n ;; esac
            rec "$f" "$impl" "$r" "$(daemon_rss_kb "$pid")" "{\"devices\": $to}"
        fi
        from=$(( to + 1 ))
    done
    made=$(scale_count)
    if [ "$status" = ok ]; then
        rec scale_create "$impl" "$r" "$(calc "$total / 1000")" "{\"devices\": $made}"
        if dev_up "$impl"; then
            [ -n "$pid" ] && FWD_PIDS=("$pid")
            run_iperf scale_tcp_dd "$impl" "$r" "$NS_A" "$NS_B" "$IP_B"
            run_udp scale_udp_dd "$impl" "$r" "$NS_A" "$NS_B" "$IP_B"
            run_bcast "$impl" "$r"
            if [ -n "$pid" ]; then
                local c0 c1
                sleep 1
                c0=$(fwd_ticks); run_waited sleep "$IDLE_SECONDS"; c1=$(fwd_ticks)
                rec idle_cpu "$impl" "$r" "$(calc "($c1 - $c0) / $CLK_TCK / $IDLE_SECONDS * 100")" \
                    "{\"seconds\": $IDLE_SECONDS, \"devices\": $(( made + 2 ))}"
            fi
        else
            for f in scale_tcp_dd scale_udp_dd scale_bcast; do rec "$f" "$impl" "$r" failed; done
        fi
        dev_down "$impl" keep
        scale_cli 1 "$SCALE_N" del "$STEP_TIMEOUT"
        case $? in
            0) rec scale_delete "$impl" "$r" "$(calc "$SCALE_MS / 1000")" "{\"devices\": $made}" ;;
            124) rec scale_delete "$impl" "$r" timeout "{\"seconds\": $STEP_TIMEOUT}"
                 SCALE_GAVE_UP[$impl]="delete timeout" ;;
            *) rec scale_delete "$impl" "$r" failed ;;
        esac
    else
        rec scale_create "$impl" "$r" "$status" "{\"devices_made\": $made, \"seconds\": $STEP_TIMEOUT}"
        [ "$status" = timeout ] && SCALE_GAVE_UP[$impl]="create timeout ($made of $SCALE_N made in ${STEP_TIMEOUT}s)"
    fi
    # Leftovers of a timeout or a failure go by hand, untimed.
    if [ "$(scale_count)" -gt 0 ]; then
        # shellcheck disable=SC2016
        run_waited timeout 300 ip netns exec "$NS_H" sh -c \
            'for d in /sys/class/net/d[0-9]*; do ip link del "${d##*/}" 2>/dev/null; done'
    fi
    [ "$impl" = umacvlan ] && umv_stop_daemon "$UMACVLAN_SOCKET"
    FWD_PIDS=()
}

# ----------------------------------------------------------------- main ---

say "== core decisions (one core)"
CORE_JSON="$UMV_TMP/core.json"
if [ -x "$CORE_BENCH" ]; then
    "$CORE_BENCH" --benchmark_min_time=0.3 --benchmark_out="$CORE_JSON" \
        --benchmark_out_format=json 2>/dev/null | grep -E '^BM_' | awk '{ print "  " $1, $NF }'
else
    umv_log "core bench not found: $CORE_BENCH (build it, or set CORE_BENCH)"
    BENCH_FAILED=1
fi

build_helpers || umv_die "cannot build the helpers in $BENCH_BUILD"

# What this machine charges for a system call and a thread's wake-up: the
# floor under ping through any userspace forwarder (bench/wakecost.cc).
say "== this machine (bench/wakecost.cc, medians of 5 batches)"
MACHINE_COSTS=$("$WAKECOST_BIN") || { umv_log "wakecost failed"; MACHINE_COSTS=""; }
machine_cost() { "$UMV_PYTHON" -c 'import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); print("" if v is None else v)' "$MACHINE_COSTS" "$1" 2>/dev/null; }
SYSCALL_US=$(machine_cost syscall_us)
WAKE_SAME_US=$(machine_cost wake_rtt_same_cpu_us)
WAKE_CROSS_US=$(machine_cost wake_rtt_cross_cpu_us)
say "  a system call ${SYSCALL_US:-?} us; a wake-up round trip between two threads ${WAKE_SAME_US:-?} us on one CPU, ${WAKE_CROSS_US:--} us across two"
umv_topo_up bench || umv_die "topology setup failed"
NS_V="${UMV_PFX}bench-v"
umv_ns_add "$NS_V"

# What the TCP runs use: --cc, or what a new namespace was given.
TCP_CC=${CC:-$(ip netns exec "$NS_A" cat /proc/sys/net/ipv4/tcp_congestion_control)}
# The second one: the other of cubic and bbr unless --cc2 says.
case "$CC2" in
    none) CC2="" ;;
    "") if [ "$TCP_CC" != cubic ]; then CC2=cubic; elif cc_available bbr; then CC2=bbr; fi ;;
esac
[ "$CC2" != "$TCP_CC" ] || CC2=""
[ -z "$CC2" ] || BASIC_FIGURES+=(tcp_dd_cc2 tcp_dh_cc2)
say "== ${IMPLS[*]}: $REPEAT repeats, ${SECS} s per TCP and 64-byte run, TCP congestion control $TCP_CC${CC:+ (--cc)}${CC2:+, dev>dev and dev>host also with $CC2}"
for r in $(seq 1 "$REPEAT"); do
    for impl in "${IMPLS[@]}"; do basic_round "$impl" "$r"; done
done

SCALE_IMPLS=()
for impl in "${IMPLS[@]}"; do [ "$impl" = vde ] || SCALE_IMPLS+=("$impl"); done
if [ "$QUICK" = 0 ] && [ ${#SCALE_IMPLS[@]} -gt 0 ]; then
    say "== scale: $SCALE_N devices on the lower, $REPEAT repeats"
    for r in $(seq 1 "$REPEAT"); do
        for impl in "${SCALE_IMPLS[@]}"; do scale_round "$impl" "$r"; done
    done
fi

UMV_BIN_PATH=""
for impl in "${IMPLS[@]}"; do [ "$impl" = umacvlan ] && UMV_BIN_PATH=$(umv_umacvlan_bin); done
META="$UMV_TMP/meta.json"
"$UMV_PYTHON" "$BENCH_DIR/report.py" meta \
    "date=$(date -Iseconds)" "kernel=$(uname -r)" "cpus=$(nproc)" \
    "repo_commit=$(git -C "$BENCH_REPO" describe --always --dirty 2>/dev/null)" \
    "umacvlan_bin=$UMV_BIN_PATH" \
    "umacvlan_bin_commit=$( [ -n "$UMV_BIN_PATH" ] && git -C "$(dirname "$UMV_BIN_PATH")" describe --always --dirty 2>/dev/null)" \
    "iperf3=$(iperf3 --version 2>/dev/null | head -1)" \
    "impls=${IMPLS[*]}" "repeat=$REPEAT" "seconds=$SECS" "quick=$QUICK" \
    "tcp_congestion_control=$TCP_CC${CC:+ (--cc)}" "tcp_congestion_control_2=${CC2:-none}" \
    "scale_devices=$SCALE_N" "step_timeout_s=$STEP_TIMEOUT" \
    "bcast_rate=$BCAST_RATE" "bcast_seconds=$BCAST_SECONDS" \
    "pings=$PINGS" "ping_interval_s=$PING_INTERVAL" "idle_seconds=$IDLE_SECONDS" \
    "udp_payload_bytes=22" "neighbours=static (a, b, x)" \
    "machine_syscall_us=$SYSCALL_US" "machine_wake_rtt_same_cpu_us=$WAKE_SAME_US" \
    "machine_wake_rtt_cross_cpu_us=$WAKE_CROSS_US" \
    "vde_wiring=vde_switch -t mva -t mvb in its own ns, TAPs moved to A and B; vde_pcapplug on lower0 (LD_PRELOAD pcap_immediate.so); swp0 TX checksum offload off during vde rounds" \
    "duration_s=$(( $(date +%s) - BENCH_START ))" >"$META"

say ""
say "== results: medians of $REPEAT, TCP with $TCP_CC${CC2:+ (rows naming $CC2: with $CC2)} (ratios: umacvlan's figure over the other's)"
mkdir -p "$(dirname "$JSON_OUT")"
"$UMV_PYTHON" "$BENCH_DIR/report.py" table "$RAW" "$CORE_JSON" "$META" "$JSON_OUT" ||
    umv_die "report failed"
say "JSON: $JSON_OUT"
say "took $(( $(date +%s) - BENCH_START )) s"
exit "$BENCH_FAILED"
