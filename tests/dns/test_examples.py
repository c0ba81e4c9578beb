"""Every node of every example in topologies/ resolves every other node by name, from
inside (`getent hosts` through `ip netns exec`, which reads the node's resolv.conf).

Each example is deployed as a copy named `dn-<its name>` so it never meets a lab someone
else deploys from the same file. Container images are replaced by the local test image;
examples with GRE tunnels need the full-kernel VM.
"""
from __future__ import annotations

import pathlib

import pytest
import yaml

from netlab.core.state import LabState
from tests.conftest import nsexec

TOPOLOGIES = pathlib.Path(__file__).resolve().parents[2] / "topologies"
EXAMPLES = sorted(TOPOLOGIES.glob("*.yml"))


def _copy(path: pathlib.Path) -> tuple[str, bool]:
    """(YAML text of the renamed copy, whether it has container nodes)."""
    raw = yaml.safe_load(path.read_text())
    name = str(raw["name"])
    raw["name"] = name if name.startswith("dn-") else f"dn-{name}"[:12]
    containers = False
    for node in (raw.get("nodes") or {}).values():
        if isinstance(node, dict) and node.get("image"):
            from tests.containers.busybox_image import IMAGE
            node["image"] = IMAGE
            node.pop("cmd", None)
            node.pop("exec", None)
            containers = True
    defaults = raw.get("defaults") or {}
    if defaults.get("image"):
        from tests.containers.busybox_image import IMAGE
        defaults["image"] = IMAGE
        containers = True
    return yaml.safe_dump(raw, sort_keys=False), containers


def _marks(path: pathlib.Path) -> list:
    text = path.read_text()
    marks = [pytest.mark.kernel]
    if "image:" in text:
        marks.append(pytest.mark.docker)
    if "type: gre" in text:              # gre and gretap: ip_gre is absent on this kernel
        marks.append(pytest.mark.fullkernel)
    return marks


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem, marks=_marks(p)) for p in EXAMPLES])
def test_every_node_resolves_every_other_by_name(path, deploy):
    text, containers = _copy(path)
    if containers:
        from tests.containers.busybox_image import build_image
        build_image()
    topo = deploy(text)
    meta = LabState.load(topo.name).plan.meta
    if not meta["dns"]["servers"] and not meta["dns"].get("servers6"):
        pytest.skip("this example has no network with a subnet: no lab DNS")
    addresses = {node: {i[key].split("/")[0] for i in info["interfaces"]
                        for key in ("address", "address6") if i.get(key)}
                 for node, info in meta["nodes"].items()}
    named = sorted(n for n, a in addresses.items() if a)
    for src in sorted(topo.nodes):
        if not meta["dns"]["clients"].get(src):
            continue
        out = nsexec(topo.netns(src), "getent", "hosts", *named)
        seen = {}
        for line in out.stdout.splitlines():
            address, fqdn, *_ = line.split()
            seen.setdefault(fqdn.removesuffix("." + topo.domain), address)
        for dst in named:
            assert seen.get(dst) in addresses[dst], f"{src} resolves {dst} as {seen.get(dst)}"
