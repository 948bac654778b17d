#!/usr/bin/env bash
# Benchmarks, all in one run so the ratios compare like with like:
#  1. the core's decision rate (Google Benchmark);
#  2. TCP throughput (iperf3) between two bridge-mode devices on one lower,
#     with the kernel's macvlan, with umacvlan, and between two plain veth
#     peers in the same namespaces ("peer": what the machine can do without
#     any macvlan), then the ratios umacvlan/kernel and kernel/peer.
# Everything lives in network namespaces made here and removed on exit.
# Usage: bench/run.sh [--seconds N] [--repeat N]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=5
REPEAT=3
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    *) echo "usage: $0 [--seconds N] [--repeat N]" >&2; exit 1 ;;
  esac
done
BIN=${UMACVLAN_BIN:-build/src/cli/umacvlan}
CORE_BENCH=${CORE_BENCH:-build/src/core/umacvlan_core_bench}
[ "$(id -u)" -eq 0 ] || { echo "bench/run.sh needs root (network namespaces)" >&2; exit 1; }

ID="umvb-$$"
NS_H="$ID-h"; NS_A="$ID-a"; NS_B="$ID-b"; NS_P="$ID-p"
SOCK_DIR=$(mktemp -d)
export UMACVLAN_SOCKET="$SOCK_DIR/umacvlan.sock"
export UMACVLAN_DAEMON_NETNS="/run/netns/$NS_H"  # not the host's namespace
cleanup() {
  set +e
  if [ -S "$UMACVLAN_SOCKET" ]; then pkill -f "daemon --socket $UMACVLAN_SOCKET" ; fi
  for ns in "$NS_A" "$NS_B" "$NS_H" "$NS_P"; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$SOCK_DIR"
}
trap cleanup EXIT INT TERM

echo "== core decisions (one core) =="
"$CORE_BENCH" --benchmark_min_time=0.3 2>/dev/null | grep -E '^BM_' | awk '{print "  " $1, $NF}'

for ns in "$NS_H" "$NS_A" "$NS_B" "$NS_P"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
# The lower: a veth whose peer sits alone in NS_P (frames to it just vanish).
ip -n "$NS_H" link add lower0 type veth peer name wire0 netns "$NS_P"
ip -n "$NS_H" link set lower0 up
ip -n "$NS_P" link set wire0 up

iperf_pair() {  # $1 = label; devices mva (NS_A) and mvb (NS_B) already exist
  ip -n "$NS_A" addr add 10.88.0.1/24 dev mva; ip -n "$NS_A" link set mva up
  ip -n "$NS_B" addr add 10.88.0.2/24 dev mvb; ip -n "$NS_B" link set mvb up
  ip netns exec "$NS_B" iperf3 -s -1 -D -p 5201 >/dev/null 2>&1
  sleep 0.5
  ip netns exec "$NS_A" ping -c 1 -W 2 10.88.0.2 >/dev/null || true
  ip netns exec "$NS_A" iperf3 -c 10.88.0.2 -p 5201 -t "$SECONDS_PER_RUN" -J 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.3f" % (d["end"]["sum_received"]["bits_per_second"]/1e9))' ||
    echo 0
}

run_kernel() {
  ip netns exec "$NS_H" ip link add link lower0 name mva type macvlan mode bridge
  ip netns exec "$NS_H" ip link add link lower0 name mvb type macvlan mode bridge
  ip -n "$NS_H" link set mva netns "$NS_A"; ip -n "$NS_H" link set mvb netns "$NS_B"
  iperf_pair kernel
  ip -n "$NS_A" link del mva; ip -n "$NS_B" link del mvb
}
run_umacvlan() {
  ip netns exec "$NS_H" "$BIN" link add link lower0 name mva type macvlan mode bridge
  ip netns exec "$NS_H" "$BIN" link add link lower0 name mvb type macvlan mode bridge
  ip -n "$NS_H" link set mva netns "$NS_A"; ip -n "$NS_H" link set mvb netns "$NS_B"
  iperf_pair umacvlan
  ip netns exec "$NS_A" "$BIN" link del mva; ip netns exec "$NS_B" "$BIN" link del mvb
}
run_peer() {
  ip -n "$NS_A" link add mva type veth peer name mvb netns "$NS_B"
  iperf_pair peer
  ip -n "$NS_A" link del mva
}

echo "== TCP, bridge mode, ${SECONDS_PER_RUN}s x ${REPEAT} (Gbit/s) =="
declare -A best=([kernel]=0 [umacvlan]=0 [peer]=0)
for r in $(seq 1 "$REPEAT"); do
  for impl in kernel umacvlan peer; do
    v=$("run_$impl")
    printf '  run %d %-9s %s\n' "$r" "$impl" "$v"
    best[$impl]=$(python3 -c "print(max($v, ${best[$impl]}))")
  done
done
python3 - "${best[kernel]}" "${best[umacvlan]}" "${best[peer]}" <<'PY'
import sys
k, u, p = map(float, sys.argv[1:])
print("== best of runs ==")
print(f"  kernel macvlan {k:.3f} Gbit/s, umacvlan {u:.3f} Gbit/s, veth peer {p:.3f} Gbit/s")
print(f"  umacvlan/kernel = {u/k:.3f}" if k else "  umacvlan/kernel = n/a")
print(f"  kernel/peer     = {k/p:.3f}" if p else "  kernel/peer = n/a")
PY
