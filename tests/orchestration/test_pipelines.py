"""Compile every pipeline variant for the three example specs and check the compiled package."""

from __future__ import annotations

from pathlib import Path

import pytest

from m2rl.names import DOMAINS
from m2rl.orchestration.package import compile_package, read_package
from m2rl.spec import load_spec
from m2rl.workflow.plan import expert_input

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = ["smoke", "demo", "qwen3-4b-paper"]


def _tasks(pipeline_spec: dict) -> dict[str, dict]:
    """display name -> task of the root DAG."""
    return {t["taskInfo"]["name"]: t for t in pipeline_spec["root"]["dag"]["tasks"].values()}


def _executor(pipeline_spec: dict, task: dict) -> str:
    return pipeline_spec["components"][task["componentRef"]["name"]]["executorLabel"]


def _expected(spec, paradigms: list[str]) -> set[str]:
    names = {"data", "analyze", "report", "evaluate base"}
    if "merge" in paradigms:
        names |= {f"train {d}" for d in spec.domains} | {f"evaluate single-{d}" for d in spec.domains}
        names |= {f"merge {m.label}" for m in spec.merge.methods}
        names |= {f"evaluate merge-{m.label}" for m in spec.merge.methods}
    if "mix" in paradigms:
        names |= {"train mix", "evaluate mix"}
    if "distill" in paradigms:
        names |= {f"train {d}" for d in spec.domains if d not in spec.distill.teachers}
        names |= {f"evaluate single-{d}" for d in spec.domains if d not in spec.distill.teachers}
        names |= {"distill", "evaluate distill"}
    return names


@pytest.mark.parametrize("example", EXAMPLES)
@pytest.mark.parametrize("variant", ["study", "mix", "merge", "distill"])
def test_compiled_package(tmp_path, example, variant):
    spec = load_spec(REPO / "examples" / f"{example}.yaml")
    ps, platform = read_package(compile_package(spec, tmp_path / "p.yaml", variant))
    paradigms = {"study": spec.paradigms, "mix": ["mix"], "merge": ["merge"], "distill": ["distill"]}[variant]
    tasks = _tasks(ps)
    assert set(tasks) == _expected(spec, paradigms)  # one task per domain / method / model, nothing else
    executors = ps["deploymentSpec"]["executors"]
    k8s_exec = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    k8s = spec.kubernetes
    for name, task in tasks.items():
        label = _executor(ps, task)
        container, conf = executors[label]["container"], k8s_exec[label]
        gpu = name.split()[0] in ("train", "distill", "evaluate")
        res = k8s.gpu_step if gpu else k8s.cpu_step
        assert container["image"] == (k8s.gpu_image if gpu else k8s.cpu_image), name
        assert container["resources"]["resourceCpuRequest"] == res.cpu
        assert container["resources"]["resourceMemoryLimit"] == res.memory
        accel = container["resources"].get("accelerator")
        if gpu:
            assert accel == {"resourceType": "nvidia.com/gpu", "resourceCount": str(res.gpus),
                             "type": "nvidia.com/gpu", "count": str(res.gpus)}, name
            assert conf.get("nodeSelector", {}).get("labels", {}) == k8s.node_selector
            assert len(conf.get("tolerations", [])) == len(k8s.tolerations)
            shm = conf["emptyDirMounts"][0]
            assert (shm["mountPath"], shm["medium"], shm["sizeLimit"]) == ("/dev/shm", "Memory", k8s.shm_size)
        else:
            assert accel is None, name
            assert "nodeSelector" not in conf and "tolerations" not in conf and "emptyDirMounts" not in conf
        assert conf["imagePullPolicy"] == k8s.image_pull_policy
        secrets = {(s["secretName"], e["envVar"]) for s in conf["secretAsEnv"] for e in s["keyToEnv"]}
        assert {(k8s.s3_secret, "AWS_ACCESS_KEY_ID"), (k8s.s3_secret, "AWS_SECRET_ACCESS_KEY")} <= secrets
        if k8s.mlflow_secret:
            assert (k8s.mlflow_secret, "MLFLOW_TRACKING_PASSWORD") in secrets
        else:
            assert not any(e.startswith("MLFLOW_TRACKING_") for _, e in secrets)
        assert int(conf["securityContext"]["runAsUser"]) == k8s.run_as_user


