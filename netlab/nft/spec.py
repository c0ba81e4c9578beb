"""NAT and firewall: the `nat:` and `firewall:` sections of a node, validated and compiled
to one nftables ruleset per node (table `inet netlab`), carried by an NftRuleset step (compile.py).

Pure: no root, no kernel. This module owns the syntax of the two sections (every unknown
name reported with its location) and the validate hook; `syntax` holds the typed specs and
the selector/port syntax, `compile` the step, `render` writes the ruleset text, `kernel`
applies it atomically inside the node's namespace, `cli` is `netlab rules`.

    nat:
      masquerade: [wan]                         # or [{out: wan, from: lan}]
      snat: [{out: wan, to: 198.51.100.9, from: lan}]
      forward:                                  # DNAT port forwards
        - {port: 8080/tcp, to: "web:80"}        # to any of the node's own addresses
        - {port: 2222/tcp, to: "bastion:22", in: wan, from: 203.0.113.0/24}
        - {port: 8443/tcp, to: "[2001:db8::9]:443"}   # an IPv6 literal: IPv6 only (needs ipv6)
      hairpin: true                             # default: inside clients may use the outside address
      ipv6: false                               # true: NAT66, the rules above translate IPv6 too
    firewall:
      policy: drop                              # accept (default) | drop | reject, both chains
      input: accept                             # override for traffic to the node itself
      forward: drop                             # override for what the node routes
      established: true                         # accept established/related first (default)
      dns: true                                 # let DNS to the lab DNS servers through (default)
      counters: true                            # count every rule (default)
      log: false                                # log what the policy drops or rejects
      deny:   [{from: guest, to: lan}]          # drop; deny and reject come before allow
      reject: [{to: 10.99.0.0/16}]              # refuse (TCP reset / ICMP admin-prohibited)
      allow:
        - {from: lan}
        - {to: web, port: 80/tcp, dnat: true}   # only through a port forward
        - {from: [pc1, 10.0.0.0/8], port: [22, 8000-8100/tcp], chain: input}
        - {icmp: [echo-request], log: true, counter: false}
      raw: {forward: ["ip saddr 10.9.9.9 drop"]}   # nft rule text, placed before deny/allow
"""
from __future__ import annotations

import ipaddress
from typing import Any, Iterator

from ..core.errors import Problems
from ..core.model import Node, Topology
from .syntax import (
    CHAINS,
    Dnat,
    FirewallSpec,
    Names,
    NatSpec,
    NodeSpec,
    Ref,
    Rule,
    Snat,
    as_list,
    flag,
    ip_version,
    parse_services,
    type_name,
    unknown_keys,
)

POLICIES = ("accept", "drop", "reject")
ICMP_TYPES = ("echo-reply", "destination-unreachable", "source-quench", "redirect",
              "echo-request", "router-advertisement", "router-solicitation", "time-exceeded",
              "parameter-problem", "timestamp-request", "timestamp-reply", "info-request",
              "info-reply", "address-mask-request", "address-mask-reply")
NAT_KEYS = {"masquerade", "snat", "forward", "hairpin", "ipv6"}
FIREWALL_KEYS = {"policy", "input", "forward", "established", "dns", "counters", "log",
                 "allow", "deny", "reject", "raw"}
RULE_KEYS = {"from", "to", "port", "proto", "icmp", "in", "out", "chain", "log", "counter", "dnat"}
MASQ_KEYS = {"out", "from"}
SNAT_KEYS = {"out", "to", "from"}
FORWARD_KEYS = {"port", "to", "in", "from"}


# ---------------------------------------------------------------- firewall

def _policy(where: str, value: Any, default: str, problems: Problems) -> str:
    if value is None:
        return default
    if value not in POLICIES:
        problems.add(where, f"must be accept, drop or reject, not {value!r}")
        return default
    return value


