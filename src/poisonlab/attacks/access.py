"""Which rows an attacker may touch (arXiv 2502.14182, section 3: realistic access).

A real attacker is not the dataset's owner: it is a share of the annotators, or
it contributes during one collection window, and it may only be able to give
labels, not write prompts. :class:`AccessConfig` states that; :func:`resolve_access`
turns it into the ids of the rows the attacker controls, which every selection
strategy then chooses from (``poison_dataset`` hands them a dataset restricted
to those rows). The default grants every row: the paper setting of 2406.12091.

Annotators come from the data's ``annotator`` column, or, where the data has
none, from a synthetic assignment: each row goes to one of ``n_annotators`` by a
seeded hash of its id, so the assignment does not depend on the rows' order and
a row keeps its annotator in every subset of the data. The attacker's
annotators are drawn with the run's seed.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from poisonlab.data.pairs import PreferenceDataset
from poisonlab.errors import InputError

WINDOW_SEPARATOR = ".."


class AccessConfig(BaseModel):
    """What the attacker controls; the default (every row, any edit) is the unconstrained attacker."""

    model_config = ConfigDict(extra="forbid")

    annotator_share: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Share of the annotators the attacker is (0 < share <= 1; 1 = every row). It controls "
        "round(share x annotators), at least one, drawn with the run's seed, and may poison only their rows.",
    )
    annotators: Literal["auto", "column", "synthetic"] = Field(
        "auto",
        description="Where each row's annotator comes from: column (the data's 'annotator' field, required on "
        "every row), synthetic (a seeded hash of the row id over n_annotators), or auto (column if the data "
        "has one, else synthetic).",
    )
    n_annotators: int = Field(
        50, ge=1, description="Annotators of the synthetic assignment (ignored when the data names annotators)."
    )
    assignment_seed: int = Field(
        0,
        description="Seed of the synthetic row -> annotator assignment: a fact about the data, so it is apart "
        "from the run's seed, which draws the attacker's annotators.",
    )
    window_by: Literal["row", "timestamp"] = Field(
        "row", description="What window bounds: row (fractions of the file order) or timestamp (the data's field)."
    )
    window: str | None = Field(
        None,
        description="Collection window [START, END) the attacker took part in, written START..END (either side "
        "may be left out). With window_by row: fractions of the rows in file order, e.g. 0.5..1 for the second "
        "half. With window_by timestamp: times compared with the data's 'timestamp' field, as epoch seconds "
        "or ISO 8601 (2024-03-01..2024-04-01T12:00).",
    )
    labels_only: bool = Field(
        False,
        description="The attacker can only label rows, not write prompts: attacks that insert a trigger "
        "(backdoor) are refused; label-flip is allowed.",
    )

    @field_validator("window")
    @classmethod
    def _window_is_valid(cls, window: str | None, info: ValidationInfo) -> str | None:
        if window is not None:  # window_by is declared first, so it is known here
            parse_window(window, info.data.get("window_by", "row"))
        return window


def to_epoch(value: Any) -> float:
    """A timestamp as epoch seconds: a number, a datetime, or a string of either (ISO 8601; naive = UTC)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is neither epoch seconds nor an ISO 8601 time") from None
    else:
        raise ValueError(f"expected epoch seconds or an ISO 8601 time, got {type(value).__name__}")
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def parse_window(window: str, window_by: str) -> tuple[float, float]:
    """``START..END`` -> (start, end), half-open; an open side is -inf / +inf (rows: 0 / 1). Raises ValueError."""
    start_text, separator, end_text = window.partition(WINDOW_SEPARATOR)
    if not separator:
        raise ValueError(f"write the window as START{WINDOW_SEPARATOR}END (e.g. 0.5..1), got {window!r}")
    bounds = []
    for text, open_value in ((start_text.strip(), -math.inf), (end_text.strip(), math.inf)):
        if not text:
            bounds.append(open_value if window_by == "timestamp" else max(0.0, min(1.0, open_value)))
        elif window_by == "row":
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"row window bounds are fractions of the file order, got {text!r}") from None
            if not 0 <= value <= 1:
                raise ValueError(f"row window bounds are fractions between 0 and 1, got {text}")
            bounds.append(value)
        else:
            bounds.append(to_epoch(text))
    start, end = bounds
    if not start < end:
        raise ValueError(f"window {window!r} is empty or reversed: its start must come before its end")
    return start, end


def check_labels_only(access: AccessConfig, attack: str, inserts_trigger: bool) -> None:
    """Refuse an attack that edits prompts when the attacker may only give labels."""
    if access.labels_only and inserts_trigger:
        raise InputError(
            f"the attacker can only give labels (labels_only), but attack {attack!r} inserts a trigger into "
            "the prompt: use label-flip, or drop labels_only",
            field="labels_only",
        )


