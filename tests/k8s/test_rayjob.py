"""The RayJob built for the paper spec against KubeRay's RayJob CRD (openAPIV3Schema, jsonschema),
its pod templates against the Kubernetes Pod schema, and the house security rules."""

from __future__ import annotations

import copy
import json
import shlex
import subprocess
import sys
from typing import Any

import pytest
import yaml

from m2rl.k8s import RayJobError, build_rayjob, check_name, needs_rayjob, rayjob_name, train_command
from m2rl.k8s.rayjob import MAX_NAME_LENGTH, SPEC_ENV
from m2rl.spec import load_spec, spec_from_dict
from tests.k8s.conftest import CRD_DIR, K8S_VERSIONS, REPO, pod_security_violations

jsonschema = pytest.importorskip("jsonschema")

PAPER = REPO / "examples" / "qwen3-4b-paper.yaml"
DATA, BASE, OUT = ("s3://m2rl-studies/runs/data/train/math.parquet", "s3://m2rl-studies/models/qwen3-4b-sft",
                   "s3://m2rl-studies/runs/models/single-math")
CMD = train_command("math", DATA, BASE, OUT)


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


FAKE_RAY = """#!/bin/sh
# Stands in for the `ray` CLI in the submitter pod: records its argv (one JSON line), and answers
# `ray job status` with "not found" (exit 1), as before the first submission.
exec "$PYTHON" -c 'import json, os, sys
open(os.environ["FAKE_RAY_LOG"], "a").write(json.dumps(sys.argv[1:]) + "\\n")
sys.exit(1 if sys.argv[1:3] == ["job", "status"] else 0)' "$@"
"""


