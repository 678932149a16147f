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

from fishpredict.app.service import route_names

kubernetes_validate = pytest.importorskip("kubernetes_validate")

ROOT = Path(__file__).resolve().parents[2]
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


# ---- KServe: a ServingRuntime and an InferenceService (docker/k8s/kserve/) -------------

KSERVE = K8S / "kserve"
SCHEMAS = Path(__file__).with_name("data") / "kserve"
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def kserve_manifests() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(KSERVE.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["kind"] not in out, f"two {doc['kind']} manifests"
            out[doc["kind"]] = doc
    return out


def strict(schema: Any) -> Any:
    """A CRD's structural schema as the API server applies it with strict field
    validation (kubectl's default): an object's unknown fields are errors, unless the
    schema keeps them (``x-kubernetes-preserve-unknown-fields``) or maps any key."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def crd_schema(kind: str) -> dict[str, Any]:
    import gzip
    import json

    with gzip.open(SCHEMAS / f"{kind.lower()}.schema.json.gz", "rt", encoding="utf-8") as f:
        doc: dict[str, Any] = json.load(f)
    return doc


def crd_errors(doc: dict[str, Any]) -> list[str]:
    import jsonschema

    crd = crd_schema(doc["kind"])
    assert doc["apiVersion"] == f"{crd['group']}/{crd['version']}", "the CRD's stored version"
    validator = jsonschema.Draft7Validator(strict(crd["schema"]))
    return [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(doc)]


def runtime_container() -> dict[str, Any]:
    (c,) = kserve_manifests()["ServingRuntime"]["spec"]["containers"]
    return c  # type: ignore[no-any-return]


def test_kserve_manifests_are_a_runtime_and_a_service_using_it() -> None:
    docs = kserve_manifests()
    assert set(docs) == {"ServingRuntime", "InferenceService"}
    runtime, isvc = docs["ServingRuntime"], docs["InferenceService"]
    formats = {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
    assert formats == {"sklearn", "skops"}
    assert runtime["spec"]["protocolVersions"] == ["v2"]
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["modelFormat"]["name"] in formats and model["protocolVersion"] == "v2"
    assert re.fullmatch(r"(gs|s3|pvc|https?)://\S+", model["storageUri"])
    for doc in docs.values():
        assert DNS_LABEL.fullmatch(doc["metadata"]["name"])
    assert runtime_container()["name"] == "kserve-container", "where KServe mounts /mnt/models"


@pytest.mark.parametrize("kind", ["ServingRuntime", "InferenceService"])
def test_kserve_manifests_match_kserves_crd_schemas(kind: str) -> None:
    doc = kserve_manifests()[kind]
    assert crd_errors(doc) == []
    assert "github.com/kserve/kserve" in crd_schema(kind)["source"]


def test_kserve_crd_check_can_fail() -> None:
    docs = kserve_manifests()
    runtime = docs["ServingRuntime"]
    runtime["spec"]["containers"][0]["readinessProb"] = runtime["spec"]["containers"][0].pop(
        "readinessProbe")
    runtime["spec"]["supportedModelFormats"][0]["priority"] = 0
    errors = crd_errors(runtime)
    assert any("readinessProb" in e for e in errors) and any("priority" in e for e in errors)
    isvc = docs["InferenceService"]
    isvc["spec"]["predictor"]["model"]["storageURI"] = "gs://x"
    assert crd_errors(isvc)


@pytest.mark.parametrize("version", VERSIONS)
def test_runtime_pod_validates_as_kubernetes_core(version: str) -> None:
    """The runtime's container and volumes, in a Pod, pass Kubernetes' own schema."""
    runtime = kserve_manifests()["ServingRuntime"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "fishpredict-runtime"},
           "spec": {"containers": runtime["spec"]["containers"],
                    "volumes": runtime["spec"]["volumes"]}}
    assert kubernetes_validate.validate(pod, version, strict=True)


def test_runtime_probes_are_the_v2_health_routes_on_the_served_port() -> None:
    c = runtime_container()
    routes = set(route_names())
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    (port,) = c["ports"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] in routes
        assert c[probe]["httpGet"]["port"] == port["containerPort"]
    assert str(port["containerPort"]) == option(c["args"], "--port") == "8080"
    assert option(c["args"], "--host") == "0.0.0.0"
    assert option(c["args"], "--models").endswith("=/mnt/models"), "KServe's model mount"


def test_runtime_runs_as_the_images_user_on_a_read_only_root() -> None:
    c = runtime_container()
    users = [s["value"] for s in DockerfileParser(str(ROOT / "docker" / "Dockerfile")).structure
             if s["instruction"] == "USER"]
    assert str(c["securityContext"]["runAsUser"]) == users[-1].split(":")[0]
    assert c["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"]}
    deployment = yaml.safe_load((K8S / "deployment.yaml").read_text())
    assert c["image"] == deployment["spec"]["template"]["spec"]["containers"][0]["image"]


def _dockerfile_cmd() -> list[str]:
    import json

    structure = DockerfileParser(str(ROOT / "docker" / "Dockerfile")).structure
    assert not [s for s in structure if s["instruction"] == "ENTRYPOINT"], (
        "no ENTRYPOINT: a container's command replaces the image's CMD whole")
    (cmd,) = [s["value"] for s in structure if s["instruction"] == "CMD"]
    argv: list[str] = json.loads(cmd)
    return argv


def test_runtime_command_is_the_images_console_script_with_real_options() -> None:
    import subprocess
    import sys
    import tomllib

    c = runtime_container()
    assert c["command"] == _dockerfile_cmd()[:2] == ["fishpredict", "serve"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "fishpredict" in scripts, "the console script the image's pip install creates"
    runs = " ".join(s["value"] for s in DockerfileParser(str(ROOT / "docker" / "Dockerfile"))
                    .structure if s["instruction"] == "RUN")
    assert re.search(r'"fishpredict\[[^\]]*skops[^\]]*\]"', runs), "skops models load"
    done = subprocess.run([sys.executable, "-m", "fishpredict", "serve", "--help"],
                          capture_output=True, text=True, timeout=60, check=True)
    known = set(re.findall(r"(--[a-z][a-z0-9-]*)", done.stdout))
    used = [a for a in c["args"] if a.startswith("--")]
    assert used and set(used) <= known, set(used) - known


def test_runtime_command_serves_a_mounted_model_over_v2(tmp_path: Path) -> None:
    """The runtime's command and args, run for real (port 0 and loopback instead of
    8080 and 0.0.0.0), on a directory laid out as KServe's storage initializer does."""
    import json
    import selectors
    import subprocess
    import sys
    import time
    import urllib.request

    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    mnt = tmp_path / "mnt" / "models"
    mnt.mkdir(parents=True)
    X, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(X, y), mnt / "model.joblib")
    name = kserve_manifests()["InferenceService"]["metadata"]["name"]
    args = [a.replace("{{.Name}}", name).replace("/mnt/models", str(mnt))
            for a in runtime_container()["args"]]
    args[args.index("--port") + 1] = "0"
    args[args.index("--host") + 1] = "127.0.0.1"
    proc = subprocess.Popen([sys.executable, "-m", *runtime_container()["command"], *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline, line = time.monotonic() + 60, ""
        while not line and time.monotonic() < deadline and proc.poll() is None:
            if sel.select(timeout=1):
                line = proc.stdout.readline()
        match = re.search(r"on http://127\.0\.0\.1:(\d+)", line)
        assert match, f"serve did not start: {line!r} {proc.stderr.read() if proc.poll() else ''}"
        base = f"http://127.0.0.1:{match.group(1)}"
        probes = runtime_container()
        for probe in ("readinessProbe", "livenessProbe"):
            with urllib.request.urlopen(base + probes[probe]["httpGet"]["path"], timeout=10) as r:
                assert r.status == 200
        body = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64",
                            "data": [6.8, 2.8, 4.8, 1.4, 6.0, 3.4, 4.5, 1.6]}]}
        request = urllib.request.Request(f"{base}/v2/models/{name}/infer",
                                         data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as r:
            answer = json.load(r)
        assert answer["model_name"] == name
        assert answer["outputs"][0]["data"] == [1, 1]
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
