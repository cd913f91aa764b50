"""End to end on the embedded default: a small sweep scored by a local judge (a scripted
OpenAI-compatible server on 127.0.0.1), pairwise win rate, grading export/import, samples, report;
a judge outage that loses no answer and `jsweep judge` completing the judgments later."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tests.support.judge_server import JudgeServer
from tests.support.sweeps import finish, run_jsweep, start_jsweep

KEY = "sk-e2etestkey-1111111111111111111111"
GEN = ["eval.samples.max_new_tokens=12", "eval.human_eval.max_new_tokens=12"]
FAST = [
    "train.max_steps=2",
    "eval.elyza_tasks_100.max_new_tokens=12",
    "judge.model=judge-model",
    "judge.api_key_env=JSWEEP_E2E_JUDGE_KEY",
    "judge.backoff=0.01",
    "judge.backoff_max=0.02",
]


def script(prompt: str, n: int):
    if "# 回答 A" in prompt:
        return "同程度です。\n[[C]]" if "りんご" in prompt else "[[A]]"
    if "りんご" in prompt:
        return "採点不能"  # one unparseable judgment per cell
    return "3"


def summary_of(tmp: Path) -> dict:
    (path,) = sorted((tmp / "outputs" / "sweeps").glob("*/summary.json"), key=lambda p: p.stat().st_mtime)[-1:]
    return json.loads(path.read_text())


def all_text(tmp: Path) -> str:
    return "".join(p.read_bytes().decode("utf-8", errors="replace") for p in tmp.rglob("*") if p.is_file())


def test_sweep_judged_pairwise_graded_and_sampled(tmp_path, mlflow_client_for):
    with JudgeServer(script) as server:
        sweep = [
            "-m",
            "launcher.concurrency=2",  # both cells at once (bookkeeping: not in the cell id; the judge's
            # answers depend on the prompt alone, and the pairwise judgments come after both cells)
            "dataset=dolly,oasst",
            "eval=[elyza_tasks_100,samples,human_eval]",
            *FAST,
            *GEN,
            f"judge.base_url={server.base_url}",
            "judge.pairwise={a:'dataset=dolly',b:'dataset=oasst'}",
        ]
        proc = run_jsweep(sweep, tmp_path, JSWEEP_E2E_JUDGE_KEY=KEY)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        n_requests = len(server.requests)
        assert n_requests == 2 * 5 + 2 * 5  # 5 tasks per cell, and 5 pairs in both orders
        assert set(server.auth) == {f"Bearer {KEY}"}

        summary = summary_of(tmp_path)
        cells = summary["cells"]
        assert [c["status"] for c in cells] == ["FINISHED", "FINISHED"]
        for c in cells:
            m = c["metrics"]
            assert m["elyza_tasks_100/score"] == 3.0 and m["elyza_tasks_100/unparseable"] == 1
            assert m["elyza_tasks_100/dist/3"] == 4 and m["elyza_tasks_100/pending"] == 0
            assert m["samples/count"] == 4 and m["human_eval/answers"] == 5
            cell_dir = Path(c["log"]).parent
            assert len((cell_dir / "elyza_tasks_100" / "answers.jsonl").read_text().splitlines()) == 5
        sweep_dir = Path(cells[0]["log"]).parents[2] / "sweeps"
        sweep_dir = next(p.parent for p in sweep_dir.glob("*/summary.json"))
        pw = json.loads((sweep_dir / "pairwise" / "results.json").read_text())
        (g,) = pw["groups"]
        assert (g["wins"], g["ties"], g["losses"]) == (0, 5, 0)  # a judge that always prefers A: pure position bias
        assert g["win_rate"] == 0.5
        report = (sweep_dir / "report" / "report.md").read_text()
        for heading in (
            "## ELYZA-tasks-100",
            "## Pairwise: dataset=dolly vs dataset=oasst",
            "## Samples (prompt x cell)",
        ):
            assert heading in report
        assert "日本の四季" in report  # the prompts, side by side

        client = mlflow_client_for(tmp_path)
        run = client.get_run(cells[0]["run_id"])
        assert run.data.metrics["elyza_tasks_100/score"] == 3.0
        assert run.data.tags["elyza_tasks_100.judge_model"] == "judge-model"
        assert len(run.data.tags["elyza_tasks_100.judge_prompt_digest"]) == 16
        parent = client.get_run(summary["parent_run_id"])
        assert parent.data.metrics["pairwise/dataset:dolly_vs_dataset:oasst/win_rate"] == 0.5
        assert run.data.params["judge.model"] == "judge-model"  # a compared setting of judged cells

        # a re-run pays for nothing twice: every cell is finished, and no judgment is asked again
        again = run_jsweep(sweep, tmp_path, JSWEEP_E2E_JUDGE_KEY=KEY)  # the same sweep again
        assert again.returncode == 0 and again.stdout.count("skip: already finished") == 2
        assert len(server.requests) == n_requests

    # human grading: export a blinded, shuffled sheet (of the newest sweep: the re-run); fill it; import it
    sweep_dir = max((tmp_path / "outputs" / "sweeps").glob("*/summary.json"), key=lambda p: p.stat().st_mtime).parent
    proc = run_jsweep(["grade", "export", "outputs"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    sheet = sweep_dir / "grading" / "sheet.csv"
    raw = sheet.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Excel opens the Japanese text correctly
    with open(sheet, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10 and all(r["grade"] == "" for r in rows)
    assert not any(c["cell_id"] in raw.decode("utf-8-sig") for c in cells)  # blinded
    key = json.loads((sweep_dir / "grading" / "key.json").read_text())
    first_cell = cells[0]["cell_id"]
    for r in rows:  # the first cell is right on every question, the second on q01 only
        k = key["items"][r["item"]]
        r["grade"] = "1" if k["cell_id"] == first_cell or k["question_id"] == "q01" else "×"
    filled = tmp_path / "filled.csv"
    with open(filled, "w", encoding="utf-8-sig", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    proc = run_jsweep(["grade", "import", "outputs", str(filled)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = summary_of(tmp_path)
    acc = {c["cell_id"]: c["metrics"]["human_eval/accuracy"] for c in summary["cells"]}
    assert acc == {first_cell: 1.0, cells[1]["cell_id"]: 0.2}
    assert mlflow_client_for(tmp_path).get_run(cells[1]["run_id"]).data.metrics["human_eval/accuracy"] == 0.2
    report = (sweep_dir / "report" / "report.md").read_text()
    assert "## Human grading" in report and "0.200" in report

    # the key is never written anywhere: files, MLflow store, artifacts
    assert KEY not in all_text(tmp_path)


def test_judge_outage_keeps_the_answers_and_jsweep_judge_completes_later(tmp_path, mlflow_client_for):
    with JudgeServer(script) as dead:
        down_url = dead.base_url  # a port nobody listens on any more
    proc = run_jsweep(
        ["eval=[elyza_tasks_100]", *FAST, f"judge.base_url={down_url}", "judge.max_retries=1"],
        tmp_path,
        JSWEEP_E2E_JUDGE_KEY=KEY,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "not judged" in proc.stdout
    (cell,) = summary_of(tmp_path)["cells"]
    assert cell["status"] == "FINISHED" and cell["metrics"]["elyza_tasks_100/pending"] == 5
    assert "elyza_tasks_100/score" not in cell["metrics"]
    cell_dir = Path(cell["log"]).parent
    assert len((cell_dir / "elyza_tasks_100" / "answers.jsonl").read_text().splitlines()) == 5

    with JudgeServer(script) as server:
        proc = run_jsweep(["judge", "outputs", f"judge.base_url={server.base_url}"], tmp_path, JSWEEP_E2E_JUDGE_KEY=KEY)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert len(server.requests) == 5
        proc = run_jsweep(
            ["judge", str(cell_dir), f"judge.base_url={server.base_url}"], tmp_path, JSWEEP_E2E_JUDGE_KEY=KEY
        )
        assert proc.returncode == 0 and len(server.requests) == 5  # cached: nothing asked twice
    (cell,) = summary_of(tmp_path)["cells"]
    assert cell["metrics"]["elyza_tasks_100/score"] == 3.0 and cell["metrics"]["elyza_tasks_100/pending"] == 0
    run = mlflow_client_for(tmp_path).get_run(cell["run_id"])
    assert run.data.metrics["elyza_tasks_100/score"] == 3.0

    # the cell ran without human_eval: its saved model answers the question set afterwards, for graders
    # (a request for cells that do not exist is refused meanwhile: it only reads, so it runs at the same time)
    no_cells = start_jsweep(["grade", "answers", "outputs", "--cells", "zzz"], tmp_path)
    proc = run_jsweep(["grade", "answers", "outputs", "eval.human_eval.max_new_tokens=8"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert len((cell_dir / "human_eval" / "answers.jsonl").read_text().splitlines()) == 5
    (cell,) = summary_of(tmp_path)["cells"]
    assert cell["metrics"]["human_eval/answers"] == 5 and cell["metrics"]["elyza_tasks_100/score"] == 3.0
    sheet = next((tmp_path / "outputs" / "sweeps").glob("*/grading/sheet.csv"))
    assert (
        sheet.read_bytes().startswith(b"\xef\xbb\xbf") and len(sheet.read_text(encoding="utf-8-sig").splitlines()) > 5
    )
    bad = finish(no_cells)
    assert bad.returncode == 2 and "no finished cell" in bad.stderr
    assert KEY not in all_text(tmp_path)


def test_a_missing_key_is_refused_before_anything_runs(tmp_path):
    proc = run_jsweep(["eval=[elyza_tasks_100]", "judge=openai"], tmp_path, OPENAI_API_KEY="")
    assert proc.returncode != 0
    assert "environment variable OPENAI_API_KEY is not set" in proc.stderr + proc.stdout
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("status.json"))
