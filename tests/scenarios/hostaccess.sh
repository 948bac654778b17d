#!/usr/bin/env bash
# hostaccess.sh [-v] - the port option hostaccess: the lower's own stack (the
# "host", namespace h, lower0 10.77.0.2/24 fd77::2/64) and its bridge
# devices (mva in a, mvb in b) reach each other.
#
#   (a) off (the default), the kernel's macvlan and umacvlan alike: a device
#       cannot ping the host, the host cannot ping a device, IPv4 or IPv6;
#       the outside host x is reachable from both.
#   (b) `umacvlan link set dev lower0 type macvlan hostaccess on`: a device
#       pings the host's address and the host pings it back, IPv4 and IPv6;
#       `-d link show` says "hostaccess on"; the host's routes to the
#       devices go through lower0.host; x is still reached.
#   (c) a device that changes its address is reachable at the new one once
#       it has spoken (its ARP), and the old one's route is gone.
#   (d) a DHCP server on the host bound to lower0 (dnsmasq --interface
#       lower0, with lower0.host named as its alias: --bridge-interface)
#       gives a device a lease.
#   (e) a daemon restart keeps it: hostaccess on, the host still pings.
#   (f) off again: the same probes fail as in (a), and the host's addresses,
#       routes (v4 and v6) and proxy neighbours are what they were before
#       (ip -j, byte for byte).
#   (g) the config file: `hostaccess = true` on a device turns its port's on
#       (the device itself unchanged), `config dump` says so (and does not
#       list lower0.host), `hostaccess = false` turns it off again.
#   (h) with hostaccess on, deleting every device leaves lower0.host (and the
#       port); turning it off then removes the port too.
#
# Root. Namespaces umv-ha-<pid>-*; the daemon lives in one of them; all is
# removed on exit. Environment: UMACVLAN_BIN. Exit: 0 as expected, 1
# otherwise, 2 setup error.

set -uo pipefail
. "$(dirname "$0")/lib.sh"
UMV_DEFAULT_IMPL=umacvlan umv_init "$@"
UMV_PFX="umv-ha-$$-"

FAILS=0
check() {  # check NAME COMMAND... : one line per check
    local name=$1
    shift
    if "$@"; then echo "ok    $name"; else echo "FAIL  $name"; FAILS=$((FAILS + 1)); fi
}
fails() { ! "$@"; }
ping4() { timeout 10 ip netns exec "$1" ping -c 2 -i 0.3 -W 1 -q "$2" >/dev/null 2>&1; }
ping6() { timeout 10 ip netns exec "$1" ping -6 -c 2 -i 0.3 -W 1 -q "$2" >/dev/null 2>&1; }
# A device says something (its ARP for the host) before the host calls it.
speak() { ip netns exec "$1" ping -c 1 -W 1 -q "$2" >/dev/null 2>&1; true; }
host_state() {  # the host's addresses, routes and proxy neighbours
    ip -n "$NS_H" -j addr
    ip -n "$NS_H" -j route
    ip -n "$NS_H" -6 -j route
    ip -n "$NS_H" -6 neigh show proxy
}

setup() {  # setup IMPL
    umv_set_impl "$1"
    umv_topo_up "ha-$1" || umv_die "topology setup failed"
    umv_topo_ipv6_on
    ip -n "$NS_H" addr add 10.77.0.2/24 dev lower0
    ip -n "$NS_H" addr add fd77::2/64 dev lower0 nodad || umv_die "no IPv6 on lower0"
    ip -n "$NS_X" addr add fd77::1/64 dev xeth nodad || umv_die "no IPv6 on xeth"
    umv_mkdev mva bridge "$NS_A" 10.77.0.11/24 || umv_die "cannot create mva"
    umv_mkdev mvb bridge "$NS_B" 10.77.0.12/24 || umv_die "cannot create mvb"
    ip -n "$NS_A" addr add fd77::11/64 dev mva nodad || umv_die "no IPv6 on mva"
    ip -n "$NS_B" addr add fd77::12/64 dev mvb nodad || umv_die "no IPv6 on mvb"
    umv_ping "$NS_A" 10.77.0.12 5 || umv_die "a cannot reach b"
}

