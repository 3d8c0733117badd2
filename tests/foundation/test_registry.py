"""One registry for every named thing, and a spec resolved (names and parameters) before anything runs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from pydantic import Field
from typer.testing import CliRunner

from m2rl.cli import app
from m2rl.registry import REGISTRIES, NoParams, Registry, RegistryError, StrictModel, registry
from m2rl.spec import SpecError, load_spec, spec_from_dict

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
SMOKE = yaml.safe_load((ROOT / "examples" / "smoke.yaml").read_text())


# --- the generic registry -------------------------------------------------------------------------

class _Params(StrictModel):
    """Parameters of a test entry."""

    density: float = Field(default=0.5, gt=0, le=1, description="Kept fraction.")
    scope: str = Field(default="tensor", description="Where the threshold applies.")


def test_register_look_up_and_errors_name_the_choices():
    reg: Registry = Registry("thing", "test thing")

    @reg.register("alpha", params=_Params)
    def alpha():
        """Alpha does a thing."""

    @reg.register("beta")
    class Beta:
        """Beta: a class entry."""

    assert reg.names() == ["alpha", "beta"] and reg.get("alpha") is alpha and "beta" in reg
    assert reg.entry("alpha").description == "Alpha does a thing."
    assert reg.entry("beta").params is NoParams
    assert [d[0] for d in reg.entry("alpha").param_docs()] == ["density", "scope"]
    with pytest.raises(RegistryError, match=r"^where: unknown test thing 'alpah'; known: alpha, beta; did you mean 'alpha'\?$"):
        reg.get("alpah", "where")
    with pytest.raises(RegistryError, match="unknown test thing 'zzz'; known: alpha, beta$"):
        reg.get("zzz")
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("alpha")(lambda: None)
    assert reg.parse_params("alpha", {"density": 0.2}).density == 0.2
    with pytest.raises(RegistryError) as exc:
        reg.parse_params("alpha", {"densty": 0.2, "scope": 3}, "params")
    assert exc.value.problems == [
        "alpha: params.scope: Input should be a valid string",
        "alpha: params.densty: unknown parameter; known: density, scope; did you mean 'density'?",
    ]
    assert reg.problems("alpha", {"density": 2}, where="m[0].method", params_where="m[0].params") == [
        "m[0].params.density: must be <= 1.0"]
    assert reg.problems(None, where="m[0].method")[0].startswith("m[0].method: unknown test thing None")


def test_an_entry_check_refuses_a_bad_entry():
    reg: Registry = Registry("thing", "test thing")

    def needs_run(obj):
        if not hasattr(obj, "run"):
            raise TypeError(f"{obj.__name__} has no run()")

    with pytest.raises(TypeError, match="has no run"):
        reg.register("x", check=needs_run)(type("X", (), {}))
    assert reg.names() == []


def test_every_kind_discovers_its_package_and_documents_every_parameter():
    expected = {"merge": {"average", "task_arithmetic", "ties", "dare_ta", "dare_ties", "sce", "model_stock", "tsv"},
                "verifier": {"math", "mcqa", "ifeval", "unit_test", "tool_calls", "env"},
                "source": {"builtin", "hf", "nemotron_rl_blend", "records"},
                "benchmark": {"aime24", "gpqa_diamond", "ifeval", "builtin_math", "livecodebench"},
                "analysis": {"geometry", "divergence", "inheritance", "behaviour", "transfer", "cost"},
                "train_backend": {"trl", "openrlhf"}, "eval_backend": {"hf", "vllm"},
                "instruction": {"keywords:existence", "length_constraints:number_words", "count:word_count_range"},
                "environment": {"workplace_assistant"}}
    assert set(REGISTRIES) == set(expected)
    for kind, names in expected.items():
        reg = registry(kind)
        assert names <= set(reg.names()), kind
        for entry in reg.entries():
            assert entry.description, f"{kind} {entry.name} has no description"
            for pname, _, desc in entry.param_docs():
                assert desc, f"{kind} {entry.name}: parameter {pname} has no description"
    with pytest.raises(RegistryError, match="unknown kind 'merges'.*did you mean 'merge'"):
        registry("merges")


def test_m2rl_list_prints_names_parameters_and_descriptions():
    runner = CliRunner()
    res = runner.invoke(app, ["list", "merge"])
    assert res.exit_code == 0, res.output
    assert "ties:" in res.output and "density = 0.2: Fraction of |tau| entries kept by the trim." in res.output
    res = runner.invoke(app, ["list", "--json"])
    assert res.exit_code == 0
    doc = yaml.safe_load(res.output)
    assert set(doc) == set(REGISTRIES)
    builtin = next(e for e in doc["source"] if e["name"] == "builtin")
    assert {p["name"] for p in builtin["params"]} == {"seed", "count", "kinds", "allow_last_number"}
    res = runner.invoke(app, ["list", "mergee"])
    assert res.exit_code == 2 and "did you mean 'merge'" in res.output


# --- the spec resolves every name and parameter ----------------------------------------------------

def _with(change) -> dict:
    data = copy.deepcopy(SMOKE)
    change(data)
    return data


# One misspelled name and one misspelled parameter per registered kind: (spec edit, field path, suggestion).
CASES = {
    "merge name": (lambda d: d["merge"]["methods"][0].update(method="tiess"),
                   "merge.methods[0].method: unknown merge method 'tiess'", "did you mean 'ties'?"),
    "merge param": (lambda d: d["merge"]["methods"].append({"method": "ties", "name": "t2", "params": {"densty": 0.3}}),
                    "merge.methods[2].params.densty: unknown parameter", "did you mean 'density'?"),
    "source name": (lambda d: d["data"]["domains"]["math"]["sources"][0].update(type="builtn"),
                    "data.domains.math.sources[0].type: unknown data source 'builtn'", "did you mean 'builtin'?"),
    "source param": (lambda d: d["data"]["domains"]["math"]["sources"][0].setdefault("options", {}).update(kinsd=["mental"]),
                     "data.domains.math.sources[0].options.kinsd: unknown parameter", "did you mean 'kinds'?"),
    "source option value": (lambda d: d["data"]["domains"]["math"]["sources"][0].setdefault("options", {}).update(kinds=["mentl"]),
                            "data.domains.math.sources[0].options.kinds: unknown math kind 'mentl'", "mental"),
    "verifier name": (lambda d: d["data"]["domains"]["math"]["sources"].append(
                          {"type": "hf", "path": "x", "columns": {"prompt": "q"}, "verifier": {"type": "maths"}}),
                      "data.domains.math.sources[1].verifier.type: unknown verifier type 'maths'", "did you mean 'math'?"),
    "verifier param": (lambda d: d["data"]["domains"]["math"]["sources"].append(
                           {"type": "hf", "path": "x", "columns": {"prompt": "q"},
                            "verifier": {"type": "math", "allow_last_numbr": True}}),
                       "data.domains.math.sources[1].verifier.allow_last_numbr: unknown parameter",
                       "did you mean 'allow_last_number'?"),
    "benchmark name": (lambda d: d["evaluate"]["benchmarks"].append({"name": "aime2024"}),
                       "evaluate.benchmarks[5].name: unknown benchmark 'aime2024'", "did you mean 'aime24'?"),
    "benchmark param": (lambda d: d["evaluate"]["benchmarks"].append({"name": "gpqa_diamond", "options": {"shufle_seed": 1}}),
                        "evaluate.benchmarks[5].options.shufle_seed: unknown parameter", "did you mean 'shuffle_seed'?"),
    "analysis name": (lambda d: d.setdefault("analysis", {}).update(analyses=["geometry", "divergnce"]),
                      "analysis.analyses[1]: unknown analysis 'divergnce'", "did you mean 'divergence'?"),
    "analysis param": (lambda d: d.setdefault("analysis", {}).update(kl_prompt=4),
                       "analysis.kl_prompt: unknown key", "did you mean 'kl_prompts'?"),
    "train backend name": (lambda d: d["train"].update(backend="openrlfh"),
                           "train.backend: unknown training backend 'openrlfh'", "did you mean 'openrlhf'?"),
    "train backend param": (lambda d: d["train"].update(backend="openrlhf", backend_options={"extra_arg": ["--x"]}),
                            "train.backend_options.extra_arg: unknown parameter", "did you mean 'extra_args'?"),
    "eval backend name": (lambda d: d["evaluate"].update(backend="vlm"),
                          "evaluate.backend: unknown evaluation backend 'vlm'", "did you mean 'vllm'?"),
    "eval backend param": (lambda d: d["evaluate"].update(backend="vllm", backend_options={"enforce_eagre": True}),
                           "evaluate.backend_options.enforce_eagre: unknown parameter", "did you mean 'enforce_eager'?"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_typo_fails_validate_with_the_field_path_and_a_suggestion(case, tmp_path):
    change, path, hint = CASES[case]
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(_with(change)))
    res = CliRunner().invoke(app, ["validate", str(spec)])
    assert res.exit_code == 2, res.output
    line = next((ln.strip() for ln in res.output.splitlines() if ln.strip().startswith(path)), None)
    assert line is not None, res.output
    assert hint in line, line


def test_every_problem_is_reported_at_once():
    def many(d):
        d["merge"]["methods"][0]["method"] = "tiess"
        d["train"]["lr"] = -1
        d["evaluate"]["benchmarks"][0]["name"] = "aime2024"
    with pytest.raises(SpecError) as exc:
        spec_from_dict(_with(many))
    paths = [e.split(":")[0] for e in exc.value.errors]
    assert paths == ["train.lr", "merge.methods[0].method", "evaluate.benchmarks[0].name"]


@pytest.mark.parametrize("spec_file", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_spec_validates(spec_file):
    res = CliRunner().invoke(app, ["validate", str(spec_file)])
    assert res.exit_code == 0, res.output
    load_spec(spec_file)


COMMANDS = {
    "validate": [], "data": [], "train": ["--run", "math", "--dry-run"], "merge": None, "eval": None,
    "analyze": [], "report": [], "run": [], "compile": [], "submit": ["--host", "http://127.0.0.1:9", "--dry-run"],
    "rayjob": ["--domain", "math", "--data", "d", "--base", "b", "--out", "o", "--dry-run"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_refuses_a_typo_before_anything_starts(command, tmp_path):
    data = _with(lambda d: d["merge"]["methods"][0].update(method="tiess"))
    data["work_dir"] = str(tmp_path / "work")
    data["artifact_root"] = str(tmp_path / "artifacts")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(data))
    if command == "merge":
        argv = ["merge", "--spec", str(spec)]
    elif command == "eval":
        argv = ["eval", "random:tiny", "--spec", str(spec)]
    else:
        argv = [command, str(spec), *COMMANDS[command]]
    res = CliRunner().invoke(app, argv)
    assert res.exit_code == 2, (command, res.output)
    assert "merge.methods[0].method: unknown merge method 'tiess'" in res.output
    assert "did you mean 'ties'?" in res.output
    assert not (tmp_path / "work").exists() and not (tmp_path / "artifacts").exists()


def test_flags_are_resolved_like_the_spec(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["merge", "--base", "b", "--model", "e", "--method", "tiess", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "merge.methods[0].method: unknown merge method 'tiess'" in res.output
    res = runner.invoke(app, ["merge", "--base", "b", "--model", "e", "--method", "ties", "--param", "densty=0.3",
                              "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "merge.methods[0].params.densty: unknown parameter" in res.output
    res = runner.invoke(app, ["eval", "random:tiny", "--benchmark", "aime2024", "--out", str(tmp_path / "e")])
    assert res.exit_code == 2 and "unknown benchmark 'aime2024'" in res.output and "did you mean 'aime24'" in res.output
    assert not (tmp_path / "o").exists() and not (tmp_path / "e").exists()


def test_first_use_from_many_threads_sees_every_entry():
    """Threads that look names up while the first one is still importing the package wait for it (the
    OpenRLHF reward hook is called from a thread pool, so the verifier registry loads under concurrency)."""
    import subprocess
    import sys

    code = (
        "from concurrent.futures import ThreadPoolExecutor\n"
        "from m2rl.registry import VERIFIERS\n"
        "with ThreadPoolExecutor(8) as pool:\n"
        "    seen = list(pool.map(lambda _: tuple(VERIFIERS.names()), range(16)))\n"
        "assert len(set(seen)) == 1 and len(seen[0]) == 6, seen\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
