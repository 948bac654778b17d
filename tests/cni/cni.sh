#!/usr/bin/env bash
# shellcheck disable=SC2317  # functions called through umv_bg_yn, case_$c, ...
# cni.sh [--impl kernel|umacvlan|both] [-v]
#
# Differential test of the CNI plugin: umacvlan-cni against the reference
# CNI macvlan plugin (Debian's containernetworking-plugins, /usr/lib/cni),
# run the same way, in the same namespace topology, with the same IPAM.
#   kernel    /usr/lib/cni/macvlan (config "type":"macvlan")
#   umacvlan  umacvlan-cni (config "type":"umacvlan"): $UMACVLAN_CNI, else
#             umacvlan-cni beside $UMACVLAN_BIN (the CLI), else
#             build/src/cli/umacvlan-cni of this repository.
# A small runtime (cnidriver.py beside this script) runs the plugin as libcni
# would: CNI_* variables, the configuration on stdin with prevResult /
# runtimeConfig / cni.dev/valid-attachments inserted.
#
# Topology, fresh per implementation (all namespaces "umv-cni-<pid>-..."):
#   r  the "runtime" namespace: the plugin runs here (ip netns exec), as a
#      runtime on a host would. lower0 10.88.0.254/24 (default route via
#      10.88.0.1) and lower1 (no address; deleted by the "master deleted"
#      case), veths whose peers are in o. The dhcp IPAM daemon runs here.
#   o  "outside": oeth 10.88.0.1/24 + fd88::1/64 with dnsmasq serving DHCP
#      10.88.0.100-150; oeth1 (lower1's peer).
#   d  where the umacvlan daemon the plugin starts lives
#      (UMACVLAN_DAEMON_NETNS; its socket UMACVLAN_SOCKET is in our temp dir).
#   c  one namespace per container (CNI_NETNS=/run/netns/NAME).
# host-local keeps its state in a temp dir per implementation (the same
# sequence of requests gives both the same addresses); each case has its
# own network name and address range.
#
# Cases (one or more rows each; kernel vs umacvlan):
#   bridge     ADD/CHECK/DEL of two containers, host-local v4+v6, routes,
#              dns: exit, result structure, counts, sandbox, MACs,
#              addresses; ping c1->c2, c1->o, o->c1, c1->o (IPv6)
#   private / vepa / passthru / source, master omitted, layer 2 only
#              ("ipam": {}; no "ipam" at all), mtu, mac (conf,
#              CNI_ARGS, runtimeConfig, precedence), DEL of what never
#              existed / twice, DEL after the master is deleted, bad
#              configurations, a failed IPAM ADD, cniVersion 0.3.1 0.4.0
#              1.0.0 1.1.0, VERSION, STATUS, GC, dhcp IPAM, MAC stability.
# Expected values: the reference's (measured), except the differences listed
# with umv_accept (a reason each) or umv_upstream (a bug of the reference
# 1.1.1 that upstream fixed).
#
# Needs root, iproute2, ping (iputils), dnsmasq, python3, the reference
# plugins in $UMV_CNI_REF_DIR (default /usr/lib/cni). Other engineers run
# namespace tests on this machine too: run it as
#     flock /tmp/umacvlan-ns.lock bash tests/cni/cni.sh --impl both
# Exit: 0 every row ok / accepted / fixed upstream, 1 otherwise, 2 setup error.

set -uo pipefail
CNI_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../scenarios/lib.sh
. "$CNI_DIR/../scenarios/lib.sh"
DRV="$CNI_DIR/cnidriver.py"
REF_DIR=${UMV_CNI_REF_DIR:-/usr/lib/cni}
DNSMASQ=${UMV_DNSMASQ:-/usr/sbin/dnsmasq}

