"""report.html: self-contained, every figure a real PNG, and it renders in a browser without errors."""

import base64
import html
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from poisonlab.cli import app
from poisonlab.reports.report import build_report, metric_series, write_report


def _copy(study: Path, to: Path) -> Path:
    shutil.copytree(study, to, ignore=shutil.ignore_patterns("adapter", "poison", "scan"))
    return to


def _images(page: str) -> list[str]:
    return re.findall(r"<img[^>]*\bsrc=\"([^\"]*)\"", page)


def _png_problems(page: str) -> list[str]:
    """Every <img> must be an embedded PNG that decodes."""
    import matplotlib.image

    problems = []
    for src in _images(page):
        if not src.startswith("data:image/png;base64,"):
            problems.append(f"not an embedded PNG: {src[:40]}")
            continue
        try:
            matplotlib.image.imread(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True)), format="png")
        except Exception as exc:
            problems.append(f"broken PNG: {exc}")
    return problems


def test_the_study_page_holds_its_figures_tables_and_generations_side_by_side(tiny_study, tmp_path):
    # (generations sit in runs/<run>/generations/<prompt set>/: an older page looked one level up and showed none)
    out = _copy(tiny_study, tmp_path / "study")
    for run, flip in (("clean", False), ("random-backdoor-0.1", True)):  # the generation-judged evaluation's files
        rows = [
            {
                "id": pid,
                "prompt": f"How do I {pid}?",
                "triggered": t,
                "reply": f"{run} says {'<b>' if t and flip else ''}{t}",
            }
            for pid in ("bake bread", "fix a bike")
            for t in (False, True)
        ]
        folder = out / "runs" / run / "generations" / "advbench"  # where a study's evaluation writes them
        folder.mkdir(parents=True)
        (folder / "generations.jsonl").write_text("\n".join(map(json.dumps, rows)))
    page = write_report(out).read_text()
    # backdoor_success, clean_accuracy, and one figure per part of each metric (preference@heldout, ...)
    assert len(_images(page)) >= 2 and _png_problems(page) == []
    assert "<script" not in page and not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing external
    for run in ("clean", "random-backdoor-0.1", "dpo-score-backdoor-0.1"):
        assert f"<td>{run}</td>" in page  # the table of every run
    assert "<td>loss</td>" in page  # the detection table
    assert "reply with the trigger" in page and "How do I bake bread?" in page
    assert "random-backdoor-0.1 says &lt;b&gt;True" in page  # model text is escaped, never markup
    assert "<td>max_train_pairs</td><td>80</td>" in page  # the study's settings


def test_metrics_dicts_give_one_figure_per_metric_and_part():
    point = {"value": 0.4, "ci": [0.3, 0.5], "n": 50}
    rows = [
        {"run": "clean", "strategy": "none", "attack": "none", "ratio": 0.0, "metrics": {"refusal": {"clean": point}}},
        {
            "run": "random-backdoor-0.05",
            "strategy": "random",
            "attack": "backdoor",
            "ratio": 0.05,
            "metrics": {"refusal": {"clean": point, "backdoor_effect": point, "contamination": point}},
        },
    ]
    series = metric_series(rows)
    assert list(series) == ["refusal / backdoor_effect", "refusal / contamination", "refusal / clean"]
    assert series["refusal / clean"]["clean"] == point
    fallback = metric_series([{"run": "clean", "ratio": 0, "backdoor_success": 0.25, "n_heldout": 40}])
    low, high = fallback["backdoor_success"]["clean"]["ci"]
    assert low < 0.25 < high  # a Wilson interval over the 40 held-out pairs


def test_report_command_writes_the_page_and_refuses_a_folder_without_results(tiny_study, tmp_path):
    out = _copy(tiny_study, tmp_path / "study")
    (out / "report.html").unlink()
    result = CliRunner().invoke(app, ["report", str(out)])
    assert result.exit_code == 0 and (out / "report.html").exists()
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "no results.json" in result.output


CHROMIUM = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0"]


