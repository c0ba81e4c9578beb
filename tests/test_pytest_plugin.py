"""The pytest plugin (netlab.pytest_plugin, entry point pytest11), exercised through
pytester: fixtures are listed, bad input fails clearly, and labs are always torn down:
after passing and failing tests, on Ctrl-C and on SIGTERM. The project's own example
(examples/test_lab.py) runs here too."""
from __future__ import annotations

import pathlib
import shutil

import pytest

from netlab.core import kernel
from netlab.core.state import LabState

pytest_plugins = ["pytester"]

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"

LAB = """
name: plplug
networks:
  lan: {subnet: 10.88.0.0/24}
nodes:
  h1: {networks: [lan]}
  h2: {networks: {lan: 10.88.0.20}}
checks:
  - {ping: {from: h1, to: h2}}
"""


def gone(lab: str, nodes=("h1", "h2")) -> bool:
    return LabState.load(lab) is None and not any(kernel.netns_exists(f"{lab}-{n}") for n in nodes)


# -- without root --------------------------------------------------------------------------

def test_fixtures_and_marker_are_registered(pytester):
    result = pytester.runpytest("--fixtures")
    result.stdout.fnmatch_lines(["*netlab_lab*module scope*", "*netlab_session_lab*session scope*",
                                 "*netlab_deploy*"])
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.netlab(topology, name=None)*"])


def test_bad_topology_fails_with_located_problems(pytester):
    pytester.makefile(".yml", bad="name: plbad\nnodes:\n  h1: {networks: [nowhere]}\n")
    pytester.makepyfile("""
        import pytest
        pytestmark = pytest.mark.netlab("bad.yml")
        def test_x(netlab_lab):
            pass
    """)
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*netlab: bad topology:*", "*nodes.h1.networks*nowhere*"])
    result.stdout.no_fnmatch_line("*Traceback*")


def test_missing_marker_and_missing_file_say_what_to_do(pytester):
    pytester.makepyfile(test_a="def test_x(netlab_lab): pass",
                        test_b="import pytest\npytestmark = pytest.mark.netlab('nope.yml')\n"
                               "def test_y(netlab_lab): pass")
    result = pytester.runpytest()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*mark the module with pytest.mark.netlab*",
                                 "*topology file 'nope.yml' not found*"])


# -- with a real lab -----------------------------------------------------------------------

INNER = """
import os
import pytest

pytestmark = pytest.mark.netlab("lab.yml")

def test_up(netlab_lab):
    assert netlab_lab.name == "plplug" and os.path.exists("/run/netns/plplug-h1")
    out = netlab_lab.exec("h1", "ping", "-c", "1", "-W", "2", netlab_lab.address("h2"))
    assert "1 received" in out.stdout
    assert netlab_lab.check().ok
    assert netlab_lab.status()["healthy"]

def test_fails_on_purpose(netlab_lab):
    netlab_lab.exec("h1", "false")
"""


@pytest.mark.kernel
def test_module_lab_is_removed_after_a_failing_test(pytester):
    pytester.makefile(".yml", lab=LAB)
    pytester.makepyfile(INNER)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*LabCommandError: h1: false exited 1*"])
    assert gone("plplug")


@pytest.mark.kernel
@pytest.mark.parametrize("how", ["raise KeyboardInterrupt", "os.kill(os.getpid(), signal.SIGTERM)"],
                         ids=["ctrl-c", "sigterm"])
def test_lab_is_removed_when_the_run_is_interrupted(pytester, how):
    pytester.makefile(".yml", lab=LAB)
    pytester.makepyfile(f"""
        import os, signal, time
        import pytest
        pytestmark = pytest.mark.netlab("lab.yml", name="plplug-int")

        def test_interrupted(netlab_lab):
            assert os.path.exists("/run/netns/plplug-int-h1")
            {how}
            time.sleep(30)

        def test_never_runs(netlab_lab):
            pass
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert gone("plplug-int")


@pytest.mark.kernel
def test_factory_and_own_fixture(pytester):
    """netlab_deploy for one test, netlab_fixture for a session lab under another name."""
    pytester.makefile(".yml", lab=LAB)
    pytester.makeconftest("""
        from netlab.pytest_plugin import netlab_fixture
        shared = netlab_fixture("lab.yml", scope="session", name="plplug-s")
    """)
    pytester.makepyfile("""
        import os
        def test_factory(netlab_deploy):
            lab = netlab_deploy("lab.yml", name="plplug-f")
            assert lab.ns("h2") == "plplug-f-h2" and lab.address("h2") == "10.88.0.20"
            lab.assert_checks({"ping": {"from": "h2", "to": "h1"}})
        def test_factory_lab_is_gone(shared):
            assert not os.path.exists("/run/netns/plplug-f-h1")
            assert shared.name == "plplug-s" and os.path.exists("/run/netns/plplug-s-h1")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert gone("plplug-f") and gone("plplug-s")


@pytest.mark.kernel
def test_session_lab_from_the_command_line(pytester):
    pytester.makefile(".yml", lab=LAB)
    pytester.makepyfile("def test_s(netlab_session_lab):\n    assert netlab_session_lab.name == 'plplug-c'\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--netlab-topology", "lab.yml",
                                           "--netlab-name", "plplug-c")
    result.assert_outcomes(passed=1)
    assert gone("plplug-c")


@pytest.mark.kernel
def test_keep_leaves_the_lab_up(pytester):
    pytester.makefile(".yml", lab=LAB)
    pytester.makepyfile("import pytest\npytestmark = pytest.mark.netlab('lab.yml', name='plplug-k')\n"
                        "def test_k(netlab_lab): pass\n")
    try:
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--netlab-keep", "-s")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(["*lab plplug-k left up (netlab down plplug-k)*"])
        assert LabState.load("plplug-k") is not None
    finally:
        from netlab.core import lab as labops
        labops.down("plplug-k")
    assert gone("plplug-k")


@pytest.mark.kernel
def test_the_example_passes(pytester):
    """examples/test_lab.py, as a user runs it: deploys examples/lab.yml (lab pl-demo)."""
    for name in ("lab.yml", "test_lab.py"):
        shutil.copy(EXAMPLES / name, pytester.path / name)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs", timeout=300)
    result.assert_outcomes(passed=5)
    assert gone("pl-demo", ("gw", "client", "server"))


def test_lab_address_in_either_family():
    from netlab.core.loader import load_text
    from netlab.testing import Lab
    meta = {"nodes": {
        "a": {"ns": "t-a", "interfaces": [
            {"ifname": "eth0", "segment": "lan", "address": "10.0.0.1/24", "address6": "2001:db8::1/64"},
            {"ifname": "eth1", "segment": "v6", "address": None, "address6": "2001:db8:6::1/64"}]},
        "s": {"ns": "t-s", "interfaces": [
            {"ifname": "eth0", "segment": "v6", "address": None, "address6": "2001:db8:6::2/64"}]}}}
    lab = Lab("t", load_text("name: t\nnodes: {a: {}}\n"), meta)
    assert lab.address("a") == "10.0.0.1" and lab.address("a", ip=6) == "2001:db8::1"
    assert lab.address("a", "v6") == "2001:db8:6::1"
    assert lab.address("s") == "2001:db8:6::2"                 # IPv6 only: its IPv6 address
    with pytest.raises(KeyError, match="no IPv4 address"):
        lab.address("s", ip=4)
