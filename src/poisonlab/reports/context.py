"""The context figure: does an inference-time context defuse a planted trigger? (arXiv 2502.14182)

For one judge on one prompt set, after the last stage, two panels with the contexts along the x-axis (in
the order the study lists them): the backdoor effect and the contamination of every poisoned pipeline,
each against the clean twin under the same context, with 95% intervals. A backdoor effect that falls to
zero as clean demonstrations are added is a trigger the context defused.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from poisonlab.io import atomic_write_figure


def plot_contexts(rows: list[Any], judge: str, prompt_set: str, contexts: list[str], path: Path) -> None:
    """Draw ``judge@prompt_set~<context>``'s two effects per context (last stage) into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    last = max((r.stage_index for r in rows), default=0)
    final = [r for r in rows if r.stage_index == last and r.pipeline != "clean"]
    keys = [f"{judge}@{prompt_set}~{name}" for name in contexts]
    facts = next((r.metrics[k]["judge"] for r in final for k in keys if k in r.metrics), None)
    if facts is None:
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    pipelines = list(dict.fromkeys(r.pipeline for r in final))
    for ax, part, title in (
        (axes[0], "backdoor_effect", "backdoor effect"),
        (axes[1], "contamination", "contamination"),
    ):
        for offset, pipeline in enumerate(pipelines):
            row = next(r for r in final if r.pipeline == pipeline)
            points = [(i, row.metrics[k].get(part)) for i, k in enumerate(keys) if k in row.metrics]
            points = [(i, m) for i, m in points if m is not None]
            if not points:
                continue
            shift = (offset - (len(pipelines) - 1) / 2) * 0.08
            y = [m["value"] for _, m in points]
            err = [[v - m["ci"][0] for v, (_, m) in zip(y, points)], [m["ci"][1] - v for v, (_, m) in zip(y, points)]]
            ax.errorbar(
                [i + shift for i, _ in points], y, yerr=err, marker="o", capsize=3, linestyle="", label=pipeline
            )
        ax.axhline(0, color="black", linestyle="--", linewidth=1)
        ax.set_xticks(range(len(contexts)), contexts, rotation=30, fontsize=8)
        ax.set_title(f"{title}: {judge}@{prompt_set}, after {final[0].stage}", fontsize=10)
        ax.grid(alpha=0.3)
        if facts["kind"] == "rate":
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    axes[0].set_ylabel(
        textwrap.fill(f"{facts['value_label']}: against the clean twin, same context (+ = attacker)", 45)
    )
    axes[0].legend(fontsize=8, title="poison (stage-share)", title_fontsize=8)
    fig.suptitle("each context against the clean model under the same context (95% intervals)", fontsize=9)
    fig.tight_layout()
    atomic_write_figure(fig, path)
