#!/usr/bin/env bash
# config.sh [-v] - the config file: `umacvlan config check|apply|dump`,
# `umacvlan reload` and SIGHUP (umacvlan only).
#
#   (a) a file with a wrong mode on line 7 is refused by check and by apply
#       with FILE:7:COLUMN, and nothing is made; so is a file whose device
#       names a lower that does not exist, or a name taken beside its lower;
#   (b) apply makes three devices, each beside its lower (lower0 in h) and
#       then moved to its namespace (a, b, c), up;
#   (c) a second apply with c's MTU changed sets only c ("set mvc: mtu
#       1400", "unchanged" for the others) while a pings b every 50 ms with
#       no loss, and a's and b's ifindex stay the same;
#   (d) c removed from the file: apply deletes it; a device made with the
#       CLI (mvcli) stays;
#   (e) the file edited again (c back), `umacvlan reload` (SIGHUP to the
#       daemon): the daemon applies it (c exists again; its log shows the
#       child's lines and exit status);
#   (f) `config dump` prints a file that `config check` accepts and that
#       names every device.
#
# Root. Namespaces umv-cfg-<pid>-*; the daemon lives in one of them
# (UMACVLAN_DAEMON_NETNS), its socket in a temporary directory,
# UMACVLAN_CONFIG names a temporary file; all is removed on exit.
# Environment: UMACVLAN_BIN (the CLI; the daemon is beside it). Exit: 0 as
# expected, 1 otherwise, 2 setup error.

set -uo pipefail
. "$(dirname "$0")/lib.sh"
UMV_DEFAULT_IMPL=umacvlan umv_init "$@"
UMV_PFX="umv-cfg-$$-"
umv_set_impl umacvlan
BIN=$MV

FAILS=0
check() {  # check NAME COMMAND... : one line per check
    local name=$1
    shift
    if "$@"; then echo "ok    $name"; else echo "FAIL  $name"; FAILS=$((FAILS + 1)); fi
}
has() { grep -qF -- "$2" "$1"; }
hasnt() { ! grep -qF -- "$2" "$1"; }
exists() { ip -n "$1" link show "$2" >/dev/null 2>&1; }
absent() { ! exists "$1" "$2"; }
ifindex() { ip -n "$1" -o link show "$2" 2>/dev/null | cut -d: -f1; }
mtu_of() { ip -n "$1" -o link show "$2" 2>/dev/null | sed -n 's/.* mtu \([0-9]*\) .*/\1/p'; }
is_up() { ip -n "$1" link show "$2" 2>/dev/null | head -1 | grep -q '[<,]UP[,>]'; }

umv_topo_up cfg || umv_die "topology setup failed"
NS_C="${UMV_PFX}cfg-c"
umv_ns_add "$NS_C"
export UMACVLAN_CONFIG="$UMV_TMP/umacvlan.toml"
CFG=$UMACVLAN_CONFIG
OUT="$UMV_TMP/out.txt"
ERR="$UMV_TMP/err.txt"
LOG="$TOPO_DIR/umacvlan.log"

# write_config C_MTU [with_c]: the three devices (c only when with_c=yes).
write_config() {
    local c_mtu=$1 with_c=${2:-yes}
    cat >"$CFG" <<EOF
# umacvlan scenario config.sh
[[device]]
name = "mva"
lower = "lower0"
lower_netns = "$NS_H"
netns = "$NS_A"
mode = "bridge"
mac = "02:77:00:00:0a:01"

[[device]]
name = "mvb"
lower = "lower0"
lower_netns = "$NS_H"
netns = "$NS_B"
mode = "bridge"
mac = "02:77:00:00:0b:01"
EOF
    [ "$with_c" = yes ] && cat >>"$CFG" <<EOF

[[device]]
name = "mvc"
lower = "lower0"
lower_netns = "/run/netns/$NS_H"
netns = "$NS_C"
mode = "private"
mtu = $c_mtu
bcqueuelen = 100
EOF
    return 0
}

