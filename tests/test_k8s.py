"""docker/k8s/: the manifests validate against the Kubernetes JSON schemas
(offline, through kubernetes-validate) and agree with the image and the
HTTP contract: probe paths are routes, ports and users match the Dockerfile.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser

from fishpredict.contract import route_names

kubernetes_validate = pytest.importorskip("kubernetes_validate")

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "docker" / "k8s"
#: the oldest Kubernetes the manifests promise to work on, and the newest schema shipped
VERSIONS = ("1.27.0", kubernetes_validate.latest_version())


def manifests() -> dict[str, dict[str, Any]]:
    """Every manifest in docker/k8s, by kind."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["kind"] not in out, f"two {doc['kind']} manifests"
            out[doc["kind"]] = doc
    return out


def container() -> dict[str, Any]:
    containers: list[dict[str, Any]] = manifests()["Deployment"]["spec"]["template"]["spec"][
        "containers"
    ]
    assert len(containers) == 1
    return containers[0]


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_the_expected_kinds_are_there() -> None:
    assert set(manifests()) >= {"Deployment", "Service", "HorizontalPodAutoscaler"}


@pytest.mark.parametrize("version", VERSIONS)
def test_manifests_validate_strictly(version: str) -> None:
    for kind, doc in manifests().items():
        assert kubernetes_validate.validate(doc, version, strict=True), kind


def test_validation_can_fail() -> None:
    doc = manifests()["Deployment"]
    doc["spec"]["template"]["spec"]["containers"][0]["readinessProb"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)


def test_hpa_is_autoscaling_v2_and_targets_the_deployment() -> None:
    docs = manifests()
    hpa, deployment = docs["HorizontalPodAutoscaler"], docs["Deployment"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["apiVersion"], ref["kind"], ref["name"]) == (
        deployment["apiVersion"],
        "Deployment",
        deployment["metadata"]["name"],
    )
    assert hpa["spec"]["minReplicas"] == deployment["spec"]["replicas"] == 2
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]


def test_probes_hit_routes_of_the_contract() -> None:
    c = container()
    routes = set(route_names())
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    port_names = {p["name"] for p in c["ports"]}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] in routes
        assert get["port"] in port_names


def test_container_port_is_the_one_the_command_and_image_use() -> None:
    c = container()
    (port,) = c["ports"]
    assert str(port["containerPort"]) == option(c["command"], "--port")
    assert option(c["command"], "--host") == "0.0.0.0"
    expose = [
        s["value"]
        for s in DockerfileParser(str(ROOT / "docker" / "Dockerfile")).structure
        if s["instruction"] == "EXPOSE"
    ]
    assert expose == [str(port["containerPort"])]


def test_runs_as_the_images_non_root_user_on_a_read_only_root() -> None:
    deployment = manifests()["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    c = container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    users = [
        s["value"]
        for s in DockerfileParser(str(ROOT / "docker" / "Dockerfile")).structure
        if s["instruction"] == "USER"
    ]
    assert str(pod["securityContext"]["runAsUser"]) == users[-1].split(":")[0]
    # a read-only root still needs a writable /tmp
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert "/tmp" in mounts


def test_resources_are_bounded() -> None:
    resources = container()["resources"]
    for key in ("cpu", "memory"):
        assert key in resources["requests"] and key in resources["limits"]


def test_service_selects_the_pods_and_targets_the_named_port() -> None:
    docs = manifests()
    service, deployment = docs["Service"], docs["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in {p["name"] for p in container()["ports"]}


def test_image_is_the_one_compose_builds() -> None:
    compose = yaml.safe_load((ROOT / "docker" / "compose.socket.yaml").read_text())
    assert container()["image"] == compose["services"]["ml-1"]["image"]
    assert re.fullmatch(r"[a-z0-9.\-/]+:\d+\.\d+\.\d+", container()["image"]), "a pinned tag"
