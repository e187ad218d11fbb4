"""Where model-free trigger mining stops on a study's data, and why: the reply signal's power, ratio by ratio.

``trigger-mining-reply`` can only name a trigger whose pairs look swapped by its reply signal (a pair's reply
difference pointing against its prompt-neighbours' or the data's mean). This script poisons a study's training
split (the study's own clean adapter picks dpo-score's pairs, from its cached scores) at each ratio, and prints:

- the signal's per-pair AUROC (poisoned against clean pairs) and the share of the poison in the top 20% by it;
- the *oracle* test: a one-sided Mann-Whitney U test of the poisoned pairs' signal against the rest, as if the
  trigger's pairs were known. No test of one n-gram on this signal can do much better, and the miner must
  also clear a multiple-testing bar over every n-gram it tests (printed: the BH bar for a lone discovery,
  ``mining_fdr`` / #n-grams / #suspicious sets);
- what the miner did: AUROC of its scores, pairs flagged, precision, recall, the names it gave.

    OMP_NUM_THREADS=1 python benchmarks/mining_power.py configs/defend-hh-smollm2.yaml \
        --study runs/defend-hh-smollm2 --strategies random dpo-score --ratios 0.01 0.03 0.05 0.1

Without ``--study`` only model-free strategies (random) run; ``--set`` overrides the config as ``poisonlab run``'s
does (``--set max_train_pairs=null``: all the training pairs). Embeddings are cached; a few minutes here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    from scipy.stats import mannwhitneyu
    from sklearn.metrics import roc_auc_score

    from poisonlab.attacks import poison_dataset
    from poisonlab.config_files import load_config
    from poisonlab.defenses import DefenseConfig, scan
    from poisonlab.defenses.detectors import DetectionContext
    from poisonlab.defenses.mining import against_the_mean, local_disagreement
    from poisonlab.experiments import ExperimentConfig
    from poisonlab.experiments.grid.folder import split_data

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path, help="An experiment config: its data, split, model and trigger.")
    parser.add_argument("--study", type=Path, help="The study folder: its clean adapter picks dpo-score's pairs.")
    parser.add_argument("--strategies", nargs="+", default=["random"])
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.01, 0.03, 0.05, 0.1])
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE, as poisonlab run")
    args = parser.parse_args()
    config = load_config(ExperimentConfig, args.config, args.overrides)
    train = split_data(config)[0]
    defense = DefenseConfig()
    clean_adapter = args.study / "runs" / "clean" / "adapter" if args.study else None
    print(f"{config.name}: {len(train)} training pairs, trigger {config.trigger} at {config.trigger_position}")
    head = f"{'strategy':<11}{'ratio':>6}{'poison':>7}  {'signal AUROC':>14}{'top 20%':>9}{'oracle p':>10}"
    print(f"{head}{'BH bar':>9}  {'miner AUROC':>11}{'flagged':>8}{'prec.':>7}{'recall':>7}  named")
    for strategy in args.strategies:
        if strategy != "random" and clean_adapter is None:
            raise SystemExit(f"{strategy} needs --study (the study's clean adapter picks its pairs)")
        for ratio in args.ratios:
            poisoned = poison_dataset(
                train, strategy, "backdoor", ratio, config.trigger, config.trigger_position, config.seed,
                model=config.model, training=config.training_config(), clean_adapter=clean_adapter, progress=False,
            )  # fmt: skip
            poison = set(poisoned.manifest["poisoned_ids"])
            truth = np.array([pid in poison for pid in poisoned.dataset.ids])
            ctx = DetectionContext(poisoned.dataset, config.model, config=defense, progress=False)
            differences = ctx.features("reply-embeddings")
            signals = [
                local_disagreement(differences, ctx.features("prompt-embeddings"), defense.mining_neighbours),
                against_the_mean(differences),
            ]
            # the signal the oracle test finds stronger, as the miner takes the better of its two families
            aurocs = [roc_auc_score(truth, s) for s in signals]
            signal = signals[int(np.argmax(aurocs))]
            top = signal >= np.quantile(signal, 0.8)
            oracle = mannwhitneyu(signal[truth], signal[~truth], alternative="greater").pvalue
            detection = scan(poisoned.dataset, ["trigger-mining-reply"], config.model, config=defense, progress=False)
            found = detection.detections[0]
            scores = np.array([found.scores[pid] for pid in poisoned.dataset.ids])
            flagged = set(found.flagged)
            n_sets = len(signals) * len(defense.mining_shares)  # the miner tries each share of each signal
            bar = defense.mining_fdr / max(1, found.details["ngrams_tested"]) / n_sets
            precision = f"{len(flagged & poison) / len(flagged):.0%}" if flagged else "-"
            names = [t["ngram"] for t in found.details["suspected_triggers"]]
            print(
                f"{strategy:<11}{ratio:>6.0%}{len(poison):>7}  {max(aurocs):>14.2f}{top[truth].mean():>9.0%}"
                f"{oracle:>10.1e}{bar:>9.0e}  {roc_auc_score(truth, scores):>11.2f}{len(flagged):>8}{precision:>7}"
                f"{len(flagged & poison) / len(poison):>7.0%}  {names}",
                flush=True,
            )


if __name__ == "__main__":
    main()
