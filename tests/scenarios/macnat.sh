#!/usr/bin/env bash
# macnat.sh [-v] - the port option macnat ("Wi-Fi-like lowers"): the outside
# host x plays a Wi-Fi access point that knows one station, lower0 (its MAC
# 02:77:00:00:00:02), and drops every frame from any other source MAC (an
# nftables netdev ingress rule on xeth, with counters: from_a, from_b for the
# bridge devices' MACs, stranger for the rest). Where the kernel can, it also
# never sends a unicast frame to another MAC (an egress rule, counter
# to_stranger), as an AP would not. x is 10.78.0.1/24 fd78::1/64 and runs a
# DHCPv4 server (dnsmasq, 10.78.0.100-150); the host h has lower0
# 10.78.0.2/24 fd78::2/64; mva (in a) and mvb (in b) are bridge devices on
# lower0 with 10.78.0.11/.12 and fd78::11/::12 to start with.
#
#   (a) off (the default), the kernel's macvlan and umacvlan alike: a's and
#       b's DHCP requests get no lease (dnsmasq never sees a DISCOVER), a and
#       b cannot ping x (IPv4, IPv6), the AP's counters show their frames
#       dropped; the host itself pings x.
#   (b) `link set dev lower0 type macvlan macnat on` (after `macnat maybe`,
#       `macnat_ageing 0`, `macnat_ageing 86401` and `macnat_ageing 60`
#       while macnat is off, each refused with an Error: and nothing
#       changed): a and b get two different leases (the
#       lease file has their MACs as chaddr); a and b ping x over IPv4 (at
#       their leased addresses) and IPv6; x pings them back; x's neighbour
#       table has lower0's MAC for all four addresses; 4 MiB over TCP from a
#       to x and from x to b arrive byte for byte; the host and x still ping
#       each other (IPv4, IPv6); the AP dropped nothing and sent nothing to
#       an unknown MAC meanwhile; `-d link show dev lower0` says "macnat on
#       ... macnat_ageing 300" and lists a's and b's addresses with their
#       devices and MACs (text and -j).
#   (b2) a daemon restart keeps it on (the state file); the table is
#       learned again as b speaks: b and x reach each other.
#   (c) ageing: `macnat_ageing 3`; mvb down: its entries leave the table
#       while a's IPv4 entry, kept alive by a ping loop, stays; `link del
#       mva`: its entries are gone at once.
#   (d) `macnat off`: the port no longer says "macnat on"; b (up again)
#       cannot ping x, the AP's counter for b grows, x cannot ping b, b's
#       DHCP request gets no lease; the host still pings x.
#   (e) `macnat_ageing 60` alone on a `link add` is refused and makes no
#       device; `macnat on macnat_ageing 120` on a `link add` sets the port; the
#       config file: `macnat = true`, `macnat_ageing = 60` on mvb turn the
#       port's on ("set lower0: macnat on", mvb unchanged), `config dump`
#       says so, `macnat = false` turns it off.
#
# Root. Namespaces umv-mn-<pid>-*; the daemon lives in one of them; all is
# removed on exit. Environment: UMACVLAN_BIN, UMV_DNSMASQ. Exit: 0 as
# expected, 1 otherwise, 2 setup error.

# shellcheck disable=SC2317  # the helpers are called through check and umv_wait_for
set -uo pipefail
. "$(dirname "$0")/lib.sh"
UMV_DEFAULT_IMPL=umacvlan umv_init "$@"
# shellcheck disable=SC2034  # lib.sh's namespace prefix
UMV_PFX="umv-mn-$$-"

for t in nft socat ss busybox; do
    command -v "$t" >/dev/null 2>&1 || umv_die "missing tool: $t"
done
DNSMASQ=${UMV_DNSMASQ:-/usr/sbin/dnsmasq}
"$DNSMASQ" --version >/dev/null 2>&1 || umv_die "missing tool: dnsmasq"

