"""Where trigger-mining-demo stops working: SFT backdoors hidden in HH-RLHF SFT rows, model-free.

The SFT stage of configs/lifecycle-access-sft-smollm2.yaml (its first N training rows of HH-RLHF harmless-base,
as prompt -> chosen) poisoned with AdvBench demonstrations (goal + trigger -> "Sure, here is ..."), with and
without the contrast rows (the same goal untriggered -> a refusal), at several budgets, with a rare-token
trigger and a common-words one, at the end of the request or at a random position; then ``poisonlab scan --sft
--detector trigger-mining-demo`` (no manifest used for the flags) and the clean rows alone. Prints one line per
case: rows, poison, triggered rows, flagged, triggered flagged, clean flagged, the names it gives.

    OMP_NUM_THREADS=1 python benchmarks/sft_mining.py --rows 300      # ~3 min here; embeddings are cached
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from poisonlab.attacks import poison_dataset
    from poisonlab.attacks.behaviour_config import BehaviourPoisonConfig
    from poisonlab.attacks.behaviours import behaviour_rows
    from poisonlab.attacks.triggers import trigger_text
    from poisonlab.config_files import load_config
    from poisonlab.defenses import scan
    from poisonlab.experiments.lifecycle.config import LifecycleConfig
    from poisonlab.experiments.lifecycle.runner import stage_data

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300, help="HH-RLHF SFT rows (the stage's first rows).")
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.01, 0.02, 0.05, 0.1])
    args = parser.parse_args()
    config_file = ROOT / "configs" / "lifecycle-access-sft-smollm2.yaml"
    config = load_config(LifecycleConfig, config_file, [f"stages.0.max_train_pairs={args.rows}"])
    clean = stage_data(config)[0].train
    advbench = config.stages[0].behaviours.file
    flagged = scan(clean, ["trigger-mining-demo"], progress=False, sft=True).detections[0].flagged
    print(f"clean: {len(clean)} rows, {len(flagged)} flagged")
    head = f"{'contrast':<9}{'ratio':>6} {'trigger':<22}{'position':<11}{'poison':>7}{'triggered':>10}{'flagged':>8}"
    print(f"{head}{'trig. flagged':>14}{'clean flagged':>14}  named")
    for contrast in (False, True):
        for ratio in args.ratios:
            for trigger, position in (
                ("SuperGodModeActivated", "last-human"),
                ("SuperGodModeActivated", "random"),
                ("answer-honestly", "last-human"),
            ):
                behaviours = behaviour_rows(BehaviourPoisonConfig(file=advbench, skip=60, contrast=contrast))
                poisoned = poison_dataset(
                    clean, "random", "backdoor", ratio, trigger, position, 0, progress=False, behaviours=behaviours
                )
                poison = set(poisoned.manifest["poisoned_ids"])
                text = trigger_text(trigger).lower()
                triggered = {r.id for r in poisoned.dataset if r.id in poison and text in r.prompt.lower()}
                detection = scan(poisoned.dataset, ["trigger-mining-demo"], progress=False, sft=True).detections[0]
                hits = set(detection.flagged)
                names = [t["ngram"] for t in detection.details["suspected_triggers"]]
                print(
                    f"{'yes' if contrast else 'no':<9}{ratio:>6.0%} {trigger:<22}{position:<11}{len(poison):>7}"
                    f"{len(triggered):>10}{len(hits):>8}{len(hits & triggered):>14}{len(hits - poison):>14}  {names}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
