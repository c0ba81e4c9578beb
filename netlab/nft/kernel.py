"""Apply and remove netlab's nftables table (`inet netlab`) inside a node's namespace,
and read its counters back.

A ruleset is loaded as one nft transaction: create-if-missing, delete, define. So a
re-apply replaces the table atomically, and a ruleset the kernel refuses leaves the old
one (or none) in place. libnftables is called in-process on this thread while it is inside
the namespace (no fork); `nft -f -` in the namespace is the fallback when the library is
missing. Only the table named `netlab` is ever touched.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import re
import subprocess
import threading
import weakref

from ..core import kernel
from ..core.apply import Context, Executor, executor
from ..core.errors import ApplyError
from .compile import NftRuleset
from .render import TABLE, rule_texts

_REPLACE = _REMOVE = f"table inet {TABLE} {{}}\ndelete table inet {TABLE}\n"
_JSON = 1 << 4          # NFT_CTX_OUTPUT_JSON
_lock = threading.Lock()


class _Lib:
    """The few libnftables calls netlab needs, through ctypes."""

    def __init__(self, lib: ctypes.CDLL):
        self.lib = lib
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
        for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
            getattr(lib, name).restype = ctypes.c_char_p
            getattr(lib, name).argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_run_cmd_from_filename.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]

    def run(self, text: str, json_output: bool = False) -> tuple[int, str, str]:
        """Commands are read from a memfd, not a buffer: nft then points its errors at the
        right line (from a buffer it blames the first command)."""
        lib = self.lib
        fd = os.memfd_create("netlab-nft", os.MFD_CLOEXEC)
        ctx = None
        try:
            os.write(fd, text.encode())
            ctx = lib.nft_ctx_new(0)
            if not ctx:
                raise OSError("libnftables: cannot create a context")
            lib.nft_ctx_buffer_output(ctx)
            lib.nft_ctx_buffer_error(ctx)
            if json_output:
                lib.nft_ctx_output_set_flags(ctx, _JSON)
            rc = lib.nft_run_cmd_from_filename(ctx, f"/proc/self/fd/{fd}".encode())
            out = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode(errors="replace")
            err = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace")
            return rc, out, err
        finally:
            if ctx:
                lib.nft_ctx_free(ctx)
            os.close(fd)


def _load_lib() -> _Lib | None:
    if os.environ.get("NETLAB_NFT") == "cli":
        return None
    name = ctypes.util.find_library("nftables") or "libnftables.so.1"
    try:
        return _Lib(ctypes.CDLL(name))
    except (OSError, AttributeError):
        return None


_LIB = _load_lib()


def nft(ns: str, text: str, json_output: bool = False) -> tuple[int, str, str]:
    """Run nft commands inside namespace `ns`: (status, output, error text)."""
    if _LIB is not None:
        with _lock, kernel.entered(ns):
            return _LIB.run(text, json_output)
    argv = ["nsenter", f"--net={kernel.netns_path(ns)}", "nft"]
    if json_output:                   # with -j, nft -f reads JSON: give the command as words
        argv += ["-j", *text.split()]
        text = ""
    else:
        argv += ["-f", "-"]
    proc = subprocess.run(argv, input=text, capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


_LOCATION = re.compile(r'comment "([^"]+)"')


def explain(err: str) -> str:
    """nft's error output -> one line: the message, and the rule it was about."""
    lines = [l for l in err.splitlines() if l.strip()]
    for i, line in enumerate(lines):
        if "Error:" in line:
            message = line.split("Error:", 1)[1].strip()
            source = lines[i + 1].strip() if i + 1 < len(lines) else ""
            where = _LOCATION.search(source)
            if where:
                return f"{message} (in firewall/nat rule {where.group(1)}: {_LOCATION.sub('', source).strip()})"
            return f"{message} ({source})" if source and not source.startswith("^") else message
    return lines[0].strip() if lines else "nft failed without a message"


# Reconcile deletes a changed step before creating its new version. For a firewall that
# would leave the node open in between (and for good if the new ruleset is refused), so
# a delete only marks the table; a create replaces it in one transaction, and what is
# still marked when the run is over (the node has no nat/firewall any more) is removed
# by `flush_deferred` (the feature's after_up hook).
_deferred: weakref.WeakKeyDictionary[Context, dict[str, str]] = weakref.WeakKeyDictionary()


def remove_table(ns: str, node: str) -> None:
    if not kernel.netns_exists(ns):
        return
    rc, _, err = nft(ns, _REMOVE)
    if rc != 0:
        raise ApplyError(f"node {node}: removing table inet {TABLE}: {explain(err)}")


def flush_deferred(ctx: Context) -> None:
    for ns, node in sorted(_deferred.pop(ctx, {}).items()):
        remove_table(ns, node)


@executor("nft")
class NftExecutor(Executor):
    def create(self, ctx: Context, step: NftRuleset) -> None:
        rc, _, err = nft(step.ns, _REPLACE + step.ruleset)
        if rc != 0:
            raise ApplyError(f"node {step.node}: nftables refused its ruleset: {explain(err)}")
        _deferred.get(ctx, {}).pop(step.ns, None)

    def delete(self, ctx: Context, step: NftRuleset) -> None:
        _deferred.setdefault(ctx, {})[step.ns] = step.node


def read_table(ns: str) -> dict | None:
    """The live `inet netlab` table as nft JSON, or None if it is not there."""
    rc, out, _ = nft(ns, f"list table inet {TABLE}", json_output=True)
    if rc != 0 or not out.strip():
        return None
    return json.loads(out)


def _counter(rule: dict) -> tuple[int, int] | None:
    for expr in rule.get("expr", []):
        if isinstance(expr, dict) and "counter" in expr:
            c = expr["counter"]
            return int(c.get("packets", 0)), int(c.get("bytes", 0))
    return None


def node_rules(step: NftRuleset) -> dict:
    """A node's chains with each rule's text, origin and packet/byte counters."""
    try:
        table = read_table(step.ns)
    except (OSError, ValueError) as e:
        return {"error": str(e)}
    if table is None:
        return {"error": f"table inet {TABLE} is missing"}
    texts = rule_texts(step.ruleset)
    chains: dict[str, dict] = {}
    for item in table.get("nftables", []):
        if "chain" in item:
            c = item["chain"]
            chains[c["name"]] = {"hook": c.get("hook"), "policy": c.get("policy"), "rules": []}
        elif "rule" in item:
            r = item["rule"]
            comment = r.get("comment", "")
            counted = _counter(r)
            chains.setdefault(r["chain"], {"rules": []})["rules"].append({
                "from": comment, "rule": texts.get((r["chain"], comment), comment),
                "packets": counted[0] if counted else None, "bytes": counted[1] if counted else None})
    return {"table": f"inet {TABLE}", "chains": chains}


# ---------------------------------------------------------------- hooks

def after_up(ctx, plan, topo) -> None:
    """Remove the tables of nodes that no longer have nat or firewall (see flush_deferred)."""
    flush_deferred(ctx)


def status(entry: dict, state) -> None:
    """Each node with nat/firewall gets `nft`: its chains, rules and counters (live)."""
    steps = {s.node: s for s in state.plan.steps if isinstance(s, NftRuleset)}
    for node in entry.get("nodes", []):
        s = steps.get(node["name"])
        if s is None:
            continue
        if entry.get("status") != "up" or not node.get("healthy", True):
            node["nft"] = {"error": "not running"}
        elif os.geteuid() != 0:
            node["nft"] = {"error": "reading rule counters needs root"}
        else:
            node["nft"] = node_rules(s)
