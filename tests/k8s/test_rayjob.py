"""The RayJob built for the paper spec against KubeRay's RayJob CRD (openAPIV3Schema, jsonschema),
its pod templates against the Kubernetes Pod schema, and the house security rules."""

from __future__ import annotations

import copy
import subprocess
from typing import Any

import pytest
import yaml

from m2rl.k8s import RayJobError, build_rayjob, check_name, needs_rayjob, rayjob_name, train_command
from m2rl.k8s.rayjob import IN_CLUSTER_SPEC, MAX_NAME_LENGTH, SPEC_ENV
from m2rl.spec import load_spec, spec_from_dict
from tests.k8s.conftest import CRD_DIR, K8S_VERSIONS, REPO, pod_security_violations

jsonschema = pytest.importorskip("jsonschema")

PAPER = REPO / "examples" / "qwen3-4b-paper.yaml"
CMD = train_command("math", "s3://m2rl-studies/runs/data/train/math.parquet",
                    "s3://m2rl-studies/models/qwen3-4b-sft", "s3://m2rl-studies/runs/models/single-math")


def _strict(schema: Any) -> Any:
    """The CRD schema with unknown fields rejected: the API server would silently prune them."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if ("properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@pytest.fixture(scope="module")
def rayjob_validator():
    path = CRD_DIR / "ray.io_rayjobs.yaml"
    if not path.is_file():
        pytest.skip(f"{path} (the upstream KubeRay CRD, shared test data) is not present")
    crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return jsonschema.Draft7Validator(_strict(v1["schema"]["openAPIV3Schema"]))


def _errors(validator, manifest) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(manifest)]


@pytest.fixture(scope="module")
def paper():
    return load_spec(PAPER)


def _multi_node(spec, nodes=2):
    data = spec.model_dump()
    data["train"]["nodes"] = nodes
    data["kubernetes"]["ray_job_deadline_seconds"] = 86400
    data["kubernetes"]["ray_job_backoff_limit"] = 1
    return spec_from_dict(data)


def test_paper_rayjob_validates_against_the_crd(rayjob_validator, paper):
    manifest = build_rayjob(paper, CMD, name=rayjob_name(paper.name, "math"))
    assert _errors(rayjob_validator, manifest) == []
    assert manifest["apiVersion"] == "ray.io/v1" and manifest["kind"] == "RayJob"
    assert manifest["metadata"]["namespace"] == "m2rl"


def test_multi_node_rayjob_validates_and_is_sized_from_the_spec(rayjob_validator, paper):
    spec = _multi_node(paper, nodes=4)
    assert needs_rayjob(spec) and not needs_rayjob(paper)
    m = build_rayjob(spec, CMD, name="m2rl-paper-math")
    assert _errors(rayjob_validator, m) == []
    body = m["spec"]
    assert body["shutdownAfterJobFinishes"] is True
    assert body["ttlSecondsAfterFinished"] == 3600
    assert body["activeDeadlineSeconds"] == 86400
    assert body["backoffLimit"] == 1
    assert body["submissionMode"] == "K8sJobMode"
    cluster = body["rayClusterSpec"]
    assert cluster["rayVersion"] == "2.55.0"
    (group,) = cluster["workerGroupSpecs"]
    assert group["replicas"] == group["minReplicas"] == group["maxReplicas"] == 4
    worker = group["template"]["spec"]
    (wc,) = worker["containers"]
    assert wc["image"] == "ghcr.io/m2rl/m2rl-gpu:0.1.0"
    assert wc["resources"]["limits"] == {"cpu": "64", "memory": "512Gi", "nvidia.com/gpu": 8}
    assert worker["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert worker["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    shm = [v for v in worker["volumes"] if v["name"] == "dshm"]
    assert shm == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Gi"}}]
    head = cluster["headGroupSpec"]
    assert "nvidia.com/gpu" not in head["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert head["rayStartParams"]["num-gpus"] == "0"
    # Without a deadline in the spec, the RayJob has none.
    assert "activeDeadlineSeconds" not in build_rayjob(paper, CMD, name="m2rl-x")["spec"]


def _pod_templates(manifest):
    body = manifest["spec"]
    yield "head", body["rayClusterSpec"]["headGroupSpec"]["template"]
    for g in body["rayClusterSpec"]["workerGroupSpecs"]:
        yield f"worker-{g['groupName']}", g["template"]
    yield "submitter", body["submitterPodTemplate"]


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_pod_templates_are_valid_pods_and_follow_the_security_rules(paper, version):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    manifest = build_rayjob(_multi_node(paper), CMD, name="m2rl-paper-math")
    for role, template in _pod_templates(manifest):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"x-{role}", **template["metadata"]},
               "spec": template["spec"]}
        kubernetes_validate.validate(pod, version, strict=True)
        assert pod_security_violations(role, template["spec"]) == []
        assert template["metadata"]["labels"]["app.kubernetes.io/part-of"] == "m2rl"


def test_credentials_come_only_from_secret_references(paper):
    manifest = build_rayjob(paper, CMD, name="m2rl-paper-math", env={"EXTRA": "1"})
    text = yaml.safe_dump(manifest)
    assert "AWS_SECRET_ACCESS_KEY" not in text and "MLFLOW_TRACKING_PASSWORD" not in text
    for role, template in _pod_templates(manifest):
        if role == "submitter":
            continue
        (c,) = template["spec"]["containers"]
        assert c["envFrom"] == [{"secretRef": {"name": "m2rl-s3"}},
                                {"secretRef": {"name": "m2rl-mlflow", "optional": True}}]
        assert {"name": "EXTRA", "value": "1"} in c["env"]


def test_the_job_carries_the_spec_and_runs_the_command(paper, tmp_path):
    manifest = build_rayjob(paper, CMD, name="m2rl-paper-math")
    env = yaml.safe_load(manifest["spec"]["runtimeEnvYAML"])["env_vars"]
    assert spec_from_dict(yaml.safe_load(env[SPEC_ENV])) == paper
    assert env["MLFLOW_TRACKING_URI"] == paper.tracking.uri
    # Run the entrypoint's shell (the spec file written under a temporary root) with a command that
    # reads the spec back: `m2rl validate` of the written file must pass.
    entry = manifest["spec"]["entrypoint"]
    assert entry.endswith(" ".join(CMD[:2]) + " " + IN_CLUSTER_SPEC + " " + " ".join(CMD[3:]))
    local = str(tmp_path / "spec.yaml")
    probe = build_rayjob(paper, ["m2rl", "validate", IN_CLUSTER_SPEC], name="m2rl-probe")["spec"]["entrypoint"]
    probe = probe.replace(IN_CLUSTER_SPEC, local).replace("mkdir -p /tmp/m2rl", f"mkdir -p {tmp_path}")
    m2rl = str(REPO / ".venv" / "bin" / "m2rl")
    probe = probe.replace("exec m2rl ", f"exec {m2rl} ") if (REPO / ".venv" / "bin" / "m2rl").exists() else probe
    done = subprocess.run(["bash", "-c", probe], env={"PATH": "/usr/bin:/bin", SPEC_ENV: env[SPEC_ENV]},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert spec_from_dict(yaml.safe_load(open(local).read())) == paper


@pytest.mark.parametrize("bad", ["", "Upper", "a" * (MAX_NAME_LENGTH + 1), "-lead", "trail-", "under_score"])
def test_bad_names_are_refused(paper, bad):
    with pytest.raises(RayJobError, match="name"):
        build_rayjob(paper, CMD, name=bad)


def test_bad_commands_are_refused(paper):
    with pytest.raises(RayJobError, match="command"):
        build_rayjob(paper, [], name="m2rl-x")
    with pytest.raises(RayJobError, match="command"):
        build_rayjob(paper, ["m2rl", ""], name="m2rl-x")


@pytest.mark.parametrize("parts", [("qwen3-4b-mix-vs-merge", "math"), ("A Very Long Study Name " * 5, "agent"),
                                   ("", "mix"), ("__", "if")])
def test_generated_names_are_valid_and_stable(parts):
    name = rayjob_name(*parts)
    assert check_name(name) == name and len(name) <= MAX_NAME_LENGTH
    assert rayjob_name(*parts) == name
    assert rayjob_name(parts[0], parts[1] + "x") != name


def test_cli_dry_run_prints_a_valid_manifest(rayjob_validator):
    from typer.testing import CliRunner

    from m2rl.cli import app

    result = CliRunner().invoke(app, ["rayjob", str(PAPER), "--domain", "math", "--data", CMD[6], "--base", CMD[8],
                                      "--out", CMD[10], "--dry-run"])
    assert result.exit_code == 0, result.output
    manifest = yaml.safe_load(result.stdout)
    assert _errors(rayjob_validator, manifest) == []
    bad = CliRunner().invoke(app, ["rayjob", str(PAPER), "--domain", "poetry", "--data", "d", "--base", "b",
                                   "--out", "o", "--dry-run"])
    assert bad.exit_code == 2 and "--domain" in bad.output


def test_strict_schema_catches_unknown_fields(rayjob_validator, paper):
    manifest = copy.deepcopy(build_rayjob(paper, CMD, name="m2rl-x"))
    manifest["spec"]["shutdownAfterJobFinish"] = True
    manifest["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["resource"] = {}
    errors = _errors(rayjob_validator, manifest)
    assert len(errors) == 2 and all("Additional properties" in e for e in errors)


def test_train_command_is_what_m2rl_train_accepts():
    """The RayJob's driver command parses with the real `m2rl train` command line (no option it lacks)."""
    import typer.main

    from m2rl.cli import app as cli_app

    train = typer.main.get_command(cli_app).commands["train"]
    ctx = train.make_context("train", list(CMD[2:]))
    assert ctx.params["run"] == "math" and ctx.params["data"] == CMD[6] and ctx.params["out"] == CMD[10]
