"""Fixtures of the evaluation tests: one tiny random checkpoint for the session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A tiny random Llama checkpoint folder (ChatML template), built once."""
    from m2rl.models import build_random_model

    return str(build_random_model(tmp_path_factory.mktemp("models") / "tiny", "tiny", seed=0))