def parse_rule(names: Names, where: str, raw: Any, action: str, router: bool,
               counters: bool, problems: Problems) -> Rule | None:
    if not isinstance(raw, dict):
        problems.add(where, f"must be a mapping like {{from: lan, port: 80/tcp}}, not {type_name(raw)}")
        return None
    unknown_keys(where, raw, RULE_KEYS, problems)
    before = len(problems.lines)
    icmp = ()
    if raw.get("icmp") is not None:
        icmp = tuple(str(t) for t in as_list(raw["icmp"]))
        for t in icmp:
            if t not in ICMP_TYPES:
                problems.add(f"{where}.icmp", f"unknown ICMP type '{t}' (e.g. echo-request, echo-reply, "
                                               f"destination-unreachable, time-exceeded)")
        if raw.get("port") is not None:
            problems.add(f"{where}.icmp", "an ICMP rule has no ports")
        if raw.get("proto") not in (None, "icmp"):
            problems.add(f"{where}.icmp", f"ICMP types need proto icmp, not {raw['proto']}")
    services = () if icmp else parse_services(where, raw.get("port"), raw.get("proto"), problems)
    chains = CHAINS if router else ("input",)
    if raw.get("chain") is not None:
        chain = raw["chain"]
        if chain not in CHAINS:
            problems.add(f"{where}.chain", f"must be input or forward, not {chain!r}")
        elif chain == "forward" and not router:
            problems.add(f"{where}.chain", f"node {names.node.name} does not forward (give it kind: router)")
        else:
            chains = (chain,)
    oif = names.ifaces(f"{where}.out", raw.get("out"), problems)
    if oif and "forward" not in chains:
        problems.add(f"{where}.out", "only forwarded traffic has an outgoing interface here (chain: forward)")
    rule = Rule(where=where.split(".", 2)[2], action=action,
                src=names.refs(f"{where}.from", raw.get("from"), problems),
                dst=names.refs(f"{where}.to", raw.get("to"), problems),
                services=services, icmp=icmp,
                iif=names.ifaces(f"{where}.in", raw.get("in"), problems), oif=oif,
                chains=chains if not oif else ("forward",),
                counter=flag(f"{where}.counter", raw.get("counter"), counters, problems),
                log=flag(f"{where}.log", raw.get("log"), False, problems),
                dnat=flag(f"{where}.dnat", raw.get("dnat"), False, problems))
    return rule if len(problems.lines) == before else None


def _raw_rules(where: str, value: Any, router: bool, problems: Problems) -> dict[str, list[str]]:
    if value is None:
        return {}
    if isinstance(value, list):
        value = {"forward" if router else "input": value}
    if not isinstance(value, dict):
        problems.add(where, f"must map chains to nft rule lines, like {{forward: [\"ip saddr 10.9.9.9 drop\"]}}")
        return {}
    result = {}
    for chain, lines in value.items():
        if chain not in CHAINS or (chain == "forward" and not router):
            problems.add(f"{where}.{chain}", f"unknown chain (expected {'input or forward' if router else 'input'})")
            continue
        if not isinstance(lines, list) or not all(isinstance(x, str) and x.strip() and "\n" not in x
                                                  and "}" not in x for x in lines):
            problems.add(f"{where}.{chain}", "must be a list of single-line nft rules")
            continue
        result[chain] = [x.strip() for x in lines]
    return result


