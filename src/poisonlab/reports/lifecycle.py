"""The lifecycle figure: does a poison survive the stages after it? (arXiv 2502.14182)

For one judge on one prompt set, two panels, the stages along the x-axis: the backdoor effect (the
trigger's effect beyond the clean twin's at the same stage) and the contamination (the change without
the trigger), one line per poisoned pipeline, with 95% intervals. A line that falls back to zero at a
later stage is a poison that stage washed out.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from poisonlab.io import atomic_write_figure
from poisonlab.reports.page import PAGE_HEAD


def plot_lifecycle(rows: list[Any], key: str, path: Path) -> None:
    """Draw ``key``'s backdoor effect and contamination after each stage, per pipeline, into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    judged = [r for r in rows if key in r.metrics]
    if not judged:
        return
    facts = judged[0].metrics[key]["judge"]
    stages = sorted({(r.stage_index, r.stage) for r in judged})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    pipelines = list(dict.fromkeys(r.pipeline for r in judged if r.pipeline != "clean"))
    for ax, part, name in (
        (axes[0], "backdoor_effect", "backdoor effect"),
        (axes[1], "contamination", "contamination"),
    ):
        for offset, pipeline in enumerate(pipelines):
            points = [(r.stage_index, r.metrics[key].get(part)) for r in judged if r.pipeline == pipeline]
            points = [(i, m) for i, m in points if m is not None]
            if not points:
                continue
            shift = (offset - (len(pipelines) - 1) / 2) * 0.06  # side by side, so the intervals stay readable
            x = [i + shift for i, _ in points]
            y = [m["value"] for _, m in points]
            err = [[v - m["ci"][0] for v, (_, m) in zip(y, points)], [m["ci"][1] - v for v, (_, m) in zip(y, points)]]
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=pipeline)
        ax.axhline(0, color="black", linestyle="--", linewidth=1)
        ax.set_xticks([i for i, _ in stages], [f"after {i}. {s}" for i, s in stages])
        ax.set_title(f"{name}: {key}", fontsize=10)
        ax.grid(alpha=0.3)
        if facts["kind"] == "rate":
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    label = f"{facts['value_label']}: effect against the clean twin (+ = the attacker gained)"
    axes[0].set_ylabel(textwrap.fill(label, 45))  # a long judge label must not run off the figure
    axes[0].legend(fontsize=8, title="poison (stage-share)", title_fontsize=8)
    fig.suptitle(
        "after each stage, against the clean model of the same stage (95% intervals); a line back at zero: "
        "the later stages washed the poison out",
        fontsize=9,
    )
    atomic_write_figure(fig, path)


def lifecycle_table(rows: list[Any], key: str) -> Any:
    """A rich table of ``key`` after every stage of every pipeline: the values and the two effects."""
    from rich.table import Table

    from poisonlab.reports.evaluation import EFFECTS_NOTE, fmt, with_qvalues

    table = Table(
        title=f"lifecycle: {key} after each stage",
        caption=EFFECTS_NOTE + ". Effects against the clean model after the same stage",
        title_justify="left",
    )
    for column in ("pipeline", "after stage", "poisoned (so far)", "no trigger", "trigger", "backdoor effect"):
        table.add_column(column)
    table.add_column("contamination")
    shown = [r for r in rows if r.metrics.get(key) is not None]
    for row, metric in zip(shown, with_qvalues([r.metrics[key] for r in shown])):
        kind = metric["judge"]["kind"]
        table.add_row(
            row.pipeline,
            f"{row.stage_index}. {row.stage} ({row.kind})",
            f"{row.n_poisoned} ({row.n_poisoned_so_far})",
            fmt(metric.get("clean"), kind),
            fmt(metric.get("triggered"), kind),
            fmt(metric.get("backdoor_effect"), kind, signed=True),
            fmt(metric.get("contamination"), kind, signed=True),
        )
    return table


def pooled_table(records: list[dict[str, Any]]) -> Any:
    """A rich table of effects pooled over seeds (``experiments.lifecycle.seeds.pool_seeds``)."""
    from rich.table import Table

    from poisonlab.reports.evaluation import fmt, with_qvalues

    seeds = ", ".join(map(str, records[0]["seeds"])) if records else ""
    table = Table(
        title=f"{records[0]['metric'] if records else ''} over seeds {seeds}",
        caption="+ = the attacker gained. per seed: each study's own effect. pooled: per prompt, the effect summed "
        "over seeds, exact sign-flip test over prompts (q: Benjamini-Hochberg over the table); "
        "seeds: mean and t-interval of the seeds' effects",
        title_justify="left",
    )
    for column in ("pipeline", "after stage", "effect", "per seed", "pooled [95% CI]", "seeds: mean [t 95% CI]"):
        table.add_column(column)
    parts = ("backdoor_effect", "contamination")
    cells = [(r, c, part) for r, c in zip(records, with_qvalues(records, parts)) for part in parts]
    for record, copy_, part in cells:
        entry = copy_[part]
        per_seed = " / ".join("-" if s[part] is None else f"{100 * s[part]:+.1f}" for s in record["per_seed"])
        seed_ci = entry.get("seed_ci")
        spread = f"{100 * entry['seed_mean']:+.1f}" if entry.get("seed_mean") is not None else "-"
        if seed_ci:
            spread += f" [{100 * seed_ci[0]:+.1f}, {100 * seed_ci[1]:+.1f}]"
        table.add_row(
            record["pipeline"],
            f"{record['stage_index']}. {record['stage']}",
            part.replace("_", " "),
            per_seed,
            fmt(entry, "rate", signed=True),
            spread,
        )
    return table


