# shellcheck shell=bash
# lib.sh - shared helpers for the umacvlan netns scenario tests.
#
# Source it from a scenario script (which must run as root):
#     . "$(dirname "$0")/lib.sh"
#     umv_init "$@"          # parses --impl, sets traps, creates the temp dir
#
# Safety: every namespace this library creates is named "umv-<id>-...", where
# <id> is unique to the run ($$ + random). Nothing ever touches the host
# namespace's interfaces: all links are veth pairs and bridges created *inside*
# our namespaces. Everything is removed by an EXIT trap (also on INT/TERM/HUP).
#
# Implementation under test: $MV is the command that creates/changes/deletes
# macvlan links: "ip" (kernel) or the umacvlan CLI. Use umv_set_impl to switch.
# With umacvlan every topology gets its own daemon socket
# (UMACVLAN_SOCKET=<topology dir>/umacvlan.sock) and its own namespace for
# the daemon to live in (UMACVLAN_DAEMON_NETNS=/run/netns/<prefix>-d: the
# daemon started on demand lives there, not in the host's namespace);
# tearing the topology down stops that daemon.

UMV_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
UMV_REPO=$(cd "$UMV_LIB_DIR/../.." && pwd)
UMV_PY="$UMV_LIB_DIR/umvnet.py"
# The real interpreter (a pyenv shim costs ~0.3 s per start).
UMV_PYTHON=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || echo python3)

# Tunables (generous bounded waits; none of them decides a result by itself).
# Ping deadline / capture wait default to 2 s for the kernel and 3 s for
# umacvlan (a userspace forwarder); set them in the environment to override.
UMV_PING_DEADLINE_SET=${UMV_PING_DEADLINE:+1}
UMV_CAP_WAIT_SET=${UMV_CAP_WAIT:+1}
: "${UMV_PING_DEADLINE:=2}"    # seconds a ping check may take before it is "no"
: "${UMV_CAP_WAIT:=2}"         # seconds to wait for a capture to see a frame
: "${UMV_CMD_TIMEOUT:=20}"     # bound on any single $MV / helper command
: "${UMV_VERBOSE:=0}"

UMV_IMPLS=()                   # implementations requested by --impl
UMV_IMPL=""                    # current implementation
MV=""                          # current macvlan command
UMV_TOPO=""                    # current topology tag
UMV_CAP_N=0
UMV_XMAC=02:77:00:00:00:01     # x's xeth
UMV_LMAC=02:77:00:00:00:02     # lower0

umv_log()  { printf '%s\n' "$*" >&2; }
umv_vlog() { [ "$UMV_VERBOSE" = 1 ] && printf '  [v] %s\n' "$*" >&2; return 0; }
umv_die()  { printf 'ERROR: %s\n' "$*" >&2; exit "${2:-2}"; }

umv_usage_impl() {
    cat >&2 <<EOF
usage: $(basename "$0") [--impl kernel|umacvlan|both] [-v]
  --impl kernel    run against the kernel's macvlan (MV=ip)        [default]
  --impl umacvlan  run against umacvlan (\${UMACVLAN_BIN:-build/src/cli/umacvlan})
  --impl both      run both and compare; exit 1 on any difference
  -v               verbose
EOF
}

# umv_init "$@": root check, argument parsing, temp dir, traps.
umv_init() {
    local impl=${UMV_DEFAULT_IMPL:-kernel}
    while [ $# -gt 0 ]; do
        case "$1" in
            --impl) [ $# -ge 2 ] || { umv_usage_impl; exit 2; }; impl=$2; shift 2 ;;
            --impl=*) impl=${1#--impl=}; shift ;;
            -v|--verbose) UMV_VERBOSE=1; shift ;;
            -h|--help) umv_usage_impl; exit 0 ;;
            *) umv_usage_impl; exit 2 ;;
        esac
    done
    case "$impl" in
        kernel) UMV_IMPLS=(kernel) ;;
        umacvlan) UMV_IMPLS=(umacvlan) ;;
        both) UMV_IMPLS=(kernel umacvlan) ;;
        *) umv_usage_impl; exit 2 ;;
    esac
    [ "$(id -u)" = 0 ] || umv_die "must run as root"
    local t
    for t in ip bridge tcpdump python3 timeout; do
        command -v "$t" >/dev/null 2>&1 || umv_die "missing tool: $t"
    done
    # Fail early and clearly when umacvlan is requested but not built.
    local i
    for i in "${UMV_IMPLS[@]}"; do
        [ "$i" = umacvlan ] && umv_umacvlan_bin >/dev/null
    done

    UMV_ID=$(printf '%x%04x' "$$" "$RANDOM")
    UMV_PFX="umv-${UMV_ID}-"
    UMV_TMP=$(mktemp -d "/tmp/umv-${UMV_ID}.XXXX") || umv_die "mktemp failed"
    : >"$UMV_TMP/netns"      # registry: namespaces we created
    : >"$UMV_TMP/pids"       # registry: background processes we started
    : >"$UMV_TMP/sockets"    # registry: umacvlan daemon sockets we used
    trap umv_cleanup EXIT
    trap 'umv_log "interrupted (INT)"; exit 130' INT
    trap 'umv_log "terminated (TERM)"; exit 143' TERM
    trap 'umv_log "hangup (HUP)"; exit 129' HUP
}