def parse_firewall(names: Names, where: str, raw: Any, router: bool, problems: Problems) -> FirewallSpec | None:
    if not isinstance(raw, dict):
        problems.add(where, f"must be a mapping with policy and allow/deny rules, not {type_name(raw)}")
        return None
    unknown_keys(where, raw, FIREWALL_KEYS, problems)
    default = _policy(f"{where}.policy", raw.get("policy"), "accept", problems)
    policies = {"input": _policy(f"{where}.input", raw.get("input"), default, problems)}
    if router:
        policies["forward"] = _policy(f"{where}.forward", raw.get("forward"), default, problems)
    elif raw.get("forward") is not None:
        problems.add(f"{where}.forward", f"node {names.node.name} does not forward (give it kind: router)")
    counters = flag(f"{where}.counters", raw.get("counters"), True, problems)
    rules = []
    for section, action in (("deny", "drop"), ("reject", "reject"), ("allow", "accept")):
        items = raw.get(section)
        if items is None:
            continue
        if not isinstance(items, list):
            problems.add(f"{where}.{section}", f"must be a list of rules, not {type_name(items)}")
            continue
        for i, item in enumerate(items):
            rule = parse_rule(names, f"{where}.{section}[{i}]", item, action, router, counters, problems)
            if rule is not None:
                rules.append(rule)
    return FirewallSpec(policies=policies,
                        established=flag(f"{where}.established", raw.get("established"), True, problems),
                        dns=flag(f"{where}.dns", raw.get("dns"), True, problems),
                        counters=counters,
                        log=flag(f"{where}.log", raw.get("log"), False, problems),
                        rules=rules, raw=_raw_rules(f"{where}.raw", raw.get("raw"), router, problems))


# ---------------------------------------------------------------- nat

NAT66 = "nat.ipv6 is not set (add ipv6: true to nat for NAT66)"


def _items(value: Any) -> list:
    """A list field that may also be written as one item."""
    return [] if value is None else as_list(value)


EXAMPLES = {"snat": "{out: wan, to: 198.51.100.9}", "forward": '{port: 8080/tcp, to: "web:80"}'}


def _mappings(where: str, raw: dict, key: str, allowed: set[str],
              problems: Problems) -> Iterator[tuple[int, str, dict]]:
    """The items of a list field whose items are mappings: (index, location, item)."""
    for i, item in enumerate(_items(raw.get(key))):
        at = f"{where}.{key}[{i}]"
        if not isinstance(item, dict):
            problems.add(at, f"must be a mapping like {EXAMPLES[key]}")
            continue
        unknown_keys(at, item, allowed, problems)
        yield i, at, item


def _snat_to(where: str, value: Any, ipv6: bool, problems: Problems) -> str | None:
    """An snat `to:`: an IPv4 address, or an IPv6 one when NAT66 is on."""
    version = ip_version(str(value))
    if version is None:
        problems.add(where, f"must be the {'IPv4 or IPv6' if ipv6 else 'IPv4'} address to translate to, "
                            f"not {value!r}")
        return None
    if version == 6 and not ipv6:
        problems.add(where, f"{value} is IPv6 but {NAT66}")
        return None
    if not _unicast(ipaddress.ip_address(str(value))):
        problems.add(where, f"{value} is not a unicast address to translate to")
        return None
    return str(ipaddress.ip_address(str(value)))


def _unicast(address) -> bool:
    return not (address.is_unspecified or address.is_multicast or address.is_loopback)


def _out(names: Names, where: str, item: dict, problems: Problems) -> str | None:
    return names.iface(f"{where}.out", item["out"], problems) if item.get("out") is not None else None


def parse_snat(names: Names, where: str, raw: dict, ipv6: bool, problems: Problems) -> list[Snat]:
    found = []
    for i, item in enumerate(_items(raw.get("masquerade"))):
        at = f"{where}.masquerade[{i}]"
        if isinstance(item, dict):
            unknown_keys(at, item, MASQ_KEYS, problems)
            out = _out(names, at, item, problems)
            src = names.refs(f"{at}.from", item.get("from"), problems)
        else:
            out, src = names.iface(at, item, problems), ()
            if out is None:
                continue
        six = ipv6 and (out is None or names.iface_has(out, 6))    # needs an address to use
        found.append(Snat(f"nat.masquerade[{i}]", out, src, None, (4, 6) if six else (4,)))
    for i, at, item in _mappings(where, raw, "snat", SNAT_KEYS, problems):
        to = _snat_to(f"{at}.to", item.get("to"), ipv6, problems)
        if to is None:
            continue
        out, version = _out(names, at, item, problems), ip_version(to)
        if version == 6 and out is not None and not names.iface_has(out, 6):
            problems.add(f"{at}.to", f"{to} is IPv6 but node {names.node.name} has no IPv6 address on {item['out']}")
            continue
        found.append(Snat(f"nat.snat[{i}]", out, names.refs(f"{at}.from", item.get("from"), problems),
                          to, (version,)))
    return found


