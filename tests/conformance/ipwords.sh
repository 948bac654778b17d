#!/usr/bin/env bash
# ipwords.sh [--impl kernel|umacvlan|both] [-v]
#
# Conformance: "every word ip prints". The same setup commands are made with
# $MV (ip for the kernel's macvlan, the umacvlan CLI for umacvlan); then the
# kernel's devices are shown with plain "ip" and umacvlan's with the umacvlan
# CLI (which prints the macvlan part of its own devices):
#
#   1 json   "$MV -d -j link show DEV" for a device in each mode (bridge with
#            bcqueuelen 2000, vepa, private, source with 2 source MACs, source
#            nodst, passthru, passthru nopromisc; fixed MACs everywhere) and one
#            bridge device moved to another namespace than its lower: each
#            field a user parses is its own row (ifname, mtu, operstate,
#            flags, address, link / link_index / link_netnsid normalised to
#            their meaning, linkinfo.info_kind, each linkinfo.info_data key),
#            plus the generic words of the bcqueuelen-2000 device (txqlen,
#            qdisc, link_type, broadcast, group, promiscuity, allmulti,
#            min_mtu, max_mtu) and the passthru lowers' promiscuity.
#   2 text   "$MV -d link show DEV": the line that starts with "macvlan"
#            (whitespace trimmed), compared whole and split in its macvlan
#            words and the generic words ip prints after them (addrgenmode
#            ...); lines 1 and 2 too (ifindex and the run's namespace prefix
#            normalised away).
#   3 errors the 30 bad commands of tests/scenarios/errors.sh (its setup, its
#            commands, copied): exit code AND first stderr line, both compared.
#
# Exit: 0 every row same/accepted, 1 a difference, 2 setup error.

set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=../scenarios/lib.sh
. "$(dirname "$0")/../scenarios/lib.sh"
. "$(dirname "$0")/../scenarios/error_cases.sh"
umv_init "$@"

SETUP_FAILED=0
FIELDS_PY="$UMV_TMP/fields.py"

cat >"$FIELDS_PY" <<'EOF'
"""fields.py JSONFILE LOWER_IFINDEX GENERIC(0|1): the compared words of
"ip -d -j link show DEV", one "name<TAB>value" per line."""
import json, sys

ABSENT = "(absent)"


def word(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + " ".join(sorted(word(x) for x in v)) + "]"
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True)
    return str(v)


def main():
    try:
        d = json.load(open(sys.argv[1]))
        d = d[0]
    except Exception as e:
        print("json\tERR(%s)" % e.__class__.__name__)
        return
    lower = sys.argv[2]
    out = []
    for k in ("ifname", "mtu", "operstate"):
        out.append((k, word(d.get(k, ABSENT))))
    out.append(("flags", ",".join(d.get("flags", [])) or ABSENT))
    out.append(("address", word(d.get("address", ABSENT))))
    out.append(("link", word(d.get("link", ABSENT))))
    if "link_index" in d:
        li = "= lower's ifindex" if str(d["link_index"]) == lower else "other (%s)" % d["link_index"]
    else:
        li = ABSENT
    out.append(("link_index", li))
    out.append(("link_netnsid", "present" if "link_netnsid" in d else ABSENT))
    li = d.get("linkinfo", {})
    out.append(("linkinfo.info_kind", word(li.get("info_kind", ABSENT))))
    data = li.get("info_data", {})
    out.append(("info_data keys", " ".join(sorted(data)) or ABSENT))
    for k in ("mode", "nopromisc", "nodst", "flags", "macaddr_count", "macaddr_data",
              "bcqueuelen", "usedbcqueuelen", "bclim"):
        out.append(("info_data." + k, word(data.get(k, ABSENT))))
    if sys.argv[3] == "1":
        for k in ("link_type", "broadcast", "txqlen", "qdisc", "group", "promiscuity",
                  "allmulti", "min_mtu", "max_mtu"):
            out.append((k, word(d.get(k, ABSENT))))
        out.append(("top-level keys", " ".join(sorted(k for k in d if k not in ("ifindex",)))))
    for k, v in out:
        print("%s\t%s" % (k, v))


main()
EOF

ifindex_of() {   # ifindex_of NS DEV
    ip -n "$1" -j link show "$2" 2>/dev/null |
        "$UMV_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)[0]["ifindex"])' 2>/dev/null || echo "?"
}

# mk NAME LOWER MODE [EXTRA...]: "$MV link add" in NS_H, then plain "ip link set up".
mk() {
    local name=$1 lower=$2 mode=$3; shift 3
    local errf="$UMV_TMP/mk.err"
    if ! umv_mv "$NS_H" link add link "$lower" name "$name" "$@" type macvlan mode "$mode" >"$errf" 2>&1; then
        umv_log "[$UMV_IMPL] creating $name failed: $(head -3 "$errf")"
        return 1
    fi
    return 0
}