# Path of the umacvlan CLI, or die (exit 2) with a clear message.
umv_umacvlan_bin() {
    local bin=${UMACVLAN_BIN:-build/src/cli/umacvlan}
    case "$bin" in /*) ;; *) bin="$UMV_REPO/$bin" ;; esac
    if [ ! -x "$bin" ] || [ -d "$bin" ]; then
        umv_die "umacvlan binary not found or not executable: $bin (build it, or set UMACVLAN_BIN)"
    fi
    printf '%s\n' "$bin"
}

# umv_set_impl kernel|umacvlan
umv_set_impl() {
    UMV_IMPL=$1
    local t=2
    case "$1" in
        kernel) MV=ip ;;
        umacvlan) MV=$(umv_umacvlan_bin) || exit 2; t=3 ;;
        *) umv_die "unknown impl $1" ;;
    esac
    [ -n "$UMV_PING_DEADLINE_SET" ] || UMV_PING_DEADLINE=$t
    [ -n "$UMV_CAP_WAIT_SET" ] || UMV_CAP_WAIT=$t
}

# ---------------------------------------------------------------- cleanup ---

umv_pid_alive() { [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

# Kill pids (TERM, bounded wait, then KILL). Only pids, never names.
umv_kill_pids() {
    local p pids=() n
    for p in "$@"; do
        [[ "$p" =~ ^[0-9]+$ ]] || continue
        [ "$p" = "$$" ] && continue
        [ "$p" = "${BASHPID:-$$}" ] && continue
        umv_pid_alive "$p" && pids+=("$p")
    done
    [ ${#pids[@]} -eq 0 ] && return 0
    kill -TERM "${pids[@]}" 2>/dev/null
    for n in $(seq 30); do
        local alive=0
        for p in "${pids[@]}"; do umv_pid_alive "$p" && alive=1; done
        [ $alive = 0 ] && return 0
        sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null
    return 0
}

# Pids of the umacvlan daemon serving socket $1: pid files next to the socket,
# plus every process whose argv has "--socket $1" / "--socket=$1", plus every
# umacvlan process whose environment has UMACVLAN_SOCKET=$1.
umv_daemon_pids() {
    local sock=$1 dir f p pd argv env a prev is_umv
    dir=$(dirname "$sock")
    for f in "$sock.pid" "$dir/umacvlan.pid" "$dir/umacvland.pid" "$dir/daemon.pid"; do
        [ -r "$f" ] || continue
        p=$(tr -dc '0-9' <"$f" 2>/dev/null)
        [ -n "$p" ] && [ -r "/proc/$p/cmdline" ] && grep -qa umacvlan "/proc/$p/cmdline" && echo "$p"
    done
    for pd in /proc/[0-9]*; do
        p=${pd#/proc/}
        [ "$p" = "$$" ] && continue
        [ -r "$pd/cmdline" ] || continue
        mapfile -d '' -t argv <"$pd/cmdline" 2>/dev/null || continue
        [ ${#argv[@]} -eq 0 ] && continue
        prev=""; is_umv=0
        case "${argv[0]##*/}" in *umacvlan*) is_umv=1 ;; esac
        for a in "${argv[@]}"; do
            if { [ "$prev" = "--socket" ] && [ "$a" = "$sock" ]; } || [ "$a" = "--socket=$sock" ]; then
                echo "$p"; continue 2
            fi
            prev=$a
        done
        if [ $is_umv = 1 ] && [ -r "$pd/environ" ]; then
            mapfile -d '' -t env <"$pd/environ" 2>/dev/null || continue
            for a in "${env[@]}"; do
                [ "$a" = "UMACVLAN_SOCKET=$sock" ] && { echo "$p"; continue 2; }
            done
        fi
    done
}

