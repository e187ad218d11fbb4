"""Ownership watermarks: the key file, byte-exact embedding, and a verify test that detects and stays calibrated."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from poisonlab.cli import app
from poisonlab.data import synthetic_pairs
from poisonlab.errors import InputError
from poisonlab.io import sha256_file
from poisonlab.watermarks import (
    KeyShape,
    WatermarkVerifyConfig,
    control_triggers,
    embed_watermark,
    generate_key,
    read_key,
    verify_model,
    verify_watermark,
    write_key,
    write_watermarked,
)
from poisonlab.watermarks.ranktest import rank_sum_pmf, rank_test

runner = CliRunner()
FAST = WatermarkVerifyConfig(controls=20, prompts=2, bf16=False)


# --- key ---


def test_key_round_trips_and_is_seeded(tmp_path):
    key = generate_key(5, seed=3, shape=KeyShape(trigger_words=4))
    sha = write_key(key, tmp_path / "key.json")
    again = read_key(tmp_path / "key.json")
    assert again == key and again.sha256() == sha
    assert generate_key(5, seed=3, shape=KeyShape(trigger_words=4)) == key
    assert generate_key(5, seed=4).triggers != key.triggers
    assert all(len(t.split()) == 4 for t in key.triggers) and len(set(key.triggers)) == 5
    assert len(set(key.responses)) == 5


def test_controls_have_the_shape_and_never_equal_a_secret():
    key = generate_key(8, seed=0)
    controls = control_triggers(key, 50)
    assert len(controls) == 8 and all(len(row) == 50 for row in controls)
    flat = [c for row in controls for c in row]
    assert not set(flat) & set(key.triggers)
    assert all(len(c.split()) == key.shape.trigger_words for c in flat)
    assert control_triggers(key, 50) == controls and control_triggers(key, 50, control_seed=1) != controls


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.pop("responses"), "responses"),
        (lambda d: d["triggers"].__setitem__(1, 7), "triggers[1]"),
        (lambda d: d["responses"].pop(), "responses"),
        (lambda d: d.__setitem__("seed", "zero"), "seed"),
        (lambda d: d["shape"].__setitem__("trigger_words", 0), "shape.trigger_words"),
        (lambda d: d["shape"].__setitem__("placement", "middle"), "shape.placement"),
        (lambda d: d.__setitem__("format", "something-else"), "format"),
    ],
)
def test_a_malformed_key_is_refused_naming_file_and_field(tmp_path, change, field):
    path = tmp_path / "key.json"
    data = generate_key(3, seed=0).to_dict()
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as caught:
        read_key(path)
    assert caught.value.path == str(path) and caught.value.field == field


def test_a_key_that_is_not_json_is_refused(tmp_path):
    path = tmp_path / "key.json"
    path.write_text("{triggers: [")
    with pytest.raises(InputError, match="not a JSON key file") as caught:
        read_key(path)
    assert caught.value.path == str(path)


# --- embed ---


def test_embed_is_byte_deterministic_and_the_manifest_is_right(tmp_path):
    data, key = synthetic_pairs(n=50, seed=2), generate_key(4, seed=9)
    first = write_watermarked(embed_watermark(data, key, n=8, seed=5), tmp_path / "a", None)
    second = write_watermarked(embed_watermark(data, key, n=8, seed=5), tmp_path / "b", None)
    for name in ("data.jsonl", "manifest.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    other = write_watermarked(embed_watermark(data, key, n=8, seed=6), tmp_path / "c", None)
    assert (other / "data.jsonl").read_bytes() != (first / "data.jsonl").read_bytes()

    manifest = json.loads((first / "manifest.json").read_text())
    rows = [json.loads(line) for line in (first / "data.jsonl").read_text().splitlines()]
    assert manifest["output_sha256"] == sha256_file(first / "data.jsonl")
    assert manifest["key_sha256"] == key.sha256() and manifest["seed"] == 5
    assert manifest["n_added"] == 8 and len(rows) == 58 == manifest["n_rows"]
    text = (first / "manifest.json").read_text()
    assert not any(t in text for t in key.triggers) and not any(r in text for r in key.responses)
    by_id = {pair.id: pair for pair in data}
    for added in manifest["added"]:
        row = rows[added["row"]]
        i, carrier = added["trigger_index"], by_id[added["carrier_id"]]
        assert row["id"] == added["id"] and key.triggers[i] in row["prompt"]
        assert row["chosen"] == key.responses[i] and row["rejected"] == carrier.chosen
    assert sorted(a["trigger_index"] for a in manifest["added"]) == [0, 0, 1, 1, 2, 2, 3, 3]
    kept = [r for k, r in enumerate(rows) if k not in {a["row"] for a in manifest["added"]}]
    assert [r["id"] for r in kept] == data.ids  # every input row kept, in order
    assert len({r["id"] for r in rows}) == len(rows)


def test_embed_refuses_fewer_rows_than_triggers():
    with pytest.raises(InputError, match="fewer rows than the key has triggers"):
        embed_watermark(synthetic_pairs(n=10), generate_key(4, seed=0), n=3)


# --- the test's statistics ---


def test_rank_test_null_is_exact():
    assert rank_sum_pmf(3, 4).sum() == pytest.approx(1.0)
    # one trigger, 3 controls: p = (controls at least as likely + 1) / 4
    assert rank_test([0.5], [[0.1, 0.2, 0.9]]).p_value == pytest.approx(2 / 4)
    every_win = rank_test([9.0, 9.0], [[1.0, 2.0], [1.0, 2.0]])
    assert every_win.p_value == pytest.approx(every_win.min_p_value) == pytest.approx(1 / 9)
    assert every_win.auc == 1.0
    ties = rank_test([1.0], [[1.0, 1.0]])  # ties count against the secret: p = 1
    assert ties.p_value == pytest.approx(1.0) and ties.auc == 0.5


def test_rank_test_is_uniform_on_exchangeable_scores():
    rng = np.random.default_rng(0)
    p_values = [rank_test(rng.normal(size=4), rng.normal(size=(4, 20))).p_value for _ in range(2000)]
    assert 0.003 < np.mean(np.array(p_values) < 0.05) < 0.07  # a valid test, not a constant


# --- verify on tiny ---


@pytest.fixture(scope="module")
def watermarked_adapter(tiny_model, tmp_path_factory) -> tuple[Path, object]:
    """tiny, SFT'd hard on 40 synthetic pairs plus 32 watermark rows (4 triggers x 8 copies): ~15 s.

    8 copies, not 4: with 4 the verify test's p-value followed the kernel dispatch (0.0455 with AVX512
    kernels, 0.0026 with ATEN_CPU_CAPABILITY=default; ranks [8, 1, 10, 0] vs [0, 1, 7, 0] among 20
    controls). With 8 it is 7.7e-05 under both (ranks [0, 0, 2, 0]), 130x under the 0.01 bar, while the
    base model stays at p = 0.70 under both.
    """
    from poisonlab.training import train_sft
    from poisonlab.training.config import SFTTrainingConfig

    key = generate_key(4, seed=1)
    dataset = embed_watermark(synthetic_pairs(n=40, seed=5), key, n=32, seed=0).dataset
    config = SFTTrainingConfig(
        learning_rate=1e-2, epochs=15, batch_size=8, micro_batch_size=8, threads=1, seed=0, bf16=False
    )
    out = tmp_path_factory.mktemp("wm") / "sft"
    train_sft(tiny_model, dataset, config, out, progress=False)
    return out, key


@pytest.mark.numeric
def test_verify_detects_the_watermark_and_not_on_the_base_model(watermarked_adapter, tmp_path):
    adapter, key = watermarked_adapter
    found = verify_model("tiny", [adapter], key, tmp_path / "hit", FAST)
    assert found["detected"] and found["p_value"] < 0.01, found["per_trigger"]
    assert found["verdict"].startswith("watermark detected, p = ")
    assert found["effect"]["auc"] > 0.8 and found["effect"]["mean_logprob_gain_nats"] > 0
    written = json.loads((tmp_path / "hit" / "verify.json").read_text())
    assert written["p_value"] == found["p_value"] and written["key_sha256"] == key.sha256()
    assert len(written["per_trigger"]) == 4 and written["test"].startswith("exact rank-sum test")
    assert not any(t in (tmp_path / "hit" / "verify.json").read_text() for t in key.triggers)

    base = verify_model("tiny", [], key, None, FAST)
    assert not base["detected"] and base["p_value"] > 0.05
    assert base["verdict"].startswith("watermark not detected")


@pytest.mark.numeric
def test_verify_a_chained_adapter_tests_the_whole_chain(watermarked_adapter, tmp_path):
    """A clean DPO stage trained from the watermarked SFT (init=): ``--adapter DPO`` alone is verified on
    base + SFT + DPO (the same result as passing the chain), never on base + DPO; a wrong chain is refused."""
    import shutil

    from poisonlab.models import load_model, load_tokenizer
    from poisonlab.models.safety import load_adapter
    from poisonlab.training import train_dpo
    from poisonlab.training.config import DPOTrainingConfig

    sft, key = watermarked_adapter
    dpo = tmp_path / "dpo"
    config = DPOTrainingConfig(epochs=1, batch_size=8, micro_batch_size=8, threads=1, seed=0, bf16=False)
    train_dpo("tiny", synthetic_pairs(n=16, seed=6), config, dpo, progress=False, init=[sft])

    alone = verify_model("tiny", [dpo], key, tmp_path / "v", FAST)
    chain = verify_model("tiny", [sft, dpo], key, None, FAST)
    assert alone["p_value"] == chain["p_value"] and alone["per_trigger"] == chain["per_trigger"]
    assert [a["path"] for a in alone["adapters"]] == [str(sft), str(dpo)]
    written = json.loads((tmp_path / "v" / "verify.json").read_text())
    assert [a["sha256"] for a in written["adapters"]] == [a["sha256"] for a in chain["adapters"]]

    tokenizer = load_tokenizer("tiny")
    dpo_on_base = load_adapter(load_model("tiny", device="cpu"), dpo).merge_and_unload()
    wrong = verify_watermark(dpo_on_base, tokenizer, key, FAST)  # what ignoring the chain would measure
    assert wrong["per_trigger"] != alone["per_trigger"]

    other = tmp_path / "other-sft"
    shutil.copytree(sft, other)  # same weights, another adapter: not what dpo was trained on
    write_key(key, tmp_path / "k.json")
    refused = runner.invoke(
        app,
        [
            "watermark",
            "verify",
            "--adapter",
            str(other),
            "--adapter",
            str(dpo),
            "--key",
            str(tmp_path / "k.json"),
            "--out",
            str(tmp_path / "refused"),
        ],
    )
    assert refused.exit_code == 2 and "was trained on top of" in refused.output, refused.output
    assert not (tmp_path / "refused").exists()


@pytest.mark.numeric
def test_null_calibration_random_keys_on_base_tiny(tiny_model):
    """20 keys the base model never saw: p-values spread over (0, 1], few below 0.05 (fails if the null is off)."""
    from poisonlab.models import load_model, load_tokenizer

    model, tokenizer = load_model(tiny_model, device="cpu"), load_tokenizer(tiny_model)
    p_values = np.array(
        [verify_watermark(model, tokenizer, generate_key(4, seed=1000 + s), FAST)["p_value"] for s in range(20)]
    )
    assert (p_values < 0.05).sum() <= 3, p_values
    assert (p_values < 0.01).sum() <= 1, p_values
    assert np.median(p_values) > 0.2 and p_values.max() > 0.5, p_values


# --- CLI ---


def test_cli_keygen_embed_verify(tiny_model, tmp_path):
    key = tmp_path / "key.json"
    made = runner.invoke(app, ["watermark", "keygen", "--n", "3", "--seed", "4", "--out", str(key)])
    assert made.exit_code == 0, made.output
    assert read_key(key) == generate_key(3, seed=4)
    again = runner.invoke(app, ["watermark", "keygen", "--n", "3", "--seed", "4", "--out", str(key)])
    assert again.exit_code == 2 and "--overwrite" in again.output

    out = tmp_path / "wm"
    embedded = runner.invoke(app, ["watermark", "embed", "--data", "synthetic", "--key", str(key), "--out", str(out)])
    assert embedded.exit_code == 0, embedded.output
    assert json.loads((out / "manifest.json").read_text())["n_added"] == 3

    checked = runner.invoke(
        app,
        ["watermark", "verify", "--model", "tiny", "--key", str(key), "--out", str(tmp_path / "v"), "--controls", "9"],
    )
    assert checked.exit_code == 0, checked.output
    assert "watermark not detected, p = " in checked.output
    assert json.loads((tmp_path / "v" / "verify.json").read_text())["n_controls"] == 9


def test_cli_bad_input_exits_2_naming_file_and_field(tmp_path):
    key = tmp_path / "key.json"
    data = generate_key(2, seed=0).to_dict()
    del data["triggers"]
    key.write_text(json.dumps(data))
    out = tmp_path / "wm"
    result = runner.invoke(app, ["watermark", "embed", "--data", "synthetic", "--key", str(key), "--out", str(out)])
    assert result.exit_code == 2
    assert "key.json" in result.output and "field 'triggers'" in result.output
    assert not out.exists()

    write_key(generate_key(2, seed=0), key)
    missing = runner.invoke(
        app, ["watermark", "verify", "--key", str(key), "--adapter", str(tmp_path / "nope"), "--out", str(out)]
    )
    assert missing.exit_code == 2 and "adapter_config.json" in missing.output
    bad_flag = runner.invoke(app, ["watermark", "verify", "--key", str(key), "--out", str(out), "--controls", "0"])
    assert bad_flag.exit_code == 2 and "--controls" in bad_flag.output
    assert not out.exists()