# ------------------------------------------------------------ 1 + 2 ---

# label:dev:namespace-variable:generic?
DEVS=(
    "bridge bcq2000:mvbr:H:1"
    "vepa:mvve:H:0"
    "private:mvpr:H:0"
    "source 2 macs:mvso:H:0"
    "source nodst:mvsn:H:0"
    "passthru:mvpt:H:0"
    "passthru nopromisc:mvpn:H:0"
    "bridge, other netns:mvmv:A:0"
)

words_setup() {
    local ok=0 log="$UMV_TMP/words-setup-$UMV_IMPL.log"
    umv_topo_up "${UMV_IMPL:0:1}w" off || return 1
    {
        ip -n "$NS_H" link add lowp type veth peer name lowpp &&
        ip -n "$NS_H" link add lown type veth peer name lownp &&
        ip -n "$NS_H" link set lowp address 02:77:00:00:02:01 &&
        ip -n "$NS_H" link set lown address 02:77:00:00:02:02 &&
        ip -n "$NS_H" link set lowp up && ip -n "$NS_H" link set lowpp up &&
        ip -n "$NS_H" link set lown up && ip -n "$NS_H" link set lownp up
    } >>"$log" 2>&1 || ok=1
    {
        umv_mv "$NS_H" link add link lower0 name mvbr address 02:88:00:00:00:01 type macvlan mode bridge bcqueuelen 2000 || ok=1
        mk mvve lower0 vepa address 02:88:00:00:00:02 || ok=1
        mk mvpr lower0 private address 02:88:00:00:00:03 || ok=1
        mk mvso lower0 source address 02:88:00:00:00:04 || ok=1
        umv_mv "$NS_H" link set dev mvso type macvlan macaddr add 02:99:00:00:00:01 || ok=1
        umv_mv "$NS_H" link set dev mvso type macvlan macaddr add 02:99:00:00:00:02 || ok=1
        umv_mv "$NS_H" link add link lower0 name mvsn address 02:88:00:00:00:05 type macvlan mode source nodst || ok=1
        mk mvpt lowp passthru || ok=1
        umv_mv "$NS_H" link add link lown name mvpn type macvlan mode passthru nopromisc || ok=1
        mk mvmv lower0 bridge address 02:88:00:00:00:06 || ok=1
        ip -n "$NS_H" link set mvmv netns "$NS_A" || ok=1
        local d
        for d in mvbr mvve mvpr mvso mvsn mvpt mvpn; do ip -n "$NS_H" link set "$d" up || ok=1; done
        ip -n "$NS_A" link set mvmv up || ok=1
        for d in mvbr mvve mvpr mvso mvsn mvpt mvpn; do
            umv_wait_for 5 umv_link_ready "$NS_H" "$d" || umv_log "warning: [$UMV_IMPL] $d no LOWER_UP"
        done
        umv_wait_for 5 umv_link_ready "$NS_A" mvmv || umv_log "warning: [$UMV_IMPL] mvmv no LOWER_UP"
    } >>"$log" 2>&1
    if [ $ok != 0 ]; then
        umv_log "[$UMV_IMPL] ipwords setup failed:"; sed 's/^/  /' "$log" >&2
    fi
    return $ok
}

TAP_MTU="the device is a TAP, whose MTU tops out at 65521 (a macvlan's at 65535): maxmtu says so"
TAP_ATTRS="the device is a TAP: its generic attributes (queues, GSO/TSO/GRO limits, addrgenmode) are the TAP's, which ip -d link show prints; umacvlan -d prints the device's macvlan part"