def test_paper_cluster_settings(tmp_path):
    """The paper spec's node selector, toleration and secrets land on the GPU tasks as written."""
    spec = load_spec(REPO / "examples" / "qwen3-4b-paper.yaml")
    ps, platform = read_package(compile_package(spec, tmp_path / "p.yaml"))
    task = _tasks(ps)["train math"]
    conf = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][_executor(ps, task)]
    assert conf["nodeSelector"]["labels"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert conf["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert {s["secretName"] for s in conf["secretAsEnv"]} == {"m2rl-s3", "m2rl-mlflow"}
    res = ps["deploymentSpec"]["executors"][_executor(ps, task)]["container"]["resources"]
    assert res["accelerator"]["resourceCount"] == "8" and res["resourceMemoryRequest"] == "512Gi"


def test_dag_edges(tmp_path):
    """Artifacts flow data -> train -> evaluate and analyze -> report; merges wait for every expert."""
    spec = load_spec(REPO / "examples" / "smoke.yaml")
    ps, _ = read_package(compile_package(spec, tmp_path / "p.yaml"))
    by_key = ps["root"]["dag"]["tasks"]
    name = {k: t["taskInfo"]["name"] for k, t in by_key.items()}
    deps = {name[k]: {name[d] for d in t.get("dependentTasks", [])} for k, t in by_key.items()}
    assert deps["train math"] == {"data"}
    assert deps["merge ties"] == {f"train {d}" for d in spec.domains}
    assert deps["evaluate merge-ties"] == {"merge ties"}
    assert deps["evaluate base"] == {"data"}
    assert deps["analyze"] == {n for n in name.values() if n.startswith("evaluate ")}
    assert deps["report"] == {"analyze"}
    art = by_key[next(k for k, n in name.items() if n == "evaluate mix")]["inputs"]["artifacts"]["model"]
    assert art["taskOutputArtifact"]["outputArtifactKey"] == "model"
    # each expert reaches the merges as a KFP artifact (lineage in the KFP UI), one input per domain
    key = {n: k for k, n in name.items()}
    experts = by_key[key["merge ties"]]["inputs"]["artifacts"]
    assert {a: e["taskOutputArtifact"]["producerTask"] for a, e in experts.items()} == {
        expert_input(d): key[f"train {d}"] for d in spec.domains}
    params = ps["root"]["inputDefinitions"]["parameters"]
    assert set(params) == {"spec_json", "parent_run_id"}
    from m2rl.workflow.glue import spec_from_json

    assert spec_from_json(params["spec_json"]["defaultValue"]) == spec


def test_merge_takes_an_optional_expert_per_domain(tmp_path):
    """The merge component has one optional expert input per domain; a two-domain study fills two."""
    import components

    inputs = components.merge.component_spec.inputs
    assert all(inputs[expert_input(d)].optional for d in DOMAINS)
    spec = load_spec(REPO / "examples" / "smoke.yaml")
    spec = spec.model_copy(update={"data": spec.data.model_copy(
        update={"domains": {d: spec.data.domains[d] for d in ("math", "code")}})})
    ps, _ = read_package(compile_package(spec, tmp_path / "p.yaml", "merge"))
    merges = [t for t in ps["root"]["dag"]["tasks"].values() if t["taskInfo"]["name"].startswith("merge ")]
    assert merges and all(set(t["inputs"]["artifacts"]) == {"expert_math", "expert_code"} for t in merges)


def test_compile_rejects_non_yaml(tmp_path):
    spec = load_spec(REPO / "examples" / "smoke.yaml")
    with pytest.raises(ValueError, match=r"\.yaml"):
        compile_package(spec, tmp_path / "p.json")


def _paper(nodes: int = 1, rayjob: bool = False):
    from m2rl.spec import spec_from_dict

    data = load_spec(REPO / "examples" / "qwen3-4b-paper.yaml").model_dump()
    data["train"]["nodes"] = nodes
    data["train"]["vllm"]["num_engines"] = nodes * data["train"]["gpus_per_node"] // data["train"]["vllm"][
        "tensor_parallel_size"]
    data["kubernetes"]["rayjob"] = rayjob
    return spec_from_dict(data, "paper")


@pytest.mark.parametrize(("nodes", "rayjob", "launches"), [(2, False, True), (1, True, True), (1, False, False)])
def test_train_steps_launch_rayjobs_when_the_spec_asks(tmp_path, nodes, rayjob, launches):
    """More than one node (or kubernetes.rayjob) compiles every train step as a RayJob launcher: a CPU pod with
    the launcher label whose spec makes the component launch; the GPUs go to the RayJob, not the step."""
    from m2rl.k8s import launches_rayjob
    from m2rl.workflow.glue import spec_from_json

    spec = _paper(nodes, rayjob)
    ps, platform = read_package(compile_package(spec, tmp_path / "p.yaml"))
    executors = ps["deploymentSpec"]["executors"]
    k8s_exec = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    compiled = spec_from_json(ps["root"]["inputDefinitions"]["parameters"]["spec_json"]["defaultValue"])
    assert launches_rayjob(compiled) is launches and compiled.train.nodes == nodes
    k8s = spec.kubernetes
    trains = {n: t for n, t in _tasks(ps).items() if n.startswith("train ")}
    assert set(trains) == {f"train {d}" for d in spec.domains} | {"train mix"}
    for name, task in {**trains, "evaluate mix": _tasks(ps)["evaluate mix"]}.items():
        label = _executor(ps, task)
        container, conf = executors[label]["container"], k8s_exec[label]
        launcher = launches and name.startswith("train ")
        labels = conf["podMetadata"]["labels"]
        assert labels["m2rl/stage"] == name.split()[0]
        args = container["args"]
        assert args[args.index("--function_to_execute") + 1] == name.split()[0]  # the train component itself
        if launcher:
            assert labels["m2rl/launcher"] == "rayjob", name
            assert container["image"] == k8s.cpu_image
            assert container["resources"]["resourceCpuLimit"] == k8s.cpu_step.cpu
            assert container["resources"]["resourceMemoryLimit"] == k8s.cpu_step.memory
            assert "accelerator" not in container["resources"]
            assert not {"nodeSelector", "tolerations", "emptyDirMounts"} & set(conf)
        else:
            assert "m2rl/launcher" not in labels, name
            assert container["image"] == k8s.gpu_image
            assert container["resources"]["accelerator"]["resourceCount"] == str(k8s.gpu_step.gpus)
            assert conf["tolerations"] and conf["nodeSelector"]["labels"] == k8s.node_selector
        # Either way the step reads the study bucket (the launcher reads the train card back) and MLflow.
        assert {s["secretName"] for s in conf["secretAsEnv"]} == {k8s.s3_secret, k8s.mlflow_secret}
