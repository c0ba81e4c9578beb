"""Render a node's NAT and firewall spec (from `nft`) as one nftables table, `inet netlab`.

Pure text generation: names are resolved to addresses through the compiler's output, so
the ruleset changes exactly when the addresses or rules it depends on change. Every rule
carries a comment naming where it came from in the file (`firewall.allow[0]`), which is
how `netlab rules` and `netlab status` tie packet counters back to the topology.
"""
from __future__ import annotations

import ipaddress

from .syntax import Dnat, FirewallSpec, NatSpec, NodeSpec, Ref, Rule, Service, Snat

TABLE = "netlab"
REJECT_TCP = "reject with tcp reset"
REJECT_OTHER = "reject with icmpx type admin-prohibited"


def _set(values: list[str]) -> str:
    return values[0] if len(values) == 1 else "{ " + ", ".join(values) + " }"


def _quoted(names: tuple[str, ...]) -> str:
    return _set([f'"{n}"' for n in names])


def _ip(version: int | None) -> str:
    """The nft address family keyword of an IP version."""
    return "ip6" if version == 6 else "ip"


def _family(version: int | None) -> str:
    """The comment suffix of an IPv6 line: `firewall.allow[0]/ip6`, `nat.masquerade[0]/ip6`."""
    return "/ip6" if version == 6 else ""


def _address(iface, version: int):
    return iface.address if version == 4 else getattr(iface, "address6", None)


class Resolver:
    """Turns selectors into address sets using the compiled topology (IPv4 and IPv6)."""

    def __init__(self, compiled, nat66: bool = False):
        self.compiled = compiled
        self.nat66 = nat66      # the node translates IPv6 too: `dnat: true` rules cover it
        self.dual = any(getattr(i, "address6", None) is not None
                        for ifaces in compiled.ifaces.values() for i in ifaces)

    def networks(self, ref: Ref) -> list:
        if ref.kind == "cidr":
            return [ipaddress.ip_network(ref.value)]
        if ref.kind == "net":
            net = self.compiled.topo.networks[ref.value]
            return [n for n in (net.subnet, getattr(net, "subnet6", None)) if n is not None]
        return [ipaddress.ip_network(address) for i in self.compiled.ifaces.get(ref.value, [])
                for address in (_address(i, 4), _address(i, 6)) if address is not None]

    def addresses(self, refs: tuple[Ref, ...], version: int = 4) -> str | None:
        """An nft address or anonymous set of one IP version (overlaps merged, as nft
        demands); None = any (no selector), '' = the selector has none of this version."""
        if not refs:
            return None
        nets = [n for r in refs for n in self.networks(r) if n.version == version]
        merged = ipaddress.collapse_addresses(nets)
        return _set([str(n.network_address) if n.prefixlen == n.max_prefixlen else str(n)
                     for n in merged]) if nets else ""

    def has_v6(self, node: str) -> bool:
        return any(getattr(i, "address6", None) is not None for i in self.compiled.ifaces.get(node, []))

    def own(self, node: str, ifname: str | None = None, version: int = 4) -> str | None:
        """The node's addresses of one IP version (on one interface), as an nft set."""
        found = [str(_address(i, version)) for i in self.compiled.ifaces.get(node, [])
                 if _address(i, version) is not None and (ifname is None or i.ifname == ifname)]
        return _set(found) if found else None

    def subnet_of(self, address: str) -> str | None:
        version = ipaddress.ip_address(address).version
        for ifaces in self.compiled.ifaces.values():
            for i in ifaces:
                if _address(i, version) is not None and str(_address(i, version)) == address:
                    return str(i.subnet if version == 4 else i.subnet6)
        return None

    def concerns(self, rule: Rule, node: str, chain: str) -> bool:
        """False when a rule's destination cannot match in this chain: only others'
        addresses in input (traffic to the node), only the node's own in forward."""
        if not rule.dst:
            return True
        own = self.networks(Ref("node", node))
        dst = [n for r in rule.dst for n in self.networks(r)]
        def inside(n, o) -> bool:
            return n.version == o.version and n.subnet_of(o)
        if chain == "input":
            return any(n.version == o.version and n.overlaps(o) for n in dst for o in own)
        return not all(any(inside(n, o) for o in own) for n in dst)

    def single(self, ref: Ref, version: int = 4) -> str:
        """A port forward's target: its (first) address of this IP version."""
        return str(next(n for n in self.networks(ref) if n.version == version).network_address)


def service_match(service: Service) -> str:
    if len(service.protos) == 1:
        proto = service.protos[0]
        return f"{proto} dport {_set(list(service.ports))}" if service.ports else f"meta l4proto {proto}"
    protos = _set(list(service.protos))
    if service.ports:
        return f"meta l4proto {protos} th dport {_set(list(service.ports))}"
    return f"meta l4proto {protos}"


def _line(parts: list[str | None], comment: str) -> str:
    return " ".join(p for p in parts if p) + f' comment "{comment}"'


