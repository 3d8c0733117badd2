"""Environment benchmark: `workplace_assistant` tool calls per second, and an episode's environment overhead
beside the generation time of a tiny model for the same turns.

    python benchmarks/env.py [--data DIR] [--calls 20000] [--episodes 16] [--turns 4] [--new-tokens 48]

1. Steps/s: `Environment.call` on a realistic mix of calls (the workbench rows' kinds: searches over the
   inbox, calendar, tasks and CRM, reads by id, replies, forwards, updates, deletions, creations, analytics,
   and malformed calls), on the WorkBench data (`--data`, default: the trimmed real CSVs of the tests) and
   on the generated sandbox; one process, one core. Goal: >= 10,000 steps/s on 2 cores.
2. Episode overhead: `run_episodes` on `--episodes` real-format records for `--turns` model turns, with a
   `generate` that runs a tiny random Llama (built from a config, as the tests build theirs) on the rendered
   conversations (the chat template with the tool schemas) for `--new-tokens` tokens per turn, and returns
   scripted tool calls so that the environment does real work. The environment's share is the episode time
   minus the time spent in `generate` (rendering, tokenising, `model.generate`): reset, parsing, tool calls,
   messages, outcome. `--records workbench` plays the real rows instead (27 tool schemas, ~12k-token prompts).
Prints a table with both, and the ratios.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "envs" / "fixtures" / "workbench"
GOAL = 10_000


def _mix(env, rng: random.Random, n: int) -> list[tuple[str, dict]]:
    """`n` calls drawn like an agent's: mostly look-ups and reads, some writes and mistakes."""
    st = env.state
    emails, events = sorted(st.tables["emails"]), sorted(st.tables["calendar"])
    tasks, customers = sorted(st.tables["tasks"]), sorted(st.tables["crm"])
    people = env.sandbox.directory
    subjects = [r["subject"] for r in st.tables["emails"].values()]
    names = [r["customer_name"] for r in st.tables["crm"].values()]
    task_names = [r["task_name"] for r in st.tables["tasks"].values()]
    kinds = [
        (8, lambda: ("email_search_emails", {"query": f"{rng.choice(people).split('.')[0]} {rng.choice(subjects)}"})),
        (4, lambda: ("email_search_emails", {"query": rng.choice(people).split(".")[0], "date_min": "2023-11-01"})),
        (6, lambda: ("email_get_email_information_by_id", {"email_id": rng.choice(emails), "field": "body"})),
        (4, lambda: ("email_reply_email", {"email_id": rng.choice(emails), "body": "Thanks, noted."})),
        (2, lambda: ("email_forward_email", {"email_id": rng.choice(emails), "recipient": rng.choice(people)})),
        (2, lambda: ("email_delete_email", {"email_id": rng.choice(emails)})),
        (5, lambda: ("calendar_search_events", {"time_min": "2023-12-01 00:00:00", "time_max": "2023-12-01 23:59:59"})),
        (3, lambda: ("calendar_update_event", {"event_id": rng.choice(events), "field": "event_name",
                                               "new_value": "Roadmap Review"})),
        (2, lambda: ("calendar_create_event", {"event_name": "Sync", "participant_email": rng.choice(people),
                                               "event_start": "2023-12-05 10:00:00", "duration": "30"})),
        (5, lambda: ("customer_relationship_manager_search_customers", {"customer_name": rng.choice(names)})),
        (3, lambda: ("customer_relationship_manager_update_customer", {"customer_id": rng.choice(customers),
                                                                       "field": "status", "new_value": "Lost"})),
        (4, lambda: ("project_management_search_tasks", {"task_name": rng.choice(task_names)})),
        (3, lambda: ("project_management_update_task", {"task_id": rng.choice(tasks), "field": "list_name",
                                                        "new_value": "Completed"})),
        (2, lambda: ("company_directory_find_email_address", {"name": rng.choice(people).split(".")[0]})),
        (2, lambda: ("analytics_total_visits_count", {"time_min": "2023-11-20", "time_max": "2023-11-27"})),
        (1, lambda: ("analytics_create_plot", {"time_min": "2023-11-01", "time_max": "2023-11-30",
                                               "value_to_plot": "total_visits", "plot_type": "bar"})),
        (2, lambda: ("email_reply_email", {"email_id": "123"})),  # a mistake: missing body
        (1, lambda: ("email_send", {"to": "x"})),  # a mistake: unknown tool
    ]
    weights = [w for w, _ in kinds]
    return [rng.choices(kinds, weights)[0][1]() for _ in range(n)]


def steps_per_second(record: dict, params: dict, n: int, episode_len: int = 8) -> tuple[float, float]:
    """(calls/s, resets/s): calls in episodes of `episode_len` calls, a fresh sandbox per episode."""
    from m2rl.envs import new_environment

    rng = random.Random(0)
    env = new_environment(record, params)
    calls = _mix(env, rng, n)
    t0 = time.perf_counter()
    for i in range(0, n, episode_len):
        env.reset(record)
        for name, args in calls[i:i + episode_len]:
            env.call(name, args)
        env.outcome()
    dt = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(2000):
        env.reset(record)
    return n / dt, 2000 / (time.perf_counter() - t0)


