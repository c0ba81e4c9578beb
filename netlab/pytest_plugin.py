"""pytest plugin: labs as fixtures, always torn down (test failure, Ctrl-C, SIGTERM).

Installed with netlab (entry point `pytest11`), so any project that installs netlab has:

- `netlab_lab`: a module-scoped lab from the module's marker
  `pytestmark = pytest.mark.netlab("lab.yml", name="ci1")` (or `--netlab-topology` /
  ini `netlab_topology` when the module has no marker);
- `netlab_session_lab`: one lab for the whole session, from `--netlab-topology FILE` or
  the ini option `netlab_topology`;
- `netlab_deploy`: a factory, `netlab_deploy("lab.yml", name=None)`, for labs that live
  for one test;
- `netlab_fixture(path, scope="module", name=None)`: make your own named fixture.

Each yields a `netlab.testing.Lab`: `.exec(node, *cmd)`, `.address(node)`, `.check()`,
`.assert_checks()`, `.fault(scenario)`, `.capture("node:eth0", "out.pcap")`, `.status()`.
Relative topology paths are found next to the test file, then under pytest's rootdir.
Labs need root: without it the tests skip (or fail when NETLAB_REQUIRE_ALL=1).
`--netlab-keep` leaves labs up after the run, for a look at a failure.
"""
from __future__ import annotations

import os
import signal
import threading
from typing import Callable, Iterator

import pytest

from .core.errors import TopologyError

_deployed: list[str] = []          # labs this session brought up and has not removed yet
_sigterm_saved = None


def pytest_addoption(parser) -> None:
    group = parser.getgroup("netlab", "netlab labs")
    group.addoption("--netlab-topology", metavar="FILE",
                    help="Topology file of netlab_session_lab (and netlab_lab without a marker).")
    group.addoption("--netlab-name", metavar="LAB",
                    help="Deploy that topology under this lab name.")
    group.addoption("--netlab-keep", action="store_true",
                    help="Leave labs up after the tests (remove them with netlab down LAB).")
    parser.addini("netlab_topology", "Topology file of netlab_session_lab.", default="")


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "netlab(topology, name=None): the topology file netlab_lab deploys for "
                   "this module (name: deploy it under another lab name)")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus) -> None:
    """The last line of defence: labs whose fixture teardown never ran (an interrupted
    session) are removed here."""
    if session.config.getoption("netlab_keep", False):
        return
    for name in list(reversed(_deployed)):
        _remove(name)


# -- deploy and remove ---------------------------------------------------------------------

def _require_root() -> None:
    if os.geteuid() == 0:
        return
    reason = "netlab labs need root (network namespaces)"
    if os.environ.get("NETLAB_REQUIRE_ALL") == "1":
        pytest.fail(f"required but unavailable (NETLAB_REQUIRE_ALL=1): {reason}", pytrace=False)
    pytest.skip(reason)


def _sigterm_as_interrupt() -> None:
    """While labs are up, SIGTERM (a cancelled CI job) unwinds like Ctrl-C, so fixture
    teardown removes them. Only when nobody else handles SIGTERM."""
    global _sigterm_saved
    if threading.current_thread() is not threading.main_thread() or _sigterm_saved is not None:
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        def interrupt(_sig, _frame):
            raise KeyboardInterrupt("SIGTERM")
        _sigterm_saved = signal.signal(signal.SIGTERM, interrupt)


def _restore_sigterm() -> None:
    global _sigterm_saved
    if _sigterm_saved is not None and not _deployed and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm_saved)
        _sigterm_saved = None


def _find(path: str, request) -> str:
    if os.path.isabs(path):
        return path
    bases = []
    if getattr(request, "path", None) is not None and request.path.is_file():
        bases.append(str(request.path.parent))
    bases += [str(request.config.rootpath), os.getcwd()]
    for base in bases:
        candidate = os.path.join(base, path)
        if os.path.isfile(candidate):
            return candidate
    pytest.fail(f"netlab: topology file {path!r} not found (looked in {', '.join(bases)})", pytrace=False)
    raise AssertionError


def _up(path: str, name: str | None, request):
    from . import testing
    path = _find(path, request)
    try:
        topo = testing.load(path, name)
    except TopologyError as e:
        pytest.fail("netlab: bad topology:\n" + "\n".join(e.problems), pytrace=False)
    _require_root()
    _sigterm_as_interrupt()
    _deployed.append(topo.name)
    try:
        return testing.deploy(topo)
    except BaseException:
        _remove(topo.name)
        raise


def _remove(name: str) -> None:
    from . import testing
    try:
        testing.remove(name)
    finally:
        if name in _deployed:
            _deployed.remove(name)
        _restore_sigterm()


def _lab_lifetime(path: str, name: str | None, request) -> Iterator:
    lab = _up(path, name, request)
    try:
        yield lab
    finally:
        if request.config.getoption("netlab_keep", False):
            _deployed.remove(lab.name)
            print(f"\nnetlab: --netlab-keep: lab {lab.name} left up (netlab down {lab.name})")
        else:
            _remove(lab.name)


def _configured(config) -> tuple[str | None, str | None]:
    path = config.getoption("netlab_topology", None) or config.getini("netlab_topology") or None
    return path, config.getoption("netlab_name", None)


# -- fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def netlab_lab(request):
    """The lab of this module's `pytest.mark.netlab(topology, name=None)` marker (or of
    --netlab-topology): deployed once for the module, always removed after it."""
    marker = request.node.get_closest_marker("netlab")
    if marker is not None:
        path = marker.args[0] if marker.args else marker.kwargs.get("topology")
        name = marker.kwargs.get("name")
    else:
        path, name = _configured(request.config)
    if not path:
        pytest.fail("netlab_lab: mark the module with pytest.mark.netlab('lab.yml') "
                    "or pass --netlab-topology FILE", pytrace=False)
    yield from _lab_lifetime(path, name, request)


@pytest.fixture(scope="session")
def netlab_session_lab(request):
    """One lab for the whole session, from --netlab-topology or ini netlab_topology."""
    path, name = _configured(request.config)
    if not path:
        pytest.fail("netlab_session_lab: pass --netlab-topology FILE or set netlab_topology "
                    "in the pytest ini file", pytrace=False)
    yield from _lab_lifetime(path, name, request)


@pytest.fixture
def netlab_deploy(request):
    """deploy(topology_file, name=None) -> Lab: labs that live for this test only."""
    labs = []

    def deploy(path: str, name: str | None = None):
        lab = _up(path, name, request)
        labs.append(lab.name)
        return lab

    try:
        yield deploy
    finally:
        for name in reversed(labs):
            if request.config.getoption("netlab_keep", False):
                _deployed.remove(name)
            else:
                _remove(name)


def netlab_fixture(path: str, scope: str = "module", name: str | None = None,
                   fixture_name: str | None = None) -> Callable:
    """A lab fixture of your own, in a conftest.py or test module:

        branch = netlab_fixture("branch.yml", scope="session", name="ci-branch")
    """
    def lab_fixture(request):
        yield from _lab_lifetime(path, name, request)
    lab_fixture.__doc__ = f"The netlab lab of {path} (scope {scope}), always removed afterwards."
    return pytest.fixture(scope=scope, name=fixture_name)(lab_fixture) if fixture_name \
        else pytest.fixture(scope=scope)(lab_fixture)