# ------------------------------------------------------- (a) a bad file
write_config 1500
sed -i '7s/.*/mode = "bridged"/' "$CFG"   # line 7: mva's mode
"$BIN" config check "$CFG" >"$OUT" 2>"$ERR"
check "bad file: check exits 1" test $? = 1
check "bad file: check names line 7 and the column" has "$ERR" "$CFG:7:8: \"mode\" must be"
"$BIN" config apply "$CFG" >"$OUT" 2>"$ERR"
check "bad file: apply exits 1" test $? = 1
check "bad file: apply names line 7" has "$ERR" "$CFG:7:8:"
check "bad file: nothing made (a)" absent "$NS_H" mva
check "bad file: nothing made (h)" absent "$NS_A" mva
check "bad file: apply prints no action" test ! -s "$OUT"

# A lower that does not exist, a name taken beside the lower: found before
# the first change, so mva (first in the file, fine) is not made either.
write_config 1500
sed -i '12s/.*/lower = "lower9"/' "$CFG"   # line 12: mvb's lower
"$BIN" config apply "$CFG" >"$OUT" 2>"$ERR"
check "missing lower: apply exits 1" test $? = 1
check "missing lower: says which and where" has "$ERR" "device \"mvb\": its lower \"lower9\" does not exist"
check "missing lower: nothing made" absent "$NS_A" mva
# That apply started the daemon, which applies the file once more at its
# start, as a child of its own: let it finish before the file changes, or it
# may read the next version and race the next step.
check "missing lower: the daemon's start-time apply ended" \
    umv_wait_for 10 grep -q "config apply of $CFG: " "$LOG"
check "missing lower: it made nothing either" absent "$NS_A" mva
write_config 1500
ip -n "$NS_H" link add mvb type veth peer name mvbpeer
"$BIN" config apply "$CFG" >"$OUT" 2>"$ERR"
check "name taken beside the lower: apply exits 1" test $? = 1
check "name taken beside the lower: says so" has "$ERR" "\"mvb\" is taken beside its lower"
check "name taken beside the lower: nothing made" absent "$NS_A" mva
ip -n "$NS_H" link del mvb
# Those applies started the daemon (it applied the same failing file at its
# start): (b) wants a daemon started by a good apply.
umv_stop_daemon "$UMACVLAN_SOCKET"

# ------------------------------------------------------- (b) apply makes three
write_config 1500
"$BIN" config check "$CFG" >"$OUT" 2>&1
check "good file: check says ok (3 devices)" has "$OUT" "$CFG: ok (3 devices)"
"$BIN" config apply "$CFG" >"$OUT" 2>"$ERR"
rc=$?
cat "$OUT" "$ERR" | sed 's/^/      /'
check "apply: exit 0" test "$rc" = 0
for d in mva mvb mvc; do check "apply: prints add $d" has "$OUT" "add $d"; done
check "apply: mva in a" exists "$NS_A" mva
check "apply: mvb in b" exists "$NS_B" mvb
check "apply: mvc in c" exists "$NS_C" mvc
check "apply: none left in h" test -z "$(ip -n "$NS_H" -o link show 2>/dev/null | grep ' mv[abc][:@]')"
check "apply: mva up" is_up "$NS_A" mva
check "apply: mvc up" is_up "$NS_C" mvc
check "apply: mva's MAC" test "$(umv_mac "$NS_A" mva)" = 02:77:00:00:0a:01
"$BIN" -n "$NS_C" -d link show mvc >"$OUT" 2>&1
check "apply: mvc mode private, bcqueuelen 100" has "$OUT" "mode private"
ip -n "$NS_A" addr add 10.77.0.11/24 dev mva
ip -n "$NS_B" addr add 10.77.0.12/24 dev mvb
umv_wait_for 5 umv_link_ready "$NS_A" mva
umv_wait_for 5 umv_link_ready "$NS_B" mvb
check "apply: a reaches b" umv_ping "$NS_A" 10.77.0.12 5
# The daemon this apply started applied the same file once it listened:
# after ours (one apply at a time), so it found nothing to do.
check "daemon start: applied the file, all unchanged" \
    umv_wait_for 10 grep -q "config apply of $CFG: done" "$LOG"
check "daemon start: logged the child's lines" has "$LOG" "config: unchanged mva"

