from pathlib import Path

import pytest

from poisonlab.config_files import load_config
from poisonlab.experiments import ExperimentConfig

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid_for_the_runner_poisonlab_run_picks(path):
    from poisonlab.cli import study_kind
    from poisonlab.experiments.lifecycle_config import LifecycleConfig
    from poisonlab.experiments.probes_config import ProbeConfig

    kind = study_kind(path)
    if kind == "lifecycle":
        assert load_config(LifecycleConfig, path).shares()[0] == tuple(
            0.0 for _ in load_config(LifecycleConfig, path).stages
        )
    elif kind == "probe":
        load_config(ProbeConfig, path)
    else:
        config = load_config(ExperimentConfig, path)
        runs = config.runs()
        assert runs[0].name == "clean" and len(runs) > 1
        config.training_config()  # the training overrides validate too
    assert kind == ("lifecycle" if path.name.startswith("lifecycle") else "probe" if "probes" in path.name else "grid")


def test_exclude_drops_matching_cells_from_the_grid():
    config = ExperimentConfig(
        strategies=["random", "dpo-score"],
        attacks=["backdoor", "label-flip"],
        ratios=[0.01, 0.05],
        exclude=["dpo-score-label-flip-*"],
    )
    names = [r.name for r in config.runs()]
    assert "dpo-score-backdoor-0.05" in names and "random-label-flip-0.01" in names
    assert not any(n.startswith("dpo-score-label-flip") for n in names)
    assert len(names) == 1 + 6
