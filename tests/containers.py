"""Podman for the container test: the settings this machine needs, a local
base image, the app image, and a container's health.

No image registry is reachable here, so the base is made from Debian's
packages with mmdebstrap (minbase bookworm, python3, python3-venv,
ca-certificates) and `podman import`ed; it is made once and kept in podman's
store (delete it with `podman rmi` to make it again). The app image is built
from the Dockerfile on that base and tagged by a hash of what goes into it,
so a run with the same sources reuses it; older test tags are removed.
`make test` installs podman, runc and mmdebstrap (Debian's) when missing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASE_IMAGE = "localhost/flame-cache-test-base:bookworm"
APP_REPOSITORY = "localhost/flame-cache"
TEST_TAG_PREFIX = "test-"
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
TOOLS = ("podman", "runc", "mmdebstrap")
# What the image is built from (the rest of the repository is not in its context, see .dockerignore).
IMAGE_INPUTS = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "flame_cache")
LOCK = Path("/var/tmp/flame-cache-test-images.lock")  # one base or app build at a time on this machine

# Debian's podman here: runc with the cgroupfs manager and no default ulimits (crun and the defaults fail).
CONTAINERS_CONF = """\
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
"""


class Podman:
    """Runs podman (and podman-compose) with this machine's settings, from
    a containers.conf written into `workdir`."""

    def __init__(self, workdir: Path) -> None:
        missing = [tool for tool in TOOLS if shutil.which(tool) is None]
        if missing:
            raise RuntimeError(f"{', '.join(missing)} missing: `make test` installs Debian's podman, runc and mmdebstrap")
        conf = workdir / "containers.conf"
        conf.write_text(CONTAINERS_CONF)
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}
        self.workdir = workdir

    def run(self, *args: str, timeout: float = 120, check: bool = True, env: dict[str, str] | None = None) -> str:
        """podman's stdout; RuntimeError with its output if it fails and `check`."""
        return self.command(["podman", *args], timeout=timeout, check=check, env=env)

    def command(self, argv: list[str], *, timeout: float = 120, check: bool = True, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            argv, env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=timeout, cwd=REPO
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
        return done.stdout

    def exists(self, image: str) -> bool:
        return subprocess.run(["podman", "image", "exists", image], env=self.env, timeout=60).returncode == 0

    # -- images ------------------------------------------------------------

    def base_image(self) -> str:
        """The Debian base, made if podman's store lacks it (about 40 s)."""
        with _locked():
            if not self.exists(BASE_IMAGE):
                rootfs = self.workdir / "base.tar"
                self.command(
                    ["mmdebstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm", str(rootfs)],
                    timeout=900,
                )
                self.run("import", str(rootfs), BASE_IMAGE, timeout=300)
                rootfs.unlink()
        return BASE_IMAGE

    def app_image(self, base: str) -> str:
        """The Dockerfile built on `base`, tagged by its inputs' hash; built only if missing."""
        image = f"{APP_REPOSITORY}:{TEST_TAG_PREFIX}{inputs_hash(base)}"
        with _locked():
            if os.environ.get("FLAME_CACHE_TEST_REBUILD") or not self.exists(image):
                mounts = [f"{path}:{path}:ro" for path in ("/etc/pip.conf", "/etc/ssl/certs") if Path(path).exists()]
                self.run(
                    "build",
                    "--format", "docker",  # the OCI format has no HEALTHCHECK
                    "--network", "host",  # pip reaches the package index as this machine does
                    *(arg for mount in mounts for arg in ("-v", mount)),
                    "--build-arg", f"BASE_IMAGE={base}",
                    "-t", image,
                    str(REPO),
                    timeout=1200,
                )  # fmt: skip
                self._remove_older_test_images(image)
        return image

    def _remove_older_test_images(self, keep: str) -> None:
        listed = self.run("images", "--format", "{{.Repository}}:{{.Tag}}", APP_REPOSITORY, check=False)
        for image in listed.split():
            if image != keep and image.rpartition(":")[2].startswith(TEST_TAG_PREFIX):
                self.run("rmi", image, check=False)  # one still in use by another run stays

    # -- containers ----------------------------------------------------------

    def inspect(self, container: str) -> dict:
        return json.loads(self.run("inspect", "--type", "container", container))[0]

    def wait_healthy(self, container: str, timeout: float = 90) -> None:
        """Run the image's HEALTHCHECK until it reports healthy. Podman's own
        timer needs systemd, which this machine does not run, so the check
        is run here, as the timer would."""
        deadline = time.monotonic() + timeout
        while True:
            self.run("healthcheck", "run", container, check=False)
            state = self.inspect(container)["State"]
            health = (state.get("Health") or state.get("Healthcheck") or {}).get("Status")
            if health == "healthy":
                return
            if not state.get("Running") or time.monotonic() > deadline:
                raise RuntimeError(
                    f"{container} is {health!r} (running: {state.get('Running')}):\n{self.logs(container)[-5000:]}"
                )
            time.sleep(0.5)

    def logs(self, container: str) -> str:
        done = subprocess.run(["podman", "logs", container], env=self.env, capture_output=True, text=True, timeout=60)
        return done.stdout + done.stderr

    def process_ids(self, container: str) -> tuple[int, int]:
        """The real uid and gid of the container's main process."""
        status = self.run("exec", container, "cat", "/proc/1/status")
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        return int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0])


def inputs_hash(base: str) -> str:
    """A digest of the base's name and every file that goes into the image."""
    digest = hashlib.sha256(base.encode())
    for name in IMAGE_INPUTS:
        root = REPO / name
        files = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts) if root.is_dir() else [root]
        for path in files:
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


class _locked:
    """An exclusive lock on LOCK, so two runs do not build the same image at once."""

    def __enter__(self) -> None:
        self.file = LOCK.open("a")
        fcntl.flock(self.file, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()
