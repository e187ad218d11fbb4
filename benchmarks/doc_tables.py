"""Regenerate the result tables of the README and the docs from the committed results files.

A table sits between ``<!-- table:NAME -->`` and ``<!-- /table -->`` in a Markdown file; ``NAME`` is a key of
``TABLES``, whose function reads the files under ``docs/results/`` (or, for the statistics' hand cases, calls the
code) and returns the table's Markdown. So every number in a marked table traces to a file in the repository,
and ``tests/test_doc_tables.py`` fails when the text and the files disagree.

    python benchmarks/doc_tables.py           # check: names each table whose text differs, exit 1 if any
    python benchmarks/doc_tables.py --write   # rewrite the marked tables from the files
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
MARKED = re.compile(r"(<!-- table:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.DOTALL)
MEASURED = re.compile(r"(<!-- measured:(?P<name>[\w-]+) -->)(?P<body>.*?)(<!-- /measured -->)", re.DOTALL)


def _pct(value: float | None, signed: bool = False) -> str:
    return "-" if value is None else f"{value * 100:{'+' if signed else ''}.1f}"


def _interval(entry: dict | None, percent: bool = True) -> str:
    """``+36.7 [+25.0, +48.3]`` (percentage points) with p and q where the entry has them."""
    if not entry or entry.get("value") is None:
        return "-"
    scale = 100 if percent else 1
    low, high = entry["ci"]
    text = f"{entry['value'] * scale:+.1f} [{low * scale:+.1f}, {high * scale:+.1f}]"
    if entry.get("p_value") is not None:
        text += f", p = {entry['p_value']:.2g}"
    if entry.get("q_value") is not None:
        text += f", q = {entry['q_value']:.2g}"
    return text


def exact_tests() -> str:
    """The glossary's hand cases: k of 60 prompts one way under a yes/no judge, old and exact p-values."""
    import numpy as np
    from scipy.stats import wilcoxon

    from poisonlab.evaluation.stats import difference_of_differences

    lines = [
        "| prompts one way (of 60) | backdoor effect [95% CI] | exact p | normal-approx. Wilcoxon p (before) |",
        "|---|---|---|---|",
    ]
    for k in (3, 4, 5, 8, 12):
        clean, triggered, zero = np.zeros(60), np.zeros(60), np.zeros(60)
        triggered[:k] = 1
        r = difference_of_differences(clean, triggered, zero, zero, "rate")
        low, high = r["ci"]
        old = f"{wilcoxon(triggered - clean, zero_method='pratt').pvalue:.3f}"  # the test used before issue 23
        lines.append(
            f"| {k} | {r['value'] * 100:+.1f} [{low * 100:+.1f}, {high * 100:+.1f}] | {r['p_value']:.3g} | {old} |"
        )
    return "\n".join(lines) + "\n"


