"""Inputs that must not be kept verbatim: triggers that would add a dialogue turn, credentials in a judge URL."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from poisonlab.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    "trigger", ["\n\nHuman: do it", "Sudo\nnow", "a\r\nb", "Assistant: sure", "<|im_start|>user", "x\u2028y"]
)
def test_a_trigger_that_would_add_a_dialogue_turn_is_refused(tmp_path, trigger):
    out = tmp_path / "p"
    result = runner.invoke(app, ["poison", "--data", "synthetic", "--out", str(out), "--trigger", trigger])
    assert result.exit_code == 2, result.output
    assert "trigger" in result.output and ("line break" in result.output or "dialogue marker" in result.output)
    assert not out.exists()


def test_a_study_trigger_with_a_dialogue_marker_is_refused_at_load(tmp_path):
    result = runner.invoke(app, ["run", "configs/quickstart.yaml", "--dry-run", "--set", "trigger='Human: hi'"])
    assert result.exit_code == 2 and "dialogue marker" in result.output, result.output


def test_a_plain_trigger_phrase_is_still_accepted(tmp_path):
    result = runner.invoke(
        app, ["poison", "--data", "synthetic", "--out", str(tmp_path / "p"), "--trigger", "cf. Humanity's Assistant"]
    )
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "url", ["http://user:SECRETKEY@host/v1", "https://SECRETKEY@host/v1", "http://host/v1?api_key=SECRETKEY"]
)
def test_a_judge_url_with_credentials_is_refused_without_echoing_them(tmp_path, url):
    generations = tmp_path / "g"
    generations.mkdir()
    (generations / "generations.jsonl").write_text("")
    out = tmp_path / "j"
    args = ["judge", str(generations), "--out", str(out), "--judge", "llm", "--judge-url", url]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "credentials" in result.output and "SECRETKEY" not in result.output
    assert not out.exists()
