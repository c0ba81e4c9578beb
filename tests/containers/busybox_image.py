"""Build the test image netlab/busybox:test from Debian's busybox-static, with no registry:
a root file system of busybox and its applets piped into `docker import` (DESIGN.md)."""
from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile

IMAGE = "netlab/busybox:test"


def find_busybox() -> str | None:
    path = shutil.which("busybox") or "/bin/busybox"
    return path if os.path.exists(path) else None


VERSION = "1"            # bump when the image's contents change: older builds are replaced


def have_image(tag: str = IMAGE) -> bool:
    done = subprocess.run(["docker", "image", "inspect", "-f",
                           '{{index .Config.Labels "netlab.test-image"}}', tag],
                          capture_output=True, text=True)
    return done.returncode == 0 and done.stdout.strip() == VERSION


def build_image(tag: str = IMAGE) -> str:
    """Import the image unless it is there already; returns its tag."""
    if have_image(tag):
        return tag
    busybox = find_busybox()
    if busybox is None:
        raise FileNotFoundError("busybox (Debian's busybox-static) is needed to build the test image")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "root")
        for d in ("bin", "tmp", "proc", "sys", "dev", "etc"):
            os.makedirs(os.path.join(root, d))
        os.chmod(os.path.join(root, "tmp"), 0o1777)
        shutil.copy2(busybox, os.path.join(root, "bin", "busybox"))
        for applet in applets:
            if applet != "busybox":
                os.symlink("busybox", os.path.join(root, "bin", applet))
        archive = os.path.join(tmp, "rootfs.tar")
        with tarfile.open(archive, "w") as tar:
            tar.add(root, arcname=".")
        with open(archive, "rb") as f:
            subprocess.run(["docker", "import", "-c", 'CMD ["/bin/sleep", "infinity"]',
                            "-c", f"LABEL netlab.test-image={VERSION}", "-", tag],
                           stdin=f, check=True, capture_output=True)
    return tag
