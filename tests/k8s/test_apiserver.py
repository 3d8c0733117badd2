"""Against a real kube-apiserver (v1.20.2 from ../shared/k8s, with its controller manager): the chart's objects,
the launcher's RBAC, the RayJob `build_rayjob` makes, and `RayJobLauncher` run as the launcher's ServiceAccount
with a real token while the test plays KubeRay by patching the RayJob's status.

Skipped, with the reason, where ../shared/k8s, etcd or root is missing. Everything stays inside the server's
network namespace (loopback only).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from m2rl.k8s import RayJobLauncher, build_rayjob, rayjob_name, train_command
from m2rl.k8s.rayjob import GROUP, PLURAL, VERSION
from m2rl.spec import load_spec, spec_from_dict
from tests.k8s import apiserver
from tests.k8s.conftest import NAMESPACE, REPO, TOGGLES, objects

pytest.importorskip("kubernetes")

RUN_NS = "kubeflow"  # where KFP runs the steps (the chart's kfp.runNamespace in docs/deploy.md)
LAUNCHER_SA = "m2rl-launcher"
LAUNCHER = f"system:serviceaccount:{RUN_NS}:{LAUNCHER_SA}"
INSTALL = {"kfp": {"runNamespace": RUN_NS}, "s3": {"bucket": "m2rl-studies", "region": "us-east-1"}}
CMD = train_command("math", "s3://m2rl-studies/runs/data/train/math.parquet",
                    "s3://m2rl-studies/models/qwen3-4b-sft", "s3://m2rl-studies/runs/models/single-math")


def _two_node_spec():
    data = load_spec(REPO / "examples" / "qwen3-4b-paper.yaml").model_dump()
    data["train"]["nodes"] = 2
    data["train"]["vllm"]["num_engines"] = 16 // data["train"]["vllm"]["tensor_parallel_size"]
    return spec_from_dict(data, "two-node")


@pytest.fixture(scope="module")
def spec():
    return _two_node_spec()


def _apis(api_client: Any) -> tuple[Any, Any]:
    from kubernetes import client

    return client.CustomObjectsApi(api_client), client.CoreV1Api(api_client)


@pytest.fixture(scope="module")
def installed(kube):
    """The chart (as docs/deploy.md installs it) applied for real; the launcher's token from TokenRequest."""
    with apiserver.in_netns(kube.netns):
        dyn = _dynamic(kube)
        for obj in objects(INSTALL):
            _apply(dyn, obj, dry_run=False)
        token = apiserver.service_account_token(kube.client(), RUN_NS, LAUNCHER_SA)
        apiserver.wait_for_crds(kube.client(), ["rayjobs.ray.io", "rayclusters.ray.io"])
    return token


def _dynamic(cluster: apiserver.Cluster) -> Any:
    """A DynamicClient whose discovery cache is this cluster's own: the default file is keyed by the host alone
    (https://127.0.0.1:6443 in every test cluster's namespace), so parallel workers would read each other's."""
    from kubernetes.dynamic import DynamicClient

    return DynamicClient(cluster.client(), cache_file=str(cluster.run_dir / "discovery-cache.json"))


def _resource(dyn: Any, obj: dict[str, Any]) -> Any:
    """The API resource of `obj`. A core kind (apiVersion `v1`) is looked up under /api only: with no group the
    client would walk every group of /apis, and a CRD group that is listed but not yet served answers 404."""
    api_version = obj["apiVersion"]
    prefix = "apis" if "/" in api_version else "api"
    return dyn.resources.get(prefix=prefix, api_version=api_version, kind=obj["kind"])


def _apply(dyn: Any, obj: dict[str, Any], *, dry_run: bool) -> dict[str, Any]:
    """Server-side apply (what `kubectl apply --server-side` sends), optionally as a server dry run."""
    res = _resource(dyn, obj)
    ns = obj["metadata"].get("namespace") or NAMESPACE
    kw: dict[str, Any] = {"field_manager": "m2rl-tests", "force_conflicts": True}
    if dry_run:
        kw["dry_run"] = "All"
    return res.server_side_apply(body=obj, namespace=ns if res.namespaced else None, **kw).to_dict()


