#!/usr/bin/env bash
# stacking.sh [--impl kernel|umacvlan|both] [-v]
#
# Conformance: a macvlan device in stacked / unusual settings, kernel macvlan
# (MV=ip) against umacvlan (MV=umacvlan CLI), same steps, same observations.
#
#   1 vlan     802.1Q-tagged frames (VID 10) through a bridge-mode device, both
#              directions, sent and received with AF_PACKET raw sockets (this
#              kernel has no 8021q module, so no "type vlan" device): x -> dev
#              (to the device's MAC, from xeth) and dev -> x (from the device
#              to xeth's MAC). Observed: arrived, VID seen (PACKET_AUXDATA
#              tp_vlan_tci, or an in-line tag), inner ethertype + payload
#              intact, how many of the 3 frames arrived.
#   2 brlower  the device's lower is a Linux bridge (brl in H, port brp0 whose
#              veth peer xbr is in X with 10.79.0.1/24); the device (bridge
#              mode, 10.79.0.12/24) in its own namespace: ping both ways.
#   3 vxlan    two "hosts" V1/V2 joined by an underlay veth (192.168.77.1/.2),
#              vx0 (VNI 42, dstport 4789, dev und) on each, a bridge-mode
#              device on each vx0, moved to VA/VB (10.78.0.1/.2): the devices'
#              default MTU, ping both ways, TCP (iperf3 -t 2, bytes > 0).
#              With umacvlan one daemon makes both hosts' devices (the CLI is
#              run in each host namespace).
#   4 jumbo    lower0, the switch path and xeth at MTU 9000 before the device
#              is made: the device's default MTU and unfragmented 8900-byte
#              IPv4 pings (ping -M do -s 8872) both ways.
#
# Values are yes/no, counts of known frames, MTUs: never timing.
# Exit: 0 every row same/accepted, 1 a difference, 2 setup error.

set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=../scenarios/lib.sh
. "$(dirname "$0")/../scenarios/lib.sh"
umv_init "$@"
for t in iperf3 ping; do command -v "$t" >/dev/null 2>&1 || umv_die "missing tool: $t"; done

SETUP_FAILED=0
EXTRA_NS=()          # namespaces of the current topology beyond umv_topo_up's
VLAN_PY="$UMV_TMP/vlan.py"

# ------------------------------------------------------------ helpers ---

cat >"$VLAN_PY" <<'EOF'
"""802.1Q raw-frame sender/receiver (AF_PACKET).

send IFACE DSTMAC VID MARKER COUNT
    COUNT frames DST <- IFACE's MAC, tag 0x8100 VID, inner ethertype 0x88b5,
    payload b"UMVVLAN:" MARKER ":" seq ":" + 0..199.
recv IFACE SRCMAC MARKER COUNT TIMEOUT READYFILE
    Prints "arrived=yes|no vid=N|none intact=yes|no frames=K" for frames from
    SRCMAC carrying MARKER (the tag is read from PACKET_AUXDATA, or in line
    when the kernel left it in the frame).
"""
import fcntl, select, socket, struct, sys, time

SOL_PACKET, PACKET_AUXDATA = 263, 8
TP_STATUS_VLAN_VALID = 0x10
INNER = 0x88B5


def iface_mac(name):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        return fcntl.ioctl(s.fileno(), 0x8927, struct.pack("256s", name.encode()[:15]))[18:24]
    finally:
        s.close()


def mac(text):
    return bytes(int(x, 16) for x in text.split(":"))


def payload(marker, seq):
    return b"UMVVLAN:" + marker.encode() + b":%d:" % seq + bytes(range(200))


def send(iface, dst, vid, marker, count):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(INNER))
    s.bind((iface, 0))
    for seq in range(count):
        frame = (mac(dst) + iface_mac(iface) + struct.pack("!HHH", 0x8100, int(vid) & 0xFFF, INNER)
                 + payload(marker, seq))
        s.send(frame)
        time.sleep(0.05)
    return 0