def _is_ipv6(text: str) -> bool:
    """An IPv6 address or prefix written without brackets (so without a port)."""
    try:
        return "%" not in text and ipaddress.ip_network(text, strict=False).version == 6
    except ValueError:
        return False


def _split_target(value: str) -> tuple[str, str, bool] | None:
    """`web:80`, `web`, `10.20.0.2:80`, `[2001:db8::9]:80`, `2001:db8::9` ->
    (host, port text or '', bracketed); None if the brackets are unbalanced."""
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or (rest and (not rest.startswith(":") or rest == ":")):
            return None
        return host, rest[1:], True
    if _is_ipv6(value):
        return value, "", False
    host, sep, port = value.rpartition(":")
    return (host, port, False) if sep else (value, "", False)


def _target(names: Names, where: str, value: Any, ipv6: bool,
            problems: Problems) -> tuple[Ref | None, int | None]:
    """The `to:` of a port forward -> (where to, which port or None to keep it)."""
    parts = _split_target(value) if isinstance(value, str) else None
    if parts is None:
        problems.add(where, "must be NODE:PORT, ADDRESS:PORT or [IPV6]:PORT like web:80, not "
                            + (repr(value) if isinstance(value, str) else type_name(value)))
        return None, None
    host, port, bracketed = parts
    number = None
    if port:
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            problems.add(where, f"'{port}' is not a port (1 to 65535)")
            return None, None
        number = int(port)
    if bracketed and ip_version(host) != 6:
        problems.add(where, f"'[{host}]': only an IPv6 address goes in brackets")
        return None, None
    ref = names.ref(where, host, problems, prefer="node")
    if ref is None:
        return None, None
    if ref.kind == "net":
        problems.add(where, f"'{host}' is a network; forward to a node or an address")
        return None, None
    if ref.kind == "cidr":
        net = ipaddress.ip_network(ref.value)
        if net.prefixlen != net.max_prefixlen:
            problems.add(where, f"'{host}' is not one address; forward to a node or a single address")
            return None, None
        if not _unicast(net.network_address):
            problems.add(where, f"'{host}' is not a unicast address a server could have")
            return None, None
        if net.version == 6 and not ipv6:
            problems.add(where, f"{host} is IPv6 but {NAT66}")
            return None, None
    if ref.kind == "node" and not ipv6 and not names.has_address(ref.value, 4):
        problems.add(where, f"node '{host}' has no IPv4 address and {NAT66}")
        return None, None
    return ref, number


def _forward_versions(names: Names, target: Ref, iif: str | None, ipv6: bool) -> tuple[int, ...]:
    """IPv4 as before; IPv6 too with NAT66 where the target has an IPv6 address and the
    forward arrives on one (an address literal is its own version)."""
    if target.kind == "cidr":
        version = ipaddress.ip_network(target.value).version
        return (version,) if version == 4 or iif is None or names.iface_has(iif, 6) else ()
    six = ipv6 and names.has_address(target.value, 6) and (iif is None or names.iface_has(iif, 6))
    return tuple(v for v, ok in ((4, names.has_address(target.value, 4)), (6, six)) if ok)


