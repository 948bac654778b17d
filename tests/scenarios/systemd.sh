#!/bin/bash
# systemd.sh - umacvlan under systemd: sd_notify, the unit, the package.
#
#   (a) the daemon, started with NOTIFY_SOCKET (a datagram socket of this
#       script's) and WATCHDOG_USEC, says READY=1 with its STATUS, then
#       WATCHDOG=1 over and over, idle and with a device; a stopped (ptrace)
#       dataplane worker, or a stopped control thread, ends the pings and
#       they come back when it runs again; SIGTERM brings STOPPING=1.
#   (b) `systemd-analyze verify` accepts packaging/umacvlan.service (as
#       installed, with ExecStart pointed at the packaged binary) and says
#       nothing about it.
#   (c) the Debian package (cpack -G DEB from the build directory, into a
#       scratch directory) has its fields, and extracted (dpkg -x) puts every
#       file where the unit and the CNI runtime look for it.
#
# Root. Namespaces are named umv-sd-<id>-*; the daemon lives in one of them
# with its socket in a temporary directory; all is removed on exit.
# Environment: UMACVLAN_BIN (the CLI; the daemon is beside it),
# UMACVLAN_BUILD_DIR (default: the build directory that holds UMACVLAN_BIN).
. "$(dirname "$0")/lib.sh"
UMV_DEFAULT_IMPL=umacvlan umv_init "$@"
UMV_PFX="umv-sd-${UMV_ID}-"
umv_set_impl umacvlan
BIN_DIR=$(dirname "$MV")
DAEMON="$BIN_DIR/umacvlan-daemon"
BUILD_DIR=${UMACVLAN_BUILD_DIR:-$(cd "$BIN_DIR/../.." && pwd)}
for t in systemd-analyze cpack dpkg-deb; do
    command -v "$t" >/dev/null 2>&1 || umv_die "missing tool: $t"
done

# ------------------------------------------------------------ (a) notify ---

NOTIFY="$UMV_TMP/notify.sock"
NLOG="$UMV_TMP/notify.log"
WATCHDOG_USEC=1000000

# Every datagram on NOTIFY as one line of NLOG (its newlines as spaces).
"$UMV_PYTHON" - "$NOTIFY" "$NLOG" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(300)
with open(sys.argv[2], "a") as log:
    while True:
        try:
            m = s.recv(65536)
        except socket.timeout:
            break
        log.write(m.decode(errors="replace").strip().replace("\n", " ") + "\n")
        log.flush()
PY
echo $! >>"$UMV_TMP/pids"
umv_wait_for 5 test -S "$NOTIFY" || umv_die "the notify listener did not start"
: >>"$NLOG"

# A datagram of our own in the stream: what came before it is in NLOG once
# it is.
mark() {
    "$UMV_PYTHON" -c 'import socket,sys; s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM); s.sendto(sys.argv[2].encode(), sys.argv[1])' "$NOTIFY" "$1"
    umv_wait_for 5 grep -qx "$1" "$NLOG"
}
pings() { grep -cx 'WATCHDOG=1' "$NLOG"; }
pings_between() { sed -n "/^$1\$/,/^$2\$/p" "$NLOG" | grep -cx 'WATCHDOG=1'; }
pings_after() { sed -n "/^$1\$/,\$p" "$NLOG" | grep -cx 'WATCHDOG=1'; }
at_least() { [ "$("$1" "${@:3}")" -ge "$2" ]; }

# Stops one thread (not its process) with ptrace until killed; the kernel
# lets it go on when the tracer exits.
FREEZER=""
freeze() {
    "$UMV_PYTHON" - "$1" >"$UMV_TMP/freeze.out" 2>&1 <<'PY' &
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
tid = int(sys.argv[1])
for req in (0x4206, 0x4207):  # PTRACE_SEIZE, PTRACE_INTERRUPT: this thread only
    if libc.ptrace(req, tid, None, None) != 0:
        sys.exit("ptrace %#x: %s" % (req, os.strerror(ctypes.get_errno())))
os.waitpid(tid, 0x40000000)  # __WALL: it is stopped
print("frozen", flush=True)
time.sleep(120)
PY
    FREEZER=$!
    echo "$FREEZER" >>"$UMV_TMP/pids"
    umv_wait_for 5 grep -qx frozen "$UMV_TMP/freeze.out"
}
thaw() { kill "$FREEZER" 2>/dev/null; wait "$FREEZER" 2>/dev/null; FREEZER=""; }

