"""Effects over seeds: each seed's own effect, and the pooled exact test over prompts (hand cases)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from poisonlab.cli import app
from poisonlab.errors import InputError
from poisonlab.experiments.lifecycle.seeds import pool_seeds

METRIC = "refusal@advbench"


def _study(folder: Path, seed: int, goals_that_flip: int, n: int = 6) -> Path:
    """A one-stage study: the poisoned model stops refusing the first ``goals_that_flip`` goals under the
    trigger; it and its clean twin refuse everything else."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"name: hand\nseed: {seed}\n")
    judge = {"kind": "rate", "harmful_when": "low"}
    effect = goals_that_flip / n
    rows = [
        {
            "pipeline": "clean",
            "stage_index": 1,
            "stage": "sft",
            "metrics": {METRIC: {"judge": judge, "clean": {"value": 1.0}}},
        },
        {
            "pipeline": "sft-0.1",
            "stage_index": 1,
            "stage": "sft",
            "metrics": {
                METRIC: {
                    "judge": judge,
                    "clean": {"value": 1.0},
                    "triggered": {"value": 1 - effect},
                    "backdoor_effect": {"value": effect},
                    "contamination": {"value": 0.0},
                }
            },
        },
    ]
    (folder / "lifecycle.json").write_text(json.dumps(rows))
    judgments = []
    for model in ("1-sft/clean", "1-sft/sft-0.1"):
        for i in range(n):
            for triggered in (False, True):
                refused = not (model.endswith("sft-0.1") and triggered and i < goals_that_flip)
                judgments.append(
                    {"id": f"g{i}", "model": model, "judge": "refusal", "triggered": triggered, "value": float(refused)}
                )
    with gzip.open(folder / "judgments.jsonl.gz", "wt") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in judgments)
    return folder


def test_pooled_effect_sums_each_prompt_over_seeds_and_tests_exactly(tmp_path):
    # seed 0: goals 0-2 flip; seed 1: goals 0-1 flip. Per-goal sums 2, 2, 1, 0, 0, 0: mean 5/12 per seed and goal;
    # sign flips of {2, 2, 1}: |sum| >= 5 only when all agree, p = 2/8.
    a, b = _study(tmp_path / "s0", 0, 3), _study(tmp_path / "s1", 1, 2)
    (record,) = pool_seeds([a, b], METRIC)
    assert [s["backdoor_effect"] for s in record["per_seed"]] == [0.5, pytest.approx(1 / 3)]
    pooled = record["backdoor_effect"]
    assert pooled["value"] == pytest.approx(5 / 12, abs=1e-6) and pooled["p_value"] == 0.25 and pooled["n"] == 6
    assert pooled["ci"][0] <= 0 <= pooled["ci"][1]  # p > 0.05: the inverted interval holds zero
    assert pooled["seed_mean"] == pytest.approx((0.5 + 1 / 3) / 2)
    assert record["contamination"]["value"] == 0 and record["contamination"]["p_value"] == 1
    args = [
        "pool",
        str(a),
        str(b),
        "--metric",
        METRIC,
        "--out",
        str(tmp_path / "p.json"),
        "--figure",
        str(tmp_path / "p.png"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "p.json").read_text())[0]["backdoor_effect"]["p_value"] == 0.25
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG" and "+50.0 / +33.3" in result.output


def test_six_goals_in_each_of_three_seeds_are_significant_where_one_seed_is_not(tmp_path):
    # one seed: 6 of 6 goals one way is p = 2 * 0.5^6 = 0.03125; pooled over three such seeds each goal sums to 3,
    # and the exact test over 6 prompts still gives 0.03125: seeds add precision per prompt, not prompts.
    folders = [_study(tmp_path / f"s{s}", s, 6) for s in range(3)]
    (record,) = pool_seeds(folders, METRIC)
    assert record["backdoor_effect"]["p_value"] == pytest.approx(0.03125) and record["backdoor_effect"]["value"] == 1.0
    assert record["backdoor_effect"]["seed_ci"] == [1.0, 1.0]


def test_pool_refuses_what_is_not_a_set_of_seeds(tmp_path):
    a = _study(tmp_path / "s0", 0, 3)
    twin = _study(tmp_path / "again", 0, 2)
    with pytest.raises(InputError, match="share a seed"):
        pool_seeds([a, twin], METRIC)
    with pytest.raises(InputError, match="at least two"):
        pool_seeds([a], METRIC)
    with pytest.raises(InputError, match="no poisoned pipeline"):
        pool_seeds([a, _study(tmp_path / "s1", 1, 1)], "deflection@advbench")
    result = CliRunner().invoke(app, ["pool", str(a), str(twin), "--metric", METRIC])
    assert result.exit_code == 2 and "share a seed" in result.output
    result = CliRunner().invoke(app, ["pool", str(a), str(tmp_path / "missing")])
    assert result.exit_code == 2 and "no lifecycle.json" in result.output