def plot_pooled(records: list[dict[str, Any]], path: Path, labels: list[str] | None = None) -> None:
    """Each seed's effect (dots) and the pooled effect with its 95% interval (bar), per stage (or per ``labels``:
    one name for each record), into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    labels = labels or [f"{r['pipeline']}\nafter {r['stage_index']}. {r['stage']}" for r in records]
    for ax, part in zip(axes, ("backdoor_effect", "contamination")):
        for x, record in enumerate(records):
            pooled = record[part]
            seeds = [s[part] for s in record["per_seed"] if s[part] is not None]
            ax.scatter(
                [x - 0.12] * len(seeds), seeds, s=22, color="0.45", zorder=3, label="one seed" if x == 0 else None
            )
            low, high = pooled["ci"]
            ax.errorbar(
                x + 0.12,
                pooled["value"],
                yerr=[[pooled["value"] - low], [high - pooled["value"]]],
                fmt="o",
                color="C3",
                capsize=4,
                zorder=4,
                label="pooled, 95% CI" if x == 0 else None,
            )
        ax.axhline(0, color="0.7", lw=0.8)
        ax.set_xticks(range(len(records)), labels, fontsize=8)
        ax.set_title(part.replace("_", " ") + " (+ = the attacker gained)", fontsize=10)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    axes[0].legend(fontsize=8, loc="best")
    seeds = ", ".join(map(str, records[0]["seeds"])) if records else ""
    fig.suptitle(f"{records[0]['metric'] if records else ''}: seeds {seeds}", fontsize=10)
    fig.tight_layout()
    atomic_write_figure(fig, path)
    plt.close(fig)


LIFECYCLE_PAGE = (
    PAGE_HEAD.replace("{figure_width}", "60em")
    + """<h1>{title}</h1>
<p class="note">{summary}</p>
<h2>Does the poison survive the stages after it?</h2>
<p class="note">After each stage, every poisoned model against the clean model of the same stage: backdoor
effect (the trigger's effect beyond the clean model's) and contamination (harm without the trigger), signed so
that + means the attacker gained; 95% intervals, exact or permutation tests on the prompts every cell shares,
Benjamini-Hochberg q-values over each table.</p>
<div class="figures">{figures}</div>
{tables}
<h2>Example generations after the last stage</h2>
{examples}
<h2>Study settings</h2>
{settings}
</body></html>
"""
)


def lifecycle_page(out: Path) -> str:
    """The HTML text of a lifecycle study's report (``lifecycle.json`` and its figures in ``out``)."""
    import base64
    import html
    import json

    import yaml

    from poisonlab.reports.evaluation import fmt, with_qvalues
    from poisonlab.reports.page import examples_html, read_generations, side_by_side, table

    rows = json.loads((out / "lifecycle.json").read_text())
    config = yaml.safe_load((out / "config.yaml").read_text()) if (out / "config.yaml").exists() else {}
    stages = config.get("stages") or []
    figures = "".join(
        f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,'
        f'{base64.b64encode(path.read_bytes()).decode()}">'
        for path in sorted([*out.glob("context_*.png"), *out.glob("lifecycle_*.png")])
    )
    tables = []
    for key in dict.fromkeys(k for row in rows for k in row["metrics"]):
        body = []
        shown = [r for r in rows if r["metrics"].get(key) is not None]
        for row, metric in zip(shown, with_qvalues([r["metrics"][key] for r in shown])):
            kind = metric["judge"]["kind"]
            body.append(
                (
                    row["pipeline"],
                    f"{row['stage_index']}. {row['stage']} ({row['kind']})",
                    f"{row['n_poisoned']} ({row['n_poisoned_so_far']})",
                    *(
                        fmt(metric.get(part), kind, signed=part.endswith(("effect", "contamination")))
                        for part in ("clean", "triggered", "backdoor_effect", "contamination")
                    ),
                )
            )
        header = ("pipeline", "after stage", "poisoned (so far)", "no trigger", "trigger", "backdoor effect")
        tables.append(f"<h3>{html.escape(key)}</h3>" + table((*header, "contamination"), body))
    last = max((r["stage_index"] for r in rows), default=0)
    finals = {r["pipeline"]: r for r in rows if r["stage_index"] == last}
    folders = {"base": out / "base"}
    for pipeline, row in finals.items():
        folders[pipeline] = out / "stages" / f"{last}-{row['stage']}" / row["prefix"]
    evaluation = config.get("evaluation") or {}
    sets, contexts = evaluation.get("prompt_sets") or [{}], evaluation.get("contexts") or []
    first = sets[0].get("name") and sets[0]["name"] + (f"~{contexts[0]['name']}" if contexts else "")
    examples = side_by_side(read_generations(folders, first), list(folders))
    names = " -> ".join(f"{s.get('name')} ({s.get('kind', 'sft')})" for s in stages)
    summary = (
        f"Model {config.get('model', '?')} through {names}; {len(finals)} pipelines, seed {config.get('seed', '?')}; "
        f"results folder {out.resolve()}."
    )
    settings = table(("setting", "value"), list(config.items())) if config else ""
    title = f"poisonlab lifecycle: {config.get('name', out.name)}"
    return LIFECYCLE_PAGE.format(
        title=html.escape(title),
        summary=html.escape(summary),
        figures=figures or '<p class="note">No figures yet.</p>',
        tables="".join(tables),
        examples=examples_html(examples),
        settings=settings,
    )