def _body(exc: Any) -> str:
    return getattr(exc, "body", "") or str(exc)


# -- the chart ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("toggle", sorted(TOGGLES))
def test_every_chart_object_passes_server_side_dry_run(in_kube, toggle):
    from kubernetes.client.exceptions import ApiException

    dyn = _dynamic(in_kube)
    objs = objects(TOGGLES[toggle])
    rejected = []
    for obj in objs:
        try:
            out = _apply(dyn, obj, dry_run=True)
        except ApiException as exc:
            rejected.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc.status} {_body(exc)[:400]}")
            continue
        assert out["metadata"]["name"] == obj["metadata"]["name"]
    assert rejected == []
    assert len(objs) >= 10


def test_chart_applied_for_real_is_stored_as_rendered(in_kube, installed):
    """Every object of the docs' install exists afterwards, and nothing it set was dropped by the server."""
    dyn = _dynamic(in_kube)
    for obj in objects(INSTALL):
        res = _resource(dyn, obj)
        ns = obj["metadata"].get("namespace") or NAMESPACE
        stored = res.get(name=obj["metadata"]["name"], namespace=ns).to_dict()
        assert _missing(obj.get("spec"), stored.get("spec")) == [], f"{obj['kind']}/{obj['metadata']['name']}"
        assert _missing(obj.get("rules"), stored.get("rules")) == []
        assert _missing(obj.get("data"), stored.get("data")) == []


def _missing(sent: Any, stored: Any, path: str = "") -> list[str]:
    """Paths of `sent` that `stored` lacks or holds differently (server defaults may add keys, not drop them)."""
    if sent in ([], {}) and stored is None:  # the server omits empty lists and maps (`egress: []`)
        return []
    if isinstance(sent, dict):
        if not isinstance(stored, dict):
            return [path or "."]
        return [m for k, v in sent.items() for m in _missing(v, stored.get(k), f"{path}.{k}")]
    if isinstance(sent, list):
        if not isinstance(stored, list) or len(stored) != len(sent):
            return [path]
        return [m for i, (a, b) in enumerate(zip(sent, stored, strict=True)) for m in _missing(a, b, f"{path}[{i}]")]
    if sent is None:
        return []
    return [] if sent == stored or str(sent) == str(stored) else [f"{path}: {sent!r} != {stored!r}"]


# -- the launcher's RBAC ---------------------------------------------------------------------------------

# (API group, resource, verb) the launcher may use in the study's namespace; nothing else anywhere.
ALLOWED = {("ray.io", "rayjobs", v) for v in ("create", "get", "list", "watch", "delete")} | {
    ("", r, v) for r in ("pods", "pods/log") for v in ("get", "list", "watch")}
VERBS = ("create", "get", "list", "watch", "update", "patch", "delete", "deletecollection")
RESOURCES = [("ray.io", "rayjobs"), ("ray.io", "rayjobs/status"), ("ray.io", "rayclusters"), ("", "pods"),
             ("", "pods/log"), ("", "pods/exec"), ("", "secrets"), ("", "configmaps"), ("", "serviceaccounts"),
             ("", "serviceaccounts/token"), ("batch", "jobs"), ("rbac.authorization.k8s.io", "roles"),
             ("rbac.authorization.k8s.io", "rolebindings")]


def _can(auth: Any, user: str, namespace: str, group: str, resource: str, verb: str,
         name: str | None = None) -> bool:
    from kubernetes import client

    resource, _, sub = resource.partition("/")
    attrs = client.V1ResourceAttributes(namespace=namespace, group=group, resource=resource, verb=verb,
                                        subresource=sub or None, name=name)
    review = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
        user=user, groups=["system:serviceaccounts", f"system:serviceaccounts:{RUN_NS}", "system:authenticated"],
        resource_attributes=attrs))
    return bool(auth.create_subject_access_review(review).status.allowed)


