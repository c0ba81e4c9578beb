"""Container nodes (any node with an `image:`): the Docker runtime behind the core's
namespace steps, `exec:` commands, and container state in status.

  spec     validation of the container fields (hook validate)
  runtime  the node runtime "container": containers made and wired in parallel, found
           by their labels (netlab.lab, netlab.node) also when state is lost
  kernel   hooks after_up (exec:, gratuitous ARP of re-wired nodes) and status

Declared (keys, steps, hooks, commands) in netlab/features.py.
"""