FAILS=0
check() {  # check NAME COMMAND... : one line per check
    local name=$1
    shift
    if "$@"; then echo "ok    $name"; else echo "FAIL  $name"; FAILS=$((FAILS + 1)); fi
}
fails() { ! "$@"; }
indent() { sed 's/^/      /' "$@"; }
ping4() { timeout 10 ip netns exec "$1" ping -c 2 -i 0.3 -W 1 -q "$2" >/dev/null 2>&1; }
ping6() { timeout 10 ip netns exec "$1" ping -6 -c 2 -i 0.3 -W 1 -q "$2" >/dev/null 2>&1; }
# A reachable address answers within 15 s (the first probes may go to ARP/NDP).
reach4() { umv_wait_for 15 ping4 "$@"; }
reach6() { umv_wait_for 15 ping6 "$@"; }

# ------------------------------------------------------------ the AP (x)

# ap_up: x's filter, with the devices' MACs known. Ingress: lower0's MAC
# passes, everything else is dropped and counted. x's kernel loops its own
# IPv4 broadcasts (dnsmasq's DHCP answers) back into xeth's ingress hook
# without their Ethernet header (dev_loopback_xmit: PACKET_LOOPBACK, which
# packet sockets never see and nft's pkttype reports as broadcast), so
# "ether saddr" reads IP header bytes there: they pass by x's own source
# address. Egress (optional): x sends unicast only to lower0's MAC.
AP_EGRESS=0
ap_up() {
    ip netns exec "$NS_X" nft -f - <<EOF || umv_die "cannot install the AP's nftables rules on xeth"
table netdev umv_ap {
    counter from_a { }
    counter from_b { }
    counter stranger { }
    counter to_stranger { }
    chain rx {
        type filter hook ingress device "xeth" priority 0; policy accept;
        meta protocol ip ip saddr 10.78.0.1 accept comment "x's own broadcasts, looped back"
        ether saddr $UMV_LMAC accept
        ether saddr $MAC_A counter name "from_a" drop
        ether saddr $MAC_B counter name "from_b" drop
        counter name "stranger" drop
    }
}
EOF
    AP_EGRESS=0
    if ip netns exec "$NS_X" nft -f - >"$UMV_TMP/egress.err" 2>&1 <<EOF; then
table netdev umv_ap {
    chain tx {
        type filter hook egress device "xeth" priority 0; policy accept;
        ether daddr & 01:00:00:00:00:00 == 01:00:00:00:00:00 accept
        ether daddr $UMV_LMAC accept
        counter name "to_stranger" drop
    }
}
EOF
        AP_EGRESS=1
    else
        echo "      (no netdev egress hook here: x may send to any MAC: $(head -1 "$UMV_TMP/egress.err"))"
    fi
}
# ctr NAME: packets counted by the AP's counter NAME.
ctr() {
    local n
    n=$(ip netns exec "$NS_X" nft list counter netdev umv_ap "$1" 2>/dev/null |
        awk '/packets/ { print $2; exit }')
    echo "${n:-0}"
}
grew() { [ "$(ctr "$1")" -gt "$2" ]; }          # grew NAME BEFORE
unchanged() { [ "$(ctr "$1")" -eq "$2" ]; }     # unchanged NAME BEFORE
dropped_in() { echo $(( $(ctr from_a) + $(ctr from_b) + $(ctr stranger) )); }

# dhcp_up: dnsmasq on xeth; its lease file and log under $DH.
dhcp_up() {
    DH=$UMV_TMP/dhcp-$UMV_IMPL
    mkdir -p "$DH"
    timeout 900 ip netns exec "$NS_X" "$DNSMASQ" --keep-in-foreground --conf-file=/dev/null --port=0 \
        --interface=xeth --dhcp-range=10.78.0.100,10.78.0.150,255.255.255.0,2m \
        --dhcp-leasefile="$DH/leases" --pid-file="$DH/pid" --log-dhcp --log-facility="$DH/log" \
        --no-ping --user=root >"$DH/out" 2>&1 &
    echo $! >>"$UMV_TMP/pids"
    umv_wait_for 10 grep -q "DHCP, IP range" "$DH/log" || umv_die "dnsmasq did not start: $(head -3 "$DH/out")"
}

# dhcp NS DEV OUT TRIES: busybox udhcpc, once (no script: nothing is configured).
dhcp() {
    timeout 60 ip netns exec "$1" busybox udhcpc -f -i "$2" -t "$4" -T 2 -n -q -s /bin/true >"$3" 2>&1
}
leased() { sed -n 's/.*lease of \([0-9.]*\) obtained.*/\1/p' "$1" | head -1; }

