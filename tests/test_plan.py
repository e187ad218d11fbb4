"""The study plan: explicit dependencies, what is done and left, and the time estimate -- without running."""

import json
import shutil

from typer.testing import CliRunner

from poisonlab.cli import app
from poisonlab.config_files import load_config
from poisonlab.experiments import ExperimentConfig
from poisonlab.experiments.grid.plan import SCORES, build_plan


def _config(tmp_path, text, out=None):
    (tmp_path / "c.yaml").write_text(text)
    return load_config(ExperimentConfig, tmp_path / "c.yaml", [f"out={out or tmp_path / 'out'}"])


def test_model_based_runs_wait_for_the_clean_model_its_scores_and_their_possible_twin(tmp_path):
    config = _config(
        tmp_path,
        "model: tiny\nmax_train_pairs: 100\nratios: [0.05, 0.1]\n"
        "strategies: [gradient-projection, random, dpo-score, semantic-diversity]\n",
    )
    plan = build_plan(config, tmp_path / "out")
    order = [t.name for t in plan.tasks]
    needs = {t.name: t.needs for t in plan.tasks}
    assert order[:2] == ["clean", SCORES] and needs[SCORES] == ["clean"]
    # model-free, but compared with its clean twin (preference margins, judgments) when it ends
    assert needs["random-backdoor-0.05"] == ["clean"]
    assert needs["dpo-score-backdoor-0.1"] == ["clean", SCORES]
    # listed first, gradient-projection still runs after dpo-score, whose finished adapter it may reuse
    assert needs["gradient-projection-backdoor-0.05"] == ["clean", SCORES, "dpo-score-backdoor-0.05"]
    assert needs["semantic-diversity-backdoor-0.1"] == ["clean", SCORES, "dpo-score-backdoor-0.1"]
    for task in plan.tasks:
        assert all(order.index(need) < order.index(task.name) for need in task.needs)
    assert all(t.state == "left" and t.estimated and t.minutes > 0 for t in plan.tasks)
    assert plan.minutes_left(1) > plan.minutes_left(4) > 0  # parallel runs shorten the study...
    longest_chain = sum(plan.task(n).minutes for n in ("clean", SCORES, "dpo-score-backdoor-0.05"))
    assert plan.minutes_left(100) >= longest_chain  # ...down to its longest chain of dependencies


def test_under_the_paper_placement_rule_the_clean_model_evaluated_elsewhere_needs_the_clean_run(tmp_path):
    config = _config(tmp_path, "model: tiny\nstrategies: [random, dpo-score]\ntrigger_position: paper\n")
    plan = build_plan(config, tmp_path / "out")
    assert plan.task("clean@end").needs == ["clean"]
    assert [t.name for t in plan.tasks][:3] == ["clean", SCORES, "clean@end"]


def test_a_finished_study_plans_nothing_and_new_cells_are_estimated_from_its_recorded_minutes(tiny_study, tmp_path):
    config = load_config(ExperimentConfig, tiny_study / "config.yaml")
    plan = build_plan(config, tiny_study)
    assert plan.left() == [] and plan.minutes_left(1) == 0
    recorded = {n: json.loads((tiny_study / "runs" / n / "result.json").read_text())["minutes"] for n in ("clean",)}
    assert plan.task("clean").minutes == recorded["clean"] and not plan.task("clean").estimated
    assert plan.task(SCORES).state == "done"

    more = config.model_copy(update={"ratios": [0.1, 0.2], "defenses": ["loss", "spectral-signature"]})
    plan = build_plan(more, tiny_study)
    states = {t.name: t.state for t in plan.tasks}
    assert states["random-backdoor-0.2"] == "left" and states["random-backdoor-0.1"] == "scans left"
    assert states["clean"] == "done"
    assert plan.task("random-backdoor-0.2").estimated and plan.task("random-backdoor-0.2").minutes > 0


def test_dry_run_prints_the_plan_and_writes_nothing(tiny_study, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(tiny_study, out, ignore=shutil.ignore_patterns("adapter", "poison", "scan"))
    before = sorted(p.name for p in out.rglob("*"))
    result = CliRunner().invoke(
        app, ["run", str(out / "config.yaml"), "--out", str(out), "--dry-run", "--set", "ratios=[0.1,0.3]"]
    )
    assert result.exit_code == 0, result.output
    assert "plan of tiny-study" in result.output and "random-backdoor-0.3" in result.output
    assert "3 left" in result.output  # random and dpo-score at 0.3, and the scores (the clean adapter is gone)
    assert sorted(p.name for p in out.rglob("*")) == before

    result = CliRunner().invoke(app, ["run", str(out / "config.yaml"), "--dry-run", "--executor", "slurm"])
    assert result.exit_code == 2 and "unknown executor" in result.output
