"""The `checks:` section: each entry parsed into a typed CheckSpec, or located problems.

    checks:
      - {arp:  {from: pc1, to: pc2}}                      # L2 neighbour (optional mac:)
      - {ping: {from: pc1, to: isp, max_loss: 20%, max_rtt: 50ms, count: 20}}
      - {path: {from: pc1, to: isp, via: [gw]}}
      - {mtu:  {from: a, to: b, size: 1450}}
      - {tcp:  {from: pc1, to: "isp:9000"}}
      - {udp:  {from: pc1, to: "isp:7"}}
      - {dns:  {from: pc1, name: web, expect: 10.20.0.2}}  # or [list], or nxdomain
      - {dns:  {from: pc1, name: _rdzv._tcp, type: SRV, expect: "master:29500"}}
      - {http: {from: pc1, url: "http://isp/", expect: 200, body: "hello"}}
      - {nat:  {from: pc1, to: "isp:9000", seen_as: 198.51.100.2}}
    Every type also takes `expect: blocked` and `timeout:` (seconds per attempt), and
    `ip: 6` (or `ip: 4`) to pick the family (for dns: of the server it asks);
    an IPv6 literal target (or seen_as), or a source or target node with only IPv6
    addresses, implies IPv6. Over IPv6
    `arp` is NDP (Neighbor Solicitation and Advertisement), `path` counts the hop limit and
    `mtu` finds the largest packet that gets through unfragmented (Packet Too Big names the
    router); `mtu` sizes are IP packet sizes, headers included, in both families.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..core.errors import Problems
from .labinfo import is_ip, is_ip6

LAYERS = {"arp": "L2", "ping": "L3", "path": "L3", "mtu": "L3", "tcp": "L4", "udp": "L4",
          "dns": "L7", "http": "L7", "nat": "NAT"}
LAYER_ORDER = ["L2", "L3", "L4", "L7", "NAT"]
COMMON = {"from", "expect", "timeout"}
FIELDS = {
    "arp": {"to", "mac", "ip"},
    "ping": {"to", "count", "max_loss", "max_rtt", "ip"},
    "path": {"to", "via", "ip"},
    "mtu": {"to", "size", "ip"},
    "tcp": {"to", "ip"},
    "udp": {"to", "ip"},
    "dns": {"name", "server", "type", "ip"},
    "http": {"url", "body", "ip"},
    "nat": {"to", "seen_as", "ip"},
}
REQUIRED = {"arp": ["to"], "ping": ["to"], "path": ["to", "via"], "mtu": ["to", "size"],
            "tcp": ["to"], "udp": ["to"], "dns": ["name"], "http": ["url"],
            "nat": ["to", "seen_as"]}
MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
NAME = re.compile(r"^([A-Za-z0-9_]([A-Za-z0-9_.-]{0,251}[A-Za-z0-9])?\.?|@)$")
DNS_TYPES = ("A", "AAAA", "CNAME", "SRV", "TXT", "MX", "PTR", "NS")


@dataclass
class CheckSpec:
    kind: str
    where: str
    src: str
    dst: str | None = None               # node name or IP address (IPv6 in canonical form)
    port: int | None = None
    proto: str = "tcp"
    blocked: bool = False                # expect: blocked
    expect: Any = None                   # status (http), addresses or 'nxdomain' (dns)
    timeout: float = 1.0
    opts: dict[str, Any] = field(default_factory=dict)

    @property
    def layer(self) -> str:
        return LAYERS[self.kind]

    @property
    def label(self) -> str:
        """One short line naming the check, for tables and junit."""
        target = self.dst or ""
        if self.port and ":" in target:
            target = f"[{target}]"
        if self.port:
            target += f":{self.port}" + ("/udp" if self.kind == "nat" and self.proto == "udp" else "")
        if self.kind == "dns":
            target = self.opts["name"]
        if self.kind == "http":
            target = self.opts["url"]
        text = f"{self.kind} {self.src} -> {target}"
        if self.kind == "path":
            text += " via " + (",".join(self.opts["via"]) or "(direct)")
        if self.kind == "mtu":
            text += f" size {self.opts['size']}"
        if self.kind == "nat":
            text += f" seen as {self.opts['seen_as']}"
        if self.opts.get("ip") and ":" not in (self.dst or ""):
            text += f" over IPv{self.opts['ip']}"
        if self.blocked:
            text += " (blocked)"
        return text


def percent(value: Any) -> float | None:
    """'20%', 20 or 20.5 -> 0.2 (a fraction); None if not a percentage."""
    text = str(value).strip()
    if text.endswith("%"):
        text = text[:-1]
    try:
        number = float(text)
    except ValueError:
        return None
    return number / 100 if 0 <= number <= 100 else None


def millis(value: Any) -> float | None:
    """'50ms', '1s', 50 (milliseconds) -> milliseconds."""
    text = str(value).strip()
    scale = 1.0
    if text.endswith("ms"):
        text = text[:-2]
    elif text.endswith("s"):
        text, scale = text[:-1], 1000.0
    try:
        number = float(text) * scale
    except ValueError:
        return None
    return number if number > 0 else None


def split_target(text: Any) -> tuple[str, int | None, str | None]:
    """'isp:9000/udp' -> ('isp', 9000, 'udp'); raises ValueError with a reason."""
    if not isinstance(text, str):
        raise ValueError(f"must be \"node:port\", not {text!r}")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]:")
    else:
        host, sep, rest = text.rpartition(":")
    if not sep:
        raise ValueError(f"'{text}' needs a port, like \"{text}:80\"")
    port_text, _, proto = rest.partition("/")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"'{port_text}' is not a port (1-65535)")
    if proto and proto not in ("tcp", "udp"):
        raise ValueError(f"'{proto}' is not tcp or udp")
    return host, int(port_text), proto or None


def parse_checks(raw: list[Any], nodes: set[str], problems: Problems,
                 base: str = "checks") -> list[CheckSpec]:
    specs = []
    for i, entry in enumerate(raw or []):
        where = f"{base}[{i}]"
        if not isinstance(entry, dict) or len(entry) != 1:
            problems.add(where, "a check is one mapping like {ping: {from: a, to: b}}")
            continue
        (kind, body), = entry.items()
        if kind not in FIELDS:
            problems.add(f"{where}.{kind}", f"unknown check type (expected one of: {', '.join(FIELDS)})")
            continue
        where = f"{where}.{kind}"
        if not isinstance(body, dict):
            problems.add(where, "must be a mapping with from: and the check's fields")
            continue
        spec = _parse_one(kind, body, where, nodes, problems)
        if spec is not None:
            specs.append(spec)
    return specs


def _parse_one(kind: str, body: dict, where: str, nodes: set[str], problems: Problems) -> CheckSpec | None:
    before = len(problems.lines)
    allowed = COMMON | FIELDS[kind]
    for key in body:
        if key not in allowed:
            problems.add(f"{where}.{key}", f"unknown field (expected one of: {', '.join(sorted(allowed))})")
    for key in ["from", *REQUIRED[kind]]:
        if body.get(key) is None:
            problems.add(f"{where}.{key}", "required")
    src = body.get("from")
    if src is not None and (not isinstance(src, str) or src not in nodes):
        problems.add(f"{where}.from", f"unknown node {src!r}")
    spec = CheckSpec(kind=kind, where=where, src=str(src))
    _parse_expect(spec, body.get("expect"), where, problems)
    if "timeout" in body:
        t = body["timeout"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t <= 60:
            problems.add(f"{where}.timeout", f"must be seconds from 0 to 60, not {t!r}")
        else:
            spec.timeout = float(t)
    parser = globals()[f"_parse_{kind}"]
    parser(spec, body, where, nodes, problems)
    if "ip" in body:
        if body["ip"] not in (4, 6):
            problems.add(f"{where}.ip", f"must be 4 or 6, not {body['ip']!r}")
        spec.opts["ip"] = body["ip"]
    return spec if len(problems.lines) == before else None


def _parse_expect(spec: CheckSpec, expect: Any, where: str, problems: Problems) -> None:
    if expect is None or expect in ("pass", "reachable", "ok"):
        return
    if expect == "blocked":
        spec.blocked = True
        return
    if spec.kind == "http" and isinstance(expect, int) and 100 <= expect <= 599:
        spec.expect = expect
        return
    if spec.kind == "dns":
        spec.expect = expect                 # checked with the record type in _parse_dns
        return
    extra = ", an HTTP status" if spec.kind == "http" else ""
    problems.add(f"{where}.expect", f"must be reachable or blocked{extra}, not {expect!r}")


def _node_or_ip(value: Any, where: str, nodes: set[str], problems: Problems) -> str | None:
    """A node name, or an IP address in canonical form (as the kernel reports it)."""
    if value is None:
        return None
    if isinstance(value, str) and value in nodes:
        return value
    if isinstance(value, str) and (is_ip(value) or is_ip6(value)):
        return str(ipaddress.ip_address(value))
    problems.add(where, f"unknown node {value!r}")
    return None


def _parse_arp(spec, body, where, nodes, problems):
    spec.dst = _node_or_ip(body.get("to"), f"{where}.to", nodes, problems)
    mac = body.get("mac")
    if mac is not None and not (isinstance(mac, str) and MAC.match(mac)):
        problems.add(f"{where}.mac", f"{mac!r} is not a MAC address like 02:00:00:00:00:01")
    spec.opts["mac"] = mac.lower() if isinstance(mac, str) else None


def _parse_ping(spec, body, where, nodes, problems):
    spec.dst = _node_or_ip(body.get("to"), f"{where}.to", nodes, problems)
    strict = "max_loss" in body or "max_rtt" in body
    count = body.get("count", 20 if strict else 3)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1000:
        problems.add(f"{where}.count", f"must be a whole number from 1 to 1000, not {count!r}")
    spec.opts["count"] = count
    spec.opts["max_loss"] = None
    if "max_loss" in body:
        spec.opts["max_loss"] = percent(body["max_loss"])
        if spec.opts["max_loss"] is None:
            problems.add(f"{where}.max_loss", f"must be a percentage like 20%, not {body['max_loss']!r}")
    spec.opts["max_rtt"] = None
    if "max_rtt" in body:
        spec.opts["max_rtt"] = millis(body["max_rtt"])
        if spec.opts["max_rtt"] is None:
            problems.add(f"{where}.max_rtt", f"must be a time like 50ms or 1s, not {body['max_rtt']!r}")


def _parse_path(spec, body, where, nodes, problems):
    spec.dst = _node_or_ip(body.get("to"), f"{where}.to", nodes, problems)
    via = body.get("via")
    if via is None:
        return
    if isinstance(via, str):
        via = [via]
    if not isinstance(via, list):
        problems.add(f"{where}.via", f"must be a list of nodes, not {via!r}")
        return
    for j, hop in enumerate(via):
        _node_or_ip(hop, f"{where}.via[{j}]", nodes, problems)
    spec.opts["via"] = [str(h) for h in via]


def _parse_mtu(spec, body, where, nodes, problems):
    spec.dst = _node_or_ip(body.get("to"), f"{where}.to", nodes, problems)
    size = body.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or not 68 <= size <= 65535):
        problems.add(f"{where}.size", f"must be a packet size from 68 to 65535, not {size!r}")
    spec.opts["size"] = size


def _parse_port_target(spec, body, where, nodes, problems, allow_proto: bool):
    if body.get("to") is None:
        return
    try:
        host, port, proto = split_target(body["to"])
    except ValueError as e:
        problems.add(f"{where}.to", str(e))
        return
    if proto and not allow_proto:
        problems.add(f"{where}.to", f"the check type already says the protocol; drop '/{proto}'")
    spec.dst = _node_or_ip(host, f"{where}.to", nodes, problems)
    spec.port = port
    spec.proto = proto or (spec.kind if spec.kind in ("tcp", "udp") else "tcp")


def _parse_tcp(spec, body, where, nodes, problems):
    _parse_port_target(spec, body, where, nodes, problems, allow_proto=False)


_parse_udp = _parse_tcp


def _parse_nat(spec, body, where, nodes, problems):
    _parse_port_target(spec, body, where, nodes, problems, allow_proto=True)
    seen = body.get("seen_as")
    if seen is not None:
        spec.opts["seen_as"] = _node_or_ip(str(seen), f"{where}.seen_as", nodes, problems)


def _parse_dns(spec, body, where, nodes, problems):
    name = body.get("name")
    if name is not None and not (isinstance(name, str) and (NAME.match(name) or is_ip(name) or is_ip6(name))):
        problems.add(f"{where}.name", f"{name!r} is not a DNS name (or an address, for PTR)")
    spec.opts["name"] = name
    spec.opts["server"] = _node_or_ip(body.get("server"), f"{where}.server", nodes, problems)
    rdtype = str(body.get("type", "A")).upper()
    if rdtype not in DNS_TYPES:
        problems.add(f"{where}.type", f"{body.get('type')!r} is not one of {', '.join(DNS_TYPES)}")
    spec.opts["type"] = rdtype
    expect = spec.expect
    if expect is None or expect == "nxdomain":
        return
    values = expect if isinstance(expect, list) else [expect]
    if rdtype == "A":
        if values and all(isinstance(v, str) and is_ip(v) for v in values):
            spec.expect = sorted(values)
            return
        problems.add(f"{where}.expect", f"must be an IPv4 address, a list of them, nxdomain or blocked, not {expect!r}")
        return
    if values and all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in values):
        spec.expect = [str(v) for v in values]
        return
    problems.add(f"{where}.expect", f"must be the {rdtype} record's value (or a list), nxdomain or blocked, not {expect!r}")


def _parse_http(spec, body, where, nodes, problems):
    url = body.get("url")
    body_text = body.get("body")
    if body_text is not None and not isinstance(body_text, str):
        problems.add(f"{where}.body", "must be a string the response body contains")
    spec.opts["body"] = body_text
    spec.opts["url"] = url
    if url is None:
        return
    parts = urlsplit(str(url))
    if parts.scheme != "http" or not parts.hostname:
        problems.add(f"{where}.url", f"'{url}' must be an http:// URL naming a node or an address")
        return
    host = parts.hostname
    spec.dst = _node_or_ip(host, f"{where}.url", nodes, problems)
    try:
        spec.port = parts.port or 80
    except ValueError:
        problems.add(f"{where}.url", f"'{url}' has a bad port")
    spec.opts["path"] = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    spec.opts["host"] = host
    if spec.expect is None and not spec.blocked:
        spec.expect = 200


def validate(topo, problems) -> None:
    """Hook: the `checks:` section, with located problems."""
    parse_checks(topo.sections.get("checks") or [], set(topo.nodes), problems)
