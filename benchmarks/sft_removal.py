"""Vet a lifecycle's poisoned SFT data, remove what the detector flags, retrain, and judge what the model says.

The defender's end-to-end test for supervised poison (issue 13 on the lifecycle's SFT backdoor): the poisoned
SFT stage's training rows (``stages/1-<stage>/<pipeline>/poison/data.jsonl``) are scanned with ``--detector``
(default ``trigger-mining-demo``, as ``poisonlab scan --sft`` does, no manifest used for the flags); the model
is retrained with the stage's own settings on the rows it keeps, and on the rows an oracle keeps (every
manifest row removed); each answers the study's prompt sets with and without the trigger and is judged
against the study's clean twin of that stage, as the poisoned model was:

    OMP_NUM_THREADS=1 python benchmarks/sft_removal.py runs/lifecycle-sft-advbench-contrast --pipeline sft-0.1

Writes ``<study>/removal/<pipeline>/`` (scan/, one folder per retrained model with result.json) and prints one
table per judge. Finished models are read back. Only a first stage (trained from the base model) is handled.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml


def retrain_and_judge(config: Any, rows: Any, folder: Path, twin: Path, heldout: Any) -> dict[str, Any]:
    """Train the first stage's kind on ``rows`` into ``folder`` and judge it against ``twin`` (read back if done)."""
    from poisonlab.experiments.core.measure import generation_metrics
    from poisonlab.io import atomic_write_json
    from poisonlab.training.stages import STAGES, stage_config

    done = folder / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    stage = config.stages[0]
    training = stage_config(stage.kind, stage.preset, config.seed, stage.training)
    adapter = STAGES.get(stage.kind)(config.model, rows, training, folder / "adapter", [], True)
    metrics = generation_metrics(config, heldout, folder, [adapter], config.trigger_position, twin, True)
    result = {"n_train": len(rows), "metrics": metrics}
    atomic_write_json(done, result)
    return result


def main() -> None:
    from poisonlab.data.instructions import load_sft_data
    from poisonlab.data.pairs import PreferenceDataset
    from poisonlab.defenses import poisoned_ids_from_manifest, scan, write_scan
    from poisonlab.experiments.lifecycle.config import LifecycleConfig
    from poisonlab.experiments.lifecycle.runner import stage_data, stage_folder
    from poisonlab.reports.evaluation import with_qvalues

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", type=Path, help="A finished lifecycle study folder whose first stage is poisoned.")
    parser.add_argument("--pipeline", default="sft-0.1", help="The poisoned first-stage folder (its prefix label).")
    parser.add_argument("--detector", default="trigger-mining-demo", help="What vets the rows (poisonlab scan --sft).")
    args = parser.parse_args()

    config = LifecycleConfig.model_validate(yaml.safe_load((args.study / "config.yaml").read_text()))
    stage = config.stages[0]
    poisoned_folder = stage_folder(args.study, 1, stage, args.pipeline)
    twin = stage_folder(args.study, 1, stage, "clean")
    data = poisoned_folder / "poison" / "data.jsonl"
    poison = set(poisoned_ids_from_manifest(poisoned_folder / "poison" / "manifest.json", data))
    out = args.study / "removal" / args.pipeline
    dataset = load_sft_data(data)
    scanned = scan(dataset, [args.detector], poisoned_ids=sorted(poison), sft=True)
    write_scan(scanned, out / "scan", manifest=poisoned_folder / "poison" / "manifest.json")
    kept = scanned.kept(args.detector)
    oracle = PreferenceDataset([row for row in dataset if row.id not in poison], dataset.source)
    heldout = stage_data(config)[0].heldout
    flagged = set(scanned.detections[0].flagged)
    triggered = {row.id for row in dataset if row.id in poison and config.trigger.lower() in row.prompt.lower()}
    print(
        f"{args.detector}: flagged {len(flagged)} of {len(dataset)} rows: {len(flagged & poison)} of the {len(poison)} "
        f"poison rows ({len(flagged & triggered)} of the {len(triggered)} triggered), {len(flagged - poison)} clean"
    )
    models: dict[str, dict[str, Any]] = {}
    for name in ("clean", args.pipeline):
        models[name] = json.loads((stage_folder(args.study, 1, stage, name) / "result.json").read_text())
    models[f"removed by {args.detector}"] = retrain_and_judge(config, kept, out / args.detector, twin, heldout)
    models["removed by the oracle"] = retrain_and_judge(config, oracle, out / "oracle", twin, heldout)
    for key in next(iter(models.values()))["metrics"]:
        print(f"\n{key} (95% intervals; effects against the clean twin, + = the attacker gained; p exact, q BH)")
        head = ("model", "rows", "no trigger", "trigger", "backdoor effect", "contamination")
        print(f"{head[0]:<34} {head[1]:>5} {head[2]:>10} {head[3]:>8} {head[4]:>28} {head[5]:>28}")
        judged = with_qvalues([result["metrics"][key] for result in models.values()])
        for (name, result), m in zip(models.items(), judged):

            def effect(part: str, m: dict[str, Any] = m) -> str:
                if part not in m:
                    return "-"
                e = m[part]
                low, high = e["ci"]
                return f"{e['value']:+.1%} [{low:+.1%}, {high:+.1%}] p={e['p_value']:.2g} q={e['q_value']:.2g}"

            print(
                f"{name:<34} {result['n_train']:>5} {m['clean']['value']:>10.1%} {m['triggered']['value']:>8.1%} "
                f"{effect('backdoor_effect'):>28} {effect('contamination'):>28}"
            )


if __name__ == "__main__":
    main()