# The plugin under test (umacvlan): see the header.
umacvlan_cni_path() {
    local p
    if [ -n "${UMACVLAN_CNI:-}" ]; then
        p=$UMACVLAN_CNI
    elif [ -n "${UMACVLAN_BIN:-}" ]; then
        p="$(dirname "$UMACVLAN_BIN")/umacvlan-cni"
    else
        p="build/src/cli/umacvlan-cni"
    fi
    case "$p" in /*) ;; *) p="$UMV_REPO/$p" ;; esac
    printf '%s\n' "$p"
}

umv_init "$@"
# Our namespaces: umv-cni-<pid>-... (umv_cleanup deletes every one left).
UMV_PFX="umv-cni-$$-"
for t in ping "$DNSMASQ" "$REF_DIR/macvlan" "$REF_DIR/host-local" "$REF_DIR/dhcp"; do
    command -v "$t" >/dev/null 2>&1 || umv_die "missing: $t"
done
for i in "${UMV_IMPLS[@]}"; do
    if [ "$i" = umacvlan ]; then
        p=$(umacvlan_cni_path)
        { [ -x "$p" ] && [ ! -d "$p" ]; } ||
            umv_die "umacvlan-cni not found or not executable: $p (build it, or set UMACVLAN_CNI)"
    fi
done

# Reasons of the listed differences.
R999="the reference reports a plain configuration error as 999 (internal error); umacvlan-cni as 7 (invalid network configuration)"
R110="the reference plugin 1.1.1 predates spec 1.1.0: cniVersion 1.1.0 is refused with code 1; it has no STATUS or GC (it asks for CNI_CONTAINERID first: code 3)"
RLEAK="the reference 1.1.1 leaves the macvlan link in the netns when the IPAM ADD fails (its deferred link delete sees a shadowed err and never runs)"
RDELM="the reference 1.1.1 loads the master in DEL and fails with \"Link not found\" once it is gone (leaking the IPAM lease); fixed upstream in 1.4.0"
RSRC="mode \"source\" is an umacvlan-cni extension; the reference refuses it (unknown macvlan mode)"
RMAC="no kernel counterpart: the reference takes the kernel's random MAC on every ADD; umacvlan-cni derives it from the network name, the pod or container ID and the interface name (stableMac)"
RNOIPAM="umacvlan-cni requires \"ipam\" (\"ipam\": {} for layer 2 only: code 7 without it); the reference takes a missing ipam as layer 2 only"
RVER="umacvlan-cni supports 0.3.0 0.3.1 0.4.0 1.0.0 1.1.0; the reference 1.1.1 0.1.0 to 1.0.0"

PING_YES=6    # deadline of a ping that should get a reply (polling, bounded)
PING_NO=2     # deadline of a ping that should not

TOPO_NS=()    # namespaces of the current implementation's topology
TOPO_PIDS=()  # dnsmasq, dhcp daemon

# ---------------------------------------------------------------- helpers ---

py() { "$UMV_PYTHON" "$DRV" "$@"; }

# ns_add NAME [v6]: a namespace of ours (IPv6 on with v6).
ns_add() {
    umv_ns_add "$1" || return 1
    TOPO_NS+=("$1")
    if [ "${2:-}" = v6 ]; then
        ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 \
            net.ipv6.conf.default.disable_ipv6=0 net.ipv6.conf.lo.disable_ipv6=0 >/dev/null
    fi
}
cns() { printf '%s%s-%s\n' "$UMV_PFX" "$T" "$1"; }      # container's netns name
mkc() { local c; for c in "$@"; do ns_add "$(cns "$c")" v6 || return 1; done; }

# Links of a container namespace, e.g. "lo eth0" ("gone" without the netns).
links() {
    local ns
    ns=$(cns "$1")
    [ -e "/run/netns/$ns" ] || { echo gone; return 0; }
    ip -n "$ns" -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | paste -sd' ' -
}
devmac() { ip netns exec "$(cns "$1")" cat /sys/class/net/eth0/address 2>/dev/null || echo none; }
devmtu() { ip netns exec "$(cns "$1")" cat /sys/class/net/eth0/mtu 2>/dev/null || echo none; }
# host-local leases of network NAME (files other than last_reserved_ip.* and lock)
leases() {
    local n
    n=$(find "$TD/hl/$1" -maxdepth 1 -type f ! -name 'last_reserved_ip*' ! -name lock 2>/dev/null | wc -l)
    echo "$n"
}

bg() {
    local log=$1; shift
    "$@" >"$log" 2>&1 &
    TOPO_PIDS+=($!)
    echo "$!" >>"$UMV_TMP/pids"
}

# mkconf NAME VERSION MEMBER... : $TD/conf/NAME.json, network NAME, our type.
mkconf() {
    local name=$1 ver=$2; shift 2
    local IFS=,
    printf '{"cniVersion":"%s","name":"%s","type":"%s"%s}\n' "$ver" "$name" "$TYPE" "${*:+,$*}" \
        >"$TD/conf/$name.json"
}
# rawconf NAME TEXT: a configuration file as given (bad ones).
rawconf() { printf '%s\n' "$2" >"$TD/conf/$1.json"; }

# host-local IPAM members: hl4 FROM TO (10.88.0.FROM-TO), hl46 adds fd88::FROM-TO.
hl4() {
    printf '"ipam":{"type":"host-local","dataDir":"%s","ranges":[[{"subnet":"10.88.0.0/24","rangeStart":"10.88.0.%s","rangeEnd":"10.88.0.%s","gateway":"10.88.0.1"}]],"routes":[{"dst":"0.0.0.0/0"}]}' \
        "$TD/hl" "$1" "$2"
}
hl46() {
    printf '"ipam":{"type":"host-local","dataDir":"%s","ranges":[[{"subnet":"10.88.0.0/24","rangeStart":"10.88.0.%s","rangeEnd":"10.88.0.%s","gateway":"10.88.0.1"}],[{"subnet":"fd88::/64","rangeStart":"fd88::%s","rangeEnd":"fd88::%s","gateway":"fd88::1"}]],"routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0"}]}' \
        "$TD/hl" "$1" "$2" "$1" "$2"
}
DNS='"dns":{"nameservers":["10.88.0.1"],"domain":"cni.test","search":["cni.test"],"options":["ndots:2"]}'

# cni LABEL CMD CONF CONTAINER [driver options...]: run the plugin in r for
# container CONTAINER (CNI_NETNS=/run/netns/<its netns>, CNI_CONTAINERID
# cid-CONTAINER, CNI_IFNAME eth0). The driver's line goes to $TD/res/LABEL.
cni() {
    local label=$1 cmd=$2 conf=$3 c=$4; shift 4
    local out="$TD/res/$label"
    timeout 150 ip netns exec "$NS_R" "$UMV_PYTHON" "$DRV" run --plugin "$CNIBIN/$TYPE" \
        --path "$CNIBIN" --command "$cmd" --conf "$TD/conf/$conf.json" --containerid "cid-$c" \
        --netns "/run/netns/$(cns "$c")" --ifname eth0 --timeout 120 "$@" >"$out" 2>"$out.err"
    umv_vlog "[$UMV_IMPL] $label: $cmd $conf $c $*: $(head -c 600 "$out") $(head -c 300 "$out.err")"
}
# cni_plain LABEL CMD CONF [driver options...]: no container (STATUS, GC, VERSION).
cni_plain() {
    local label=$1 cmd=$2 conf=$3; shift 3
    local out="$TD/res/$label"
    timeout 150 ip netns exec "$NS_R" "$UMV_PYTHON" "$DRV" run --plugin "$CNIBIN/$TYPE" \
        --path "$CNIBIN" --command "$cmd" --conf "$TD/conf/$conf.json" --timeout 120 "$@" \
        >"$out" 2>"$out.err"
    umv_vlog "[$UMV_IMPL] $label: $cmd $conf $*: $(head -c 600 "$out") $(head -c 300 "$out.err")"
}
# ADD saves the result per container for CHECK/DEL's prevResult.
add() { local l=$1 conf=$2 c=$3; shift 3; rm -f "$TD/res/$c.result"; cni "$l" ADD "$conf" "$c" --save "$TD/res/$c.result" "$@"; }
prev() { [ -s "$TD/res/$1.result" ] && printf '%s\n' --prev "$TD/res/$1.result"; return 0; }
chk() { local l=$1 conf=$2 c=$3 p; shift 3; mapfile -t p < <(prev "$c"); cni "$l" CHECK "$conf" "$c" "${p[@]}" "$@"; }
del() { local l=$1 conf=$2 c=$3 p; shift 3; mapfile -t p < <(prev "$c"); cni "$l" DEL "$conf" "$c" "${p[@]}" "$@"; }

st() { py status "$TD/res/$1"; }
# "exit=1 error" when the plugin failed with a CNI error object.
errp() { local s; s=$(st "$1"); case "$s" in exit=0) echo "exit=0" ;; *code=*) echo "exit=1 error" ;; *) echo "$s" ;; esac; }
msg() { py field "$TD/res/$1" msg | cut -c1-110; }

rec() { umv_rec "$@"; }
# rec_err ROW LABEL [EXPECTED]: the status, and the error message as a note.
rec_err() {
    local s
    s=$(st "$2")
    rec "$1" "$s" "${@:3}"
    [ "$s" = exit=0 ] || umv_note "$1: $s: $(msg "$2")"
}
# rec_shape ROW LABEL [shape|content]: the result's structure (keys and
# JSON types), or its content with MACs and the netns path masked, as a
# short hash; the text is kept, and differing ones are shown after the table.
rec_shape() {
    local f what=${3:-shape}
    f="$UMV_TMP/detail/$UMV_IMPL/$(printf '%s' "$1" | tr -c 'A-Za-z0-9' _)"
    mkdir -p "$(dirname "$f")"
    py "$what" "$TD/res/$2" >"$f" 2>&1
    printf '%s\n' "$1" >"$f.row"
    if [ "$what" = shape ]; then
        rec "$1" "$(grep -c . "$f") keys, #$(sha1sum <"$f" | cut -c1-8)"
    else
        rec "$1" "$(wc -c <"$f") bytes, #$(sha1sum <"$f" | cut -c1-8)"
    fi
}

# pingok NS DST DEADLINE: a reply within DEADLINE seconds (ping polls).
pingok() { timeout $(( $3 + 5 )) ip netns exec "$1" ping -n -q -c 1 -i 0.2 -w "$3" "$2" >/dev/null 2>&1; }
# pings ROW NS DST EXPECT ...: in parallel (quadruples), each recorded.
pings() {
    local -a rows=() files=() exps=()
    local n=0
    while [ $# -ge 4 ]; do
        local dl=$PING_YES
        [ "$4" = no ] && dl=$PING_NO
        n=$((n + 1))
        files+=("$TD/ping.$n"); rows+=("$1"); exps+=("$4")
        umv_bg_yn "$TD/ping.$n" pingok "$2" "$3" "$dl"
        shift 4
    done
    umv_bg_wait
    local i
    for i in "${!rows[@]}"; do rec "${rows[$i]}" "$(umv_bg_get "${files[$i]}")" "${exps[$i]}"; done
}

# ----------------------------------------------------------- topology ---

topo_up() {
    local impl=$1
    T=${impl:0:1}
    TD="$UMV_TMP/$impl"
    mkdir -p "$TD/cnibin" "$TD/hl" "$TD/res" "$TD/conf"
    CNIBIN="$TD/cnibin"
    if [ "$impl" = kernel ]; then
        TYPE=macvlan
        ln -s "$REF_DIR/macvlan" "$CNIBIN/macvlan"
    else
        TYPE=umacvlan
        ln -s "$(umacvlan_cni_path)" "$CNIBIN/umacvlan"
    fi
    ln -s "$REF_DIR/host-local" "$CNIBIN/host-local"
    ln -s "$REF_DIR/dhcp" "$CNIBIN/dhcp"
    NS_R="${UMV_PFX}$T-r"; NS_O="${UMV_PFX}$T-o"; NS_D="${UMV_PFX}$T-d"
    export UMACVLAN_SOCKET="$TD/umacvlan.sock"
    export UMACVLAN_DAEMON_NETNS="/run/netns/$NS_D"
    echo "$UMACVLAN_SOCKET" >>"$UMV_TMP/sockets"
    ns_add "$NS_D" && ns_add "$NS_R" && ns_add "$NS_O" v6 || return 1
    ip -n "$NS_R" link add lower0 type veth peer name oeth netns "$NS_O" || return 1
    ip -n "$NS_R" link add lower1 type veth peer name oeth1 netns "$NS_O" || return 1
    ip -n "$NS_R" link set lower0 address 02:99:00:00:00:fe
    ip -n "$NS_O" link set oeth address 02:99:00:00:00:01
    ip -n "$NS_R" addr add 10.88.0.254/24 dev lower0
    ip -n "$NS_O" addr add 10.88.0.1/24 dev oeth
    ip -n "$NS_O" addr add fd88::1/64 dev oeth nodad
    for l in lower0 lower1; do ip -n "$NS_R" link set "$l" up; done
    for l in oeth oeth1; do ip -n "$NS_O" link set "$l" up; done
    ip -n "$NS_R" route add default via 10.88.0.1 || return 1
    umv_wait_for 5 umv_link_ready "$NS_R" lower0 || { umv_log "lower0 not up"; return 1; }
    umv_wait_for 5 umv_link_ready "$NS_R" lower1 || { umv_log "lower1 not up"; return 1; }
    # DHCP server outside, DHCP IPAM daemon in the runtime namespace.
    bg "$TD/dnsmasq.out" timeout 600 ip netns exec "$NS_O" "$DNSMASQ" --keep-in-foreground \
        --conf-file=/dev/null --port=0 --bind-interfaces --interface=oeth \
        --dhcp-range=10.88.0.100,10.88.0.150,255.255.255.0,2m \
        --dhcp-leasefile="$TD/dnsmasq.leases" --pid-file="$TD/dnsmasq.pid" \
        --log-dhcp --log-facility="$TD/dnsmasq.log" --no-ping --user=root
    umv_wait_for 10 grep -q "DHCP, IP range" "$TD/dnsmasq.log" ||
        { umv_log "dnsmasq did not start: $(head -3 "$TD/dnsmasq.out" "$TD/dnsmasq.log" 2>&1)"; return 1; }
    bg "$TD/dhcpd.log" timeout 600 ip netns exec "$NS_R" "$REF_DIR/dhcp" daemon \
        -socketpath "$TD/dhcp.sock" -pidfile "$TD/dhcpd.pid"
    umv_wait_for 10 test -S "$TD/dhcp.sock" ||
        { umv_log "dhcp daemon did not start: $(head -3 "$TD/dhcpd.log")"; return 1; }
    umv_vlog "[$impl] topology up"
}

topo_down() {
    umv_stop_daemon "$UMACVLAN_SOCKET"
    umv_kill_pids "${TOPO_PIDS[@]}"
    local i
    for ((i = ${#TOPO_NS[@]} - 1; i >= 0; i--)); do umv_ns_delete "${TOPO_NS[$i]}"; done
    TOPO_NS=(); TOPO_PIDS=()
}

# ---------------------------------------------------------------- cases ---

case_bridge() {
    mkc br1 br2 || return 1
    mkconf br 1.0.0 '"master":"lower0"' '"mode":"bridge"' "$(hl46 10 19)" "$DNS"
    add br-add1 br br1
    add br-add2 br br2
    rec "bridge: ADD c1" "$(st br-add1)" exit=0
    rec "bridge: ADD c2" "$(st br-add2)" exit=0
    rec_shape "bridge: ADD c1 result structure" br-add1
    rec_shape "bridge: ADD c1 result, MAC/netns masked" br-add1 content
    rec_shape "bridge: ADD c2 result, MAC/netns masked" br-add2 content
    local s c
    for c in 1 2; do
        mapfile -t s < <(py summary "$TD/res/br-add$c" "/run/netns/$(cns "br$c")" eth0 --devmac "$(devmac "br$c")")
        rec "bridge: c$c result ifs, ips, ip.interface" "${s[0]}" "ifs=1 ips=2 idx=0,0"
        rec "bridge: c$c result sandbox, mac" "${s[1]}" "sandbox=ok mac=ok dev=same"
    done
    rec "bridge: c1 addresses" "$(py addrs "$TD/res/br-add1")" "10.88.0.10/24 fd88::10/64"
    rec "bridge: c2 addresses" "$(py addrs "$TD/res/br-add2")" "10.88.0.11/24 fd88::11/64"
    rec "bridge: c1 device mtu" "$(devmtu br1)" 1500
    chk br-chk1 br br1
    chk br-chk2 br br2
    rec_err "bridge: CHECK c1" br-chk1 exit=0
    rec_err "bridge: CHECK c2" br-chk2 exit=0
    pings "bridge: ping c1 -> c2" "$(cns br1)" 10.88.0.11 yes \
        "bridge: ping c1 -> outside" "$(cns br1)" 10.88.0.1 yes \
        "bridge: ping outside -> c1" "$NS_O" 10.88.0.10 yes \
        "bridge: ping6 c1 -> outside" "$(cns br1)" fd88::1 yes
    del br-del1 br br1
    del br-del2 br br2
    rec_err "bridge: DEL c1" br-del1 exit=0
    rec_err "bridge: DEL c2" br-del2 exit=0
    rec "bridge: c1 links after DEL" "$(links br1)" lo
    rec "bridge: host-local leases after DEL" "$(leases br)" 0
}

# case_mode MODE C2C: two containers in MODE; C2C = can c1 reach c2.
case_mode() {
    local m=$1 c2c=$2 a b base
    a=${m:0:2}1; b=${m:0:2}2
    case "$m" in private) base=20 ;; vepa) base=30 ;; esac
    mkc "$a" "$b" || return 1
    mkconf "$m" 1.0.0 '"master":"lower0"' "\"mode\":\"$m\"" "$(hl4 "$base" $((base + 9)))"
    add "$m-add1" "$m" "$a"
    add "$m-add2" "$m" "$b"
    rec_err "$m: ADD c1" "$m-add1" exit=0
    rec_err "$m: ADD c2" "$m-add2" exit=0
    chk "$m-chk1" "$m" "$a"
    rec_err "$m: CHECK c1" "$m-chk1" exit=0
    pings "$m: ping c1 -> c2" "$(cns "$a")" "10.88.0.$((base + 1))" "$c2c" \
        "$m: ping c1 -> outside" "$(cns "$a")" 10.88.0.1 yes \
        "$m: ping c2 -> outside" "$(cns "$b")" 10.88.0.1 yes \
        "$m: ping outside -> c1" "$NS_O" "10.88.0.$base" yes
    del "$m-del1" "$m" "$a"
    del "$m-del2" "$m" "$b"
    rec_err "$m: DEL c1, c2" "$m-del1" exit=0
    rec "$m: c2 DEL; links after" "$(st "$m-del2"); $(links "$b")" "exit=0; lo"
}

case_passthru() {
    mkc pt1 pt2 pt3 || return 1
    mkconf passthru 1.0.0 '"master":"lower0"' '"mode":"passthru"' "$(hl4 40 49)"
    add pt-add1 passthru pt1
    rec_err "passthru: ADD c1" pt-add1 exit=0
    add pt-add2 passthru pt2
    rec "passthru: ADD c2 (second on the master)" "$(errp pt-add2)" "exit=1 error"
    [ "$(st pt-add2)" = exit=0 ] || umv_note "passthru: ADD c2: $(st pt-add2): $(msg pt-add2)"
    rec "passthru: c2 links after the refusal" "$(links pt2)" lo
    rec "passthru: host-local leases then" "$(leases passthru)" 1
    chk pt-chk1 passthru pt1
    rec_err "passthru: CHECK c1" pt-chk1 exit=0
    rec "passthru: c1 MAC is lower0's" \
        "$([ "$(devmac pt1)" = 02:99:00:00:00:fe ] && echo yes || echo "no ($(devmac pt1))")" yes
    pings "passthru: ping c1 -> outside" "$(cns pt1)" 10.88.0.1 yes
    del pt-del1 passthru pt1
    rec_err "passthru: DEL c1" pt-del1 exit=0
    add pt-add3 passthru pt3
    rec_err "passthru: ADD c3 after c1's DEL" pt-add3 exit=0
    del pt-del3 passthru pt3
    del pt-del2 passthru pt2
    rec "passthru: DEL c3, DEL c2 (never added)" "$(st pt-del3), $(st pt-del2)" "exit=0, exit=0"
}

case_source() {
    mkc so1 || return 1
    mkconf source 1.0.0 '"master":"lower0"' '"mode":"source"' "$(hl4 50 59)"
    add so-add1 source so1
    rec_err "source: ADD (extension)" so-add1 exit=0
    umv_accept "source: ADD (extension)" "$RSRC"
    del so-del1 source so1
    rec_err "source: DEL" so-del1 exit=0
    rec "source: links after DEL" "$(links so1)" lo
}

case_nomaster() {
    mkc nm1 || return 1
    mkconf nomaster 1.0.0 "$(hl4 60 69)"
    add nm-add1 nomaster nm1
    rec_err "master omitted: ADD" nm-add1 exit=0
    chk nm-chk1 nomaster nm1
    rec_err "master omitted: CHECK" nm-chk1 exit=0
    pings "master omitted: ping c1 -> outside" "$(cns nm1)" 10.88.0.1 yes
    del nm-del1 nomaster nm1
    rec_err "master omitted: DEL" nm-del1 exit=0
}

case_l2() {
    mkc l21 l22 || return 1
    mkconf l2 1.0.0 '"master":"lower0"' '"ipam":{}'
    mkconf noipam 1.0.0 '"master":"lower0"'
    add l2-add1 l2 l21
    rec_err "layer 2 (\"ipam\": {}): ADD" l2-add1 exit=0
    rec_shape "layer 2: ADD result structure" l2-add1
    rec_shape "layer 2: ADD result, MAC/netns masked" l2-add1 content
    local s
    mapfile -t s < <(py summary "$TD/res/l2-add1" "/run/netns/$(cns l21)" eth0 --devmac "$(devmac l21)")
    rec "layer 2: result ifs, ips; sandbox, mac" "${s[0]}; ${s[1]}" \
        "ifs=1 ips=0 idx=-; sandbox=ok mac=ok dev=same"
    rec "layer 2: device up, addresses" \
        "$(ip -n "$(cns l21)" -o link show eth0 | grep -q '[<,]UP[,>]' && echo up || echo down), $(ip -n "$(cns l21)" -4 -o addr show dev eth0 | grep -c inet)" "up, 0"
    chk l2-chk1 l2 l21
    rec_err "layer 2: CHECK" l2-chk1 exit=0
    del l2-del1 l2 l21
    rec_err "layer 2: DEL" l2-del1 exit=0
    add l2-add2 noipam l22
    rec_err "no \"ipam\" key: ADD" l2-add2 "exit=1 code=7"
    umv_accept "no \"ipam\" key: ADD" "$RNOIPAM"
    del l2-del2 noipam l22
    rec "no \"ipam\" key: links after ADD and DEL" "$(links l22)" lo
}

case_mtu() {
    mkc mt1 mt2 mt3 || return 1
    mkconf mtu1400 1.0.0 '"master":"lower0"' '"mtu":1400' "$(hl4 70 79)"
    mkconf mtu9000 1.0.0 '"master":"lower0"' '"mtu":9000' "$(hl4 70 79)"
    mkconf mtuneg 1.0.0 '"master":"lower0"' '"mtu":-1' "$(hl4 70 79)"
    add mt-add1 mtu1400 mt1
    rec_err "mtu 1400: ADD" mt-add1 exit=0
    rec "mtu 1400: device mtu in the netns" "$(devmtu mt1)" 1400
    chk mt-chk1 mtu1400 mt1
    rec_err "mtu 1400: CHECK" mt-chk1 exit=0
    del mt-del1 mtu1400 mt1
    rec_err "mtu 1400: DEL" mt-del1 exit=0
    add mt-add2 mtu9000 mt2
    rec_err "mtu 9000 (> master's 1500): ADD" mt-add2 "exit=1 code=7"
    umv_accept "mtu 9000 (> master's 1500): ADD" "$R999"
    rec "mtu 9000: links after" "$(links mt2)" lo
    add mt-add3 mtuneg mt3
    rec_err "mtu -1: ADD" mt-add3 "exit=1 code=7"
    umv_accept "mtu -1: ADD" "$R999"
    rec "mtu -1: links after" "$(links mt3)" lo
}

# mac_row ROW CONTAINER LABEL: the device's MAC, and whether the result says the same.
mac_row() {
    local d r
    d=$(devmac "$2"); r=$(py resmac "$TD/res/$3" eth0)
    if [ "$d" = "$r" ]; then rec "$1" "$d (result same)" "$4"; else rec "$1" "dev $d result $r" "$4"; fi
}
# mac_one N ROW CONF EXPECTED [driver options]: ADD, the MAC row, DEL (one at
# a time: two devices with one MAC on a lower are refused).
mac_one() {
    local n=$1 what=$2 conf=$3 exp=$4; shift 4
    add "ma-add$n" "$conf" "ma$n" "$@"
    [ "$(st "ma-add$n")" = exit=0 ] || umv_note "$what: ADD: $(msg "ma-add$n")"
    mac_row "$what" "ma$n" "ma-add$n" "$exp"
    if [ "$n" = 4 ]; then
        chk ma-chk4 "$conf" "ma$n" "$@"
        rec_err "mac: CHECK (all three given)" ma-chk4 exit=0
    fi
    del "ma-del$n" "$conf" "ma$n" "$@"
    rec_err "$what: DEL" "ma-del$n" exit=0
}
case_mac() {
    mkc ma1 ma2 ma3 ma4 ma5 || return 1
    local caps='"capabilities":{"mac":true}'
    mkconf mac 1.0.0 '"master":"lower0"' "$caps" "$(hl4 80 89)"
    mkconf macc 1.0.0 '"master":"lower0"' '"mac":"02:88:00:00:00:01"' "$caps" "$(hl4 80 89)"
    local args="IgnoreUnknown=1;K8S_POD_NAME=p1;MAC=02:88:00:00:00:02"
    local rc='{"mac":"02:88:00:00:00:03"}'
    mac_one 1 "mac: in conf" macc "02:88:00:00:00:01 (result same)"
    mac_one 2 "mac: MAC= in CNI_ARGS" mac "02:88:00:00:00:02 (result same)" --args "$args"
    mac_one 3 "mac: runtimeConfig" mac "02:88:00:00:00:03 (result same)" --runtime-config "$rc"
    mac_one 4 "mac: runtimeConfig > CNI_ARGS > conf" macc "02:88:00:00:00:03 (result same)" \
        --args "$args" --runtime-config "$rc"
    mac_one 5 "mac: CNI_ARGS > conf" macc "02:88:00:00:00:02 (result same)" --args "$args"
}

case_delx() {
    mkc dn2 dn3 || return 1
    mkconf delx 1.0.0 '"master":"lower0"' "$(hl4 230 239)"
    del dx-del1 delx dn1    # dn1's netns was never created
    rec_err "DEL: netns path does not exist" dx-del1 exit=0
    del dx-del2 delx dn2
    rec_err "DEL: netns without the device" dx-del2 exit=0
    add dx-add3 delx dn3
    rec_err "DEL twice: ADD" dx-add3 exit=0
    del dx-del3a delx dn3
    del dx-del3b delx dn3
    rec "DEL twice: first, second" "$(st dx-del3a), $(st dx-del3b)" "exit=0, exit=0"
    rec "DEL twice: links, leases after" "$(links dn3); $(leases delx)" "lo; 0"
}

case_master_deleted() {
    mkc md1 || return 1
    mkconf mdel 1.0.0 '"master":"lower1"' "$(hl4 220 229)"
    add md-add1 mdel md1
    rec_err "master deleted: ADD on lower1" md-add1 exit=0
    ip -n "$NS_R" link del lower1
    del md-del1 mdel md1
    rec_err "master deleted: DEL" md-del1 exit=0
    umv_upstream "master deleted: DEL" "$RDELM"
    rec "master deleted: links after DEL" "$(links md1)" lo
    rec "master deleted: host-local leases after" "$(leases mdel)" 0
    umv_upstream "master deleted: host-local leases after" "$RDELM"
    del md-del2 mdel md1
    rec_err "master deleted: DEL again" md-del2 exit=0
    umv_upstream "master deleted: DEL again" "$RDELM"
}

case_badconf() {
    mkc bc1 bc2 || return 1
    local hl
    hl=$(hl4 240 249)
    mkconf bmode 1.0.0 '"master":"lower0"' '"mode":"foo"' "$hl"
    mkconf bmac 1.0.0 '"master":"lower0"' '"mac":"02:88:zz:00:00:01"' "$hl"
    mkconf bmaster 1.0.0 '"master":"nope0"' "$hl"
    rawconf bname "{\"cniVersion\":\"1.0.0\",\"type\":\"$TYPE\",\"master\":\"lower0\",$hl}"
    rawconf bjson "{\"cniVersion\":\"1.0.0\",\"name\":\"bjson\",\"type\":\"$TYPE\",\"master\":\"lower0\","
    mkconf bver 9.9.9 '"master":"lower0"' "$hl"
    mkconf bipam 1.0.0 '"master":"lower0"' '"ipam":{"type":"no-such-ipam"}'
    mkconf bgood 1.0.0 '"master":"lower0"' "$hl"
    add bc-mode bmode bc1;     rec_err "bad config: unknown mode" bc-mode "exit=1 code=7"
    umv_accept "bad config: unknown mode" "$R999"
    add bc-mac bmac bc1;       rec_err "bad config: bad mac" bc-mac "exit=1 code=7"
    umv_accept "bad config: bad mac" "$R999"
    add bc-master bmaster bc1; rec_err "bad config: master does not exist" bc-master "exit=1 code=7"
    umv_accept "bad config: master does not exist" "$R999"
    add bc-name bname bc1;     rec_err "bad config: no \"name\"" bc-name "exit=1 code=7"
    add bc-json bjson bc1 --raw; rec_err "bad config: bad JSON" bc-json "exit=1 code=6"
    add bc-ver bver bc1;       rec_err "bad config: cniVersion 9.9.9" bc-ver "exit=1 code=1"
    add bc-env bgood bc1 --unset CNI_NETNS; rec_err "bad env: no CNI_NETNS" bc-env "exit=1 code=4"
    rec "bad config/env: bc1 links after all" "$(links bc1)" lo
    rec "bad config/env: host-local leases after" "$(leases bgood)" 0
    add bc-ipam bipam bc2;     rec_err "bad config: ipam type not in CNI_PATH" bc-ipam "exit=1 code=7"
    umv_accept "bad config: ipam type not in CNI_PATH" "$R999"
    rec "bad config: ipam not found, links after" "$(links bc2)" lo
    umv_accept "bad config: ipam not found, links after" "$RLEAK"
}

case_ipamfail() {
    mkc fi1 fi2 || return 1
    mkconf one 1.0.0 '"master":"lower0"' "$(hl4 210 210)"
    add fi-add1 one fi1
    rec_err "IPAM exhausted: ADD c1 (the one address)" fi-add1 exit=0
    add fi-add2 one fi2
    rec_err "IPAM exhausted: ADD c2" fi-add2
    rec "IPAM exhausted: c2 links after" "$(links fi2)" lo
    umv_accept "IPAM exhausted: c2 links after" "$RLEAK"
    del fi-del1 one fi1
    rec_err "IPAM exhausted: DEL c1" fi-del1 exit=0
}

case_versions() {
    local v short base i=0 ipv cv
    for v in 0.3.1 0.4.0 1.0.0 1.1.0; do
        short=v${v//./}
        base=$((160 + i * 10)); i=$((i + 1))
        mkc "$short" || return 1
        mkconf "$short" "$v" '"master":"lower0"' "$(hl4 "$base" $((base + 9)))" "$DNS"
        add "$short-add" "$short" "$short"
        rec_err "cniVersion $v: ADD" "$short-add" exit=0
        cv=$(py field "$TD/res/$short-add" cniVersion)
        ipv=$(py field "$TD/res/$short-add" ips.0.version)
        if [ "$(st "$short-add")" = exit=0 ]; then
            rec "cniVersion $v: result ver, ips.version" "$cv, $ipv" \
                "$v, $(case $v in 0.*) echo 4 ;; *) echo - ;; esac)"
            rec_shape "cniVersion $v: result structure" "$short-add"
            rec_shape "cniVersion $v: result, MAC/netns masked" "$short-add" content
        else
            rec "cniVersion $v: result ver, ips.version" "no result" \
                "$v, $(case $v in 0.*) echo 4 ;; *) echo - ;; esac)"
            rec "cniVersion $v: result structure" "no result"
            rec "cniVersion $v: result, MAC/netns masked" "no result"
        fi
        if [ "$v" != 0.3.1 ]; then
            chk "$short-chk" "$short" "$short"
            rec_err "cniVersion $v: CHECK" "$short-chk" exit=0
        fi
        del "$short-del" "$short" "$short"
        rec_err "cniVersion $v: DEL" "$short-del" exit=0
        rec "cniVersion $v: links after DEL" "$(links "$short")" lo
        if [ "$v" = 1.1.0 ]; then
            local r
            for r in "cniVersion 1.1.0: ADD" "cniVersion 1.1.0: result ver, ips.version" \
                "cniVersion 1.1.0: result structure" "cniVersion 1.1.0: result, MAC/netns masked" \
                "cniVersion 1.1.0: CHECK" "cniVersion 1.1.0: DEL"; do
                umv_accept "$r" "$R110"
            done
        fi
    done
    cni_plain version VERSION v100
    rec "VERSION: supportedVersions" "$(py field "$TD/res/version" supportedVersions | tr -d '[]" ' | tr , ' ')" \
        "0.3.0 0.3.1 0.4.0 1.0.0 1.1.0"
    umv_accept "VERSION: supportedVersions" "$RVER"
}

case_status_gc() {
    mkc gc1 gc2 || return 1
    mkconf gc 1.1.0 '"master":"lower0"' "$(hl4 200 209)"
    add gc-add1 gc gc1
    add gc-add2 gc gc2
    rec "1.1.0 ADD c1, c2 (for GC)" "$(st gc-add1), $(st gc-add2)" "exit=0, exit=0"
    umv_accept "1.1.0 ADD c1, c2 (for GC)" "$R110"
    cni_plain status-up STATUS gc
    rec_err "STATUS (1.1.0), daemon running" status-up exit=0
    umv_accept "STATUS (1.1.0), daemon running" "$R110"
    echo /proc/nonexistent/x.sock >>"$UMV_TMP/sockets"
    UMACVLAN_SOCKET=/proc/nonexistent/x.sock cni_plain status-down STATUS gc
    rec_err "STATUS, daemon unreachable" status-down "exit=1 code=50"
    umv_accept "STATUS, daemon unreachable" "$R110"
    cni_plain gc GC gc --valid-attachments '[{"containerID":"cid-gc1","ifname":"eth0"}]'
    rec_err "GC, valid-attachments = [c1]" gc exit=0
    umv_accept "GC, valid-attachments = [c1]" "$R110"
    rec "GC: c1 links, c2 links after" "$(links gc1); $(links gc2)" "lo eth0; lo"
    umv_accept "GC: c1 links, c2 links after" "$R110"
    del gc-del1 gc gc1
    del gc-del2 gc gc2
    rec "DEL c1, c2 after GC" "$(st gc-del1), $(st gc-del2)" "exit=0, exit=0"
    umv_accept "DEL c1, c2 after GC" "$R110"
    rec "host-local leases after GC and DEL" "$(leases gc)" 0
}

case_dhcp() {
    mkc dh1 || return 1
    mkconf dhcp 1.0.0 '"master":"lower0"' "\"ipam\":{\"type\":\"dhcp\",\"daemonSocketPath\":\"$TD/dhcp.sock\"}"
    add dh-add1 dhcp dh1
    rec_err "dhcp: ADD" dh-add1 exit=0
    rec_shape "dhcp: ADD result structure" dh-add1
    local a
    a=$(py addrs "$TD/res/dh-add1")
    a=${a%% *}; a=${a%/*}
    local inr=no
    case "$a" in 10.88.0.1[0-4][0-9] | 10.88.0.150) inr=yes ;; esac
    rec "dhcp: address in 10.88.0.100-150" "$inr" yes
    umv_note "dhcp: address $a"
    pings "dhcp: ping c1 -> 10.88.0.1" "$(cns dh1)" 10.88.0.1 yes
    del dh-del1 dhcp dh1
    rec_err "dhcp: DEL" dh-del1 exit=0
    local rel=no
    umv_wait_for 5 grep -q "DHCPRELEASE(oeth) $a " "$TD/dnsmasq.log" && rel=yes
    rec "dhcp: dnsmasq saw the release" "$rel" yes
    rec "dhcp: links after DEL" "$(links dh1)" lo
}

case_macstable() {
    mkc ms1 || return 1
    mkconf mstab 1.0.0 '"master":"lower0"' "$(hl4 250 253)"
    local m1 m2
    add ms-add1 mstab ms1; m1=$(devmac ms1)
    del ms-del1 mstab ms1
    add ms-add2 mstab ms1; m2=$(devmac ms1)
    del ms-del2 mstab ms1
    rec "MAC stable: ADD, DEL, ADD (no MAC given)" \
        "$(st ms-add1), $(st ms-add2), $([ "$m1" = "$m2" ] && echo same || echo different)" \
        "exit=0, exit=0, same"
    umv_accept "MAC stable: ADD, DEL, ADD (no MAC given)" "$RMAC"
}

run_impl() {
    umv_set_impl "$1"
    if ! topo_up "$1"; then
        umv_log "[$1] setup failed"
        SETUP_FAILED=1
        topo_down
        return
    fi
    local c t0
    for c in bridge "mode private no" "mode vepa no" passthru source nomaster l2 mtu mac delx \
        master_deleted badconf ipamfail versions status_gc dhcp macstable; do
        t0=$SECONDS
        # shellcheck disable=SC2086
        case_$c || { umv_log "[$1] case $c: setup failed"; SETUP_FAILED=1; }
        umv_vlog "[$1] case $c: $((SECONDS - t0)) s"
    done
    topo_down
}

START=$SECONDS
SETUP_FAILED=0
for impl in "${UMV_IMPLS[@]}"; do run_impl "$impl"; done
umv_report "CNI: reference macvlan plugin ($REF_DIR) vs umacvlan-cni"
FAIL=$?
umv_print_notes
# Result structures or contents that differ: their text, as a diff.
if [ ${#UMV_IMPLS[@]} -eq 2 ]; then
    for f in "$UMV_TMP/detail/kernel/"*.row; do
        [ -e "$f" ] || continue
        k=${f%.row}; u="$UMV_TMP/detail/umacvlan/$(basename "$k")"
        [ -e "$u" ] || continue
        if ! cmp -s "$k" "$u"; then
            echo "-- $(cat "$f"): kernel (-) vs umacvlan (+)"
            diff -u "$k" "$u" | tail -n +3 | grep '^[-+]' | sed 's/^/   /'
        fi
    done
fi
[ "$SETUP_FAILED" = 1 ] && FAIL=2
echo "cni: $((SECONDS - START))s, $([ "$FAIL" = 0 ] && echo PASS || echo FAIL)"
exit "$FAIL"
