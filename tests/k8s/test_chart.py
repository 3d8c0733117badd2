"""charts/m2rl rendered by the real Helm engine (helm-python-sdk) for every toggle, linted, validated
against the Kubernetes OpenAPI schemas of the oldest and newest supported version, and held to the
security rules; the in-pod scripts (bucket job, helm test) and MLflow's rendered command are run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid

import pytest
import yaml

from tests.conftest import _stop, free_port, wait_http
from tests.k8s.conftest import (
    CHART,
    K8S_VERSIONS,
    NAMESPACE,
    TOGGLES,
    containers,
    find,
    objects,
    pod_security_violations,
    pod_spec,
    render,
)

helm = pytest.importorskip("helm_python")
kubernetes_validate = pytest.importorskip("kubernetes_validate")


def _labels_match(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("toggle", sorted(TOGGLES))
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_validates_against_the_kubernetes_schema(rendered, toggle, version):
    objs = rendered[toggle]
    assert objs, "nothing rendered"
    errors = []
    for obj in objs:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {'.'.join(map(str, exc.path))}: {exc.message}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("toggle", sorted(TOGGLES))
def test_security_rules_hold_on_every_pod_spec(rendered, toggle):
    specs = [(f"{o['kind']}/{o['metadata']['name']}", pod_spec(o)) for o in rendered[toggle]]
    specs = [(w, s) for w, s in specs if s is not None]
    assert len(specs) >= 3
    bad = [v for where, spec in specs for v in pod_security_violations(where, spec)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("toggle", sorted(TOGGLES))
def test_secrets_only_come_from_secret_objects(rendered, toggle):
    objs = rendered[toggle]
    assert not find(objs, "Secret"), "the chart must not create Secrets (no credentials in values)"
    sensitive = ("PASSWORD", "SECRET", "TOKEN", "ACCESS_KEY", "ROOT_USER")
    for obj in objs:
        spec = pod_spec(obj)
        if spec is None:
            continue
        for c in containers(spec):
            for env in c.get("env") or []:
                if any(s in env["name"] for s in sensitive):
                    assert "secretKeyRef" in (env.get("valueFrom") or {}), (obj["metadata"]["name"], env)
            assert "envFrom" not in c or all("secretRef" in e or "configMapRef" in e for e in c["envFrom"])
    # The ConfigMaps hold no credential either.
    for cm in find(objs, "ConfigMap"):
        text = json.dumps(cm["data"])
        assert "AWS_SECRET_ACCESS_KEY=" not in text and "password" not in text.lower()


def test_values_hold_no_credentials():
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(node, path=""):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{path}.{k}" if path else k)
        elif isinstance(node, str):
            low = path.lower()
            if low.endswith(("password", "secretkey", "accesskey", "token", "uri")) and node:
                pytest.fail(f"{path} has a plaintext default")

    walk(values)


def test_reward_service_is_locked_down(rendered):
    objs = rendered["default"]
    (dep,) = find(objs, "Deployment", "m2rl-rewards")
    spec = dep["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    assert c["args"][:5] == ["serve-rewards", "--host", "0.0.0.0", "--port", "8000"]
    assert "command" not in c, "the image's entrypoint (m2rl) runs the command"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["automountServiceAccountToken"] is False
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert not any("secretKeyRef" in (e.get("valueFrom") or {}) for e in c.get("env") or []), "no credentials"
    assert "envFrom" not in c

    (svc,) = find(objs, "Service", "m2rl-rewards")
    assert svc["spec"]["ports"][0]["port"] == 8000
    (pol,) = find(objs, "NetworkPolicy", "m2rl-rewards")
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert _labels_match(pol["spec"]["podSelector"]["matchLabels"], pod_labels)
    assert sorted(pol["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    assert pol["spec"]["egress"] == [], "no egress at all"
    (rule,) = pol["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "m2rl"}}}]
    # The RayJob pods the launcher builds carry that label, so training can reach the service.
    from m2rl.k8s.rayjob import PART_OF

    assert _labels_match(rule["from"][0]["podSelector"]["matchLabels"], PART_OF)


@pytest.mark.parametrize(("values", "flag"), [({}, "--no-require-think-close"),
                                             ({"rewards": {"requireThinkClose": True}}, "--require-think-close")])
def test_reward_service_think_gate(values, flag):
    """rewards.requireThinkClose becomes the service's flag (training compares it with its spec via /health)."""
    (dep,) = find(objects(values), "Deployment", "m2rl-rewards")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["args"][5] == flag


