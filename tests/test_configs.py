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
    elif kind == "reasoning":
        from poisonlab.experiments.reasoning import ReasoningProbeConfig

        load_config(ReasoningProbeConfig, path)
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
    lifecycle = path.name.startswith(("lifecycle", "context-"))  # context-*: a lifecycle swept over contexts
    reasoning = path.name.startswith("reasoning-probe")
    assert kind == (
        "lifecycle" if lifecycle else "reasoning" if reasoning else "probe" if "probes" in path.name else "grid"
    )


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


def _training_blocks(node):
    """Every ``training:`` mapping in a config (a probe config's holds one per stage kind: sft, dpo)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "training" and isinstance(value, dict):
                stages = [v for k, v in value.items() if k in ("sft", "dpo") and isinstance(v, dict)]
                yield from stages or [value]
            else:
                yield from _training_blocks(value)
    elif isinstance(node, list):
        for value in node:
            yield from _training_blocks(value)


_ROOT = Path(__file__).resolve().parents[1]
_PAGES = "\n".join(page.read_text() for page in [_ROOT / "README.md", *sorted((_ROOT / "docs").rglob("*.md"))])
README_CONFIGS = sorted({p for p in CONFIGS if f"configs/{p.name}" in _PAGES})  # the README and the docs site


@pytest.mark.parametrize("path", README_CONFIGS, ids=lambda p: p.name)
def test_every_config_behind_a_readme_table_pins_its_precision(path):
    """``bf16: auto`` computes in bf16 where the CPU (AVX512_BF16, AMX) or GPU has it: a table from such a config
    is not what another machine prints. Every training block of a config the README names says true or false."""
    blocks = list(_training_blocks(yaml.safe_load(path.read_text())))
    assert blocks, f"{path.name}: no training block, so bf16 is left at auto"
    assert all(isinstance(block.get("bf16"), bool) for block in blocks), [block.get("bf16") for block in blocks]


def test_the_readme_names_the_configs_it_reports():
    assert len(README_CONFIGS) >= 10 and Path("configs/quickstart.yaml").name in {p.name for p in README_CONFIGS}
