"""Fixtures of the analysis tests: the planted fixture study, its analysis, and a real MLflow server."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.analysis.fixture_study import make_study
from tests.conftest import _stop, free_port, wait_http

ANALYSIS_PARAMS = {"kl_prompts": 6, "kl_max_new_tokens": 12, "footprint_top_percent": 5.0, "projection_dim": 256,
                   "bootstrap": 400, "domains": ["math", "code"], "study": "fixture-study"}


@pytest.fixture(scope="session")
def study(tmp_path_factory):
    """The planted study (see fixture_study.py), built once per session."""
    return make_study(tmp_path_factory.mktemp("study"))


@pytest.fixture(scope="session")
def analysed(study, tmp_path_factory):
    """(study, AnalysisResult, analysis dict) of the fixture study, analysed once per session."""
    from m2rl.analysis import analyze, read_analysis

    out = tmp_path_factory.mktemp("report")
    result = analyze(dict(ANALYSIS_PARAMS), study.models, study.base, study.evals, study.train_cards, str(out),
                     cache=tmp_path_factory.mktemp("cache"))
    return study, result, read_analysis(str(out))


@pytest.fixture(scope="session")
def mlflow_file_server(tmp_path_factory):
    """A real `mlflow server` on 127.0.0.1 (SQLite store, file artifact root); yields its URL."""
    root = tmp_path_factory.mktemp("mlflow-analysis")
    port = free_port()
    log = open(root / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--default-artifact-root", (root / "artifacts").as_uri(), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health", proc, timeout=120)
        yield url
    finally:
        _stop(proc)
        log.close()
