"""Load a topology file into the typed model, reporting every problem with its location.

Nothing here touches the host: bad input becomes a TopologyError with one line per problem.
"""
from __future__ import annotations

import ipaddress
import re
import shlex
from typing import Any

import yaml

from . import hooks
from .errors import Problems, TopologyError
from .model import Attachment, Endpoint, Link, Network, Node, Topology
from .state import LAB_NAME


class DuplicateKey(yaml.YAMLError):
    def __init__(self, key, mark):
        super().__init__()
        self.problem, self.problem_mark = f"duplicate key {key!r}", mark


def _unique_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise DuplicateKey(key, key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


def _strict(base):
    """A safe loader that refuses a key given twice (YAML would keep the last silently)."""
    cls = type(f"Strict{base.__name__}", (base,), {})
    cls.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)
    return cls


# libyaml's C parser when PyYAML has it: ~10x faster on big generated labs
SAFE_LOADER = _strict(getattr(yaml, "CSafeLoader", yaml.SafeLoader))
PURE_LOADER = _strict(yaml.SafeLoader)

OBJ_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
NET_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,14}$")
IFNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,14}$")
DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")

CORE_KEYS = {"name", "domain", "defaults", "networks", "nodes", "links"}
NETWORK_KEYS = {"subnet", "gateway", "mtu", "subnet6"}
CORE_NODE_KEYS = {"kind", "image", "cmd", "env", "binds", "exec", "privileged", "cap_add",
                  "networks"}
LINK_KEYS = {"endpoints", "subnet", "subnet6", "mtu"}
KINDS = ("host", "router", "container")
RESERVED_IFNAMES = {"lo"}


def load_file(path: str) -> Topology:
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise TopologyError([f"{path}: cannot read: {e.strerror}"]) from None
    topo = load_text(text, source=path)
    topo.source = path
    return topo


def load_text(text: str, source: str = "<topology>") -> Topology:
    try:
        raw = yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as c_error:
        error = c_error
        try:   # the pure-Python parser words errors the same on every machine
            yaml.load(text, Loader=PURE_LOADER)
        except yaml.YAMLError as e:
            error = e
        raise TopologyError([_yaml_problem(error, source)]) from None
    if raw is None:
        raise TopologyError([f"{source}: the file is empty"])
    if not isinstance(raw, dict):
        raise TopologyError([f"{source}: a topology is a mapping with name, networks and nodes"])
    return build(raw)


def _yaml_problem(error: yaml.YAMLError, source: str) -> str:
    mark = getattr(error, "problem_mark", None)
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"{where}: invalid YAML: {problem}"


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", int: "a number",
            bool: "true/false", float: "a number", type(None): "empty"}.get(type(value), type(value).__name__)


def _unknown_keys(where: str, data: dict, allowed: set[str], problems: Problems) -> None:
    for key in data:
        if key not in allowed:
            prefix = f"{where}." if where else ""
            problems.add(f"{prefix}{key}", f"unknown field (expected one of: {', '.join(sorted(allowed))})")


def _mapping(where: str, value: Any, problems: Problems) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(where, f"must be a mapping, not {_type_name(value)}")
        return {}
    return value


def _subnet(where: str, value: Any, problems: Problems, version: int = 4):
    example = "10.0.0.0/24" if version == 4 else "2001:db8:1::/64"
    if value is None:
        return None
    if not isinstance(value, str):
        problems.add(where, f"must be an IPv{version} CIDR like {example}, not {_type_name(value)}")
        return None
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        problems.add(where, f"'{value}' is not a valid CIDR (like {example})")
        return None
    if net.version != version:
        hint = "IPv6 goes in subnet6" if version == 4 else "IPv4 goes in subnet"
        problems.add(where, f"'{value}' is not IPv{version} ({hint})")
        return None
    if "/" in value:
        try:
            ipaddress.ip_network(value, strict=True)
        except ValueError:
            problems.add(where, f"'{value}' has host bits set; did you mean {net}?")
            return None
    if "/" not in value:
        problems.add(where, f"'{value}' needs a prefix length (like {value}/{24 if version == 4 else 64})")
        return None
    return net


def _mtu(where: str, value: Any, problems: Problems) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 68 <= value <= 65535:
        problems.add(where, f"must be a whole number from 68 to 65535, not {value!r}")
        return None
    return value


def _str_list(where: str, value: Any, problems: Problems) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        problems.add(where, f"must be a list of strings, not {_type_name(value)}")
        return []
    return [str(v) for v in value]


