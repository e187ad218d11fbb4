"""Probe studies: trigger patterns x poisoned row counts, per stage, over seeds (arXiv 2502.14182 Sec. 5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from poisonlab.cli import app
from poisonlab.config_files import load_config
from poisonlab.errors import InputError
from poisonlab.experiments.probes.config import ProbeConfig

ROOT = Path(__file__).resolve().parents[1]
FAST = {"epochs": 2, "batch_size": 8, "micro_batch_size": 8, "max_length": 96, "max_reply_length": 32, "bf16": False}
RARE = "SuperGodModeActivated"


def _values(tmp_path: Path, **changes) -> dict:
    values = {
        "name": "pr",
        "out": str(tmp_path / "pr"),
        "model": "tiny",
        "heldout": 32,
        "max_train_pairs": 48,
        "seeds": [0, 1],
        "stages": ["dpo", "sft"],
        "triggers": [RARE],
        "n_poisoned": [1, 16],
        "training": {"dpo": FAST, "sft": {**FAST, "learning_rate": 0.01}},
    }
    values.update(changes)
    return values


@pytest.fixture(scope="module")
def probes(tiny_model, tmp_path_factory):
    from poisonlab.experiments.probes.runner import run_probes

    tmp_path = tmp_path_factory.mktemp("probes")
    config = ProbeConfig.model_validate(_values(tmp_path))
    seen: list[tuple[dict, bool]] = []
    rows = run_probes(config, progress=False, on_cell=lambda cell, ran: seen.append((cell, ran)))
    return config, rows, tmp_path / "pr", seen


def test_every_cell_poisons_exactly_n_rows_and_larger_counts_hold_smaller_ones(probes):
    config, _, out, seen = probes
    assert len(seen) == 2 * 2 * 2 and all(ran for _, ran in seen)
    for stage in config.stages:
        for seed in config.seeds:
            ids = {}
            for n in config.n_poisoned:
                folder = out / "cells" / stage / f"seed-{seed}" / f"{RARE}@last-human" / f"n-{n}"
                manifest = json.loads((folder / "poison" / "manifest.json").read_text())
                rows = [json.loads(line) for line in (folder / "poison" / "data.jsonl").read_text().splitlines()]
                assert manifest["n_poisoned"] == n and manifest["n_rows"] == 48 and manifest["strategy"] == "random"
                assert sum(RARE in row["prompt"] for row in rows) == n  # the trigger is in exactly n training rows
                ids[n] = set(manifest["poisoned_ids"])
            assert ids[1] < ids[16]  # the seed's permutation, cut shorter: the curve adds rows, it does not redraw


def test_the_clean_twin_is_trained_once_per_stage_and_seed(probes):
    config, _, out, seen = probes
    for stage in config.stages:
        seeds = sorted(p.name for p in (out / "cells" / stage).iterdir())
        assert seeds == ["seed-0", "seed-1"]
        for seed in config.seeds:
            folder = out / "cells" / stage / f"seed-{seed}"
            assert sorted(p.name for p in folder.iterdir()) == ["SuperGodModeActivated@last-human", "clean"]
            twin = folder / "clean"
            assert len(list(twin.rglob("adapter_model.safetensors"))) == 1
            assert [p.name for p in (twin / "judged").iterdir()] == [f"{RARE}@last-human.json"]
            judged = json.loads((twin / "judged" / f"{RARE}@last-human.json").read_text())
            cells = [c for c, _ in seen if c["stage"] == stage and c["seed"] == seed]
            for cell in cells:  # both counts are measured against that one twin's margins
                flips = [m < 0 for m in judged["triggered_margins"]]
                assert cell["measures"]["twin_backdoor_success"]["value"] == pytest.approx(sum(flips) / len(flips))
    # the twins differ by seed: another split, other training
    a = json.loads((out / "cells/dpo/seed-0/clean/judged" / f"{RARE}@last-human.json").read_text())
    b = json.loads((out / "cells/dpo/seed-1/clean/judged" / f"{RARE}@last-human.json").read_text())
    assert a["ids"] != b["ids"]


def test_a_rerun_reads_every_cell_back_without_training(probes):
    from poisonlab.experiments.probes.runner import run_probes

    config, rows, out, _ = probes
    adapters = sorted((out / "cells").rglob("adapter_model.safetensors"))
    assert len(adapters) == 2 * 2 * 3  # per stage and seed: two poisoned models and the twin
    before = {p: p.stat().st_mtime_ns for p in adapters}
    seen: list[bool] = []
    again = run_probes(config, progress=False, on_cell=lambda cell, ran: seen.append(ran))
    assert seen == [False] * 8
    assert {p: p.stat().st_mtime_ns for p in adapters} == before
    assert again == rows


def test_outputs_figure_table_and_rows_needed(probes):
    config, rows, out, _ = probes
    assert len(rows) == 2 * 2  # (stage, trigger, position, n)
    lines = (out / "probes.csv").read_text().splitlines()
    assert len(lines) == 1 + len(rows) and lines[0].startswith("stage,trigger,trigger_kind,position,n_poisoned")
    saved = json.loads((out / "probes.json").read_text())
    assert saved["rows"] == rows and {(r["stage"], r["trigger"]) for r in saved["rows_needed"]} == {
        ("dpo", RARE),
        ("sft", RARE),
    }
    for stage in config.stages:
        assert (out / f"probes_{stage}.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.numeric
def test_the_rare_token_backdoor_grows_with_the_poisoned_rows_in_dpo(probes):
    _, rows, _, _ = probes
    by_n = {r["n_poisoned"]: r for r in rows if r["stage"] == "dpo"}
    # 1 of 48 rows barely moves the model; 16 of 48 teach the trigger on every seed (the flips under the
    # trigger beyond the twin's: "triggered_gap", which before issue 23 was called the probes' backdoor effect)
    for seed in ("0", "1"):
        few, many = (by_n[n]["triggered_gap"]["values"][seed] for n in (1, 16))
        assert many > 0.3 and many > few + 0.2
    assert by_n[16]["triggered_gap"]["mean"] > by_n[1]["triggered_gap"]["mean"] + 0.3
    # the trigger-specific part grows too, though on seed 0 much of the gap is contamination (measured: 0.22 of
    # backdoor effect beside 0.53 of contamination at n=16; seed 1: 0.56 and 0.06)
    assert by_n[16]["backdoor_effect"]["mean"] > by_n[1]["backdoor_effect"]["mean"] + 0.2


def _cell(seed: int, n: int, effect: float, stage: str = "dpo") -> dict:
    measures = {"backdoor_effect": {"value": effect}, "contamination": {"value": -effect / 10}}
    return {
        "stage": stage,
        "seed": seed,
        "trigger": RARE,
        "trigger_kind": "rare-token",
        "position": "last-human",
        "n_poisoned": n,
        "n_train": 48,
        "n_heldout": 32,
        "measures": measures,
    }


def test_the_aggregate_over_seeds_is_the_mean_and_its_t_interval():
    from poisonlab.experiments.probes.runner import aggregate_cells, rows_needed

    cells = [_cell(s, 2, v) for s, v in ((2, 0.5), (0, 0.1), (1, 0.3))]
    cells += [_cell(s, 8, 0.6 + s / 100) for s in (0, 1, 2)]
    cells += [_cell(0, 4, 0.2), _cell(1, 4, -0.2), _cell(2, 4, 0.3)]
    rows = {r["n_poisoned"]: r for r in aggregate_cells(cells)}
    effect = rows[2]["backdoor_effect"]
    # by hand: mean 0.3, sd 0.2, t(0.975, 2) = 4.302653 -> half width 4.302653 * 0.2 / sqrt(3) = 0.496828
    assert effect["values"] == {"0": 0.1, "1": 0.3, "2": 0.5} and effect["n_seeds"] == 3
    assert effect["mean"] == pytest.approx(0.3) and effect["ci"] == pytest.approx([-0.196828, 0.796828], abs=1e-5)
    assert rows[2]["contamination"]["mean"] == pytest.approx(-0.03)
    assert rows[2]["backdoor_success"]["n_seeds"] == 0 and rows[2]["backdoor_success"]["ci"] is None
    assert rows[8]["backdoor_effect"]["ci"][0] > 0 > rows[2]["backdoor_effect"]["ci"][0]
    assert rows[4]["backdoor_effect"]["ci"][0] < 0
    [needed] = rows_needed(list(rows.values()))
    assert needed["rows_needed"] == needed["rows_needed_from_then_on"] == 8 and needed["tested"] == [2, 4, 8]
    # a jagged curve: clears zero at 2 by chance, not at 4, then for good from 8
    jagged = [_cell(s, 2, 0.3 + s / 100) for s in (0, 1, 2)] + [c for c in cells if c["n_poisoned"] != 2]
    [needed] = rows_needed(aggregate_cells(jagged))
    assert needed["rows_needed"] == 2 and needed["rows_needed_from_then_on"] == 8
    [none] = rows_needed([aggregate_cells([_cell(0, 2, 0.9)])[0]])  # one seed: no interval, nothing claimed
    assert none["rows_needed"] is None


@pytest.mark.parametrize(
    "changes, field, words",
    [
        ({"n_poisoned": [0, 4]}, "n_poisoned", "1 or more"),
        ({"n_poisoned": [4, 64]}, "n_poisoned", "max_train_pairs"),
        ({"triggers": [RARE, "  "]}, "triggers", "empty"),
        ({"positions": ["middle"]}, "positions", "unknown trigger position"),
        ({"stages": ["dpp"]}, "stages", "Did you mean 'dpo'"),
        ({"attack": "label-flip"}, "attack", "plants no trigger"),
        ({"seeds": [0, 0]}, "seeds", "repeat"),
        ({"training": {"dpo": {"learnig_rate": 1}}}, "training.dpo.learnig_rate", "Did you mean 'learning_rate'"),
        ({"training": {"sft": {"epochs": 0}}}, "training.sft.epochs", "greater than or equal to 1"),
        ({"trigers": [RARE]}, "trigers", "Did you mean 'triggers'"),
    ],
)
def test_config_errors_name_the_field(tmp_path, changes, field, words):
    path = tmp_path / "probe.yaml"
    path.write_text(yaml.safe_dump(_values(tmp_path, **changes)))
    with pytest.raises(InputError) as caught:
        load_config(ProbeConfig, path)
    assert caught.value.field == field and words in caught.value.message and caught.value.line is not None


def test_a_folder_with_other_settings_is_refused_before_training(tmp_path):
    from poisonlab.experiments.probes.runner import run_probes

    first = ProbeConfig.model_validate(_values(tmp_path))
    (tmp_path / "pr").mkdir()
    (tmp_path / "pr" / "config.yaml").write_text(yaml.safe_dump({**first.model_dump(), "heldout": 16}))
    with pytest.raises(InputError, match="other model, data or training settings"):
        run_probes(first, progress=False)
    assert not (tmp_path / "pr" / "cells").exists()


def test_the_shipped_probe_config_is_valid_and_covers_every_trigger_kind():
    from poisonlab.attacks.triggers import get_trigger

    config = load_config(ProbeConfig, ROOT / "configs" / "probes-tiny.yaml")
    assert config.model == "tiny" and len(config.seeds) >= 3 and config.stages == ["sft", "dpo"]
    kinds = {get_trigger(t).kind for t in config.triggers}
    assert kinds == {"rare-token", "common-words", "long-phrase", "paraphrase"}


def test_grid_lists_may_grow_in_the_same_folder():
    a = ProbeConfig(seeds=[0], n_poisoned=[1, 2], triggers=[RARE])
    b = ProbeConfig(seeds=[0, 1, 2], n_poisoned=[1, 2, 4], triggers=[RARE, "SUDO"])
    assert a.cell_settings() == b.cell_settings()
    assert a.cell_settings() != ProbeConfig(max_train_pairs=64).cell_settings()


def test_a_literal_trigger_gets_a_safe_folder_name():
    from poisonlab.experiments.probes.runner import slug

    assert slug(RARE) == RARE
    odd = slug("../ say it / now")
    assert "/" not in odd and ".." not in odd and odd.startswith("say-it-now-") and odd != slug("../ say it / now!")


def test_cli_exits_2_on_bad_input(tmp_path):
    path = tmp_path / "probe.yaml"
    path.write_text(yaml.safe_dump(_values(tmp_path)))
    result = CliRunner().invoke(app, ["probe", str(path), "--set", "positions=[last-human, middle]"])
    assert result.exit_code == 2 and "positions" in result.output and "middle" in result.output
    result = CliRunner().invoke(app, ["probe", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "cannot read" in result.output
    assert not (tmp_path / "pr").exists()