def test_reward_service_probes_metrics_and_grace(rendered):
    """Probes on /health, /metrics scrapeable on the named `http` port (ServiceMonitor: port http, path
    /metrics), and a pod grace period longer than the service's drain."""
    (dep,) = find(rendered["default"], "Deployment", "m2rl-rewards")
    tmpl = dep["spec"]["template"]
    (c,) = tmpl["spec"]["containers"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe
    assert [(p["name"], p["containerPort"]) for p in c["ports"]] == [("http", 8000)]
    scrape = {"prometheus.io/scrape": "true", "prometheus.io/port": "8000", "prometheus.io/path": "/metrics"}
    assert tmpl["metadata"]["annotations"] == scrape
    (svc,) = find(rendered["default"], "Service", "m2rl-rewards")
    assert svc["metadata"]["annotations"] == scrape
    assert [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [("http", 8000, "http")]
    i = c["args"].index("--grace")
    assert c["args"][i + 1] == "30"
    assert tmpl["spec"]["terminationGracePeriodSeconds"] == 40


def test_reward_service_grace_and_scrape_values():
    (dep,) = find(objects({"rewards": {"gracePeriodSeconds": 120, "prometheusScrape": False}}), "Deployment",
                  "m2rl-rewards")
    tmpl = dep["spec"]["template"]
    (c,) = tmpl["spec"]["containers"]
    assert c["args"][c["args"].index("--grace") + 1] == "120"
    assert tmpl["spec"]["terminationGracePeriodSeconds"] == 130
    assert "annotations" not in tmpl["metadata"]
    with pytest.raises(Exception, match="gracePeriodSeconds"):
        objects({"rewards": {"gracePeriodSeconds": -1}})


def test_reward_service_args_are_serve_rewards_flags(rendered):
    """Every flag the chart passes is one `m2rl serve-rewards` accepts (parsed by the real CLI)."""
    from typer.testing import CliRunner

    import m2rl.verifiers.service as service
    from m2rl.cli import app

    (dep,) = find(rendered["default"], "Deployment", "m2rl-rewards")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    seen = {}
    orig = service.serve
    service.serve = lambda host, port, cfg, ready=None: seen.update(host=host, port=port, cfg=cfg)
    try:
        r = CliRunner().invoke(app, c["args"])
    finally:
        service.serve = orig
    assert r.exit_code == 0, r.output
    assert seen["port"] == 8000 and seen["cfg"].grace == 30.0


def test_reward_service_toggle(rendered):
    off = rendered["rewards-off"]
    assert not [o for o in off if "rewards" in o["metadata"]["name"]]
    (cm,) = find(off, "ConfigMap", "m2rl-platform")
    assert "M2RL_REWARD_URL" not in cm["data"]
    (cm,) = find(rendered["default"], "ConfigMap", "m2rl-platform")
    assert cm["data"]["M2RL_REWARD_URL"] == "http://m2rl-rewards.m2rl.svc.cluster.local:8000"


def test_standalone_kfp_namespace_wiring(rendered):
    objs = rendered["kfp-standalone"]
    (sa,) = find(objs, "ServiceAccount", "m2rl-launcher")
    assert sa["metadata"]["namespace"] == "kubeflow"
    (cm,) = find(objs, "ConfigMap", "kfp-launcher")
    assert cm["metadata"]["namespace"] == "kubeflow"
    (role,) = find(objs, "Role", "m2rl-launcher")
    (binding,) = find(objs, "RoleBinding", "m2rl-launcher")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == NAMESPACE
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "m2rl-launcher", "namespace": "kubeflow"}]
    (step,) = find(objs, "Role", "m2rl-kfp-step")  # KFP's launcher reads its config where the run is
    (step_binding,) = find(objs, "RoleBinding", "m2rl-kfp-step")
    assert step["metadata"]["namespace"] == step_binding["metadata"]["namespace"] == "kubeflow"
    (pol,) = find(objs, "NetworkPolicy")
    peers = pol["spec"]["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubeflow"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "m2rl"}}} in peers


