"""Evaluators describe themselves (jsweep.eval.declaration): every registered one declares its headline
scores and their direction, and the summary, the report, the run headlines and pre-flight read those
declarations. A small evaluator defined in tests/support/example_evaluator.py and registered in one line shows up
in all of them without touching any other code (the worked example of docs: adding an evaluator)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from jsweep import registries
from jsweep.eval.declaration import Declaration, Headline, declarations, lower_is_better
from tests.support.cellstate import summary_row, write_cell, write_summary
from tests.support.paths import ROOT


def test_every_registered_evaluator_declares_its_headlines_and_their_direction():
    seen = []
    for name in registries.EVALUATORS.in_order():
        d = registries.EVALUATORS.get(name)
        assert isinstance(d, Declaration) and d.name == name, name
        assert d.headlines or not d.scores, f"{name} declares no headline"
        for h in d.headlines:
            assert isinstance(h, Headline) and isinstance(h.higher_is_better, bool), h
            assert h.metric.startswith(f"{name}/"), h
            assert lower_is_better(h.metric) is (not h.higher_is_better), h
        for hook in ("check", "files", "contamination", "interval", "paired", "task_metrics"):
            assert getattr(d, hook) is None or callable(d.hook(hook)), (name, hook)
        assert hasattr(d.hook("implementation"), "evaluate"), name
        seen.append(name)
    # the registry file's order is the order the report tries headlines in
    assert seen[:2] == ["llm_jp_eval", "jglue"]
    assert lower_is_better("heldout/loss") and not lower_is_better("jglue/AVG")
    with pytest.raises(ValueError, match="declares no headline"):
        Declaration(name="x", implementation="m:C")
    with pytest.raises(ValueError, match="not under 'x/'"):
        Declaration(name="x", implementation="m:C", headlines=(Headline("y/score"),))


def test_declarations_and_their_hooks_import_no_torch():
    code = (
        "import sys\nfrom jsweep.eval.declaration import declarations\n"
        "for d in declarations():\n"
        "    for hook in ('implementation', 'check', 'files', 'contamination', 'interval', 'paired', 'task_metrics'):\n"
        "        getattr(d, hook) and d.hook(hook)\n"
        "heavy = [m for m in ('torch', 'transformers', 'lm_eval', 'datasets') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def example():
    """tests/support/example_evaluator.py, registered in one line (as jsweep/registries.py would list it)."""
    registries.EVALUATORS.register("sentence_nll", "tests.support.example_evaluator:EVALUATOR")
    try:
        yield registries.EVALUATORS.get("sentence_nll")
    finally:
        registries.EVALUATORS.unregister("sentence_nll")


def _spec(**evals):
    from jsweep.compose import compose_spec

    spec = compose_spec(["eval=[]"])
    spec.eval = dict(evals)
    return spec


def test_an_example_evaluator_is_checked_run_and_logged_through_its_declaration(example, tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from jsweep.eval.run import check_evaluators, evaluate_all
    from jsweep.job.context import CellContext
    from jsweep.tracking import NullTracker

    assert "sentence_nll" in [d.name for d in declarations()]
    assert check_evaluators(_spec(sentence_nll={})) == []
    assert check_evaluators(_spec(sentence_nll={"sentences": []})) == [
        "eval.sentence_nll: sentences is empty: nothing to score"
    ]
    assert check_evaluators(_spec(sentence_nll={"colour": 1}))[0].startswith(
        "eval.sentence_nll: unknown key 'eval.sentence_nll.colour'"
    )
    assert "sentence_nll" not in registries.JUDGED_EVALUATORS

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    ctx = CellContext(
        spec=_spec(sentence_nll={"sentences": ["東京は日本の首都です。", "猫が好きです。"]}),
        cell_dir=tmp_path,
        tracker=NullTracker(),
        device="cpu",
    )
    evaluate_all(ctx, model, tok)
    assert ctx.metrics["sentence_nll/nll"] > 0 and ctx.metrics["sentence_nll/tokens"] > 2
    rows = [json.loads(line) for line in (tmp_path / "predictions" / "sentence_nll.jsonl").read_text().splitlines()]
    assert [r["text"] for r in rows] == ["東京は日本の首都です。", "猫が好きです。"] and rows[0]["task"] == "sentences"
    assert sum(r["nll"] for r in rows) / sum(r["tokens"] for r in rows) == pytest.approx(
        ctx.metrics["sentence_nll/nll"]
    )
    assert (
        json.loads((tmp_path / "sentence_nll_results.json").read_text())["tokens"] == ctx.metrics["sentence_nll/tokens"]
    )


def test_the_summary_the_report_and_run_headlines_rank_a_declared_lower_is_better_score(example, tmp_path):
    from jsweep.runview import headline_metrics
    from jsweep.sweep import CellOutcome, PlannedCell, SweepResult, format_summary
    from jsweep.tools.report import load_sweep, pick_metric, ranked, write_report

    # the name alone would read as higher-is-better (no "loss"): only the declaration says otherwise
    assert lower_is_better("sentence_nll/nll")
    scores = {"dolly": 2.5, "oasst": 1.5, "alpaca": 3.5}
    spec = _spec(sentence_nll={})
    outcomes = [
        CellOutcome(
            PlannedCell(i, spec, f"cell{i:08d}", tmp_path / f"c{i}"),
            "FINISHED",
            1.0,
            None,
            metrics={"eval/loss": 2.0, "sentence_nll/nll": v},
        )
        for i, v in enumerate(scores.values())
    ]
    text = format_summary(SweepResult("s", tmp_path, None, outcomes))
    header = next(line for line in text.splitlines() if "status" in line)
    assert "sentence_nll/nll" in header and "llm_jp_eval/AVG" not in header  # only the selected evaluators
    assert "2.5000" in text and "1.5000" in text
    assert headline_metrics({"sentence_nll/nll": 1.5, "eval/loss": 2.0}) == {
        "Headline/4_sentence_nll/nll": 1.5,
        "Headline/5_eval/loss": 2.0,
    }

    # the report, on a sweep as the launcher leaves it: picks the declared headline, lower first
    rows = []
    for i, (dataset, v) in enumerate(scores.items()):
        cell_dir = write_cell(
            tmp_path / "out" / "cells" / f"cell{i:08d}",
            cell={"cell_id": f"cell{i:08d}", "spec": {"overrides": [f"dataset={dataset}"]}},
        )
        rows.append(
            summary_row(
                i,
                f"cell{i:08d}",
                cell_dir,
                f"dataset={dataset}",
                {"sentence_nll/nll": v, "train/final_loss": 1.0 + i},
                seconds=1.0,
                run_id=None,
                error="",
            )
        )
    sweep_dir = write_summary(tmp_path / "out" / "sweeps" / "s1", rows)
    cells = load_sweep(sweep_dir)
    # a shared evaluation set: comparable although the grid changes the data (train/final_loss is not)
    assert pick_metric(cells, None) == "sentence_nll/nll"
    assert [c.value("dataset") for c in ranked(cells, "sentence_nll/nll")] == ["oasst", "dolly", "alpaca"]
    _, report = write_report(sweep_dir, with_plots=False)
    assert "Score: `sentence_nll/nll` (lower is better)" in report
    ranked_rows = [line for line in report.splitlines() if line.startswith("| ") and "FINISHED" in line]
    assert [r.split(" | ")[2] for r in ranked_rows] == ["oasst", "dolly", "alpaca"]


@pytest.mark.parametrize(
    "name, module",
    [("llm_jp_eval", "jsweep.eval.llm_jp_eval.evaluator:Options"), ("jglue", "jsweep.eval.jglue.evaluator:Settings")],
)
def test_an_evaluators_options_dataclass_and_its_yaml_state_the_same_defaults(name, module):
    import yaml

    from jsweep.errors import ConfigError
    from jsweep.eval.declaration import resolve
    from jsweep.eval.options import defaults, typed_options

    cls = resolve(module)
    conf = yaml.safe_load((ROOT / "conf" / "eval" / f"{name}.yaml").read_text(encoding="utf-8"))
    assert defaults(cls) == conf
    assert typed_options(cls, conf, name) == cls()
    with pytest.raises(ConfigError, match=f"eval.{name}.batch_size"):
        typed_options(cls, {"batch_size": [1]}, name)


@pytest.mark.parametrize(
    "name, module",
    [
        ("heldout", "jsweep.eval.heldout:Options"),
        ("elyza_tasks_100", "jsweep.eval.elyza:Options"),
        ("samples", "jsweep.eval.samples:SamplesOptions"),
        ("human_eval", "jsweep.eval.samples:HumanEvalOptions"),
    ],
)
def test_the_other_evaluators_options_are_typed_the_same_way(name, module):
    test_an_evaluators_options_dataclass_and_its_yaml_state_the_same_defaults(name, module)
    check = registries.EVALUATORS.get(name).hook("check")
    assert check({"batch_size": "eight"})[0].startswith(f"eval.{name}.batch_size: expected an integer")
    assert "colour" in check({"colour": 1})[0]