def _owned(where: str, key: str, shape: str, value: Any, problems: Problems) -> Any:
    """A feature's section, checked for the shape its declaration gives (list, mapping)."""
    if shape == "mapping":
        return _mapping(where, value, problems)
    if shape == "list":
        if value is not None and not isinstance(value, list):
            problems.add(where, f"must be a list, not {_type_name(value)}")
            return []
        return value or []
    return value


def build(raw: dict) -> Topology:
    problems = Problems()
    owned_top = hooks.registry().owned("topology")
    _unknown_keys("", raw, CORE_KEYS | set(owned_top), problems)

    name = raw.get("name")
    if name is None:
        problems.add("name", "required (a short lab name like 'branch')")
        name = "lab"
    elif not isinstance(name, str) or not LAB_NAME.match(name):
        problems.add("name", f"{name!r} must match ^[a-z][a-z0-9-]{{0,11}}$ (lowercase, at most 12 characters)")
        name = "lab"
    domain = raw.get("domain", f"{name}.lab")
    if not isinstance(domain, str) or not DOMAIN.match(domain):
        problems.add("domain", f"{domain!r} is not a valid DNS domain")
        domain = f"{name}.lab"

    topo = Topology(name=name, domain=domain)
    _load_networks(topo, _mapping("networks", raw.get("networks"), problems), problems)
    defaults = _mapping("defaults", raw.get("defaults"), problems)
    node_keys = CORE_NODE_KEYS | set(hooks.registry().owned("node"))
    _unknown_keys("defaults", defaults, node_keys - {"networks"}, problems)
    _load_nodes(topo, _mapping("nodes", raw.get("nodes"), problems), defaults, node_keys, problems)
    if not topo.nodes and not problems:
        problems.add("nodes", "a lab needs at least one node")
    _load_links(topo, raw.get("links"), problems)
    for key, shape in owned_top.items():
        topo.sections[key] = _owned(key, key, shape, raw.get(key), problems)

    if not problems:
        _check_addresses(topo, problems)
        _check_gateways(topo, problems)
    if not problems:
        for feature, validate in hooks.registry().named_hooks("validate"):
            spec = validate(topo, problems)
            if spec is not None:
                topo.specs[feature] = spec
    problems.raise_if_any()
    return topo


def _load_networks(topo: Topology, raw: dict, problems: Problems) -> None:
    for net_name, spec in raw.items():
        where = f"networks.{net_name}"
        if not isinstance(net_name, str) or not NET_NAME.match(net_name) or net_name in RESERVED_IFNAMES:
            problems.add(where, "a network name must match ^[a-z][a-z0-9_-]{0,14}$")
            continue
        spec = _mapping(where, spec, problems)
        _unknown_keys(where, spec, NETWORK_KEYS, problems)
        gateway = spec.get("gateway")
        if gateway is not None and not isinstance(gateway, str):
            problems.add(f"{where}.gateway", f"must be a node name, not {_type_name(gateway)}")
            gateway = None
        topo.networks[net_name] = Network(
            name=net_name,
            subnet=_subnet(f"{where}.subnet", spec.get("subnet"), problems),
            gateway=gateway,
            mtu=_mtu(f"{where}.mtu", spec.get("mtu"), problems),
            subnet6=_subnet(f"{where}.subnet6", spec.get("subnet6"), problems, version=6),
        )


def _load_nodes(topo: Topology, raw: dict, defaults: dict, node_keys: set[str], problems: Problems) -> None:
    owned = hooks.registry().owned("node")
    for node_name, spec in raw.items():
        where = f"nodes.{node_name}"
        if not isinstance(node_name, str) or not OBJ_NAME.match(node_name):
            problems.add(where, "a node name must match ^[a-z][a-z0-9-]{0,31}$")
            continue
        spec = _mapping(where, spec, problems)
        _unknown_keys(where, spec, node_keys, problems)
        merged = {**defaults, **spec}
        node = Node(name=node_name)

        def at(key: str, where=where, spec=spec) -> str:
            """Where a field's value came from: the node, or `defaults` (said once)."""
            return f"{where}.{key}" if key in spec else f"defaults.{key}"
        kind = merged.get("kind", "host")
        if kind not in KINDS:
            problems.add(at("kind"), f"unknown kind {kind!r} (expected host, router or container)")
            kind = "host"
        image = merged.get("image")
        if image is not None and not isinstance(image, str):
            problems.add(at("image"), f"must be an image name, not {_type_name(image)}")
            image = None
        if kind == "container" and not image:
            problems.add(f"{where}.image", "a container node needs an image")
        node.kind = "router" if kind == "router" else "host"
        node.image = image
        if "cmd" in merged:
            cmd = merged["cmd"]
            node.cmd = _command(at("cmd"), cmd, problems)
        env = _mapping(at("env"), merged.get("env"), problems)
        node.env = {str(k): str(v) for k, v in env.items()}
        node.binds = _str_list(at("binds"), merged.get("binds"), problems)
        node.exec = _str_list(at("exec"), merged.get("exec"), problems)
        node.cap_add = _str_list(at("cap_add"), merged.get("cap_add"), problems)
        privileged = merged.get("privileged", False)
        if not isinstance(privileged, bool):
            problems.add(at("privileged"), "must be true or false")
        node.privileged = privileged is True
        for key, shape in owned.items():
            node.sections[key] = _owned(at(key), key, shape, merged.get(key), problems)
        _load_attachments(topo, node, spec.get("networks"), where, problems)
        topo.nodes[node_name] = node


