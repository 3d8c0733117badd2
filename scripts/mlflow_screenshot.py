"""The README's MLflow screenshot: the experiment's Models tab of a finished study, its models side by side.

    python scripts/mlflow_screenshot.py --store sqlite:///$PWD/work/smoke/mlflow.db --experiment m2rl-smoke \
        --out docs/images/mlflow-models.png

Starts `mlflow server` on 127.0.0.1 (a free port) on that store and headless Chromium (`apt-get install -y
chromium`) with its DevTools port on loopback, drives the page over the DevTools protocol (websocket-client):
the UI in its model-training mode, the assistant panel left closed, the Models tab with the model names and,
through its Columns menu, only the metric columns named by `--columns` (default: every benchmark's
`avg_at_k`, grouped by its dataset, and `cost/total_gpu_hours`); then a PNG.
Needs nothing but loopback.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]
# localStorage of the MLflow UI (its `useLocalStorage` hook stores `<key>_v<version>` as JSON)
UI_STATE = {"mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true", "mlflow.assistant.panelOpen_v1": "false",
            "mlflow.workflowType_v1": json.dumps("machine_learning")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> bytes:
    end = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read()
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise SystemExit(f"{proc.args[0]} exited ({proc.returncode}) before {url} answered") from None
            if time.monotonic() > end:
                raise SystemExit(f"{url}: no answer in {timeout:.0f}s") from None
            time.sleep(0.5)


@contextlib.contextmanager
def process(args: list[str], log: Path) -> Iterator[subprocess.Popen]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Page:
    """One Chromium tab over the DevTools protocol."""

    def __init__(self, ws_url: str) -> None:
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def js(self, expr: str) -> Any:
        res = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        return res.get("result", {}).get("value")

    def wait_for(self, expr: str, timeout: float, what: str) -> Any:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            value = self.js(expr)
            if value:
                return value
            time.sleep(0.5)
        raise SystemExit(f"the page did not show {what} in {timeout:.0f}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", required=True, help="MLflow backend store URI (the study's sqlite:///...mlflow.db)")
    ap.add_argument("--experiment", default="m2rl-smoke", help="experiment name")
    ap.add_argument("--out", default="docs/images/mlflow-models.png", help="PNG to write")
    ap.add_argument("--columns", default="avg_at_k,total_gpu_hours",
                    help="the metric columns to show: those whose names end with one of these (comma-separated)")
    ap.add_argument("--size", default="2000,740", help="window width,height")
    ap.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser") or "chromium")
    args = ap.parse_args()
    width, height = (int(x) for x in args.size.split(","))

    tmp = Path(tempfile.mkdtemp(prefix="m2rl-shot-"))
    port, cdp = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    server_cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                  "--backend-store-uri", args.store, "--workers", "1"]
    try:
        with process(server_cmd, tmp / "server.log") as server:
            wait_http(url + "/health", 180, server)
            os.environ["MLFLOW_TRACKING_URI"] = url
            import mlflow

            exp = mlflow.get_experiment_by_name(args.experiment)
            if exp is None:
                raise SystemExit(f"--experiment: no experiment named {args.experiment!r} at {args.store}")
            chrome = [args.chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'profile'}",
                      f"--remote-debugging-port={cdp}", f"--window-size={width},{height}", "about:blank"]
            with process(chrome, tmp / "chromium.log") as browser:
                wait_http(f"http://127.0.0.1:{cdp}/json/version", 60, browser)
                targets = json.loads(wait_http(f"http://127.0.0.1:{cdp}/json", 10))
                page = Page(next(t for t in targets if t.get("type") == "page")["webSocketDebuggerUrl"])
                page.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                          mobile=False)
                page.call("Page.navigate", url=url + "/")
                page.wait_for("document.readyState === 'complete'", 60, "the MLflow UI")
                page.js("; ".join(f"localStorage.setItem({json.dumps(k)}, {json.dumps(v)})" for k, v in UI_STATE.items()))
                page.call("Page.navigate", url=f"{url}/#/experiments/{exp.experiment_id}/models"
                                               "?workflowType=machine_learning")
                page.wait_for("document.querySelectorAll('.ag-row').length > 0", 90, "the models table")
                time.sleep(2)
                choose_columns(page, [c for c in args.columns.split(",") if c])
                time.sleep(1.5)
                close_assistant(page)
                shot = page.call("Page.captureScreenshot", format="png")
                out = Path(args.out)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(base64.b64decode(shot["data"]))
                print(f"{out}: {out.stat().st_size} bytes, {page.js('location.href')}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


TREE_JS = """async (want, action) => {
    const menu = document.querySelector('[role=menu]');
    const holder = menu && menu.querySelector('.du-bois-light-tree-list-holder');
    if (!holder) return 'no menu';
    const title = n => ((n.querySelector('[title]') || {title: ''}).getAttribute('title') || '').trim();
    const match = n => want.endsWith('*') ? title(n).startsWith(want.slice(0, -1)) : title(n) === want;
    const seen = [];
    holder.scrollTop = 0;
    for (let i = 0; i < 200; i++) {
        await new Promise(r => setTimeout(r, 60));
        const nodes = [...menu.querySelectorAll('.du-bois-light-tree-list-holder .du-bois-light-tree-treenode')];
        for (const node of nodes.filter(match)) {
            const t = title(node);
            if (seen.includes(t)) continue;
            seen.push(t);
            if (action === 'list') {
            } else if (action === 'closed') {
                if (!node.querySelector('.du-bois-light-tree-switcher_close')) seen.pop();
            } else if (action === 'expand') {
                const sw = node.querySelector('.du-bois-light-tree-switcher_close');
                if (sw) sw.click();
            } else {
                const on = node.classList.contains('du-bois-light-tree-treenode-checkbox-checked');
                if ((action === 'check') !== on) node.querySelector('.du-bois-light-tree-checkbox').click();
            }
            if (!want.endsWith('*')) return seen;
        }
        const before = holder.scrollTop;
        holder.scrollTop += 120;
        if (holder.scrollTop === before) break;
    }
    return seen;
}"""


def tree(page: Page, want: str, action: str) -> list[str]:
    """In the open Columns menu: check, uncheck, expand or list the node titled `want` (`prefix*`: every node
    whose title starts so; `closed`: those of them not expanded); the titles acted on."""
    done = page.js(f"({TREE_JS})({json.dumps(want)}, {json.dumps(action)})")
    if not isinstance(done, list) or (not done and action != "closed"):
        raise SystemExit(f"the Columns menu of the Models tab has no {want!r} ({done})")
    return done


def click(page: Page, expr: str) -> bool:
    """Click (pointer events, as a user) the element `expr` finds, if it finds one."""
    where = page.js(f"""(() => {{ const e = {expr}; if (!e) return null; const r = e.getBoundingClientRect();
        return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
    if not where:
        return False
    for kind in ("mousePressed", "mouseReleased"):
        page.call("Input.dispatchMouseEvent", type=kind, x=where[0], y=where[1], button="left", clickCount=1)
    return True


def close_assistant(page: Page) -> None:
    """Close the MLflow Assistant side panel when the UI opened it (on a first visit it may)."""
    panel_close = """[...document.querySelectorAll('button[aria-label="Close"]')].find(b => {
        let e = b; for (let i = 0; i < 8 && e; i++, e = e.parentElement)
            if ((e.innerText || '').includes('MLflow Assistant')) return true; return false; })"""
    if click(page, panel_close):
        time.sleep(1.5)


def choose_columns(page: Page, metrics: list[str]) -> None:
    """Leave the Models table with the model names, their registered versions and the metric columns whose
    names end with one of `metrics` (e.g. `avg_at_k`: one column per benchmark; `total_gpu_hours`), grouped by
    dataset."""
    # the menu opens on pointer events, not on element.click()
    if not click(page, "[...document.querySelectorAll('button')].find(b => b.innerText.trim() === 'Columns')"):
        raise SystemExit("the Models tab has no Columns menu in this MLflow UI")
    page.wait_for("!!document.querySelector('[role=menu] .du-bois-light-tree-list-holder')", 20, "the Columns menu")
    for group in ("Model attributes", "Metrics", "Parameters"):
        tree(page, group, "uncheck")
    tree(page, "Registered models", "check")  # where the recommended model's version shows
    groups = tree(page, "Dataset: *", "list") + tree(page, "No dataset", "list")
    for _ in range(4):  # one at a time, the menu renders (and animates) anew after each; again if one was lost
        closed = [g for g in groups if g in tree(page, "*", "closed")]
        for group in closed:
            tree(page, group, "expand")
            time.sleep(1.0)
        if not closed:
            break
    titles = tree(page, "*", "list")
    chosen = [t for t in titles if any(t.endswith(m) for m in metrics)]
    for _ in range(4):  # a check can be lost while the menu renders anew: check again what is not shown
        shown = page.js("[...document.querySelectorAll('.ag-header-cell')].map(c => (c.innerText || '').trim())")
        missing = [t for t in chosen if t not in shown]
        for title in missing:
            tree(page, title, "check")
            time.sleep(0.4)
        if not missing:
            break
    if not chosen:
        raise SystemExit(f"--columns: no metric column ends with {' / '.join(metrics)} (datasets: {groups})")
    page.call("Input.dispatchKeyEvent", type="keyDown", key="Escape", code="Escape", windowsVirtualKeyCode=27)
    page.call("Input.dispatchKeyEvent", type="keyUp", key="Escape", code="Escape", windowsVirtualKeyCode=27)


if __name__ == "__main__":
    main()
