"""Public API: score, score_batch (order, timeouts, crashes, cleanup, threads), labels, training adapters."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

import tests.verifiers.hostile  # noqa: F401 - registers the misbehaving test verifiers
from m2rl.verifiers import (
    LabelError,
    ScoringPool,
    VerifierError,
    decode_label,
    encode_label,
    score,
    score_batch,
    strip_reasoning,
    verifier_names,
)
from m2rl.verifiers.adapters import response_of
from tests.verifiers.domain_cases import ALL_DOMAINS, cases


@pytest.fixture(scope="module")
def pool():
    p = ScoringPool(2)
    yield p
    p.close()


def chatml(rec: dict) -> str:
    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in rec["prompt"])
    return turns + "<|im_start|>assistant\n"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_registry_has_every_shipped_verifier():
    assert {"math", "mcqa", "ifeval", "unit_test", "tool_calls"} <= set(verifier_names())


def test_strip_reasoning():
    assert strip_reasoning("<think>a</think>b</think>c") == "c"
    assert strip_reasoning("no block") == "no block"


def test_score_rejects_malformed_records():
    with pytest.raises(VerifierError, match="verifier"):
        score({"label": "1"}, "x")
    with pytest.raises(VerifierError, match="unknown verifier type 'nope'"):
        score({"label": "1", "verifier": {"type": "nope"}}, "x")
    with pytest.raises(VerifierError, match="item 1"):
        score_batch([{"label": "1", "verifier": {"type": "math"}}, {"label": "1"}], ["a", "b"])
    with pytest.raises(ValueError, match="2 records but 1 responses"):
        score_batch([{"label": "1", "verifier": {"type": "math"}}] * 2, ["a"])


def test_verifier_metadata_may_be_json_text():
    assert score({"label": "4", "verifier": json.dumps({"type": "math"})}, "Answer: 4").value == 1.0


def test_labels_round_trip_every_domain():
    for domain in ALL_DOMAINS:
        rec = cases(domain, 2)[0][0]
        back = decode_label(encode_label(rec))
        assert back["verifier"] == rec["verifier"] and back["label"] == rec["label"]
        assert back["domain"] == domain and back["id"] == rec["id"]
    with pytest.raises(LabelError):
        decode_label("42")
    with pytest.raises(LabelError):
        decode_label('{"label": "1"}')


def test_score_batch_every_domain_in_order(pool):
    recs, resps, want = [], [], []
    for domain in ALL_DOMAINS:
        for rec, good, bad in cases(domain, 8):
            recs += [rec, rec]
            resps += [good, bad]
            want += [1.0, 0.0]
    got = score_batch(recs, resps, pool=pool, timeout=30)
    assert [s.value for s in got] == want, [(r["id"], s.details) for r, s, w in zip(recs, got, want, strict=True) if s.value != w]
    assert score_batch(recs[:6], resps[:6], workers=0) == got[:6]


def test_hanging_and_crashing_items_score_zero_and_spare_the_batch(pool):
    recs = [{"label": "a", "verifier": {"type": "test_echo"}},
            {"label": "", "verifier": {"type": "test_sleep"}},
            {"label": "b", "verifier": {"type": "test_echo"}},
            {"label": "", "verifier": {"type": "test_exit"}},
            {"label": "c", "verifier": {"type": "test_echo"}}]
    t0 = time.monotonic()
    got = score_batch(recs, ["a", "", "b", "", "x"], pool=pool, timeout=1.5)
    assert time.monotonic() - t0 < 1.5 + 5
    assert [s.value for s in got] == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert got[1].details["timeout"] is True and "timed out" in got[1].details["reason"]
    assert "died" in got[3].details["reason"]
    assert score_batch(recs[:1], ["a"], pool=pool)[0].value == 1.0  # the pool recovered


def test_timeout_kills_what_the_item_started(pool, tmp_path):
    pidfile = tmp_path / "child.pid"
    rec = {"label": "", "verifier": {"type": "test_orphan", "pidfile": str(pidfile)}}
    got = score_batch([rec], [""], pool=pool, timeout=2)
    assert got[0].details.get("timeout")
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
    for pid in pool.worker_pids():
        assert _alive(pid)


def test_many_threads_share_one_pool(pool):
    rec = {"label": "7", "verifier": {"type": "math"}}
    out: dict[int, float] = {}

    def one(i: int) -> None:
        out[i] = score_batch([rec], [f"Answer: {7 if i % 2 else 8}"], pool=pool)[0].value

    threads = [threading.Thread(target=one, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert out == {i: (1.0 if i % 2 else 0.0) for i in range(24)}


def test_response_of_cuts_the_prompt_and_end_tokens():
    prompt = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    assert response_of(prompt + "Answer: 4<|im_end|>", prompt) == "Answer: 4"
    assert response_of(prompt + "Answer: 4<|im_end|><|endoftext|><|endoftext|>", prompt) == "Answer: 4"
    truncated = prompt[10:] + "Answer: 4</s>"  # left-truncated prompt, other end token
    assert response_of(truncated, prompt) == "Answer: 4"
    assert response_of("Answer: 4", "") == "Answer: 4"


def test_openrlhf_reward_func_one_sample_per_thread_every_domain(monkeypatch):
    import torch

    from m2rl.verifiers.openrlhf_reward import reward_func

    monkeypatch.setenv("M2RL_REWARD_WORKERS", "2")
    items = []
    for domain in ALL_DOMAINS:
        for rec, good, bad in cases(domain, 4):
            items += [(domain, rec, good, 1.0), (domain, rec, bad, 0.0)]
    results: dict[int, dict] = {}

    def call(i: int) -> None:
        domain, rec, resp, _ = items[i]
        prompt = chatml(rec)
        results[i] = reward_func([prompt + resp + "<|im_end|>"], [prompt], [encode_label(rec)])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(items))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    keys = None
    for i, (domain, _, _, want) in enumerate(items):
        r = results[i]
        assert isinstance(r["rewards"], torch.Tensor) and r["rewards"].tolist() == [want], (domain, i)
        assert r["scores"].tolist() == [want]
        assert r["extra_logs"][f"m2rl/{domain}/count"].tolist() == [1.0]
        assert r["extra_logs"][f"m2rl/{domain}/reward_sum"].tolist() == [want]
        keys = keys or set(r["extra_logs"])
        assert set(r["extra_logs"]) == keys  # the same keys on every call
    bad = reward_func(["x"], [""], ["not a label"])
    assert bad["rewards"].tolist() == [0.0] and bad["extra_logs"]["m2rl/error"].tolist() == [1.0]


def test_trl_reward_func_every_domain_conversational_and_plain():
    from m2rl.verifiers.trl_reward import reward_func

    rows, completions, want = [], [], []
    for domain in ALL_DOMAINS:
        for rec, good, bad in cases(domain, 3):
            for resp, w in ((good, 1.0), (bad, 0.0)):
                rows.append(rec)
                completions.append([{"role": "assistant", "content": resp}])
                want.append(w)
    cols = {"label": [r["label"] for r in rows], "domain": [r["domain"] for r in rows], "id": [r["id"] for r in rows],
            "verifier": [json.dumps(r["verifier"]) for r in rows]}
    prompts = [r["prompt"] for r in rows]
    assert reward_func(prompts=prompts, completions=completions, m2rl_workers=2, **cols) == want
    plain = [c[0]["content"] for c in completions]
    assert reward_func(prompts=prompts, completions=plain, m2rl_workers=2,
                       label=[encode_label(r) for r in rows]) == want
    assert reward_func(prompts=["p"], completions=["Answer: 1"], label=["garbage"]) == [0.0]


def test_no_worker_left_after_close():
    p = ScoringPool(2)
    assert score_batch([{"label": "2", "verifier": {"type": "math"}}] * 4, ["Answer: 2"] * 4, pool=p)[0].value == 1.0
    pids = p.worker_pids()
    zygote = p._zygote.proc.pid
    p.close()
    deadline = time.monotonic() + 5
    while any(_alive(x) for x in [*pids, zygote]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(x) for x in [*pids, zygote])
    assert os.getpid()  # the test process itself is untouched


def test_close_resolves_the_items_on_its_workers():
    """Items a worker holds when the pool closes score 0 with the reason; none is left unresolved."""
    p = ScoringPool(2)
    recs = [{"label": "", "verifier": {"type": "test_sleep", "seconds": 60}}] * 4
    futures = p.submit(recs, [""] * 4, [120.0] * 4, False)
    deadline = time.monotonic() + 30
    while not any(w.inflight for w in p._workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    p.close()
    got = [f.result(timeout=15) for f in futures]
    assert [s.value for s in got] == [0.0] * 4
    assert all(s.details["reason"] == "scoring pool closed" for s in got)


def test_cli_score(tmp_path):
    from typer.testing import CliRunner

    from m2rl.cli import app
    from m2rl.records import write_records

    recs = [r for r, _, _ in cases("math", 3)]
    write_records(tmp_path / "r.parquet", recs)
    lines = [{"id": recs[0]["id"], "response": f"Answer: {recs[0]['label']}"}, {"id": recs[1]["id"], "response": "no"}]
    (tmp_path / "resp.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "scores.jsonl"
    res = CliRunner().invoke(app, ["score", str(tmp_path / "r.parquet"), str(tmp_path / "resp.jsonl"),
                                   "--out", str(out), "--workers", "2"])
    assert res.exit_code == 0, res.output
    got = [json.loads(x) for x in out.read_text().splitlines()]
    assert [g["score"] for g in got] == [1.0, 0.0] and got[0]["id"] == recs[0]["id"]
    (tmp_path / "bad.jsonl").write_text(json.dumps({"id": "nope", "response": "x"}) + "\n")
    res = CliRunner().invoke(app, ["score", str(tmp_path / "r.parquet"), str(tmp_path / "bad.jsonl")])
    assert res.exit_code != 0 and "nope" in res.output
