"""CLI: `m2rl serve-rewards` (the reward service) and `m2rl score` (score a file of responses)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("serve-rewards")
    def serve_rewards(
        host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 in a pod)."),
        port: int = typer.Option(5000, help="Port to listen on."),
        workers: Optional[int] = typer.Option(None, help="Scoring processes (default: one per core)."),
        timeout: Optional[float] = typer.Option(None, help="Seconds per scored item (default: per verifier)."),
        max_concurrent: int = typer.Option(4, help="Requests scored at the same time."),
        max_queue: int = typer.Option(64, help="Requests waiting beyond those; more get 503."),
        max_body_mb: float = typer.Option(64.0, help="Largest request body in MiB; larger gets 413."),
        max_items: int = typer.Option(4096, help="Most queries in one request; more gets 413."),
        require_think_close: Optional[bool] = typer.Option(
            None, "--require-think-close/--no-require-think-close",
            help="Score 0 a response without </think> (the spec's rewards.require_think_close); default "
                 "$M2RL_REQUIRE_THINK_CLOSE.",
        ),
        header_timeout: float = typer.Option(10.0, help="Seconds for a request's headers to arrive (else 408)."),
        body_timeout: float = typer.Option(60.0, help="Seconds for a request's body to arrive (else 408)."),
        keep_alive: float = typer.Option(5.0, help="Idle seconds before a keep-alive connection is closed."),
        max_header_kb: int = typer.Option(64, help="Largest header block in KiB; larger gets 431."),
        max_connections: int = typer.Option(2048, help="Open connections; a new one beyond gets 503."),
        max_json_depth: int = typer.Option(64, help="Deepest JSON nesting of a body or label; deeper gets 400."),
        max_test_seconds: float = typer.Option(10.0, help="A label's per-test timeout is clamped to this."),
        max_item_seconds: float = typer.Option(
            300.0, help="Hard limit of one item unless --timeout says otherwise (a label's bound is capped)."),
        max_request_seconds: float = typer.Option(
            14400.0, help="Worst-case scoring seconds one request may cost; more gets 413."),
        max_work_seconds: float = typer.Option(
            57600.0, help="Worst-case scoring seconds of all admitted requests; beyond, 503 with Retry-After."),
        grace: float = typer.Option(30.0, help="Seconds in-flight requests get to finish after SIGTERM."),
    ) -> None:
        """Serve OpenRLHF's HTTP remote-reward protocol (POST query/prompts/labels; GET /health, /metrics)."""
        from m2rl.verifiers.service import ServiceConfig, serve

        if max_concurrent < 1 or max_queue < 0 or max_items < 1 or max_body_mb <= 0:
            raise typer.BadParameter("limits must be positive (max_queue may be 0)")
        cfg = ServiceConfig(max_body_bytes=int(max_body_mb * 1024 * 1024), max_items=max_items,
                            max_concurrent=max_concurrent, max_queue=max_queue, workers=workers, timeout=timeout,
                            header_timeout=header_timeout, body_timeout=body_timeout, keep_alive=keep_alive,
                            max_header_bytes=max_header_kb * 1024, max_connections=max_connections,
                            max_json_depth=max_json_depth, max_test_seconds=max_test_seconds,
                            max_item_seconds=max_item_seconds, max_request_seconds=max_request_seconds,
                            max_work_seconds=max_work_seconds, grace=grace)
        if require_think_close is not None:
            cfg.require_think_close = require_think_close
        try:
            cfg.check()
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        serve(host, port, cfg, ready=lambda url: typer.echo(f"m2rl reward service on {url}", err=True))

    @app.command("score")
    def score_cmd(
        records: Path = typer.Argument(..., help="Records parquet (the unified form)."),
        responses: Path = typer.Argument(..., help="JSONL: one {\"id\", \"response\"} per line (or a plain string)."),
        out: Optional[Path] = typer.Option(None, help="Write one JSON score per line here (default: stdout)."),
        workers: Optional[int] = typer.Option(None, help="Scoring processes (default: one per core)."),
        timeout: Optional[float] = typer.Option(None, help="Seconds per item (default: per verifier)."),
    ) -> None:
        """Score responses against records: matched by `id`, else by line order. Prints the mean reward."""
        from m2rl.records import read_records
        from m2rl.verifiers import VerifierError, score_batch

        recs = read_records(records)
        by_id = {r["id"]: r for r in recs}
        pairs = []
        for n, line in enumerate(responses.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError:
                raise typer.BadParameter(f"{responses}:{n}: not valid JSON") from None
            if isinstance(item, str):
                rid, text = None, item
            elif isinstance(item, dict) and isinstance(item.get("response"), str):
                rid, text = item.get("id"), item["response"]
            else:
                raise typer.BadParameter(f"{responses}:{n}: expected a string or {{\"id\", \"response\"}}")
            if rid is not None:
                if rid not in by_id:
                    raise typer.BadParameter(f"{responses}:{n}: no record with id {rid!r} in {records}")
                rec = by_id[rid]
            else:
                if len(pairs) >= len(recs):
                    raise typer.BadParameter(f"{responses}:{n}: more responses than records")
                rec = recs[len(pairs)]
            pairs.append((rec, text))
        try:
            scores = score_batch([p[0] for p in pairs], [p[1] for p in pairs], workers=workers, timeout=timeout)
        except VerifierError as exc:
            raise typer.BadParameter(str(exc)) from None
        lines = [json.dumps({"id": rec.get("id"), "domain": rec.get("domain"), "score": s.value,
                             "details": s.details}, ensure_ascii=False, default=str)
                 for (rec, _), s in zip(pairs, scores, strict=True)]
        text = "\n".join(lines) + ("\n" if lines else "")
        if out is not None:
            from m2rl.storage import write_text

            write_text(str(out), text)
        else:
            sys.stdout.write(text)
        mean = sum(s.value for s in scores) / len(scores) if scores else 0.0
        typer.echo(f"scored {len(scores)} responses: mean reward {mean:.4f}", err=True)
