# The image of the netlab agent (deploy/kubernetes/netlab-agent.yaml runs it on every node).
# Build it from the repository root, so that the whole source is the context:
#
#   docker build -f deploy/agent.Dockerfile -t netlab/agent:0.1.0 .
#
# Not built by the tests (there is no image registry to pull the base from there);
# tests/multihost/test_daemonset.py only checks its base, packages and ENTRYPOINT.
# deploy/agent.Dockerfile.dockerignore keeps .git and the VM cache out of the context.
FROM debian:bookworm-slim

# What netlab runs or loads on the host: ip (iproute2, also tc), libnftables (nftables),
# dnsmasq for lab DNS, nsenter (util-linux, already in the base), ping and traceroute for
# checks. Python 3.11 is bookworm's, which netlab's requires-python (>=3.11) accepts.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      iproute2 nftables dnsmasq-base iputils-ping traceroute python3 python3-pip \
 && rm -rf /var/lib/apt/lists/*

# netlab from this source tree. The image holds no other Python program, so installing
# into the system Python (PEP 668's --break-system-packages) is what we want here.
COPY . /src
RUN pip install --no-cache-dir --break-system-packages /src \
 && rm -rf /src

ENV PYTHONUNBUFFERED=1
# The manifest passes only the arguments (--etcd, --host, --underlay, --state-dir).
ENTRYPOINT ["netlab", "agent"]
