"""The Kubernetes manifest for `netlab agent` (deploy/kubernetes/netlab-agent.yaml) and
the image recipe it runs (deploy/agent.Dockerfile). Pure: no root, no cluster, no network.

Every document is validated offline against the Kubernetes OpenAPI schema shipped by the
kubernetes-validate package, in strict mode (an unknown field fails, as `kubectl apply
--validate=strict` would), for pinned Kubernetes versions. The schema does not see what
spans fields (a mount naming a volume, `$(VAR)` naming an env entry, args naming flags
of `netlab agent`) nor enum values (mountPropagation: Both passes it): the checks after
the schema cover those. The image itself is not built here (no image registry).
"""
from __future__ import annotations

import copy
import pathlib
import re
import tomllib

import click
import pytest
import yaml
from click.testing import CliRunner

from tests.conftest import unavailable

try:
    import kubernetes_validate
    from kubernetes_validate.utils import all_versions, major_minor
except ImportError:                    # pragma: no cover - the test extra installs it
    kubernetes_validate = None

ROOT = pathlib.Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "deploy" / "kubernetes" / "netlab-agent.yaml"
DOCKERFILE = ROOT / "deploy" / "agent.Dockerfile"

# The oldest Kubernetes the manifest claims, and the newest schema kubernetes-validate
# 1.37.0 ships. Pinned: a newer package must not silently move the target.
K8S_VERSIONS = ("1.29", "1.37")

DOCS = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]


def by_kind(kind: str) -> dict:
    (doc,) = [d for d in DOCS if d["kind"] == kind]
    return doc


def pod_spec() -> dict:
    return by_kind("DaemonSet")["spec"]["template"]["spec"]


def agent_container() -> dict:
    (container,) = pod_spec()["containers"]
    return container


def kv():
    """The kubernetes_validate module, or a skip (a failure under NETLAB_REQUIRE_ALL=1)."""
    if kubernetes_validate is None:
        unavailable("kubernetes-validate is not installed (pip install -e '.[test]')")
    return kubernetes_validate


def validate(doc: dict, version: str, strict: bool = True) -> str:
    kv()
    shipped = {major_minor(v) for v in all_versions()}
    assert version in shipped, (f"kubernetes-validate {kubernetes_validate.__version__} has no "
                                f"schema for Kubernetes {version} (it has {sorted(shipped)})")
    return kubernetes_validate.validate(doc, version, strict=strict)


# -- (a) the schema ----------------------------------------------------------------------

def test_the_manifest_holds_the_expected_documents():
    assert [(d["kind"], d["metadata"]["name"]) for d in DOCS] == [
        ("Namespace", "netlab"), ("ConfigMap", "netlab-etcd"),
        ("ServiceAccount", "netlab-agent"), ("DaemonSet", "netlab-agent")]
    for doc in DOCS[1:]:
        assert doc["metadata"]["namespace"] == "netlab", doc["kind"]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("index", range(len(DOCS)),
                         ids=[f"{d['kind']}-{d['metadata']['name']}" for d in DOCS])
def test_every_document_validates_strictly_against_the_kubernetes_schema(index, version):
    invalid = kv().ValidationError
    try:
        assert validate(DOCS[index], version) == version
    except invalid as e:
        path = ".".join(str(p) for p in e.path)
        pytest.fail(f"{DOCS[index]['kind']} is invalid for Kubernetes {version}: {path}: {e.message}",
                    pytrace=False)


# -- (b) the validation is real ------------------------------------------------------------

def _misspell_host_network(spec):
    spec["hostNetwrok"] = spec.pop("hostNetwork")


def _misspell_mount_propagation(spec):
    mount = spec["containers"][0]["volumeMounts"][0]
    mount["mountPropogation"] = mount.pop("mountPropagation")


def _privileged_as_string(spec):
    spec["containers"][0]["securityContext"]["privileged"] = "true"


def _grace_period_as_word(spec):
    spec["terminationGracePeriodSeconds"] = "ten"


@pytest.mark.parametrize("break_it, field, unknown_field", [
    (_misspell_host_network, "hostNetwrok", True),
    (_misspell_mount_propagation, "mountPropogation", True),
    (_privileged_as_string, "privileged", False),
    (_grace_period_as_word, "terminationGracePeriodSeconds", False),
])
def test_a_broken_copy_fails_validation(break_it, field, unknown_field):
    broken = copy.deepcopy(by_kind("DaemonSet"))
    break_it(broken["spec"]["template"]["spec"])
    with pytest.raises(kv().ValidationError) as caught:
        validate(broken, K8S_VERSIONS[-1])
    where = [str(p) for p in caught.value.path]
    assert field in caught.value.message or field in where, caught.value.message
    if unknown_field:                  # only strict mode catches a misspelt field name
        assert validate(broken, K8S_VERSIONS[-1], strict=False) == K8S_VERSIONS[-1]


# -- (c) the args are flags `netlab agent` has ----------------------------------------------

