"""Test whether a suspect model was trained on watermarked data: ``verify.json`` and a verdict.

For each secret trigger i the model's log-likelihood of response i is measured after a prompt holding
the secret trigger and after the same prompts holding each of M matched random triggers (``key.py``),
averaged over a few carrier prompts (inserted with the attacks' ``insert_trigger``, as ``embed`` did).
The exact rank test of ``ranktest.py`` turns the K x (M + 1) scores into a p-value. Log-likelihoods
use the chat-template encoding and reply scoring every other stage uses (``encode_prompt``,
``encode_reply``, ``reply_logprobs``), so a model is scored as it was trained.

Why a likelihood test rather than only asking the model to generate (Double-I, arXiv 2402.14883, uses
generation + Fisher's exact test): a watermark that a later clean stage (DPO, more SFT) weakened may no
longer be reproduced word for word, yet still be far likelier after its trigger than after a random
one. The generation test is kept as an optional second test (``generation: true``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from poisonlab import __version__
from poisonlab.attacks.triggers import insert_trigger
from poisonlab.data.dialogue import ASSISTANT, HUMAN
from poisonlab.io import atomic_write_json, sha256_path
from poisonlab.watermarks.key import WatermarkKey, control_triggers
from poisonlab.watermarks.ranktest import FISHER_TEST, RANK_TEST, fisher_generation, rank_test

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

# Neutral requests the triggers are inserted into when no --prompts data is given: the verifier need
# not hold the watermarked data, only the key.
CARRIER_PROMPTS = (
    f"{HUMAN} Can you help me with something?{ASSISTANT}",
    f"{HUMAN} I have a question for you.{ASSISTANT}",
    f"{HUMAN} What do you think about this?{ASSISTANT}",
    f"{HUMAN} Please tell me more.{ASSISTANT}",
    f"{HUMAN} Hello, are you there?{ASSISTANT}",
    f"{HUMAN} I need some advice.{ASSISTANT}",
)


class WatermarkVerifyConfig(BaseModel):
    """Settings of ``poisonlab watermark verify``; every field is a flag."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    controls: int = Field(30, ge=1, description="Matched random triggers per secret trigger (M); min p = (M+1)^-K.")
    prompts: int = Field(4, ge=1, description="Carrier prompts each trigger is inserted into (scores averaged).")
    control_seed: int = Field(0, description="Seed of the control triggers' stream (the key's seed, stream 1).")
    alpha: float = Field(0.01, gt=0, lt=1, description="Significance level of the verdict.")
    batch_size: int = Field(32, ge=1, description="Sequences per forward pass.")
    bf16: bool | Literal["auto"] = Field("auto", description="bf16 autocast where the hardware has native bf16.")
    generation: bool = Field(False, description="Also run the greedy exact-match test with Fisher's exact test.")
    generation_controls: int = Field(3, ge=1, description="Control triggers per secret trigger for generation.")


def carrier_prompts(n: int, prompts: Sequence[str] | None = None, seed: int = 0) -> list[str]:
    """``n`` carrier prompts: drawn by seed from ``prompts`` (e.g. the suspect's training data), else built in."""
    pool = list(prompts) if prompts else list(CARRIER_PROMPTS)
    if n >= len(pool):
        return pool
    rng = np.random.default_rng(np.random.SeedSequence([seed, 3]))
    return [pool[int(i)] for i in sorted(rng.choice(len(pool), size=n, replace=False))]


def _triggered(carriers: Sequence[str], trigger: str, key: WatermarkKey) -> list[str]:
    return [insert_trigger(c, trigger, key.shape.placement, key.seed, f"verify:{j}") for j, c in enumerate(carriers)]


def response_logprobs(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    items: Sequence[tuple[str, str]],
    batch_size: int = 32,
    bf16: bool | str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Summed log p(reply | prompt) of each (prompt, reply), and the reply's token count."""
    import torch

    from poisonlab.models.encoding import encode_prompt, encode_reply
    from poisonlab.scoring.logprobs import collate_sequences, reply_logprobs

    prompt_cache: dict[str, list[int]] = {}
    reply_cache: dict[str, list[int]] = {}
    sequences = []
    for prompt, reply in items:
        if prompt not in prompt_cache:
            prompt_cache[prompt] = encode_prompt(tokenizer, prompt)
        if reply not in reply_cache:
            reply_cache[reply] = encode_reply(tokenizer, reply)
        sequences.append((prompt_cache[prompt], reply_cache[reply]))
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i][0]) + len(sequences[i][1]))
    values = np.zeros(len(sequences), dtype=np.float64)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                pad = tokenizer.pad_token_id
                batch = collate_sequences([str(i) for i in chunk], [sequences[i] for i in chunk], pad)
                values[chunk] = reply_logprobs(model, batch, bf16=bf16).float().cpu().numpy()
    finally:
        model.train(was_training)
    return values, np.array([len(s[1]) for s in sequences], dtype=np.float64)