def _command(where: str, value: Any, problems: Problems) -> list[str]:
    """A command as a list, or a string split the way a shell would."""
    if not isinstance(value, str):
        return _str_list(where, value, problems)
    try:
        return shlex.split(value)
    except ValueError as e:
        problems.add(where, f"cannot split {value!r} into words: {e}")
        return []


def _load_attachments(topo: Topology, node: Node, raw: Any, where: str, problems: Problems) -> None:
    if raw is None:
        return
    if isinstance(raw, list):
        items = [(n, None) for n in raw]
    elif isinstance(raw, dict):
        items = list(raw.items())
    else:
        problems.add(f"{where}.networks", f"must be a list of networks or a mapping network: address, not {_type_name(raw)}")
        return
    seen = set()
    for position, (net_name, address) in enumerate(items):
        at = f"{where}.networks.{net_name}" if isinstance(raw, dict) else f"{where}.networks[{position}]"
        if not isinstance(net_name, str) or net_name not in topo.networks:
            problems.add(at, f"unknown network {net_name!r}")
            continue
        if net_name in seen:
            problems.add(at, f"network {net_name!r} listed twice")
            continue
        seen.add(net_name)
        fixed = {4: None, 6: None}
        for value in (address if isinstance(address, list) else [] if address is None else [address]):
            text, _, prefix = str(value).partition("/")
            try:
                ip = ipaddress.ip_address(text)
            except ValueError:
                problems.add(at, f"{value!r} is not an IP address")
                continue
            subnet = getattr(topo.networks[net_name], "subnet" if ip.version == 4 else "subnet6")
            if prefix and (subnet is None or prefix != str(subnet.prefixlen)):
                problems.add(at, f"{value!r}: give the address alone; its prefix length comes from the network's subnet")
                continue
            if fixed[ip.version] is not None:
                problems.add(at, f"more than one IPv{ip.version} address given")
            fixed[ip.version] = ip
        node.attachments.append(Attachment(network=net_name, ifname=f"eth{len(node.attachments)}",
                                           address=fixed[4], address6=fixed[6]))


def _load_links(topo: Topology, raw: Any, problems: Problems) -> None:
    if raw is None:
        return
    if not isinstance(raw, list):
        problems.add("links", f"must be a list, not {_type_name(raw)}")
        return
    for i, spec in enumerate(raw):
        where = f"links[{i}]"
        if not isinstance(spec, dict):
            problems.add(where, f"must be a mapping with endpoints, not {_type_name(spec)}")
            continue
        _unknown_keys(where, spec, LINK_KEYS, problems)
        ends = spec.get("endpoints")
        if not isinstance(ends, list) or len(ends) != 2:
            problems.add(f"{where}.endpoints", "must list exactly two endpoints like [r1:eth1, r2:eth1]")
            continue
        endpoints = []
        for j, end in enumerate(ends):
            at = f"{where}.endpoints[{j}]"
            if not isinstance(end, str) or end.count(":") != 1:
                problems.add(at, f"{end!r} must be NODE:INTERFACE like r1:eth1")
                continue
            node, ifname = end.split(":")
            if node not in topo.nodes:
                problems.add(at, f"unknown node {node!r}")
                continue
            if len(ifname) > 15:
                problems.add(at, f"interface name {ifname!r} is longer than 15 characters")
                continue
            if not IFNAME.match(ifname) or ifname in RESERVED_IFNAMES:
                problems.add(at, f"interface name {ifname!r} is invalid (1 to 15 letters, digits, '_', '-', '.')")
                continue
            endpoints.append(Endpoint(node, ifname))
        subnet = _subnet(f"{where}.subnet", spec.get("subnet"), problems)
        subnet6 = _subnet(f"{where}.subnet6", spec.get("subnet6"), problems, version=6)
        for key, net in (("subnet", subnet), ("subnet6", subnet6)):
            if net is not None and net.num_addresses < 2:
                problems.add(f"{where}.{key}", f"{net} is too small for two endpoints")
        mtu = _mtu(f"{where}.mtu", spec.get("mtu"), problems)
        if len(endpoints) == 2:
            if endpoints[0].node == endpoints[1].node and endpoints[0].ifname == endpoints[1].ifname:
                problems.add(f"{where}.endpoints", "a link needs two different endpoints")
                continue
            topo.links.append(Link(endpoints=(endpoints[0], endpoints[1]), subnet=subnet, mtu=mtu,
                                   subnet6=subnet6, position=i))
    _check_interface_names(topo, problems)