def test_launcher_role_grants_exactly_what_the_launcher_uses(in_kube, installed):
    from kubernetes import client

    auth = client.AuthorizationV1Api(in_kube.client())
    granted = {(g, r, v) for g, r in RESOURCES for v in VERBS if _can(auth, LAUNCHER, NAMESPACE, g, r, v)}
    assert granted == ALLOWED
    for ns in (RUN_NS, "default", "kube-system"):  # nothing in any other namespace, secrets nowhere
        assert not [(g, r, v) for g, r in RESOURCES for v in VERBS if _can(auth, LAUNCHER, ns, g, r, v)], ns
    assert not _can(auth, LAUNCHER, "", "", "namespaces", "list")
    # KFP's launcher in the step pod (same ServiceAccount) reads the kfp-launcher ConfigMap and the S3 Secret
    # in the run namespace, by name and read-only; no other Secret, no list, nothing written.
    assert _can(auth, LAUNCHER, RUN_NS, "", "configmaps", "get", "kfp-launcher")
    assert _can(auth, LAUNCHER, RUN_NS, "", "secrets", "get", "m2rl-s3")
    assert not _can(auth, LAUNCHER, RUN_NS, "", "secrets", "get", "m2rl-mlflow")
    assert not _can(auth, LAUNCHER, RUN_NS, "", "secrets", "update", "m2rl-s3")
    assert not _can(auth, LAUNCHER, NAMESPACE, "", "secrets", "get", "m2rl-s3")
    # The decision the server makes for the real token is the same (SelfSubjectAccessReview as the launcher).
    own = client.AuthorizationV1Api(in_kube.client(installed))
    review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
        resource_attributes=client.V1ResourceAttributes(namespace=NAMESPACE, group="ray.io", resource="rayjobs",
                                                        verb="create")))
    assert own.create_self_subject_access_review(review).status.allowed


# -- the RayJob build_rayjob makes -----------------------------------------------------------------------