def parse_dnat(names: Names, where: str, raw: dict, router: bool, ipv6: bool,
               problems: Problems) -> list[Dnat]:
    found = []
    for i, at, item in _mappings(where, raw, "forward", FORWARD_KEYS, problems):
        before = len(problems.lines)
        if item.get("port") is None:
            problems.add(f"{at}.port", "required: the port that arrives, like 8080/tcp")
            continue
        services = parse_services(at, item["port"], None, problems)
        if len(services) != 1 or len(services[0].ports) != 1:
            if len(problems.lines) == before:
                problems.add(f"{at}.port", "give one port or range with one protocol (or none for tcp and udp)")
            continue
        target, port = _target(names, f"{at}.to", item.get("to"), ipv6, problems)
        if target is None:
            continue
        if port is not None and "-" in services[0].ports[0]:
            problems.add(f"{at}.to", "a port range keeps its ports; leave out the port after the address")
            continue
        if not router and not (target.kind == "node" and target.value == names.node.name):
            problems.add(at, f"node {names.node.name} does not forward (give it kind: router)")
            continue
        iif = names.iface(f"{at}.in", item["in"], problems) if item.get("in") is not None else None
        src = names.refs(f"{at}.from", item.get("from"), problems)
        if len(problems.lines) != before:
            continue
        versions = _forward_versions(names, target, iif, ipv6)
        if not versions:
            problems.add(f"{at}.in", f"node {names.node.name} has no IPv6 address on {item['in']} "
                                     f"for an IPv6 port forward to arrive on")
            continue
        found.append(Dnat(f"nat.forward[{i}]", services[0], target, port, iif, src, versions))
    return found


def _check_nat66(names: Names, where: str, nat: NatSpec, problems: Problems) -> None:
    """`ipv6: true` must be able to do something: the node needs IPv6, and some rule
    must have an IPv6 interface or target."""
    if not nat.ipv6:
        return
    if not names.has_address(names.node.name, 6):
        problems.add(f"{where}.ipv6", f"node {names.node.name} has no IPv6 address "
                                      f"(give one of its networks or links a subnet6)")
    elif (nat.snat or nat.dnat) and not any(6 in r.versions for r in [*nat.snat, *nat.dnat]):
        problems.add(f"{where}.ipv6", "no masquerade, snat or forward here can apply to IPv6 "
                                      "(their interfaces and targets have no IPv6 addresses)")


def parse_nat(names: Names, where: str, raw: Any, router: bool, problems: Problems) -> NatSpec | None:
    if not isinstance(raw, dict):
        problems.add(where, f"must be a mapping with masquerade, snat or forward, not {type_name(raw)}")
        return None
    unknown_keys(where, raw, NAT_KEYS, problems)
    ipv6 = flag(f"{where}.ipv6", raw.get("ipv6"), False, problems)
    nat = NatSpec(snat=parse_snat(names, where, raw, ipv6, problems),
                  dnat=parse_dnat(names, where, raw, router, ipv6, problems),
                  hairpin=flag(f"{where}.hairpin", raw.get("hairpin"), True, problems), ipv6=ipv6)
    _check_nat66(names, where, nat, problems)
    return nat


def parse_node(topo: Topology, node: Node, problems: Problems) -> NodeSpec | None:
    nat, firewall = node.sections.get("nat"), node.sections.get("firewall")
    if nat is None and firewall is None:
        return None
    names = Names(topo, node)
    spec = NodeSpec(node.name, node.is_router)
    if nat is not None:
        spec.nat = parse_nat(names, f"nodes.{node.name}.nat", nat, node.is_router, problems)
    if firewall is not None:
        spec.firewall = parse_firewall(names, f"nodes.{node.name}.firewall", firewall,
                                       node.is_router, problems)
    return spec


# ---------------------------------------------------------------- the hook

def validate(topo: Topology, problems: Problems) -> dict[str, NodeSpec]:
    """Every node's nat and firewall, parsed once: compile renders these."""
    specs = {}
    for node in topo.nodes.values():
        spec = parse_node(topo, node, problems)
        if spec is not None:
            specs[node.name] = spec
    return specs
