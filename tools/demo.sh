#!/usr/bin/env bash
# make demo: a self-contained lab. Builds a small network inside network
# namespaces (nothing outside them is touched), puts umacvlan devices on a
# veth lower in each mode pair, and shows what reaches what — next to the
# kernel's macvlan doing the same, so the two columns can be compared.
#
#   lab-host   holds lower0 (the lower device) and runs the umacvlan daemon
#   lab-sw     a Linux bridge: the "switch" behind lower0, plus host x
#   lab-a/b    the namespaces of devices a and b
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(pwd)/${UMACVLAN_BIN:-build/src/cli/umacvlan}
[ "$(id -u)" -eq 0 ] || { echo "make demo needs root (it builds a lab of network namespaces)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "no $BIN: run make build" >&2; exit 1; }

ID="umvdemo-$$"
H="$ID-host"; SW="$ID-sw"; X="$ID-x"; A="$ID-a"; B="$ID-b"
TMP=$(mktemp -d)
export UMACVLAN_SOCKET="$TMP/umacvlan.sock"
# The daemon started on demand lives in the lab, not in the host's namespace.
export UMACVLAN_DAEMON_NETNS="/run/netns/$H"
cleanup() {
  set +e
  pkill -f "daemon --socket $UMACVLAN_SOCKET" 2>/dev/null
  for ns in "$A" "$B" "$X" "$SW" "$H"; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

for ns in "$H" "$SW" "$X"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$SW" link add br0 type bridge stp_state 0 forward_delay 0
ip -n "$SW" link set br0 up
ip -n "$H" link add lower0 type veth peer name swp0 netns "$SW"
ip -n "$X" link add xeth type veth peer name swx netns "$SW"
for p in swp0 swx; do ip -n "$SW" link set "$p" master br0; ip -n "$SW" link set "$p" up; done
ip -n "$H" link set lower0 up
ip -n "$X" addr add 10.66.0.1/24 dev xeth; ip -n "$X" link set xeth up

ping_ok() { ip netns exec "$1" ping -c 1 -W 1 "$2" >/dev/null 2>&1 && echo yes || echo no; }

pair() {  # $1 impl (ip|umacvlan) $2 mode a $3 mode b
  local cmd=ip; [ "$1" = umacvlan ] && cmd=$BIN
  ip netns add "$A"; ip netns add "$B"
  ip netns exec "$H" $cmd link add link lower0 name mva type macvlan mode "$2"
  ip netns exec "$H" $cmd link add link lower0 name mvb type macvlan mode "$3"
  ip -n "$H" link set mva netns "$A"; ip -n "$H" link set mvb netns "$B"
  ip -n "$A" addr add 10.66.0.11/24 dev mva; ip -n "$A" link set mva up
  ip -n "$B" addr add 10.66.0.12/24 dev mvb; ip -n "$B" link set mvb up
  local ab ax xb
  # x remembers the MACs of the previous pair's .11/.12: forget them.
  ip -n "$X" neigh flush all
  ab=$(ping_ok "$A" 10.66.0.12); ax=$(ping_ok "$A" 10.66.0.1); xb=$(ping_ok "$X" 10.66.0.12)
  printf '  %-9s %-8s/%-8s  a->b %-3s  a->x %-3s  x->b %-3s\n' "$1" "$2" "$3" "$ab" "$ax" "$xb"
  if [ "$1" = umacvlan ] && [ "$2/$3" = bridge/bridge ]; then
    echo "  --- umacvlan -d -s link show mva (inside lab-a) ---"
    ip netns exec "$A" "$BIN" -d -s link show mva | sed 's/^/  /'
  fi
  ip -n "$A" link del mva; ip -n "$B" link del mvb
  ip netns del "$A"; ip netns del "$B"
  # The daemon hears of the deleted devices from rtnetlink.
  sleep 0.2
}

echo "umacvlan lab: lower0 behind a Linux bridge with host x (10.66.0.1); a=.11 b=.12"
for modes in "bridge bridge" "vepa vepa" "private private" "bridge vepa"; do
  for impl in ip umacvlan; do pair "$impl" $modes; done
done
echo "(kernel rows are 'ip'; the umacvlan rows should say the same)"
