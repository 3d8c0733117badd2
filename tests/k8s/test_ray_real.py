"""The RayJob against a real Ray head, run the way KubeRay v1.4.2 runs it (K8sJobMode).

`m2rl.k8s.kuberay_submitter_command` reproduces the submitter pod's command (ray-operator
`GetK8sJobCommand`, joined with spaces, `/bin/bash -ce --`). Here that very command runs against a real
local Ray head (`ray[default]`, the GPU image's 2.55.0 where installed): the RayJob built for a TRL study
trains `random:tiny` to a checkpoint through `m2rl train --spec-env M2RL_SPEC_YAML`; a RayJob whose training
cannot start (a missing train split) ends FAILED; a rerun of the first submitter (the Kubernetes Job retrying
its pod) finds the job already submitted and only follows its log.

Ray binds to the machine's external address by default, so the whole scenario (the head, the submitters,
`ray stop`) runs in its own network, PID and mount namespace with only loopback
(`unshare --net --pid --fork --mount-proc --kill-child`, which needs root): nothing can be reached from it
or sent anywhere else, and when it ends every process started in it is gone. This module is also the
script run inside the namespace (`python -m tests.k8s.test_ray_real <scenario> <params.json>`), with results
coming back through a JSON file.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
NETNS = ["unshare", "--net", "--pid", "--fork", "--mount-proc", "--kill-child"]
DASHBOARD = "127.0.0.1:8265"
# KubeRay's job ids: `<rayjob name>-` + k8s.io/apimachinery rand.String(5) (this alphabet).
RAND_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


# ---------------------------------------------------------------- the namespace, from the test side


def netns_unavailable() -> str | None:
    """Why the scenario cannot run here (None when it can): unshare, ip, root, ray[default]."""
    for tool in ("unshare", "ip", "ss"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (util-linux / iproute2)"
    for mod in ("ray", "ray.dashboard", "aiohttp"):
        try:
            if importlib.util.find_spec(mod) is None:
                return f"{mod} is not installed: pip install 'ray[default]==2.55.0'"
        except ModuleNotFoundError:
            return f"{mod} is not installed: pip install 'ray[default]==2.55.0'"
    probe = subprocess.run([*NETNS, "ip", "link", "set", "lo", "up"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return f"cannot create a network namespace with unshare (needs root): {probe.stderr.strip()}"
    return None


def run_in_netns(module: str, scenario: str, params: dict[str, Any], workdir: Path, timeout: float) -> dict[str, Any]:
    """Run `python -m module scenario params.json` in a fresh loopback-only namespace; return its result JSON."""
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    params = {**params, "result": str(workdir / f"{scenario}.result.json")}
    (workdir / f"{scenario}.params.json").write_text(json.dumps(params))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
           "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1"}
    log = workdir / f"{scenario}.log"
    with open(log, "wb") as out:
        try:
            # bash is the namespace's PID 1: it reaps the daemons `ray start` orphans once `ray stop` ends them.
            proc = subprocess.run([*NETNS, "bash", "-c", '"$@"; exit $?', "netns-init", sys.executable, "-m",
                                   module, scenario, str(workdir / f"{scenario}.params.json")],
                                  cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:  # unshare is killed, and with --kill-child the whole namespace
            pytest.fail(f"{scenario} ran past {timeout:.0f}s:\n" + log.read_text(errors="replace")[-6000:])
    result_path = Path(params["result"])
    if proc.returncode != 0 or not result_path.is_file():
        pytest.fail(f"{scenario} exited {proc.returncode}:\n" + log.read_text(errors="replace")[-6000:])
    return json.loads(result_path.read_text())


# ---------------------------------------------------------------- inside the namespace


def loopback_only() -> dict[str, Any]:
    """Bring `lo` up; the interfaces there are (only `lo` in a fresh network namespace)."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    links = subprocess.run(["ip", "-o", "link", "show"], check=True, capture_output=True, text=True).stdout
    return {"interfaces": [line.split(":")[1].strip() for line in links.splitlines() if line.strip()]}


def listening() -> list[str]:
    """Local addresses of every listening TCP socket."""
    out = subprocess.run(["ss", "-Hltn"], check=True, capture_output=True, text=True).stdout
    return [line.split()[3] for line in out.splitlines() if line.strip()]


