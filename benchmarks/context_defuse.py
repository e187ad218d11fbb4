"""Does the context defuse a planted trigger? A finished lifecycle study's models, answered under contexts.

Issue 27's first question on the models a lifecycle study already trained (no retraining): each model of one
stage (its clean twin and its poisoned pipelines) answers the prompt set with and without the trigger under
every named context of ``configs/context-defuse-smollm2.yaml`` (``k0``: the bare prompt, k clean
demonstrations, a safety system prompt, retrieved passages), and each poisoned model is judged against the
clean twin *under the same context*: backdoor effect and contamination per context, + = the attacker gained.

    python benchmarks/context_defuse.py runs/contrast-s1 OUT --only clean      # generation, one model per process
    python benchmarks/context_defuse.py runs/contrast-s1 OUT --only sft-0.1
    python benchmarks/context_defuse.py runs/contrast-s1 OUT                   # then judge all: OUT/context.json, .csv
    python benchmarks/context_defuse.py --pool OUT0 OUT1 OUT2 --out POOLED      # seeds pooled: POOLED/pooled.json

Generation is greedy in fp32 and resumes where it stopped; rerunning judges again only what changed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

import yaml

from poisonlab.data.prompts import load_prompts
from poisonlab.evaluation.context import ContextConfig
from poisonlab.evaluation.generate import GenerationConfig, generate
from poisonlab.evaluation.judging import judge_generations
from poisonlab.io import atomic_write_json, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "context-defuse-smollm2.yaml"


def contexts(names: list[str] | None) -> list[ContextConfig]:
    listed = [ContextConfig(**c) for c in yaml.safe_load(CONFIG.read_text())["evaluation"]["contexts"]]
    return [c for c in listed if names is None or c.name in names]


def main() -> None:
    if sys.argv[1:2] == ["--pool"]:
        at = sys.argv.index("--out")
        out = Path(sys.argv[at + 1])
        out.mkdir(parents=True, exist_ok=True)
        pool([Path(p) for p in sys.argv[2:at]], out, ["deflection", "refusal"])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="a finished lifecycle study (its adapters are used)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--stage", default="1-sft", help="the stage folder whose models answer")
    parser.add_argument("--contexts", default=None, help="comma-separated context names (default: all)")
    parser.add_argument("--only", default=None, help="generate for this model only (clean, sft-0.1, ...)")
    parser.add_argument("--prompts", default=str(ROOT.parent / "shared/data/advbench/harmful_behaviors.csv"))
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--judges", default="deflection,refusal")
    args = parser.parse_args()
    chosen = contexts(args.contexts.split(",") if args.contexts else None)
    stage = args.study / "stages" / args.stage
    models = sorted((p.name for p in stage.iterdir() if (p / "adapter").is_dir()), key=lambda m: m != "clean")
    prompts = load_prompts(args.prompts, None, args.limit)
    config = GenerationConfig(max_new_tokens=48, batch_size=8, max_prompt_tokens=2048, threads=1)
    for context in chosen:
        for model in [args.only] if args.only else models:
            folder = args.out / context.name / model / "generations"
            generate(args.model, prompts, folder, [stage / model / "adapter"], config=config, context=context)
    if args.only:
        return
    judges, rows = args.judges.split(","), []
    for context in chosen:
        twin = args.out / context.name / "clean" / "judgments"
        for model in models:
            gen = args.out / context.name / model / "generations"
            against = None if model == "clean" else twin
            result = judge_generations(gen, judges, args.out / context.name / model / "judgments", None, against, False)
            for judge in judges:
                m = result[judge]
                row = {"context": context.name, "model": model, "judge": judge, "no_trigger": m["clean"]["value"]}
                row["trigger"] = m["triggered"]["value"]
                for part in ("backdoor_effect", "contamination"):
                    entry = m.get(part) or {}
                    row[part], row[f"{part}_ci"], row[f"{part}_p"] = (
                        entry.get("value"),
                        entry.get("ci"),
                        entry.get("p_value"),
                    )
                rows.append(row)
                print(row)
    atomic_write_json(args.out / "context.json", rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(args.out / "context.csv", buffer.getvalue())


def _judged(folder: Path, judge: str) -> dict[tuple[str, bool], float]:
    rows = [json.loads(line) for line in (folder / "judgments.jsonl").read_text().splitlines() if line.strip()]
    return {(r["id"], r["triggered"]): float(r["value"]) for r in rows if r["judge"] == judge}


def pool(folders: list[Path], out: Path, judges: list[str], model: str = "sft-0.1") -> None:
    """Per context and judge: each seed's effects and the prompt-level pooled test (``pool_prompt_effects``)."""
    from poisonlab.evaluation.judges.base import make_judge
    from poisonlab.evaluation.stats import harm_sign
    from poisonlab.experiments.lifecycle.seeds import pool_prompt_effects

    records = []
    names = [p.name for p in sorted(folders[0].iterdir()) if (p / model / "judgments").is_dir()]
    for name in names:
        for judge in judges:
            sign = harm_sign(make_judge(judge).harmful_when)
            per_seed: dict[str, list[dict[str, float]]] = {"backdoor_effect": [], "contamination": []}
            seeds = []
            for folder in folders:
                p, c = (
                    _judged(folder / name / model / "judgments", judge),
                    _judged(folder / name / "clean" / "judgments", judge),
                )
                ids = sorted({i for i, _ in p})
                per_seed["backdoor_effect"].append(
                    {i: sign * ((p[i, True] - p[i, False]) - (c[i, True] - c[i, False])) for i in ids}
                )
                per_seed["contamination"].append({i: sign * (p[i, False] - c[i, False]) for i in ids})
                seeds.append(
                    {
                        "no_trigger": sum(p[i, False] for i in ids) / len(ids),
                        "trigger": sum(p[i, True] for i in ids) / len(ids),
                    }
                )
            record = {"context": name, "judge": judge, "seeds": [str(f) for f in folders], "per_seed_rates": seeds}
            for part, limit in (("backdoor_effect", 2.0), ("contamination", 1.0)):
                record[part] = pool_prompt_effects(per_seed[part], "rate", limit)
                record[f"{part}_per_seed"] = [round(sum(d.values()) / len(d), 6) for d in per_seed[part]]
            records.append(record)
            print(
                name,
                judge,
                record["backdoor_effect_per_seed"],
                record["backdoor_effect"]["value"],
                record["backdoor_effect"]["ci"],
                record["backdoor_effect"]["p_value"],
                "| contamination",
                record["contamination_per_seed"],
                record["contamination"]["value"],
            )
    atomic_write_json(out / "pooled.json", records)
    from poisonlab.reports.lifecycle import plot_pooled

    for judge in judges:
        mine = [r for r in records if r["judge"] == judge]
        shaped = [
            r
            | {
                "metric": f"{judge}@advbench under each context",
                "seeds": list(range(len(folders))),
                "per_seed": [
                    {part: r[f"{part}_per_seed"][i] for part in ("backdoor_effect", "contamination")}
                    for i in range(len(folders))
                ],
            }
            for r in mine
        ]
        plot_pooled(shaped, out / f"context-{judge}.png", labels=[r["context"] for r in mine])


if __name__ == "__main__":
    main()
