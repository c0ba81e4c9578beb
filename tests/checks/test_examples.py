"""Every example in topologies/ passes its own checks (deployed under a ck- name, so it
never meets a lab someone else is running). Examples that need Docker or the full kernel
(GRE) run where those exist."""
from __future__ import annotations

import glob
import os
import re

import pytest
from click.testing import CliRunner

from netlab.core.cli import main
from tests.conftest import have_docker, unavailable

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "topologies", "*.yml")))

pytestmark = pytest.mark.kernel


def image_present(image: str) -> bool:
    import docker
    try:
        docker.from_env(timeout=5).images.get(image)
        return True
    except Exception:
        return False


def renamed(path: str, tmp_path) -> tuple[str, str]:
    text = open(path).read()
    stem = os.path.splitext(os.path.basename(path))[0]
    lab = "ck-x" + re.sub(r"[^a-z0-9-]", "", stem)[:8]
    text, n = re.subn(r"(?m)^name:\s*\S+", f"name: {lab}", text, count=1)
    assert n == 1
    out = tmp_path / os.path.basename(path)
    out.write_text(text)
    return lab, str(out)


@pytest.mark.parametrize("path", EXAMPLES, ids=[os.path.basename(p) for p in EXAMPLES])
def test_example_passes_its_checks(path, deploy, tmp_path):
    text = open(path).read()
    if "checks:" not in text:
        pytest.fail(f"{os.path.basename(path)} declares no checks")
    images = re.findall(r"(?m)^\s+image:\s*(\S+)", text)
    if images and not have_docker():
        unavailable("needs a running Docker engine")
    for image in images:
        if not image_present(image):       # no registry here; tests/containers covers web.yml
            pytest.skip(f"needs the image {image} (docker pull it); tests/containers/test_runtime.py "
                        f"runs this example with a local stand-in")
    if re.search(r"type:\s*(gre|gretap)\b", text) and os.environ.get("NETLAB_FULL_KERNEL") != "1":
        pytest.skip("GRE needs the full-kernel VM (tests/vm/run)")
    lab, file = renamed(path, tmp_path)
    deploy(file)
    result = CliRunner().invoke(main, ["check", file, "--wait", "5"])
    assert result.exit_code == 0, result.output