@pytest.mark.parametrize("toggle", sorted(TOGGLES))
def test_launcher_rbac_is_least_privilege_and_namespaced(rendered, toggle):
    objs = rendered[toggle]
    assert not find(objs, "ClusterRole") and not find(objs, "ClusterRoleBinding")
    (role,) = find(objs, "Role", "m2rl-launcher")
    rules = sorted((tuple(r["apiGroups"]), tuple(r["resources"]), tuple(sorted(r["verbs"]))) for r in role["rules"])
    assert rules == [
        (("",), ("pods", "pods/log"), ("get", "list", "watch")),
        (("ray.io",), ("rayjobs",), ("create", "delete", "get", "list", "watch")),
    ]
    # KFP's launcher in each step pod reads exactly the kfp-launcher ConfigMap and the S3 Secret, by name.
    (step,) = find(objs, "Role", "m2rl-kfp-step")
    secret = (TOGGLES[toggle].get("s3") or {}).get("existingSecret", "m2rl-s3")
    assert sorted((r["resources"], r["resourceNames"], r["verbs"]) for r in step["rules"]) == [
        (["configmaps"], ["kfp-launcher"], ["get"]), (["secrets"], [secret], ["get"])]
    (step_binding,) = find(objs, "RoleBinding", "m2rl-kfp-step")
    assert step_binding["subjects"][0]["name"] == "m2rl-launcher"
    (binding,) = find(objs, "RoleBinding", "m2rl-launcher")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    (sa,) = find(objs, "ServiceAccount")
    assert binding["subjects"][0]["name"] == sa["metadata"]["name"] == "m2rl-launcher"
    # The spec's default service account is the one the chart creates.
    from m2rl.spec.kubernetes import KubernetesSpec

    assert KubernetesSpec().service_account == sa["metadata"]["name"]


@pytest.mark.parametrize(
    ("toggle", "endpoint", "disable_ssl", "path_style", "secret"),
    [
        ("default", "s3.amazonaws.com", False, False, "m2rl-s3"),
        ("external-s3", "s3.example.internal:9000", False, True, "team-s3"),
        ("bundled-minio", "m2rl-minio.m2rl.svc.cluster.local:9000", True, True, "m2rl-s3"),
    ],
)
def test_kfp_launcher_config(rendered, toggle, endpoint, disable_ssl, path_style, secret):
    (cm,) = find(rendered[toggle], "ConfigMap", "kfp-launcher")
    bucket = TOGGLES[toggle].get("s3", {}).get("bucket", "m2rl-studies")
    assert cm["data"]["defaultPipelineRoot"] == f"s3://{bucket}/pipelines"
    provider = yaml.safe_load(cm["data"]["providers"])["s3"]["default"]
    assert provider["endpoint"] == endpoint
    assert provider["disableSSL"] is disable_ssl
    assert provider["forcePathStyle"] is path_style
    assert provider["credentials"] == {
        "fromEnv": False,
        "secretRef": {"secretName": secret, "accessKeyKey": "AWS_ACCESS_KEY_ID",
                      "secretKeyKey": "AWS_SECRET_ACCESS_KEY"},
    }


def _mlflow(objs):
    (dep,) = find(objs, "Deployment", "m2rl-mlflow")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return c


