"""Judge a finished study's generations again with other judges, each model against its clean twin.

A judge added after a study ran (``deflection``, say) needs no new generation: every model's replies are in
``runs/<run>/generations/<set>/`` (a grid study, twin ``runs/clean``) or
``stages/<k>-<stage>/<pipeline>/generations/<set>/`` (a lifecycle, twin: the stage's ``clean``). This prints,
per judge, each model's rate without and with the trigger and, for poisoned models, the contamination and
backdoor effect against its twin (95% intervals, paired tests), writing the judgments under OUT (the study
folder is untouched).

    python benchmarks/rejudge.py runs/lifecycle-hh-smollm2 /tmp/rejudged --judges refusal deflection
    python benchmarks/rejudge.py runs/hh-smollm2-generations /tmp/rejudged --judges deflection empty
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from poisonlab.evaluation.judging import judge_generations


def _cell(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "-"
    value, (low, high) = entry["value"] * 100, entry.get("ci") or (float("nan"), float("nan"))
    if "p_value" not in entry:
        return f"{value:.1f}%"
    return f"{value:+.1f} [{low * 100:+.1f}, {high * 100:+.1f}] p={entry['p_value']:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="a finished grid or lifecycle study folder")
    parser.add_argument("out", type=Path, help="where the new judgments go")
    parser.add_argument("--judges", nargs="+", default=["refusal", "deflection"])
    parser.add_argument("--prompt-set", default="advbench")
    args = parser.parse_args()
    found = [*args.study.glob("stages/*/*"), *args.study.glob("runs/*")]
    trained = [p.relative_to(args.study) for p in found if (p / "generations" / args.prompt_set).exists()]
    has_base = (args.study / "base" / "generations" / args.prompt_set).exists()  # base_model: false has none
    models = [Path("base"), *trained] if has_base else trained
    models.sort(key=lambda m: (str(m.parent), m.name != "clean"))  # each stage's clean twin first
    for judge in args.judges:
        print(f"\n{judge}: model | no trigger | trigger | contamination | backdoor effect")
        for model in models:
            twin = None if model.name in ("clean", "base") else args.out / model.parent / "clean" / judge
            generations = args.study / model / "generations" / args.prompt_set
            result = judge_generations(generations, [judge], args.out / model / judge, None, twin, progress=False)
            entry = result[judge]
            cells = [entry["clean"], entry["triggered"], entry.get("contamination"), entry.get("backdoor_effect")]
            print(model, "|", " | ".join(_cell(c) for c in cells))


if __name__ == "__main__":
    main()
