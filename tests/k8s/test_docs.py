"""Every command in docs/deploy.md is one the tests render, run or check against the project."""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest
import yaml

from tests.k8s.conftest import CHART, CRD_DIR, REPO, find, objects, pod_spec, render

helm = pytest.importorskip("helm_python")

DOC = REPO / "docs" / "deploy.md"
PAPER = "examples/qwen3-4b-paper.yaml"


def commands() -> list[list[str]]:
    """The shell commands of the doc's bash blocks (continuation lines joined), as argument lists."""
    text = DOC.read_text()
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.strip().startswith("#"):
                out.append(shlex.split(line))
    return out


def _by(prefix: tuple[str, ...]) -> list[list[str]]:
    return [c for c in commands() if tuple(c[: len(prefix)]) == prefix]


def _flag_values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def _chart_installs() -> list[list[str]]:
    return [c for c in _by(("helm", "upgrade")) + _by(("helm", "install")) if "charts/m2rl" in c]


def _values(argv: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for expr in _flag_values(argv, "--set"):
        values = _deep(values, helm.parse_set_string(expr))
    return values


def _deep(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def test_every_command_is_known():
    known = {
        ("export",), ("kubectl", "apply"), ("kubectl", "wait"), ("helm", "repo"), ("helm", "install"),
        ("helm", "upgrade"), ("helm", "test"), ("kubectl", "create"), ("kubectl", "-n"), ("docker", "build"),
        ("docker", "push"), ("aws", "s3"), ("m2rl", "validate"), ("m2rl", "rayjob"), ("m2rl", "submit"),
    }
    cmds = commands()
    assert len(cmds) >= 20
    for c in cmds:
        assert tuple(c[:1]) in known or tuple(c[:2]) in known, f"docs/deploy.md runs an unchecked command: {c}"


@pytest.mark.parametrize("argv", _chart_installs(), ids=lambda a: " ".join(a[5:]))
def test_helm_commands_render_and_validate(argv):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    assert argv[1:5] == ["upgrade", "--install", "m2rl", "charts/m2rl"], "release m2rl: MLflow at m2rl-mlflow"
    namespace = _flag_values(argv, "--namespace")[0]
    values = _values(argv)
    objs = objects(values, namespace=namespace)
    for obj in objs:
        kubernetes_validate.validate(obj, "1.37.0", strict=True)
    assert find(objs, "Service", "m2rl-mlflow")


def test_chart_installs_cover_the_toggles():
    sets = [_values(a) for a in _chart_installs()]
    assert any(v.get("minio", {}).get("enabled") for v in sets)
    assert any(v.get("s3", {}).get("endpoint") for v in sets)
    assert any(v.get("mlflow", {}).get("ingress", {}).get("enabled") for v in sets)
    assert _by(("helm", "test")) == [["helm", "test", "m2rl", "--namespace", "m2rl"]]


def test_secrets_created_are_the_ones_the_chart_reads():
    created: dict[tuple[str, str], set[str]] = {}
    for c in _by(("kubectl", "-n")):
        if c[3:6] == ["create", "secret", "generic"]:
            keys = {a.split("=", 1)[1].split("=", 1)[0] for a in c if a.startswith("--from-literal=")}
            created[(c[2], c[6])] = keys
    assert ["kubectl", "create", "namespace", "m2rl"] in commands()
    for argv in _chart_installs():
        values = _values(argv)
        ns = _flag_values(argv, "--namespace")[0]
        objs = objects(values, namespace=ns)
        for obj in objs:
            spec = pod_spec(obj)
            if spec is None:
                continue
            for c in spec["containers"]:
                for env in c.get("env") or []:
                    ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                    if ref:
                        assert ref["key"] in created.get((ns, ref["name"]), set()), (argv, ref)
        (cm,) = find(objs, "ConfigMap", "kfp-launcher")
        run_ns = cm["metadata"]["namespace"]
        ref = yaml.safe_load(cm["data"]["providers"])["s3"]["default"]["credentials"]["secretRef"]
        assert {ref["accessKeyKey"], ref["secretKeyKey"]} <= created[(run_ns, ref["secretName"])]
    from m2rl.spec import load_spec

    spec = load_spec(REPO / PAPER)
    assert (spec.kubernetes.namespace, spec.kubernetes.s3_secret) in created


def test_images_built_are_the_ones_used():
    from m2rl.spec import load_spec

    spec = load_spec(REPO / PAPER)
    builds = {_flag_values(c, "-f")[0]: _flag_values(c, "-t")[0] for c in _by(("docker", "build"))}
    assert builds == {"images/cpu/Dockerfile": spec.kubernetes.cpu_image,
                      "images/gpu/Dockerfile": spec.kubernetes.gpu_image}
    assert all(c[-1] == "." for c in _by(("docker", "build"))), "built from the repository root"
    assert sorted(c[2] for c in _by(("docker", "push"))) == sorted(builds.values())
    chart_image = yaml.safe_load((CHART / "values.yaml").read_text())["image"]
    assert f"{chart_image['repository']}:{chart_image['tag']}" == spec.kubernetes.cpu_image


def test_uploads_land_where_the_spec_reads():
    from m2rl.spec import load_spec

    spec = load_spec(REPO / PAPER)
    targets = {c[-1] for c in _by(("aws", "s3"))}
    assert spec.base_model in targets
    paths = {s.path for d in spec.data.domains.values() for s in d.sources}
    assert paths <= targets


def test_m2rl_commands_run():
    from typer.testing import CliRunner

    from m2rl.cli import app

    runner = CliRunner()
    for c in _by(("m2rl", "validate")) + _by(("m2rl", "rayjob")):
        assert c[2] == PAPER
        result = runner.invoke(app, [c[1], str(REPO / PAPER), *c[3:]])
        assert result.exit_code == 0, (c, result.output)
        if c[1] == "rayjob":
            manifest = yaml.safe_load(result.stdout)
            assert manifest["kind"] == "RayJob"
            crd = CRD_DIR / "ray.io_rayjobs.yaml"
            if crd.is_file():
                import jsonschema

                from tests.k8s.test_rayjob import _errors, _strict

                schema = yaml.load(crd.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
                (v1,) = [v for v in schema["spec"]["versions"] if v["name"] == "v1"]
                assert _errors(jsonschema.Draft7Validator(_strict(v1["schema"]["openAPIV3Schema"])), manifest) == []


def test_submit_command_parses():
    import typer

    from m2rl.cli import app

    (submit,) = _by(("m2rl", "submit"))
    group = typer.main.get_command(app)
    if "submit" not in group.commands:
        pytest.skip("`m2rl submit` is not registered in this build (orchestration package)")
    ctx = group.commands["submit"].make_context("submit", [str(REPO / PAPER), *submit[3:]])
    assert ctx.params, "the doc's arguments parse"
    host = _flag_values(submit, "--host")[0]
    forwards = [c for c in _by(("kubectl", "-n")) if "port-forward" in c and "svc/ml-pipeline-ui" in c]
    assert forwards and host == f"http://localhost:{forwards[0][-1].split(':')[0]}"


def test_mlflow_port_forward_matches_the_service():
    forwards = [c for c in _by(("kubectl", "-n")) if "port-forward" in c and "svc/m2rl-mlflow" in c]
    (fwd,) = forwards
    (svc,) = find(objects(), "Service", "m2rl-mlflow")
    assert fwd[2] == "m2rl" and fwd[-1] == f"5000:{svc['spec']['ports'][0]['port']}"
    assert "port-forward svc/m2rl-mlflow 5000:5000" in render()["m2rl/templates/NOTES.txt"]


def test_kuberay_operator_version_serves_the_rayjob_fields():
    (install,) = [c for c in _by(("helm", "install")) if "kuberay/kuberay-operator" in c]
    version = _flag_values(install, "--version")[0]
    major, minor, _ = (int(x) for x in version.split("."))
    # submitterPodTemplate, shutdownAfterJobFinishes and ray.io/v1 RayJobs need KubeRay >= 1.1.
    assert (major, minor) >= (1, 1)
    assert any("helm" == c[0] and "repo" == c[1] and "add" == c[2] and c[3] == "kuberay" for c in commands())
