"""Helpers of the deployment tests: render the chart with the real Helm engine, walk pod specs."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "m2rl"
CRD_DIR = REPO.parent / "shared" / "schemas"
RELEASE, NAMESPACE = "m2rl", "m2rl"
# The Kubernetes versions the chart claims (Chart.yaml kubeVersion >=1.28) and that
# kubernetes-validate ships schemas for: the oldest and the newest.
K8S_VERSIONS = ("1.28.0", "1.37.0")

# Each toggle of the chart the issue names, as the values a user would pass.
TOGGLES: dict[str, dict[str, Any]] = {
    "default": {},
    "external-s3": {"s3": {"endpoint": "https://s3.example.internal:9000", "bucket": "team-bucket",
                           "existingSecret": "team-s3"}},
    "bundled-minio": {"minio": {"enabled": True}},
    "rewards-off": {"rewards": {"enabled": False}},
    "ingress-on": {"mlflow": {"ingress": {"enabled": True, "host": "mlflow.example.com", "className": "nginx",
                                          "tls": {"enabled": True, "secretName": "mlflow-tls"}}}},
    "external-postgres": {"postgresql": {"enabled": False, "external": {"existingSecret": "mlflow-db"}}},
    "kfp-standalone": {"kfp": {"runNamespace": "kubeflow"}},
}

POD_KINDS = {"Deployment", "StatefulSet", "Job", "Pod", "DaemonSet", "ReplicaSet", "CronJob"}


def render(values: dict[str, Any] | None = None, *, namespace: str = NAMESPACE) -> dict[str, str]:
    """{template path: rendered text} from the real Helm engine (schema validation included)."""
    import helm_python as helm

    with helm.Chart.load(str(CHART)) as chart:
        return chart.render(copy.deepcopy(values) if values else None, name=RELEASE, namespace=namespace,
                            is_install=True)


def objects(values: dict[str, Any] | None = None, **kw: Any) -> list[dict[str, Any]]:
    """Every Kubernetes object of a render (hooks and the test pod included)."""
    out = []
    for path, text in sorted(render(values, **kw).items()):
        if path.endswith(".txt"):
            continue
        out.extend(o for o in yaml.safe_load_all(text) if o)
    return out


def find(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    kind = obj["kind"]
    if kind == "Pod":
        return obj["spec"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind in POD_KINDS:
        return obj["spec"]["template"]["spec"]
    return None


def containers(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from spec.get("initContainers") or []
    yield from spec.get("containers") or []


def pod_security_violations(where: str, spec: dict[str, Any], *, require_no_token: bool = True) -> list[str]:
    """The house rules for any pod spec: non-root, no privilege escalation, no capabilities, sized."""
    bad = []
    psc = spec.get("securityContext") or {}
    if psc.get("runAsNonRoot") is not True:
        bad.append(f"{where}: pod securityContext.runAsNonRoot is not true")
    if psc.get("runAsUser") == 0:
        bad.append(f"{where}: pod runs as UID 0")
    if require_no_token and spec.get("automountServiceAccountToken") is not False:
        bad.append(f"{where}: automountServiceAccountToken is not false")
    for c in containers(spec):
        cw = f"{where}/{c['name']}"
        sc = c.get("securityContext") or {}
        if sc.get("runAsNonRoot") is not True:
            bad.append(f"{cw}: securityContext.runAsNonRoot is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{cw}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            bad.append(f"{cw}: privileged")
        if (sc.get("capabilities") or {}).get("drop") != ["ALL"]:
            bad.append(f"{cw}: capabilities.drop is not [ALL]")
        if (sc.get("capabilities") or {}).get("add"):
            bad.append(f"{cw}: adds capabilities")
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            for amount in ("cpu", "memory"):
                if amount not in (res.get(part) or {}):
                    bad.append(f"{cw}: no resources.{part}.{amount}")
        image = c.get("image", "")
        if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
            bad.append(f"{cw}: image {image!r} has no pinned tag")
    return bad


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Every toggle's objects, rendered once per module."""
    return {name: objects(values) for name, values in TOGGLES.items()}


@pytest.fixture(scope="session")
def kube(tmp_path_factory):
    """A real kube-apiserver + controller manager (v1.20.2, ../shared/k8s) in its own network namespace, with
    the namespaces m2rl and kubeflow and KubeRay v1.4.2's CRDs; stopped by its kube-down.sh."""
    from tests.k8s import apiserver

    why = apiserver.unavailable()
    if why:
        pytest.skip(f"no real API server: {why}")
    cluster = apiserver.Cluster.up(tmp_path_factory.mktemp("kube"))
    try:
        with apiserver.in_netns(cluster.netns):
            from kubernetes import client

            api = cluster.client()
            for ns in (NAMESPACE, "kubeflow"):
                client.CoreV1Api(api).create_namespace({"metadata": {"name": ns}})
            apiserver.create_crds(api, apiserver.kuberay_crds())  # established while the chart tests run
        yield cluster  # outside the namespace: only `in_kube` tests enter it
    finally:
        cluster.down()


@pytest.fixture
def in_kube(kube):
    """The test's thread (and the threads it starts) inside the API server's network namespace."""
    from tests.k8s import apiserver

    with apiserver.in_netns(kube.netns):
        yield kube