# ---------------------------------------------------------------- firewall

def _reject_variants(rule: Rule) -> list[tuple[Service | None, str, str]]:
    """(service, reject verdict, comment suffix): TCP gets a reset, the rest ICMP."""
    if rule.icmp:
        return [(None, REJECT_OTHER, "")]
    if not rule.services:
        return [(Service(("tcp",)), REJECT_TCP, "/tcp"), (None, REJECT_OTHER, "")]
    out = []
    for s in rule.services:
        if "tcp" in s.protos and len(s.protos) > 1:
            out.append((Service(("tcp",), s.ports), REJECT_TCP, "/tcp"))
            rest = tuple(p for p in s.protos if p != "tcp")
            out.append((Service(rest, s.ports), REJECT_OTHER, "/" + "+".join(rest)))
        else:
            out.append((s, REJECT_TCP if s.protos == ("tcp",) else REJECT_OTHER, "/" + "+".join(s.protos)))
    return out


ICMP6_TYPES = {"echo-request", "echo-reply", "destination-unreachable", "time-exceeded",
               "parameter-problem"}      # ICMP types with the same name in ICMPv6


def _families(rule: Rule, res: Resolver) -> list[tuple[int | None, str | None, str | None]]:
    """(IP version or None for both, source set, destination set) per line to write.
    ICMP names its family; address selectors write one line per version they have."""
    icmp = bool(rule.icmp) or any("icmp" in s.protos for s in rule.services)
    if not rule.src and not rule.dst:
        if not icmp:
            return [(None, None, None)]
        return [(4, None, None)] + ([(6, None, None)] if res.dual else [])
    found = []
    for version in ((4, 6) if res.nat66 or not rule.dnat else (4,)):   # IPv6 is forwarded with NAT66
        src, dst = res.addresses(rule.src, version), res.addresses(rule.dst, version)
        if src != "" and dst != "":
            found.append((version, src, dst))
    return found


def _v6_service(s: Service | None) -> Service | None:
    if s is None or "icmp" not in s.protos:
        return s
    return Service(tuple("ipv6-icmp" for p in s.protos if p == "icmp") or s.protos, s.ports)


def rule_lines(rule: Rule, node: str, chain: str, res: Resolver) -> list[str]:
    if rule.action == "reject":
        variants = _reject_variants(rule)
    else:
        variants = [(s, rule.action, "/" + "+".join(s.protos) if len(rule.services) > 1 else "")
                    for s in rule.services] or [(None, rule.action, "")]
    tail = ["counter" if rule.counter else None,
            f'log prefix "netlab {node} {chain} {rule.where}: "' if rule.log else None]
    lines = []
    for version, src, dst in _families(rule, res):
        ip = _ip(version)
        icmp = tuple(t for t in rule.icmp if version != 6 or t in ICMP6_TYPES)
        if rule.icmp and not icmp:
            continue
        head = [f"iifname {_quoted(rule.iif)}" if rule.iif else None,
                f"oifname {_quoted(rule.oif)}" if rule.oif else None,
                f"{ip} saddr {src}" if src else None, f"{ip} daddr {dst}" if dst else None,
                "ct status dnat" if rule.dnat else None,
                f"{'icmpv6' if version == 6 else 'icmp'} type {_set(list(icmp))}" if icmp else None]
        family = _family(version)
        for s, verdict, suffix in variants:
            s = _v6_service(s) if version == 6 else s
            lines.append(_line(head + [service_match(s) if s else None] + tail + [verdict],
                               rule.where + suffix + family))
    return lines


def chain_lines(fw: FirewallSpec, node: str, chain: str, res: Resolver, dns: list[str]) -> list[str]:
    policy = fw.policies[chain]
    lines = [f"type filter hook {chain} priority filter; policy {'accept' if policy == 'accept' else 'drop'};"]
    count = "counter" if fw.counters else None
    if fw.established:
        lines.append(_line(["ct state established,related", count, "accept"], "firewall.established"))
    if chain == "input" and policy != "accept":
        lines.append(_line(['iifname "lo"', "accept"], "firewall.loopback"))
    if chain == "input" and policy != "accept" and res.has_v6(node):
        lines.append(_line(["icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, "
                            "nd-router-advert }", "accept"], "firewall.ndp"))
    own = {str(n.network_address) for n in res.networks(Ref("node", node))}
    servers = [a for a in dns if (a in own) == (chain == "input")]
    for version in (4, 6):
        mine = [a for a in servers if ipaddress.ip_address(a).version == version]
        if fw.dns and mine:
            lines.append(_line([f"{_ip(version)} daddr {_set(mine)}",
                                "meta l4proto { tcp, udp } th dport 53", count, "accept"],
                               "firewall.dns" + _family(version)))
    for i, text in enumerate(fw.raw.get(chain, [])):
        lines.append(text if "comment " in text else f'{text} comment "firewall.raw.{chain}[{i}]"')
    for rule in fw.rules:
        if chain in rule.chains and res.concerns(rule, node, chain):
            lines += rule_lines(rule, node, chain, res)
    if policy != "accept" or fw.counters:
        log = f'log prefix "netlab {node} {chain} policy {policy}: "' if fw.log and policy != "accept" else None
        if policy == "reject":
            lines.append(_line(["meta l4proto tcp", count, log, REJECT_TCP], "firewall.policy/tcp"))
            lines.append(_line([count, log, REJECT_OTHER], "firewall.policy"))
        elif count or log:
            lines.append(_line([count, log], "firewall.policy"))
    return lines


