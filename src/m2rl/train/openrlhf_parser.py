"""OpenRLHF's own argument parser, built from its released source without importing its GPU stack.

`openrlhf/cli/train_ppo_ray.py` builds its parser inside `if __name__ == "__main__":` and the package
pins GPU-only dependencies (flash-attn, deepspeed, ray, vllm), so it cannot be imported here. Instead:
`pip download --no-deps openrlhf==<pin>` (cached), take the file from the wheel, execute its module body
with the GPU imports stubbed, then execute the `__main__` block with `train(args)` replaced by a capture.
That runs OpenRLHF's real flag definitions and its real post-parse checks (asserts and rewrites) on an
argument list, so a renamed or removed flag, or a combination OpenRLHF rejects, fails here.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import contextlib
import importlib.util
import io
import subprocess
import sys
import tempfile
import types
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

from m2rl import storage
from m2rl.train.openrlhf_args import OPENRLHF_PIN

ENTRY_FILE = "openrlhf/cli/train_ppo_ray.py"
CONFIG_FILE = "openrlhf/utils/config.py"
AGENT_FILE = "openrlhf/utils/agent.py"  # AgentInstanceBase / MultiTurnAgentExecutor, which drive an agent file
SOURCE_FILES = (ENTRY_FILE, CONFIG_FILE, AGENT_FILE)
_STUBBED = ("ray", "openrlhf", "modelscope", "deepspeed", "vllm", "torch", "transformers")


class OpenRLHFSourceError(RuntimeError):
    """OpenRLHF's source could not be fetched or has an unexpected layout.

    `unreachable` is True only when pip could not reach the package registry (a network error), the one
    case where a test may skip instead of failing.
    """

    def __init__(self, message: str, unreachable: bool = False):
        super().__init__(message)
        self.unreachable = unreachable


# pip's messages when the registry cannot be reached at all (as opposed to a missing version).
_NETWORK_ERRORS = ("NewConnectionError", "Max retries exceeded", "Temporary failure in name resolution",
                   "Name or service not known", "Network is unreachable", "Connection refused",
                   "ConnectTimeoutError", "ReadTimeoutError", "ProxyError", "Could not fetch URL")


class OpenRLHFArgsError(ValueError):
    """OpenRLHF's parser or its post-parse checks rejected an argument list; the message is OpenRLHF's."""


def source_dir(version: str = OPENRLHF_PIN, cache: str | Path | None = None) -> Path:
    """A folder holding OpenRLHF's `train_ppo_ray.py`, `utils/config.py` and `utils/agent.py` at `version`
    (downloaded once)."""
    root = (Path(cache) if cache else storage.cache_dir()) / "openrlhf" / version
    if all((root / f).is_file() for f in SOURCE_FILES):
        return root
    with tempfile.TemporaryDirectory(prefix="m2rl-openrlhf-") as tmp:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
             f"openrlhf=={version}", "-d", tmp],
            capture_output=True, text=True, timeout=300,
        )
        wheels = sorted(Path(tmp).glob("openrlhf-*.whl"))
        if proc.returncode != 0 or not wheels:
            text = f"{proc.stdout}\n{proc.stderr}"
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no wheel downloaded"]
            raise OpenRLHFSourceError(f"pip download openrlhf=={version} failed: {tail[0]}",
                                      unreachable=any(m in text for m in _NETWORK_ERRORS))
        with storage.atomic_local_dir(root) as out, zipfile.ZipFile(wheels[0]) as zf:
            for want in SOURCE_FILES:
                names = [n for n in zf.namelist() if n == want or n.endswith("/" + want)]
                if not names:
                    raise OpenRLHFSourceError(f"openrlhf=={version}: {want} not found in {wheels[0].name}")
                dst = out / want
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(zf.read(names[0]))
    return root


def _main_block(tree: ast.Module) -> tuple[list[ast.stmt], list[ast.stmt]]:
    """(module body without the __main__ block, the __main__ block's body)."""
    for i, node in enumerate(tree.body):
        test = getattr(node, "test", None)
        if (isinstance(node, ast.If) and isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
                and test.left.id == "__name__"):
            return tree.body[:i] + tree.body[i + 1 :], node.body
    raise OpenRLHFSourceError(f"{ENTRY_FILE}: no `if __name__ == \"__main__\":` block")


class _Captured(Exception):
    """Raised by the stand-in `train(args)` to stop the entry after its checks."""

    def __init__(self, args: Any):
        super().__init__("captured")
        self.captured = args


class OpenRLHFParser:
    """OpenRLHF's `train_ppo_ray` parser and post-parse checks, run on an argument list."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        source = (self.root / ENTRY_FILE).read_text(encoding="utf-8")
        head, main = _main_block(ast.parse(source, filename=ENTRY_FILE))
        self._head = compile(ast.Module(body=head, type_ignores=[]), ENTRY_FILE, "exec")
        self._main = compile(ast.Module(body=main, type_ignores=[]), ENTRY_FILE, "exec")
        spec = importlib.util.spec_from_file_location("_m2rl_openrlhf_config", self.root / CONFIG_FILE)
        self._config = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self._config)  # type: ignore[union-attr]

    def _import(self, name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002
        if name == "openrlhf.utils.config":
            return self._config
        if name.split(".")[0] in _STUBBED:
            return mock.MagicMock(name=name)
        return builtins.__import__(name, globals, locals, fromlist, level)

    def _namespace(self, argv: list[str]) -> dict[str, Any]:
        class Parser(argparse.ArgumentParser):
            def __init__(self, *args, **kwargs):
                kwargs.setdefault("prog", "openrlhf.cli.train_ppo_ray")
                super().__init__(*args, **kwargs)

            def parse_args(self, args=None, namespace=None):  # noqa: D102
                return super().parse_args(argv if args is None else args, namespace)

            def error(self, message):  # noqa: D102
                raise OpenRLHFArgsError(f"{self.prog}: {message}")

            def exit(self, status=0, message=None):  # noqa: D102
                raise OpenRLHFArgsError(f"openrlhf: exit {status}: {message or ''}".strip())

        shim = types.ModuleType("argparse")
        shim.__dict__.update(argparse.__dict__)
        shim.ArgumentParser = Parser  # type: ignore[attr-defined]
        import_fn = self._import

        def _import(name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002
            if name == "argparse":
                return shim
            return import_fn(name, globals, locals, fromlist, level)

        ns: dict[str, Any] = {
            "__name__": "openrlhf_train_ppo_ray", "__file__": str(self.root / ENTRY_FILE),
            "__builtins__": {**builtins.__dict__, "__import__": _import},
        }
        exec(self._head, ns)  # noqa: S102 - OpenRLHF's own module body, GPU imports stubbed

        def capture(args):
            raise _Captured(args)

        ns["train"] = capture
        return ns

    def parse(self, argv: list[str]) -> tuple[Any, list[str]]:
        """Run OpenRLHF's parser and checks on `argv`: (hierarchical args, printed warnings)."""
        ns = self._namespace(list(argv))
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(self._main, ns)  # noqa: S102
        except _Captured as done:
            return done.captured, [line for line in out.getvalue().splitlines() if line.strip()]
        except AssertionError as exc:
            raise OpenRLHFArgsError(f"openrlhf rejected the arguments: {exc}") from None
        except OpenRLHFArgsError:
            raise
        except Exception as exc:
            raise OpenRLHFArgsError(f"openrlhf failed on the arguments: {type(exc).__name__}: {exc}") from None
        raise OpenRLHFArgsError("openrlhf's entry finished without reaching train(args)")

    def option_strings(self) -> set[str]:
        """Every flag OpenRLHF's parser defines."""
        ns = self._namespace(["--help-not-a-flag"])
        with contextlib.suppress(Exception), contextlib.redirect_stdout(io.StringIO()):
            exec(self._main, ns)  # noqa: S102
        parser = ns.get("parser")
        if parser is None:
            raise OpenRLHFSourceError(f"{ENTRY_FILE}: the __main__ block defines no `parser`")
        return {s for action in parser._actions for s in action.option_strings}


def load_parser(version: str = OPENRLHF_PIN, cache: str | Path | None = None) -> OpenRLHFParser:
    return OpenRLHFParser(source_dir(version, cache))


@contextlib.contextmanager
def openrlhf_agent_modules(version: str = OPENRLHF_PIN, cache: str | Path | None = None
                           ) -> Iterator[types.ModuleType]:
    """OpenRLHF's released `openrlhf/utils/agent.py` (AgentInstanceBase, MultiTurnAgentExecutor), importable as
    `openrlhf.utils.agent` while the context lasts, so that an agent file (`m2rl/train/openrlhf_agent.py`) can be
    imported and driven exactly as OpenRLHF drives it. Its logging helper and `aiohttp` (used only by the
    single-turn executor's HTTP path) are stubbed; `sys.modules` is restored on exit (what was imported inside
    keeps its references), so nothing later takes the stubs for an installed OpenRLHF. An `openrlhf` package
    already installed (the GPU image) is used as it is."""
    if importlib.util.find_spec("openrlhf") is not None:
        import openrlhf.utils.agent as real

        yield real
        return
    import logging

    root = source_dir(version, cache)
    names = ("openrlhf", "openrlhf.utils", "openrlhf.utils.logging_utils", "openrlhf.utils.agent", "aiohttp")
    saved = {n: sys.modules[n] for n in names if n in sys.modules}
    pkg, utils = types.ModuleType("openrlhf"), types.ModuleType("openrlhf.utils")
    pkg.__path__, utils.__path__ = [], []  # packages holding only what is loaded here
    logging_utils = types.ModuleType("openrlhf.utils.logging_utils")
    logging_utils.init_logger = logging.getLogger
    sys.modules.update({"openrlhf": pkg, "openrlhf.utils": utils, "openrlhf.utils.logging_utils": logging_utils})
    sys.modules.setdefault("aiohttp", types.ModuleType("aiohttp"))
    try:
        spec = importlib.util.spec_from_file_location("openrlhf.utils.agent", root / AGENT_FILE)
        module = importlib.util.module_from_spec(spec)
        sys.modules["openrlhf.utils.agent"] = module
        spec.loader.exec_module(module)
        pkg.utils, utils.agent, utils.logging_utils = utils, module, logging_utils
        yield module
    finally:
        for n in names:
            sys.modules.pop(n, None)
        sys.modules.update(saved)
