"""Overlays: the `tunnels:` section (vxlan, gretap, gre; over IPv4 or IPv6).

  spec      the section, its validation and MTU rules (hook validate)
  underlay  which interface and IP version carries each endpoint
  steps     the tunnel and bridge-port steps (pure data)
  compile   the steps of every tunnel; gre interfaces before routing (hooks interfaces,
            compile)
  kernel    the executors and the kernel-support probe (hooks preflight, status)
  draw      tunnels in `netlab graph` (hook graph_edges)

Declared (keys, steps, hooks, commands) in netlab/features.py.
"""