# ---------------------------------------------------------------- nat
# A NAT rule gives one line per IP version it translates (Snat/Dnat.versions: IPv4, and
# IPv6 only where NAT66 was asked for); IPv6 lines carry the comment suffix /ip6.

def dnat_lines(d: Dnat, node: str, hairpin: bool, res: Resolver) -> list[str]:
    lines = []
    for version in d.versions:
        src = res.addresses(d.src, version)
        if src == "":
            continue
        ip, target = _ip(version), res.single(d.target, version)
        daddr = res.own(node, d.iif, version)
        if d.port:
            target = f"[{target}]:{d.port}" if version == 6 else f"{target}:{d.port}"
        lines.append(_line([f'iifname "{d.iif}"' if d.iif and (not hairpin or daddr is None) else None,
                            f"{ip} saddr {src}" if src else None,
                            f"{ip} daddr {daddr}" if daddr else None,
                            service_match(d.service), "counter", f"dnat {ip} to {target}"],
                           d.where + _family(version)))
    return lines


def snat_lines(s: Snat, res: Resolver) -> list[str]:
    """Masquerade or SNAT to a fixed address, for each IP version the rule translates."""
    lines = []
    for version in s.versions:
        src = res.addresses(s.src, version)
        if src == "":
            continue
        ip = _ip(version)
        lines.append(_line([f'oifname "{s.out}"' if s.out else None, f"{ip} saddr {src}" if src else None,
                            f"meta nfproto ipv{version}" if res.dual and not src else None,
                            "counter", f"snat {ip} to {s.to}" if s.to else "masquerade"],
                           s.where + _family(version)))
    return lines


def hairpin_lines(d: Dnat, res: Resolver) -> list[str]:
    """Clients on the server's own subnet that used the outside address: masquerade them
    so the server's replies come back through the router and get un-NATed."""
    lines = []
    for version in d.versions:
        target = res.single(d.target, version)
        subnet = res.subnet_of(target)
        if subnet is None:
            continue
        ip = _ip(version)
        service = Service(d.service.protos, (str(d.port),) if d.port else d.service.ports)
        lines.append(_line([f"{ip} saddr {subnet}", f"{ip} daddr {target}", service_match(service),
                            "ct status dnat", "counter", "masquerade"],
                           d.where.replace("forward", "hairpin") + _family(version)))
    return lines


def nat_chains(nat: NatSpec, node: str, res: Resolver) -> list[tuple[str, list[str]]]:
    chains = []
    pre = [line for d in nat.dnat for line in dnat_lines(d, node, nat.hairpin, res)]
    if pre:
        chains.append(("prerouting", ["type nat hook prerouting priority dstnat; policy accept;"] + pre))
    post = [line for s in nat.snat for line in snat_lines(s, res)]
    if nat.hairpin:
        post += [line for d in nat.dnat for line in hairpin_lines(d, res)]
    if post:
        chains.append(("postrouting", ["type nat hook postrouting priority srcnat; policy accept;"] + post))
    return chains


def render(spec: NodeSpec, compiled, dns: list[str]) -> str:
    """The node's table as nft -f text (without the flush that the executor adds)."""
    res = Resolver(compiled, nat66=spec.nat is not None and spec.nat.ipv6)
    chains: list[tuple[str, list[str]]] = []
    if spec.nat is not None:
        chains += nat_chains(spec.nat, spec.node, res)
    if spec.firewall is not None:
        for chain in spec.firewall.policies:
            chains.append((chain, chain_lines(spec.firewall, spec.node, chain, res, dns)))
    out = [f"table inet {TABLE} {{"]
    for i, (name, lines) in enumerate(chains):
        if i:
            out.append("")
        out.append(f"\tchain {name} {{")
        out += [f"\t\t{line}" for line in lines]
        out.append("\t}")
    out.append("}")
    return "\n".join(out) + "\n"


def rule_texts(ruleset: str) -> dict[tuple[str, str], str]:
    """(chain, comment) -> rule text, read back from a rendered ruleset."""
    found, chain = {}, None
    for raw in ruleset.splitlines():
        line = raw.strip()
        if line.startswith("chain ") and line.endswith("{"):
            chain = line.split()[1]
        elif chain and 'comment "' in line:
            text, _, comment = line.rpartition(' comment "')
            found[(chain, comment.rstrip('"'))] = text
    return found