setup() {  # setup IMPL
    umv_set_impl "$1"
    umv_topo_up "mn-$1" || umv_die "topology setup failed"
    umv_topo_ipv6_on
    ip -n "$NS_X" addr del 10.77.0.1/24 dev xeth
    ip -n "$NS_X" addr add 10.78.0.1/24 dev xeth || umv_die "no IPv4 on xeth"
    ip -n "$NS_X" addr add fd78::1/64 dev xeth nodad || umv_die "no IPv6 on xeth"
    ip -n "$NS_H" addr add 10.78.0.2/24 dev lower0 || umv_die "no IPv4 on lower0"
    ip -n "$NS_H" addr add fd78::2/64 dev lower0 nodad || umv_die "no IPv6 on lower0"
    umv_mkdev mva bridge "$NS_A" "" || umv_die "cannot create mva"
    umv_mkdev mvb bridge "$NS_B" "" || umv_die "cannot create mvb"
    MAC_A=$(umv_mac "$NS_A" mva)
    MAC_B=$(umv_mac "$NS_B" mvb)
    if [ -z "$MAC_A" ] || [ -z "$MAC_B" ]; then umv_die "no MAC on mva/mvb"; fi
    umv_vlog "mva $MAC_A, mvb $MAC_B, lower0 $UMV_LMAC"
    ap_up
    ip -n "$NS_A" addr add 10.78.0.11/24 dev mva || umv_die "no IPv4 on mva"
    ip -n "$NS_B" addr add 10.78.0.12/24 dev mvb || umv_die "no IPv4 on mvb"
    ip -n "$NS_A" addr add fd78::11/64 dev mva nodad || umv_die "no IPv6 on mva"
    ip -n "$NS_B" addr add fd78::12/64 dev mvb nodad || umv_die "no IPv6 on mvb"
    dhcp_up
    umv_ping "$NS_A" 10.78.0.12 5 || umv_die "a cannot reach b"
    reach4 "$NS_H" 10.78.0.1 || umv_die "the host cannot reach x (the AP's filter is wrong?)"
}

probes_off() {  # probes_off LABEL : the AP drops the devices' frames
    local l=$1 fa fb
    fa=$(ctr from_a)
    fb=$(ctr from_b)
    dhcp "$NS_A" mva "$UMV_TMP/udhcpc-a" 3
    check "$l: a's DHCP request gets no lease" fails grep -q "obtained" "$UMV_TMP/udhcpc-a"
    dhcp "$NS_B" mvb "$UMV_TMP/udhcpc-b" 3
    check "$l: b's DHCP request gets no lease" fails grep -q "obtained" "$UMV_TMP/udhcpc-b"
    check "$l: dnsmasq on x saw no DHCPDISCOVER" fails grep -q DHCPDISCOVER "$DH/log"
    check "$l: a -> x (v4) fails" fails ping4 "$NS_A" 10.78.0.1
    check "$l: b -> x (v4) fails" fails ping4 "$NS_B" 10.78.0.1
    check "$l: a -> x (v6) fails" fails ping6 "$NS_A" fd78::1
    check "$l: the AP dropped a's frames (from_a $fa -> $(ctr from_a))" grew from_a "$fa"
    check "$l: the AP dropped b's frames (from_b $fb -> $(ctr from_b))" grew from_b "$fb"
    check "$l: host -> x works (the AP knows lower0)" reach4 "$NS_H" 10.78.0.1
}

# ----------------------------------------------------------- (a) kernel
echo "== (a) off: the kernel's macvlan"
setup kernel
probes_off "kernel"
umv_topo_down

# ------------------------------------------------------- (a) umacvlan
echo "== (a) off: umacvlan (the default)"
setup umacvlan
probes_off "umacvlan off"

