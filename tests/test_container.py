"""The image, run for real (issue 14, done-when 1): built from the Dockerfile
on a local Debian base, compose.yaml's cache service run by podman-compose
with its named volume and config, flamepy on the host through the published
port; then the image as Flame's Helm chart runs it (upstream's command line,
paths and flame-cluster.yaml).

Slow the first time (the base and the image are built: a few minutes), then
reused while the sources are unchanged (tests/containers.py).
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from tests.containers import REPO, Podman
from tests.flamepy_scripts import flame_yaml, run_flamepy
from tests.server import free_port

SERVICE = "flame-object-cache"
GRACE = 30  # compose.yaml's stop_grace_period, Kubernetes' default terminationGracePeriodSeconds
PAYLOAD = {"weights": list(range(1000)), "name": "container test"}

# Flame's Helm chart (charts/flame): the container's command, args and environment, and the
# flame-cluster.yaml its ConfigMap renders with the chart's default values.
UPSTREAM_BINARY = "/usr/local/flame/bin/flame-object-cache"
UPSTREAM_CONFIG = "/usr/local/flame/conf/flame-cluster.yaml"
HELM_CLUSTER_YAML = {
    "cluster": {
        "name": "flame",
        "endpoint": "http://flame-session-manager:8080",
        "resreq": "cpu=1,mem=2g",
        "policies": ["drf"],
        "storage": "fs:///var/lib/flame/session",
        "schedule_interval": 100,
        "executors": {"shim": "host"},
        "limits": {"max_sessions": 1000, "max_executors": 128},
        "recovery": {"session": {"retry_limits": 5}},
    },
    "cache": {
        "endpoint": "grpc://flame-object-cache:9090",  # the Service's name, which upstream only takes the port of
        "network_interface": "eth0",
        "storage": "/var/lib/flame/cache",
        "eviction": {"policy": "lru", "max_memory": "1G"},
    },
}


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    return Podman(tmp_path_factory.mktemp("podman"))


@pytest.fixture(scope="module")
def image(podman: Podman) -> str:
    return podman.app_image(podman.base_image())


def flamepy_client(home: Path, endpoint: str) -> Callable[..., object]:
    """flamepy in a subprocess, configured by its own ~/.flame/flame.yaml alone."""
    flame_yaml(home, endpoint)
    return lambda script, *args: run_flamepy(None, home, script, *args)


def stop_and_check_exit(podman: Podman, container: str, stop: Callable[[], object]) -> None:
    """`stop` ends the container within the grace period, with status 0 (SIGTERM handled)."""
    started = time.monotonic()
    stop()
    took = time.monotonic() - started
    state = podman.inspect(container)["State"]
    assert not state["Running"] and state["ExitCode"] == 0, (state, podman.logs(container)[-3000:])
    assert took < GRACE, f"stop took {took:.1f}s"
    assert "INFO flame_cache: stopped" in podman.logs(container)


def test_compose_service_serves_flamepy_keeps_objects_across_a_restart(
    podman: Podman, image: str, tmp_path: Path
) -> None:
    project = f"fctest{uuid.uuid4().hex[:10]}"
    flight_port, http_port = free_port(), free_port()
    advertised = f"grpc://127.0.0.1:{flight_port}"
    env = {
        "FLAME_CACHE_TAG": image.rpartition(":")[2],
        "FLAME_CACHE_FLIGHT_PORT": f"127.0.0.1:{flight_port}",
        "FLAME_CACHE_HTTP_PORT": f"127.0.0.1:{http_port}",
        "FLAME_CACHE_ADVERTISE": advertised,  # refs name the published port, which the host reaches
    }
    compose_bin = str(Path(sys.executable).with_name("podman-compose"))

    def compose(*args: str, check: bool = True) -> str:
        argv = [compose_bin, "-p", project, "-f", str(REPO / "compose.yaml"), *args]
        return podman.command(argv, env=env, timeout=300, check=check)

    try:
        compose("up", "-d", "--no-build", SERVICE)  # the session manager's image cannot be pulled here
        container = podman.run(
            "ps", "-a", "-q",
            "--filter", f"label=io.podman.compose.project={project}",
            "--filter", f"label=io.podman.compose.service={SERVICE}",
        ).split()[0]  # fmt: skip
        podman.wait_healthy(container)

        config = podman.inspect(container)
        assert config["Config"]["User"] == "flame" and config["HostConfig"]["ReadonlyRootfs"] is True
        uid, gid = podman.process_ids(container)
        assert uid != 0 and gid != 0, "the cache runs as root"
        mounts = {mount["Destination"]: mount for mount in config["Mounts"]}
        assert mounts["/var/lib/flame/cache"]["Name"] == f"{project}_flame-cache-storage"
        assert mounts["/etc/flame/flame-cluster.yaml"]["Source"] == str(REPO / "deploy" / "flame-cluster.yaml")

        client = flamepy_client(tmp_path / "client", advertised)
        (ref,) = client("put_objects", "container-app/s1", [PAYLOAD])
        assert ref.endpoint == advertised and ref.version == 1
        assert client("get_objects", [ref], False) == [PAYLOAD]
        volume = podman.run("volume", "inspect", "--format", "{{.Mountpoint}}", f"{project}_flame-cache-storage").strip()
        assert (Path(volume) / f"{ref.key}.arrow").is_file(), "the object is in the named volume"
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}") as http:
            assert http.get("/readyz").json()["objects"] == 1

        stop_and_check_exit(podman, container, lambda: compose("stop", SERVICE))
        compose("start", SERVICE)
        podman.wait_healthy(container)
        fresh = flamepy_client(tmp_path / "after-restart", advertised)  # no client-side cache
        assert fresh("get_objects", [ref], False) == [PAYLOAD]
    finally:
        compose("down", "-v", check=False)
    assert podman.run("volume", "exists", f"{project}_flame-cache-storage", check=False) == ""
    assert podman.command(["podman", "volume", "ls", "-q"], check=False).count(project) == 0


def test_the_helm_charts_command_line_paths_and_config_work_unchanged(
    podman: Podman, image: str, tmp_path: Path
) -> None:
    """As charts/flame's object-cache StatefulSet runs upstream's image: command
    /usr/local/flame/bin/flame-object-cache, args --config <ConfigMap file>,
    FLAME_HOME, working dir, the data volume at /var/lib/flame/cache and an
    emptyDir at logs/. Upstream advertises network_interface's address; the
    host reaches the container through the published port instead."""
    name = f"fctest-upstream-{uuid.uuid4().hex[:10]}"
    volume = f"{name}-data"
    config = tmp_path / "flame-cluster.yaml"
    config.write_text("---\n" + yaml.safe_dump(HELM_CLUSTER_YAML))
    port = free_port()
    podman.run("volume", "create", volume)
    try:
        podman.run(
            "run", "-d", "--name", name,
            "--entrypoint", UPSTREAM_BINARY,
            "--workdir", "/usr/local/flame",
            "-e", "RUST_LOG=info", "-e", "FLAME_HOME=/usr/local/flame",
            "-v", f"{config}:{UPSTREAM_CONFIG}:ro",
            "-v", f"{volume}:/var/lib/flame/cache",
            "--mount", "type=tmpfs,destination=/usr/local/flame/logs",
            "-p", f"127.0.0.1:{port}:9090",
            image, "--config", UPSTREAM_CONFIG,
        )  # fmt: skip
        podman.wait_healthy(name)
        uid, _ = podman.process_ids(name)
        assert uid != 0
        address = podman.inspect(name)["NetworkSettings"]["IPAddress"]
        log = podman.logs(name)
        assert f"configuration: {UPSTREAM_CONFIG}" in log
        assert "names no address of this machine" in log and f"advertising grpc://{address}:9090" in log

        client = flamepy_client(tmp_path / "client", f"grpc://127.0.0.1:{port}")
        (ref,) = client("put_objects", "helm-app/s1", [PAYLOAD])
        assert ref.endpoint == f"grpc://{address}:9090", "advertised as upstream: network_interface's address"
        published = type(ref)(endpoint=f"grpc://127.0.0.1:{port}", key=ref.key, version=ref.version)
        assert client("get_objects", [published], False) == [PAYLOAD]
        stop_and_check_exit(podman, name, lambda: podman.run("stop", "-t", str(GRACE), name))
    finally:
        podman.run("rm", "-f", name, check=False)
        podman.run("volume", "rm", "-f", volume, check=False)
