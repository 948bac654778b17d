#!/usr/bin/env bash
# run_all.sh [--impl kernel|umacvlan|both] [-v]
#
# Runs every scenario script with the same options, each bounded by a timeout,
# and ends with the line "N passed, M failed" (a pass = a script exiting 0).
# Exit: 0 when all passed, 1 otherwise.

set -uo pipefail
DIR=$(cd "$(dirname "$0")" && pwd)
SCRIPTS=(modes_matrix.sh passthru.sh source.sh errors.sh lifecycle.sh faults.sh multicast.sh tcp.sh)
# umacvlan only (the daemon has no kernel counterpart): run with --impl umacvlan or both.
DAEMON_SCRIPTS=(restart.sh hostile.sh daemon_faults.sh storm.sh)
case " $* " in *" umacvlan "*|*" both "*|*"=umacvlan "*|*"=both "*) SCRIPTS+=("${DAEMON_SCRIPTS[@]}") ;; esac
PER_SCRIPT_TIMEOUT=${UMV_SCRIPT_TIMEOUT:-900}

case " $* " in *" -h "*|*" --help "*)
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
[ "$(id -u)" = 0 ] || { echo "ERROR: must run as root" >&2; exit 2; }

CHILD=""
# A TERM/INT/HUP to this script is passed to the running scenario, whose own
# trap removes its namespaces.
on_signal() {
    [ -n "$CHILD" ] && kill -TERM "$CHILD" 2>/dev/null && wait "$CHILD" 2>/dev/null
    echo "run_all: interrupted" >&2
    exit 130
}
trap on_signal INT TERM HUP

passed=0; failed=0; summary=()
START=$SECONDS
for s in "${SCRIPTS[@]}"; do
    echo "################ $s $*"
    t0=$SECONDS
    # --foreground: the script stays in our process group (gets ^C itself);
    # on timeout it gets TERM and its EXIT trap cleans up.
    timeout --foreground -s TERM "$PER_SCRIPT_TIMEOUT" bash "$DIR/$s" "$@" &
    CHILD=$!
    wait "$CHILD"; rc=$?
    CHILD=""
    if [ $rc = 0 ]; then
        passed=$((passed + 1)); summary+=("PASS  $s ($((SECONDS - t0))s)")
    else
        failed=$((failed + 1)); summary+=("FAIL  $s (exit $rc, $((SECONDS - t0))s)")
    fi
    echo
done
echo "################ summary ($((SECONDS - START))s)"
printf '%s\n' "${summary[@]}"
echo "$passed passed, $failed failed"
[ $failed = 0 ]
