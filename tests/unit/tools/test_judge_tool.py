"""`jsweep judge` and the launcher's after-sweep hook on hand-made sweeps (saved answers, no model):
judge overrides, summary and report updates, --pairwise, judge.defer, the key never written."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from jsweep.eval import judge as J
from jsweep.eval.answers import write_jsonl
from jsweep.eval.elyza import load_items
from jsweep.schema import JudgeSpec
from jsweep.tools import judge as T
from tests.support.cellstate import summary_row, write_cell, write_summary
from tests.support.judge_server import JudgeServer

KEY = "sk-tooltestkey-22222222222222222222"


def make_sweep(tmp: Path, judge: dict) -> tuple[Path, list[Path]]:
    items, _ = load_items({})
    rows, dirs = [], []
    for i, dataset in enumerate(("synthetic", "dolly")):
        d = tmp / "outputs" / "cells" / f"cell{i}"
        write_jsonl(
            d / "elyza_tasks_100" / "answers.jsonl",
            [{**it, "answer": f"{dataset}の答え{k}", "prompt": it["input"]} for k, it in enumerate(items)],
        )
        write_cell(
            d,
            metrics={"eval/loss": 1.0 + i},
            cell={"spec": {"judge": judge}},
            status={"status": "FINISHED", "metrics": {"eval/loss": 1.0 + i}},
        )
        rows.append(
            summary_row(
                i, f"cell{i}", d, f"dataset={dataset}", {"eval/loss": 1.0 + i}, overrides=[f"dataset={dataset}"]
            )
        )
        dirs.append(d)
    return write_summary(tmp / "outputs" / "sweeps" / "s1", rows), dirs


def test_jsweep_judge_judges_saved_answers_updates_summary_and_report_and_compares(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TOOL_JUDGE_KEY", KEY)

    def script(prompt, n):
        if "# 回答 A" in prompt:
            a = prompt.split("# 回答 A")[1].split("# 回答 B")[0]
            return "[[A]]" if "synthetic" in a else "[[B]]"
        return "5" if "synthetic" in prompt.split("# 回答")[-1] else "2"

    with JudgeServer(script) as server:
        sweep, dirs = make_sweep(tmp_path, {"base_url": "http://127.0.0.1:9/v1", "model": "old"})
        rc = T.main(
            [
                str(sweep),
                f"judge.base_url={server.base_url}",
                "judge.model=new-judge",
                "judge.api_key_env=TOOL_JUDGE_KEY",
                "judge.backoff=0.01",
                "--pairwise",
                "dataset=synthetic",
                "dataset=dolly",
            ]
        )
        assert rc == 0, capsys.readouterr().err
        assert len(server.requests) == 2 * 5 + 2 * 5
        assert {b["model"] for b in server.requests} == {"new-judge"}
        rc = T.main(
            [
                str(sweep),
                f"judge.base_url={server.base_url}",
                "judge.model=new-judge",
                "judge.api_key_env=TOOL_JUDGE_KEY",
            ]
        )
        assert rc == 0 and len(server.requests) == 20  # all cached
    summary = json.loads((sweep / "summary.json").read_text())
    scores = [c["metrics"]["elyza_tasks_100/score"] for c in summary["cells"]]
    assert scores == [5.0, 2.0] and summary["cells"][0]["metrics"]["eval/loss"] == 1.0
    assert json.loads((dirs[0] / "status.json").read_text())["metrics"]["elyza_tasks_100/score"] == 5.0
    (g,) = json.loads((sweep / "pairwise" / "results.json").read_text())["groups"]
    assert g["win_rate"] == 1.0 and g["n"] == 5
    report = (sweep / "report" / "report.md").read_text()
    assert "Score: `elyza_tasks_100/score`" in report  # ranked by the judged score
    assert "## ELYZA-tasks-100" in report and "new-judge" in report and "**1.000**" in report
    assert KEY not in "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())


def test_bad_judge_overrides_and_a_missing_key_are_one_line_errors(tmp_path, monkeypatch, capsys):
    sweep, _ = make_sweep(tmp_path, {})
    assert T.main([str(sweep), "judge=nope"]) == 2
    assert "unknown judge 'nope' (choose from: local, openai)" in capsys.readouterr().err
    assert T.main([str(sweep), "judge.colour=red"]) == 2
    assert "unknown key 'judge.colour'" in capsys.readouterr().err
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert T.main([str(sweep), "judge=openai"]) == 2
    assert "OPENAI_API_KEY is not set" in capsys.readouterr().err


def test_after_sweep_respects_defer_and_judges_otherwise(tmp_path):
    with JudgeServer(lambda p, n: "[[C]]" if "# 回答 A" in p else "4") as server:
        sweep, dirs = make_sweep(tmp_path, {})
        base = {
            "base_url": server.base_url,
            "model": "m",
            "backoff": 0.01,
            "pairwise": {"a": "dataset=synthetic", "b": "dataset=dolly"},
        }

        def cells(**kw):
            spec = SimpleNamespace(judge=JudgeSpec(**{**base, **kw}), eval={"elyza_tasks_100": {}})
            return [SimpleNamespace(spec=spec, cell_dir=d) for d in dirs]

        T.after_sweep(sweep, cells(defer=True), say=lambda m: None)
        assert server.requests == []
        T.after_sweep(sweep, cells(), say=lambda m: None)
        assert len(server.requests) == 20
        T.after_sweep(sweep, cells(), say=lambda m: None)  # nothing missing: nothing asked
        assert len(server.requests) == 20
    summary = json.loads((sweep / "summary.json").read_text())
    assert [c["metrics"]["elyza_tasks_100/score"] for c in summary["cells"]] == [4.0, 4.0]
    assert json.loads((sweep / "pairwise" / "results.json").read_text())["groups"][0]["ties"] == 5
    assert J.options(None)["prompt"] == "elyza"
