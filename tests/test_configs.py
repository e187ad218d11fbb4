from pathlib import Path

import pytest
import yaml

from poisonlab.config_files import load_config
from poisonlab.errors import InputError
from poisonlab.experiments import ExperimentConfig

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid_for_the_runner_poisonlab_run_picks(path):
    from poisonlab.cli import study_kind
    from poisonlab.experiments.lifecycle.config import LifecycleConfig
    from poisonlab.experiments.probes.config import ProbeConfig

    kind = study_kind(path)
    if kind == "lifecycle":
        assert load_config(LifecycleConfig, path).shares()[0] == tuple(
            0.0 for _ in load_config(LifecycleConfig, path).stages
        )
    elif kind == "probe":
        load_config(ProbeConfig, path)
    else:
        overrides = []
        init = (yaml.safe_load(path.read_text()) or {}).get("init")
        if init:  # an SFT adapter the user trains first: refused by name until it exists
            if not Path(init[0]).exists():
                with pytest.raises(InputError) as missing:
                    load_config(ExperimentConfig, path)
                assert missing.value.field == "init.0" and "adapter" in missing.value.message
            overrides = ["init=[]"]
        config = load_config(ExperimentConfig, path, overrides)
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