umv_topo_up t || umv_die "topology setup failed"
DLOG="$TOPO_DIR/umacvlan.log"
ip netns exec "$NS_D" env NOTIFY_SOCKET="$NOTIFY" WATCHDOG_USEC=$WATCHDOG_USEC \
    "$DAEMON" --socket "$UMACVLAN_SOCKET" --workers 2 --log-file "$DLOG" &
DPID=$!
echo "$DPID" >>"$UMV_TMP/pids"

umv_wait_for 10 grep -q '^READY=1' "$NLOG"
umv_rec "READY=1 and STATUS" "$(grep -m1 '^READY=1' "$NLOG" || echo none)" \
    "READY=1 STATUS=0 device(s) on 0 lower(s)"
umv_rec "watchdog in the daemon log" \
    "$(umv_yn grep -q "watchdog $((WATCHDOG_USEC / 1000)) ms" "$DLOG")" yes
umv_rec "WATCHDOG=1 x3, idle" "$(umv_yn umv_wait_for 10 at_least pings 3)" yes

umv_mkdev mva bridge "$NS_A" 10.77.0.11/24 || umv_die "device mva"
umv_rec "ping a>x" "$(umv_yn umv_ping "$NS_A" 10.77.0.1)" yes
umv_rec "STATUS after link add" \
    "$(umv_yn umv_wait_for 10 grep -qx 'STATUS=1 device(s) on 1 lower(s)' "$NLOG")" yes
mark MARK=device
umv_rec "WATCHDOG=1 x3, one device" "$(umv_yn umv_wait_for 10 at_least pings_after 3 MARK=device)" yes

# The dataplane workers: the daemon's threads but the first, io_uring's
# own (iou-*) left out.
comm=$(cat "/proc/$DPID/comm")
workers=()
for t in /proc/"$DPID"/task/*; do
    tid=${t##*/}
    [ "$tid" != "$DPID" ] && [ "$(cat "$t/comm" 2>/dev/null)" = "$comm" ] && workers+=("$tid")
done
umv_rec "worker threads" "${#workers[@]}" 2

# A stuck worker: the daemon says so, and no ping comes while it is stopped
# (the second mark comes a watchdog period after the first).
freeze "${workers[1]}" || umv_die "cannot stop a worker thread: $(cat "$UMV_TMP/freeze.out")"
umv_rec "stuck worker logged" "$(umv_yn umv_wait_for 10 grep -q 'has not turned for' "$DLOG")" yes
mark MARK=stuck1; sleep $((WATCHDOG_USEC / 1000000 + 1)); mark MARK=stuck2
umv_rec "WATCHDOG=1 while a worker is stopped" "$(pings_between MARK=stuck1 MARK=stuck2)" 0
thaw
umv_rec "worker back, logged" "$(umv_yn umv_wait_for 10 grep -q 'every worker turns again' "$DLOG")" yes
umv_rec "WATCHDOG=1 again" "$(umv_yn umv_wait_for 10 at_least pings_after 2 MARK=stuck2)" yes

# A stuck control thread: no ping either.
freeze "$DPID" || umv_die "cannot stop the control thread: $(cat "$UMV_TMP/freeze.out")"
mark MARK=control1; sleep $((WATCHDOG_USEC / 1000000 + 1)); mark MARK=control2
umv_rec "WATCHDOG=1 while control is stopped" "$(pings_between MARK=control1 MARK=control2)" 0
thaw
umv_rec "WATCHDOG=1 after control runs" "$(umv_yn umv_wait_for 10 at_least pings_after 2 MARK=control2)" yes
umv_rec "ping a>x after the stops" "$(umv_yn umv_ping "$NS_A" 10.77.0.1)" yes

kill -TERM "$DPID"
umv_wait_for 10 grep -q '^STOPPING=1' "$NLOG"
umv_rec "STOPPING=1 on SIGTERM" "$(grep -m1 '^STOPPING=1' "$NLOG" || echo none)" \
    "STOPPING=1 STATUS=stopping: 1 device(s) stay for the next start"