def test_the_args_name_only_flags_that_netlab_agent_accepts():
    from netlab.core.cli import main
    result = CliRunner().invoke(main, ["agent", "--help"])
    assert result.exit_code == 0, (f"`netlab agent --help` failed (exit {result.exit_code}): "
                                   f"{result.output.strip()}")
    offered = set(re.findall(r"(?<![\w-])--?[A-Za-z][\w-]*", result.output))
    args = agent_container()["args"]
    flags = [a.split("=", 1)[0] for a in args if a.startswith("-")]
    assert flags, args
    missing = [f for f in flags if f not in offered]
    assert not missing, f"netlab agent has no {missing}; its help:\n{result.output}"

    # Each flag followed by a separate value in args takes one (is no on/off switch).
    command = main.get_command(click.Context(main), "agent")
    options = {o: p for p in command.params for o in p.opts + p.secondary_opts}
    for i, arg in enumerate(args):
        if arg.startswith("-") and "=" not in arg:
            option = options[arg]
            takes_value = not getattr(option, "is_flag", False) and option.nargs == 1
            followed = i + 1 < len(args) and not args[i + 1].startswith("-")
            assert takes_value == followed, f"{arg}: takes a value: {takes_value}, given one: {followed}"


def test_the_image_entrypoint_is_netlab_agent_and_the_manifest_keeps_it():
    text = DOCKERFILE.read_text()
    assert re.search(r'^FROM debian:bookworm-slim\b', text, re.M), "base image"
    (entrypoint,) = re.findall(r"^ENTRYPOINT (.*)$", text, re.M)
    assert yaml.safe_load(entrypoint) == ["netlab", "agent"]
    assert "command" not in agent_container(), "a command would replace the ENTRYPOINT"
    for package in ("iproute2", "nftables", "dnsmasq-base", "python3-pip"):
        assert re.search(rf"(?<![\w-]){package}(?![\w-])", text), package


def test_image_tag_and_version_label_follow_the_project_version():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    ds = by_kind("DaemonSet")
    assert agent_container()["image"] == f"netlab/agent:{version}"
    assert agent_container()["imagePullPolicy"] == "IfNotPresent"
    assert ds["metadata"]["labels"]["app.kubernetes.io/version"] == version
    assert ds["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"] == version


# -- (d) what the schema cannot see ---------------------------------------------------------

def test_host_access_netns_propagation_and_privilege():
    spec = pod_spec()
    assert spec["hostNetwork"] is True
    assert spec["hostPID"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert agent_container()["securityContext"]["privileged"] is True

    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in agent_container()["volumeMounts"]}
    assert sorted(m["name"] for m in mounts.values()) == sorted(volumes), "mounts and volumes pair up"
    host = {path: volumes[m["name"]]["hostPath"]["path"] for path, m in mounts.items()}
    assert host == {"/run/netns": "/run/netns", "/run/netlab": "/run/netlab", "/etc/netns": "/etc/netns",
                    "/var/run/docker.sock": "/var/run/docker.sock", "/lib/modules": "/lib/modules"}
    assert mounts["/run/netns"]["mountPropagation"] == "Bidirectional"
    assert mounts["/lib/modules"].get("readOnly") is True
    assert all("mountPropagation" not in m for p, m in mounts.items() if p != "/run/netns")

    args = agent_container()["args"]
    assert args[args.index("--state-dir") + 1] == "/run/netlab", "the state dir is the hostPath"


def test_env_comes_from_the_configmap_and_the_downward_api():
    env = {e["name"]: e for e in agent_container()["env"]}
    ref = env["NETLAB_ETCD"]["valueFrom"]["configMapKeyRef"]
    configmap = by_kind("ConfigMap")
    assert ref["name"] == configmap["metadata"]["name"] and ref["key"] in configmap["data"]
    for url in configmap["data"][ref["key"]].split(","):
        assert re.fullmatch(r"https?://[\w.-]+:\d+", url), url
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["HOST_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"

    args = agent_container()["args"]
    for flag, var in (("--etcd", "NETLAB_ETCD"), ("--host", "NODE_NAME"), ("--underlay", "HOST_IP")):
        assert args[args.index(flag) + 1] == f"$({var})"
    # Kubernetes leaves an undefined $(VAR) as literal text: every reference must exist.
    for var in re.findall(r"\$\((\w+)\)", " ".join(args)):
        assert var in env, var


def test_it_runs_on_every_node_one_at_a_time_under_its_service_account():
    ds = by_kind("DaemonSet")
    spec = pod_spec()
    selector = ds["spec"]["selector"]["matchLabels"]
    labels = ds["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items(), "the selector must match the pod template"
    assert "app.kubernetes.io/version" not in selector, "selectors are immutable"
    assert labels["app.kubernetes.io/name"] == "netlab-agent"

    taints = [("node-role.kubernetes.io/control-plane", "NoSchedule"),
              ("node.kubernetes.io/not-ready", "NoExecute"), ("anything", "NoSchedule")]
    for key, effect in taints:
        assert any(t.get("operator") == "Exists" and t.get("key", key) == key
                   and t.get("effect", effect) == effect for t in spec["tolerations"]), key
    assert "nodeSelector" not in spec and "affinity" not in spec

    strategy = ds["spec"]["updateStrategy"]
    assert strategy["type"] == "RollingUpdate" and strategy["rollingUpdate"]["maxUnavailable"] == 1
    assert spec["serviceAccountName"] == by_kind("ServiceAccount")["metadata"]["name"]
    assert spec["terminationGracePeriodSeconds"] <= 30
    resources = agent_container()["resources"]
    assert resources["requests"] and resources["limits"]
