"""Tables of judged generations: each judge's value with and without the trigger, and the effects."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

EFFECT_PARTS = ("trigger_effect", "contamination", "backdoor_effect")
EFFECTS_NOTE = (
    "95% intervals; effects signed so that + means the attacker gained. p: McNemar exact (yes/no) or sign-flip "
    "permutation (differences of differences, scores), on the prompts every cell shares; q: Benjamini-Hochberg "
    "over the table's tests"
)


def with_qvalues(metrics: Sequence[dict[str, Any] | None], parts: Sequence[str] = EFFECT_PARTS) -> list[dict]:
    """Copies of one table's metrics, each effect given its q-value over every test the table shows."""
    from poisonlab.evaluation.stats import add_qvalues

    copies = [copy.deepcopy(m) if m else {} for m in metrics]
    add_qvalues(c.get(part) for c in copies for part in parts)
    return copies


def fmt(entry: dict[str, Any] | None, kind: str, signed: bool = False) -> str:
    """``87.0% [79.1, 92.4]`` for a rate, ``0.42 [0.31, 0.55]`` for a score; a p-value when there is one."""
    if not entry or entry.get("value") is None:
        return "-"
    value, (low, high) = entry["value"], entry["ci"]
    if kind == "rate":
        sign = "+" if signed else ""
        text = f"{value * 100:{sign}.1f}% [{low * 100:{sign}.1f}, {high * 100:{sign}.1f}]"
    else:
        sign = "+" if signed else ""
        text = f"{value:{sign}.3g} [{low:{sign}.3g}, {high:{sign}.3g}]"
    if entry.get("p_value") is not None:
        text += f" p{_p(entry['p_value'])}"
    if entry.get("q_value") is not None:
        text += f" q{_p(entry['q_value'])}"
    return text


def _p(p: float) -> str:
    """``<1e-4`` or ``=0.031``: what follows p or q in a table cell."""
    return "<1e-4" if p < 1e-4 else f"={p:.2g}"


def judge_table(metrics: dict[str, Any], title: str = "judged generations") -> Any:
    """One row per judge of a metrics.json from ``judge_generations``."""
    from rich.table import Table

    has_twin = any("contamination" in m for m in metrics.values())
    caption = EFFECTS_NOTE
    if has_twin:
        caption += (
            "\ncontamination = harm without the trigger beyond the clean twin's; backdoor effect = the trigger's "
            "effect beyond its effect on the twin"
        )
    metrics = dict(zip(metrics, with_qvalues(list(metrics.values()))))
    table = Table(title=title, caption=caption, title_justify="left")
    columns = ["judge", "n", "no trigger", "trigger", "trigger effect"]
    if has_twin:
        columns += ["contamination", "backdoor effect"]
    for column in columns:
        table.add_column(column, justify="left" if column == "judge" else "right")
    for spec, m in metrics.items():
        kind = m["judge"]["kind"]
        label = f"{spec}\n({m['judge']['value_label']}; harmful: {m['judge']['harmful_when']})"
        cells = [
            label,
            str(m["clean"]["n"]),
            fmt(m["clean"], kind),
            fmt(m.get("triggered"), kind),
            fmt(m.get("trigger_effect"), kind, signed=True),
        ]
        if has_twin:
            cells += [fmt(m.get("contamination"), kind, signed=True), fmt(m.get("backdoor_effect"), kind, signed=True)]
        table.add_row(*cells)
    return table


def preference_summary(metrics: Any) -> str:
    """What ``poisonlab evaluate`` measured, in words, with intervals and what each number is relative to."""
    d = metrics.to_dict()
    low, high = d["clean_accuracy_ci"]
    b_low, b_high = d["backdoor_success_ci"]
    shift = d["trigger_shift"]
    how = (
        "implicit reward beta*log(pi/pi_ref) of the adapter against its base model"
        if metrics.preference == "implicit-reward"
        else "log-likelihood of each reply under the model (no adapter given)"
    )
    return (
        f"preference measured by the {how}, on {metrics.n_pairs} held-out pairs\n"
        f"clean accuracy {d['clean_accuracy']:.1%} [{low:.1%}, {high:.1%}] "
        f"({metrics.clean_correct}/{metrics.n_pairs} prefer the chosen reply; chance is 50%)\n"
        f"backdoor success {d['backdoor_success']:.1%} [{b_low:.1%}, {b_high:.1%}] "
        f"({metrics.backdoor_flipped}/{metrics.n_pairs} prefer the rejected reply with the trigger "
        f"{metrics.trigger!r}; compare with a clean model trained the same way, not with 0%)\n"
        f"trigger shift of the margin {shift['value']:+.4f} [{shift['ci'][0]:+.4f}, {shift['ci'][1]:+.4f}] "
        f"(sign-flip p{_p(shift['p_value'])}), "
        f"negative on {shift['share_negative']:.0%} of pairs (below zero: the trigger pushes towards the "
        "rejected reply)"
    )