def test_mlflow_backend_and_artifacts(rendered):
    c = _mlflow(rendered["default"])
    assert c["command"] == ["mlflow"]
    args = c["args"]
    assert args[0] == "server" and "--serve-artifacts" in args
    assert args[args.index("--artifacts-destination") + 1] == "s3://m2rl-studies/mlflow"
    env = {e["name"]: e for e in c["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["value"] == (
        "postgresql://$(DB_USER):$(DB_PASSWORD)@m2rl-postgresql:5432/mlflow")
    names = [e["name"] for e in c["env"]]
    assert names.index("DB_PASSWORD") < names.index("MLFLOW_BACKEND_STORE_URI"), "$(VAR) needs earlier vars"
    assert find(rendered["default"], "StatefulSet", "m2rl-postgresql")

    ext = rendered["external-postgres"]
    assert not find(ext, "StatefulSet", "m2rl-postgresql")
    env = {e["name"]: e for e in _mlflow(ext)["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-db", "key": "uri"}

    env = {e["name"]: e.get("value") for e in _mlflow(rendered["bundled-minio"])["env"]}
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://m2rl-minio.m2rl.svc.cluster.local:9000"
    env = {e["name"]: e.get("value") for e in _mlflow(rendered["external-s3"])["env"]}
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "https://s3.example.internal:9000"
    assert "MLFLOW_S3_ENDPOINT_URL" not in {e["name"] for e in _mlflow(rendered["default"])["env"]}


def test_mlflow_service_matches_the_paper_spec(rendered):
    from m2rl.spec import load_spec
    from tests.k8s.conftest import REPO

    spec = load_spec(REPO / "examples" / "qwen3-4b-paper.yaml")
    (svc,) = find(rendered["default"], "Service", "m2rl-mlflow")
    url = f"http://{svc['metadata']['name']}.{NAMESPACE}.svc.cluster.local:{svc['spec']['ports'][0]['port']}"
    assert spec.tracking.uri == url
    assert spec.kubernetes.namespace == NAMESPACE
    assert spec.artifact_root.startswith("s3://m2rl-studies/")


def test_ingress_toggle(rendered):
    assert not find(rendered["default"], "Ingress")
    (ing,) = find(rendered["ingress-on"], "Ingress")
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert ing["spec"]["rules"][0]["host"] == "mlflow.example.com"
    assert ing["spec"]["tls"] == [{"hosts": ["mlflow.example.com"], "secretName": "mlflow-tls"}]
    backend = ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "m2rl-mlflow", "port": {"name": "http"}}
    hosts = _mlflow(rendered["ingress-on"])["args"]
    assert "mlflow.example.com:*" in hosts[hosts.index("--allowed-hosts") + 1].split(",")
    notes = render(TOGGLES["ingress-on"])["m2rl/templates/NOTES.txt"]
    assert "https://mlflow.example.com" in notes


def test_minio_toggle(rendered):
    assert not find(rendered["default"], "StatefulSet", "m2rl-minio")
    objs = rendered["bundled-minio"]
    (sts,) = find(objs, "StatefulSet", "m2rl-minio")
    env = {e["name"]: e for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MINIO_ROOT_USER"]["valueFrom"]["secretKeyRef"] == {"name": "m2rl-s3", "key": "AWS_ACCESS_KEY_ID"}
    (job,) = find(objs, "Job", "m2rl-minio-bucket")
    assert "post-install" in job["metadata"]["annotations"]["helm.sh/hook"]


def test_notes_say_how_to_reach_mlflow_and_submit():
    notes = render()["m2rl/templates/NOTES.txt"]
    assert "kubectl -n m2rl port-forward svc/m2rl-mlflow 5000:5000" in notes
    assert "m2rl submit examples/qwen3-4b-paper.yaml" in notes
    assert "helm test m2rl" in notes


def test_lint_is_clean():
    for values in TOGGLES.values():
        report = helm.lint(str(CHART), values or None, strict=True, namespace=NAMESPACE)
        assert report["errors"] == [], report
        assert not [m for m in report["messages"] if m["severity"] >= 2], report["messages"]


def _schema_node(schema, path):
    node = schema
    for key in path:
        assert node.get("type") == "object", f"{'.'.join(path)}: parent is not an object in the schema"
        props = node.get("properties") or {}
        if key in props:
            node = props[key]
        else:
            extra = node.get("additionalProperties")
            assert isinstance(extra, dict), f"{'.'.join(path)}: not described by values.schema.json"
            node = extra
    return node


def test_schema_describes_every_value():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(node, path):
        described = _schema_node(schema, path)
        if path:
            assert described.get("description"), f"{'.'.join(path)}: no description in the schema"
        if isinstance(node, dict) and described.get("properties") is not None:
            assert described.get("additionalProperties") is False, f"{'.'.join(path)}: open object"
            for k, v in node.items():
                walk(v, [*path, k])

    walk(values, [])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"mlflow": {"prot": 5000}}, "additional properties 'prot' not allowed"),
        ({"mlflow": {"port": "5000"}}, "/mlflow/port"),
        ({"image": {"tag": "latest"}}, "/image/tag"),
        ({"s3": {"endpoint": "s3.example.com"}}, "/s3/endpoint"),
        ({"postgresql": {"enabled": False}}, "postgresql.external.existingSecret"),
        ({"mlflow": {"ingress": {"enabled": True, "tls": {"enabled": True}}}}, "mlflow.ingress.tls.secretName"),
    ],
)
def test_bad_values_fail_naming_the_field(values, message):
    with pytest.raises(helm.HelmError) as err:
        render(values)
    assert message in str(err.value)


