#!/usr/bin/env bash
# run.sh [SCRIPT...]   (make conformance)
#
# The differential conformance suite: every script of tests/conformance/
# (or those named) run with --impl both, each against the kernel's macvlan
# and umacvlan in identical namespace topologies. Prints each script's own
# tables, then one table of every observation: scenario, observation,
# kernel, umacvlan, and same / different / accepted / fixed upstream, with
# the counts and the reason of every accepted or fixed-upstream row.
#
# Environment: UMACVLAN_BIN (default build/src/cli/umacvlan), as lib.sh.
# Exit: 0 when every row is same, accepted or fixed upstream and every script
# passed; 1 otherwise.
set -uo pipefail
DIR=$(cd "$(dirname "$0")" && pwd)
ROWS=$(mktemp /tmp/umv-conformance.XXXXXX)
trap 'rm -f "$ROWS"' EXIT

scripts=("$@")
if [ ${#scripts[@]} -eq 0 ]; then
    for s in "$DIR"/*.sh; do
        [ "$(basename "$s")" = run.sh ] || scripts+=("$s")
    done
fi

fail=0
declare -a failed=()
for s in "${scripts[@]}"; do
    case "$s" in /*) ;; *) [ -f "$s" ] || s="$DIR/$s" ;; esac
    [ -f "$s" ] || s="$DIR/$(basename "$s" .sh).sh"
    echo "#### $(basename "$s" .sh)"
    start=$SECONDS
    UMV_ROWS_FILE=$ROWS bash "$s" --impl both
    rc=$?
    echo "#### $(basename "$s" .sh): exit $rc, $((SECONDS - start)) s"
    if [ $rc != 0 ]; then
        fail=1
        failed+=("$(basename "$s" .sh) (exit $rc)")
    fi
done

python3 - "$ROWS" <<'EOF'
import sys
names = {"ok": "same", "DIFF": "different", "MISMATCH": "different",
         "MISMATCH+DIFF": "different", "accepted": "accepted",
         "fixed-upstream": "fixed upstream"}
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
counts = {}
reasons = []
print()
print("== conformance: kernel macvlan vs umacvlan")
fmt = "%-10s %-44s %-26s %-26s %s"
print(fmt % ("scenario", "observation", "kernel", "umacvlan", "result"))
for r in rows:
    script, check, _expected, kernel, umv, status = r[:6]
    why = r[6] if len(r) > 6 else ""
    result = names.get(status, "different")
    counts[result] = counts.get(result, 0) + 1
    cut = lambda v: v if len(v) <= 26 else v[:23] + "..."
    print(fmt % (script, check[:44], cut(kernel), cut(umv), result))
    if why:
        reasons.append("%s / %s: %s: %s" % (script, check, result, why))
print("-- %d observations: %s" % (len(rows), ", ".join(
    "%d %s" % (counts.get(k, 0), k) for k in ("same", "different", "accepted", "fixed upstream"))))
for line in reasons:
    print("   " + line)
EOF
if [ ${#failed[@]} -gt 0 ]; then
    echo "-- failed: ${failed[*]}"
fi
exit $fail