# ------------------------------------------------------------- (b) on
echo "== (b) macnat on"
SHOW=$UMV_TMP/show.txt
# mvq NS ARGS...: $MV in NS, without umv_mv's verbose line on stderr.
mvq() { local ns=$1; shift; timeout "$UMV_CMD_TIMEOUT" ip netns exec "$ns" "$MV" "$@"; }
show() { mvq "$NS_H" -d link show dev lower0 >"$SHOW" 2>"$SHOW.err"; }
show_has() { show && grep -qF -- "$1" "$SHOW"; }
# A table line: "macnat ADDR dev DEV [netns NS] lladdr MAC learned HOW age Ns".
entry() { show_has "macnat $1 dev $2 "; }                       # entry ADDR DEV
entry_mac() {                                                   # entry_mac ADDR DEV MAC
    show && grep -F "macnat $1 dev $2 " "$SHOW" | grep -qF " lladdr $3 "
}
no_entries_of() { show && ! grep -qE "^ *macnat .* dev $1( |$)" "$SHOW"; }

mvq "$NS_H" -d link show dev lower0 >"$UMV_TMP/port-before" 2>&1
refused() {  # refused ARGS... : non-zero exit, "Error: ...", the port as it was
    local rc msg
    umv_run_capture rc msg mvq "$NS_H" link set dev lower0 type macvlan "$@"
    mvq "$NS_H" -d link show dev lower0 >"$UMV_TMP/port-after" 2>&1
    echo "      $*: exit $rc: $msg"
    [ "$rc" != 0 ] && [[ "$msg" == Error:* ]] && cmp -s "$UMV_TMP/port-before" "$UMV_TMP/port-after"
}
check "macnat maybe: refused with Error:, nothing changed" refused macnat maybe
check "macnat_ageing 0: refused with Error:, nothing changed" refused macnat_ageing 0
check "macnat_ageing 86401: refused with Error:, nothing changed" refused macnat_ageing 86401
refused_by_daemon() {  # like refused, but the daemon's refusal: exit 2, its reason
    local rc msg
    msg=$(mvq "$NS_H" link set dev lower0 type macvlan "$@" 2>&1 >/dev/null)
    rc=$?
    mvq "$NS_H" -d link show dev lower0 >"$UMV_TMP/port-after" 2>&1
    echo "      $*: exit $rc: ${msg//$'\n'/ / }"
    [ "$rc" = 2 ] && [[ "$msg" == *"umacvlan: macnat_ageing needs macnat on."* ]] &&
        cmp -s "$UMV_TMP/port-before" "$UMV_TMP/port-after"
}
check "macnat_ageing 60 while macnat is off: refused (exit 2, the reason), nothing changed" \
    refused_by_daemon macnat_ageing 60

# What reaches x from any MAC but lower0's from here on (tcpdump sees a frame
# before the AP's ingress rule drops it): shown if the AP drops anything.
LEAKS=$UMV_TMP/leaks.txt
timeout 900 ip netns exec "$NS_X" tcpdump -n -e -p -l -Q in -i xeth \
    "not ether src $UMV_LMAC" >"$LEAKS" 2>"$LEAKS.err" &
LEAKCAP=$!
echo "$LEAKCAP" >>"$UMV_TMP/pids"
umv_wait_for 5 grep -q "listening on" "$LEAKS.err" || echo "      (no capture on xeth: $(head -1 "$LEAKS.err"))"
ON_AT=$(date +%T.%6N)
umv_run_capture RC MSG umv_mv "$NS_H" link set dev lower0 type macvlan macnat on
check "link set dev lower0 type macvlan macnat on" test "$RC" = 0
if [ "$RC" != 0 ]; then
    echo "      exit $RC: $MSG"
    echo "   macnat on was refused: (b), (c) and (d) need it, skipped"
    umv_topo_down
    echo "macnat: $FAILS check(s) FAILED"
    exit 1
fi
IN0=$(dropped_in)
OUT0=$(ctr to_stranger)
port_says() { local w; for w in "$@"; do show_has "$w" || return 1; done; }
check "-d link show dev lower0 says macnat on, macnat_ageing 300" port_says "macnat on" "macnat_ageing 300"

