import json

import pytest
from rich.console import Console

from poisonlab.reports import results_table, run_overlaps, score_overlap, selection_overlap, top_k, write_results

ROWS = [
    {"run": "clean", "strategy": "none", "attack": "none", "ratio": 0.0, "n_poisoned": 0, "clean_accuracy": 0.8,
     "backdoor_success": 0.2, "n_heldout": 100, "minutes": 1.0},
    {"run": "random-backdoor-0.05", "strategy": "random", "attack": "backdoor", "ratio": 0.05, "n_poisoned": 5,
     "clean_accuracy": 0.79, "backdoor_success": 0.5, "n_heldout": 100, "minutes": 1.0},
    {"run": "random-label-flip-0.05", "strategy": "random", "attack": "label-flip", "ratio": 0.05, "n_poisoned": 5,
     "clean_accuracy": 0.6, "backdoor_success": 0.3, "n_heldout": 100, "minutes": 1.0},
]  # fmt: skip


def test_results_report_differences_from_the_clean_model_and_plots_each_attack(tmp_path):
    write_results(ROWS, tmp_path)
    rows = json.loads((tmp_path / "results.json").read_text())
    assert rows[1]["backdoor_lift"] == pytest.approx(0.3)
    assert rows[2]["clean_accuracy_change"] == pytest.approx(-0.2)
    assert (tmp_path / "backdoor_success.png").stat().st_size > 1000
    assert (tmp_path / "clean_accuracy.png").stat().st_size > 1000
    console = Console(width=200, record=True)
    console.print(results_table(ROWS))
    text = console.export_text()
    assert "+30.0%" in text and "-20.0%" in text and "†" not in text


def test_a_run_that_reused_another_runs_adapter_is_marked():
    twin = {**ROWS[1], "run": "dpo-score-backdoor-0.05", "strategy": "dpo-score"}
    twin["same_data_as"] = "random-backdoor-0.05"
    console = Console(width=200, record=True)
    console.print(results_table([*ROWS, twin]))
    text = console.export_text()
    assert "dpo-score †" in text and "random †" not in text and "same_data_as" in text


def test_top_k_overlap_and_rank_correlation():
    a = {f"p{i}": float(i) for i in range(10)}
    reverse = {f"p{i}": float(-i) for i in range(10)}
    assert top_k(a, 3) == ["p9", "p8", "p7"]
    same = score_overlap(a, dict(a), 3)
    assert (same.shared, same.share, same.spearman) == (3, 1.0, pytest.approx(1.0))
    opposite = score_overlap(a, reverse, 3)
    assert opposite.shared == 0 and opposite.spearman == pytest.approx(-1.0)
    assert selection_overlap(["p1", "p2"], ["p2", "p3"], 10).to_dict() == {
        "k": 2, "shared": 1, "share": 0.5, "chance": 0.2, "spearman": None,
    }  # fmt: skip


def test_run_overlaps_compares_each_strategy_with_dpo_score_at_the_same_cell(tmp_path):
    def manifest(strategy, ratio, ids, **selection):
        folder = tmp_path / "runs" / f"{strategy}-backdoor-{ratio}" / "poison"
        folder.mkdir(parents=True)
        record = {"strategy": strategy, "attack": "backdoor", "ratio": ratio, "n_rows": 100, "poisoned_ids": ids}
        record |= {"n_poisoned": len(ids), "selection": selection}
        (folder / "manifest.json").write_text(json.dumps(record))

    manifest("dpo-score", 0.04, ["a", "b", "c", "d"])
    manifest("gradient-projection", 0.04, ["a", "b", "x", "y"])
    manifest("random", 0.04, ["q", "r", "s", "t"])
    manifest("random", 0.1, ["a"] * 10)  # no dpo-score run at 10%: nothing to compare
    # ...unless the strategy recorded its overlap with dpo-score itself, as gradient-projection does
    manifest("gradient-projection", 0.1, list("abcdefghij"), overlap_with_dpo_score={"shared": 3, "share": 0.3})
    rows = {(r["strategy"], r["ratio"]): r for r in run_overlaps(tmp_path)}
    assert set(rows) == {("gradient-projection", 0.04), ("random", 0.04), ("gradient-projection", 0.1)}
    assert (rows["gradient-projection", 0.04]["shared"], rows["gradient-projection", 0.04]["share"]) == (2, 0.5)
    assert rows["random", 0.04]["shared"] == 0 and rows["random", 0.04]["chance"] == 0.04
    assert (rows["gradient-projection", 0.1]["shared"], rows["gradient-projection", 0.1]["chance"]) == (3, 0.1)
