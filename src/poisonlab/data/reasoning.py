"""Multi-step arithmetic word problems with worked steps and exact answers a program checks.

arXiv 2502.14182 (open question 3) proposes to "intentionally introduce contradictory reasoning steps ...
to test the learning behavior of LLMs". This is the data set such a probe needs, made here with a seed:
a person starts with some items and ``n_steps`` operations follow (gets more, gives some away, doubles or
triples them). The worked solution has one line per operation and a final line::

    Step 1: 7 + 5 = 12
    Step 2: 12 * 2 = 24
    Step 3: 24 - 9 = 15
    Answer: 15

Every value stays between 1 and ``max_value``, so a line is checked by evaluating it
(:func:`parse_solution`, :func:`line_is_right`). The same (n, seed, n_steps, max_value) gives the same
problems, in the same order, with the same ids.

``style="terse"`` writes the same draws as a bare expression, ``Compute: 7 + 5, then * 2, then - 9.``: the
worked solution (and so every poison) is unchanged, only the reading is easier. A model trained from scratch
in CPU minutes learns the arithmetic but not to read the English sentences (docs/results/reasoning-scratch.md).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from poisonlab.data.pairs import PreferenceDataset, PreferencePair
from poisonlab.data.prompts import as_dialogue

NAMES = ("Ana", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo", "Iris", "Jon", "Kira", "Liam")
ITEMS = ("apples", "marbles", "stickers", "coins", "books", "shells", "pencils", "cards")
STEP = re.compile(r"^Step (\d+): (-?\d+) ([-+*]) (-?\d+) = (-?\d+)\s*$")
ANSWER = re.compile(r"Answer:\s*(-?\d+)")
QuestionStyle = Literal["words", "terse"]


@dataclass(frozen=True)
class Operation:
    op: str  # "+", "-" or "*"
    operand: int
    phrase: str  # the sentence of the problem that asks for it


@dataclass(frozen=True)
class Problem:
    id: str
    question: str
    start: int
    operations: tuple[Operation, ...]

    def values(self) -> list[int]:
        """The running value after each operation (the last one is the answer)."""
        values, value = [], self.start
        for operation in self.operations:
            value = apply(value, operation.op, operation.operand)
            values.append(value)
        return values

    @property
    def answer(self) -> int:
        return self.values()[-1]

    def step_lines(self) -> list[str]:
        before = [self.start, *self.values()[:-1]]
        return [
            step_line(k, value, o.op, o.operand, apply(value, o.op, o.operand))
            for k, (value, o) in enumerate(zip(before, self.operations), start=1)
        ]

    def solution(self) -> str:
        return "\n".join([*self.step_lines(), f"Answer: {self.answer}"])


def apply(value: int, op: str, operand: int) -> int:
    return value + operand if op == "+" else value - operand if op == "-" else value * operand


def step_line(k: int, left: int, op: str, right: int, result: int) -> str:
    return f"Step {k}: {left} {op} {right} = {result}"


def _operation(rng: np.random.Generator, name: str, item: str, value: int, max_value: int) -> Operation:
    choices = (
        (["+"] if value < max_value else []) + (["-"] if value > 1 else []) + (["*"] if 2 * value <= max_value else [])
    )
    op = str(rng.choice(choices))
    if op == "+":
        operand = int(rng.integers(1, min(20, max_value - value) + 1))
        return Operation("+", operand, f"Then {name} gets {operand} more {item}.")
    if op == "-":
        operand = int(rng.integers(1, min(20, value - 1) + 1))
        return Operation("-", operand, f"Then {name} gives {operand} {item} away.")
    factor = 3 if 3 * value <= max_value and rng.random() < 0.5 else 2
    word = "doubles" if factor == 2 else "triples"
    return Operation("*", factor, f"Then {name} {word} the number of {item}.")


def make_problem(rng: np.random.Generator, n_steps: int, max_value: int, style: QuestionStyle = "words") -> Problem:
    """One problem whose every intermediate value is between 1 and ``max_value``; ``style``: how it is asked."""
    name, item = str(rng.choice(NAMES)), str(rng.choice(ITEMS))
    start = int(rng.integers(2, min(20, max_value) + 1))
    value, operations = start, []
    for _ in range(n_steps):
        operation = _operation(rng, name, item, value, max_value)
        value = apply(value, operation.op, operation.operand)
        operations.append(operation)
    sentences = " ".join(o.phrase for o in operations)
    question = f"{name} has {start} {item}. {sentences} How many {item} does {name} have now?"
    if style == "terse":
        question = f"Compute: {start} " + ", then ".join(f"{o.op} {o.operand}" for o in operations) + "."
    digest = hashlib.sha256(question.encode()).hexdigest()[:16]
    return Problem(digest, question, start, tuple(operations))


def reasoning_problems(
    n: int, seed: int = 0, n_steps: int = 3, max_value: int = 99, style: QuestionStyle = "words"
) -> list[Problem]:
    """``n`` problems drawn from the seed; repeated questions are skipped, so ids are unique."""
    if n_steps < 1 or max_value < 20:
        raise ValueError("n_steps must be 1 or more and max_value 20 or more")
    if style not in ("words", "terse"):
        raise ValueError(f"unknown question style {style!r}: words or terse")
    rng = np.random.default_rng([seed, n_steps, max_value])
    problems: dict[str, Problem] = {}
    while len(problems) < n:
        problem = make_problem(rng, n_steps, max_value, style)
        problems.setdefault(problem.id, problem)
    return list(problems.values())


def as_sft_rows(problems: list[Problem], solutions: list[str] | None = None) -> PreferenceDataset:
    """Problems as SFT demonstrations (question -> worked solution), ids kept; ``solutions`` replace theirs."""
    texts = solutions if solutions is not None else [p.solution() for p in problems]
    pairs = [PreferencePair(p.id, as_dialogue(p.question), text, "") for p, text in zip(problems, texts)]
    return PreferenceDataset(pairs, "reasoning")


@dataclass(frozen=True)
class ParsedStep:
    k: int
    left: int
    op: str
    right: int
    result: int


def parse_solution(text: str) -> tuple[list[ParsedStep], int | None]:
    """The step lines a reply holds (malformed lines skipped) and its final answer (None if it gives none)."""
    steps = []
    for line in text.splitlines():
        match = STEP.match(line.strip())
        if match:
            k, left, op, right, result = match.groups()
            steps.append(ParsedStep(int(k), int(left), op, int(right), int(result)))
    answer = ANSWER.search(text)
    return steps, int(answer.group(1)) if answer else None


def line_is_right(step: ParsedStep) -> bool:
    """Whether the line's own arithmetic holds (whatever it carried in)."""
    return apply(step.left, step.op, step.right) == step.result