# ------------------------------------------------------- (c) one MTU changed
IDX_A=$(ifindex "$NS_A" mva)
IDX_B=$(ifindex "$NS_B" mvb)
write_config 1400
PING="$UMV_TMP/ping.txt"
ip netns exec "$NS_A" ping -i 0.05 -c 60 10.77.0.12 >"$PING" 2>&1 &
ping_pid=$!
echo "$ping_pid" >>"$UMV_TMP/pids"
sleep 1
"$BIN" config apply "$CFG" >"$OUT" 2>"$ERR"
rc=$?
cat "$OUT" "$ERR" | sed 's/^/      /'
wait "$ping_pid"
tail -2 "$PING" | sed 's/^/      /'
check "change: exit 0" test "$rc" = 0
check "change: set mvc: mtu 1400" has "$OUT" "set mvc: mtu 1400"
check "change: unchanged mva" has "$OUT" "unchanged mva"
check "change: unchanged mvb" has "$OUT" "unchanged mvb"
check "change: three lines" test "$(wc -l <"$OUT")" = 3
check "change: mvc's MTU is 1400" test "$(mtu_of "$NS_C" mvc)" = 1400
check "change: ping a->b lost nothing" has "$PING" " 0% packet loss"
check "change: mva kept its ifindex" test "$(ifindex "$NS_A" mva)" = "$IDX_A"
check "change: mvb kept its ifindex" test "$(ifindex "$NS_B" mvb)" = "$IDX_B"

# ------------------------------------------------------- (d) removed from the file
"$BIN" -n "$NS_H" link add link lower0 name mvcli type macvlan mode bridge >"$OUT" 2>&1
check "cli: mvcli made" exists "$NS_H" mvcli
write_config 1400 no
"$BIN" config apply "$CFG" >"$OUT" 2>"$ERR"
rc=$?
cat "$OUT" "$ERR" | sed 's/^/      /'
check "remove: exit 0" test "$rc" = 0
check "remove: del mvc" has "$OUT" "del mvc"
check "remove: mvc gone" absent "$NS_C" mvc
check "remove: mvcli (made with the CLI) stays" exists "$NS_H" mvcli
check "remove: mvcli not mentioned" hasnt "$OUT" mvcli
check "remove: mva kept its ifindex" test "$(ifindex "$NS_A" mva)" = "$IDX_A"

# ------------------------------------------------------- (e) reload (SIGHUP)
write_config 1300
"$BIN" reload >"$OUT" 2>&1
rc=$?
cat "$OUT" | sed 's/^/      /'
check "reload: exit 0" test "$rc" = 0
check "reload: says which daemon" has "$OUT" "reloading its config file"
check "reload: the daemon made mvc again" umv_wait_for 10 exists "$NS_C" mvc
check "reload: with MTU 1300" umv_wait_for 5 test "$(mtu_of "$NS_C" mvc)" = 1300
check "reload: the log has the child's line" umv_wait_for 5 grep -q "config: add mvc" "$LOG"
check "reload: and its exit" umv_wait_for 5 test "$(grep -c "config apply of $CFG: done" "$LOG")" -ge 2
check "reload: the daemon still runs" test -S "$UMACVLAN_SOCKET"
"$BIN" --no-start link show >/dev/null 2>&1
check "reload: the daemon still answers" test $? = 0

# ------------------------------------------------------- (f) dump
DUMP="$UMV_TMP/dump.toml"
"$BIN" config dump >"$DUMP" 2>"$ERR"
check "dump: exit 0" test $? = 0
sed 's/^/      /' "$DUMP" | head -40
"$BIN" config check "$DUMP" >"$OUT" 2>&1
cat "$OUT" | sed 's/^/      /'
check "dump: passes check" has "$OUT" "$DUMP: ok (4 devices)"
for d in mva mvb mvc mvcli; do check "dump: names $d" has "$DUMP" "name = \"$d\""; done
# Applying the dump changes nothing (everything matches); it takes over no
# device it did not have to make.
"$BIN" config apply "$DUMP" >"$OUT" 2>"$ERR"
check "dump: applying it changes nothing" test "$(grep -vc '^unchanged' "$OUT")" = 0
cat "$OUT" "$ERR" | sed 's/^/      /'

echo
if [ "$FAILS" = 0 ]; then echo "config: all checks passed"; exit 0; fi
echo "config: $FAILS check(s) failed"
exit 1