def _run_submitter(tmp_path, manifest, job_id="m2rl-paper-math-bcdfg"):
    """KubeRay's submitter command (reproduced) run by bash with a recording `ray`; returns each `ray` argv."""
    from m2rl.k8s.rayjob import kuberay_submitter_command

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "ray").write_text(FAKE_RAY)
    (bin_dir / "ray").chmod(0o755)
    log = tmp_path / "ray-calls.jsonl"
    log.write_text("")
    cmd = kuberay_submitter_command(manifest, dashboard_url="m2rl-paper-math-x2b4c-head-svc.m2rl.svc.cluster.local:8265",
                                    job_id=job_id)
    done = subprocess.run(cmd, env={"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_RAY_LOG": str(log),
                                    "PYTHON": sys.executable},
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return cmd, [json.loads(line) for line in log.read_text().splitlines()]


def _opt(argv, flag):
    return argv[argv.index(flag) + 1]


def test_submitter_command_is_kuberay_v142s(paper):
    """The reproduction of ray-operator v1.4.2 GetK8sJobCommand, word by word, for the paper's RayJob."""
    from m2rl.k8s.rayjob import KUBERAY_VERSION, go_quote, kuberay_submitter_command

    assert KUBERAY_VERSION == "1.4.2"
    manifest = build_rayjob(paper, CMD, name="m2rl-paper-math")
    bash, opts, dashdash, script = kuberay_submitter_command(manifest, dashboard_url="h:8265", job_id="m2rl-j")
    assert [bash, opts, dashdash] == ["/bin/bash", "-ce", "--"]
    body = manifest["spec"]
    runtime_json = json.dumps(yaml.safe_load(body["runtimeEnvYAML"]), sort_keys=True, separators=(",", ":"))
    assert script == (
        "if ! ray job status --address http://h:8265 m2rl-j >/dev/null 2>&1 ; then "
        "ray job submit --address http://h:8265 --no-wait "
        f"--runtime-env-json {go_quote(runtime_json)} "
        '--metadata-json "{\\"m2rl.study\\":\\"qwen3-4b-mix-vs-merge\\"}" '
        f"--submission-id m2rl-j -- {' '.join(CMD)} ; fi ; ray job logs --address http://h:8265 --follow m2rl-j"
    )
    assert go_quote('a"b\\c\né\u00a0') == '"a\\"b\\\\c\\né\\u00a0"'  # strconv.Quote's escapes


def test_the_job_carries_the_spec_and_ray_receives_exactly_the_command(paper, tmp_path):
    """Through KubeRay's submitter (bash, the `ray job submit` words, list2cmdline as Ray's CLI re-joins them):
    the entrypoint Ray gets is the train command word for word, and the runtime env carries the spec back
    unchanged, `$` and backquotes included, with no spec in the submitter pod's own environment."""
    from subprocess import list2cmdline

    data = paper.model_dump()
    data["name"] = "paper <&> 'q' \"dq\" \\ é"
    data["tracking"]["experiment"] = "exp-$HOME-`id`-${X:-y}"
    spec = spec_from_dict(data)
    manifest = build_rayjob(spec, CMD, name="m2rl-paper-math")
    env = yaml.safe_load(manifest["spec"]["runtimeEnvYAML"])["env_vars"]
    assert "$" not in env[SPEC_ENV] and "`" not in env[SPEC_ENV]
    assert manifest["spec"]["entrypoint"] == " ".join(CMD)
    _, calls = _run_submitter(tmp_path, manifest)
    assert [c[:2] for c in calls] == [["job", "status"], ["job", "submit"], ["job", "logs"]]
    submit = calls[1]
    entry = submit[submit.index("--") + 1:]
    assert list2cmdline(entry) == " ".join(CMD) and entry == CMD  # what Ray then runs with /bin/sh
    assert _opt(submit, "--submission-id") == "m2rl-paper-math-bcdfg"
    runtime = json.loads(_opt(submit, "--runtime-env-json"))
    assert runtime["env_vars"]["MLFLOW_TRACKING_URI"] == spec.tracking.uri
    for text in (runtime["env_vars"][SPEC_ENV],):
        assert spec_from_dict(json.loads(text)) == spec and spec_from_dict(yaml.safe_load(text)) == spec
    assert json.loads(_opt(submit, "--metadata-json")) == {"m2rl.study": spec.name}


def test_the_old_shell_entrypoint_is_what_kuberay_truncates(paper, tmp_path):
    """The reproduction shows the bug it guards against (KubeRay #3802): an entrypoint with `&&` reaches Ray
    as its first command only; the rest runs in the submitter. build_rayjob refuses such commands."""
    manifest = copy.deepcopy(build_rayjob(paper, CMD, name="m2rl-paper-math"))
    manifest["spec"]["entrypoint"] = f"mkdir -p {tmp_path}/m2rl && touch {tmp_path}/ran-in-submitter && exec true"
    _, calls = _run_submitter(tmp_path, manifest)
    submit = calls[1]
    assert submit[submit.index("--") + 1:] == ["mkdir", "-p", f"{tmp_path}/m2rl"]
    assert (tmp_path / "ran-in-submitter").exists()
    for bad in (["m2rl", "train", "a && b"], ["m2rl", "train", "x;y"], ["m2rl", "$HOME"], ["m2rl", "a b"]):
        with pytest.raises(RayJobError, match=r"command\[\d\]: .*KubeRay's submitter"):
            build_rayjob(paper, bad, name="m2rl-x")


def test_shell_active_env_values_and_names_are_refused(paper):
    spec = spec_from_dict({**paper.model_dump(), "kubernetes": {**paper.kubernetes.model_dump(),
                                                                "ray_env": {"TOKEN_HINT": "a$b"}}})
    with pytest.raises(RayJobError, match="env TOKEN_HINT: .*'\\$'"):
        build_rayjob(spec, CMD, name="m2rl-x")
    with pytest.raises(RayJobError, match="name: the study name"):
        build_rayjob(spec_from_dict({**paper.model_dump(), "name": "s`id`"}), CMD, name="m2rl-x")


def test_a_spec_too_big_for_the_submitter_is_refused(paper):
    data = paper.model_dump()
    data["kubernetes"]["ray_env"] = {"BIG": "x" * 140_000}
    with pytest.raises(RayJobError, match="runtimeEnvYAML: .*131072-byte"):
        build_rayjob(spec_from_dict(data), CMD, name="m2rl-x")


def test_m2rl_train_reads_the_spec_from_the_job_env(paper, tmp_path, monkeypatch):
    """`m2rl train --spec-env M2RL_SPEC_YAML` takes the spec the RayJob carries; bad or missing: exit 2, named."""
    from typer.testing import CliRunner

    from m2rl.cli import app

    value = yaml.safe_load(build_rayjob(paper, CMD, name="m2rl-x")["spec"]["runtimeEnvYAML"])["env_vars"][SPEC_ENV]
    monkeypatch.setenv(SPEC_ENV, value)
    result = CliRunner().invoke(app, [*CMD[1:], "--dry-run"])
    assert result.exit_code == 0, result.output
    assert shlex.split(result.output.strip().splitlines()[-1])[:3] == ["python", "-m", "openrlhf.cli.train_ppo_ray"]
    monkeypatch.setenv(SPEC_ENV, value.replace('"samples_per_prompt":16', '"samples_per_prompt":0'))
    bad = CliRunner().invoke(app, [*CMD[1:], "--dry-run"])
    assert bad.exit_code == 2 and "$M2RL_SPEC_YAML: invalid spec" in bad.output
    assert "train.samples_per_prompt: must be >= 1" in bad.output
    monkeypatch.delenv(SPEC_ENV)
    missing = CliRunner().invoke(app, [*CMD[1:], "--dry-run"])
    assert missing.exit_code == 2 and "--spec-env: environment variable M2RL_SPEC_YAML is not set" in missing.output
    both = CliRunner().invoke(app, ["train", str(PAPER), "--spec-env", SPEC_ENV, "--run", "math", "--dry-run"])
    assert both.exit_code == 2 and "not both" in both.output


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

    result = CliRunner().invoke(app, ["rayjob", str(PAPER), "--domain", "math", "--data", DATA, "--base", BASE,
                                      "--out", OUT, "--dry-run"])
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
    assert CMD[:4] == ["m2rl", "train", "--spec-env", SPEC_ENV] and ctx.params["spec_env"] == SPEC_ENV
    assert ctx.params["spec"] is None and ctx.params["run"] == "math"
    assert (ctx.params["data"], ctx.params["base"], ctx.params["out"]) == (DATA, BASE, OUT)
