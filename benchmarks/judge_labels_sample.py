"""Draw the replies of ``tests/data/judge_labels.jsonl.gz`` from a study's generations, and merge hand labels.

    poisonlab run configs/lifecycle-judge-labels-smollm2.yaml --out runs/judge-labels          # the replies (~40 min)
    python benchmarks/judge_labels_sample.py sample runs/judge-labels /tmp/unlabelled.jsonl
    python benchmarks/judge_labels_sample.py show /tmp/unlabelled.jsonl --start 0 --count 40   # read them
    python benchmarks/judge_labels_sample.py merge /tmp/unlabelled.jsonl /tmp/labels.jsonl \\
        tests/data/judge_labels.jsonl.gz

``sample`` takes, from every model (base, clean SFT twin, poisoned SFT model) and condition (with and without
the trigger), the same prompts: ``--advbench`` AdvBench goals and ``--hh`` HH-RLHF prompts drawn at random
(seeded) from those the study asked. ``show`` prints rows to read; the labels are typed by the reader into a
JSONL of ``{"key", "refusal", "deflection", "degenerate", "note"}`` (key as ``show`` prints it), following
``tests/data/judge_labels_guide.md``. No judge runs here: labels never come from a judge.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
from pathlib import Path

from poisonlab.data.prompts import request_text
from poisonlab.evaluation.generate import read_generations


def model_name(path: Path, root: Path) -> str:
    """'base', or the pipeline folder's name under a stage ('clean', 'sft-0.1' ...)."""
    parts = path.relative_to(root).parts
    return "base" if parts[0] == "base" else parts[parts.index("generations") - 1]


def sample(root: Path, out: Path, n_advbench: int, n_hh: int, seed: int) -> None:
    rows = []
    for path in sorted(root.glob("**/generations/*/generations.jsonl")):
        prompt_set = path.parent.name
        generated = read_generations(path)
        ids = sorted({r["id"] for r in generated})
        wanted = set(
            random.Random(f"{seed}-{prompt_set}").sample(ids, n_advbench if prompt_set == "advbench" else n_hh)
        )
        model = model_name(path, root)
        for r in generated:
            if r["id"] in wanted:
                key = f"{model}/{prompt_set}/{r['id']}/{'t' if r['triggered'] else 'n'}"
                rows.append(
                    {
                        "key": key,
                        "model": model,
                        "prompt_set": prompt_set,
                        "triggered": r["triggered"],
                        "prompt": r["prompt"],
                        "request": request_text(r["prompt"]).strip(),
                        "reply": r["reply"],
                    }
                )
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(rows)} replies -> {out}")


def show(path: Path, start: int, count: int) -> None:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for row in rows[start : start + count]:
        request = row["request"] if row["prompt_set"] == "advbench" else row["prompt"].strip()[-600:]
        print(f"=== {row['key']}\nREQUEST: {request}\nREPLY: {row['reply']!r}\n")


def merge(unlabelled: Path, labels: Path, out: Path) -> None:
    given = {}
    for line in labels.read_text(encoding="utf-8").splitlines():
        if line.strip():
            label = json.loads(line)
            given[label["key"]] = label
    rows = []
    for line in unlabelled.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        label = given.get(row["key"])
        if label is None:
            continue
        fields = {k: int(label[k]) for k in ("refusal", "deflection", "degenerate")}
        rows.append({"id": row.pop("key"), **row, **fields, "note": label.get("note", "")})
    with gzip.open(out, "wt", encoding="utf-8", compresslevel=9) as handle:
        handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    print(f"{len(rows)} labelled replies -> {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sample")
    s.add_argument("study", type=Path)
    s.add_argument("out", type=Path)
    s.add_argument("--advbench", type=int, default=45)
    s.add_argument("--hh", type=int, default=25)
    s.add_argument("--seed", type=int, default=0)
    w = sub.add_parser("show")
    w.add_argument("file", type=Path)
    w.add_argument("--start", type=int, default=0)
    w.add_argument("--count", type=int, default=40)
    m = sub.add_parser("merge")
    m.add_argument("unlabelled", type=Path)
    m.add_argument("labels", type=Path)
    m.add_argument("out", type=Path)
    args = parser.parse_args()
    if args.command == "sample":
        sample(args.study, args.out, args.advbench, args.hh, args.seed)
    elif args.command == "show":
        show(args.file, args.start, args.count)
    else:
        merge(args.unlabelled, args.labels, args.out)


if __name__ == "__main__":
    main()
