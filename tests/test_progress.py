"""Off a terminal, progress is whole lines a log can read: no carriage-return frames."""

from poisonlab.progress import LineProgress, progress_bar


def test_off_a_terminal_progress_is_a_few_whole_lines(capsys, monkeypatch):
    monkeypatch.setenv("POISONLAB_PROGRESS_INTERVAL", "3600")  # a line at the start and one at the end
    bar = progress_bar(total=50, desc="train", unit="step", initial=10)
    assert isinstance(bar, LineProgress)  # pytest captures stderr: not a terminal
    for step in range(40):
        bar.update(1)
        bar.set_postfix(loss=f"{step:.2f}")
    bar.close()
    for _ in progress_bar(range(3), desc="scores", unit="batch", leave=False):
        pass
    err = capsys.readouterr().err
    assert "\r" not in err
    assert err.splitlines()[0].startswith("train: 10/50 step")
    assert err.splitlines()[1].startswith("train: 50/50 step") and "loss=39.00" in err.splitlines()[1]
    assert err.splitlines()[2:] == [line for line in err.splitlines()[2:] if line.startswith("scores: ")]
    assert len(err.splitlines()) == 4


def test_a_disabled_bar_writes_nothing(capsys):
    for _ in progress_bar(range(3), desc="x", disable=True):
        pass
    assert capsys.readouterr().err == ""
