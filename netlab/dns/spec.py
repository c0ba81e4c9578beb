"""The `dns:` section of a topology, parsed and checked (pure): the lab's TTL and the
records users add (a, aaaa, cname, srv, txt), and the names every lab has
(`<node>.<domain>`, `<node>.<network>.<domain>`, `<node>.<ifname>.<domain>`), whose
clashes with user records are refused. netlab.dns turns them into the zone.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TTL = 60
SPEC_KEYS = {"ttl", "records"}
RECORD_KINDS = ("a", "aaaa", "cname", "srv", "txt")
LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
TXT_TEXT = re.compile(r'^[ !#-\[\]-~]{0,255}$')       # printable ASCII without " and \


@dataclass
class Record:
    where: str
    name: str                           # fully qualified, no trailing dot
    kind: str                           # a | cname | srv | txt
    values: tuple = ()                  # a: addresses; cname: (target,); srv: (target, port,
                                        # priority, weight); txt: strings


@dataclass
class DnsSpec:
    enabled: bool = True
    ttl: int = DEFAULT_TTL
    records: list[Record] = field(default_factory=list)


# --- names --------------------------------------------------------------------

def qualify(name: str, domain: str) -> str | None:
    """A record name made absolute: relative to the lab domain, '@' for the domain
    itself, or absolute with a trailing dot (inside the domain). None if invalid."""
    name = name.strip().lower()
    if name == "@":
        return domain
    if name.endswith("."):
        full = name[:-1]
        if full != domain and not full.endswith("." + domain):
            return None
        relative = full[: -len(domain)].rstrip(".")
    else:
        full, relative = f"{name}.{domain}", name
    if relative and not all(LABEL.match(label) for label in relative.split(".")):
        return None
    return full if len(full) <= 253 else None


def iface_label(segment: str, ifname: str) -> str:
    """The per-interface label: the network's name, or the interface name on a link."""
    if not segment.startswith("link:"):
        return segment
    return ifname.lower().replace(".", "-")


def node_names(topo) -> set[str]:
    """Every name the lab's nodes give the zone (node and per-interface names)."""
    names = set()
    for node in topo.nodes.values():
        names.add(f"{node.name}.{topo.domain}")
        for att in node.attachments:
            names.add(f"{node.name}.{att.network}.{topo.domain}")
    for link in topo.links:
        for end in link.endpoints:
            names.add(f"{end.node}.{iface_label('link:', end.ifname)}.{topo.domain}")
    return names


# --- the dns: section -----------------------------------------------------------

def parse(topo, problems=None) -> DnsSpec:
    """The `dns:` section as a DnsSpec; problems (if given) get one located line each."""
    def bad(where: str, what: str) -> None:
        if problems is not None:
            problems.add(where, what)

    raw = topo.sections.get("dns")
    if raw is None:
        return DnsSpec()
    if raw is False:
        return DnsSpec(enabled=False)
    if not isinstance(raw, dict):
        bad("dns", "must be a mapping (ttl, records) or false")
        return DnsSpec()
    for key in raw:
        if key not in SPEC_KEYS:
            bad(f"dns.{key}", "unknown key (expected ttl or records)")
    spec = DnsSpec()
    ttl = raw.get("ttl", DEFAULT_TTL)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= 2**31 - 1:
        bad("dns.ttl", f"{ttl!r} must be a number of seconds (0 or more)")
    else:
        spec.ttl = ttl
    records = raw.get("records") or []
    if not isinstance(records, list):
        bad("dns.records", "must be a list of records")
        return spec
    for i, item in enumerate(records):
        record = _parse_record(f"dns.records[{i}]", item, topo.domain, bad)
        if record is not None:
            spec.records.append(record)
    _check_names(topo, spec, bad)
    return spec


