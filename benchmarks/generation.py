"""Generation throughput: new tokens per second, batched against one prompt at a time.

    python benchmarks/generation.py --model tiny --prompts 32 --batch-sizes 1 8 32
    python benchmarks/generation.py --model smollm2-135m --prompts 16 --batch-sizes 1 16 --threads 1

Greedy, AdvBench goals (../shared/data/advbench) as the prompts, no trigger; each row includes one model
load (~0.1 s tiny, ~1 s SmolLM2). The same code path as
``poisonlab generate`` (left padding, length-sorted batches). Prints one row per batch size.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from poisonlab.data.prompts import load_prompts
from poisonlab.evaluation.generate import GenerationConfig, generate

ADVBENCH = Path(__file__).resolve().parents[2] / "shared" / "data" / "advbench" / "harmful_behaviors.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--prompts", type=int, default=32, help="AdvBench goals to answer")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    opts = parser.parse_args()
    prompts = load_prompts(ADVBENCH if ADVBENCH.exists() else "synthetic", limit=opts.prompts)
    print(f"{opts.model}, {len(prompts)} prompts, {opts.max_new_tokens} new tokens, greedy, threads {opts.threads}")
    print(f"{'batch':>6} {'seconds':>9} {'replies/s':>10} {'new tokens/s':>13} {'speed-up':>9}")
    base = None
    for batch in opts.batch_sizes:
        config = GenerationConfig(max_new_tokens=opts.max_new_tokens, batch_size=batch, threads=opts.threads)
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            path = generate(opts.model, prompts, out, trigger=None, config=config, progress=False)
            seconds = time.perf_counter() - started
            from poisonlab.models.loading import load_tokenizer

            tokenizer = load_tokenizer(opts.model)
            replies = [json.loads(line)["reply"] for line in path.read_text().splitlines()]
            tokens = sum(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in replies)
        base = base or tokens / seconds
        print(
            f"{batch:>6} {seconds:>9.1f} {len(replies) / seconds:>10.2f} {tokens / seconds:>13.1f} "
            f"{tokens / seconds / base:>8.1f}x"
        )


if __name__ == "__main__":
    main()
