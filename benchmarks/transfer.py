"""Do two models pick the same pairs? The paper's transferability question (arXiv 2406.12091, Sec. 5).

Scores the same HH-RLHF training pairs with each model's clean DPO model (trained once, cached) and
prints how many of the top-k pairs by DPO score the two models share at several poison ratios, with
the rank correlation of the scores. Uses the split of ``slice.py smollm2-135m --train 200 --heldout 100``,
so its cached clean SmolLM2 model and scores are reused when that benchmark has run.

    python benchmarks/transfer.py                     # tiny vs smollm2-135m on 200 pairs
    python benchmarks/transfer.py --train 400 --models tiny smollm2-135m
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slice import HH, SETTINGS  # the benchmarks folder is not a package

from poisonlab.attacks.strategies import SelectionContext
from poisonlab.data import PreferenceDataset, load_pairs
from poisonlab.data.splits import train_heldout_split
from poisonlab.reports import score_overlap
from poisonlab.training.clean_model import clean_dpo_scores
from poisonlab.training.config import DPOTrainingConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs=2, default=["tiny", "smollm2-135m"])
    parser.add_argument("--data", default=str(HH))
    parser.add_argument("--train", type=int, default=200)
    parser.add_argument("--heldout", type=int, default=100)
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.01, 0.05, 0.1, 0.2])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--scores",
        nargs="*",
        default=[],
        metavar="MODEL=FILE",
        help="use a saved {id: DPO score} JSON for MODEL (a clean-dpo cache's dpo_scores.json) instead of training",
    )
    args = parser.parse_args()

    dataset = load_pairs(args.data, on_error="skip")
    train, _ = train_heldout_split(dataset, args.heldout, args.seed)
    train = PreferenceDataset(train.pairs[: args.train], train.source)
    given = dict(item.split("=", 1) for item in args.scores)
    scores, minutes = {}, {}
    for model in args.models:
        if model in given:
            scores[model], minutes[model] = json.loads(Path(given[model]).read_text()), 0.0
            continue
        overrides = SETTINGS.get(model, {}).get("training", {})
        training = DPOTrainingConfig.from_preset("cpu", seed=args.seed, **overrides)
        started = time.perf_counter()
        scores[model] = clean_dpo_scores(SelectionContext(train, 0, args.seed, model, training))
        minutes[model] = (time.perf_counter() - started) / 60

    a, b = args.models
    table = Table(title=f"top-k pairs by clean DPO score: {a} vs {b} ({len(train)} HH-RLHF pairs)")
    for column in ("ratio", "k", "shared", "share", "chance", "spearman"):
        table.add_column(column, justify="right")
    for ratio in args.ratios:
        k = max(1, round(ratio * len(train)))
        o = score_overlap(scores[a], scores[b], k)
        table.add_row(f"{ratio:.1%}", str(k), str(o.shared), f"{o.share:.0%}", f"{o.chance:.0%}", f"{o.spearman:+.2f}")
    console = Console(width=120)
    console.print(table)
    console.print(", ".join(f"{m}: {minutes[m]:.1f} min (0 when cached)" for m in args.models))


if __name__ == "__main__":
    main()
