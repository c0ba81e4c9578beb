"""The command line's core: the click group and the core commands (up, down, destroy,
plan, status, exec, generate); features add theirs through the registry (netlab.cli
assembles it). The contract is in TOPOLOGY.md. Errors are one line each, no tracebacks.

Exit status: 0 done, 1 failed, 2 bad input (a bad topology file or bad arguments).
"""
from __future__ import annotations

import json
import os
import sys

import click

from . import hooks
from . import lab as labops
from .errors import ApplyError, TopologyError


def _fail(message: str, code: int = 1):
    click.echo(f"netlab: {message}", err=True)
    sys.exit(code)


def _load(path: str):
    from .loader import load_file       # here: `netlab down LAB` needs no YAML loader
    try:
        return load_file(path)
    except TopologyError as e:
        for line in e.problems:
            click.echo(line, err=True)
        sys.exit(2)


def lab_name(file_or_lab: str) -> str:
    """A lab named directly, or by its topology file (only the name needs to be valid)."""
    from .state import LAB_NAME
    name = file_or_lab
    if os.path.isfile(file_or_lab):
        import yaml
        try:
            with open(file_or_lab) as f:
                name = str(yaml.safe_load(f)["name"])
        except Exception:
            _fail(f"{file_or_lab}: cannot read the lab name from this file", 2)
    if not LAB_NAME.match(name):
        _fail(f"{name!r} is neither a topology file nor a lab name", 2)
    return name


class Group(click.Group):
    """Turns click's usage errors into exit 2 and any stray exception into one line;
    loads the features' commands on first use (so `netlab down` does not pay for them)
    and lets features extend a command (hook extend_command) before it runs."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.extended: set[str] = set()       # commands the extend_command hooks have seen

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(hooks.registry().command_names()))

    def get_command(self, ctx, name):
        registry = hooks.registry()
        if name not in self.commands:
            command = registry.command(name)
            if command is None:
                return None
            self.add_command(command, name)
        command = self.commands[name]
        if name not in self.extended:
            self.extended.add(name)
            for extend in registry.hooks("extend_command"):
                extend(name, command)
        return command

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ApplyError as e:
            _fail(str(e), 1)
        except TopologyError as e:
            for line in e.problems:
                click.echo(line, err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            _fail("interrupted", 1)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except BrokenPipeError:        # `netlab status | head`: the reader has gone, say nothing
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)
        except Exception as e:         # never a traceback; NETLAB_DEBUG=1 shows it
            if os.environ.get("NETLAB_DEBUG") == "1":
                raise
            _fail(f"{type(e).__name__}: {e}", 1)


@click.group(cls=Group)
@click.version_option(package_name="netlab")
def main():
    """netlab: container network labs from a YAML topology."""


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
def up(file):
    """Deploy a lab, or reconcile a deployed lab to FILE."""
    topo = _load(file)
    result = labops.up(topo)
    if not result.changed:
        click.echo(f"lab {result.lab}: up to date, nothing changed")
    else:
        nodes = len(topo.nodes)
        click.echo(f"lab {result.lab}: {nodes} nodes up ({result.created} created, "
                   f"{result.deleted} removed) in {result.seconds:.2f}s")


@main.command()
@click.argument("file_or_lab")
def down(file_or_lab):
    """Remove every object of a lab (by its file or its name)."""
    lab = lab_name(file_or_lab)
    if labops.down(lab):
        click.echo(f"lab {lab}: removed")
    else:
        click.echo(f"lab {lab}: nothing to remove")


@main.command()
@click.option("--all", "all_", is_flag=True, required=True, help="Every lab on this host.")
def destroy(all_):
    """Remove every lab on the host, also after a crash (found by state and marks)."""
    labs = labops.destroy_all()
    click.echo(f"removed {len(labs)} lab(s)" + (": " + ", ".join(labs) if labs else ""))


@main.command()
@click.argument("file")
@click.option("--json", "as_json", is_flag=True, help="The plan as JSON.")
def plan(file, as_json):
    """Print the compiled plan; touches nothing, needs no root."""
    from .compiler import compile_topology
    compiled, _ = compile_topology(_load(file))
    click.echo(compiled.to_json() if as_json else compiled.render(), nl=as_json)


@main.command()
@click.argument("lab", required=False)
@click.option("--json", "as_json", is_flag=True)
def status(lab, as_json):
    """Labs, nodes, addresses and health."""
    labs = labops.status(lab_name(lab) if lab else None)
    if as_json:
        click.echo(json.dumps(labs, indent=2))
        return
    if not labs:
        click.echo(f"lab {lab}: not deployed" if lab else "no labs deployed")
        return
    for entry in labs:
        health = "healthy" if entry["healthy"] else "DEGRADED"
        click.echo(f"lab {entry['lab']} ({entry['status']}, {health}): {len(entry['nodes'])} nodes")
        for node in entry["nodes"]:
            addrs = ", ".join(f"{i['ifname']}=" + ("+".join(a for a in (i.get("address"), i.get("address6")) if a) or "-")
                              for i in node["interfaces"])
            kind = node["kind"] + (f" [{node['image']}]" if node["image"] else "")
            state = "" if node["healthy"] else "  MISSING"
            click.echo(f"  {node['name']:<16} {kind:<24} {addrs}{state}")
        for hook in hooks.registry().hooks("status_lines"):     # links, tunnels, faults, counters...
            for line in hook(entry):
                click.echo(line)


@main.command(name="exec", context_settings={"ignore_unknown_options": True})
@click.argument("lab")
@click.argument("node")
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(lab, node, cmd):
    """Run a command inside a node: netlab exec LAB NODE -- CMD..."""
    from .state import LabState
    lab = lab_name(lab)
    st = LabState.load(lab)
    if st is None:
        _fail(f"lab {lab} is not deployed", 1)
    info = st.plan.meta.get("nodes", {}).get(node)
    if info is None:
        _fail(f"lab {lab} has no node {node!r}", 2)
    if info.get("image"):
        argv = ["docker", "exec", "-i"] + (["-t"] if sys.stdin.isatty() else []) + [info["ns"], *cmd]
    else:
        argv = ["ip", "netns", "exec", info["ns"], *cmd]
    try:
        os.execvp(argv[0], argv)
    except FileNotFoundError:
        _fail(f"{argv[0]} is not installed", 1)


@main.group()
def generate():
    """Print a generated topology."""


@generate.command(name="lan")
@click.option("--hosts", type=click.IntRange(1, 60000), required=True)
@click.option("--name", default="lan", show_default=True)
@click.option("--ipv6", is_flag=True, help="Dual stack: an IPv6 /64 beside the IPv4 subnet.")
def generate_lan(hosts, name, ipv6):
    """N hosts on one segment."""
    from .generate import lan
    from .state import LAB_NAME
    if not LAB_NAME.match(name):
        _fail(f"--name {name!r} must match ^[a-z][a-z0-9-]{{0,11}}$", 2)
    click.echo(lan(hosts, name, ipv6), nl=False)
