#!/usr/bin/env bash
# multicast.sh [--impl kernel|umacvlan|both] [-v]
#
# Group (multicast) and broadcast delivery to macvlan devices. Topology from
# lib.sh: devices a (mva, ns A, 10.77.0.11) and b (mvb, ns B, 10.77.0.12) on
# lower0, bridge mode unless said otherwise; x (xeth, 10.77.0.1) outside.
# Group G = 239.1.2.3 (MAC 01:00:5e:01:02:03). Captures are "tcpdump -p"
# (the device is not made promiscuous) unless said otherwise.
#   1 x sends UDP to G, nobody joined:        a sees it? (no), b (no)
#   2 a joins G (ip maddr add), 1 s:          a sees x's datagram (yes), b (no)
#   3 a leaves G (ip maddr del), 1 s:         maddr list of mva has G (no);
#                                             a still sees G? (kernel: yes, a
#                                             stale filter bit; a note, not
#                                             compared: comment at case 3)
#     a joins another group (01:00:5e:09:09:09), 1 s: a sees G (no)
#   4 tcpdump WITHOUT -p on b:                b sees G (yes); a, -p (no)
#   5 ip link set mvb allmulticast on, 1 s:   b sees G (yes); a, -p (no)
#     allmulticast off, 1 s:                  b (no)
#   6 x broadcasts (ARP who-has 10.77.0.99):  a and b see it (yes yes)
#   7 b joins G; a (bridge) sends to G:       b sees it (yes), x sees it (yes)
#   8 fresh topology, a and b in vepa mode, no hairpin; b joins G; a sends to G:
#                                             b (no), x (yes)
# Expected values are the kernel's (6.18) measured behaviour; with --impl both,
# any kernel/umacvlan difference fails the run. The daemon re-reads each
# device's link-layer multicast list every 250 ms, so every change (maddr,
# allmulticast, a promiscuous capture) is followed by 1 s before traffic, for
# both implementations alike.
#
# Note on the kernel oracle: a kernel macvlan device filters groups through a
# 256-bit hash (MACVLAN_MC_FILTER_BITS 8) mixed with the device's address in
# memory, so a device that did not join G takes it anyway when G's bucket
# collides with one of its own entries (01:00:5e:00:00:01, 33:33:00:00:00:01,
# broadcast; 01:00:5e:09:09:09 for a after case 3): 1-2% per "no" check,
# random per run (umacvlan matches exact addresses). Such a run shows the kernel column as
# MISMATCH on one "no" cell; rerun.
# Exit: 0 as expected (and identical with --impl both), 1 otherwise, 2 setup error.

# shellcheck disable=SC2317  # mc_send, bc_send are called through caps_run
set -uo pipefail
. "$(dirname "$0")/lib.sh"
umv_init "$@"


GRP=239.1.2.3
GRPMAC=01:00:5e:01:02:03
OTHERMAC=01:00:5e:09:09:09   # case 3: another group a joins
SETTLE=1            # seconds after a subscription / flag change (daemon: 250 ms ticks)
NSEND=4             # datagrams per send step (0.25 s apart)

# mc_send NS SRC_IP: NSEND UDP datagrams to G:5001 out of the interface that
# holds SRC_IP (IP_MULTICAST_IF, ttl 1, no local loopback copy).
mc_send() {
    timeout 10 ip netns exec "$1" "$UMV_PYTHON" - "$2" "$GRP" "$NSEND" 0.25 <<'EOF'
import socket, sys, time
src, dst, n, iv = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(src))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
s.bind((src, 0))
for i in range(n):
    if i:
        time.sleep(iv)
    s.sendto(b"umacvlan-multicast-%d" % i, (dst, 5001))
EOF
}

# x's broadcast: ARP requests for an unused address.
bc_send() { umv_arp_probe "$NS_X" xeth 10.77.0.99 10.77.0.1 "$NSEND"; }

# ---- concurrent captures: caps_begin; cap_add KEY NS IF FILTER [promisc]...;
#      caps_run CMD... (sends, waits up to UMV_CAP_WAIT for every capture to
#      see a frame, stops them); then CAP[KEY] = yes/no/ERR.
declare -A CAP=() CAP_PID=() CAP_OUT=()
CAP_KEYS=()
cap() { echo "${CAP[$1]:-ERR}"; }
caps_begin() { CAP=(); CAP_PID=(); CAP_OUT=(); CAP_KEYS=(); }

