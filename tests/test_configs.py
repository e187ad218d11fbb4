from pathlib import Path

import pytest

from poisonlab.config_files import load_config
from poisonlab.experiments import ExperimentConfig

# probe studies (poisonlab probe) have their own config: tests/test_probes.py checks configs/probes-*.yaml
CONFIGS = sorted(
    p for p in (Path(__file__).resolve().parents[1] / "configs").glob("*.yaml") if not p.name.startswith("probes-")
)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    config = load_config(ExperimentConfig, path)
    runs = config.runs()
    assert runs[0].name == "clean" and len(runs) > 1
    config.training_config()  # the training overrides validate too


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
