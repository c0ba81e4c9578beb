"""The container runtime: Docker containers as lab nodes (RUNTIMES["container"]).

Owns everything netlab does through the Docker engine: images (local first, else one
pull), creating and starting containers in parallel before the sequential wiring (a pre-
phase of apply.run), naming each container's namespace `<lab>-<node>` on the host so it is
wired exactly like a namespace node, noticing restarted containers, and removing
containers by their labels (`netlab.lab`, `netlab.node`), also when the state is lost.

Containers have no Docker network (`network_mode=none`): every interface comes from the
lab. The engine is reached lazily: labs without container nodes never touch it, and
cleanup treats an unreachable engine as "no containers".
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from pyroute2 import IPRoute

from ..core import apply, kernel
from ..core.apply import Context, Progress, mark
from ..core.errors import ApplyError
from ..core.netns import configure_inside
from ..core.plan import Namespace, Step

LABEL_LAB = "netlab.core.lab"
LABEL_NODE = "netlab.node"
LABEL_SPEC = "netlab.spec"
API_TIMEOUT = 120          # seconds per Docker call (pulls stream)
PING_TIMEOUT = 10          # an engine that does not answer this fast counts as down


def workers() -> int:
    """Parallel Docker calls: the engine gains little beyond a few on a small machine."""
    try:
        return max(1, int(os.environ.get("NETLAB_DOCKER_WORKERS", "")))
    except ValueError:
        return max(4, min(8, 2 * (os.cpu_count() or 1)))


def spec_hash(step: Namespace) -> str:
    """What the container was made from: a restarted container is re-wired only if the
    file still asks for the same container."""
    data = {"image": step.image, "role": step.role, "container": step.container}
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def explain(err: BaseException) -> str:
    text = getattr(err, "explanation", None) or str(err) or type(err).__name__
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return " ".join(str(text).split())


@dataclass
class Started:
    """A container running in its own (still unnamed) network namespace."""
    id: str
    pid: int


@dataclass
class _Run:
    """Per apply-run bookkeeping (one per Context)."""
    pending: dict[str, Future] = field(default_factory=dict)     # ns -> Started, not wired yet
    kept: dict[str, str] = field(default_factory=dict)           # ns -> id of a restarted container
    wired: list[str] = field(default_factory=list)               # nodes wired in this run
    fresh: bool = False                                          # the lab's bridges are new too
    pool: ThreadPoolExecutor | None = None
    progress: Progress | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def tick(self, _future=None) -> None:
        if self.progress is not None:
            with self.lock:
                self.progress.tick()

    def close_pool(self) -> None:
        if self.pool is not None and not self.pending:
            self.pool.shutdown(wait=False)
            self.pool = None


class DockerRuntime:
    def __init__(self) -> None:
        self._api = None
        self._lock = threading.Lock()
        self._runs: weakref.WeakKeyDictionary[Context, _Run] = weakref.WeakKeyDictionary()

    # -- the engine -------------------------------------------------------------------

    def api(self):
        """The low-level Docker API client; ApplyError with one line when unreachable."""
        with self._lock:
            if self._api is None:
                try:
                    import docker
                except ImportError:
                    raise ApplyError("container nodes need the docker Python package "
                                     "(pip install 'docker>=7')") from None
                try:
                    api = docker.APIClient(timeout=PING_TIMEOUT, max_pool_size=max(10, workers() + 2),
                                           **docker.utils.kwargs_from_env())
                    api.ping()
                    api.timeout = API_TIMEOUT
                except Exception as err:
                    raise ApplyError(f"container nodes need the Docker engine, which is not reachable "
                                     f"({explain(err)}); start it (systemctl start docker, or dockerd &)") from None
                self._api = api
            return self._api

    def api_or_none(self):
        try:
            return self.api()
        except ApplyError:
            return None

    def run_of(self, ctx: Context) -> _Run:
        run = self._runs.get(ctx)
        if run is None:
            run = self._runs[ctx] = _Run()
        return run

    # -- queries used by lab.py -------------------------------------------------------

    def inspect(self, name: str) -> dict | None:
        api = self.api_or_none()
        if api is None:
            return None
        from docker.errors import NotFound
        try:
            return api.inspect_container(name)
        except NotFound:
            return None

    def present(self, step: Namespace) -> bool:
        """True when the container runs in the namespace named `<lab>-<node>`: False when
        it is gone, stopped, or was restarted (its namespace is a new, empty one)."""
        info = self.inspect(step.ns)
        lab = step.ns[: -len(step.node) - 1] if step.node else None
        return info is not None and owned(info, lab, step) and running_in(info, step.ns)

    def lab_containers(self, lab: str) -> list[dict]:
        """Containers labelled with this lab (summaries), running or not."""
        api = self.api_or_none()
        if api is None:
            return []
        return api.containers(all=True, filters={"label": f"{LABEL_LAB}={lab}"})

    def all_labs(self) -> set[str]:
        api = self.api_or_none()
        if api is None:
            return set()
        found = api.containers(all=True, filters={"label": LABEL_LAB})
        return {c["Labels"][LABEL_LAB] for c in found if c.get("Labels", {}).get(LABEL_LAB)}

    def remove_lab(self, lab: str) -> None:
        """Remove every container labelled with this lab, in parallel."""
        found = self.lab_containers(lab)
        if found:
            self.remove_ids([c["Id"] for c in found])

    def remove_ids(self, ids: list[str]) -> None:
        api = self.api()
        from docker.errors import NotFound

        def remove(cid: str) -> None:
            try:
                api.remove_container(cid, force=True, v=True)
            except NotFound:
                pass
        with ThreadPoolExecutor(min(workers(), len(ids))) as pool:
            for future in [pool.submit(remove, cid) for cid in ids]:
                try:
                    future.result()
                except Exception as err:
                    print(f"netlab: warning: could not remove container: {explain(err)}", file=sys.stderr)

    # -- the pre-phase: images, then containers created and started in parallel ----------

    def prepare(self, ctx: Context, creates: list[Step]) -> None:
        """Check images, then start creating the containers in the background (plan order,
        bounded workers); create() waits for each one only when the wiring reaches it."""
        run = self.run_of(ctx)
        run.wired += [s.node for s in creates if isinstance(s, Namespace) and s.node]
        run.fresh = run.fresh or any(isinstance(s, Namespace) and s.role == "lab" for s in creates)
        steps = [s for s in creates if isinstance(s, Namespace) and s.image]
        if steps:
            try:
                self._start_all(ctx, run, steps)
            except ApplyError:
                raise
            except Exception as err:         # apply.run names a step; here there is none
                raise ApplyError(f"starting containers: {explain(err)}") from None
            if run.progress.enabled and ctx.progress is not None:
                ctx.progress.enabled = False     # one progress line: the containers'

    def _start_all(self, ctx: Context, run: _Run, steps: list[Namespace]) -> None:
        api = self.api()
        self._ensure_images(api, sorted({s.image for s in steps}))
        run.progress = Progress(len(steps), "containers")
        run.progress.enabled = run.progress.stream.isatty() and len(steps) > 1
        if run.pool is None:
            run.pool = ThreadPoolExecutor(min(workers(), len(steps)), thread_name_prefix="netlab-docker")
        for s in steps:
            kept = self._reuse(api, run, s)
            future = run.pool.submit(self._start, api, ctx.lab, s) if kept is None else kept
            future.add_done_callback(run.tick)
            run.pending[s.ns] = future

    def _wait(self, run: _Run, step: Namespace) -> Started:
        future = run.pending.pop(step.ns)
        run.close_pool()
        try:
            return future.result()
        except ApplyError:
            raise
        except Exception as err:
            raise ApplyError(f"node {step.node}: container {step.ns}: {explain(err)}") from None

    def finish(self, ctx: Context) -> _Run | None:
        """The run succeeded: remove restarted containers of nodes the file dropped, and
        hand back what the run wired (None if it touched no node)."""
        run = self._runs.pop(ctx, None)
        if run is not None and run.kept:
            self.remove_ids(list(run.kept.values()))
            run.kept.clear()
        return run

    def abandon(self, ctx: Context) -> None:
        """The run failed: remove containers started or kept for it but not wired."""
        run = self._runs.pop(ctx, None)
        if run is None:
            return
        ids = list(run.kept.values())
        for future in run.pending.values():
            if not future.cancel():
                try:
                    ids.append(future.result().id)
                except Exception:
                    pass                      # it failed: _start removed it
        run.pending.clear()
        run.close_pool()
        if ids:
            try:
                self.remove_ids(ids)
            except ApplyError:
                pass

    def _ensure_images(self, api, images: list[str]) -> None:
        from docker.errors import NotFound
        for image in images:
            try:
                api.inspect_image(image)
                continue
            except NotFound:
                pass
            if sys.stderr.isatty():
                print(f"netlab: image {image} is not here; pulling it", file=sys.stderr)
            try:
                for event in api.pull(image, stream=True, decode=True):
                    if "error" in event:
                        raise ApplyError(event["error"])
                api.inspect_image(image)
            except Exception as err:
                raise ApplyError(f"image {image}: not found locally and the pull failed "
                                 f"({explain(err)}); pull or build it (docker pull {image}) "
                                 f"and run netlab up again") from None

    def _reuse(self, api, run: _Run, step: Namespace) -> Future | None:
        """A container kept by delete (restarted or stopped by someone) is re-wired when the
        file still asks for the same container (a done future); otherwise it is removed."""
        cid = run.kept.pop(step.ns, None)
        if cid is None:
            return None
        info = api.inspect_container(cid)
        if info["Config"]["Labels"].get(LABEL_SPEC) != spec_hash(step):
            api.remove_container(cid, force=True, v=True)
            return None
        if not info["State"]["Running"]:
            api.start(cid)
            info = api.inspect_container(cid)
        future: Future = Future()
        future.set_result(Started(cid, self._pid(api, info, step)))
        return future

    def _start(self, api, lab: str, step: Namespace) -> Started:
        """Create and start one container with no network of its own (worker thread: no
        namespace work here, DESIGN.md)."""
        from docker.errors import APIError
        try:
            cid = self._create(api, lab, step)
        except APIError as err:
            if err.status_code != 409:
                raise ApplyError(f"node {step.node}: cannot create container {step.ns}: {explain(err)}") from None
            self._remove_orphan(api, lab, step)
            cid = self._create(api, lab, step)
        try:
            api.start(cid)
            return Started(cid, self._pid(api, api.inspect_container(cid), step))
        except BaseException as err:
            try:
                api.remove_container(cid, force=True, v=True)
            except Exception:
                pass
            if isinstance(err, ApplyError):
                raise
            raise ApplyError(f"node {step.node}: cannot start container {step.ns}: {explain(err)}") from None

    @staticmethod
    def _create(api, lab: str, step: Namespace) -> str:
        spec = step.container or {}
        host_config = api.create_host_config(
            network_mode="none", binds=spec.get("binds") or None,
            privileged=bool(spec.get("privileged")), cap_add=spec.get("cap_add") or None)
        labels = {LABEL_LAB: lab, LABEL_NODE: step.node, LABEL_SPEC: spec_hash(step)}
        return api.create_container(
            step.image, command=spec.get("cmd") or None, name=step.ns, hostname=step.node,
            labels=labels, environment=spec.get("env") or None, detach=True, tty=True,
            stdin_open=True, host_config=host_config, use_config_proxy=False)["Id"]

    @staticmethod
    def _remove_orphan(api, lab: str, step: Namespace) -> None:
        """The name is taken: remove it if it is this lab's own (state lost), else stop."""
        info = api.inspect_container(step.ns)
        theirs = info["Config"]["Labels"] or {}
        if theirs.get(LABEL_LAB) != lab or theirs.get(LABEL_NODE) != step.node:
            raise ApplyError(f"node {step.node}: a container named {step.ns} already exists and is "
                             f"not part of lab {lab} (remove it, or rename the lab)")
        api.remove_container(step.ns, force=True, v=True)

    @staticmethod
    def _pid(api, info: dict, step: Namespace) -> int:
        state = info["State"]
        if not state.get("Running") or not state.get("Pid"):
            logs = api.logs(info["Id"], tail=1).decode(errors="replace").strip()
            raise ApplyError(f"node {step.node}: container {step.ns} exited right after it started "
                             f"(exit code {state.get('ExitCode')})" + (f": {logs}" if logs else "")
                             + "; give it a cmd that keeps running")
        return state["Pid"]

    # -- the executor side: called by NamespaceExecutor in plan order -------------------

    def create(self, ctx: Context, step: Namespace) -> None:
        run = self.run_of(ctx)
        if step.ns not in run.pending:           # not prepared (no pre-phase ran): do it now
            self._start_all(ctx, run, [step])
        started = self._wait(run, step)
        attached = False
        try:
            if kernel.netns_exists(step.ns):
                self._unname_stale(ctx.lab, step)
            self._attach(step, started)
            attached = True
            host_ipv6 = kernel.ipv6_available()
            with kernel.entered(step.ns):
                ctx.adopt(step.ns, configure_inside(step, ctx.lab, enable_ipv6=host_ipv6))
        except BaseException:
            if attached:
                kernel.delete(step.ns)
            self.remove_ids([started.id])
            raise

    def _attach(self, step: Namespace, started: Started) -> None:
        """Name the container's namespace `<lab>-<node>`; one clear line if it died."""
        try:
            kernel.attach(step.ns, started.pid)
        except FileNotFoundError:
            info = self.inspect(started.id)
            state = "was removed" if info is None else \
                f"stopped (exit code {info['State'].get('ExitCode')})"
            raise ApplyError(f"node {step.node}: container {step.ns} {state} before it could be "
                             f"wired") from None

    def _unname_stale(self, lab: str, step: Namespace) -> None:
        """A name left by this node's earlier container (e.g. restarted): unname it."""
        if read_mark(step.ns) != mark(lab, step.node):
            raise ApplyError(f"namespace {step.ns} already exists and is not part of this lab "
                             f"(remove it, or rename the lab)")
        kernel.delete(step.ns)

    def delete(self, ctx: Context, step: Namespace) -> None:
        """Remove the node's container; one that was restarted or stopped by someone is
        kept for this run, so that the create that follows re-wires it."""
        info = self.inspect(step.ns)
        if info is None or not owned(info, ctx.lab, step):
            return
        labels = info["Config"]["Labels"] or {}
        if labels.get(LABEL_SPEC) == spec_hash(step) and not running_in(info, step.ns):
            self.run_of(ctx).kept[step.ns] = info["Id"]
            return
        self.api().remove_container(info["Id"], force=True, v=True)


def owned(info: dict, lab: str | None, step: Namespace) -> bool:
    labels = info.get("Config", {}).get("Labels") or {}
    return labels.get(LABEL_NODE) == step.node and (lab is None or labels.get(LABEL_LAB) == lab)


def running_in(info: dict, ns: str) -> bool:
    """Is the container running inside the namespace named `ns`?"""
    state = info.get("State", {})
    if not state.get("Running") or not state.get("Pid"):
        return False
    try:
        inode = os.stat(f"/proc/{state['Pid']}/ns/net").st_ino
    except OSError:
        return False
    return inode == kernel.netns_inode(ns)


def read_mark(ns: str) -> str:
    """The ownership mark on `lo` of a named namespace ('' if none)."""
    try:
        with kernel.entered(ns):
            ipr = IPRoute()
        try:
            return ipr.link("get", index=1)[0].get_attr("IFLA_IFALIAS") or ""
        finally:
            ipr.close()
    except OSError:
        return ""


RUNTIME = DockerRuntime()          # the registry's runtime "container" (netlab.containers)
apply.PHASES.append(RUNTIME)