def _script(obj) -> str:
    (c,) = pod_spec(obj)["containers"]
    assert c["command"][:2] == ["python", "-c"]
    return c["command"][2]


def test_bucket_job_creates_the_bucket(s3_server, rendered):
    (job,) = find(rendered["bundled-minio"], "Job", "m2rl-minio-bucket")
    script = _script(job)
    bucket = f"m2rl-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "BUCKET": bucket, "AWS_ENDPOINT_URL_S3": s3_server, "AWS_DEFAULT_REGION": "eu-west-1",
           "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    first = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert f"bucket {bucket} created" in first.stdout
    again = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and f"bucket {bucket} exists" in again.stdout
    down = {**env, "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{free_port()}", "ATTEMPTS": "2", "RETRY_SECONDS": "0"}
    failed = subprocess.run([sys.executable, "-c", script], env=down, capture_output=True, text=True, timeout=60)
    assert failed.returncode != 0 and "did not answer" in failed.stderr


def test_rendered_mlflow_command_serves_and_the_helm_test_passes(s3_server, rendered, tmp_path):
    """Run MLflow with the chart's own arguments (SQLite and moto standing in for PostgreSQL and S3)."""
    import boto3

    c = _mlflow(rendered["default"])
    args = list(c["args"])
    port = free_port()
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--port") + 1] = str(port)
    args[args.index("--workers") + 1] = "1"
    dest = args[args.index("--artifacts-destination") + 1]
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="test",
                 aws_secret_access_key="test").create_bucket(Bucket=dest.split("/")[2])
    env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
           "MLFLOW_S3_ENDPOINT_URL": s3_server, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": "us-east-1"}
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", *args], env=env,
                            stdout=open(tmp_path / "mlflow.log", "wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/health", proc, timeout=120)

        def status(host: str) -> int:
            req = urllib.request.Request(base + "/api/2.0/mlflow/experiments/search?max_results=1",
                                         headers={"Host": host})
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    return resp.status
            except urllib.error.HTTPError as exc:
                return exc.code

        # In-cluster clients (the spec's tracking URI) and a port-forward are let in; other hosts are not.
        assert status("m2rl-mlflow.m2rl.svc.cluster.local:5000") == 200
        assert status("m2rl-mlflow:5000") == 200
        assert status("localhost:5000") == 200
        assert status("attacker.example.com") == 403

        (test_pod,) = [o for o in rendered["default"] if o["kind"] == "Pod"]
        assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
        pod_env = {e["name"]: e["value"] for e in test_pod["spec"]["containers"][0]["env"]}
        assert pod_env["MLFLOW_URL"] == "http://m2rl-mlflow.m2rl.svc.cluster.local:5000"
        check = subprocess.run([sys.executable, "-c", _script(test_pod)], capture_output=True, text=True,
                               env={**os.environ, "MLFLOW_URL": base, "ATTEMPTS": "3"}, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
        assert check.stdout.strip().endswith("OK")
    finally:
        _stop(proc)
    dead = subprocess.run([sys.executable, "-c", _script(test_pod)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "MLFLOW_URL": base, "ATTEMPTS": "2", "RETRY_SECONDS": "0"})
    assert dead.returncode != 0 and "is not healthy" in dead.stderr


def test_every_template_renders_in_some_toggle():
    import helm_python

    with helm_python.Chart.load(str(CHART)) as chart:
        templates = {t["name"] for t in chart.templates if t["name"].endswith(".yaml")}
    seen = set()
    for values in TOGGLES.values():
        for path, text in render(values).items():
            if path.endswith(".yaml") and any(yaml.safe_load_all(text)):
                seen.add(path.split("/", 1)[1])
    assert templates == seen, templates ^ seen


def test_objects_for_another_namespace():
    objs = objects(namespace="studies")
    (cm,) = find(objs, "ConfigMap", "m2rl-platform")
    assert cm["data"]["MLFLOW_TRACKING_URI"] == "http://m2rl-mlflow.studies.svc.cluster.local:5000"