def recv(iface, src, marker, count, timeout, ready):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))  # ETH_P_ALL
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    s.bind((iface, 0))
    open(ready, "w").write("ready\n")
    want_src = mac(src)
    key = b"UMVVLAN:" + marker.encode() + b":"
    seen, vids, intact = set(), set(), True
    end = time.monotonic() + float(timeout)
    while len(seen) < count:
        left = end - time.monotonic()
        if left <= 0 or not select.select([s], [], [], left)[0]:
            break
        data, anc, _flags, addr = s.recvmsg(65536, socket.CMSG_SPACE(64))
        if addr[2] == socket.PACKET_OUTGOING or data[6:12] != want_src or key not in data:
            continue
        vid = None
        for level, typ, cdata in anc:
            if level == SOL_PACKET and typ == PACKET_AUXDATA and len(cdata) >= 20:
                status, _l, _sl, _m, _n, tci, _tpid = struct.unpack("IIIHHHH", cdata[:20])
                if status & TP_STATUS_VLAN_VALID or tci:
                    vid = tci & 0xFFF
        rest = data[12:]
        if vid is None and rest[:2] == b"\x81\x00":        # tag left in line
            vid = struct.unpack("!H", rest[2:4])[0] & 0xFFF
            rest = rest[4:]
        try:
            seq = int(data[data.index(key) + len(key):].split(b":", 1)[0])
        except ValueError:
            seq = -1
        seen.add(seq)
        vids.add("none" if vid is None else str(vid))
        if rest != struct.pack("!H", INNER) + payload(marker, seq):
            intact = False
    print("arrived=%s vid=%s intact=%s frames=%d" % (
        "yes" if seen else "no", ",".join(sorted(vids)) or "-",
        ("yes" if intact else "no") if seen else "-", len(seen)))
    return 0


if __name__ == "__main__":
    a = sys.argv[1:]
    if a and a[0] == "send" and len(a) == 6:
        sys.exit(send(a[1], a[2], a[3], a[4], int(a[5])))
    if a and a[0] == "recv" and len(a) == 7:
        sys.exit(recv(a[1], a[2], a[3], int(a[4]), a[5], a[6]))
    print(__doc__, file=sys.stderr)
    sys.exit(2)
EOF

# mkdev_on HOSTNS LOWER NAME MODE NS CIDR [EXTRA...]: like umv_mkdev, any lower.
mkdev_on() {
    local hns=$1 lower=$2 name=$3 mode=$4 ns=$5 cidr=$6; shift 6
    local errf="$UMV_TMP/mkdev.err"
    if ! umv_mv "$hns" link add link "$lower" name "$name" type macvlan mode "$mode" "$@" >"$errf" 2>&1; then
        umv_log "[$UMV_IMPL] creating $name on $lower failed: $(head -3 "$errf")"
        return 1
    fi
    ip -n "$hns" link set "$name" netns "$ns" || { umv_log "moving $name to $ns failed"; return 1; }
    if [ -n "$cidr" ]; then ip -n "$ns" addr add "$cidr" dev "$name" || return 1; fi
    ip -n "$ns" link set "$name" up || { umv_log "[$UMV_IMPL] $name up failed"; return 1; }
    umv_wait_for 5 umv_link_ready "$ns" "$name" || umv_log "warning: [$UMV_IMPL] $name has no LOWER_UP after 5 s"
    return 0
}

