# error_cases.sh: the bad commands of errors.sh, shared with
# tests/conformance/ipwords.sh (sourced after lib.sh).
#
# errors_setup: the host namespace's devices the cases need: lower0 with
#   mvb0 (bridge, up), mvc0 (bridge, up), mvs0 (source, down), mvdup
#   (bridge, down, MAC = mvb0's); lower1 with mvp1 (passthru, up). Sets
#   B0MAC, C0MAC and LMAC.
# error_cases: calls the sourcing script's
#   tcase ID DESCRIPTION EXPECTED_RC EXPECTED_STATE(same|changed...) MV-ARGS...
#   for each case; expected values are iproute2 6.1 + kernel 6.18 measured.

errors_setup() {
    local ok=0 log="$UMV_TMP/errors-setup-$UMV_IMPL.log"
    umv_topo_up "${UMV_IMPL:0:1}e" off || return 1
    ip -n "$NS_H" link add lower1 type veth peer name lower1p || return 1
    ip -n "$NS_H" link set lower1 up && ip -n "$NS_H" link set lower1p up || return 1
    {
        umv_mv "$NS_H" link add link lower0 name mvb0 type macvlan mode bridge || ok=1
        umv_mv "$NS_H" link add link lower0 name mvc0 type macvlan mode bridge || ok=1
        umv_mv "$NS_H" link add link lower0 name mvs0 type macvlan mode source || ok=1
        ip -n "$NS_H" link set mvb0 up && ip -n "$NS_H" link set mvc0 up || ok=1
        B0MAC=$(umv_mac "$NS_H" mvb0); C0MAC=$(umv_mac "$NS_H" mvc0); LMAC=$(umv_mac "$NS_H" lower0)
        umv_mv "$NS_H" link add link lower0 name mvdup address "$B0MAC" type macvlan mode bridge || ok=1
        umv_mv "$NS_H" link add link lower1 name mvp1 type macvlan mode passthru || ok=1
        ip -n "$NS_H" link set mvp1 up || ok=1
    } >>"$log" 2>&1
    if [ $ok != 0 ]; then
        umv_log "[$UMV_IMPL] errors.sh setup failed:"; sed 's/^/  /' "$log" >&2
    fi
    return $ok
}

error_cases() {
    local add=(link add link lower0 name mve type macvlan)
    tcase E01 "unknown keyword" 1 same "${add[@]}" mode bridge frobnicate
    tcase E02 "unknown mode name" 1 same "${add[@]}" mode frob
    tcase E03 "mode without argument" 255 same "${add[@]}" mode
    tcase E04 "bad MAC zz" 1 same link add link lower0 name mve address zz type macvlan mode bridge
    tcase E05 "multicast MAC" 2 same link add link lower0 name mve address 01:00:5e:00:00:01 type macvlan mode bridge
    tcase E06 "zero MAC" 2 same link add link lower0 name mve address 00:00:00:00:00:00 type macvlan mode bridge
    tcase E07 "missing lower eth9" 1 same link add link eth9 name mve type macvlan mode bridge
    tcase E08 "loopback lower" 2 same link add link lo name mve type macvlan mode bridge
    tcase E09 "no lower given" 2 same link add name mve type macvlan mode bridge
    tcase E10 "nopromisc without passthru" 1 same "${add[@]}" mode bridge nopromisc
    # iproute2 6.1 and kernel 6.18 ACCEPT nodst in any mode (ip -d shows "mode bridge nodst").
    tcase E11 "nodst without source (accepted!)" 0 "changed (mode bridge nodst)" "${add[@]}" mode bridge nodst
    tcase E12 "macaddr on a non-source device" 2 same link set dev mvb0 type macvlan macaddr add 02:00:00:00:00:09
    tcase E13 "macaddr at creation, not source" 2 same "${add[@]}" mode bridge macaddr add 02:00:00:00:00:09
    tcase E14 "macaddr add zz (source device)" 1 same link set dev mvs0 type macvlan macaddr add zz
    tcase E15 "macaddr add multicast (source)" 2 same link set dev mvs0 type macvlan macaddr add 01:00:5e:00:00:01
    tcase E16 "macaddr bad subcommand" 1 same link set dev mvs0 type macvlan macaddr frob 02:00:00:00:00:09
    tcase E17 "name already taken" 2 same link add link lower0 name mvb0 type macvlan mode bridge
    tcase E18 "mtu above the lower's" 2 same link add link lower0 name mve mtu 9000 type macvlan mode bridge
    tcase E19 "mtu below 68" 2 same link add link lower0 name mve mtu 60 type macvlan mode bridge
    tcase E20 "passthru on a port with devices" 2 same "${add[@]}" mode passthru
    tcase E21 "mode change to passthru" 2 same link set dev mvb0 type macvlan mode passthru
    tcase E22 "mode change from passthru" 2 same link set dev mvp1 type macvlan mode bridge
    tcase E23 "2nd device on a passthru port" 2 same link add link lower1 name mve type macvlan mode bridge
    tcase E24 "up device: MAC := lower's MAC" 2 same link set dev mvb0 address "$LMAC"
    tcase E25 "down device: MAC := lower's MAC" 2 same link set dev mvs0 address "$LMAC"
    tcase E26 "up device: MAC := up sibling's" 2 same link set dev mvb0 address "$C0MAC"
    tcase E27 "up with MAC of an up sibling" 2 same link set dev mvdup up
    tcase E28 "delete a missing device" 1 same link del mvnone
    tcase E29 "bcqueuelen abc" 1 same "${add[@]}" mode bridge bcqueuelen abc
    tcase E30 "macvlan options on a non-macvlan" 2 same link set dev lower0 type macvlan mode bridge
}
