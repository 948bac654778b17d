#!/usr/bin/env python3
"""cnidriver.py - a minimal CNI "runtime" for the differential CNI test.

Debian ships no cnitool; this runs one plugin binary the way the CNI spec
(and libcni) does and prints one JSON line:

    {"exit": N, "stdout": <parsed JSON or null>, "raw": "<stdout>", "stderr": "..."}

    cnidriver.py run --plugin BIN --command ADD --conf FILE \
        [--containerid ID] [--netns PATH] [--ifname eth0] [--args K=V;...] \
        [--path DIR:DIR] [--prev RESULT.json] [--runtime-config JSON] \
        [--valid-attachments JSON] [--save FILE] [--unset VAR] [--timeout S]

  * the network configuration is read from --conf ("-" = stdin) and passed
    on the plugin's stdin; --raw passes it byte for byte (bad JSON cases),
    otherwise it is parsed and the runtime's keys are inserted:
      - "prevResult" for CHECK and DEL from --prev (a saved ADD result), as
        libcni does for cniVersion >= 0.4.0 (CHECK always: it needs one);
      - "runtimeConfig" from --runtime-config for every capability the
        configuration declares in "capabilities" (libcni's rule), or for
        every key with --force-runtime-config;
      - "cni.dev/valid-attachments" from --valid-attachments for GC.
  * CNI_* variables: CNI_COMMAND always; CNI_CONTAINERID, CNI_NETNS,
    CNI_IFNAME, CNI_ARGS, CNI_PATH when given; --unset VAR drops one
    (e.g. CNI_NETNS for the "invalid environment" case).
  * stdout/stderr go to temporary files, never pipes: a plugin may start a
    daemon that inherits them and lives on.
  * --save FILE: on exit 0 of ADD, the result is written there (for a later
    CHECK/DEL --prev).

Helpers for the test's checks (all print one line):
    cnidriver.py field OUT.json PATH       value at a dotted path of the
                                           line's "stdout" ("exit", "code",
                                           "msg" are shortcuts)
    cnidriver.py shape OUT.json            the result's structure: keys and
                                           JSON types, recursively, lists
                                           reduced to their first element
    cnidriver.py content OUT.json          the result, MACs and netns masked
    cnidriver.py summary OUT.json NETNS IFNAME
                                           invariants of an ADD result (2 lines)
    cnidriver.py addrs OUT.json            the result's addresses, in order
    cnidriver.py status OUT.json           "exit=N" [" code=C"]
    cnidriver.py resmac OUT.json IFNAME    the result's MAC of IFNAME
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile


def version_tuple(v):
    try:
        return tuple(int(x) for x in str(v).split("."))
    except ValueError:
        return (0,)


def cmd_run(a):
    if a.conf == "-":
        raw_conf = sys.stdin.buffer.read()
    else:
        with open(a.conf, "rb") as f:
            raw_conf = f.read()
    stdin_data = raw_conf
    if not a.raw:
        conf = json.loads(raw_conf)
        ver = conf.get("cniVersion", "0.1.0")
        if a.prev and a.command in ("CHECK", "DEL"):
            if a.command == "CHECK" or version_tuple(ver) >= (0, 4, 0):
                try:
                    with open(a.prev) as f:
                        prev = json.load(f)
                except (OSError, ValueError) as e:
                    print("cnidriver: --prev %s: %s" % (a.prev, e), file=sys.stderr)
                    return 2
                # libcni converts the cached result to the config's version;
                # the plugins under test accept a result of their own making.
                conf["prevResult"] = prev
        if a.runtime_config:
            rc = json.loads(a.runtime_config)
            caps = conf.get("capabilities") or {}
            ins = {k: v for k, v in rc.items() if a.force_runtime_config or caps.get(k)}
            if ins:
                conf["runtimeConfig"] = ins
        if a.valid_attachments is not None and a.command == "GC":
            conf["cni.dev/valid-attachments"] = json.loads(a.valid_attachments)
        stdin_data = json.dumps(conf).encode()

    env = dict(os.environ)
    for k in list(env):
        if k.startswith("CNI_"):
            del env[k]
    env["CNI_COMMAND"] = a.command
    for var, val in (("CNI_CONTAINERID", a.containerid), ("CNI_NETNS", a.netns),
                     ("CNI_IFNAME", a.ifname), ("CNI_ARGS", a.args), ("CNI_PATH", a.path)):
        if val is not None:
            env[var] = val
    for var in a.unset or []:
        env.pop(var, None)

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.TemporaryFile() as inp:
        inp.write(stdin_data)
        inp.seek(0)
        try:
            p = subprocess.run([a.plugin], stdin=inp, stdout=out, stderr=err, env=env,
                               timeout=a.timeout)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            rc = 124
        except OSError as e:
            rc = 127
            err.write(("cnidriver: %s\n" % e).encode())
        out.seek(0)
        err.seek(0)
        raw = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    try:
        parsed = json.loads(raw) if raw.strip() else None
    except ValueError:
        parsed = None
    if a.save and rc == 0 and a.command == "ADD" and parsed is not None:
        with open(a.save, "w") as f:
            json.dump(parsed, f)
    print(json.dumps({"exit": rc, "stdout": parsed, "raw": raw, "stderr": stderr}))
    return 0


def load_line(path):
    with open(path) as f:
        return json.loads(f.read().strip().splitlines()[-1])


def cmd_field(a):
    try:
        d = load_line(a.file)
    except (OSError, ValueError, IndexError):
        print("ERR")
        return 0
    out = d.get("stdout")
    if a.path == "exit":
        print(d.get("exit"))
        return 0
    if a.path == "code":
        # the CNI error code, "-" when the plugin printed no error object
        print(out.get("code", "-") if isinstance(out, dict) and d.get("exit") != 0 else "-")
        return 0
    if a.path == "msg":
        if isinstance(out, dict):
            print(("%s %s" % (out.get("msg", ""), out.get("details", ""))).strip()
                  .replace("\n", " "))
        else:
            print((d.get("raw") or d.get("stderr") or "").strip().replace("\n", " ")[:200])
        return 0
    v = out
    for part in a.path.split("."):
        if isinstance(v, list):
            try:
                v = v[int(part)]
            except (ValueError, IndexError):
                v = None
        elif isinstance(v, dict):
            v = v.get(part)
        else:
            v = None
    print(json.dumps(v) if isinstance(v, (dict, list)) else ("-" if v is None else v))
    return 0


def jtype(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "list"
    return "object"


def shape(v, prefix, lines):
    t = jtype(v)
    lines.append("%s: %s" % (prefix or ".", t))
    if t == "object":
        for k in sorted(v):
            shape(v[k], "%s.%s" % (prefix, k), lines)
    elif t == "list":
        # every element's structure, merged (a list of like objects is one shape)
        seen = []
        for e in v:
            sub = []
            shape(e, prefix + "[]", sub)
            for s in sub:
                if s not in seen:
                    seen.append(s)
        lines.extend(seen)


def cmd_shape(a):
    d = load_line(a.file)
    lines = []
    shape(d.get("stdout"), "", lines)
    print("\n".join(lines))
    return 0


def cmd_content(a):
    """The result with what differs by nature masked (MACs, the netns path),
    pretty-printed with sorted keys: two plugins given the same IPAM and
    configuration print the same."""
    d = load_line(a.file)
    r = d.get("stdout")
    if isinstance(r, dict):
        for i in r.get("interfaces") or []:
            if "mac" in i:
                i["mac"] = "<mac>"
            if "sandbox" in i:
                i["sandbox"] = "<netns>"
    print(json.dumps(r, indent=1, sort_keys=True))
    return 0


def is_mac(s):
    parts = s.split(":") if isinstance(s, str) else []
    return len(parts) == 6 and all(len(p) == 2 and all(c in "0123456789abcdef" for c in p)
                                   for p in parts)


def cmd_summary(a):
    """Invariants of an ADD result, as one comparable line."""
    d = load_line(a.file)
    r = d.get("stdout")
    if d.get("exit") != 0 or not isinstance(r, dict):
        print("no result")
        print("no result")
        return 0
    ifs = r.get("interfaces") or []
    ips = r.get("ips") or []
    idx = ",".join(str(ip.get("interface", "-")) for ip in ips)
    sandbox = "ok" if ifs and all(i.get("sandbox") == a.netns for i in ifs if i.get("name") == a.ifname) \
        and any(i.get("name") == a.ifname for i in ifs) else "BAD"
    macs = [i.get("mac") for i in ifs]
    mac = "ok" if macs and all(is_mac(m) for m in macs) else "BAD(%s)" % macs
    devmac = "-"
    if a.devmac is not None:
        devmac = "same" if any(i.get("mac") == a.devmac and i.get("name") == a.ifname for i in ifs) \
            else "DIFF(%s vs %s)" % (macs, a.devmac)
    # two lines: the counts, then the interface's properties
    print("ifs=%d ips=%d idx=%s" % (len(ifs), len(ips), idx or "-"))
    print("sandbox=%s mac=%s dev=%s" % (sandbox, mac, devmac))
    return 0


def cmd_status(a):
    """exit=N, and the CNI error code when the plugin failed."""
    try:
        d = load_line(a.file)
    except (OSError, ValueError, IndexError):
        print("no output")
        return 0
    out = d.get("stdout")
    rc = d.get("exit")
    if rc == 0:
        print("exit=0")
    elif isinstance(out, dict) and "code" in out:
        print("exit=%s code=%s" % (rc, out["code"]))
    else:
        print("exit=%s no error object" % rc)
    return 0


def cmd_resmac(a):
    d = load_line(a.file)
    r = d.get("stdout")
    if d.get("exit") != 0 or not isinstance(r, dict):
        print("-")
        return 0
    macs = [i.get("mac", "-") for i in r.get("interfaces") or [] if i.get("name") == a.ifname]
    print(macs[0] if macs else "-")
    return 0


def cmd_addrs(a):
    d = load_line(a.file)
    r = d.get("stdout")
    if d.get("exit") != 0 or not isinstance(r, dict):
        print("none")
        return 0
    print(" ".join(ip.get("address", "?") for ip in r.get("ips") or []) or "none")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a plugin")
    r.add_argument("--plugin", required=True)
    r.add_argument("--command", required=True,
                   choices=["ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC"])
    r.add_argument("--conf", required=True, help="network configuration file, - for stdin")
    r.add_argument("--raw", action="store_true", help="pass the configuration unparsed")
    r.add_argument("--containerid")
    r.add_argument("--netns")
    r.add_argument("--ifname")
    r.add_argument("--args", help="CNI_ARGS")
    r.add_argument("--path", help="CNI_PATH")
    r.add_argument("--prev", help="saved ADD result for CHECK/DEL prevResult")
    r.add_argument("--runtime-config", help="JSON object of capability values")
    r.add_argument("--force-runtime-config", action="store_true")
    r.add_argument("--valid-attachments", help="JSON list for GC")
    r.add_argument("--save", help="write the ADD result here on success")
    r.add_argument("--unset", action="append", help="drop this CNI_* variable")
    r.add_argument("--timeout", type=float, default=60.0)
    r.set_defaults(fn=cmd_run)
    f = sub.add_parser("field")
    f.add_argument("file")
    f.add_argument("path")
    f.set_defaults(fn=cmd_field)
    s = sub.add_parser("shape")
    s.add_argument("file")
    s.set_defaults(fn=cmd_shape)
    ct = sub.add_parser("content")
    ct.add_argument("file")
    ct.set_defaults(fn=cmd_content)
    m = sub.add_parser("summary")
    m.add_argument("file")
    m.add_argument("netns")
    m.add_argument("ifname")
    m.add_argument("--devmac")
    m.set_defaults(fn=cmd_summary)
    ad = sub.add_parser("addrs")
    ad.add_argument("file")
    ad.set_defaults(fn=cmd_addrs)
    st = sub.add_parser("status")
    st.add_argument("file")
    st.set_defaults(fn=cmd_status)
    rm = sub.add_parser("resmac")
    rm.add_argument("file")
    rm.add_argument("ifname")
    rm.set_defaults(fn=cmd_resmac)
    a = p.parse_args()
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