def _check_interface_names(topo: Topology, problems: Problems) -> None:
    used: dict[tuple[str, str], str] = {}
    for node in topo.nodes.values():
        for att in node.attachments:
            used[(node.name, att.ifname)] = f"network {att.network}"
    for link in topo.links:
        for j, end in enumerate(link.endpoints):
            key = (end.node, end.ifname)
            if key in used:
                problems.add(f"links[{link.position}].endpoints[{j}]",
                             f"interface {end.node}:{end.ifname} is already used by {used[key]}")
            used[key] = f"links[{link.position}]"


def _check_addresses(topo: Topology, problems: Problems) -> None:
    for version, key in ((4, "subnet"), (6, "subnet6")):
        spans = [(f"networks.{n.name}.{key}", getattr(n, key)) for n in topo.networks.values() if getattr(n, key)]
        spans += [(f"links[{l.position}].{key}", getattr(l, key)) for l in topo.links if getattr(l, key)]
        for a in range(len(spans)):
            for b in range(a + 1, len(spans)):
                if spans[a][1].overlaps(spans[b][1]):
                    problems.add(spans[b][0], f"{spans[b][1]} overlaps {spans[a][1]} ({spans[a][0]})")
        _check_fixed_addresses(topo, version, key, problems)


def _check_fixed_addresses(topo: Topology, version: int, key: str, problems: Problems) -> None:
    owners: dict = {}
    field = "address" if version == 4 else "address6"
    for net in topo.networks.values():
        subnet = getattr(net, key)
        members = [(node, att) for node in topo.nodes.values() for att in node.attachments if att.network == net.name]
        if subnet is None:
            for node, att in members:
                if getattr(att, field) is not None:
                    problems.add(f"nodes.{node.name}.networks.{net.name}",
                                 f"address {getattr(att, field)} given but network {net.name} has no {key}")
            continue
        reserved = 2 if version == 4 and subnet.prefixlen < 31 else 1 if version == 6 and subnet.prefixlen < 127 else 0
        usable = subnet.num_addresses - reserved
        if len(members) > usable:
            problems.add(f"networks.{net.name}.{key}",
                         f"{subnet} has room for {usable} addresses but {len(members)} nodes attach to it")
        for node, att in members:
            address = getattr(att, field)
            if address is None:
                continue
            where = f"nodes.{node.name}.networks.{net.name}"
            if address not in subnet:
                problems.add(where, f"address {address} is outside {subnet}")
            elif reserved and (address == subnet.network_address or
                               (version == 4 and address == subnet.broadcast_address)):
                what = "network or broadcast address" if version == 4 else "subnet-router anycast address"
                problems.add(where, f"address {address} is the {what} of {subnet}")
            elif address in owners:
                problems.add(where, f"address {address} is already used by {owners[address]}")
            else:
                owners[address] = f"nodes.{node.name}.networks.{net.name}"


def _check_gateways(topo: Topology, problems: Problems) -> None:
    for net in topo.networks.values():
        if net.gateway is None:
            continue
        where = f"networks.{net.name}.gateway"
        node = topo.nodes.get(net.gateway)
        if node is None:
            problems.add(where, f"unknown node {net.gateway!r}")
        elif not any(a.network == net.name for a in node.attachments):
            problems.add(where, f"node {net.gateway!r} is not on network {net.name}")
        elif not node.is_router:
            problems.add(where, f"node {net.gateway!r} is not a router (give it kind: router)")
        elif net.subnet is None and net.subnet6 is None:
            problems.add(where, f"network {net.name} has no subnet, so it cannot have a gateway")