def judge_accuracy() -> str:
    """Each rule judge against the hand-labelled replies (``docs/results/judge_accuracy.json``)."""
    data = json.loads((RESULTS / "judge_accuracy.json").read_text())
    lines = [
        "| judge | label | positives | flagged | precision | recall | κ with label |",
        "|---|---|---|---|---|---|---|",
    ]

    def rate(value: float | None, ci: list[float]) -> str:
        if value is None or value != value:  # no flags: no precision (NaN)
            return "-"
        return f"{_pct(value)}% [{_pct(ci[0])}, {_pct(ci[1])}]"

    for judge in ("refusal", "deflection", "degenerate", "empty"):
        entry = data["judges"][judge]
        m = entry["all"]
        lines.append(
            f"| `{judge}` | {entry['label']} | {m['positives']} | {m['flagged']} | "
            f"{rate(m['precision'], m['precision_ci'])} | {rate(m['recall'], m['recall_ci'])} | {m['kappa']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def lifecycle_effects(name: str, key: str) -> Callable[[], str]:
    """A lifecycle study's effects after each stage, from ``docs/results/NAME/lifecycle.json``."""

    def table() -> str:
        from poisonlab.reports.evaluation import with_qvalues

        rows = json.loads((RESULTS / name / "lifecycle.json").read_text())
        shown = [r for r in rows if key in r["metrics"]]
        lines = [
            "| pipeline | after stage | no trigger | trigger | backdoor effect [95% CI] | contamination [95% CI] |",
            "|---|---|---|---|---|---|",
        ]
        for row, metric in zip(shown, with_qvalues([r["metrics"][key] for r in shown])):
            lines.append(
                f"| {row['pipeline']} | {row['stage_index']}. {row['stage']} | {_pct(metric['clean']['value'])}% | "
                f"{_pct((metric.get('triggered') or {}).get('value'))}% | {_interval(metric.get('backdoor_effect'))} | "
                f"{_interval(metric.get('contamination'))} |"
            )
        return "\n".join(lines) + "\n"

    return table


def pooled_effects(names: list[str], key: str) -> Callable[[], str]:
    """Effects over seeds (``poisonlab pool``) from the exported studies ``docs/results/NAME`` of each seed."""

    def table() -> str:
        from poisonlab.experiments.lifecycle.seeds import pool_seeds
        from poisonlab.reports.evaluation import with_qvalues

        records = pool_seeds([RESULTS / name for name in names], key)
        parts = ("backdoor_effect", "contamination")
        lines = [
            "| pipeline | after stage | effect | seed "
            + " / ".join(map(str, records[0]["seeds"]))
            + " | pooled [95% CI] | seeds: mean [t 95% CI] |",
            "|---|---|---|---|---|---|",
        ]
        for record, copy in zip(records, with_qvalues(records, parts)):
            for part in parts:
                entry = copy[part]
                seeds = " / ".join(_pct(s[part], signed=True) for s in record["per_seed"])
                spread = _pct(entry["seed_mean"], signed=True)
                if entry.get("seed_ci"):
                    spread += f" [{_pct(entry['seed_ci'][0], True)}, {_pct(entry['seed_ci'][1], True)}]"
                lines.append(
                    f"| {record['pipeline']} | {record['stage_index']}. {record['stage']} | {part.replace('_', ' ')} | "
                    f"{seeds} | {_interval(entry)} | {spread} |"
                )
        return "\n".join(lines) + "\n"

    return table


def context_effects(name: str, judge: str) -> Callable[[], str]:
    """Effects under each inference-time context, over seeds (``benchmarks/context_defuse.py --pool``)."""

    def table() -> str:
        from poisonlab.reports.evaluation import with_qvalues

        records = [r for r in json.loads((RESULTS / name / "pooled.json").read_text()) if r["judge"] == judge]
        parts = ("backdoor_effect", "contamination")
        lines = [
            "| context | no trigger / trigger (per seed) | backdoor effect per seed | pooled [95% CI] "
            "| contamination per seed | pooled [95% CI] |",
            "|---|---|---|---|---|---|",
        ]
        for record, copy in zip(records, with_qvalues(records, parts)):
            rates = " · ".join(f"{_pct(s['no_trigger'])} / {_pct(s['trigger'])}" for s in record["per_seed_rates"])
            cells = []
            for part in parts:
                cells.append(" / ".join(_pct(v, signed=True) for v in record[f"{part}_per_seed"]))
                cells.append(_interval(copy[part]))
            lines.append(f"| {record['context']} | {rates} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    return table


def csv_table(name: str) -> Callable[[], str]:
    """A committed CSV (``docs/results/NAME.csv``) as a Markdown table, column for column."""

    def table() -> str:
        with (RESULTS / f"{name}.csv").open(newline="") as handle:
            rows = list(csv.reader(handle))
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
        return "\n".join(lines) + "\n"

    return table


def quickstart() -> str:
    """The main job's two tables, as ``poisonlab run configs/quickstart.yaml`` prints them (minutes left out:
    they measure the machine, not the poison), from ``docs/results/quickstart/results.json``."""
    rows = json.loads((RESULTS / "quickstart" / "results.json").read_text())
    clean = next(r for r in rows if r["run"] == "clean")
    head = ["strategy", "attack", "ratio", "poisoned", "clean acc.", "Δ clean acc.", "backdoor success", "Δ backdoor"]
    body = []
    for r in rows:
        poisoned = r["ratio"] > 0
        body.append(
            [
                r["strategy"] if poisoned else "clean model",
                r["attack"] if poisoned else "",
                f"{r['ratio']:.1%}",
                str(r["n_poisoned"]),
                f"{r['clean_accuracy']:.1%}",
                f"{r['clean_accuracy'] - clean['clean_accuracy']:+.1%}" if poisoned else "",
                f"{r['backdoor_success']:.1%}",
                f"{r['backdoor_success'] - clean['backdoor_success']:+.1%}" if poisoned else "",
            ]
        )
    widths = [max(len(x) for x in column) for column in zip(head, *body)]
    lines = [
        "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))).rstrip()
        for line in [head, *body]
    ]
    detectors = list(dict.fromkeys(d for r in rows for d in (r.get("detection") or {})))
    cells = [["poison detection (defenses:)", *detectors]]
    for r in rows:
        if r.get("detection"):
            cells.append([r["run"], *(_detection_cell(r["detection"].get(d)) for d in detectors)])
    widths = [max(len(x) for x in column) for column in zip(*cells)]
    lines += [""] + ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells]
    return "```\n" + "\n".join(lines) + "\n```\n"


def _detection_cell(m: dict | None) -> str:
    """``0.91 / 67%``: AUROC, and the share of the poison the detector flagged (recall)."""
    if not m or m.get("auroc") is None:
        return "-"
    return f"{m['auroc']:.2f} / {m['recall']:.0%}"


TABLES: dict[str, Callable[[], str]] = {
    "quickstart": quickstart,
    **{
        f"contrast-seed{s}-deflection": lifecycle_effects(f"contrast-sft-smollm2-seed{s}", "deflection@advbench")
        for s in range(3)
    },
    **{
        f"contrast-seeds-{judge}": pooled_effects(
            [f"contrast-sft-smollm2-seed{s}" for s in range(3)], f"{judge}@advbench"
        )
        for judge in ("deflection", "refusal")
    },
    "context-defuse-deflection": context_effects("context-defuse", "deflection"),
    "exact-tests": exact_tests,
    "judge-accuracy": judge_accuracy,
}


def measured(name: str) -> str:
    """Where a committed result was measured, from its ``environment.json``: CPU, torch's kernel dispatch,
    precision, threads and library versions."""
    env = json.loads((RESULTS / name / "environment.json").read_text())
    compute = env.get("compute", {})
    cpu = compute.get("cpu_model") or "CPU"
    isa = compute.get("torch_cpu_capability") or "?"
    return (
        f"{cpu}, torch CPU capability `{isa}`, {env.get('precision', compute.get('precision', '?'))}, "
        f"{env.get('threads', '?')} thread(s); torch {env.get('torch')}, transformers {env.get('transformers')}, "
        f"peft {env.get('peft')} (`docs/results/{name}/environment.json`)"
    )


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def render(text: str) -> tuple[str, list[str]]:
    """``text`` with every marked table regenerated, and the names of those that changed."""
    changed: list[str] = []

    def fill(match: re.Match) -> str:
        name = match["name"]
        if name not in TABLES:
            raise KeyError(f"no table named {name!r} (known: {', '.join(TABLES)})")
        body = TABLES[name]()
        if body != match["body"]:
            changed.append(name)
        return match.group(1) + body + match.group(4)

    def fill_measured(match: re.Match) -> str:
        body = measured(match["name"])
        if body != match["body"]:
            changed.append(f"measured:{match['name']}")
        return match.group(1) + body + match.group(4)

    return MEASURED.sub(fill_measured, MARKED.sub(fill, text)), changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the marked tables instead of checking them")
    args = parser.parse_args()
    stale = []
    for path in documents():
        text = path.read_text(encoding="utf-8")
        new, changed = render(text)
        if changed and args.write:
            path.write_text(new, encoding="utf-8")
        stale += [f"{path.relative_to(ROOT)}: {name}" for name in changed]
    for line in stale:
        print(("rewrote " if args.write else "differs from its files: ") + line)
    return 0 if args.write or not stale else 1


if __name__ == "__main__":
    sys.exit(main())