def _parse_record(where: str, item: Any, domain: str, bad) -> Record | None:
    if not isinstance(item, dict):
        bad(where, "a record is a mapping like {name: api, cname: web}")
        return None
    kinds = [k for k in RECORD_KINDS if k in item]
    for key in item:
        if key != "name" and key not in RECORD_KINDS:
            bad(f"{where}.{key}", "unknown key (expected name and one of a, aaaa, cname, srv, txt)")
    if len(kinds) != 1:
        bad(where, "needs exactly one of a, aaaa, cname, srv, txt")
        return None
    kind = kinds[0]
    name = qualify(item["name"], domain) if isinstance(item.get("name"), str) else None
    if name is None:
        bad(f"{where}.name", f"{item.get('name')!r} must be a DNS name inside {domain} "
                             f"(relative like 'api' or '_http._tcp.web', '@', or ending in '.{domain}.')")
        return None
    value = item[kind]
    values = {"a": _a_values, "aaaa": _aaaa_values, "cname": _cname_values, "srv": _srv_values,
              "txt": _txt_values}[kind](f"{where}.{kind}", value, domain, bad)
    return None if values is None else Record(where, name, kind, values)


def _a_values(where, value, domain, bad, version: int = 4):
    items = value if isinstance(value, list) else [value]
    kind = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    out = []
    for item in items:
        try:
            out.append(str(kind(str(item))))
        except ValueError:
            bad(where, f"{item!r} is not an IPv{version} address")
            return None
    return tuple(out) if out else bad(where, "needs at least one address")


def _aaaa_values(where, value, domain, bad):
    return _a_values(where, value, domain, bad, version=6)


def _cname_values(where, value, domain, bad):
    target = qualify(value, domain) if isinstance(value, str) else None
    if target is None:
        bad(where, f"{value!r} must be a name inside {domain}")
        return None
    return (target,)


def _srv_values(where, value, domain, bad):
    if isinstance(value, str) and ":" in value:
        target, _, port = value.rpartition(":")
        value = {"target": target, "port": int(port) if port.isdigit() else port}
    if not isinstance(value, dict):
        bad(where, "must be {target: NAME, port: N} (priority, weight optional) or 'NAME:PORT'")
        return None
    for key in value:
        if key not in ("target", "port", "priority", "weight"):
            bad(f"{where}.{key}", "unknown key (expected target, port, priority, weight)")
            return None
    target = qualify(value.get("target"), domain) if isinstance(value.get("target"), str) else None
    if target is None:
        bad(f"{where}.target", f"{value.get('target')!r} must be a name inside {domain}")
        return None
    numbers = []
    for key, default in (("port", None), ("priority", 0), ("weight", 0)):
        n = value.get(key, default)
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 65535 or (key == "port" and n == 0):
            bad(f"{where}.{key}", f"{n!r} must be a number from {1 if key == 'port' else 0} to 65535")
            return None
        numbers.append(str(n))
    return (target, *numbers)


def _txt_values(where, value, domain, bad):
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, (str, int, float)) or isinstance(item, bool) or not TXT_TEXT.match(str(item)):
            bad(where, f"{item!r}: TXT strings are printable ASCII without \" or \\, at most 255 characters")
            return None
    return tuple(str(i) for i in items) or bad(where, "needs at least one string")


def _check_names(topo, spec: DnsSpec, bad) -> None:
    nodes = node_names(topo)
    cnames = {}
    others: dict[str, str] = {}
    for r in spec.records:
        if r.kind in ("a", "aaaa", "cname") and r.name in nodes:
            bad(f"{r.where}.name", f"{r.name} is already a node's name")
        elif r.kind == "cname":
            if r.name in cnames or r.name in others:
                bad(f"{r.where}.name", f"{r.name} already has records ({cnames.get(r.name) or others[r.name]}); "
                                       f"a CNAME must be the only record of its name")
            cnames.setdefault(r.name, r.where)
        else:
            if r.name in cnames:
                bad(f"{r.where}.name", f"{r.name} is a CNAME ({cnames[r.name]}); it cannot have other records")
            others.setdefault(r.name, r.where)
    known = nodes | set(cnames) | {r.name for r in spec.records if r.kind in ("a", "aaaa")}
    for r in spec.records:
        if r.kind in ("cname", "srv") and r.values[0] not in known:
            where = f"{r.where}.{r.kind}" + (".target" if r.kind == "srv" else "")
            bad(where, f"unknown name {r.values[0]!r} (not a node, nor an a, aaaa or cname record)")
