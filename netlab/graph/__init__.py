"""`netlab graph FILE`: the topology drawn as Mermaid or Graphviz dot.

  draw  the drawing (nodes, networks, links; other features add edges through the hook
        graph_edges), its Mermaid and dot text
  cli   the command

Declared (keys, steps, hooks, commands) in netlab/features.py.
"""