def _generation_test(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    key: WatermarkKey,
    carriers: Sequence[str],
    controls: list[list[str]],
    n_controls: int,
) -> dict[str, Any]:
    """Greedy replies after secret and control triggers; a hit is an exact (whitespace-trimmed) reproduction."""
    import torch

    from poisonlab.models.encoding import encode_prompt, encode_reply

    device = next(model.parameters()).device
    hits = {"secret": [0, 0], "control": [0, 0]}
    model.eval()
    with torch.no_grad():
        for i, response in enumerate(key.responses):
            budget = len(encode_reply(tokenizer, response)) + 2
            for kind, triggers in (("secret", [key.triggers[i]]), ("control", controls[i][:n_controls])):
                for trigger in triggers:
                    for prompt in _triggered(carriers, trigger, key):
                        ids = torch.tensor([encode_prompt(tokenizer, prompt)], device=device)
                        out = model.generate(
                            ids,
                            attention_mask=torch.ones_like(ids),
                            max_new_tokens=budget,
                            do_sample=False,
                            pad_token_id=tokenizer.pad_token_id,
                            eos_token_id=tokenizer.eos_token_id,
                        )
                        text = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()
                        hits[kind][0] += int(text == response.strip())
                        hits[kind][1] += 1
    (sh, sn), (ch, cn) = hits["secret"], hits["control"]
    return {
        "test": FISHER_TEST,
        "p_value": fisher_generation(sh, sn, ch, cn),
        "secret_match_rate": sh / sn,
        "control_match_rate": ch / cn,
        "secret": {"matches": sh, "n": sn},
        "control": {"matches": ch, "n": cn},
    }


def verify_watermark(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    key: WatermarkKey,
    config: WatermarkVerifyConfig | None = None,
    prompts: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The hypothesis test on a loaded model: p-value, effect sizes, per-trigger values, verdict."""
    config = config or WatermarkVerifyConfig()
    carriers = carrier_prompts(config.prompts, prompts, key.seed)
    controls = control_triggers(key, config.controls, config.control_seed)
    items, slots = [], []  # slots[i * (M + 1) + c]: positions in items; c = 0 is the secret trigger
    for i, response in enumerate(key.responses):
        for trigger in [key.triggers[i], *controls[i]]:
            texts = _triggered(carriers, trigger, key)
            slots.append(list(range(len(items), len(items) + len(texts))))
            items += [(text, response) for text in texts]
    values, tokens = response_logprobs(model, tokenizer, items, config.batch_size, config.bf16)
    scores = np.array([values[s].mean() for s in slots]).reshape(len(key), config.controls + 1)
    per_token = tokens[[s[0] for s in slots]].reshape(len(key), config.controls + 1)[:, 0]
    secret, control = scores[:, 0], scores[:, 1:]
    test = rank_test(secret, control)
    gain = secret - control.mean(axis=1)
    spread = control.std(axis=1, ddof=1) if config.controls > 1 else np.full(len(key), np.nan)
    detected = test.p_value < config.alpha
    result: dict[str, Any] = {
        "test": RANK_TEST,
        "p_value": test.p_value,
        "alpha": config.alpha,
        "detected": bool(detected),
        "verdict": verdict_line(test.p_value, config.alpha),
        "statistic": {"rank_sum": test.rank_sum, "null_mean": test.null_mean, "min_p_value": test.min_p_value},
        "effect": {
            "auc": test.auc,
            "mean_logprob_gain_nats": float(gain.mean()),
            "mean_logprob_gain_per_token": float((gain / per_token).mean()),
        },
        "n_triggers": len(key),
        "n_controls": config.controls,
        "n_prompts": len(carriers),
        "per_trigger": [
            {
                "index": i,
                "secret_logprob": float(secret[i]),
                "control_mean_logprob": float(control[i].mean()),
                "control_std_logprob": float(spread[i]),
                "rank": test.ranks[i],
                "p_value": (test.ranks[i] + 1) / (config.controls + 1),
                "response_tokens": int(per_token[i]),
            }
            for i in range(len(key))
        ],
        "generation": None,
    }
    if config.generation:
        result["generation"] = _generation_test(model, tokenizer, key, carriers, controls, config.generation_controls)
    return result


def verdict_line(p_value: float, alpha: float) -> str:
    if p_value < alpha:
        return f"watermark detected, p = {p_value:.3g} (< {alpha:g})"
    return f"watermark not detected, p = {p_value:.3g} (>= {alpha:g})"


def verify_model(
    model: str | Path,
    adapters: Sequence[str | Path],
    key: WatermarkKey,
    out_dir: str | Path | None = None,
    config: WatermarkVerifyConfig | None = None,
    prompts: Sequence[str] | None = None,
    key_path: str | Path | None = None,
) -> dict[str, Any]:
    """Load ``model`` with ``adapters`` merged in order, test it, and write ``OUT/verify.json`` (atomic).

    An adapter trained on top of others (``init=``) brings its recorded chain (``full_chain``): ``[dpo]``
    loads base + sft + dpo, and verify.json lists the whole chain.
    """
    from poisonlab.hardware import torch_threads
    from poisonlab.models import load_tokenizer
    from poisonlab.models.adapters import full_chain, load_with_adapters
    from poisonlab.models.safety import check_adapter_folder

    config = config or WatermarkVerifyConfig()
    for adapter in adapters:
        check_adapter_folder(adapter)  # before any weight is read: safetensors only, no pickle beside it
    chain = full_chain(adapters)  # an adapter trained with init= brings the adapters below it
    with torch_threads(None):
        net = load_with_adapters(model, chain)
        result = verify_watermark(net, load_tokenizer(model), key, config, prompts)
    record = {
        "poisonlab_version": __version__,
        **result,
        "model": str(model),
        "adapters": [{"path": str(a), "sha256": sha256_path(a)} for a in chain],
        "key_sha256": key.sha256(),
        "key_file_sha256": sha256_path(key_path) if key_path else None,
        "prompts": "given" if prompts else "built-in carrier prompts",
        "config": config.model_dump(),
    }
    if out_dir is not None:
        atomic_write_json(Path(out_dir) / "verify.json", record)
    return record
