"""What an RLHF step costs (``poisonlab train rl``: TRL's RLOO against a poisonlab reward model), split in parts.

    OMP_NUM_THREADS=1 python benchmarks/rl_step.py                          # tiny, seconds
    OMP_NUM_THREADS=1 python benchmarks/rl_step.py --model smollm2-135m     # minutes; HH-RLHF prompts

Each optimizer step samples ``--generations`` completions of up to ``--new-tokens`` tokens for each of
``--prompts`` prompts, scores them with the reward model, then runs the policy (and, with beta > 0, the
reference) forward and backward over them. The table splits every step's wall-clock time into sampling
(``generate``), reward-model scoring (``reward``) and the rest (``optimise``: log-probs of policy and
reference, the RLOO loss, backward, optimizer). The reward model is trained first on a few pairs (its
quality does not change the timing); pass ``--reward-model DIR`` to reuse one. The first step (warm-up)
is shown but left out of the means. Timings are wall-clock on a shared machine: indicative; rerun on a
quiet one for figures to quote.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HH = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf" / "harmless-base-dev.jsonl.gz"


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny", help="tiny (default) or smollm2-135m, or a model folder")
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps timed (first one is warm-up)")
    parser.add_argument("--prompts", type=int, default=8, help="prompts per optimizer step")
    parser.add_argument("--micro", type=int, default=4, help="prompts per forward pass")
    parser.add_argument("--generations", type=int, default=4, help="completions per prompt")
    parser.add_argument("--new-tokens", type=int, default=32, help="most tokens per completion")
    parser.add_argument("--max-length", type=int, default=256, help="prompt + completion tokens")
    parser.add_argument("--beta", type=float, default=0.05, help="KL coefficient (0: no reference pass)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--data", default=None, help="preference file (default: HH-RLHF dev if present, else synthetic)"
    )
    parser.add_argument("--reward-model", default=None, help="a finished reward model folder to reuse")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return parser.parse_args()


def main() -> None:
    args = parse()
    from poisonlab.data import load_pairs, synthetic_pairs, train_heldout_split
    from poisonlab.training import RewardTrainingConfig, RLTrainingConfig, train_reward, train_rl

    source = args.data or (str(HH) if HH.exists() else "synthetic")
    pairs = synthetic_pairs(n=400) if source == "synthetic" else load_pairs(source, on_error="skip")
    n_prompts = args.steps * args.prompts
    work = Path(tempfile.mkdtemp(prefix="rl-step-"))
    reward_model = args.reward_model
    if reward_model is None:
        train, heldout = train_heldout_split(pairs.subset(pairs.ids[:80]), 16, seed=0)
        rm_config = RewardTrainingConfig(
            batch_size=8, micro_batch_size=8, max_length=args.max_length, max_reply_length=64, threads=args.threads
        )
        started = time.perf_counter()
        train_reward(args.model, train, heldout, rm_config, work / "rm", progress=False)
        print(f"reward model of {args.model}: trained on 64 pairs in {time.perf_counter() - started:.1f} s", flush=True)
        reward_model = str(work / "rm")
    prompts = pairs.subset(pairs.ids[-n_prompts:])
    config = RLTrainingConfig(
        batch_size=args.prompts,
        micro_batch_size=args.micro,
        num_generations=args.generations,
        max_new_tokens=args.new_tokens,
        max_length=args.max_length,
        beta=args.beta,
        threads=args.threads,
        save_steps=10_000,
    )
    result = train_rl(args.model, prompts, reward_model, config, work / "rl", progress=False)
    log = json.loads((work / "rl" / "training_log.json").read_text())
    print(
        f"\n{args.model}: {args.prompts} prompts x {args.generations} completions x <= {args.new_tokens} new tokens "
        f"per step, max_length {args.max_length}, beta {args.beta}, {args.threads} thread(s), data {source}"
    )
    print(f"{'step':>4} {'total s':>8} {'generate':>9} {'reward':>7} {'optimise':>9} {'CPU s':>7} {'mean reward':>12}")
    for row in log:
        optimise = row["seconds"] - row["generation_seconds"] - row["reward_seconds"]
        print(
            f"{row['step']:>4} {row['seconds']:>8.2f} {row['generation_seconds']:>9.2f} {row['reward_seconds']:>7.2f} "
            f"{optimise:>9.2f} {row['cpu_seconds']:>7.2f} {row['reward']:>12.3f}"
        )
    timed = log[1:] or log
    mean = {
        key: sum(r[key] for r in timed) / len(timed)
        for key in ("seconds", "generation_seconds", "reward_seconds", "cpu_seconds")
    }
    optimise = mean["seconds"] - mean["generation_seconds"] - mean["reward_seconds"]
    share = mean["generation_seconds"] / mean["seconds"]
    print(
        f"\nmean over steps 2-{len(log)}: {mean['seconds']:.2f} s/step = generate {mean['generation_seconds']:.2f} "
        f"({share:.0%}) + reward {mean['reward_seconds']:.2f} + optimise {optimise:.2f}; "
        f"{mean['seconds'] / (args.prompts * args.generations):.3f} s per completion; "
        f"{mean['cpu_seconds']:.2f} CPU s/step (wall-clock well above CPU time: a shared machine)"
    )
    figures = {
        "model": args.model,
        "prompts_per_step": args.prompts,
        "generations": args.generations,
        "new_tokens": args.new_tokens,
        "threads": args.threads,
        "seconds_per_step": round(mean["seconds"], 3),
        "generation_seconds_per_step": round(mean["generation_seconds"], 3),
        "reward_seconds_per_step": round(mean["reward_seconds"], 3),
        "optimise_seconds_per_step": round(optimise, 3),
        "generation_share": round(share, 3),
        "cpu_seconds_per_step": round(mean["cpu_seconds"], 3),
        "steps": result.steps,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures), file=sys.stderr)


if __name__ == "__main__":
    main()