class RayHead:
    """`ray start --head` on 127.0.0.1 (its session under a short temp dir: Unix socket paths are short)."""

    def __init__(self, num_cpus: int, num_gpus: int = 0):
        self.temp = tempfile.mkdtemp(prefix="m2rl-ray-", dir="/tmp")
        self.args = ["ray", "start", "--head", "--node-ip-address=127.0.0.1", "--port=6379",
                     "--dashboard-host=127.0.0.1", "--dashboard-port=8265", "--include-dashboard=true",
                     f"--num-cpus={num_cpus}", f"--num-gpus={num_gpus}", "--disable-usage-stats",
                     f"--temp-dir={self.temp}"]

    def __enter__(self) -> RayHead:
        subprocess.run(self.args, check=True)
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["ray", "stop", "--force"], check=False)
        shutil.rmtree(self.temp, ignore_errors=True)


def kuberay_job_id(name: str, rng: random.Random) -> str:
    return f"{name}-{''.join(rng.choice(RAND_ALPHABET) for _ in range(5))}"


def scenario_rayjob(params: dict[str, Any]) -> None:
    """Two RayJobs through KubeRay's submitter command against one real head; results to params['result']."""
    import yaml

    from m2rl.k8s import build_rayjob, train_command
    from m2rl.k8s.rayjob import kuberay_submitter_command
    from m2rl.spec import spec_from_dict

    result: dict[str, Any] = {"netns": loopback_only()}
    spec = spec_from_dict(yaml.safe_load(Path(params["spec"]).read_text()))
    jobs = {
        "good": train_command("math", params["data"], "random:tiny", params["out"]),
        "bad": train_command("math", params["missing_data"], "random:tiny", params["bad_out"]),
    }
    rng = random.Random(0)
    commands, job_ids = {}, {}
    for key, cmd in jobs.items():
        manifest = build_rayjob(spec, cmd, name=f"m2rl-test-{key}", env=params["job_env"])
        job_ids[key] = kuberay_job_id(manifest["metadata"]["name"], rng)
        commands[key] = kuberay_submitter_command(manifest, dashboard_url=DASHBOARD, job_id=job_ids[key])
    result["commands"], result["job_ids"] = commands, job_ids
    submit_dir = Path(tempfile.mkdtemp(prefix="submitter-", dir=params["workdir"]))

    def submitter(key: str, tag: str) -> subprocess.Popen:
        # The submitter pod's environment: the image's PATH and what KubeRay adds; no spec, no M2RL variable.
        env = {"PATH": os.environ["PATH"], "HOME": str(submit_dir), "PYTHONUNBUFFERED": "1",
               "RAY_DASHBOARD_ADDRESS": DASHBOARD, "RAY_JOB_SUBMISSION_ID": job_ids[key],
               "RAY_USAGE_STATS_ENABLED": "0"}
        out = open(Path(params["workdir"]) / f"submitter-{key}-{tag}.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(commands[key], env=env, cwd=submit_dir, stdout=out, stderr=subprocess.STDOUT)
        proc.log = out  # type: ignore[attr-defined]
        return proc

    def finish(proc: subprocess.Popen, timeout: float) -> int:
        try:
            return proc.wait(timeout=timeout)
        finally:
            proc.log.close()  # type: ignore[attr-defined]

    t0 = time.monotonic()
    with RayHead(num_cpus=2):
        from ray.job_submission import JobSubmissionClient

        started = time.monotonic()
        result["head_seconds"] = started - t0
        procs = {key: submitter(key, "first") for key in jobs}
        result["submitter_rc"] = {key: finish(p, params["timeout"]) for key, p in procs.items()}
        result["train_seconds"] = time.monotonic() - started
        client = JobSubmissionClient(f"http://{DASHBOARD}")  # the dashboard API KubeRay's controller polls
        result["jobs"] = {}
        for key, job_id in job_ids.items():
            info = client.get_job_info(job_id)
            result["jobs"][key] = {"status": str(info.status.value), "message": info.message or "",
                                   "entrypoint": info.entrypoint, "logs": client.get_job_logs(job_id),
                                   "env_vars": sorted((info.runtime_env or {}).get("env_vars", {}))}
        # The submitter Job's pod retried: the job id is known, so it is not submitted again, only followed.
        retry_started = time.monotonic()
        result["retry_rc"] = finish(submitter("good", "retry"), params["timeout"])
        result["retry_seconds"] = time.monotonic() - retry_started
        result["job_count"] = len(client.list_jobs())
        result["listening"] = listening()
    Path(params["result"]).write_text(json.dumps(result))


SCENARIOS = {"rayjob": scenario_rayjob}


# ---------------------------------------------------------------- the test


@pytest.mark.slow
def test_rayjob_trains_through_kuberay_submitter_and_a_failing_job_ends_failed(tmp_path):
    import yaml

    from m2rl.records import read_records, write_records
    from tests.train.conftest import domain_records, tiny_spec

    spec = tiny_spec(tmp_path)
    data = spec.model_dump(mode="json")
    # `$` and a backquote in the spec: bash in the submitter must not expand them (see spec_env_value).
    data["tracking"] = {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "rayjob-$HOME-`id`"}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(data))
    import mlflow

    # Create the SQLite store's tables once: the two drivers start at the same moment and would race to.
    mlflow.MlflowClient(tracking_uri=data["tracking"]["uri"]).search_experiments()
    write_records(tmp_path / "math.parquet", domain_records("math", 1))
    assert read_records(tmp_path / "math.parquet")
    out, bad_out = tmp_path / "models" / "single-math", tmp_path / "models" / "bad"
    params = {
        "spec": str(tmp_path / "spec.yaml"), "data": str(tmp_path / "math.parquet"),
        "missing_data": str(tmp_path / "no-such-split.parquet"), "out": str(out), "bad_out": str(bad_out),
        "workdir": str(tmp_path), "timeout": 300,
        "job_env": {"M2RL_CACHE": str(tmp_path / "cache"), "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"},
    }
    started = time.monotonic()
    res = run_in_netns("tests.k8s.test_ray_real", "rayjob", params, tmp_path, timeout=600)
    elapsed = time.monotonic() - started

    assert res["netns"]["interfaces"] == ["lo"]
    assert res["listening"] and all(a.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:")) for a in res["listening"])
    for key in ("good", "bad"):  # what the submitter pod runs: KubeRay's words, our one plain command pasted in
        bash, opts, dashdash, script = res["commands"][key]
        assert [bash, opts, dashdash] == ["/bin/bash", "-ce", "--"]
        assert script.startswith(f"if ! ray job status --address http://{DASHBOARD} {res['job_ids'][key]} "
                                 ">/dev/null 2>&1 ; then ray job submit --address http://")
        assert script.endswith(f" ; fi ; ray job logs --address http://{DASHBOARD} --follow {res['job_ids'][key]}")

    good, bad = res["jobs"]["good"], res["jobs"]["bad"]
    assert good["status"] == "SUCCEEDED", good["logs"][-3000:]
    assert good["entrypoint"] == (f"m2rl train --spec-env M2RL_SPEC_YAML --run math --data {params['data']} "
                                  f"--base random:tiny --out {out}")
    assert "M2RL_SPEC_YAML" in good["env_vars"] and "M2RL_CACHE" in good["env_vars"]
    assert f"train math (trl) -> {out}: 2 steps" in good["logs"]
    assert (out / "config.json").is_file() and any(out.glob("*.safetensors"))
    card = json.loads((out / "train_card.json").read_text())
    assert card["backend"] == "trl" and card["steps"] == 2

    assert bad["status"] == "FAILED", bad["logs"][-3000:]
    assert "exit code 2" in bad["message"]
    assert "no-such-split.parquet: train records not found" in bad["logs"]
    assert not bad_out.exists()
    # KubeRay v1.4.2's submitter ends with `ray job logs --follow`, which exits 0 whatever the job's end; the
    # RayJob's state comes from the job status above (KubeRay's controller reads it from the same dashboard API).
    assert res["submitter_rc"] == {"good": 0, "bad": 0}
    assert res["retry_rc"] == 0 and res["job_count"] == 2  # the retried submitter did not submit again
    retry_log = (tmp_path / "submitter-good-retry.log").read_text()
    assert "submitted successfully" not in retry_log and "succeeded" in retry_log

    client = mlflow.MlflowClient(tracking_uri=data["tracking"]["uri"])
    exp = client.get_experiment_by_name("rayjob-$HOME-`id`")  # the spec arrived as written, nothing expanded
    assert exp is not None and client.search_runs([exp.experiment_id])
    print(f"rayjob scenario: {elapsed:.1f}s in the namespace: head {res['head_seconds']:.1f}s, "
          f"submitters {res['train_seconds']:.1f}s, retry {res['retry_seconds']:.1f}s")


if __name__ == "__main__":
    SCENARIOS[sys.argv[1]](json.loads(Path(sys.argv[2]).read_text()))
