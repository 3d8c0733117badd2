"""The `m2rl` command line. Stage packages add their commands through a `register(app)` hook."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="m2rl", help="M2RL: mix or merge? Multi-domain RLVR studies from one experiment spec.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)

# Each module defines `register(app)`; kept light at import time so `m2rl --help` is fast.
COMMAND_MODULES = (
    "m2rl.commands",
    "m2rl.verifiers.cli",
    "m2rl.train.cli",
    "m2rl.merge.cli",
    "m2rl.distill.cli",
    "m2rl.evaluate.cli",
    "m2rl.analysis.cli",
    "m2rl.orchestration.cli",
    "m2rl.k8s.cli",
)

for _name in COMMAND_MODULES:
    try:
        _mod = importlib.import_module(_name)
    except ModuleNotFoundError as exc:  # a stage package not present in this build
        if exc.name and _name.startswith(exc.name):
            continue
        raise
    _mod.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