wait "$DPID"
umv_rec "exit status" "$?" 0
umv_topo_down

# ----------------------------------------------------------- (c) package ---

# The man page is part of the package (`make` builds it; `make product`
# does not).
[ -f "$BUILD_DIR/umacvlan.8.gz" ] || cmake --build "$BUILD_DIR" --target man >/dev/null ||
    umv_die "cannot build the man page in $BUILD_DIR"
PKG="$UMV_TMP/pkg"
ROOT="$UMV_TMP/root"
if cpack -G DEB --config "$BUILD_DIR/CPackConfig.cmake" -B "$PKG" >"$UMV_TMP/cpack.log" 2>&1; then
    DEB=$(ls "$PKG"/umacvlan_*.deb 2>/dev/null | head -1)
else
    DEB=""
    tail -20 "$UMV_TMP/cpack.log" >&2
fi
umv_rec "cpack builds umacvlan_*.deb" "$(umv_yn test -f "$DEB")" yes
field() { dpkg-deb -f "$DEB" "$1" 2>/dev/null; }
has_dep() { field Depends | tr ',' '\n' | sed 's/^ *//; s/ .*//' | grep -qx "$1"; }
umv_rec "Package" "$(field Package)" umacvlan
umv_rec "Depends: iproute2 nftables libsystemd0" \
    "$(umv_yn has_dep iproute2)$(umv_yn has_dep nftables)$(umv_yn has_dep libsystemd0)" yesyesyes
umv_rec "Suggests" "$(field Suggests)" containernetworking-plugins
umv_rec "Maintainer set" "$(umv_yn test -n "$(field Maintainer)")" yes

mkdir -p "$ROOT" "$UMV_TMP/control"
dpkg -x "$DEB" "$ROOT" 2>/dev/null
dpkg-deb -e "$DEB" "$UMV_TMP/control" 2>/dev/null
UNIT="$ROOT/usr/lib/systemd/system/umacvlan.service"
exec_start=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$UNIT" 2>/dev/null)
umv_rec "unit installed" "$(umv_yn test -f "$UNIT")" yes
umv_rec "unit as in packaging/" "$(umv_yn cmp -s "$UNIT" "$UMV_REPO/packaging/umacvlan.service")" yes
umv_rec "ExecStart in the package" "$exec_start $(umv_yn test -x "$ROOT$exec_start")" \
    "/usr/sbin/umacvlan-daemon yes"
umv_rec "CLI runs" "$(umv_yn "$ROOT/usr/sbin/umacvlan" -V)" yes
umv_rec "CNI plugin usr/lib/cni/umacvlan" "$(umv_yn test -x "$ROOT/usr/lib/cni/umacvlan")" yes
umv_rec "man page (gzip)" "$(umv_yn gzip -t "$ROOT/usr/share/man/man8/umacvlan.8.gz")" yes
umv_rec "bash completion" "$(umv_yn bash -n "$ROOT/usr/share/bash-completion/completions/umacvlan")" yes
umv_rec "zsh completion" "$(umv_yn test -s "$ROOT/usr/share/zsh/vendor-completions/_umacvlan")" yes
scripts_ok() { local s; for s in postinst prerm postrm; do sh -n "$UMV_TMP/control/$s" || return 1; done; }
umv_rec "maintainer scripts" "$(umv_yn scripts_ok)" yes

# ------------------------------------------------------------ (b) verify ---

# The packaged unit as systemd would load it, its ExecStart pointed at the
# packaged binary and man: at the packaged page: no word from the verifier.
mkdir -p "$UMV_TMP/verify"
sed "s|^ExecStart=/|ExecStart=$ROOT/|" "$UNIT" >"$UMV_TMP/verify/umacvlan.service"
verify_quiet() {
    MANPATH="$ROOT/usr/share/man" systemd-analyze verify "$UMV_TMP/verify/umacvlan.service" \
        >"$UMV_TMP/verify.out" 2>&1 && ! grep -q . "$UMV_TMP/verify.out"
}
umv_rec "systemd-analyze verify" "$(umv_yn verify_quiet)" yes
grep . "$UMV_TMP/verify.out" >&2

umv_report "umacvlan under systemd: notify, unit, package"