probes_off() {  # probes_off LABEL : everything between host and devices fails
    local l=$1
    check "$l: a -> host (v4) fails" fails ping4 "$NS_A" 10.77.0.2
    check "$l: host -> a (v4) fails" fails ping4 "$NS_H" 10.77.0.11
    check "$l: a -> host (v6) fails" fails ping6 "$NS_A" fd77::2
    check "$l: host -> a (v6) fails" fails ping6 "$NS_H" fd77::11
    check "$l: a -> x still works (v4)" ping4 "$NS_A" 10.77.0.1
    check "$l: a -> x still works (v6: the probe itself works)" ping6 "$NS_A" fd77::1
    check "$l: host -> x still works" ping4 "$NS_H" 10.77.0.1
}

# ----------------------------------------------------------- (a) kernel
echo "== (a) off: the kernel's macvlan"
setup kernel
probes_off "kernel"
umv_topo_down

# ------------------------------------------------------- (a) umacvlan
echo "== (a) off: umacvlan (the default)"
setup umacvlan
# Once lower0's link-local address is past DAD (it is part of the state).
no_tentative() { [ -z "$(ip -n "$NS_H" -6 addr show dev lower0 tentative)" ]; }
umv_wait_for 10 no_tentative || umv_die "lower0's IPv6 addresses stay tentative"
BEFORE=$UMV_TMP/before.json
host_state >"$BEFORE"
probes_off "umacvlan off"

# ------------------------------------------------------------- (b) on
echo "== (b) hostaccess on"
check "link set dev lower0 type macvlan hostaccess on" \
    umv_mv "$NS_H" link set dev lower0 type macvlan hostaccess on
check "lower0.host exists beside lower0, up" umv_wait_for 5 umv_link_ready "$NS_H" lower0.host
speak "$NS_A" 10.77.0.2
check "a -> host (v4)" ping4 "$NS_A" 10.77.0.2
check "host -> a (v4)" ping4 "$NS_H" 10.77.0.11
speak "$NS_B" 10.77.0.2
check "host -> b (v4)" ping4 "$NS_H" 10.77.0.12
check "a -> host (v6)" ping6 "$NS_A" fd77::2
check "host -> a (v6)" ping6 "$NS_H" fd77::11
check "the host's route to a goes through lower0.host" \
    grep -q "dev lower0.host" <(ip -n "$NS_H" route get 10.77.0.11)
check "-d link show says hostaccess on" grep -q "hostaccess on" <(umv_mv "$NS_A" -d link show mva)
check "a -> x still works" ping4 "$NS_A" 10.77.0.1
check "host -> x still works" ping4 "$NS_H" 10.77.0.1
check "on a lower, only hostaccess can be set" \
    fails umv_mv "$NS_H" link set dev lower0 type macvlan mode vepa hostaccess on

# -------------------------------------------------- (c) a new address
echo "== (c) a device changes its address"
ip -n "$NS_A" addr del 10.77.0.11/24 dev mva
ip -n "$NS_A" addr add 10.77.0.21/24 dev mva
speak "$NS_A" 10.77.0.2
check "host -> a at its new address 10.77.0.21" ping4 "$NS_H" 10.77.0.21
old_route_gone() { ! ip -n "$NS_H" route get 10.77.0.11 | grep -q "dev lower0.host"; }
check "... and its old address lost its route" umv_wait_for 3 old_route_gone

# ---------------------------------------------------------- (d) DHCP
echo "== (d) a DHCP server on the host"
DNSMASQ=${UMV_DNSMASQ:-/usr/sbin/dnsmasq}
"$DNSMASQ" --version >/dev/null 2>&1 || umv_die "missing tool: dnsmasq"
D=$UMV_TMP/dhcp
mkdir -p "$D"
timeout 120 ip netns exec "$NS_H" "$DNSMASQ" --keep-in-foreground --conf-file=/dev/null --port=0 \
    --interface=lower0 --bridge-interface=lower0,lower0.host \
    --dhcp-range=10.77.0.100,10.77.0.150,255.255.255.0,2m \
    --dhcp-leasefile="$D/leases" --pid-file="$D/pid" --log-dhcp --log-facility="$D/log" \
    --no-ping --user=root >"$D/out" 2>&1 &
