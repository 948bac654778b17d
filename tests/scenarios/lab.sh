#!/usr/bin/env bash
# lab.sh: `umacvlan lab` end to end (root).
#   1. `umacvlan -j lab --with-kernel --no-drawbacks`: one JSON document; for
#      every mode, both hairpin settings and every probe there is a umacvlan
#      and a kernel column, and they agree (received_by and reachable), or
#      the probe names a known difference (umacvlan follows a newer kernel).
#   2. `umacvlan lab --keep --mode bridge --no-drawbacks`: the lab's
#      namespaces exist afterwards; `umacvlan lab --down` removes them, its
#      run directory and its daemon.
#   3. A usage error exits 1 with ip's message and builds nothing.
#   1b. explain --port, asked each probe of (1), names the devices and the
#      stack the lab saw get the frame.
# Nothing here waits on a clock: the lab bounds its own waits.
# Exit: 0 pass, 1 fail, 2 setup error.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${UMACVLAN_BIN:-build/src/cli/umacvlan}
case "$BIN" in /*) ;; *) BIN=$(pwd)/$BIN ;; esac
[ "$(id -u)" = 0 ] || { echo "lab.sh: must run as root" >&2; exit 2; }
[ -x "$BIN" ] || { echo "lab.sh: no $BIN (build it, or set UMACVLAN_BIN)" >&2; exit 2; }
PY=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || echo python3)
TMP=$(mktemp -d /tmp/umvlab-test.XXXX)
KEPT=""
cleanup() {
    # A kept lab this test made, should a check have stopped half way.
    if [ -n "$KEPT" ] && [ -d "/run/umacvlan-lab/$KEPT" ]; then "$BIN" lab --down >/dev/null 2>&1; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
FAIL=0
fail() { echo "FAIL: $*"; FAIL=1; }

# 1. the JSON document, both columns
if ! "$BIN" -j lab --with-kernel --no-drawbacks >"$TMP/lab.json" 2>"$TMP/lab.err"; then
    cat "$TMP/lab.err"; fail "umacvlan -j lab --with-kernel --no-drawbacks exited $?"
fi
"$PY" - "$TMP/lab.json" <<'PYEOF' || FAIL=1
import json, sys
doc = json.load(open(sys.argv[1]))
bad = 0
modes = [m["mode"] for m in doc["modes"]]
if modes != ["private", "vepa", "bridge", "passthru", "source"]:
    print("FAIL: modes", modes); bad += 1
n = 0
for m in doc["modes"]:
    if m.get("error"):
        print("FAIL: mode %s: %s" % (m["mode"], m["error"])); bad += 1
    if [r["hairpin"] for r in m["hairpin"]] != [False, True]:
        print("FAIL: mode %s: hairpin runs %s" % (m["mode"], [r["hairpin"] for r in m["hairpin"]])); bad += 1
    for r in m["hairpin"]:
        if not r["probes"]:
            print("FAIL: mode %s: no probes" % m["mode"]); bad += 1
        for p in r["probes"]:
            n += 1
            where = "%s hairpin %s %s" % (m["mode"], "on" if r["hairpin"] else "off", p["probe"])
            for k in ("probe", "from", "to", "dst_mac", "received_by", "reachable", "kernel"):
                if k not in p:
                    print("FAIL: %s: no %s" % (where, k)); bad += 1
            k = p.get("kernel", {})
            for key in ("received_by", "reachable"):
                if key not in k:
                    print("FAIL: %s: kernel column has no %s" % (where, key)); bad += 1
            if not isinstance(p.get("reachable"), bool) or not isinstance(k.get("reachable"), bool):
                print("FAIL: %s: reachable is not a bool" % where); bad += 1
            same = (sorted(p.get("received_by", [])) == sorted(k.get("received_by", [])) and
                    p.get("reachable") == k.get("reachable"))
            if not same and not p.get("known_difference"):
                print("FAIL: %s: umacvlan %s reachable=%s, kernel %s reachable=%s" % (
                    where, p.get("received_by"), p.get("reachable"),
                    k.get("received_by"), k.get("reachable"))); bad += 1
print("lab.sh: %d probes checked, %d problem(s)" % (n, bad))
sys.exit(1 if bad else 0)
PYEOF

# 1b. explain agrees with the live lab: every probe of the umacvlan column
# asked of `umacvlan -j explain --port SPEC` (the same devices, modes, MACs
# and source lists; no daemon): the devices and the lower's stack that got
# the frame straight from the port, and, behind a hairpin switch, what the
# switch sent back (group frames, and unicast for a MAC behind lower0).
if [ -s "$TMP/lab.json" ]; then
"$PY" - "$TMP/lab.json" "$BIN" <<'PYEOF' || FAIL=1
import json, subprocess, sys
doc = json.load(open(sys.argv[1]))
binary = sys.argv[2]
OUT_MAC = "02:77:00:00:00:01"   # the lab's outside host (tools: lab.cc)
bad = checked = 0
for m in doc["modes"]:
    devs = {d["name"]: d for d in m.get("devices", [])}
    words = []
    for d in m.get("devices", []):
        w = "%s:%s" % (d["name"], d["mode"])
        if d["mode"] != "passthru":
            w += ",mac=" + d["mac"]
        if d.get("source_macs"):
            w += ",src=" + "+".join(d["source_macs"])
        words.append(w)
    spec = " ".join(words)
    for run in m["hairpin"]:
        hairpin = run["hairpin"]
        for p in run["probes"]:
            frm, to, kind = p["from"], p["to"], p["probe"]
            if kind.endswith("bcast"):
                target = "broadcast"
            elif kind.endswith(">outside"):
                target = "outside"
            else:
                target = to
            if target not in ("broadcast", "outside") and target not in devs:
                continue
            if frm in devs:
                sender = ["dev", frm]
            elif frm == "outside":
                sender = ["from", "outside", "src", OUT_MAC]
            else:
                sender = ["from", "host"]
            cmd = [binary, "-j", "explain", "--port", spec] + sender + ["to", target]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                print("FAIL: %s: %s" % (" ".join(cmd), r.stderr.strip())); bad += 1
                continue
            e = json.loads(r.stdout)
            def names(part):
                return {d["to"] for d in (part or {}).get("deliveries", []) if d["to"] != "wire"}
            want = names(e)
            reflected = e.get("if_reflected")
            # A hairpin switch sends back group frames, and unicast for a MAC
            # it learned behind lower0 (a device's); unicast for the outside
            # host goes to the outside host only.
            if hairpin and reflected and target != "outside":
                want |= names(reflected)
            # A unicast frame for another MAC that the port hands to the
            # lower's stack is dropped there as "other host"; the lab counts
            # what the stack takes (its MAC, groups) only.
            if target != "broadcast":
                want.discard("stack")
            got = {x for x in p["received_by"] if x not in ("wire", "outside")}
            checked += 1
            if want != got:
                where = "%s hairpin %s %s" % (m["mode"], "on" if hairpin else "off", kind)
                print("FAIL: %s: explain says %s, the lab saw %s (%s)" % (
                    where, sorted(want), sorted(got), " ".join(cmd[2:])))
                bad += 1
print("lab.sh: explain agrees with the lab on %d of %d probes" % (checked - bad, checked))
sys.exit(1 if bad else 0)
PYEOF
fi

# 2. --keep, then --down
if "$BIN" lab --keep --mode bridge --no-drawbacks >"$TMP/keep.txt" 2>&1; then
    KEPT=$(cat /run/umacvlan-lab/current 2>/dev/null)
    if [ -z "$KEPT" ]; then
        fail "--keep wrote no /run/umacvlan-lab/current"
    else
        for ns in host switch outside mva mvb; do
            [ -e "/run/netns/umvlab-$KEPT-$ns" ] || fail "--keep: no namespace umvlab-$KEPT-$ns"
        done
        grep -q "ip netns exec umvlab-$KEPT-mva bash" "$TMP/keep.txt" || fail "--keep: no ip netns exec line"
        grep -q "umacvlan lab --down" "$TMP/keep.txt" || fail "--keep: no --down hint"
        ip -n "umvlab-$KEPT-mva" link show mva >/dev/null 2>&1 || fail "--keep: no device mva in the kept lab"
        "$BIN" lab --down >"$TMP/down.txt" 2>&1 || fail "lab --down exited $?: $(cat "$TMP/down.txt")"
        left=$(ls /run/netns 2>/dev/null | grep -c "^umvlab-$KEPT-")
        [ "$left" = 0 ] || fail "--down left $left namespace(s) of lab $KEPT"
        [ ! -e "/run/umacvlan-lab/$KEPT" ] || fail "--down left /run/umacvlan-lab/$KEPT"
        [ ! -e /run/umacvlan-lab/current ] || fail "--down left /run/umacvlan-lab/current"
        KEPT=""
    fi
else
    cat "$TMP/keep.txt"; fail "lab --keep exited $?"
fi

# 3. a usage error: exit 1, ip's message, no lab
before=$(ls /run/netns 2>/dev/null | grep -c '^umvlab-')
"$BIN" lab --mode nosuch >/dev/null 2>"$TMP/usage.err"; rc=$?
[ "$rc" = 1 ] || fail "lab --mode nosuch exited $rc, not 1"
grep -q '^Error: argument "nosuch" is wrong: ' "$TMP/usage.err" || fail "lab --mode nosuch said: $(cat "$TMP/usage.err")"
after=$(ls /run/netns 2>/dev/null | grep -c '^umvlab-')
[ "$before" = "$after" ] || fail "a usage error made namespaces"

[ $FAIL = 0 ] && echo "lab.sh: PASS" || echo "lab.sh: FAIL"
exit $FAIL
