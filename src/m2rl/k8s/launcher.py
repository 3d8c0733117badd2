"""Submit a RayJob, watch it to the end, stream the driver log, map the outcome to an exit code.

Uses only the `kubernetes` client: `CustomObjectsApi` for the RayJob (create / get / watch / delete)
and `CoreV1Api` for the submitter pod's log. In KubeRay's K8sJobMode the submitter Kubernetes Job
(named like the RayJob) runs `ray job submit` and then `ray job logs --follow`, so its pod log *is*
the driver log; the launcher follows it (and the next pod, if the Job retries) into `out`.

If the step is cancelled (SIGTERM from KFP, Ctrl-C) before the RayJob finishes, the RayJob is
deleted (foreground propagation: its RayCluster and pods go with it).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

from m2rl.k8s.rayjob import GROUP, PLURAL, VERSION, check_name
from m2rl.k8s.states import (
    EXIT_DEADLINE,
    EXIT_DELETED,
    EXIT_INTERRUPTED,
    EXIT_STOPPED,
    RayJobState,
    exit_code,
)


@dataclass
class RayJobResult:
    """How a launched RayJob ended."""

    name: str
    namespace: str
    exit_code: int
    state: RayJobState
    outcome: str  # finished | deleted | timeout | cancelled | interrupted


class _Cancelled(Exception):
    """SIGTERM arrived while the RayJob was running."""


def load_clients() -> tuple[Any, Any]:
    """(CustomObjectsApi, CoreV1Api) from the in-cluster service account, else ~/.kube/config."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.CustomObjectsApi(), client.CoreV1Api()