def test_rayjob_is_created_as_the_launcher_and_stored_unpruned(in_kube, installed, spec):
    from kubernetes.client.exceptions import ApiException

    custom, _ = _apis(in_kube.client(installed))
    name = rayjob_name(spec.name, "math", "create")
    manifest = build_rayjob(spec, CMD, name=name)
    dry = custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, manifest, dry_run="All")
    assert dry["metadata"]["name"] == name
    with pytest.raises(ApiException) as missing:
        custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name)
    assert missing.value.status == 404  # a dry run stores nothing
    created = custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, manifest)
    stored = custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name)
    # A field the CRD does not know would be pruned silently: every field sent is stored as sent.
    assert _missing(manifest["spec"], stored["spec"]) == []
    assert stored["metadata"]["labels"] == manifest["metadata"]["labels"]
    workers = stored["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert [w["replicas"] for w in workers] == [2]
    worker = workers[0]["template"]["spec"]
    assert worker["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == spec.train.gpus_per_node
    assert worker["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert {e["secretRef"]["name"] for e in worker["containers"][0]["envFrom"]} == {"m2rl-s3", "m2rl-mlflow"}
    assert created["metadata"]["uid"] == stored["metadata"]["uid"]
    # The launcher cannot write the status (KubeRay's job) nor create RayJobs elsewhere.
    for call in (lambda: custom.patch_namespaced_custom_object_status(
                     GROUP, VERSION, NAMESPACE, PLURAL, name, {"status": {"jobStatus": "SUCCEEDED"}}),
                 lambda: custom.create_namespaced_custom_object(
                     GROUP, VERSION, "default", PLURAL, {**manifest, "metadata": {**manifest["metadata"],
                                                                                  "namespace": "default"}})):
        with pytest.raises(ApiException) as denied:
            call()
        assert denied.value.status == 403
    custom.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name)


def test_the_server_rejects_a_rayjob_the_crd_forbids(in_kube, installed, spec):
    """The CRD's schema is enforced: the test would see a manifest the real KubeRay CRD rejects."""
    from kubernetes.client.exceptions import ApiException

    custom, _ = _apis(in_kube.client(installed))
    manifest = build_rayjob(spec, CMD, name=rayjob_name(spec.name, "math", "bad"))
    manifest["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] = "two"
    with pytest.raises(ApiException) as bad:
        custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, manifest, dry_run="All")
    assert bad.value.status == 422 and "replicas" in _body(bad.value)


# -- RayJobLauncher end to end, the test playing KubeRay ----------------------------------------------------


class KubeRay:
    """Plays the operator with the admin's identity: waits for the RayJob, creates its RayCluster (owned by
    it, as KubeRay does), then writes the given statuses one after another."""

    def __init__(self, cluster: apiserver.Cluster, name: str, statuses: list[dict[str, Any]],
                 step_s: float = 0.3, before_last: Callable[[dict[str, Any]], None] | None = None):
        self.custom, _ = _apis(cluster.client())
        self.name, self.statuses, self.step_s, self.before_last = name, statuses, step_s, before_last
        self.job: dict[str, Any] = {}
        self.error: BaseException | None = None
        self.cluster_name = f"{name}-raycl"
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> KubeRay:
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            job = self.job = self._wait_for_job()
            spec = job["spec"]["rayClusterSpec"]
            owner = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RayJob", "name": self.name,
                     "uid": job["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
            self.custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "rayclusters", {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "RayCluster",
                "metadata": {"name": self.cluster_name, "namespace": NAMESPACE, "ownerReferences": [owner]},
                "spec": spec})
            for i, status in enumerate(self.statuses):
                time.sleep(self.step_s)
                if self.before_last and i == len(self.statuses) - 1:
                    self.before_last(job)  # what the driver does before the Ray job ends
                self.custom.patch_namespaced_custom_object_status(
                    GROUP, VERSION, NAMESPACE, PLURAL, self.name,
                    {"status": {"rayClusterName": self.cluster_name, **status}})
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.error = exc
            with contextlib.suppress(Exception):  # ends the launcher's wait (outcome "deleted"), not the test
                self.custom.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, self.name)

    def _wait_for_job(self) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        deadline = time.monotonic() + 120  # the step may first open its MLflow runs (seconds, on a busy machine)
        while time.monotonic() < deadline:
            try:
                return self.custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, self.name)
            except ApiException as exc:
                if exc.status != 404:
                    raise
            time.sleep(0.05)
        raise TimeoutError(f"RayJob {self.name} never appeared")

    def join(self) -> None:
        self.thread.join(150)
        assert not self.thread.is_alive()
        if self.error:
            raise self.error

    def gone(self, timeout_s: float = 45) -> bool:
        """True once the RayJob and its RayCluster are both deleted (the garbage collector's foreground pass)."""
        from kubernetes.client.exceptions import ApiException

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            left = 0
            for plural, name in ((PLURAL, self.name), ("rayclusters", self.cluster_name)):
                try:
                    self.custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, name)
                    left += 1
                except ApiException as exc:
                    if exc.status != 404:
                        raise
            if not left:
                return True
            time.sleep(0.2)
        return False


RUNNING = [{"jobDeploymentStatus": "Initializing"}, {"jobDeploymentStatus": "Running", "jobStatus": "PENDING"},
           {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}]


def _launcher(kube: apiserver.Cluster, token: str, out: Any) -> RayJobLauncher:
    custom, core = _apis(kube.client(token))
    return RayJobLauncher(NAMESPACE, custom_api=custom, core_api=core, out=out, watch_timeout_s=5, log_poll_s=0.2)


