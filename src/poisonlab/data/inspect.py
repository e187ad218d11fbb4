"""Summaries of a preference file: what a data team looks at before training on it."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from poisonlab.data.dialogue import to_messages
from poisonlab.data.pairs import PreferenceDataset
from poisonlab.wording import plural


@dataclass
class LengthStats:
    mean: float
    median: float
    p95: float
    max: int

    @classmethod
    def of(cls, values: list[int]) -> LengthStats:
        ordered = sorted(values)
        return cls(
            mean=round(statistics.fmean(ordered), 1),
            median=float(statistics.median(ordered)),
            p95=float(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]),
            max=ordered[-1],
        )


@dataclass
class DatasetReport:
    source: str
    n_pairs: int
    n_skipped: int
    turns: LengthStats
    prompt_chars: LengthStats
    chosen_chars: LengthStats
    rejected_chars: LengthStats
    problems: list[str] = field(default_factory=list)


def inspect_dataset(dataset: PreferenceDataset) -> DatasetReport:
    """Length statistics plus problems that do not stop loading but deserve a look."""
    problems = [
        f"line {row.line}: " + (f"field '{row.field}': " if row.field else "") + f"{row.reason} (skipped)"
        for row in dataset.skipped
    ]
    identical = sum(1 for p in dataset if p.chosen == p.rejected)
    if identical:
        problems.append(
            f"{plural(identical, 'pair has', 'pairs have')} identical chosen and rejected replies "
            "(no preference signal)"
        )
    duplicates = sum(1 for p in dataset if "~" in p.id)
    if duplicates:
        problems.append(f"{plural(duplicates, 'row is', 'rows are')} exact duplicates of an earlier row")
    return DatasetReport(
        source=dataset.source,
        n_pairs=len(dataset),
        n_skipped=len(dataset.skipped),
        turns=LengthStats.of([len(to_messages(p.prompt)) for p in dataset]),
        prompt_chars=LengthStats.of([len(p.prompt) for p in dataset]),
        chosen_chars=LengthStats.of([len(p.chosen) for p in dataset]),
        rejected_chars=LengthStats.of([len(p.rejected) for p in dataset]),
        problems=problems,
    )