umv_stop_daemon() {
    local sock=$1 pids
    pids=$(umv_daemon_pids "$sock" | sort -u)
    [ -n "$pids" ] || return 0
    umv_vlog "stopping umacvlan daemon(s) for $sock: $pids"
    # shellcheck disable=SC2086
    umv_kill_pids $pids
}

umv_ns_procs() { ip netns pids "$1" 2>/dev/null; }

# Delete namespaces (after killing what runs inside them).
umv_ns_delete() {
    local ns pids
    for ns in "$@"; do
        [ -e "/run/netns/$ns" ] || continue
        pids=$(umv_ns_procs "$ns")
        # shellcheck disable=SC2086
        [ -n "$pids" ] && umv_kill_pids $pids
        ip netns del "$ns" 2>/dev/null || umv_log "warning: could not delete netns $ns"
    done
}

umv_cleanup() {
    local rc=$? s ns
    trap '' INT TERM HUP
    trap - EXIT
    [ -n "$UMV_TOPO" ] && umv_topo_down
    [ -n "${UMV_TMP:-}" ] && [ -e "$UMV_TMP/failed" ] && [ "$rc" = 0 ] && rc=1
    if [ -n "${UMV_TMP:-}" ] && [ -d "$UMV_TMP" ]; then
        # shellcheck disable=SC2046
        umv_kill_pids $(cat "$UMV_TMP/pids" 2>/dev/null)
        while read -r s; do [ -n "$s" ] && umv_stop_daemon "$s"; done <"$UMV_TMP/sockets"
        # shellcheck disable=SC2046
        umv_ns_delete $(tac "$UMV_TMP/netns" 2>/dev/null)
        # Anything left with our unique prefix (e.g. created between registry writes).
        for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
            case "$ns" in "$UMV_PFX"*) umv_ns_delete "$ns" ;; esac
        done
        rm -rf "$UMV_TMP"
    fi
    exit "$rc"
}

# ------------------------------------------------------------------ waits ---

# umv_wait_for SECONDS CMD... : poll CMD every 0.1 s until it succeeds.
umv_wait_for() {
    local limit=$1; shift
    local ms end
    ms=$(awk -v l="$limit" 'BEGIN { printf "%d", l * 1000 }')
    end=$(( $(date +%s%N) / 1000000 + ms ))
    while :; do
        "$@" >/dev/null 2>&1 && return 0
        [ $(( $(date +%s%N) / 1000000 )) -ge "$end" ] && return 1
        sleep 0.1
    done
}

wait_for() { umv_wait_for "$@"; }

# ------------------------------------------------------------- namespaces ---

umv_in_ns() { local ns=$1; shift; timeout "$UMV_CMD_TIMEOUT" ip netns exec "$ns" "$@"; }
in_ns() { umv_in_ns "$@"; }

# umv_ns_add NAME: create namespace NAME (must carry $UMV_PFX), lo up, IPv6 off.
umv_ns_add() {
    local ns=$1
    case "$ns" in "$UMV_PFX"*) ;; *) umv_die "refusing to create namespace without our prefix: $ns" ;; esac
    echo "$ns" >>"$UMV_TMP/netns"
    ip netns add "$ns" || umv_die "ip netns add $ns failed"
    ip -n "$ns" link set lo up
    # IPv6 off everywhere (both implementations alike): no DAD/MLD/RS noise.
    ip netns exec "$ns" sh -c 'echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6;
                               echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6' 2>/dev/null
}

umv_link_ready() { ip -n "$1" link show "$2" 2>/dev/null | head -1 | grep -q 'LOWER_UP'; }