class RayJobLauncher:
    """Runs RayJobs in one namespace and reports their progress to a text stream."""

    def __init__(
        self,
        namespace: str,
        custom_api: Any = None,
        core_api: Any = None,
        out: IO[str] | None = None,
        watch_timeout_s: int = 60,
        log_poll_s: float = 2.0,
    ):
        if custom_api is None or core_api is None:
            custom_api, core_api = load_clients()
        self.namespace = namespace
        self.custom = custom_api
        self.core = core_api
        self.out = out if out is not None else sys.stdout
        self.watch_timeout_s = watch_timeout_s
        self.log_poll_s = log_poll_s
        self._lock = threading.Lock()

    # -- output ---------------------------------------------------------------------------------
    def _say(self, text: str) -> None:
        with self._lock:
            self.out.write(text if text.endswith("\n") else text + "\n")
            self.out.flush()

    # -- API calls ------------------------------------------------------------------------------
    def submit(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create the RayJob; if one of that name exists already (a retried step), adopt it."""
        from kubernetes.client.exceptions import ApiException

        name = check_name(manifest["metadata"]["name"])
        try:
            created = self.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, dict(manifest)
            )
            self._say(f"[rayjob {name}] submitted to namespace {self.namespace}")
            return created
        except ApiException as exc:
            if exc.status != 409:
                raise
            existing = self.get(name)
            if existing is None:
                raise
            self._say(f"[rayjob {name}] already exists: following it instead of submitting again")
            return existing

    def get(self, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def delete(self, name: str) -> bool:
        """Delete the RayJob and (foreground) everything it owns; False if it was already gone."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name,
                body=client.V1DeleteOptions(propagation_policy="Foreground"),
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        self._say(f"[rayjob {name}] deleted")
        return True

    # -- watching -------------------------------------------------------------------------------
    def _events(self, name: str, resource_version: str | None, timeout_s: int) -> Iterator[dict[str, Any]]:
        from kubernetes import watch

        kwargs: dict[str, Any] = {"field_selector": f"metadata.name={name}", "timeout_seconds": timeout_s}
        if resource_version:
            kwargs["resource_version"] = resource_version
        w = watch.Watch()
        try:
            yield from w.stream(
                self.custom.list_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL, **kwargs
            )
        finally:
            w.stop()

    def wait(self, name: str, timeout_s: float | None = None) -> tuple[RayJobState, str]:
        """Block until the RayJob finishes, is deleted, or `timeout_s` passes.

        Returns the last state and the outcome (`finished`, `deleted` or `timeout`). Each round
        reads the object (so a state reached between two watches is never missed), then watches
        from its resourceVersion; an expired watch (410 Gone) or a dropped connection just starts
        the next round.
        """
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        state = RayJobState()
        last = ""
        while True:
            obj = self.get(name)
            if obj is None:
                return state, "deleted"
            state = self._report(name, RayJobState.from_object(obj), last)
            last = state.describe()
            if state.finished:
                return state, "finished"
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return state, "timeout"
            window = self.watch_timeout_s if remaining is None else max(1, min(self.watch_timeout_s, int(remaining)))
            try:
                for event in self._events(name, (obj.get("metadata") or {}).get("resourceVersion"), window):
                    if event.get("type") == "DELETED":
                        return state, "deleted"
                    if event.get("type") not in ("ADDED", "MODIFIED"):
                        continue
                    state = self._report(name, RayJobState.from_object(event.get("object")), last)
                    last = state.describe()
                    if state.finished:
                        return state, "finished"
            except ApiException as exc:
                if exc.status != 410:
                    raise
            except HTTPError:
                time.sleep(min(self.log_poll_s, 1.0))

    def _report(self, name: str, state: RayJobState, last: str) -> RayJobState:
        if state.describe() != last:
            self._say(f"[rayjob {name}] {state.describe()}")
        return state

    # -- driver log -----------------------------------------------------------------------------
    def follow_driver_log(self, name: str, stop: threading.Event) -> None:
        """Copy the log of every submitter pod of the RayJob (oldest first) into `out`, until `stop`."""
        from kubernetes import watch

        done: set[str] = set()
        while True:
            last_pass = stop.is_set()  # after `stop`, one more pass picks up a pod that just started
            try:
                pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"job-name={name}").items
            except Exception as exc:  # noqa: BLE001 - the log is best effort; the watch decides the outcome
                self._say(f"[rayjob {name}] cannot list submitter pods: {exc}")
                pods = []
            pods = sorted(pods, key=lambda p: (str(p.metadata.creation_timestamp or ""), p.metadata.name))
            for pod in pods:
                pod_name = pod.metadata.name
                if pod_name in done or (pod.status and pod.status.phase in (None, "Pending")):
                    continue
                done.add(pod_name)
                try:
                    for line in watch.Watch().stream(
                        self.core.read_namespaced_pod_log, name=pod_name, namespace=self.namespace, follow=True
                    ):
                        self._say(line)
                except Exception as exc:  # noqa: BLE001
                    self._say(f"[rayjob {name}] log of {pod_name} interrupted: {exc}")
            if last_pass:
                return
            stop.wait(self.log_poll_s)

    # -- all of it ------------------------------------------------------------------------------
    def run(self, manifest: Mapping[str, Any], timeout_s: float | None = None, drain_s: float = 15.0) -> RayJobResult:
        """Submit, follow the driver log, wait for the end; delete the RayJob if cancelled or timed out."""
        name = manifest["metadata"]["name"]
        stop = threading.Event()
        follower = threading.Thread(target=self.follow_driver_log, args=(name, stop), daemon=True)
        previous = _install_sigterm()
        finished = False
        try:
            self.submit(manifest)
            follower.start()
            state, outcome = self.wait(name, timeout_s)
            if outcome == "timeout":
                self._say(f"[rayjob {name}] still running after {timeout_s:g} s: deleting it")
                code = EXIT_DEADLINE
            elif outcome == "deleted":
                finished = True
                code = EXIT_DELETED
            else:
                finished = True
                code = exit_code(state)
                assert code is not None
            result = RayJobResult(name, self.namespace, code, state, outcome)
        except _Cancelled:
            result = RayJobResult(name, self.namespace, EXIT_STOPPED, RayJobState(), "cancelled")
            self._say(f"[rayjob {name}] step cancelled (SIGTERM)")
        except KeyboardInterrupt:
            result = RayJobResult(name, self.namespace, EXIT_INTERRUPTED, RayJobState(), "interrupted")
            self._say(f"[rayjob {name}] step interrupted")
        finally:
            _restore_sigterm(previous)
            if not finished:
                with contextlib.suppress(Exception):
                    self.delete(name)
            stop.set()
            if follower.is_alive():
                # Let the submitter's `ray job logs --follow` deliver the driver's last lines.
                follower.join(drain_s if finished else 1.0)
        self._say(f"[rayjob {name}] {result.outcome}: exit code {result.exit_code}")
        return result


def _install_sigterm() -> Any:
    if threading.current_thread() is not threading.main_thread():
        return None

    def _raise(signum: int, frame: Any) -> None:
        raise _Cancelled()

    return signal.signal(signal.SIGTERM, _raise)


def _restore_sigterm(previous: Any) -> None:
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)
