"""`jsweep report`: ranking, per-axis means, the score it picks, plots and errors, on sweep
directories written in the launcher's formats (summary.json, cell.json, history.jsonl)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from jsweep.tools.report import by_axis, find_sweep, load_sweep, pick_metric, ranked, read_history, write_report
from tests.support.cellstate import summary_row, write_cell, write_summary
from tests.support.sweeps import run_jsweep

SCORES = {("dolly", "1e-05"): 0.30, ("dolly", "0.0001"): 0.40, ("oasst", "1e-05"): 0.20, ("oasst", "0.0001"): 0.50}


def make_sweep(
    root: Path, scores: dict[tuple[str, str], float], name: str = "2026-11-23_10-00-00", key: str = "llm_jp_eval/AVG"
) -> Path:
    """A finished 2x2 sweep as the launcher leaves it on disk."""
    rows = []
    for i, ((dataset, lr), score) in enumerate(scores.items()):
        overrides = [f"dataset={dataset}", f"lr={lr}"]
        cell_dir = write_cell(
            root / "cells" / f"cell{i:08d}",
            cell={"cell_id": f"cell{i:08d}", "spec": {"overrides": overrides}},
            history=[{"step": step, "attempt": 1, "train/loss": 3.0 - step * score} for step in (1, 2, 3)],
        )
        rows.append(
            summary_row(
                i,
                f"cell{i:08d}",
                cell_dir,
                " ".join(overrides),
                {key: score, "llm_jp_eval/NLI": score / 2, "llm_jp_eval/RC": score, "eval/loss": 2.0 - score + i / 100},
                seconds=10.0,
                run_id=None,
                error="",
            )
        )
    return write_summary(root / "sweeps" / name, rows, sweep_id=name)


def test_cells_are_ranked_and_each_axis_value_is_averaged(tmp_path):
    sweep_dir = make_sweep(tmp_path / "outputs", SCORES)
    out, text = write_report(sweep_dir)
    assert "Score: `llm_jp_eval/AVG` (higher is better)" in text
    ranked_rows = [l for l in text.splitlines() if l.startswith("| ") and "FINISHED" in l]
    assert [r.split(" | ")[2:4] for r in ranked_rows] == [
        ["oasst", "0.0001"],
        ["dolly", "0.0001"],
        ["dolly", "1e-05"],
        ["oasst", "1e-05"],
    ]
    cells = load_sweep(sweep_dir)
    lrs = {g["value"]: g for g in by_axis(cells, "lr", "llm_jp_eval/AVG")}
    assert lrs["0.0001"]["mean"] == pytest.approx(0.45) and lrs["1e-05"]["mean"] == pytest.approx(0.25)
    assert (lrs["0.0001"]["best"], lrs["0.0001"]["worst"]) == (0.5, 0.4)
    # two cells per lr that disagree by more than the lr gap: no lr is marked as the better one
    assert lrs["0.0001"]["low"] < lrs["1e-05"]["high"] and not lrs["0.0001"]["clear"]
    assert "| 0.0001 | 2 | 0.4500 |" in text and "**0.0001**" not in text
    # single cells with no evaluation samples on disk: no interval, so no winner is declared
    assert "**No clear winner:** no interval for these scores" in text and "**0.5000**" not in text
    for name in ("scores.png", "axes.png", "tasks.png", "loss.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    rows = list(csv.DictReader((out / "cells.csv").read_text().splitlines()))
    assert len(rows) == 4 and {r["dataset"] for r in rows} == {"dolly", "oasst"}
    assert float(rows[3]["llm_jp_eval/AVG"]) == 0.50


def test_a_benchmark_on_which_all_cells_tie_is_kept_and_nothing_is_ranked(tmp_path):
    tied = dict.fromkeys(SCORES, 0.0)  # a tiny model scores 0 on every task
    sweep_dir = make_sweep(tmp_path / "outputs", tied)
    cells = load_sweep(sweep_dir)
    assert pick_metric(cells, None) == "llm_jp_eval/AVG"  # never each cell's own eval/loss on a dataset grid
    _, text = write_report(sweep_dir, with_plots=False)
    assert "**All cells tie:** every cell scores 0.0000 on `llm_jp_eval/AVG`" in text
    assert "Best:" not in text and "**" not in text.split("## Conditions")[1].split("## By")[0]
    assert pick_metric(cells, "eval/loss") == "eval/loss"  # asked for by name: used as is, but not ranked
    _, text = write_report(sweep_dir, "eval/loss", with_plots=False)
    assert "**Not ranked:** `eval/loss` is measured on each cell's own data" in text and "## By `dataset`" not in text


def test_a_loss_on_each_cells_own_data_ranks_only_a_grid_that_keeps_the_data(tmp_path):
    from jsweep.tools.report import comparable

    assert not comparable("eval/loss", ["dataset", "lr"]) and comparable("eval/loss", ["lr", "seed"])
    assert not comparable("eval/loss", ["dataset.n"]) and comparable("llm_jp_eval/AVG", ["dataset"])
    assert comparable("heldout/loss", ["dataset"])
    sweep_dir = make_sweep(tmp_path / "outputs", {("dolly", "1e-05"): 0.0, ("dolly", "0.0001"): 0.0})
    cells = load_sweep(sweep_dir)
    assert pick_metric(cells, None) == "eval/loss"  # one dataset: its held-out split is shared


def write_predictions(cell_dir: Path, correct: list[int]) -> None:
    """An llm-jp-eval result as the evaluator leaves it: per-sample predictions and the task list."""
    (cell_dir / "predictions").mkdir(parents=True, exist_ok=True)
    with open(cell_dir / "predictions" / "llm_jp_eval.jsonl", "w") as f:
        for i, ok in enumerate(correct):
            f.write(
                json.dumps(
                    {"task": "jnli", "pred": "entailment" if ok else "neutral", "gold": "entailment", "input": str(i)}
                )
                + "\n"
            )
    (cell_dir / "llm_jp_eval_results.json").write_text(json.dumps({"tasks": {"jnli": {"exact_match": 0}}}))


def test_bootstrap_intervals_over_samples_and_a_winner_only_when_they_clear(tmp_path):
    from jsweep.eval.llm_jp_eval.checks import bootstrap_interval as bootstrap_llm_jp_eval

    # jnli alone is part of llm-jp-eval's task set: the average is AVG_partial, never AVG
    scores = {("dolly", "1e-05"): 0.9, ("oasst", "1e-05"): 0.1}
    sweep_dir = make_sweep(tmp_path / "outputs", scores, key="llm_jp_eval/AVG_partial")
    cells = {c.label: c for c in load_sweep(sweep_dir)}
    write_predictions(cells["dataset=dolly lr=1e-05"].cell_dir, [1] * 36 + [0] * 4)  # 0.9 on 40 samples
    write_predictions(cells["dataset=oasst lr=1e-05"].cell_dir, [1] * 4 + [0] * 36)  # 0.1
    assert bootstrap_llm_jp_eval(cells["dataset=dolly lr=1e-05"], "llm_jp_eval/AVG") is None
    lo, hi = bootstrap_llm_jp_eval(cells["dataset=dolly lr=1e-05"], "llm_jp_eval/AVG_partial")
    assert 0.75 < lo < 0.9 < hi <= 1.0
    out, text = write_report(sweep_dir, with_plots=True)
    assert "**Best: dolly** (its interval clears the runner-up's)" in text, text
    row = next(l for l in text.splitlines() if l.startswith("| 1 |"))
    assert "| **0.9000** | [0.8" in row and "bootstrap" not in row
    cond = json.loads((out / "conditions.json").read_text())
    assert cond["winner"] == "dolly" and cond["conditions"][0]["basis"] == "bootstrap over samples"
    # close scores on few samples: intervals overlap, no winner
    close = make_sweep(
        tmp_path / "close", {("dolly", "1e-05"): 0.6, ("oasst", "1e-05"): 0.5}, key="llm_jp_eval/AVG_partial"
    )
    cc = {c.label: c for c in load_sweep(close)}
    write_predictions(cc["dataset=dolly lr=1e-05"].cell_dir, [1] * 6 + [0] * 4)
    write_predictions(cc["dataset=oasst lr=1e-05"].cell_dir, [1] * 5 + [0] * 5)
    _, text = write_report(close, with_plots=False)
    assert "**No clear winner:** the intervals of the two best overlap" in text and "**0.6000**" not in text


def make_replicated_sweep(root: Path, means: dict[str, float], spread: float) -> Path:
    """A dataset x seed sweep: three seeds per dataset, scores mean ± spread."""
    rows, i = [], 0
    for dataset, m in means.items():
        for seed, d in zip((0, 1, 2), (-spread, 0.0, spread)):
            cell_dir = write_cell(root / "cells" / f"cell{i:08d}")
            overrides = [f"dataset={dataset}", f"seed={seed}"]
            rows.append(
                summary_row(
                    i, f"cell{i:08d}", cell_dir, " ".join(overrides), {"llm_jp_eval/AVG": m + d}, overrides=overrides
                )
            )
            i += 1
    return write_summary(root / "sweeps" / "rep", rows, sweep_id="rep")


def test_seeds_are_replicates_pooled_as_mean_and_interval(tmp_path):
    from jsweep.tools.report import conditions, mean_interval

    sweep_dir = make_replicated_sweep(tmp_path / "a", {"dolly": 0.50, "oasst": 0.30}, 0.01)
    cells = load_sweep(sweep_dir)
    conds = {c.where[0]: c for c in conditions(cells, "llm_jp_eval/AVG", ["dataset", "seed"])}
    assert conds["dolly"].n == 3 and conds["dolly"].mean == pytest.approx(0.50)
    m, lo, hi = mean_interval([0.49, 0.50, 0.51])
    assert (conds["dolly"].low, conds["dolly"].high) == (pytest.approx(lo), pytest.approx(hi))
    assert hi - m == pytest.approx(4.303 * 0.01 / 3**0.5)  # t(2) * sd / sqrt(3)
    out, text = write_report(sweep_dir)
    assert "Replicates: `seed` (3 per condition)" in text and "## By `seed`" not in text
    assert "**Best: dolly** (its interval clears the runner-up's)" in text
    assert "| 1 | cell0000,cell0000,cell0000 | dolly | 3 | FINISHED | **0.5000** |" in text
    cond = json.loads((out / "conditions.json").read_text())
    assert cond["replicate_axes"] == ["seed"] and cond["conditions"][0]["replicates"] == {
        "seed=0": pytest.approx(0.49),
        "seed=1": 0.5,
        "seed=2": pytest.approx(0.51),
    }
    noisy = make_replicated_sweep(tmp_path / "b", {"dolly": 0.50, "oasst": 0.45}, 0.05)
    _, text = write_report(noisy, with_plots=False)
    assert "**No clear winner:** the intervals of the two best overlap" in text


def test_a_resumed_attempt_replaces_the_steps_it_repeated(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"step": 1, "attempt": 1, "train/loss": 5.0},
                {"step": 2, "attempt": 1, "train/loss": 4.0},
                {"step": 3, "attempt": 1, "train/loss": 3.9},
                {"step": 4, "attempt": 1, "eval/loss": 9.9},
            ]
        )
        + "\n"
        + '{"step": 4, "att'
        + "\n"
        + "\n".join(
            json.dumps(r)
            for r in [
                {"step": 3, "attempt": 2, "train/loss": 3.5},
                {"step": 3, "attempt": 2, "eval/loss": 3.6},
                {"step": 4, "attempt": 2, "train/loss": 3.0},
            ]
        )
    )
    rows = read_history(path)
    assert [(r["step"], r["train/loss"]) for r in rows] == [(1, 5.0), (2, 4.0), (3, 3.5), (4, 3.0)]
    assert rows[2]["eval/loss"] == 3.6 and rows[2]["attempt"] == 2
    assert "eval/loss" not in rows[3]  # attempt 1's value at step 4 did not survive the resume


def test_the_command_finds_the_newest_sweep_and_reports_errors(tmp_path):
    make_sweep(tmp_path / "outputs", SCORES, "2026-11-23_09-00-00")
    newest = make_sweep(tmp_path / "outputs2", SCORES, "x")
    assert find_sweep(tmp_path / "outputs2") == newest
    proc = run_jsweep(["report", "outputs", "--no-plots"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "## By `dataset`" in proc.stdout and proc.stdout.splitlines()[-1].endswith("/report")
    bad = run_jsweep(["report", "outputs", "--metric", "jnli"], tmp_path)
    assert bad.returncode == 2 and "no cell has metric 'jnli'" in bad.stderr
    none = run_jsweep(["report", "nowhere"], tmp_path)
    assert none.returncode == 2 and "no sweep found at nowhere" in none.stderr


def test_without_matplotlib_the_report_has_tables_only(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    out, text = write_report(make_sweep(tmp_path / "outputs", SCORES))
    assert "No plots: matplotlib is not installed" in text and "## By `lr`" in text
    assert not list(out.glob("*.png")) and (out / "cells.csv").exists()


def test_a_diverged_cell_is_ranked_last_and_left_out_of_the_means(tmp_path):
    scores = dict(SCORES)
    scores[("dolly", "0.0001")] = float("nan")  # this lr blew up on dolly
    sweep_dir = make_sweep(tmp_path / "outputs", scores)
    cells = load_sweep(sweep_dir)
    ranked_ids = [c.cell_id for c in ranked(cells, "llm_jp_eval/AVG")]
    assert ranked_ids == ["cell00000003", "cell00000000", "cell00000002", "cell00000001"]
    lrs = {g["value"]: g for g in by_axis(cells, "lr", "llm_jp_eval/AVG")}
    assert lrs["0.0001"]["n"] == 1 and lrs["0.0001"]["mean"] == 0.5
    _, text = write_report(sweep_dir, with_plots=False)
    assert "nan (diverged)" in text and "Diverged (`llm_jp_eval/AVG` is NaN" in text


def test_axes_come_from_the_summary_for_skipped_and_unstarted_cells(tmp_path):
    sweep_dir = make_sweep(tmp_path / "outputs", SCORES)
    summary = json.loads((sweep_dir / "summary.json").read_text())
    for row in summary["cells"]:
        row["overrides"] = row["label"].split()  # as the launcher records them now
    summary["cells"][0]["status"], summary["cells"][0]["metrics"] = "NOT_RUN", {}
    (sweep_dir / "summary.json").write_text(json.dumps(summary))
    for cell_json in (tmp_path / "outputs" / "cells").glob("*/cell.json"):
        cell_json.write_text(json.dumps({"spec": {"overrides": ["lr=1e-05"]}}))  # an earlier sweep's view
    cells = load_sweep(sweep_dir)
    assert [c.axes for c in cells] == [dict(zip(("dataset", "lr"), k)) for k in SCORES]
    _, text = write_report(sweep_dir, with_plots=False)
    assert "## Not finished" in text and "NOT_RUN" in text


def test_the_parent_run_gets_each_conditions_mean_and_interval(tmp_path):
    from mlflow.utils.validation import _validate_metric_name

    from jsweep.tools.report import parent_metrics

    out, _ = write_report(make_replicated_sweep(tmp_path, {"dolly": 0.50, "oasst": 0.30}, 0.01), with_plots=False)
    metrics = parent_metrics(json.loads((out / "conditions.json").read_text()))
    assert metrics["summary/dataset_dolly/llm_jp_eval/AVG/mean"] == pytest.approx(0.50)
    assert metrics["summary/dataset_dolly/llm_jp_eval/AVG/replicates"] == 3
    assert (
        metrics["summary/dataset_oasst/llm_jp_eval/AVG/ci_low"]
        < 0.30
        < metrics["summary/dataset_oasst/llm_jp_eval/AVG/ci_high"]
    )
    for name in metrics:
        _validate_metric_name(name)


def test_sizes_and_learning_rates_are_plotted_on_a_log_axis(tmp_path, monkeypatch):
    from jsweep.tools import report

    assert report.numeric_values(["100", "1000", "10000"]) == [100.0, 1000.0, 10000.0]
    assert report.numeric_values(["dolly", "oasst"]) is None and report.numeric_values(["0", "1"]) is None
    import matplotlib.axes

    scales = []
    real = matplotlib.axes.Axes.set_xscale
    monkeypatch.setattr(
        matplotlib.axes.Axes, "set_xscale", lambda self, v, **kw: (scales.append(v), real(self, v, **kw))
    )
    sweep_dir = make_sweep(tmp_path / "outputs", SCORES)
    out, _ = write_report(sweep_dir)
    assert scales == ["log"]  # lr: a quantity; dataset: categories
    assert (out / "axes.png").read_bytes()[:4] == b"\x89PNG"


def write_heldout(cell_dir: Path, nll: list[float], tokens: int = 10) -> float:
    """A cell's predictions/heldout.jsonl (per-record NLL over ``tokens`` reply tokens); returns its loss."""
    (cell_dir / "predictions").mkdir(parents=True, exist_ok=True)
    rows = [{"id": str(i), "nll": x * tokens, "tokens": tokens} for i, x in enumerate(nll)]
    (cell_dir / "predictions" / "heldout.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return sum(nll) / len(nll)


def set_metric(sweep_dir: Path, key: str, by_label: dict[str, float]) -> None:
    summary = json.loads((sweep_dir / "summary.json").read_text())
    for row in summary["cells"]:
        row["metrics"][key] = by_label[row["label"]]
    (sweep_dir / "summary.json").write_text(json.dumps(summary))


def test_cells_scored_on_one_shared_set_are_compared_by_a_paired_bootstrap(tmp_path):
    from jsweep.eval.heldout import paired_interval

    # 24 items of very different difficulty (the spread every cell shares), and a consistent gain of 0.05 nats
    # per item for dolly: each cell's own interval is wide (it measures the items), far wider than the gain
    hard = [3.0 + (i % 6) * 0.8 for i in range(24)]
    scores = {("dolly", "0.0001"): 0.0, ("oasst", "0.0001"): 0.0}
    sweep_dir = make_sweep(tmp_path / "outputs", scores, key="heldout/loss")
    cells = {c.label: c for c in load_sweep(sweep_dir)}
    noise = [0.01 * ((i * 7) % 5 - 2) for i in range(24)]  # small item-level disagreement, no trend
    loss = {
        "dataset=dolly lr=0.0001": write_heldout(cells["dataset=dolly lr=0.0001"].cell_dir, [h - 0.05 for h in hard]),
        "dataset=oasst lr=0.0001": write_heldout(
            cells["dataset=oasst lr=0.0001"].cell_dir, [h + n for h, n in zip(hard, noise)]
        ),
    }
    set_metric(sweep_dir, "heldout/loss", loss)
    cells = {c.label: c for c in load_sweep(sweep_dir)}
    lo, hi = paired_interval(cells["dataset=dolly lr=0.0001"], cells["dataset=oasst lr=0.0001"])
    assert -0.07 < lo <= hi < -0.03  # the gain, resolved
    assert paired_interval(cells["dataset=dolly lr=0.0001"], cells["dataset=dolly lr=0.0001"]) == (0.0, 0.0)
    out, text = write_report(sweep_dir, with_plots=False)
    assert "**Best: dolly** (-0.0496 [" in text and "paired over the same items: excludes 0" in text, text
    row = next(l for l in text.splitlines() if l.startswith("| 2 |"))
    assert "oasst" in row and "| +0.0496 [+0.04" in row and "]*" in row, row
    ci = json.loads((out / "conditions.json").read_text())["conditions"]
    assert ci[0]["high"] > ci[1]["low"]  # the cells' own intervals overlap: unpaired, nothing would be resolved
    # the same two cells with the gain on half the items and the loss on the other half: not resolved
    mixed = [h - 0.05 + (0.3 if i % 2 else -0.3) for i, h in enumerate(hard)]
    loss["dataset=dolly lr=0.0001"] = write_heldout(cells["dataset=dolly lr=0.0001"].cell_dir, mixed)
    set_metric(sweep_dir, "heldout/loss", loss)
    _, text = write_report(sweep_dir, with_plots=False)
    assert "**No clear winner:**" in text and "includes 0" in text, text
    # different items (another held-out set): no paired interval, the cells' own intervals decide
    write_heldout(cells["dataset=dolly lr=0.0001"].cell_dir, hard[:12])
    assert paired_interval(cells["dataset=dolly lr=0.0001"], cells["dataset=oasst lr=0.0001"]) is None