extra_ns() {   # extra_ns SUFFIX -> creates ${UMV_PFX}${UMV_TOPO}-SUFFIX, prints nothing
    local ns="${UMV_PFX}${UMV_TOPO}-$1"
    umv_ns_add "$ns"
    EXTRA_NS+=("$ns")
}
extra_ns_down() {
    local i
    for ((i = ${#EXTRA_NS[@]} - 1; i >= 0; i--)); do umv_ns_delete "${EXTRA_NS[$i]}"; done
    EXTRA_NS=()
}

mtu_of() {   # mtu_of NS DEV
    ip -n "$1" -j link show "$2" 2>/dev/null |
        "$UMV_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)[0]["mtu"])' 2>/dev/null || echo "?"
}

# shellcheck disable=SC2317  # called through umv_yn
# ping_df NS DST SIZE : iputils ping, DF set, first reply within the deadline.
ping_df() {
    local dl=$((${UMV_PING_DEADLINE%.*} + 1))
    timeout $((dl + 5)) ip netns exec "$1" ping -n -q -c 1 -i 0.2 -w "$dl" -M "do" -s "$3" "$2"
}

# vlan_case NAME SEND_NS SEND_IF DST_MAC RECV_NS RECV_IF
vlan_case() {
    local name=$1 sns=$2 sif=$3 dst=$4 rns=$5 rif=$6 src out ready pid res
    src=$(umv_mac "$sns" "$sif")
    out="$UMV_TMP/vlan-$name.out"; ready="$UMV_TMP/vlan-$name.ready"
    : >"$out"; rm -f "$ready"
    timeout 30 ip netns exec "$rns" "$UMV_PYTHON" "$VLAN_PY" recv "$rif" "$src" "$name" 3 \
        $((UMV_CAP_WAIT + 2)) "$ready" >"$out" 2>"$out.err" &
    pid=$!
    echo "$pid" >>"$UMV_TMP/pids"
    if umv_wait_for 5 test -s "$ready"; then
        timeout 10 ip netns exec "$sns" "$UMV_PYTHON" "$VLAN_PY" send "$sif" "$dst" 10 "$name" 3 ||
            umv_log "[$UMV_IMPL] vlan send $name failed"
    else
        umv_log "[$UMV_IMPL] vlan receiver $name did not start: $(head -3 "$out.err")"
    fi
    wait "$pid" 2>/dev/null
    res=$(head -1 "$out")
    umv_vlog "vlan $name: $res $(head -2 "$out.err")"
    local arrived=ERR vid=ERR intact=ERR frames=ERR w
    for w in $res; do
        case "$w" in
            arrived=*) arrived=${w#*=} ;; vid=*) vid=${w#*=} ;;
            intact=*) intact=${w#*=} ;; frames=*) frames=${w#*=} ;;
        esac
    done
    umv_rec "vlan $name: arrived" "$arrived" yes
    umv_rec "vlan $name: VID seen" "$vid" 10
    umv_rec "vlan $name: payload intact" "$intact" yes
    umv_rec "vlan $name: frames (of 3)" "$frames" 3
}

# ------------------------------------------------------------- parts ---

part_vlan() {
    if ! umv_mkdev mva bridge "$NS_A" 10.77.0.11/24; then
        umv_rec "vlan x>dev: arrived" ERR; umv_rec "vlan dev>x: arrived" ERR; return
    fi
    local amac
    amac=$(umv_mac "$NS_A" mva)
    vlan_case "x>dev" "$NS_X" xeth "$amac" "$NS_A" mva
    vlan_case "dev>x" "$NS_A" mva "$UMV_XMAC" "$NS_X" xeth
}

part_brlower() {
    local nsb
    extra_ns br; nsb=${EXTRA_NS[-1]}
    if ip -n "$NS_H" link add brl type bridge stp_state 0 forward_delay 0 mcast_snooping 0 &&
       ip -n "$NS_H" link set brl address 02:77:00:00:00:04 &&
       ip -n "$NS_H" link add brp0 type veth peer name xbr netns "$NS_X" &&
       ip -n "$NS_H" link set brp0 master brl &&
       ip -n "$NS_X" link set xbr address 02:77:00:00:00:03 &&
       ip -n "$NS_X" addr add 10.79.0.1/24 dev xbr &&
       ip -n "$NS_H" link set brl up && ip -n "$NS_H" link set brp0 up &&
       ip -n "$NS_X" link set xbr up &&
       umv_wait_for 5 umv_link_ready "$NS_X" xbr &&
       mkdev_on "$NS_H" brl mvbl bridge "$nsb" 10.79.0.12/24; then
        umv_rec "brlower: dev>x ping" "$(umv_yn umv_ping "$nsb" 10.79.0.1)" yes
        umv_rec "brlower: x>dev ping" "$(umv_yn umv_ping "$NS_X" 10.79.0.12)" yes
    else
        umv_log "[$UMV_IMPL] bridge-lower setup failed"
        umv_rec "brlower: dev>x ping" ERR; umv_rec "brlower: x>dev ping" ERR
    fi
}

# shellcheck disable=SC2317  # called through umv_wait_for
iperf_listening() { ip netns exec "$1" ss -Hltn 'sport = :5201' 2>/dev/null | grep -q .; }

part_vxlan() {
    local v1 v2 va vb
    extra_ns v1; v1=${EXTRA_NS[-1]}
    extra_ns v2; v2=${EXTRA_NS[-1]}
    extra_ns va; va=${EXTRA_NS[-1]}
    extra_ns vb; vb=${EXTRA_NS[-1]}
    if ! { ip -n "$v1" link add und type veth peer name und netns "$v2" &&
           ip -n "$v1" addr add 192.168.77.1/24 dev und &&
           ip -n "$v2" addr add 192.168.77.2/24 dev und &&
           ip -n "$v1" link set und up && ip -n "$v2" link set und up &&
           ip -n "$v1" link add vx0 type vxlan id 42 remote 192.168.77.2 local 192.168.77.1 dstport 4789 dev und &&
           ip -n "$v2" link add vx0 type vxlan id 42 remote 192.168.77.1 local 192.168.77.2 dstport 4789 dev und &&
           ip -n "$v1" link set vx0 address 02:77:00:00:01:01 &&
           ip -n "$v2" link set vx0 address 02:77:00:00:01:02 &&
           ip -n "$v1" link set vx0 up && ip -n "$v2" link set vx0 up &&
           mkdev_on "$v1" vx0 mvx bridge "$va" 10.78.0.1/24 &&
           mkdev_on "$v2" vx0 mvx bridge "$vb" 10.78.0.2/24; }; then
        umv_log "[$UMV_IMPL] vxlan setup failed"
        umv_rec "vxlan: vx0 mtu" ERR
        return
    fi
    umv_rec "vxlan: vx0 mtu" "$(mtu_of "$v1" vx0)" 1450
    umv_rec "vxlan: dev mtu (host 1, host 2)" "$(mtu_of "$va" mvx),$(mtu_of "$vb" mvx)" 1450,1450
    umv_rec "vxlan: a>b ping" "$(umv_yn umv_ping "$va" 10.78.0.2)" yes
    umv_rec "vxlan: b>a ping" "$(umv_yn umv_ping "$vb" 10.78.0.1)" yes
    # TCP: iperf3 2 s, a -> b; pass criterion: bytes received > 0.
    local spid json="$UMV_TMP/iperf-$UMV_IMPL.json" res="no server"
    timeout 40 ip netns exec "$vb" iperf3 -s -1 -B 10.78.0.2 -p 5201 >"$UMV_TMP/iperf-s-$UMV_IMPL.log" 2>&1 &
    spid=$!
    echo "$spid" >>"$UMV_TMP/pids"
    if umv_wait_for 10 iperf_listening "$vb"; then
        timeout 30 ip netns exec "$va" iperf3 -c 10.78.0.2 -p 5201 -t 2 -J >"$json" 2>/dev/null
        res=$("$UMV_PYTHON" - "$json" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    print(f"no-result({e.__class__.__name__})"); sys.exit()
if "error" in d:
    print("error: " + d["error"]); sys.exit()
b = int(d.get("end", {}).get("sum_received", {}).get("bytes", 0))
print(b)
EOF
)
    fi
    umv_kill_pids "$spid"; wait "$spid" 2>/dev/null
    umv_vlog "vxlan iperf3 bytes received: $res"
    if [[ "$res" =~ ^[0-9]+$ ]] && [ "$res" -gt 0 ]; then
        umv_rec "vxlan: tcp a>b iperf3 bytes>0" yes yes
        umv_note "vxlan iperf3 2 s received $res bytes (informational)"
    else
        umv_rec "vxlan: tcp a>b iperf3 bytes>0" "no ($res)" yes
    fi
}

part_jumbo() {
    local nsj
    extra_ns j; nsj=${EXTRA_NS[-1]}
    if ! { ip -n "$NS_X" link set xeth mtu 9000 &&
           ip -n "$NS_SW" link set swx mtu 9000 && ip -n "$NS_SW" link set swp0 mtu 9000 &&
           ip -n "$NS_SW" link set br0 mtu 9000 &&
           ip -n "$NS_H" link set lower0 mtu 9000 &&
           mkdev_on "$NS_H" lower0 mvj bridge "$nsj" 10.77.0.13/24; }; then
        umv_log "[$UMV_IMPL] jumbo setup failed"
        umv_rec "jumbo: dev mtu" ERR
        return
    fi
    umv_rec "jumbo: dev mtu" "$(mtu_of "$nsj" mvj)" 9000
    umv_rec "jumbo: dev>x 8900 B DF ping" "$(umv_yn ping_df "$nsj" 10.77.0.1 8872)" yes
    umv_rec "jumbo: x>dev 8900 B DF ping" "$(umv_yn ping_df "$NS_X" 10.77.0.13 8872)" yes
    # Larger than the path: refused locally by both (EMSGSIZE), never sent.
    umv_rec "jumbo: dev>x 9001 B DF ping" "$(umv_yn ping_df "$nsj" 10.77.0.1 8973)" no
}

run_impl() {
    umv_set_impl "$1"
    local t0=$SECONDS
    if ! umv_topo_up "${1:0:1}k" off; then
        umv_log "[$1] topology setup failed"
        SETUP_FAILED=1
        umv_topo_down
        return
    fi
    part_vlan
    part_brlower
    part_vxlan
    part_jumbo
    extra_ns_down
    umv_topo_down
    umv_log "[$1] done in $((SECONDS - t0))s"
}

START=$SECONDS
for impl in "${UMV_IMPLS[@]}"; do run_impl "$impl"; done
umv_report "stacking: vlan-tagged frames, bridge lower, vxlan lower, jumbo (kernel macvlan vs umacvlan)"
FAIL=$?
umv_print_notes
[ "$SETUP_FAILED" = 1 ] && FAIL=2
echo "stacking: $((SECONDS - START))s, $([ $FAIL = 0 ] && echo PASS || echo FAIL)"
exit $FAIL