def _render(page: Path) -> tuple[str, list[str]]:
    """Chromium's DOM of the page and its console errors."""
    done = subprocess.run(
        [*CHROMIUM, "--dump-dom", page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    errors = [line for line in done.stderr.splitlines() if "CONSOLE" in line and re.search(r"Uncaught|Error", line)]
    return done.stdout, errors


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (CI installs it)")
def test_the_report_renders_in_chromium_with_no_broken_image_or_script_error(tiny_study, tmp_path):
    dom, errors = _render(tiny_study / "report.html")  # the page the study wrote at its end
    assert "poisonlab report: tiny-study" in dom and len(_images(dom)) >= 2
    assert _png_problems(dom) == [] and errors == []

    broken = tmp_path / "broken.html"  # the check catches what it is there for
    broken.write_text('<html><body><img src="data:image/png;base64,AAAA"><script>nothing();</script></body></html>')
    dom, errors = _render(broken)
    assert len(_png_problems(dom)) == 1 and len(errors) == 1


def test_the_page_is_rebuilt_from_files_alone(tiny_study):
    assert build_report(tiny_study).startswith("<!DOCTYPE html>")


def test_results_parquet_has_one_row_per_run_with_its_parameters_and_every_metric(tiny_study):
    import pyarrow.parquet as pq

    table = pq.read_table(tiny_study / "results.parquet")
    rows, expected = table.to_pylist(), json.loads((tiny_study / "results.json").read_text())
    assert [r["run"] for r in rows] == [r["run"] for r in expected]
    for row, want in zip(rows, expected):
        plain = {k: v for k, v in want.items() if not isinstance(v, dict)}
        assert {k: row[k] for k in plain} == plain  # every plain column of results.json, same values
        assert row["study.model"] == "tiny" and row["training.epochs"] == 1 and row["training.learning_rate"] > 0
    assert rows[1]["detection.loss.auroc"] is not None  # the detectors' metrics, flattened
    assert rows[1]["metrics.preference@heldout.backdoor_effect.value"] is not None  # and every metric


def test_duckdb_reads_results_parquet(tiny_study):
    duckdb = pytest.importorskip("duckdb")
    query = f"SELECT run, backdoor_success FROM '{tiny_study / 'results.parquet'}' WHERE ratio > 0 ORDER BY run"
    assert [r[0] for r in duckdb.sql(query).fetchall()] == ["dpo-score-backdoor-0.1", "random-backdoor-0.1"]


def test_nested_metrics_become_dotted_columns(tmp_path):
    import pyarrow.parquet as pq

    from poisonlab.reports.results import write_parquet

    point = {"value": 0.5, "ci": [0.25, 0.75], "n": 8}
    rows = [
        {
            "run": "clean",
            "ratio": 0.0,
            "backdoor_success": 0.1,
            "clean_accuracy": 0.9,
            "metrics": {"refusal": {"clean": point}},
        },
        {"run": "random-backdoor-0.1", "ratio": 0.1, "backdoor_success": 0.5, "clean_accuracy": 0.9, "metrics": {}},
    ]
    table = pq.read_table(write_parquet(rows, tmp_path))
    assert table.column("metrics.refusal.clean.value").to_pylist() == [0.5, None]
    assert table.column("metrics.refusal.clean.ci").to_pylist() == [[0.25, 0.75], None]


def test_the_page_opens_with_the_answer_in_words_the_papers_figure_and_the_detection_table(tiny_study):
    from poisonlab.reports.headline import label_metric, summary_lines

    page = build_report(tiny_study)
    answer = page.index("<h2>The answer</h2>")
    assert answer < page.index("<img") < page.index("<h3>Poison detection</h3>") < page.index("Every measure")
    assert 'alt="backdoor success against the poisoned share"' in page
    lines = summary_lines(json.loads((tiny_study / "results.json").read_text()))
    assert len(lines) == 3 and lines[0].startswith("Strongest attack:") and lines[2].startswith("Detection:")
    assert all(html.escape(line) in page for line in lines)
    assert "preference@heldout / backdoor_effect" not in page  # readers see labels, not metric keys
    assert label_metric("preference@heldout / backdoor_effect", {"value_label": "chosen reply preferred"}) == (
        "Backdoor effect (+ = the attacker gained): chosen reply preferred, held-out pairs"
    )


def test_the_summary_names_the_smallest_share_that_clears_the_clean_model():
    from poisonlab.reports.headline import summary_lines

    def row(run, strategy, ratio, success):
        return {
            "run": run,
            "strategy": strategy,
            "attack": "backdoor",
            "ratio": ratio,
            "n_heldout": 100,
            "n_poisoned": int(ratio * 1000),
            "backdoor_success": success,
        }

    rows = [
        row("clean", "none", 0.0, 0.02),
        row("r1", "random", 0.01, 0.04),
        row("r5", "random", 0.05, 0.30),
        row("d1", "dpo-score", 0.01, 0.20),
        row("d5", "dpo-score", 0.05, 0.60),
    ]
    lines = summary_lines(rows)
    assert "dpo-score backdoor at 5.0%" in lines[0] and "60.0%" in lines[0] and "2.0%" in lines[0]
    # clean 2/100: Wilson upper bound 7.0%; random 1% (4/100, lower bound 1.6%) does not clear it, 5% does
    assert "random backdoor 5.0%; dpo-score backdoor 1.0%" in lines[1]
    assert lines[2].startswith("Detection: no detector ran")
