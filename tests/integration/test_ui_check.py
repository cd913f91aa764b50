"""The MLflow UI in a real headless browser (Debian's chromium): after a sweep, the runs table opens on
the sweep's saved view with the grid axes and headline scores as columns, and the compare page shows
them too. Skipped where chromium is not installed (apt-get install chromium)."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.support.sweeps import run_jsweep

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (shutil.which("chromium") or shutil.which("chromium-browser")),
        reason="needs chromium (apt-get install chromium)",
    ),
]


def test_runs_table_and_compare_page_show_axes_and_headline_scores(tmp_path, tiny_model_dir):
    grid = [
        "-m",
        "dataset=dolly,oasst",
        "lr=1e-5,1e-4",
        "train.max_steps=1",
        "eval=[llm_jp_eval]",
        "eval.llm_jp_eval.max_num_samples=2",
        "eval.llm_jp_eval.tasks=[jnli,jcommonsenseqa]",
    ]
    proc = run_jsweep(grid, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "viewStateShareKey=" in proc.stdout
    check = run_jsweep(["ui-check", "--out", str(tmp_path / "ui")], tmp_path, timeout=600)
    report = json.loads((tmp_path / "ui" / "ui_check.json").read_text())
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]
    assert set(report["expected"]) == {"dataset", "lr", "llm_jp_eval/AVG"}
    assert all(v["runs_table"] and v["compare"] for v in report["expected"].values()), report
    html = (tmp_path / "ui" / "runs.html").read_text()
    assert "Headline/1_llm_jp_eval/AVG" in html and "data/contamination" not in html.split("Parameters")[0]
    assert len(report["run_names"]) == 4 and len(set(report["run_names"])) == 4
    assert all(n <= 40 for n in report["params_per_run"])
    for png in ("runs.png", "compare.png"):
        assert (tmp_path / "ui" / png).read_bytes()[:4] == b"\x89PNG"