cap_add() {
    local key=$1 ns=$2 ifc=$3 filt=$4 prom=${5:-}
    local pflag=(-p)
    [ "$prom" = promisc ] && pflag=()
    UMV_CAP_N=$((UMV_CAP_N + 1))
    local out="$UMV_TMP/cap$UMV_CAP_N.out" err="$UMV_TMP/cap$UMV_CAP_N.err"
    : >"$out"
    CAP_KEYS+=("$key")
    CAP[$key]=ERR
    timeout 60 ip netns exec "$ns" tcpdump "${pflag[@]}" -n -l -c 1 -i "$ifc" "$filt" >"$out" 2>"$err" &
    CAP_PID[$key]=$!
    CAP_OUT[$key]=$out
    echo "$!" >>"$UMV_TMP/pids"
    if ! umv_wait_for 5 grep -q "listening on" "$err"; then
        umv_log "[$UMV_IMPL] tcpdump on $ns/$ifc did not start: $(head -3 "$err")"
        return 1
    fi
    umv_vlog "[$UMV_IMPL] capture $key: $ns/$ifc ${pflag[*]:-(promisc)} '$filt'"
}

caps_run() {
    local k files=() ok=1
    for k in "${CAP_KEYS[@]}"; do
        files+=("${CAP_OUT[$k]}")
        umv_pid_alive "${CAP_PID[$k]}" || grep -q . "${CAP_OUT[$k]}" || ok=0
    done
    if [ $ok = 1 ]; then
        "$@" || umv_log "[$UMV_IMPL] sender failed: $*"
        umv_wait_for "$UMV_CAP_WAIT" umv_file_has_lines "${files[@]}"
    fi
    for k in "${CAP_KEYS[@]}"; do
        umv_cap_stop "${CAP_PID[$k]}"
        [ $ok = 1 ] && CAP[$k]=$(umv_cap_seen "${CAP_OUT[$k]}")
        if [ "$UMV_VERBOSE" = 1 ]; then
            umv_log "  [$UMV_IMPL] capture $k: ${CAP[$k]}"
            grep . "${CAP_OUT[$k]}" | sed 's/^/    /' >&2
        fi
    done
}

maddr_has() { if ip -n "$1" maddr show dev "$2" 2>/dev/null | grep -q "link  *$GRPMAC"; then echo yes; else echo no; fi; }

# --------------------------------------------------------------- cases ---

FX="udp and dst host $GRP and src host 10.77.0.1"     # x's group datagrams
FA="udp and dst host $GRP and src host 10.77.0.11"    # a's group datagrams
FB="arp and ether src $UMV_XMAC and ether broadcast and arp dst host 10.77.0.99"