def episodes(records: list[dict], params: dict, turns: int, new_tokens: int) -> dict:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from m2rl.envs import new_environment, run_episodes
    from m2rl.models import CHATML_TOOLS_TEMPLATE, resolve_model
    from m2rl.records import render_chat

    torch.manual_seed(0)
    folder = resolve_model("random:tiny")  # its tokenizer; the model: the same tiny Llama with room for the prompts
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = CHATML_TOOLS_TEMPLATE
    tok.padding_side = "left"
    cfg = LlamaConfig.from_pretrained(folder)
    cfg.max_position_embeddings = 32768
    model = LlamaForCausalLM(cfg).eval()
    rng = random.Random(1)
    gen_time = [0.0]
    scripted: dict[str, list] = {}

    def generate(convs, tools):
        t_start = time.perf_counter()
        try:
            return _generate(convs, tools)
        finally:
            gen_time[0] += time.perf_counter() - t_start

    def _generate(convs, tools):
        # the chat template renders the assistant turns' tool_calls and the tool messages
        texts = [tok.apply_chat_template(conv, tools=tl, add_generation_prompt=True, tokenize=False)
                 for conv, tl in zip(convs, tools, strict=True)]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=True,
                                 pad_token_id=tok.pad_token_id)
        n_new = out.shape[1] - enc["input_ids"].shape[1]
        replies = []
        for conv in convs:
            key = conv[1]["content"]
            calls = scripted.setdefault(key, [])
            if not calls:
                calls.extend(_mix(new_environment(records[0], params), rng, turns))
            name, args = calls[sum(m["role"] == "assistant" for m in conv) % len(calls)]
            replies.append((f"<tool_call>\n{json.dumps({'name': name, 'arguments': args})}\n</tool_call>", n_new))
        return replies

    t0 = time.perf_counter()
    eps = run_episodes(records, generate, max_turns=turns, env_params=params)
    total = time.perf_counter() - t0
    prompt = render_chat(tok, records[0]["prompt"], new_environment(records[0], params).tool_schemas())
    return {"episodes": len(eps), "turns": sum(e.turns for e in eps), "total_s": total, "generate_s": gen_time[0],
            "env_s": total - gen_time[0], "prompt_tokens": len(tok(prompt)["input_ids"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(FIXTURES), help="folder of the WorkBench CSVs (default: the test fixtures)")
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--turns", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--records", choices=("generated", "workbench"), default="generated",
                    help="episode records: builtin workplace tasks (a toolkit's tools) or the real rows (27 tools)")
    args = ap.parse_args()

    from m2rl.data.builtin import Variant, generate

    rows = [json.loads(line) for line in (FIXTURES / "example.jsonl").read_text().splitlines() if line.strip()]
    real = [{"id": f"wb-{r['id']}", "prompt": r["responses_create_params"]["input"],
             "tools": r["responses_create_params"]["tools"],
             "verifier": {"type": "env", "env": "workplace_assistant", "ground_truth": r["ground_truth"]}}
            for r in rows]
    params = {"workplace_assistant": {"data": args.data}}
    gen_rec = generate("agent", 0, 1, Variant(("workplace",)))[0]

    print(f"{'sandbox':<34} {'calls/s':>10} {'resets/s':>10} {'vs goal':>8}")
    for label, rec in ((f"workbench ({Path(args.data).name})", real[0]), ("generated (seed 0)", gen_rec)):
        cps, rps = steps_per_second(rec, params, args.calls)
        print(f"{label:<34} {cps:>10,.0f} {rps:>10,.0f} {cps / GOAL:>7.1f}x")

    if args.records == "generated":
        records = generate("agent", 0, args.episodes, Variant(("workplace",)))
    else:  # the real rows, each user message made unique (the scripted generate keys on it)
        records = [{**real[i % len(real)], "id": f"wb-{i}", "prompt": [
            real[i % len(real)]["prompt"][0],
            {"role": "user", "content": f"{real[i % len(real)]['prompt'][1]['content']} (#{i})"}]}
            for i in range(args.episodes)]
    r = episodes(records, params, args.turns, args.new_tokens)
    print()
    print(f"episodes: {r['episodes']} {args.records} records x {args.turns} turns in lock-step ({r['turns']} model "
          f"turns), {args.new_tokens} new tokens per turn, prompt ~{r['prompt_tokens']} tokens, tiny random Llama")
    print(f"{'part':<34} {'seconds':>10} {'per turn ms':>12} {'share':>8}")
    for part, s in (("generate (render + model.generate)", r["generate_s"]), ("environment (all else)", r["env_s"]),
                    ("episode total", r["total_s"])):
        print(f"{part:<34} {s:>10.3f} {1000 * s / r['turns']:>12.2f} {s / r['total_s']:>7.1%}")
    print(f"environment / generate = {r['env_s'] / r['generate_s']:.4f}")


if __name__ == "__main__":
    main()
