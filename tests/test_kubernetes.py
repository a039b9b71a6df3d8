"""deploy/kubernetes/ (SPEC 11; issue 14, done-when 2): every manifest is
valid against the Kubernetes schemas that kubernetes-validate bundles
(strict: an unknown field is an error), checked with the network cut off;
and the pieces fit together: probes, ports, volumes, the non-root context,
the optional Secrets, and a flame-cluster.yaml that flame-cache reads
without a warning."""

from __future__ import annotations

import copy
import socket
from collections.abc import Iterator
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from flame_cache.app.config import load_config

MANIFESTS = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes"
VERSIONS = ("1.28.0", kubernetes_validate.latest_version())  # the oldest Kubernetes still common, and the newest known


def documents() -> list[dict]:
    found = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def by_kind(kind: str) -> list[dict]:
    return [doc for doc in documents() if doc["kind"] == kind]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any connection attempt fails the test: the schemas must come from the package."""

    def refuse(self: socket.socket, address: object) -> None:
        raise AssertionError(f"a connection to {address!r} during validation")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    yield


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_valid_offline(version: str, no_network: None) -> None:
    docs = documents()
    assert sorted(doc["kind"] for doc in docs) == ["ConfigMap", "Service", "Service", "StatefulSet"]
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_catches_a_mistake(no_network: None) -> None:
    broken = copy.deepcopy(by_kind("StatefulSet")[0])
    broken["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}  # the wrong case
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest() -> None:
    listed = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in MANIFESTS.glob("*.yaml") if p.name != "kustomization.yaml")


def pod() -> dict:
    return by_kind("StatefulSet")[0]["spec"]["template"]


def container() -> dict:
    (only,) = pod()["spec"]["containers"]
    return only


def test_probes_ports_and_services_fit() -> None:
    statefulset = by_kind("StatefulSet")[0]
    ports = {port["name"]: port["containerPort"] for port in container()["ports"]}
    assert ports == {"flight": 9090, "http": 9091}
    assert container()["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container()["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    labels = pod()["metadata"]["labels"]
    services = {service["metadata"]["name"]: service["spec"] for service in by_kind("Service")}
    for spec in services.values():
        assert spec["selector"].items() <= labels.items()
        assert {port["name"]: port["port"] for port in spec["ports"]} == ports
    assert services[statefulset["spec"]["serviceName"]]["clusterIP"] == "None"
    assert statefulset["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_volumes_claim_config_and_optional_secrets() -> None:
    statefulset = by_kind("StatefulSet")[0]
    mounts = {mount["name"]: mount for mount in container()["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod()["spec"]["volumes"]}
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert mounts[claim["metadata"]["name"]]["mountPath"] == "/var/lib/flame/cache"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    config = by_kind("ConfigMap")[0]
    assert volumes["config"]["configMap"]["name"] == config["metadata"]["name"]
    assert mounts["config"]["mountPath"] == "/etc/flame/flame-cluster.yaml"
    assert container()["args"] == ["--config", "/etc/flame/flame-cluster.yaml"]
    assert volumes["tls"]["secret"]["optional"] is True and mounts["tls"]["mountPath"] == "/etc/flame/tls"
    assert volumes["tokens"]["secret"]["optional"] is True and mounts["tokens"]["mountPath"] == "/run/secrets/flame-cache"
    assert set(mounts) - set(volumes) == {claim["metadata"]["name"]}


def test_runs_as_non_root_with_fs_group() -> None:
    context = pod()["spec"]["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] != 0 and context["fsGroup"] == context["runAsGroup"]
    own = container()["securityContext"]
    assert own["allowPrivilegeEscalation"] is False and own["readOnlyRootFilesystem"] is True
    assert own["capabilities"]["drop"] == ["ALL"]


def test_the_config_map_is_read_without_warnings_and_fits_the_grace_period(tmp_path: Path) -> None:
    path = tmp_path / "flame-cluster.yaml"
    path.write_text(by_kind("ConfigMap")[0]["data"]["flame-cluster.yaml"])
    config = load_config(path, env={})
    assert config.warnings == ()
    assert str(config.storage) == "/var/lib/flame/cache"
    assert config.http_endpoint is not None and config.http_endpoint.port == 9091
    assert config.shutdown_timeout < pod()["spec"]["terminationGracePeriodSeconds"]
    assert config.log.format == "json"
