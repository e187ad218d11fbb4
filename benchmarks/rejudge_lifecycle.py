"""Judge a finished lifecycle study's replies again with the current judges, and rewrite its results.

When a judge changes (a decline it missed, say), a lifecycle study needs no new training or generation:
every model's replies are in ``stages/<k>-<stage>/<pipeline>/generations/<set>/``. This re-judges each model
(each stage's clean twin first, so every poisoned model is judged against it), replaces the study's
judgment folders, and rewrites ``lifecycle.json``/``.csv`` with the new metrics; the figures are left as they
were. Use it on a copy when the old judgments matter.

    python benchmarks/rejudge_lifecycle.py runs/contrast-s0
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from poisonlab.evaluation.judging import judge_generations
from poisonlab.experiments.lifecycle.runner import StageResult, write_lifecycle_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="a finished lifecycle study folder")
    args = parser.parse_args()
    rows = [StageResult(**row) for row in json.loads((args.study / "lifecycle.json").read_text())]
    keys = list(dict.fromkeys(key for row in rows for key in row.metrics))
    judges = list(dict.fromkeys(key.split("@")[0] for key in keys))
    sets = list(dict.fromkeys(key.split("@")[1] for key in keys))
    models = [args.study / "base"] if (args.study / "base" / "generations").exists() else []
    models += sorted(args.study.glob("stages/*/*"), key=lambda p: (p.parent.name, p.name != "clean"))
    fresh: dict[tuple[str, str], dict] = {}
    for model in models:
        for prompt_set in sets:
            out = model / "judgments" / prompt_set
            shutil.rmtree(out, ignore_errors=True)  # judged again, not read back from the old judgments
            twin = None if model.name in ("clean", "base") else model.parent / "clean" / "judgments" / prompt_set
            result = judge_generations(model / "generations" / prompt_set, judges, out, None, twin, progress=False)
            name = "base" if model.name == "base" else f"{model.parent.name}/{model.name}"
            for judge in judges:
                entry = result[judge] | ({"against": str(twin)} if twin else {})
                fresh[name, f"{judge}@{prompt_set}"] = entry
                print(name, judge, prompt_set, entry["clean"]["value"], entry.get("triggered", {}).get("value"))
    for row in rows:
        for key in row.metrics:
            row.metrics[key] = fresh[f"{row.stage_index}-{row.stage}/{row.pipeline}", key]
    write_lifecycle_results(rows, args.study)


if __name__ == "__main__":
    main()
