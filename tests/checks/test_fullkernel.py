"""Check thresholds against real delay and loss from netem (absent from this host's
kernel: run in the full-kernel VM, `tests/vm/run -- python3 -m pytest -m fullkernel`)."""
from __future__ import annotations

import pytest

from tests.conftest import nsexec

from .conftest import one

pytestmark = [pytest.mark.kernel, pytest.mark.fullkernel]


def test_ping_thresholds_with_netem(lab):
    name = lab("ck-netem", "dns: false\n")
    nsexec(f"{name}-isp", "tc", "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "60ms", check=True)
    slow = one(name, {"ping": {"from": "pc1", "to": "isp", "max_rtt": "30ms", "count": 5}}, timeout=1.0)
    assert not slow.ok and "rtt above 30 ms" in slow.detail
    assert one(name, {"ping": {"from": "pc1", "to": "isp", "max_rtt": "500ms", "count": 5}}, timeout=1.0).ok
    nsexec(f"{name}-isp", "tc", "qdisc", "change", "dev", "eth0", "root", "netem", "loss", "50%", check=True)
    lossy = one(name, {"ping": {"from": "pc1", "to": "isp", "max_loss": "10%", "count": 40}}, timeout=1.0)
    assert not lossy.ok and "loss above 10%" in lossy.detail
