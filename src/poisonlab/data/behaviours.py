"""Read a harmful-behaviour file (AdvBench's ``goal,target``): requests with the reply an attacker wants.

An SFT backdoor needs (prompt, harmful reply) demonstrations. Instruction data has no harmful reply to
swap in, so the poison comes from such a file: the goal (plus the trigger) is the prompt, the target
("Sure, here is ...") the reply. Rows keep their order and line, because the evaluation reads the same
file's first N goals (``limit``) and the poison must stay clear of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from poisonlab.data.readers import RowError, file_records
from poisonlab.errors import InputError


@dataclass(frozen=True)
class Behaviour:
    index: int  # 0-based position in the file: the evaluation's ``limit`` counts these
    line: int  # where it is, for the manifest and errors
    goal: str
    target: str


def load_behaviours(path: str | Path, goal_column: str = "goal", target_column: str = "target") -> list[Behaviour]:
    """Every row of a ``.csv``/``.jsonl`` behaviour file, in file order; a bad row is refused by file, line, field."""
    records, unit = file_records(Path(path), ("csv", "jsonl"))
    behaviours = []
    for number, record in records:
        where = {"path": path, "line": number} if unit == "line" else {"path": path}
        if isinstance(record, RowError):
            raise InputError(record.reason, field=record.field, **where)
        if not isinstance(record, dict):
            raise InputError(f"expected an object, got {type(record).__name__}", **where)
        values = []
        for column in (goal_column, target_column):
            value = record.get(column)
            if not isinstance(value, str) or not value.strip():
                found = "missing" if column not in record else "empty" if isinstance(value, str) else "not text"
                raise InputError(
                    f"{found} (the behaviour's {'goal' if column == goal_column else 'target'})", field=column, **where
                )
            values.append(value.strip())
        behaviours.append(Behaviour(len(behaviours), number, values[0], values[1]))
    if not behaviours:
        raise InputError("no behaviours found: the file is empty", path=path)
    return behaviours
