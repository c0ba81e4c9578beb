"""Draw a topology as Mermaid or Graphviz dot (`netlab graph`, in cli.py).

Pure: the picture comes from the compiled plan (the addresses netlab would assign), so
it needs no root and touches nothing. Nodes, networks (one vertex per L2 segment),
point-to-point links and (through the hook graph_edges) tunnels are drawn with interface
names and addresses. Mermaid
renders inside GitHub markdown; DOT goes through Graphviz's `dot` for an SVG.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field

from ..core import hooks
from ..core.compiler import Compiled, Iface, compile_topology
from ..core.model import Topology

GRAPHVIZ_FORMATS = ("svg", "png", "pdf")


@dataclass
class Vertex:
    id: str
    label: list[str]                    # lines
    shape: str                          # host | router | container | network


@dataclass
class Edge:
    a: str
    b: str
    label: list[str]
    style: str = "solid"                # solid (attachment, link) | dashed (tunnel)


@dataclass
class Drawing:
    lab: str
    vertices: list[Vertex] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)


def _iface_text(iface: Iface) -> str:
    """`eth0 10.0.0.2/24 2001:db8::2/64`: the interface and its addresses, both families."""
    return " ".join([iface.ifname] + [str(a) for a in (iface.address, iface.address6) if a])


def build(topo: Topology, compiled: Compiled) -> Drawing:
    """The vertices and edges of a topology, in file order (stable output)."""
    drawing = Drawing(topo.name)
    ids: dict[str, str] = {}
    for i, net in enumerate(topo.networks.values()):
        ids["net:" + net.name] = f"s{i}"
        label = [net.name] + [str(p) for p in (net.subnet, net.subnet6) if p]
        gateway = compiled.gateways.get(net.name)
        if gateway:
            label.append(f"gw {gateway}")
        drawing.vertices.append(Vertex(f"s{i}", label, "network"))
    for i, node in enumerate(topo.nodes.values()):
        ids[node.name] = f"n{i}"
        shape = "container" if node.is_container else ("router" if node.is_router else "host")
        label = [node.name, node.image if node.is_container else node.kind]
        extras = [w for w in ("nat", "firewall") if node.sections.get(w)]
        if node.sections.get("services"):
            extras.append("services " + ", ".join(str(x) for x in node.sections["services"]))
        label += [" + ".join(extras)] if extras else []
        drawing.vertices.append(Vertex(f"n{i}", label, shape))
    for node in topo.nodes.values():
        for iface in compiled.ifaces.get(node.name, []):
            if iface.segment in topo.networks:
                drawing.edges.append(Edge(ids[node.name], ids["net:" + iface.segment],
                                          [_iface_text(iface)]))
    for i, link in enumerate(topo.links):
        a, b = link.endpoints
        ends = [next(x for x in compiled.ifaces[e.node] if x.ifname == e.ifname) for e in (a, b)]
        label = [f"{e.node} {_iface_text(x)}" for e, x in zip((a, b), ends)]
        drawing.edges.append(Edge(ids[a.node], ids[b.node], label))
    for hook in hooks.registry().hooks("graph_edges"):     # tunnels
        for a, b, label, style in hook(topo, compiled):
            drawing.edges.append(Edge(ids[a], ids[b], label, style))
    return drawing


# -- mermaid -------------------------------------------------------------------------------

def _mm_text(lines: list[str]) -> str:
    text = "<br/>".join(lines)
    return '"' + text.replace('"', "#quot;") + '"'


MERMAID_SHAPES = {"host": "[{}]", "router": "{{{{{}}}}}", "container": "[/{}/]",
                  "network": "(({}))"}


def to_mermaid(d: Drawing) -> str:
    out = ["graph LR", f"  %% netlab lab {d.lab}"]
    for v in d.vertices:
        out.append(f"  {v.id}" + MERMAID_SHAPES[v.shape].format(_mm_text(v.label)))
    for e in d.edges:
        arrow = "-.-" if e.style == "dashed" else "---"
        out.append(f"  {e.a} {arrow}|{_mm_text(e.label)}| {e.b}")
    out += ["  classDef router fill:#ffe3b3,stroke:#b36b00",
            "  classDef network fill:#dceeff,stroke:#2b6cb0",
            "  classDef container fill:#e3f7e3,stroke:#2f855a"]
    for shape in ("router", "network", "container"):
        members = [v.id for v in d.vertices if v.shape == shape]
        if members:
            out.append(f"  class {','.join(members)} {shape}")
    return "\n".join(out) + "\n"


# -- dot -----------------------------------------------------------------------------------

DOT_SHAPES = {
    "host": 'shape=box, style="rounded"',
    "router": 'shape=box3d, style="filled", fillcolor="#ffe3b3"',
    "container": 'shape=component, style="filled", fillcolor="#e3f7e3"',
    "network": 'shape=ellipse, style="filled", fillcolor="#dceeff"',
}


def _dot_text(lines: list[str]) -> str:
    return '"' + "\\n".join(x.replace("\\", "\\\\").replace('"', '\\"') for x in lines) + '"'


def to_dot(d: Drawing) -> str:
    out = [f'graph "{d.lab}" {{',
           '  graph [rankdir=LR, fontname="Helvetica", label="lab ' + d.lab + '", labelloc=t];',
           '  node [fontname="Helvetica", fontsize=10];',
           '  edge [fontname="Helvetica", fontsize=9];']
    for v in d.vertices:
        out.append(f"  {v.id} [label={_dot_text(v.label)}, {DOT_SHAPES[v.shape]}];")
    for e in d.edges:
        style = ', style=dashed' if e.style == "dashed" else ""
        out.append(f"  {e.a} -- {e.b} [label={_dot_text(e.label)}{style}];")
    out.append("}")
    return "\n".join(out) + "\n"


def render(topo: Topology, fmt: str) -> str:
    """The drawing as mermaid or dot text."""
    _, compiled = compile_topology(topo)
    drawing = build(topo, compiled)
    return to_mermaid(drawing) if fmt == "mermaid" else to_dot(drawing)


def graphviz(dot_text: str, fmt: str) -> bytes:
    """Run Graphviz's `dot`; raises FileNotFoundError when it is not installed and
    RuntimeError with its message when it fails."""
    exe = shutil.which("dot")
    if exe is None:
        raise FileNotFoundError("dot")
    done = subprocess.run([exe, f"-T{fmt}"], input=dot_text.encode(), capture_output=True,
                          timeout=60)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode(errors="replace").strip() or f"dot exited {done.returncode}")
    return done.stdout