ip -n "$NS_X" neigh flush dev xeth
dhcp "$NS_A" mva "$UMV_TMP/udhcpc-a" 8
A4=$(leased "$UMV_TMP/udhcpc-a")
check "a gets a lease from x's dnsmasq (${A4:-none})" test -n "$A4"
dhcp "$NS_B" mvb "$UMV_TMP/udhcpc-b" 8
B4=$(leased "$UMV_TMP/udhcpc-b")
check "b gets a lease from x's dnsmasq (${B4:-none})" test -n "$B4"
check "... two different addresses" test "${A4:-a}" != "${B4:-b}"
leases_have() { grep -q " $MAC_A ${A4:-none} " "$DH/leases" && grep -q " $MAC_B ${B4:-none} " "$DH/leases"; }
check "dnsmasq's lease file: a's MAC has a's address, b's MAC b's" umv_wait_for 5 leases_have
if [ -z "$A4" ] || [ -z "$B4" ]; then
    indent "$UMV_TMP/udhcpc-a" "$UMV_TMP/udhcpc-b"
    tail -8 "$DH/log" | indent
fi
A4=${A4:-10.78.0.11}
B4=${B4:-10.78.0.12}
# The devices now live at their leased addresses.
if [ "$A4" != 10.78.0.11 ]; then
    ip -n "$NS_A" addr del 10.78.0.11/24 dev mva
    ip -n "$NS_A" addr add "$A4/24" dev mva
fi
if [ "$B4" != 10.78.0.12 ]; then
    ip -n "$NS_B" addr del 10.78.0.12/24 dev mvb
    ip -n "$NS_B" addr add "$B4/24" dev mvb
fi

check "a -> x (v4, from $A4)" reach4 "$NS_A" 10.78.0.1
check "b -> x (v4, from $B4)" reach4 "$NS_B" 10.78.0.1
check "a -> x (v6)" reach6 "$NS_A" fd78::1
check "b -> x (v6)" reach6 "$NS_B" fd78::1
check "x -> a (v4)" reach4 "$NS_X" "$A4"
check "x -> b (v4)" reach4 "$NS_X" "$B4"
check "x -> a (v6)" reach6 "$NS_X" fd78::11
check "x -> b (v6)" reach6 "$NS_X" fd78::12
at_lower() { ip -n "$NS_X" neigh show "$1" dev xeth | grep -q "lladdr $UMV_LMAC"; }
check "x's neighbour table: a's $A4 at lower0's MAC" at_lower "$A4"
check "x's neighbour table: a's fd78::11 at lower0's MAC" at_lower fd78::11
check "x's neighbour table: b's $B4 at lower0's MAC" at_lower "$B4"
check "x's neighbour table: b's fd78::12 at lower0's MAC" at_lower fd78::12
ip -n "$NS_X" neigh show dev xeth | indent

PAYLOAD=$UMV_TMP/payload
head -c 4194304 /dev/urandom >"$PAYLOAD"
listening() { ip netns exec "$1" ss -Hltn "sport = :$2" 2>/dev/null | grep -q .; }
tcp_xfer() {  # tcp_xfer FROM_NS TO_NS TO_IP PORT : 4 MiB, byte for byte
    local out=$UMV_TMP/recv.$4 pid
    rm -f "$out"
    timeout 90 ip netns exec "$2" socat -u "TCP4-LISTEN:$4,reuseaddr" "OPEN:$out,creat,trunc" \
        >"$UMV_TMP/socat-l.$4" 2>&1 &
    pid=$!
    echo "$pid" >>"$UMV_TMP/pids"
    umv_wait_for 10 listening "$2" "$4" || { umv_kill_pids "$pid"; return 1; }
    timeout 60 ip netns exec "$1" socat -u "OPEN:$PAYLOAD" "TCP4:$3:$4,connect-timeout=10" \
        >"$UMV_TMP/socat-c.$4" 2>&1
    umv_wait_for 30 fails umv_pid_alive "$pid"
    umv_kill_pids "$pid"
    wait "$pid" 2>/dev/null
    echo "      received $(stat -c %s "$out" 2>/dev/null || echo 0) of 4194304 bytes"
    [ "$(stat -c %s "$out" 2>/dev/null)" = 4194304 ] && cmp -s "$PAYLOAD" "$out"
}
check "a -> x over TCP: 4194304 bytes arrive intact" tcp_xfer "$NS_A" "$NS_X" 10.78.0.1 5078
check "x -> b over TCP: 4194304 bytes arrive intact" tcp_xfer "$NS_X" "$NS_B" "$B4" 5079

