"""`netlab graph FILE [--format mermaid|dot] [-o FILE.svg]`: the drawing of draw.py on
stdout, or an image through Graphviz's dot. Exit status: 0 done, 1 dot failed or is
missing, 2 a bad file."""
from __future__ import annotations

import subprocess

from .draw import GRAPHVIZ_FORMATS, graphviz, render


def _command():
    import os
    import sys

    import click

    @click.command(name="graph")
    @click.argument("file", type=click.Path(dir_okay=False))
    @click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid",
                  show_default=True, help="Text format (an -o ending in .svg/.png/.pdf always uses dot).")
    @click.option("-o", "--output", type=click.Path(dir_okay=False),
                  help="Write here instead of stdout; .svg, .png or .pdf run Graphviz's dot.")
    def graph(file, fmt, output):
        """Draw the topology: nodes, networks, links and tunnels with addresses."""
        from ..core.cli import _load
        topo = _load(file)
        ext = os.path.splitext(output or "")[1].lstrip(".").lower()
        if ext in GRAPHVIZ_FORMATS:
            try:
                data = graphviz(render(topo, "dot"), ext)
            except FileNotFoundError:
                click.echo(f"netlab: -o {output}: Graphviz is not installed (apt-get install graphviz); "
                           "use --format dot or mermaid for text", err=True)
                sys.exit(1)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                click.echo(f"netlab: dot failed: {e}", err=True)
                sys.exit(1)
            with open(output, "wb") as f:
                f.write(data)
            click.echo(f"wrote {output}", err=True)
            return
        text = render(topo, fmt)
        if output:
            with open(output, "w") as f:
                f.write(text)
        else:
            click.echo(text, nl=False)

    return graph


graph_command = _command()