echo $! >>"$UMV_TMP/pids"
umv_wait_for 10 grep -q "DHCP, IP range" "$D/log" || umv_die "dnsmasq did not start: $(head -3 "$D/out")"
timeout 30 ip netns exec "$NS_B" busybox udhcpc -f -i mvb -t 5 -T 1 -n -q -s /bin/true >"$D/udhcpc" 2>&1
check "b gets a lease from the host's dnsmasq" grep -q "lease of 10.77.0.1[0-9][0-9] obtained" "$D/udhcpc"
[ "$FAILS" = 0 ] || { sed 's/^/      /' "$D/udhcpc"; tail -5 "$D/log" | sed 's/^/      /'; }

# ------------------------------------------------------- (e) restart
echo "== (e) a daemon restart"
umv_stop_daemon "$UMACVLAN_SOCKET"
check "after a restart, -d link show says hostaccess on" \
    grep -q "hostaccess on" <(umv_mv "$NS_A" -d link show mva)
speak "$NS_A" 10.77.0.2
check "after a restart, host -> a (v4)" ping4 "$NS_H" 10.77.0.21

# ------------------------------------------------------------- (f) off
echo "== (f) hostaccess off"
ip -n "$NS_A" addr del 10.77.0.21/24 dev mva
ip -n "$NS_A" addr add 10.77.0.11/24 dev mva
check "link set dev lower0 type macvlan hostaccess off" \
    umv_mv "$NS_H" link set dev lower0 type macvlan hostaccess off
check "lower0.host is gone" fails ip -n "$NS_H" link show lower0.host
probes_off "umacvlan off again"
AFTER=$UMV_TMP/after.json
host_state >"$AFTER"
check "the host's addresses, routes and proxies: byte for byte as before" diff "$BEFORE" "$AFTER"
check "-d link show no longer says hostaccess" fails grep -q "hostaccess" <(umv_mv "$NS_A" -d link show mva)

# ------------------------------------------------------ (g) config file
echo "== (g) the config file says it"
CFG=$UMV_TMP/ha.toml
write_cfg() {
    cat >"$CFG" <<EOF
[[device]]
name = "mva"
lower = "lower0"
lower_netns = "$NS_H"
netns = "$NS_A"
mode = "bridge"
hostaccess = $1
EOF
}
write_cfg true
"$MV" config apply "$CFG" >"$UMV_TMP/cfg.out" 2>&1
check "config apply: mva unchanged, set lower0: hostaccess on" \
    test "$(cat "$UMV_TMP/cfg.out")" = "$(printf 'unchanged mva\nset lower0: hostaccess on')"
sed 's/^/      /' "$UMV_TMP/cfg.out"
speak "$NS_A" 10.77.0.2
check "config: host -> a (v4)" ping4 "$NS_H" 10.77.0.11
"$MV" config dump >"$UMV_TMP/dump.toml" 2>&1
check "config dump: hostaccess = true, and no lower0.host device" \
    test "$(grep -c 'hostaccess = true' "$UMV_TMP/dump.toml")-$(grep -c 'lower0.host' "$UMV_TMP/dump.toml")" = "2-0"
write_cfg false
"$MV" config apply "$CFG" >"$UMV_TMP/cfg.out" 2>&1
check "config apply: set lower0: hostaccess off" grep -q "set lower0: hostaccess off" "$UMV_TMP/cfg.out"
host_state >"$AFTER"
check "config off: the host as it was, byte for byte" diff "$BEFORE" "$AFTER"

# --------------------------------------------- (h) the port's last device
echo "== (h) hostaccess outlives the port's devices, off then ends the port"
umv_mv "$NS_H" link set dev lower0 type macvlan hostaccess on
umv_mv "$NS_A" link del mva
umv_mv "$NS_B" link del mvb
check "with no device left, lower0.host stays" umv_link_ready "$NS_H" lower0.host
umv_mv "$NS_H" link set dev lower0 type macvlan hostaccess off
no_port_left() { ! ip netns exec "$NS_H" nft list tables 2>/dev/null | grep -q umacvlan; }
check "off: lower0.host gone and the port with it (no nftables table left)" no_port_left
umv_topo_down

if [ "$FAILS" = 0 ]; then echo "hostaccess: all checks passed"; exit 0; fi
echo "hostaccess: $FAILS check(s) FAILED"
exit 1