@dataclass
class Access:
    """The rows an attacker controls under an :class:`AccessConfig`, and how they were found."""

    config: AccessConfig
    controlled: list[str]  # ids, in dataset order
    n_rows: int
    annotator_source: str | None = None  # column or synthetic; None when annotators did not matter
    n_annotators: int | None = None
    attacker_annotators: list[str] | None = None
    n_in_window: int | None = None

    @property
    def everything(self) -> bool:
        return len(self.controlled) == self.n_rows

    def restrict(self, dataset: PreferenceDataset) -> PreferenceDataset:
        """The controlled rows, in input order: what selection strategies see."""
        return dataset if self.everything else dataset.subset(self.controlled)

    def manifest(self, n_requested: int, n_poisoned: int) -> dict[str, Any]:
        """The manifest's ``access`` entry (its top level also has n_requested, n_controlled, n_poisoned)."""
        return {
            "config": self.config.model_dump(),
            "annotator_source": self.annotator_source,
            "n_annotators": self.n_annotators,
            "attacker_annotators": self.attacker_annotators,
            "n_in_window": self.n_in_window,
            "n_controlled": len(self.controlled),
            "shortfall": n_requested - n_poisoned,  # > 0: the attacker controls fewer rows than the budget
        }


def synthetic_annotator(row_id: str, n_annotators: int, assignment_seed: int = 0) -> int:
    """The annotator (0 .. n-1) of a row with no named annotator: a seeded hash of its id, order-free."""
    digest = hashlib.sha256(f"poisonlab-annotator:{assignment_seed}:{row_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % n_annotators


def row_annotators(dataset: PreferenceDataset, config: AccessConfig) -> tuple[str, list[str], int]:
    """(source, each row's annotator, number of annotators) for ``config.annotators``."""
    named = [(pair.meta or {}).get("annotator") for pair in dataset]
    have = sum(value is not None for value in named)
    use_column = config.annotators == "column" or (config.annotators == "auto" and have > 0)
    if not use_column:
        labels = [str(synthetic_annotator(p.id, config.n_annotators, config.assignment_seed)) for p in dataset]
        return "synthetic", labels, config.n_annotators
    for index, (pair, value) in enumerate(zip(dataset, named)):
        if value is None:
            asked = "annotators: column" if config.annotators == "column" else "other rows have one"
            raise InputError(
                f"row {index + 1} (id {pair.id}) has no annotator ({asked}); name every row's annotator, "
                "or use annotators: synthetic",
                path=dataset.source,
                field="annotator",
            )
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise InputError(
                f"row {index + 1} (id {pair.id}): an annotator is a string or an integer, got {value!r}",
                path=dataset.source,
                field="annotator",
            )
    labels = [str(value) for value in named]
    return "column", labels, len(set(labels))


def row_times(dataset: PreferenceDataset) -> list[float]:
    """Each row's timestamp as epoch seconds; every row must have one."""
    times = []
    for index, pair in enumerate(dataset):
        value = (pair.meta or {}).get("timestamp")
        try:
            if value is None:
                raise ValueError("missing (window_by: timestamp needs it on every row)")
            times.append(to_epoch(value))
        except ValueError as exc:
            raise InputError(f"row {index + 1} (id {pair.id}): {exc}", path=dataset.source, field="timestamp") from None
    return times


def resolve_access(dataset: PreferenceDataset, config: AccessConfig, seed: int) -> Access:
    """The ids of the rows the attacker controls: its annotators' rows inside the window."""
    n = len(dataset)
    inside = [True] * n
    access = Access(config, [], n)
    if config.annotator_share < 1 or config.annotators == "column":
        source, labels, n_annotators = row_annotators(dataset, config)
        names = sorted(set(labels)) if source == "column" else [str(i) for i in range(n_annotators)]
        k = max(1, round(config.annotator_share * len(names)))
        rng = np.random.default_rng([seed, *b"access/annotators"])
        attackers = sorted((names[int(i)] for i in rng.permutation(len(names))[:k]), key=_natural)
        mine = set(attackers)
        inside = [label in mine for label in labels]
        access.annotator_source, access.n_annotators, access.attacker_annotators = source, n_annotators, attackers
    if config.window is not None:
        start, end = parse_window(config.window, config.window_by)
        positions = row_times(dataset) if config.window_by == "timestamp" else [i / n for i in range(n)]
        in_window = [start <= value < end for value in positions]
        access.n_in_window = sum(in_window)
        inside = [a and b for a, b in zip(inside, in_window)]
    access.controlled = [pair.id for pair, keep in zip(dataset, inside) if keep]
    return access


def _natural(label: str) -> tuple[int, int | str]:
    """Synthetic annotators (0, 1, ... 49) in numeric order, named ones alphabetically."""
    return (0, int(label)) if label.isdigit() else (1, label)