check "host -> x (v4) still works" reach4 "$NS_H" 10.78.0.1
check "x -> host (v4) still works" reach4 "$NS_X" 10.78.0.2
check "host -> x (v6) still works" reach6 "$NS_H" fd78::1
check "x -> host (v6) still works" reach6 "$NS_X" fd78::2

check "the AP dropped no frame meanwhile ($IN0 -> $(dropped_in): from_a $(ctr from_a) from_b $(ctr from_b) stranger $(ctr stranger))" \
    test "$(dropped_in)" = "$IN0"
umv_cap_stop "$LEAKCAP"
if [ "$(dropped_in)" != "$IN0" ]; then
    echo "      frames into xeth not from lower0 (macnat on at $ON_AT):"
    head -20 "$LEAKS" | indent
fi
if [ "$AP_EGRESS" = 1 ]; then
    check "x sent nothing to an unknown MAC meanwhile (to_stranger $OUT0)" unchanged to_stranger "$OUT0"
fi

check "the table: a's $A4 dev mva lladdr $MAC_A" entry_mac "$A4" mva "$MAC_A"
check "the table: a's fd78::11 dev mva" entry fd78::11 mva
check "the table: b's $B4 dev mvb lladdr $MAC_B" entry_mac "$B4" mvb "$MAC_B"
check "the table: b's fd78::12 dev mvb" entry fd78::12 mvb
show
indent "$SHOW"
JROWS=$UMV_TMP/table.rows
json_table() {
    mvq "$NS_H" -d -j link show dev lower0 >"$UMV_TMP/show.json" 2>"$UMV_TMP/show.json.err" || return 1
    "$UMV_PYTHON" - "$UMV_TMP/show.json" >"$JROWS" <<'EOF'
import json, sys
try:
    rows = json.load(open(sys.argv[1]))
    for row in rows:
        for e in (row.get("umacvlan_port") or {}).get("macnat_table", []):
            print(e.get("address"), e.get("dev"), e.get("lladdr"), e.get("learned"), e.get("age"))
except Exception as e:
    print(f"      -j: {e.__class__.__name__}: {e}", file=sys.stderr)
    sys.exit(1)
EOF
}
json_has() { grep -qF "$1 $2 $3 " "$JROWS"; }
json_all() {
    json_table && json_has "$A4" mva "$MAC_A" && json_has "$B4" mvb "$MAC_B" &&
        json_has fd78::11 mva "$MAC_A" && json_has fd78::12 mvb "$MAC_B"
}
check "-j: umacvlan_port.macnat_table has a's and b's addresses, devices, MACs" json_all

# ------------------------------------------------------------- (b2) restart
echo "== (b2) a daemon restart keeps it"
umv_stop_daemon "$UMACVLAN_SOCKET"
check "after a restart, -d link show dev lower0 says macnat on" show_has "macnat on"
check "after a restart, b -> x (v4)" reach4 "$NS_B" 10.78.0.1
check "after a restart, x -> b (v4): the table is learned again" reach4 "$NS_X" "$B4"

# -------------------------------------------------------------- (c) ageing
echo "== (c) ageing"
check "link set dev lower0 type macvlan macnat_ageing 3" \
    umv_mv "$NS_H" link set dev lower0 type macvlan macnat_ageing 3
check "-d link show says macnat_ageing 3" show_has "macnat_ageing 3"
timeout 120 ip netns exec "$NS_A" ping -q -i 0.5 -w 100 10.78.0.1 >/dev/null 2>&1 &
PINGER=$!
echo "$PINGER" >>"$UMV_TMP/pids"
ip -n "$NS_B" link set mvb down
check "mvb down: its entries age out of the table (within 30 s)" umv_wait_for 30 no_entries_of mvb
check "... while a's $A4, kept alive by its ping loop, stays" entry "$A4" mva
indent "$SHOW"
umv_kill_pids "$PINGER"
wait "$PINGER" 2>/dev/null
check "link del mva" umv_mv "$NS_A" link del mva
check "... and its entries are gone at once" no_entries_of mva

# ------------------------------------------------------------- (d) off
echo "== (d) macnat off"
check "link set dev lower0 type macvlan macnat off" \
    umv_mv "$NS_H" link set dev lower0 type macvlan macnat off
