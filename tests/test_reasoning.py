"""The poisoned-reasoning probe: a seeded problem generator with checkable answers, its poison, the runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from poisonlab.attacks.reasoning import REASONING_POISONS, poison_reasoning, poisoned_rows, write_reasoning_poison
from poisonlab.data.poison_manifest import read_poison_manifest
from poisonlab.data.reasoning import line_is_right, parse_solution, reasoning_problems
from poisonlab.errors import InputError
from poisonlab.experiments.reasoning import ReasoningProbeConfig


def test_problems_are_seeded_and_their_answers_check_out() -> None:
    problems = reasoning_problems(300, seed=3, n_steps=4, max_value=60)
    assert [p.solution() for p in problems] == [p.solution() for p in reasoning_problems(300, 3, 4, 60)]
    assert [p.id for p in problems] != [p.id for p in reasoning_problems(300, 4, 4, 60)]
    assert len({p.id for p in problems}) == 300
    for problem in problems:
        steps, answer = parse_solution(problem.solution())
        assert len(steps) == 4 and all(line_is_right(s) for s in steps) and answer == problem.answer
        assert [s.left for s in steps[1:]] == [s.result for s in steps[:-1]]  # each step carries the last one's value
        assert all(1 <= v <= 60 for v in problem.values()) and str(problem.start) in problem.question
    assert {o.op for p in problems for o in p.operations} == {"+", "-", "*"}


@pytest.mark.parametrize("mode", ["wrong-carried", "contradiction", "dropped"])
def test_each_poison_rewrites_one_step_as_it_says_and_is_recognised(mode: str) -> None:
    problems = reasoning_problems(40, seed=0)
    rows, manifest = poison_reasoning(problems, mode, 0.25, step=2, seed=1, offset=10)
    poison = REASONING_POISONS.get(mode)
    assert manifest["n_poisoned"] == 10 and manifest["reasoning"] == {
        "mode": mode,
        "step": 2,
        "offset": 10,
        "answer_changes": poison.answer_changes,
    }
    for change in manifest["changes"]:
        problem = problems[change["row"]]
        steps, answer = parse_solution(change["solution_after"])
        assert poison.reproduced(problem, steps, answer, 2, 10)
        assert not poison.reproduced(problem, *parse_solution(problem.solution()), 2, 10)  # a clean one does not
        assert (answer != problem.answer) == poison.answer_changes
        if mode == "dropped":
            assert len(steps) == 2 and all(line_is_right(s) for s in steps)
        else:
            assert [line_is_right(s) for s in steps] == [True, False, True]
            assert (steps[2].left == steps[1].result) == (mode == "wrong-carried")  # carried, or contradicted
    untouched = set(range(40)) - {c["row"] for c in manifest["changes"]}
    assert all(rows[i].chosen == problems[i].solution() for i in untouched)
    assert not set(rows.ids) & {p.id for p in problems}  # fresh ids: a re-hash names no poisoned row


def test_poison_is_deterministic_nested_and_has_a_manifest(tmp_path: Path) -> None:
    problems = reasoning_problems(50, seed=0)
    folders = []
    for name in ("a", "b"):
        rows, manifest = poison_reasoning(problems, "contradiction", 0.2, 1, seed=5)
        folders.append(write_reasoning_poison(rows, manifest, tmp_path / name))
    assert (folders[0] / "data.jsonl").read_bytes() == (folders[1] / "data.jsonl").read_bytes()
    assert (folders[0] / "manifest.json").read_bytes() == (folders[1] / "manifest.json").read_bytes()
    manifest = read_poison_manifest(folders[0] / "manifest.json", folders[0] / "data.jsonl")
    assert manifest["attack"] == "reasoning:contradiction" and len(manifest["poisoned_ids"]) == 10
    lines = [json.loads(line) for line in (folders[0] / "data.jsonl").read_text().splitlines()]
    assert set(lines[0]) == {"id", "prompt", "response"}  # SFT rows: question -> worked solution
    assert set(poisoned_rows(50, 0.1, 5)) <= set(poisoned_rows(50, 0.2, 5))  # a larger share holds a smaller one's
    with pytest.raises(InputError, match="step 4"):
        poison_reasoning(problems, "dropped", 0.2, 4)
    with pytest.raises(InputError, match="Did you mean 'dropped'"):
        poison_reasoning(problems, "droped", 0.2, 1)


def test_a_bad_reasoning_config_names_the_field() -> None:
    with pytest.raises(ValidationError, match="not steps of a 3-step"):
        ReasoningProbeConfig(steps=[1, 4])
    with pytest.raises(ValidationError, match="above 0"):
        ReasoningProbeConfig(shares=[0.0, 0.5])
    with pytest.raises(ValidationError, match="offset of 0"):
        ReasoningProbeConfig(offset=0)
    with pytest.raises(ValidationError, match="learning_rat"):
        ReasoningProbeConfig(training={"learning_rat": 0.1})


def test_reasoning_probe_runs_on_tiny_and_resumes(tiny_model: str, tmp_path: Path) -> None:
    from poisonlab.experiments.reasoning import run_reasoning_probe

    config = ReasoningProbeConfig(
        model=tiny_model,
        out=str(tmp_path / "r"),
        n_train=24,
        n_heldout=6,
        modes=["wrong-carried", "dropped"],
        steps=[2],
        shares=[0.5],
        training={"epochs": 1, "batch_size": 8, "max_length": 128, "threads": 1},
        generation={"max_new_tokens": 12, "batch_size": 6, "threads": 1},
    )
    rows = run_reasoning_probe(config)
    assert [(r["mode"], r["step"], r["share"], r["n_poisoned"]) for r in rows] == [
        ("wrong-carried", 2, 0.5, 12),
        ("dropped", 2, 0.5, 12),
    ]
    for row in rows:
        m = row["measures"]
        assert m["accuracy"]["n"] == 6 and {"p_value", "ci"} <= set(m["accuracy_drop"]) and "ci" in m["reproduction"]
    out = tmp_path / "r"
    cell = out / "cells" / "seed-0" / "dropped" / "step-2" / "share-0.5"
    assert read_poison_manifest(cell / "poison" / "manifest.json")["n_poisoned"] == 12
    heldout = [
        json.loads(line) for line in (out / "cells" / "seed-0" / "clean" / "heldout.jsonl").read_text().splitlines()
    ]
    assert len(heldout) == 6 and all(parse_solution(h["solution"])[1] == h["answer"] for h in heldout)
    assert (out / "reasoning_reproduction.png").stat().st_size and len(
        (out / "reasoning.csv").read_text().splitlines()
    ) == 3
    stamp = (cell / "result.json").stat().st_mtime_ns
    again = run_reasoning_probe(config.model_copy(update={"shares": [0.5]}))  # done cells are read back
    assert again == rows and (cell / "result.json").stat().st_mtime_ns == stamp
