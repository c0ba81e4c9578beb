"""The lab's DNS: one dnsmasq per lab in its bridge namespace, a zone with every node's
names, resolvers for every node, and the `dns:` section (records, ttl, off).

  spec       the `dns:` section (records, ttl)
  compile    server addresses, zone, resolvers -> steps (hooks validate, compile);
             publishes plan.meta["dns"] (servers) for the firewall
  server     the dns-listen, dns-zone and dns-server steps: dnsmasq by PID
  resolv     the dns-client step: /etc/netns/<ns>/resolv.conf and hosts, container /etc
  lifecycle  hooks after_up (restart a dead server), teardown, status

Declared (keys, steps, hooks, commands) in netlab/features.py.
"""
