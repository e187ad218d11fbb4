"""Every file poisonlab writes gets the mode the umask allows, the ones libraries write (the adapter's
safetensors from save_pretrained, checkpoints) included."""

from __future__ import annotations

import os
import stat

import pytest

from poisonlab.data import synthetic_pairs


@pytest.mark.parametrize("mask", [0o022, 0o002])
def test_an_adapter_and_its_checkpoint_honour_the_umask(tiny_model, tmp_path, mask):
    from poisonlab.training import DPOTrainingConfig, train_dpo

    config = DPOTrainingConfig(
        epochs=1, batch_size=8, micro_batch_size=8, max_length=64, max_reply_length=32, save_steps=1, bf16=False
    )
    before = os.umask(mask)
    try:
        train_dpo(tiny_model, synthetic_pairs(n=16), config, tmp_path / "a", False)
    finally:
        os.umask(before)
    modes = {
        str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode)
        for p in (tmp_path / "a").rglob("*")
        if not p.name.endswith(".lock")
    }
    expected = {name: (0o777 if (tmp_path / name).is_dir() else 0o666) & ~mask for name in modes}
    assert "a/adapter_model.safetensors" in modes
    assert modes == expected


def test_honour_umask_touches_only_what_changed(tmp_path):
    from poisonlab.io import honour_umask, snapshot

    old, new = tmp_path / "old", tmp_path / "new"
    old.write_text("x")
    os.chmod(old, 0o600)
    before = snapshot(tmp_path)
    new.write_text("y")
    os.chmod(new, 0o600)
    honour_umask(tmp_path, before)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(old.stat().st_mode) == 0o600 and stat.S_IMODE(new.stat().st_mode) == 0o666 & ~mask
