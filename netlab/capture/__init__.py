"""`netlab capture LAB NODE:IF`: packets of a lab interface as pcap, with no tool
inside the node.

  sniff  AF_PACKET capture inside the node's namespace, the pcap format, decoding and a
         small filter when tcpdump is absent
  cli    the command

Declared (keys, steps, hooks, commands) in netlab/features.py.
"""