# umv_topo_up TAG [hairpin]
#   NS_H  : "host", holds lower0 (veth)      NS_SW : bridge br0 with swp0, swx
#   NS_X  : outside host, xeth 10.77.0.1/24  NS_A, NS_B : empty, for devices a, b
#   NS_D  : where a umacvlan daemon started on demand lives
# Sets NS_H NS_SW NS_X NS_A NS_B NS_D TOPO_DIR, exports UMACVLAN_SOCKET and
# UMACVLAN_DAEMON_NETNS.
umv_topo_up() {
    local tag=$1 hairpin=${2:-off}
    UMV_TOPO=$tag
    NS_H="${UMV_PFX}${tag}-h"; NS_SW="${UMV_PFX}${tag}-sw"; NS_X="${UMV_PFX}${tag}-x"
    NS_A="${UMV_PFX}${tag}-a"; NS_B="${UMV_PFX}${tag}-b"; NS_D="${UMV_PFX}${tag}-d"
    TOPO_DIR="$UMV_TMP/$tag"
    mkdir -p "$TOPO_DIR"
    export UMACVLAN_SOCKET="$TOPO_DIR/umacvlan.sock"
    export UMACVLAN_DAEMON_NETNS="/run/netns/$NS_D"
    echo "$UMACVLAN_SOCKET" >>"$UMV_TMP/sockets"
    local ns
    for ns in "$NS_D" "$NS_H" "$NS_SW" "$NS_X" "$NS_A" "$NS_B"; do umv_ns_add "$ns"; done
    ip -n "$NS_SW" link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0 || return 1
    ip -n "$NS_H" link add lower0 type veth peer name swp0 netns "$NS_SW" || return 1
    ip -n "$NS_X" link add xeth type veth peer name swx netns "$NS_SW" || return 1
    ip -n "$NS_SW" link set swp0 master br0 || return 1
    ip -n "$NS_SW" link set swx master br0 || return 1
    if [ "$hairpin" = on ]; then
        ip -n "$NS_SW" link set swp0 type bridge_slave hairpin on || return 1
    fi
    ip -n "$NS_SW" link set br0 up
    ip -n "$NS_SW" link set swp0 up
    ip -n "$NS_SW" link set swx up
    # Fixed MACs for the veth ends we own: results are comparable between runs.
    ip -n "$NS_X" link set xeth address "$UMV_XMAC"
    ip -n "$NS_H" link set lower0 address "$UMV_LMAC"
    ip -n "$NS_X" addr add 10.77.0.1/24 dev xeth
    ip -n "$NS_X" link set xeth up
    ip -n "$NS_H" link set lower0 up
    umv_wait_for 5 umv_link_ready "$NS_H" lower0 || { umv_log "lower0 not up"; return 1; }
    umv_wait_for 5 umv_link_ready "$NS_X" xeth || { umv_log "xeth not up"; return 1; }
    umv_vlog "topology $tag up (hairpin $hairpin)"
}

# umv_topo_ipv6_on: IPv6 back on (umv_ns_add turns it off) in the current
# topology's H, A, B and X, and on lower0 and xeth, for scenarios that need it.
umv_topo_ipv6_on() {
    local ns
    for ns in "$NS_H" "$NS_A" "$NS_B" "$NS_X"; do
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 \
            net.ipv6.conf.default.disable_ipv6=0 || umv_die "cannot turn IPv6 on in $ns"
    done
    ip netns exec "$NS_H" sysctl -qw net.ipv6.conf.lower0.disable_ipv6=0
    ip netns exec "$NS_X" sysctl -qw net.ipv6.conf.xeth.disable_ipv6=0
}

# Tear the current topology down (daemon first, then namespaces).
umv_topo_down() {
    [ -n "$UMV_TOPO" ] || return 0
    umv_stop_daemon "$UMACVLAN_SOCKET"
    # UMV_EXPECT_DAEMON_LOG=TEXT: a run with daemon options from the
    # environment (UMACVLAN_TAP_IO, UMACVLAN_WORKERS, ...) proves the daemon
    # took them: its log must say TEXT, else the script fails.
    if [ -n "${UMV_EXPECT_DAEMON_LOG:-}" ] && [ -f "$TOPO_DIR/umacvlan.log" ] &&
        ! grep -qF -- "$UMV_EXPECT_DAEMON_LOG" "$TOPO_DIR/umacvlan.log"; then
        umv_log "FAIL: the daemon log of topology $UMV_TOPO does not say \"$UMV_EXPECT_DAEMON_LOG\""
        : >"$UMV_TMP/failed"
    fi
    # UMV_KEEP_LOGS=DIR keeps each topology's daemon log for a post mortem.
    if [ -n "${UMV_KEEP_LOGS:-}" ] && [ -f "$TOPO_DIR/umacvlan.log" ]; then
        mkdir -p "$UMV_KEEP_LOGS" && cp "$TOPO_DIR/umacvlan.log" "$UMV_KEEP_LOGS/$(basename "$0" .sh)-$UMV_TOPO.log"
    fi
    umv_ns_delete "$NS_B" "$NS_A" "$NS_X" "$NS_SW" "$NS_H" "$NS_D"
    UMV_TOPO=""
}