run_words() {
    if ! words_setup; then
        SETUP_FAILED=1
        umv_topo_down
        return
    fi
    # A userspace daemon may apply a change a moment later: let it settle.
    [ "$UMV_IMPL" = umacvlan ] && sleep 0.5
    local lidx ent label dev nsv ns gen jf tf line k v l
    lidx=$(ifindex_of "$NS_H" lower0)
    for ent in "${DEVS[@]}"; do
        IFS=: read -r label dev nsv gen <<<"$ent"
        if [ "$nsv" = A ]; then ns=$NS_A; else ns=$NS_H; fi
        jf="$UMV_TMP/$UMV_IMPL-$dev.json"; tf="$UMV_TMP/$UMV_IMPL-$dev.txt"
        umv_mv "$ns" -d -j link show "$dev" >"$jf" 2>"$jf.err" || umv_log "[$UMV_IMPL] -d -j link show $dev failed: $(head -2 "$jf.err")"
        # passthru devices: the link_index compared is their own lower's
        case "$dev" in
            mvpt) l=$(ifindex_of "$NS_H" lowp) ;;
            mvpn) l=$(ifindex_of "$NS_H" lown) ;;
            *) l=$lidx ;;
        esac
        while IFS=$'\t' read -r k v; do
            umv_rec "$label: $k" "$v"
        done < <("$UMV_PYTHON" "$FIELDS_PY" "$jf" "$l" "$gen")
        umv_mv "$ns" -d link show "$dev" >"$tf" 2>"$tf.err" || umv_log "[$UMV_IMPL] -d link show $dev failed: $(head -2 "$tf.err")"
        # Lines 1 and 2 (ifindex and our namespace prefix normalised away).
        line=$(sed -n 1p "$tf" | sed -E 's/^[0-9]+: //; s/[[:space:]]+$//')
        umv_rec "$label: -d text line 1" "${line:-(none)}"
        line=$(sed -n 2p "$tf" | sed -E "s/^[[:space:]]+//; s/[[:space:]]+\$//; s/${UMV_PFX}${UMV_TOPO}-/NS-/g")
        # maxmtu has a row of its own (max_mtu): compared once, there.
        umv_rec "$label: -d text line 2, but maxmtu" "$(sed -E 's/ maxmtu [0-9]+//' <<<"${line:-(none)}")"
        # The line that starts with "macvlan", whole, then split in two: the
        # macvlan words and the generic words ip prints after them.
        line=$(grep -m1 -E '^[[:space:]]*macvlan([[:space:]]|$)' "$tf" | sed -E 's/^[[:space:]]+//; s/[[:space:]]+$//')
        umv_rec "$label: -d text macvlan line, macvlan words" "$(sed -E 's/ addrgenmode .*//' <<<"${line:-(no macvlan line)}")"
        case "$line" in
            *" addrgenmode "*) umv_rec "$label: -d text macvlan line, generic words" "addrgenmode ${line#* addrgenmode }" ;;
            *) umv_rec "$label: -d text macvlan line, generic words" "(none)" ;;
        esac
        # What a TAP cannot be: accepted, with the reason (README, "Known
        # differences").
        umv_accept "$label: max_mtu" "$TAP_MTU"
        umv_accept "$label: top-level keys" "$TAP_ATTRS"
        umv_accept "$label: -d text macvlan line, generic words" "$TAP_ATTRS"
        [ "$UMV_VERBOSE" = 1 ] && { umv_log "  $MV -d link show $dev:"; sed 's/^/    /' "$tf" >&2; }
    done
    umv_rec "lower of passthru: promiscuity" "$(umv_promisc "$NS_H" lowp)" 1
    umv_rec "lower of passthru nopromisc: promiscuity" "$(umv_promisc "$NS_H" lown)" 0
    umv_topo_down
}

# ---------------------------------------------------------------- 3 ---
# errors.sh's setup and commands (tests/scenarios/error_cases.sh).

# ecase ID DESCRIPTION EXPECTED_RC MV-ARGS...
ecase() {
    local id=$1 desc=$2 erc=$3; shift 3
    local rc msg
    # Not through umv_mv: its -v log line would land in the captured stderr.
    umv_vlog "[$UMV_IMPL] ip netns exec $NS_H $MV $*"
    umv_run_capture rc msg timeout "$UMV_CMD_TIMEOUT" ip netns exec "$NS_H" "$MV" "$@"
    umv_rec "$id $desc: rc" "$rc" "$erc"
    # The setup's random MACs, should a message quote them.
    msg=${msg//"$B0MAC"/<mvb0 MAC>}; msg=${msg//"$C0MAC"/<mvc0 MAC>}
    umv_rec "$id $desc: stderr" "${msg:-(empty)}"
    # E11 is accepted (a new "mve"): remove it for the next case.
    if ip -n "$NS_H" link show mve >/dev/null 2>&1; then
        umv_mv "$NS_H" link del mve >/dev/null 2>&1
    fi
}

# The shared cases' tcase: the exit code and the first stderr line (the
# state expectation is errors.sh's to check).
tcase() {
    local id=$1 desc=$2 erc=$3; shift 4
    ecase "$id" "$desc" "$erc" "$@"
}

run_errors() {
    if ! errors_setup; then
        SETUP_FAILED=1
        umv_topo_down
        return
    fi
    error_cases
    umv_topo_down
}

START=$SECONDS
for impl in "${UMV_IMPLS[@]}"; do
    umv_set_impl "$impl"
    t0=$SECONDS
    run_words
    run_errors
    umv_log "[$impl] done in $((SECONDS - t0))s"
done
umv_report "ipwords: ip -d [-j] link show words and error messages (kernel: ip; umacvlan: umacvlan CLI)"
FAIL=$?
umv_print_notes
[ "$SETUP_FAILED" = 1 ] && FAIL=2
echo "ipwords: $((SECONDS - START))s, $([ $FAIL = 0 ] && echo PASS || echo FAIL)"
exit $FAIL
