#!/usr/bin/env bash
# make demo: `umacvlan lab --with-kernel` — a self-contained lab of network
# namespaces (nothing outside them is touched): lower0 behind a Linux bridge
# with an outside host, devices in namespaces of their own, every mode with
# and without hairpin, the kernel's macvlan beside umacvlan, the paths the
# frames really took, and the drawbacks of macvlan shown live. The lab
# removes itself at the end, also on Ctrl-C and on failure.
#
#   UMACVLAN_BIN   the CLI to run (default build/src/cli/umacvlan)
#   extra words    passed on to `umacvlan lab` (e.g. --mode bridge --svg lab.svg)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${UMACVLAN_BIN:-build/src/cli/umacvlan}
case "$BIN" in /*) ;; *) BIN=$(pwd)/$BIN ;; esac
[ "$(id -u)" -eq 0 ] || { echo "make demo needs root (it builds a lab of network namespaces)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "no $BIN: run make build" >&2; exit 1; }
exec "$BIN" lab --with-kernel "$@"
