"""Wall time of a whole SmolLM2 study, before (full LoRA, ``cpu`` preset) and after (the ``fast`` preset).

    OMP_NUM_THREADS=1 python benchmarks/study_speed.py                       # the issue's study, ~15 min
    OMP_NUM_THREADS=1 python benchmarks/study_speed.py --layers 2,4,6        # choose N: one row per N
    OMP_NUM_THREADS=1 python benchmarks/study_speed.py --model tiny --steps 2 # a quick look

The study (issue 15): SmolLM2-135M-Instruct on the 1,595 HH-RLHF harmless-base training pairs (200 held out),
clean + random and dpo-score backdoors at 0.01/0.05/0.1 (7 runs), 3 epochs of 8-pair steps at 128/48 tokens,
LoRA r=8 on all 7 projections; every run evaluated on the 200 held-out pairs (clean and triggered) and by
generating on the first 60 AdvBench goals with and without the trigger (48 new tokens), plus the base model's
generations and dpo-score's scoring pass with the clean model.

A whole "before" study takes ~10 hours on this machine, so the study times are EXTRAPOLATED from components
measured here, in one process, each setting's steps interleaved with the others' (a shared machine's load hits
every row alike):

- training: seconds per optimizer step on real length-grouped steps of the study's own batches (evenly spaced
  over an epoch, after one untimed warm-up step), turned into tokens/s and multiplied by the study's tokens;
- forward-only passes (reference log-probs, dpo-score's scoring pass, the held-out evaluation): seconds per pair
  of the full model, and for the fast preset of the top layers over cached states, plus the one-off trunk
  build (the frozen layers once per distinct sequence);
- generation: poisonlab's ``generate`` on the first ``--gen-prompts`` AdvBench goals, with and without the
  trigger, scaled to 60 goals (model loading included, as each run loads its model).

Not counted (the same before and after, seconds per run): tokenising, loading data, judging by refusal phrases.
Peak RSS is the whole benchmark process's (every model it holds at once); the trunk states a study keeps in
memory are given apart.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
HH = DATA / "hh-rlhf" / "harmless-base-dev.jsonl.gz"
ADVBENCH = DATA / "advbench" / "harmful_behaviors.csv"
ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
STUDY_TRAINING = {"epochs": 3, "batch_size": 8, "max_length": 128, "max_reply_length": 48, "threads": 1}
STUDY_TRAINING["target_modules"] = ALL_PROJECTIONS
RATIOS = [0.01, 0.05, 0.1]
STRATEGIES = ["random", "dpo-score"]
GEN_PROMPTS = 60


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--layers", default="2,4,6", help="trainable_layers values to time (one row each)")
    parser.add_argument("--preset-layers", type=int, default=None, help="N of the study's 'after' (default: fast)")
    parser.add_argument("--steps", type=int, default=4, help="timed optimizer steps per setting")
    parser.add_argument("--gen-prompts", type=int, default=16, help="AdvBench goals generated on (x2: trigger)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return parser.parse_args()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def study_split(model: str) -> tuple[Any, Any, Any]:
    from poisonlab.experiments import ExperimentConfig
    from poisonlab.experiments.grid.folder import split_data

    config = ExperimentConfig(
        name="issue-15", model=model, data=str(HH), skip_bad_rows=True, heldout=200, training=STUDY_TRAINING
    )
    train, heldout, _ = split_data(config)
    return config, train, heldout


def fresh_model(model_name: str, trainable_layers: int | None) -> tuple[Any, Any]:
    from poisonlab.models import load_model
    from poisonlab.training import DPOTrainingConfig
    from poisonlab.training.loop import _optimizer, add_lora

    config = DPOTrainingConfig.from_preset("cpu", **STUDY_TRAINING, trainable_layers=trainable_layers, bf16=False)
    model = add_lora(load_model(model_name), config)
    model.train()
    return model, _optimizer([p for p in model.parameters() if p.requires_grad], config)


def train_step(model: Any, optimizer: Any, pairs: list, pad_id: int, trunk: Any = None) -> float:
    """One DPO optimizer step as train_dpo takes it (reference log-probs given: zeros here), in seconds."""
    from poisonlab.scoring.logprobs import collate, reply_logprobs
    from poisonlab.training.losses import LOSSES

    started = time.perf_counter()
    batch = collate(pairs, pad_id)
    logps = reply_logprobs(model, batch, bf16=False, trunk=trunk)
    margin = logps[: batch.size] - logps[batch.size :]
    loss = LOSSES.get("sigmoid")(margin, 0.1, 0.0).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - started


@torch.no_grad()
def forward_seconds(model: Any, pairs: list, pad_id: int, trunk: Any = None) -> float:
    """One no-grad pass over ``pairs`` (both replies), as the reference, scoring and evaluation passes run."""
    from poisonlab.scoring.logprobs import collate, reply_logprobs

    model.eval()
    started = time.perf_counter()
    reply_logprobs(model, collate(pairs, pad_id), bf16=False, trunk=trunk)
    seconds = time.perf_counter() - started
    model.train()
    return seconds


def tokens(pairs: list) -> int:
    return sum(2 * len(p.prompt_ids) + len(p.chosen_ids) + len(p.rejected_ids) for p in pairs)


def generation_seconds(model_name: str, n_prompts: int) -> float:
    from poisonlab.data.prompts import load_prompts
    from poisonlab.evaluation import generate
    from poisonlab.evaluation.generate import GenerationConfig

    prompts = load_prompts(ADVBENCH, limit=n_prompts)
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        generate(model_name, prompts, Path(out) / "g", [], config=GenerationConfig(threads=1), progress=False)
        return time.perf_counter() - started


def main() -> None:
    args = parse()
    from poisonlab.models.encoding import encode_pairs
    from poisonlab.models.loading import load_tokenizer
    from poisonlab.scoring.trunk_cache import decoder_of, pair_sequences, trunk_states
    from poisonlab.training import DPOTrainingConfig
    from poisonlab.training.config import PRESETS
    from poisonlab.training.loop import _step_batches

    torch.set_num_threads(1)
    layers = [int(n) for n in args.layers.split(",")]
    preset_layers = args.preset_layers or PRESETS["fast"]["trainable_layers"]
    layers = sorted(set(layers) | {preset_layers})
    _, train, heldout = study_split(args.model)
    tokenizer = load_tokenizer(args.model)
    pad_id = tokenizer.pad_token_id
    encoded = encode_pairs(tokenizer, train.pairs, 128, 48)
    held = encode_pairs(tokenizer, heldout.pairs, 128, 48)
    training = DPOTrainingConfig.from_preset("cpu", **STUDY_TRAINING)
    batches = _step_batches([p.length for p in encoded], training)
    per_epoch = math.ceil(len(encoded) / training.batch_size)
    picks = [round(i * (per_epoch - 1) / max(1, args.steps - 1)) for i in range(args.steps)]
    steps = [[encoded[i] for i in batches[k]] for k in [picks[-1] // 2, *picks]]  # the first: warm-up
    print(
        f"{args.model}: {len(encoded)} training pairs, {len(held)} held out; {len(batches)} steps per run "
        f"({training.epochs} epochs of {training.batch_size}); timing steps {picks} of an epoch (+1 warm-up)",
        flush=True,
    )

    settings: dict[str, dict[str, Any]] = {"full": {"layers": None}}
    settings.update({f"fast-{n}": {"layers": n} for n in layers})
    for s in settings.values():
        s["model"], s["optimizer"] = fresh_model(args.model, s["layers"])
        s.update(step_s=[], fwd_s=[], build_s=0.0, trunk=None)
    n_layers = len(decoder_of(settings["full"]["model"]).layers)
    hidden = settings["full"]["model"].get_base_model().config.hidden_size

    step_pairs = [p for step in steps for p in step]
    for name, s in settings.items():  # the one-off trunk build for every timed pair (no disk: pure compute)
        if s["layers"] is None:
            continue
        started = time.perf_counter()
        s["trunk"] = trunk_states(s["model"], step_pairs, pad_id, n_layers - s["layers"], None, 8, False)
        s["build_s"] = time.perf_counter() - started
        print(f"{name}: trunk of {len(step_pairs)} pairs built in {s['build_s']:.1f} s", flush=True)

    for k, step in enumerate(steps):  # interleaved: the machine's load hits every setting alike
        for name, s in settings.items():
            seconds = train_step(s["model"], s["optimizer"], step, pad_id, s["trunk"])
            fwd = forward_seconds(s["model"], step, pad_id, s["trunk"])
            if k > 0:
                s["step_s"].append(seconds)
                s["fwd_s"].append(fwd)
            print(f"step {k} {name}: {seconds:.2f} s, forward {fwd:.2f} s", flush=True)
    timed_tokens = sum(tokens(step) for step in steps[1:])
    timed_pairs = sum(len(step) for step in steps[1:])

    gen_s = generation_seconds(args.model, args.gen_prompts)
    print(f"generation: {2 * args.gen_prompts} replies in {gen_s:.1f} s", flush=True)

    # --- the study, from the measured components ---
    run_tokens = sum(tokens([encoded[i] for i in b]) for b in batches)
    n_train, n_held = len(encoded), len(held)
    poisoned_pairs = sum(round(r * n_train) for r in RATIOS) * len(STRATEGIES)  # new pairs (trigger + flipped)
    n_runs = 1 + len(RATIOS) * len(STRATEGIES)
    reference_pairs = n_train + poisoned_pairs  # once per distinct pair, cached across runs
    eval_pairs = 2 * n_held  # clean and triggered, per run; their reference once (cached)
    scoring_pairs = 2 * n_train  # dpo-score's pass: policy and reference (not from the cache)
    distinct_sequences = len({tuple(s) for s in pair_sequences(encoded)}) + 2 * poisoned_pairs
    distinct_sequences += len({tuple(s) for s in pair_sequences(held)}) * 2  # held-out, clean and triggered
    state_tokens = sum(len(s) for s in {tuple(s) for s in pair_sequences(encoded)})
    gen_per_run = gen_s * GEN_PROMPTS / args.gen_prompts

    rows = []
    for name, s in settings.items():
        step_s = float(np.mean(s["step_s"]))
        tok_per_s = timed_tokens / float(np.sum(s["step_s"]))
        fwd_pair = float(np.sum(s["fwd_s"])) / timed_pairs
        build_pair = s["build_s"] / len(step_pairs) if s["layers"] else 0.0
        train_run = run_tokens / tok_per_s
        parts = {
            "training": n_runs * train_run,
            "trunk build": build_pair * (distinct_sequences / 2),
            "reference": reference_pairs * fwd_pair + eval_pairs * fwd_pair,
            "dpo-score pass": scoring_pairs * fwd_pair,
            "held-out eval": n_runs * eval_pairs * fwd_pair,
            "generation": (n_runs + 1) * gen_per_run,  # + the base model
        }
        rows.append(
            {
                "setting": name,
                "trainable_layers": s["layers"],
                "s_per_step": round(step_s, 2),
                "tokens_per_s": round(tok_per_s, 1),
                "forward_s_per_pair": round(fwd_pair, 3),
                "trunk_build_s_per_pair": round(build_pair, 3),
                "train_min_per_run": round(train_run / 60, 1),
                "study_parts_min": {k: round(v / 60, 1) for k, v in parts.items()},
                "study_hours": round(sum(parts.values()) / 3600, 2),
            }
        )
    before = rows[0]["study_hours"]
    print(f"\npeak RSS of this process (all {len(settings)} models at once): {peak_rss_mib():.0f} MiB")
    print(
        f"trunk states kept in memory by a fast run: {state_tokens * hidden * 4 / 2**20:.0f} MiB fp32 "
        f"({state_tokens} tokens x hidden x 4 B); distinct sequences in the study: {distinct_sequences}"
    )
    print(
        f"\n{'setting':10} {'s/step':>7} {'tok/s':>7} {'fwd s/pair':>10} {'build s/pair':>12} "
        f"{'min/run':>8} {'study h':>8} {'speed-up':>8}"
    )
    for r in rows:
        print(
            f"{r['setting']:10} {r['s_per_step']:7.2f} {r['tokens_per_s']:7.0f} {r['forward_s_per_pair']:10.3f} "
            f"{r['trunk_build_s_per_pair']:12.3f} {r['train_min_per_run']:8.1f} {r['study_hours']:8.2f} "
            f"{before / r['study_hours']:7.1f}x"
        )
    print("\nstudy parts (min), extrapolated from the measured components above:")
    for r in rows:
        print(f"  {r['setting']:10} " + ", ".join(f"{k} {v}" for k, v in r["study_parts_min"].items()))
    print(f"generation per run (measured on {args.gen_prompts} goals x2, scaled to 60): {gen_per_run / 60:.1f} min")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "generation_s_per_run": gen_per_run}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