macnat_off_shown() { show && ! grep -qF "macnat on" "$SHOW"; }
check "-d link show dev lower0 no longer says macnat on" macnat_off_shown
ip -n "$NS_B" link set mvb up
umv_wait_for 5 umv_link_ready "$NS_B" mvb
FB=$(ctr from_b)
check "b -> x (v4) fails again" fails ping4 "$NS_B" 10.78.0.1
check "the AP drops b's frames again (from_b $FB -> $(ctr from_b))" grew from_b "$FB"
check "x -> b (v4) fails: frames for lower0's MAC stay with the host" fails ping4 "$NS_X" "$B4"
dhcp "$NS_B" mvb "$UMV_TMP/udhcpc-b" 3
check "b's DHCP request gets no lease" fails grep -q "obtained" "$UMV_TMP/udhcpc-b"
check "host -> x still works" reach4 "$NS_H" 10.78.0.1

# ------------------------------------------------ (e) link add, config file
echo "== (e) macnat on link add, and in the config file"
add_refused() {  # macnat_ageing without macnat on a link add: no device made
    local rc msg
    mvq "$NS_H" -d link show dev lower0 >"$UMV_TMP/port-before" 2>&1
    msg=$(mvq "$NS_H" link add link lower0 name mvc type macvlan mode bridge macnat_ageing 60 \
        2>&1 >/dev/null)
    rc=$?
    mvq "$NS_H" -d link show dev lower0 >"$UMV_TMP/port-after" 2>&1
    echo "      link add ... macnat_ageing 60: exit $rc: ${msg//$'\n'/ / }"
    [ "$rc" = 2 ] && [[ "$msg" == *"umacvlan: macnat_ageing needs macnat on."* ]] &&
        cmp -s "$UMV_TMP/port-before" "$UMV_TMP/port-after" && ! ip -n "$NS_H" link show dev mvc >/dev/null 2>&1
}
check "link add ... macnat_ageing 60 while macnat is off: refused, no device made" add_refused
check "link add ... macnat on: a device made with the port's option" \
    umv_mv "$NS_H" link add link lower0 name mvc type macvlan mode bridge macnat on macnat_ageing 120
check "... the port says macnat on, macnat_ageing 120" port_says "macnat on" "macnat_ageing 120"
umv_mv "$NS_H" link del mvc
check "link set dev lower0 type macvlan macnat off (mvb stays)" \
    umv_mv "$NS_H" link set dev lower0 type macvlan macnat off
MAC_B_NOW=$(umv_mac "$NS_B" mvb)
CFG=$UMV_TMP/mn.toml
write_cfg() {  # write_cfg true|false [AGEING]
    cat >"$CFG" <<EOF
[[device]]
name = "mvb"
lower = "lower0"
lower_netns = "$NS_H"
netns = "$NS_B"
mode = "bridge"
mac = "$MAC_B_NOW"
macnat = $1
EOF
    [ -n "${2:-}" ] && echo "macnat_ageing = $2" >>"$CFG"
    return 0
}
write_cfg true 60
"$MV" config apply "$CFG" >"$UMV_TMP/cfg.out" 2>&1
indent "$UMV_TMP/cfg.out"
check "config apply: mvb unchanged, set lower0: macnat on, macnat_ageing 60" \
    test "$(cat "$UMV_TMP/cfg.out")" = "$(printf 'unchanged mvb\nset lower0: macnat on\nset lower0: macnat_ageing 60')"
check "config: b -> x (v4)" reach4 "$NS_B" 10.78.0.1
"$MV" config dump >"$UMV_TMP/dump.toml" 2>&1
check "config dump: macnat = true, macnat_ageing = 60" \
    test "$(grep -c -e 'macnat = true' -e 'macnat_ageing = 60' "$UMV_TMP/dump.toml")" = 2
write_cfg false
"$MV" config apply "$CFG" >"$UMV_TMP/cfg.out" 2>&1
check "config apply: set lower0: macnat off" grep -q "set lower0: macnat off" "$UMV_TMP/cfg.out"
check "config off: b -> x (v4) fails again" fails ping4 "$NS_B" 10.78.0.1
umv_topo_down

if [ "$FAILS" = 0 ]; then echo "macnat: all checks passed"; exit 0; fi
echo "macnat: $FAILS check(s) FAILED"
exit 1
