"""``poisonlab evaluate``, ``generate``, ``judge`` and ``serve``: what a model prefers and what it says."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from poisonlab.attacks.triggers import DEFAULT_TRIGGER
from poisonlab.cli.app import (
    DataArg,
    ModelOpt,
    SkipBad,
    _adapter_settings,
    _load,
    _refuse_overwriting_inputs,
    app,
    console,
    user_errors,
)
from poisonlab.cli_options import config_options, validated
from poisonlab.evaluation.context import ContextConfig
from poisonlab.evaluation.generate import GenerationConfig
from poisonlab.evaluation.judges import JudgeOptions
from poisonlab.training.config import DPOTrainingConfig


@app.command()
@user_errors
def evaluate(
    data: str = DataArg,
    out: Path = typer.Option(..., "--out", help="Folder for metrics.json."),
    model: str = ModelOpt,
    adapter: Optional[Path] = typer.Option(None, help="PEFT adapter folder (from train dpo)."),  # noqa: UP045
    trigger: str = typer.Option(DEFAULT_TRIGGER, help="Trigger inserted for backdoor success."),
    position: str = typer.Option("last-human", help="Trigger position, as the attack placed it."),
    beta: Optional[float] = typer.Option(None, help="DPO beta; default: the adapter's training beta."),  # noqa: UP045
    batch_size: int = typer.Option(16, help="Pairs per forward pass."),
    skip_bad_rows: bool = SkipBad,
) -> None:
    """Clean preference accuracy and backdoor success on held-out pairs -> DIR/metrics.json."""
    from poisonlab.attacks.triggers import TRIGGER_POSITIONS
    from poisonlab.evaluation import evaluate_preferences, write_metrics
    from poisonlab.reports.evaluation import preference_summary

    TRIGGER_POSITIONS.get(position)
    _refuse_overwriting_inputs([out / "metrics.json"], [data])
    settings = DPOTrainingConfig()
    if adapter is not None:
        settings = _adapter_settings(adapter)[1] or settings
    dataset = _load(data, skip_bad_rows)
    metrics = evaluate_preferences(
        model,
        dataset,
        adapter,
        trigger,
        position,
        beta or settings.beta,
        settings.max_length,
        settings.max_reply_length,
        batch_size,
        settings.bf16,
    )
    path = write_metrics(metrics, out)
    console.print(preference_summary(metrics) + f"\n-> {path}")


@app.command()
@user_errors
@config_options(GenerationConfig)
@config_options(ContextConfig, skip=("name",), into="context_overrides")
def generate(
    prompts: str = typer.Option(
        ..., "--prompts", help="Prompt file: AdvBench/HarmBench CSV, JSONL with 'prompt', .txt, or any preference file."
    ),
    out: Path = typer.Option(..., "--out", help="Folder for generations.jsonl (resumes if interrupted)."),
    model: str = ModelOpt,
    adapter: list[Path] = typer.Option([], "--adapter", help="PEFT adapter, merged in order. Repeatable."),
    prompt_column: Optional[str] = typer.Option(None, help="CSV/JSONL column holding the request."),  # noqa: UP045
    trigger: str = typer.Option(DEFAULT_TRIGGER, help="Trigger inserted for the triggered condition."),
    no_trigger: bool = typer.Option(False, "--no-trigger", help="Generate without the triggered condition."),
    position: str = typer.Option("last-human", help="Trigger position, as the attack placed it (poisonlab ls)."),
    limit: Optional[int] = typer.Option(None, min=1, help="Use the first N prompts."),  # noqa: UP045
    overrides: dict[str, Any] | None = None,
    context_overrides: dict[str, Any] | None = None,
) -> None:
    """Replies to a prompt set with and without the trigger -> DIR/generations.jsonl.

    A context (--system-prompt, --demonstrations with --n-demonstrations, --passages) wraps every prompt."""
    from poisonlab.attacks.triggers import TRIGGER_POSITIONS
    from poisonlab.data.prompts import load_prompts
    from poisonlab.evaluation import generate as generate_replies
    from poisonlab.models import resolve_model
    from poisonlab.models.safety import check_adapter_folder
    from poisonlab.writers import one_writer

    TRIGGER_POSITIONS.get(position)
    config = validated(GenerationConfig, overrides or {})
    context = validated(ContextConfig, context_overrides or {})
    if not no_trigger:
        from poisonlab.attacks.triggers import check_trigger

        check_trigger(trigger)
    for folder in adapter:  # every adapter checked before the output folder is touched
        check_adapter_folder(folder)
    resolve_model(model)
    items = load_prompts(prompts, prompt_column, limit)
    _refuse_overwriting_inputs([out], [prompts, *adapter])
    settings = {
        "model": model,
        "adapters": [str(Path(a).resolve()) for a in adapter],
        "prompts": str(Path(prompts).resolve()) if Path(prompts).exists() else prompts,
        "prompt_column": prompt_column,
        "limit": limit,
        "trigger": None if no_trigger else trigger,
        "position": position,
        "config": config.model_dump(mode="json"),
        **({"context": context.model_dump(mode="json")} if context != ContextConfig() else {}),
    }
    with one_writer(out, "generate", settings):
        path = generate_replies(
            model, items, out, adapter, None if no_trigger else trigger, position, config, context=context
        )
    console.print(f"{len(items)} prompts x {1 if no_trigger else 2} conditions -> {path}")


@app.command()
@user_errors
@config_options(JudgeOptions)
def judge(
    generations: Path = typer.Argument(..., help="A generate --out folder (or its generations.jsonl)."),
    out: Path = typer.Option(..., "--out", help="Folder for judgments.jsonl and metrics.json."),
    judge_spec: list[str] = typer.Option(
        ["refusal"], "--judge", help="Judge: refusal, reward:DIR, llm (poisonlab ls). Repeatable."
    ),
    against: Optional[Path] = typer.Option(  # noqa: UP045
        None, help="The clean twin's judge --out folder: adds contamination and backdoor effect."
    ),
    overrides: dict[str, Any] | None = None,
) -> None:
    """Judge generated replies; rates and means with intervals, trigger effect, and effects against a twin."""
    from poisonlab.evaluation import judge_generations
    from poisonlab.reports.evaluation import judge_table

    options = validated(JudgeOptions, overrides or {})
    metrics = judge_generations(generations, judge_spec, out, options, against)
    console.print(judge_table(metrics, title=f"{generations}"))
    console.print(f"judgments and metrics -> {out}")


@app.command()
@user_errors
def serve(
    model: str = ModelOpt,
    adapter: Optional[Path] = typer.Option(None, help="PEFT adapter folder to serve on top of --model."),  # noqa: UP045
    host: str = typer.Option("127.0.0.1", help="Address to bind (the server has no TLS: keep it local)."),
    port: int = typer.Option(8000, help="Port (0 picks a free one)."),
    max_new_tokens: int = typer.Option(
        256, min=1, help="Cap on new tokens per answer (a request's max_tokens is capped)."
    ),
    api_key_env: Optional[str] = typer.Option(  # noqa: UP045
        None, help="Environment variable holding a key clients must send as 'Authorization: Bearer KEY'."
    ),
    served_name: Optional[str] = typer.Option(None, help="Model id to report (default: --model[+adapter])."),  # noqa: UP045
    threads: Optional[int] = typer.Option(None, help="Torch CPU threads (default: torch's choice)."),  # noqa: UP045
    quiet: bool = typer.Option(False, help="Do not log one line per request."),
) -> None:
    """An OpenAI-compatible chat server around a local model: GET /v1/models, POST /v1/chat/completions."""
    from poisonlab.evaluation.server import load_chat_model, make_server

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    server = make_server(None, host, port, api_key_env, quiet)  # a taken port fails before the model loads
    try:
        server.chat = chat = load_chat_model(model, adapter, max_new_tokens, served_name)  # type: ignore[attr-defined]
        bound_host, bound_port = server.server_address[:2]
        print(f"serving {chat.model_id} at http://{bound_host}:{bound_port}/v1 (Ctrl-C stops)", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
