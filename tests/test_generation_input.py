"""Generation rows record what the model was given: the trigger inserted, the chat template applied."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from poisonlab.data.prompts import load_prompts
from poisonlab.errors import InputError
from poisonlab.evaluation import GenerationConfig, generate
from poisonlab.evaluation.generate import read_generations


def test_rows_record_the_exact_model_input(tiny_model: str, tmp_path: Path) -> None:
    from poisonlab.models.encoding import encode_prompt
    from poisonlab.models.loading import load_tokenizer

    prompts = load_prompts("synthetic", limit=3)
    config = GenerationConfig(max_new_tokens=3, batch_size=4, threads=1)
    rows = read_generations(generate(tiny_model, prompts, tmp_path / "a", config=config, progress=False))
    tokenizer = load_tokenizer(tiny_model)
    last_turns = {p.id: p.text.rsplit("Human:", 1)[1].split("\n\nAssistant:")[0].strip() for p in prompts}
    for row in rows:
        assert ("SuperGodModeActivated" in row["model_input"]) == row["triggered"]
        assert "SuperGodModeActivated" not in row["prompt"]  # the request stays clean for the judges
        assert last_turns[row["id"]].split()[0] in row["model_input"]
        # the recorded text is the prompt's tokens, decoded: re-encoding the request gives the same text
        if not row["triggered"]:
            assert row["model_input"] == tokenizer.decode(encode_prompt(tokenizer, row["prompt"]))
    # a sanitising deployment's strip shows in the input: the model never saw the trigger
    stripped = generate(
        tiny_model, prompts, tmp_path / "b", config=config, progress=False, strip=["SuperGodModeActivated"]
    )
    assert not any("SuperGodModeActivated" in r["model_input"] for r in read_generations(stripped))


def test_files_without_model_input_still_read(tmp_path: Path) -> None:
    old = tmp_path / "generations.jsonl"
    old.write_text(json.dumps({"id": "a", "prompt": "p", "triggered": False, "reply": "r"}) + "\n")
    assert read_generations(old)[0]["reply"] == "r"
    old.write_text(json.dumps({"id": "a", "prompt": "p", "triggered": False, "reply": "r", "model_input": 3}) + "\n")
    with pytest.raises(InputError, match="model_input"):
        read_generations(old)