@pytest.mark.parametrize(("final", "code"), [
    ({"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}, 0),
    ({"jobDeploymentStatus": "Failed", "jobStatus": "FAILED", "reason": "AppFailed",
      "message": "Job entrypoint command failed with exit code 1"}, 1),
])
def test_launcher_follows_the_rayjob_to_its_end(in_kube, installed, spec, final, code):
    import io

    out = io.StringIO()
    name = rayjob_name(spec.name, "math", final["jobDeploymentStatus"])
    operator = KubeRay(in_kube, name, [*RUNNING, final]).start()
    result = _launcher(in_kube, installed, out).run(build_rayjob(spec, CMD, name=name), timeout_s=60, drain_s=1)
    operator.join()
    assert (result.exit_code, result.outcome) == (code, "finished")
    assert result.state.job_status == final["jobStatus"]
    log = out.getvalue()
    assert f"[rayjob {name}] submitted to namespace {NAMESPACE}" in log
    assert "deployment=Running job=RUNNING" in log and f"finished: exit code {code}" in log
    # A finished RayJob is left to KubeRay (shutdownAfterJobFinishes, ttlSecondsAfterFinished).
    custom, _ = _apis(in_kube.client())
    assert custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name)["metadata"]["name"] == name
    custom.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name)


def test_launcher_timeout_deletes_the_rayjob_and_its_cluster(in_kube, installed, spec):
    import io

    out = io.StringIO()
    name = rayjob_name(spec.name, "math", "timeout")
    operator = KubeRay(in_kube, name, RUNNING, step_s=0.1).start()
    t0 = time.monotonic()
    result = _launcher(in_kube, installed, out).run(build_rayjob(spec, CMD, name=name), timeout_s=3, drain_s=1)
    operator.join()
    assert (result.exit_code, result.outcome) == (124, "timeout")
    assert 3 <= time.monotonic() - t0 < 20
    assert f"[rayjob {name}] deleted" in out.getvalue()
    assert operator.gone(), "foreground deletion of the RayJob (and its RayCluster) did not complete"


def _kubeconfig(path: Path, kube: apiserver.Cluster, token: str) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "launcher",
        "clusters": [{"name": "m2rl", "cluster": {"server": apiserver.SERVER,
                                                  "certificate-authority": str(kube.run_dir / "certs" / "apiserver.crt")}}],
        "users": [{"name": "launcher", "user": {"token": token}}],
        "contexts": [{"name": "launcher", "context": {"cluster": "m2rl", "user": "launcher", "namespace": NAMESPACE}}],
    }))
    return path


