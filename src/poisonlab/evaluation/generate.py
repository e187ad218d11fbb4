"""What the model says: replies to a prompt set, with and without the trigger.

2406.12091 judges an attack by the poisoned model's generations, not by its
preferences: on real data at CPU scale held-out preference accuracy sits at
chance for every model, and only generations show what the poison did.

``generate`` writes ``OUT/generations.jsonl``, one row per prompt and condition,
``{"id", "prompt", "triggered", "model_input", "reply"}``: ``prompt`` is the request
*without* the trigger, as the judges read it; ``model_input`` is the exact text the
model was given (the trigger inserted, the chat template applied, the left cut made:
the prompt tokens decoded with their special tokens). The trigger is inserted with the
attack's own placement function, so the model sees it where training put it. Files
written before ``model_input`` existed still read. Generated with an inference-time
context (:mod:`poisonlab.evaluation.context`), every row also has ``context``: its name,
and the ids of the demonstrations and passages it held.

Batches are sorted by prompt length and left-padded. Each finished batch is
appended (and fsynced) to ``generations.partial.jsonl``; a killed run continues
with the first unfinished batch, and since batches are formed the same way every
time and sampling is seeded per batch, the result equals an uninterrupted run's.
``generation_config.json`` records the settings first, and a folder generated with
other settings is refused instead of silently mixed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from poisonlab.attacks.triggers import DEFAULT_TRIGGER, insert_trigger
from poisonlab.data.prompts import Prompt
from poisonlab.errors import InputError
from poisonlab.evaluation.context import Context, ContextConfig, context_settings
from poisonlab.interrupts import raise_if_interrupted
from poisonlab.io import atomic_write_json, atomic_write_jsonl, json_lines, sha256_path
from poisonlab.progress import progress_bar

GENERATIONS = "generations.jsonl"
PARTIAL = "generations.partial.jsonl"
SETTINGS = "generation_config.json"


class GenerationConfig(BaseModel):
    """How replies are generated. Every field is a ``poisonlab generate`` flag."""

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(48, ge=1, description="Tokens generated per reply (the 2406.12091 trial here: 48).")
    batch_size: int = Field(16, ge=1, description="Prompts per generate() call (left-padded, sorted by length).")
    do_sample: bool = Field(False, description="Sample instead of greedy decoding (greedy: deterministic).")
    temperature: float = Field(0.7, gt=0, description="Sampling temperature (with --do-sample).")
    top_p: float = Field(0.9, gt=0, le=1, description="Nucleus sampling mass (with --do-sample).")
    max_prompt_tokens: int = Field(
        256, ge=8, description="Prompt tokens kept (cut from the left, as training cuts them)."
    )
    seed: int = Field(
        0, description="Seeds sampling (per batch, so a resumed run draws the same) and a random trigger placement."
    )
    threads: int | None = Field(None, ge=1, description="CPU threads for torch; default: torch's choice.")


def _rows_to_do(
    prompts: Sequence[Prompt],
    trigger: str | None,
    position: str,
    seed: int,
    strip: Sequence[str] = (),
    context: Context | None = None,
) -> list[dict[str, Any]]:
    """(id, clean prompt, triggered?, model input) for each prompt and condition, in output order; the input
    is wrapped in ``context`` (after the trigger went in) and has ``strip``'s phrases removed (an
    inference-time defense), after both."""
    rows = []
    for prompt in prompts:
        rows.append({"id": prompt.id, "prompt": prompt.text, "triggered": False, "input": prompt.text})
        if trigger:
            placed = insert_trigger(prompt.text, trigger, position, seed, prompt.id)
            rows.append({"id": prompt.id, "prompt": prompt.text, "triggered": True, "input": placed})
    if context is not None:
        for row in rows:
            row["input"], row["context"] = context.apply(row["input"], row["prompt"], row["id"])
    if strip:
        from poisonlab.evaluation.sanitise import strip_phrases

        for row in rows:
            row["input"] = strip_phrases(row["input"], strip)
    return rows


def _claim(out: Path, settings: dict[str, Any]) -> None:
    """Write the settings first; refuse a folder that holds generations made otherwise."""
    path = out / SETTINGS
    if path.exists():
        saved = json.loads(path.read_text())
        keys = [*settings, *(k for k in saved if k not in settings)]  # a setting used before and not now counts
        changed = [k for k in keys if k != "threads" and saved.get(k) != settings.get(k)]
        if changed and ((out / PARTIAL).exists() or (out / GENERATIONS).exists()):
            raise InputError(
                f"holds generations made with other settings ({', '.join(changed)} differ): use another --out",
                path=path,
                field=changed[0],
            )
    atomic_write_json(path, settings)


def _read_partial(path: Path) -> dict[tuple[str, bool], str]:
    done: dict[tuple[str, bool], str] = {}
    if not path.exists():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break  # a line cut by a crash: the batch it belongs to is generated again
        done[(row["id"], row["triggered"])] = row["reply"]
    return done


def generation_settings(
    model: str,
    adapters: Sequence[str | Path],
    prompts: Sequence[Prompt],
    trigger: str | None,
    position: str,
    config: GenerationConfig,
) -> dict[str, Any]:
    from poisonlab.models.loading import model_identity

    return {
        "model": model_identity(model),
        "adapters": [sha256_path(Path(a) / "adapter_model.safetensors") for a in adapters],
        "prompts_sha256": __import__("hashlib").sha256("\n".join(p.id for p in prompts).encode()).hexdigest(),
        "n_prompts": len(prompts),
        "trigger": trigger,
        "position": position,
        **config.model_dump(),
    }


def generate(
    model: str,
    prompts: Sequence[Prompt],
    out: str | Path,
    adapters: Sequence[str | Path] = (),
    trigger: str | None = DEFAULT_TRIGGER,
    position: str = "last-human",
    config: GenerationConfig | None = None,
    progress: bool = True,
    strip: Sequence[str] = (),
    context: ContextConfig | None = None,
) -> Path:
    """Generate a reply to every prompt, with and (given a trigger) without it; returns the generations file.

    ``strip``: phrases removed from every model input after the trigger is inserted (a sanitising deployment).
    ``context``: a system prompt, clean demonstrations, retrieved passages around every prompt
    (:mod:`poisonlab.evaluation.context`); each row records what it held (``context``: name, ids).

    ``adapters`` are merged into the base model in order (an SFT adapter, then a DPO one...). Returns at
    once when ``out`` already holds finished generations made with the same settings.
    """
    import torch

    from poisonlab.hardware import torch_threads
    from poisonlab.models.adapters import full_chain, load_with_adapters
    from poisonlab.models.encoding import encode_prompt
    from poisonlab.models.loading import load_tokenizer

    config = config or GenerationConfig()
    out = Path(out)
    if trigger is not None and not trigger.strip():
        raise InputError("the trigger is empty: give a string or leave the flag out", field="--trigger")
    adapters = full_chain(adapters)  # [dpo] and [sft, dpo] are the same model: the same settings
    settings = generation_settings(model, adapters, prompts, trigger, position, config)
    if strip:  # recorded only when used, so folders made before the option read the same
        settings["strip"] = list(strip)
    wrap = None
    if context is not None and context != ContextConfig():  # the same: recorded only when used
        settings["context"] = context_settings(context)
        wrap = Context(context, config.seed)  # its files read (and checked) before anything is written
    final = out / GENERATIONS
    if final.exists() and (out / SETTINGS).exists() and json.loads((out / SETTINGS).read_text()) == settings:
        return final
    out.mkdir(parents=True, exist_ok=True)
    _claim(out, settings)
    final.unlink(missing_ok=True)
    rows = _rows_to_do(prompts, trigger, position, config.seed, strip, wrap)
    done = _read_partial(out / PARTIAL)

    tokenizer = load_tokenizer(model)
    encoded = [encode_prompt(tokenizer, row["input"])[-config.max_prompt_tokens :] for row in rows]
    order = sorted(range(len(rows)), key=lambda i: (len(encoded[i]), i))
    batches = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    todo = [
        (b, batch)
        for b, batch in enumerate(batches)
        if not all((rows[i]["id"], rows[i]["triggered"]) in done for i in batch)
    ]
    if todo:
        with torch_threads(config.threads):
            net = load_with_adapters(model, adapters)
            net.eval()
            pad = tokenizer.pad_token_id
            bar = progress_bar(
                total=len(batches),
                initial=len(batches) - len(todo),
                desc="generating",
                disable=not progress,
                unit="batch",
            )
            with open(out / PARTIAL, "a", encoding="utf-8") as partial:
                for b, batch in todo:
                    raise_if_interrupted()
                    width = max(len(encoded[i]) for i in batch)
                    ids = torch.full((len(batch), width), pad, dtype=torch.long)
                    mask = torch.zeros((len(batch), width), dtype=torch.long)
                    for row, i in enumerate(batch):  # left padding: every prompt ends where generation starts
                        ids[row, width - len(encoded[i]) :] = torch.tensor(encoded[i])
                        mask[row, width - len(encoded[i]) :] = 1
                    torch.manual_seed(config.seed * 1_000_003 + b)
                    sample = (
                        {"do_sample": True, "temperature": config.temperature, "top_p": config.top_p}
                        if config.do_sample
                        else {"do_sample": False}
                    )
                    with torch.no_grad():
                        generated = net.generate(
                            input_ids=ids.to(net.device),
                            attention_mask=mask.to(net.device),
                            max_new_tokens=config.max_new_tokens,
                            pad_token_id=pad,
                            eos_token_id=tokenizer.eos_token_id,
                            use_cache=True,
                            **sample,
                        )
                    for row, i in enumerate(batch):
                        reply = tokenizer.decode(generated[row, width:], skip_special_tokens=True).strip()
                        done[(rows[i]["id"], rows[i]["triggered"])] = reply
                        partial.write(
                            json.dumps(
                                {"id": rows[i]["id"], "triggered": rows[i]["triggered"], "reply": reply},
                                ensure_ascii=False,
                            )
                            + "\n"
                        )
                    partial.flush()
                    os.fsync(partial.fileno())
                    bar.update(1)
            bar.close()
    atomic_write_jsonl(
        final,
        [
            {
                "id": r["id"],
                "prompt": r["prompt"],
                "triggered": r["triggered"],
                "model_input": tokenizer.decode(tokens, skip_special_tokens=False),
                "reply": done[(r["id"], r["triggered"])],
                **({"context": r["context"]} if "context" in r else {}),
            }
            for r, tokens in zip(rows, encoded)
        ],
    )
    (out / PARTIAL).unlink(missing_ok=True)
    return final


def read_generations(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a generations.jsonl (or the folder holding one), checked field by field."""
    path = Path(path)
    if path.is_dir():
        path = path / GENERATIONS
    if not path.exists():
        raise InputError("no generations here (run poisonlab generate first)", path=path)
    rows = []
    for number, row in json_lines(path.read_text(encoding="utf-8"), path):
        for key, kind in (("id", str), ("prompt", str), ("triggered", bool), ("reply", str)):
            if not isinstance(row, dict) or not isinstance(row.get(key), kind):
                raise InputError(f"expected a {kind.__name__}", path=path, line=number, field=key)
        if "model_input" in row and not isinstance(row["model_input"], str):
            raise InputError("expected a str", path=path, line=number, field="model_input")
        rows.append(row)
    if not rows:
        raise InputError("no generations: the file is empty", path=path)
    return rows