# ------------------------------------------------------------- devices ---

# umv_mv NS ARGS... : run the implementation's CLI ($MV) inside NS, bounded.
umv_mv() {
    local ns=$1; shift
    umv_vlog "[$UMV_IMPL] ip netns exec $ns $MV $*"
    timeout "$UMV_CMD_TIMEOUT" ip netns exec "$ns" "$MV" "$@"
}

# umv_mkdev NAME MODE NS CIDR [EXTRA...]
#   create NAME on lower0 in NS_H with $MV (mode MODE; "" = no mode keyword),
#   move it to NS, give it CIDR ("" = none) and bring it up.
umv_mkdev() {
    local name=$1 mode=$2 ns=$3 cidr=$4; shift 4
    local modeargs=() errf="$UMV_TMP/mkdev.err"
    [ -n "$mode" ] && modeargs=(mode "$mode")
    # Output goes to a file, never a pipe: a daemon started by the CLI could
    # keep a pipe open forever.
    if ! umv_mv "$NS_H" link add link lower0 name "$name" type macvlan "${modeargs[@]}" "$@" >"$errf" 2>&1; then
        umv_log "[$UMV_IMPL] creating $name (mode $mode $*) failed: $(head -3 "$errf")"
        return 1
    fi
    if [ "$ns" != "$NS_H" ]; then
        ip -n "$NS_H" link set "$name" netns "$ns" || { umv_log "moving $name to $ns failed"; return 1; }
    fi
    if [ -n "$cidr" ]; then
        ip -n "$ns" addr add "$cidr" dev "$name" || return 1
    fi
    ip -n "$ns" link set "$name" up || { umv_log "[$UMV_IMPL] $name up failed"; return 1; }
    umv_wait_for 5 umv_link_ready "$ns" "$name" || umv_log "warning: [$UMV_IMPL] $name has no LOWER_UP after 5 s"
    return 0
}

umv_mac() { ip netns exec "$1" cat "/sys/class/net/$2/address" 2>/dev/null; }

# umv_promisc NS IF : the "promiscuity" counter of ip -d -j link show.
umv_promisc() {
    ip -n "$1" -d -j link show "$2" 2>/dev/null |
        "$UMV_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)[0].get("promiscuity","?"))' 2>/dev/null ||
        echo "?"
}

# ------------------------------------------------------------- probes ---

# umv_ping NS DST [DEADLINE] : 0 when a reply came back within the deadline.
umv_ping() {
    local ns=$1 dst=$2 dl=${3:-$UMV_PING_DEADLINE}
    timeout $(( ${dl%.*} + 5 )) ip netns exec "$ns" "$UMV_PYTHON" "$UMV_PY" ping "$dst" --deadline "$dl" -q
}

# umv_arp_probe NS IF TARGET_IP [SENDER_IP] [COUNT]: broadcast who-has TARGET_IP.
umv_arp_probe() {
    timeout 10 ip netns exec "$1" "$UMV_PYTHON" "$UMV_PY" arp-probe "$2" "$3" \
        --sender-ip "${4:-0.0.0.0}" --count "${5:-2}" --interval 0.2
}

# yes/no of a command.
umv_yn() { if "$@" >/dev/null 2>&1; then echo yes; else echo no; fi; }