cases_bridge() {   # 1-7 on one topology (bridge / bridge)
    local t=$1
    if ! { umv_topo_up "$t" off &&
           umv_mkdev mva bridge "$NS_A" 10.77.0.11/24 &&
           umv_mkdev mvb bridge "$NS_B" 10.77.0.12/24; }; then
        umv_rec "1-7: setup" ERR ok; return
    fi
    sleep "$SETTLE"

    # 1: nobody joined G
    caps_begin
    cap_add a "$NS_A" mva "$FX" && cap_add b "$NS_B" mvb "$FX"
    caps_run mc_send "$NS_X" 10.77.0.1
    umv_rec "1: none joined: a sees x's G (-p)" "$(cap a)" no
    umv_rec "1: none joined: b sees x's G (-p)" "$(cap b)" no

    # 2: a joins G
    ip -n "$NS_A" maddr add "$GRPMAC" dev mva
    umv_rec "2: ip maddr show mva lists G" "$(maddr_has "$NS_A" mva)" yes
    sleep "$SETTLE"
    caps_begin
    cap_add a "$NS_A" mva "$FX" && cap_add b "$NS_B" mvb "$FX"
    caps_run mc_send "$NS_X" 10.77.0.1
    umv_rec "2: a joined: a sees x's G (-p)" "$(cap a)" yes
    umv_rec "2: a joined: b sees x's G (-p)" "$(cap b)" no

    # 3: a leaves G. Kernel 6.18: the group is gone from mva's list (and from
    # lower0's), yet mva keeps taking it: macvlan_set_mac_lists() hashes mva's
    # list into its filter BEFORE dev_mc_sync() prunes the entry (its refcount
    # is 2 while it is synced to the lower, so "ip maddr del" only drops it to
    # 1 and the sync step unlinks it afterwards). The stale bit stays until
    # mva's next rx-mode update: joining any other group clears it.
    ip -n "$NS_A" maddr del "$GRPMAC" dev mva
    umv_rec "3: ip maddr show mva lists G" "$(maddr_has "$NS_A" mva)" no
    sleep "$SETTLE"
    caps_begin
    cap_add a "$NS_A" mva "$FX"
    caps_run mc_send "$NS_X" 10.77.0.1
    # A kernel bug, not a rule: reported, not compared (README, "Known
    # differences"); umacvlan stops delivering the group once it is left.
    umv_note "3: a left (maddr del): a sees x's G (-p) = $(cap a) (kernel 6.18: yes, a stale filter bit)"
    ip -n "$NS_A" maddr add "$OTHERMAC" dev mva      # stays joined
    sleep "$SETTLE"
    caps_begin
    cap_add a "$NS_A" mva "$FX"
    caps_run mc_send "$NS_X" 10.77.0.1
    umv_rec "3: a then joins another group: a sees G" "$(cap a)" no

    # 4: promiscuous capture on b (tcpdump without -p)
    caps_begin
    cap_add b "$NS_B" mvb "$FX" promisc && cap_add a "$NS_A" mva "$FX"
    sleep "$SETTLE"
    caps_run mc_send "$NS_X" 10.77.0.1
    umv_rec "4: b promisc (no -p): b sees x's G" "$(cap b)" yes
    umv_rec "4: b promisc: a sees x's G (-p)" "$(cap a)" no

    # 5: allmulticast on b, then off
    ip -n "$NS_B" link set mvb allmulticast on
    sleep "$SETTLE"
    caps_begin
    cap_add b "$NS_B" mvb "$FX" && cap_add a "$NS_A" mva "$FX"
    caps_run mc_send "$NS_X" 10.77.0.1
    umv_rec "5: b allmulticast on: b sees G (-p)" "$(cap b)" yes
    umv_rec "5: b allmulticast on: a sees G (-p)" "$(cap a)" no
    ip -n "$NS_B" link set mvb allmulticast off
    sleep "$SETTLE"
    caps_begin
    cap_add b "$NS_B" mvb "$FX"
    caps_run mc_send "$NS_X" 10.77.0.1
    umv_rec "5: b allmulticast off: b sees G (-p)" "$(cap b)" no

    # 6: x's broadcast reaches everybody
    caps_begin
    cap_add a "$NS_A" mva "$FB" && cap_add b "$NS_B" mvb "$FB"
    caps_run bc_send
    umv_rec "6: x's broadcast: a, b see it (-p)" "$(cap a) $(cap b)" "yes yes"

    # 7: a (bridge) sends to G, joined by its bridge sibling b
    ip -n "$NS_B" maddr add "$GRPMAC" dev mvb
    sleep "$SETTLE"
    caps_begin
    cap_add b "$NS_B" mvb "$FA" && cap_add x "$NS_X" xeth "$FA"
    caps_run mc_send "$NS_A" 10.77.0.11
    umv_rec "7: bridge a>G, b joined: b sees it (-p)" "$(cap b)" yes
    umv_rec "7: bridge a>G, b joined: x sees it (-p)" "$(cap x)" yes
}

case8() {   # vepa / vepa, no hairpin
    local t=$1
    if ! { umv_topo_up "$t" off &&
           umv_mkdev mva vepa "$NS_A" 10.77.0.11/24 &&
           umv_mkdev mvb vepa "$NS_B" 10.77.0.12/24; }; then
        umv_rec "8: setup" ERR ok; return
    fi
    ip -n "$NS_B" maddr add "$GRPMAC" dev mvb
    sleep "$SETTLE"
    caps_begin
    cap_add b "$NS_B" mvb "$FA" && cap_add x "$NS_X" xeth "$FA"
    caps_run mc_send "$NS_A" 10.77.0.11
    umv_rec "8: vepa a>G, b joined: b sees it (-p)" "$(cap b)" no
    umv_rec "8: vepa a>G, b joined: x sees it (-p)" "$(cap x)" yes
}

# ---------------------------------------------------------------- main ---

declare -A DUR=()
START=$SECONDS
for impl in "${UMV_IMPLS[@]}"; do
    umv_set_impl "$impl"
    t0=$SECONDS
    cases_bridge "${impl:0:1}m"
    umv_topo_down
    case8 "${impl:0:1}v"
    umv_topo_down
    DUR[$impl]=$((SECONDS - t0))
done

umv_report "multicast (expected = kernel 6.18 measured)"; FAIL=$?
umv_print_notes
for impl in "${UMV_IMPLS[@]}"; do echo "[$impl] ${DUR[$impl]}s"; done
echo "multicast: $(( SECONDS - START ))s, $([ $FAIL = 0 ] && echo PASS || echo FAIL)"
exit $FAIL