def test_sigterm_to_m2rl_rayjob_deletes_the_rayjob_in_the_foreground(in_kube, installed, tmp_path):
    """`m2rl rayjob` (the real CLI, as the launcher's ServiceAccount) gets SIGTERM as a cancelled KFP step
    does: it exits 143 and its foreground delete removes the RayJob and the RayCluster it owns."""
    spec_path = tmp_path / "two-node.yaml"
    spec_path.write_text(yaml.safe_dump(json.loads(_two_node_spec().model_dump_json())))
    name = rayjob_name("two-node", "math", "sigterm")
    operator = KubeRay(in_kube, name, RUNNING, step_s=0.1).start()
    env = {**os.environ, "KUBECONFIG": str(_kubeconfig(tmp_path / "kubeconfig", in_kube, installed)),
           "M2RL_PARENT_RUN_ID": "", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(  # started from this thread: inside the API server's network namespace
        [str(Path(sys.executable).with_name("m2rl")), "rayjob", str(spec_path), "--domain", "math",
         "--data", "s3://b/d.parquet", "--base", "s3://b/base", "--out", "s3://b/out", "--name", name],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        operator.join()  # the RayJob exists and KubeRay reported it Running
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("job=RUNNING" in line for line in lines):
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        reader.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = "".join(lines)
    assert proc.returncode == 143, output
    assert "step cancelled (SIGTERM)" in output and f"[rayjob {name}] deleted" in output
    assert operator.gone(), "foreground deletion of the RayJob (and its RayCluster) did not complete"


# -- the pipeline's train step, launching through m2rl.k8s ---------------------------------------------------


def _train_ctx(tmp_path: Path, monkeypatch: Any, name: str) -> Any:
    from m2rl.spec import StudySpec
    from m2rl.workflow import glue

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("M2RL_PARENT_RUN_ID", raising=False)
    monkeypatch.delenv(glue.NO_CACHE_ENV, raising=False)
    spec = StudySpec(name=name, artifact_root=str(tmp_path / "art"), work_dir=str(tmp_path / "work"))
    data = spec.model_dump(mode="json")
    data["train"].update(nodes=2, backend="openrlhf")  # multi-node training: the OpenRLHF backend
    data["train"]["vllm"]["num_engines"] = 16  # colocated: one engine per GPU of the 2 x 8
    return glue.StageContext(json.dumps(data), "")


@pytest.mark.parametrize("succeeds", [True, False])
def test_train_step_runs_its_training_as_a_rayjob(in_kube, installed, tmp_path, monkeypatch, succeeds):
    """`m2rl.workflow.train.train_work` (what the train component runs) for a 2-node spec, inside the stage glue:
    it launches the RayJob as the launcher, the driver's MLflow run is the step's child run, the train card the
    driver wrote is the step's summary; a failed RayJob fails the step with the launcher's exit code."""
    import io

    from m2rl.k8s import launches_rayjob
    from m2rl.workflow import glue
    from m2rl.workflow.train import RayJobStepFailed, job_name, train_key, train_work

    ctx = _train_ctx(tmp_path, monkeypatch, f"wired-{'ok' if succeeds else 'fails'}")
    assert launches_rayjob(ctx.spec)
    out, records = ctx.layout.model("single-math"), ctx.layout.train_split("math")
    card = {"run": "math", "steps": 3, "backend": "trl"}

    def driver(job: dict[str, Any]) -> None:
        Path(out).mkdir(parents=True)
        (Path(out) / "train_card.json").write_text(json.dumps(card))

    final = ({"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"} if succeeds else
             {"jobDeploymentStatus": "Failed", "jobStatus": "FAILED", "reason": "AppFailed"})
    name = job_name(ctx.spec, "math", "")
    operator = KubeRay(in_kube, name, [*RUNNING, final], step_s=0.1, before_last=driver if succeeds else None).start()
    log = io.StringIO()
    work = lambda: train_work(ctx, "math", records, out, launcher=_launcher(in_kube, installed, log))  # noqa: E731
    if succeeds:
        outcome = ctx.run("train", "single-math", out, key=train_key(ctx.spec, "math"), inputs=[], work=work,
                          done=["train_card.json"])
        assert outcome.summary == card and glue.read_record(out)["summary"] == card
    else:
        with pytest.raises(RayJobStepFailed) as failed:
            ctx.run("train", "single-math", out, key=train_key(ctx.spec, "math"), inputs=[], work=work,
                    done=["train_card.json"])
        assert isinstance(failed.value, SystemExit) and failed.value.code == 1
        assert glue.read_record(out) is None
    operator.join()
    assert operator.job, "the step created no RayJob"
    job_env = yaml.safe_load(operator.job["spec"]["runtimeEnvYAML"])["env_vars"]
    sent = json.dumps(operator.job["spec"])
    assert f"--data {records}" in sent and f"--out {out}" in sent  # the step's data and output, whatever the form
    from mlflow import MlflowClient

    run = MlflowClient().get_run(job_env["MLFLOW_RUN_ID"])  # the step's child run, resumed by the driver
    assert run.data.tags["m2rl.stage"] == "train" and run.info.status == ("FINISHED" if succeeds else "FAILED")
    assert [w["replicas"] for w in operator.job["spec"]["rayClusterSpec"]["workerGroupSpecs"]] == [2]
    assert f"[rayjob {name}] finished: exit code {0 if succeeds else 1}" in log.getvalue()