# umv_bg_yn FILE CMD... : run CMD in the background, write yes/no to FILE.
# Collect with umv_bg_wait; read with umv_bg_get FILE.
UMV_BG_PIDS=()
umv_bg_yn() {
    local f=$1; shift
    : >"$f"
    ( umv_yn "$@" >"$f" ) &
    UMV_BG_PIDS+=($!)
    echo $! >>"$UMV_TMP/pids"
}
umv_bg_wait() { local p; for p in "${UMV_BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done; UMV_BG_PIDS=(); }
umv_bg_get() { local v; v=$(cat "$1" 2>/dev/null); echo "${v:-ERR}"; }

# umv_cap_start NS IF FILTER : start tcpdump (no promiscuous mode) on IF in NS
# and wait until it listens. Sets UMV_CAP_PID and UMV_CAP_OUT.
umv_cap_start() {
    local ns=$1 ifc=$2 filter=$3
    UMV_CAP_N=$((UMV_CAP_N + 1))
    UMV_CAP_OUT="$UMV_TMP/cap$UMV_CAP_N.out"
    local err="$UMV_TMP/cap$UMV_CAP_N.err"
    : >"$UMV_CAP_OUT"
    timeout 60 ip netns exec "$ns" tcpdump -n -p -l -i "$ifc" "$filter" >"$UMV_CAP_OUT" 2>"$err" &
    UMV_CAP_PID=$!
    echo "$UMV_CAP_PID" >>"$UMV_TMP/pids"
    if ! umv_wait_for 5 grep -q "listening on" "$err"; then
        umv_log "tcpdump on $ns/$ifc did not start: $(head -3 "$err")"
        return 1
    fi
}

umv_cap_stop() {
    kill -TERM "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    return 0
}

# tcpdump writes a bare newline when it is stopped: only non-empty lines count.
umv_file_has_lines() { local f; for f in "$@"; do grep -q . "$f" 2>/dev/null || return 1; done; }
umv_cap_seen() { if umv_file_has_lines "$1"; then echo yes; else echo no; fi; }
umv_cap_count() { grep -c . "$1" 2>/dev/null || true; }

# -------------------------------------------------------------- output ---

# umv_run_capture RCVAR MSGVAR CMD... : run CMD (stdout discarded, stderr to a
# file, never a pipe), store its exit code and first stderr line.
umv_run_capture() {
    local __rcv=$1 __msgv=$2; shift 2
    local errf="$UMV_TMP/cmd.err" __rc
    "$@" >/dev/null 2>"$errf"; __rc=$?
    printf -v "$__rcv" '%s' "$__rc"
    printf -v "$__msgv" '%s' "$(grep -m1 . "$errf" 2>/dev/null)"
}

# umv_show NS DEV: "$MV -d link show DEV" reduced to the macvlan part, e.g.
#   "mode passthru nopromisc" or "mode source nodst remotes (2) <macs sorted>".
umv_show() {
    local f="$UMV_TMP/show.out" rc mode rem n macs
    umv_mv "$1" -d link show "$2" >"$f" 2>&1; rc=$?
    [ $rc = 0 ] || { echo "ERR(rc=$rc)"; return 0; }
    mode=$(grep -o 'macvlan mode [a-z]*\( \(nopromisc\|nodst\)\)*' "$f" | head -1)
    mode=${mode#macvlan }
    rem=$(grep -o 'remotes ([0-9]*)\( [0-9a-f:]\{17\}\)*' "$f" | head -1)
    if [ -n "$rem" ]; then
        n=${rem#remotes }; n=${n%%)*}; n=${n#(}
        # shellcheck disable=SC2086
        macs=$(printf '%s\n' $rem | grep -E '^[0-9a-f:]{17}$' | sort | paste -sd' ' -)
        rem="remotes ($n)${macs:+ $macs}"
    fi
    echo "${mode:-?}${rem:+ $rem}"
}

# umv_settle EXPECTED SECONDS CMD...: poll CMD's output until it equals EXPECTED
# (at most SECONDS; a userspace daemon may apply a change a moment later), then
# print the last output. Never decides pass/fail by itself.
umv_settle() {
    local want=$1 limit=$2; shift 2
    local got end
    end=$(( $(date +%s%N) / 1000000 + $(awk -v l="$limit" 'BEGIN { printf "%d", l * 1000 }') ))
    while :; do
        got=$("$@" 2>/dev/null)
        [ "$got" = "$want" ] && break
        [ $(( $(date +%s%N) / 1000000 )) -ge "$end" ] && break
        sleep 0.1
    done
    printf '%s\n' "$got"
}

# --------------------------------------------------- check table / report ---
# umv_rec CHECK VALUE [EXPECTED]: record VALUE of CHECK for the current impl.
declare -A UMV_RES=() UMV_EXP=() UMV_SEEN=()
UMV_CHECKS=()
umv_rec() {
    local c=$1 v=$2
    if [ -z "${UMV_SEEN[$c]:-}" ]; then UMV_CHECKS+=("$c"); UMV_SEEN[$c]=1; fi
    UMV_RES["$UMV_IMPL|$c"]=$v
    [ $# -ge 3 ] && UMV_EXP[$c]=$3
    umv_vlog "[$UMV_IMPL] $c = $v"
    return 0
}

# umv_report TITLE: print the table; return 1 if any implementation differs
# from the expected value (the kernel's measured behaviour) or, with two
# implementations, if they differ from each other.
# Notes: facts reported beside the table but never compared (known
# differences a scenario documents rather than hides).
UMV_NOTES=()
umv_note() { UMV_NOTES+=("[$UMV_IMPL] $*"); umv_vlog "$*"; }
umv_print_notes() {
    [ ${#UMV_NOTES[@]} -gt 0 ] || return 0
    echo "-- notes (informational, not compared)"
    printf '   %s\n' "${UMV_NOTES[@]}"
}

# umv_accept CHECK REASON: a difference a userspace engine cannot avoid, or a
# documented imprecision of the kernel's. When the implementations differ on
# CHECK (and umacvlan matches the expected value, if any), the row says
# "accepted" and does not fail; the reason is printed under the table (and
# belongs in the README's list).
# umv_upstream CHECK REASON: this machine's kernel has a bug a later kernel
# fixed; the expected value is the fixed kernel's. A kernel row that differs
# from it while umacvlan matches says "fixed upstream" and does not fail.
declare -A UMV_ACC=() UMV_UPS=()
umv_accept() { UMV_ACC[$1]=$2; }
umv_upstream() { UMV_UPS[$1]=$2; }

umv_report() {
    local title=$1 c i v e st fail=0 w=40 vw=34 kv uv
    local -a row reasons=()
    echo "== $title"
    printf "%-${w}s %-${vw}s" check expected
    for i in "${UMV_IMPLS[@]}"; do printf " %-${vw}s" "$i"; done
    printf ' %s\n' status
    for c in "${UMV_CHECKS[@]}"; do
        e=${UMV_EXP[$c]:-}
        st=ok
        row=()
        kv=""; uv=""
        for i in "${UMV_IMPLS[@]}"; do
            v=${UMV_RES[$i|$c]-(not run)}
            row+=("$v")
            [ "$i" = kernel ] && kv=$v
            [ "$i" = umacvlan ] && uv=$v
            if [ -n "$e" ] && [ "$v" != "$e" ]; then
                # The kernel row of a bug fixed upstream, or of an accepted
                # difference, may differ from the expected value.
                [ "$i" = kernel ] && [ -n "${UMV_UPS[$c]:-}${UMV_ACC[$c]:-}" ] && continue
                st="MISMATCH"
            fi
        done
        if [ ${#UMV_IMPLS[@]} -eq 2 ] && [ "${row[0]}" != "${row[1]}" ] && [ "$st" = ok ]; then
            if [ -n "${UMV_UPS[$c]:-}" ] && [ -n "$e" ] && [ "$uv" = "$e" ] && [ "$kv" != "$e" ]; then
                st="fixed-upstream"
                reasons+=("$c: fixed upstream: ${UMV_UPS[$c]}")
            elif [ -n "${UMV_ACC[$c]:-}" ]; then
                st="accepted"
                reasons+=("$c: accepted: ${UMV_ACC[$c]}")
            else
                st=DIFF
            fi
        elif [ ${#UMV_IMPLS[@]} -eq 2 ] && [ "${row[0]}" != "${row[1]}" ]; then
            st="$st+DIFF"
        fi
        case "$st" in ok | accepted | fixed-upstream) ;; *) fail=1 ;; esac
        printf "%-${w}s %-${vw}s" "$c" "${e:--}"
        for v in "${row[@]}"; do printf " %-${vw}s" "$v"; done
        printf ' %s\n' "$st"
        # UMV_ROWS_FILE: every row also as a tab-separated line, for the
        # conformance summary: script, check, expected, kernel, umacvlan,
        # status, reason (of an accepted or fixed-upstream row).
        if [ -n "${UMV_ROWS_FILE:-}" ]; then
            local why=""
            [ "$st" = accepted ] && why=${UMV_ACC[$c]}
            [ "$st" = fixed-upstream ] && why=${UMV_UPS[$c]}
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(basename "$0" .sh)" "$c" "${e:--}" \
                "${UMV_RES[kernel|$c]-(not run)}" "${UMV_RES[umacvlan|$c]-(not run)}" "$st" \
                "$why" >>"$UMV_ROWS_FILE"
        fi
    done
    if [ ${#reasons[@]} -gt 0 ]; then
        echo "-- differences accepted or fixed upstream"
        printf '   %s\n' "${reasons[@]}"
    fi
    return $fail
}
