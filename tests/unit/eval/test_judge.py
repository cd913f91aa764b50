"""The LLM judge against a scripted OpenAI-compatible server on 127.0.0.1, through the real openai client:
parsing, aggregation, caching, retries, resumption after an outage, the both-orders pairwise rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jsweep.eval import answers as A
from jsweep.eval import elyza
from jsweep.eval import judge as J
from jsweep.eval import pairwise as P
from jsweep.eval.judge_prompts import PAIRWISE_PROMPTS, PROMPTS, parse_score, parse_verdict
from tests.support.judge_server import JudgeServer

KEY = "sk-testkey-000000000000000000000000"


def judge_opts(server: JudgeServer, **kw) -> dict:
    return J.options(
        {
            "base_url": server.base_url,
            "model": "judge-model",
            "api_key_env": "JSWEEP_TEST_JUDGE_KEY",
            "backoff": 0.01,
            "backoff_max": 0.02,
            "max_retries": 3,
            "timeout": 5.0,
            **kw,
        }
    )


@pytest.fixture(autouse=True)
def judge_key(monkeypatch):
    monkeypatch.setenv("JSWEEP_TEST_JUDGE_KEY", KEY)


def write_answers(cell_dir: Path, answers: list[str]) -> list[dict]:
    items, _ = elyza.load_items({}, builtin_model=True)
    rows = [{**it, "answer": a, "prompt": it["input"]} for it, a in zip(items, answers)]
    A.write_jsonl(cell_dir / "elyza_tasks_100" / "answers.jsonl", rows)
    return rows


def test_parse_score_accepts_the_usual_reply_shapes_and_counts_the_rest_as_unparseable():
    assert parse_score("4") == (4, "")
    assert parse_score(" 5。\n") == (5, "")
    assert parse_score("3点") == (3, "")
    assert parse_score('{"reason": "方向性は合っている", "score": 2}') == (2, "方向性は合っている")
    assert parse_score("計算は合っているが説明が不自然。\n点数: 4")[0] == 4
    assert parse_score("計算は合っているが説明が不自然。\n点数: 4")[1].startswith("計算は合っている")
    assert parse_score("<score>1</score>")[0] == 1
    assert parse_score("2\n指示に部分的に従っていない")[0] == 2
    assert parse_score("４")[0] == 4 and parse_score("点数：３")[0] == 3 and parse_score("4/5")[0] == 4
    for bad in ("わかりません", "10", "6", "", "1から5で言えば、3か4です", None):
        assert parse_score(bad)[0] is None, bad
    assert parse_verdict("Aの方が具体的。\n[[A]]") == "A"
    assert parse_verdict("[[B]] ... 最終判定: [[C]]") == "C"
    assert parse_verdict("引き分け") is None
    assert parse_verdict("B") == "B" and parse_verdict(" [A] ") == "A" and parse_verdict("Aです") is None


def test_fixture_is_elyza_tasks_100s_format():
    import csv

    with open(elyza.FIXTURE, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["input", "output", "eval_aspect"]
        rows = list(reader)
    assert len(rows) >= 5 and all(r["input"] and r["output"] and r["eval_aspect"] for r in rows)
    assert any("\n" in r["eval_aspect"] for r in rows)  # multi-line quoted fields, as upstream
    items, where = elyza.load_items({"source": "path", "path": str(elyza.FIXTURE.parent)})
    assert len(items) == len(rows) and where.endswith("elyza_tasks_100")


def test_scores_distribution_unparseable_table_and_cache(tmp_path):
    replies = {0: "4", 1: "5", 2: "わかりません", 3: "点数: 2", 4: "4"}

    def script(prompt, n):
        for i, row in enumerate(rows):
            if row["answer"] in prompt:
                return replies[i]
        return "?"

    rows = write_answers(tmp_path, [f"回答その{i}" for i in range(5)])
    logged: dict = {}
    with JudgeServer(script) as server:
        opts = judge_opts(server)
        metrics = elyza.judge_cell(tmp_path, opts, log_metrics=logged.update, say=lambda m: None)
        assert len(server.requests) == 5
        assert server.auth[0] == f"Bearer {KEY}"
        body = server.requests[0]
        assert body["model"] == "judge-model" and body["temperature"] == 0.0 and "logit_bias" not in body
        assert "# 正解例" in body["messages"][0]["content"] and "問題固有の採点基準" in body["messages"][0]["content"]
        # a second run pays for nothing: every judgment comes from the cell's cache
        again = elyza.judge_cell(tmp_path, opts, log_metrics=lambda m: None, say=lambda m: None)
        assert len(server.requests) == 5 and again == metrics
        items = A.read_jsonl(tmp_path / "elyza_tasks_100" / "items.jsonl")
        results = json.loads((tmp_path / "elyza_tasks_100" / "results.json").read_text())
        # another judge (or prompt) is asked again
        elyza.judge_cell(tmp_path, {**opts, "prompt": "elyza_reason"}, log_metrics=lambda m: None, say=lambda m: None)
        assert len(server.requests) == 10
        assert "点数: N" in server.requests[-1]["messages"][0]["content"]
    assert metrics["elyza_tasks_100/score"] == pytest.approx((4 + 5 + 2 + 4) / 4)
    assert metrics["elyza_tasks_100/unparseable"] == 1 and metrics["elyza_tasks_100/pending"] == 0
    assert [metrics[f"elyza_tasks_100/dist/{s}"] for s in range(1, 6)] == [0, 1, 0, 2, 1]
    assert logged == metrics
    assert [it["score"] for it in items] == [4, 5, None, 2, 4]
    assert items[2]["status"] == "unparseable" and items[2]["reason"] == "わかりません"
    assert {it["judge_prompt_digest"] for it in items} == {PROMPTS["elyza"].digest}
    assert results["judge_model"] == "judge-model" and results["judge_prompt_digest"] == PROMPTS["elyza"].digest
    assert KEY not in "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())


def test_rate_limits_and_server_errors_are_retried_with_backoff(tmp_path):
    script_codes = {1: 429, 2: 500, 3: 503}
    with JudgeServer(lambda prompt, n: script_codes.get(n, "3")) as server:
        slept: list[float] = []
        judge = J.Judge(judge_opts(server, backoff=0.5, backoff_max=1.5), sleep=slept.append)
        assert judge.complete("採点してください") == "3"
        assert len(server.requests) == 4
        assert slept == [0.5, 1.0, 1.5]  # doubled each time, capped at backoff_max
    with JudgeServer(lambda prompt, n: 500) as server:
        judge = J.Judge(judge_opts(server, max_retries=2), sleep=lambda s: None)
        with pytest.raises(J.JudgeUnavailable, match="after 3 attempt"):
            judge.complete("x")
        assert len(server.requests) == 3
    with JudgeServer(lambda prompt, n: 400 if "too long" in prompt else "4") as server:  # one bad request
        cache = J.JudgmentCache(tmp_path / "j.jsonl")
        out = J.judge_all(J.Judge(judge_opts(server), sleep=lambda s: None), ["ok 1", "too long", "ok 2"], cache)
        assert out.replies == ["4", None, "4"] and out.pending == 1 and "HTTP 400" in out.error
        assert len(server.requests) == 3  # not retried, and the others went on
    with JudgeServer(lambda prompt, n: 401) as server:  # a refused key is not retried
        with pytest.raises(J.JudgeUnavailable, match="HTTP 401"):
            J.Judge(judge_opts(server), sleep=lambda s: None).complete("x")
        assert len(server.requests) == 1


def test_resumes_after_the_judge_stops_mid_judging_and_loses_no_answer(tmp_path):
    rows = write_answers(tmp_path, [f"答え{i}" for i in range(5)])
    import threading

    def script(prompt, n):  # two judgments, then the server goes away (later requests: connection refused)
        if n > 2:
            threading.Thread(target=server.stop).start()
            return 503
        return "3"

    server = JudgeServer(script)
    with server:
        port = server.port
        metrics = elyza.judge_cell(
            tmp_path, judge_opts(server, concurrency=1, max_retries=2), log_metrics=lambda m: None, say=lambda m: None
        )
        assert len(server.requests) == 3
    assert metrics["elyza_tasks_100/pending"] == 3 and metrics["elyza_tasks_100/judged"] == 2
    assert "elyza_tasks_100/score" not in metrics  # no score from a partial judging
    assert len(A.read_jsonl(tmp_path / "elyza_tasks_100" / "answers.jsonl")) == len(rows)
    # the judge is back (same endpoint): only the 3 missing judgments are asked for
    with JudgeServer(lambda prompt, n: "5", port=port) as server:
        metrics = elyza.judge_cell(
            tmp_path, judge_opts(server, concurrency=1), log_metrics=lambda m: None, say=lambda m: None
        )
        assert len(server.requests) == 3
    assert metrics["elyza_tasks_100/pending"] == 0
    assert metrics["elyza_tasks_100/score"] == pytest.approx((3 + 3 + 5 + 5 + 5) / 5)


def test_a_refused_connection_is_an_outage_not_a_crash(tmp_path):
    write_answers(tmp_path, ["a", "b", "c", "d", "e"])
    with JudgeServer(lambda p, n: "1") as server:
        opts = judge_opts(server, max_retries=1)
    metrics = elyza.judge_cell(tmp_path, opts, log_metrics=lambda m: None, say=lambda m: None)
    assert metrics["elyza_tasks_100/pending"] == 5


def test_pairwise_judges_both_orders_allows_ties_and_reports_a_win_rate_with_an_interval(tmp_path):
    cells = []
    for cid, dataset, words in (("aaaa", "synthetic", "good"), ("bbbb", "oasst", "bad")):
        d = tmp_path / cid
        write_answers(d, [f"{words}{i}" for i in range(5)])
        cells.append({"cell_id": cid, "cell_dir": d, "axes": {"dataset": dataset}, "label": dataset})

    def script(prompt, n):
        # a position-biased judge: prefers the first answer unless the second one is "good"; question 4 is a tie
        _a_part, b_part = prompt.split("# 回答 A")[1].split("# 回答 B")
        if "good4" in prompt:
            return "同程度。\n[[C]]"
        if "good3" in prompt:
            return "判定できません"
        return "[[B]]" if "good" in b_part else "[[A]]"

    with JudgeServer(script) as server:
        result = P.compare(
            cells, P.options({"a": "dataset=synthetic", "b": "dataset=oasst"}), judge_opts(server), say=lambda m: None
        )
        assert len(server.requests) == 10  # 5 questions x both orders
        prompts = [r["messages"][0]["content"] for r in server.requests]
        assert sum("good0" in p.split("# 回答 B")[0] for p in prompts) == 1  # A shown first once ...
        assert sum("good0" in p.split("# 回答 B")[1] for p in prompts) == 1  # ... and second once
        P.compare(
            cells, P.options({"a": "dataset=synthetic", "b": "dataset=oasst"}), judge_opts(server), say=lambda m: None
        )
        assert len(server.requests) == 10  # cached
    (g,) = result["groups"]
    assert (g["wins"], g["ties"], g["losses"], g["unparseable"]) == (3, 1, 0, 1)
    assert g["win_rate"] == pytest.approx((1 + 1 + 1 + 0.5) / 4)
    assert g["ci_low"] <= g["win_rate"] <= g["ci_high"] <= 1
    assert g["judge_prompt_digest"] == PAIRWISE_PROMPTS["pairwise"].digest
    m = P.metrics_of(result)
    assert m["pairwise/dataset:synthetic_vs_dataset:oasst/win_rate"] == g["win_rate"]


def test_pairwise_position_bias_alone_gives_ties():
    pts = [0.5] * 10
    assert P.win_rate(pts) == (0.5, 0.5, 0.5)


def test_judge_config_problems_name_the_key_and_never_the_secret(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    probs = J.check(J.options({"api_key_env": "OPENAI_API_KEY", "base_url": "https://api.openai.com/v1"}))
    assert probs == [
        "judge.api_key_env: environment variable OPENAI_API_KEY is not set (set it, or judge.defer=true "
        "to generate answers now and run `jsweep judge` later)"
    ]
    assert J.check(J.options({"api_key_env": "OPENAI_API_KEY", "defer": True})) == []
    assert "NAME of an environment variable" in J.check(J.options({"api_key_env": KEY}))[0]
    assert "unknown judge.prompt" in J.check(J.options({"prompt": "nope"}))[0]


def test_pairwise_groups_by_axis_and_pools_alternative_b_cells(tmp_path):
    cells = []
    for model, dataset in (("m1", "syn"), ("m1", "dolly"), ("m1", "oasst"), ("m2", "syn"), ("m2", "dolly")):
        d = tmp_path / f"{model}-{dataset}"
        write_answers(d, [f"{dataset}-answer{i}" for i in range(5)])
        cells.append(
            {"cell_id": f"{model}{dataset}", "cell_dir": d, "axes": {"model": model, "dataset": dataset}, "label": ""}
        )

    def script(prompt, n):
        a_part, _b_part = prompt.split("# 回答 A")[1].split("# 回答 B")
        return "[[A]]" if "syn-" in a_part else "[[B]]"

    with JudgeServer(script) as server:
        cfg = P.options({"a": "dataset=syn", "b": "dataset=dolly|oasst", "by": "model"})
        result = P.compare(cells, cfg, judge_opts(server), say=lambda m: None)
        assert len(server.requests) == 3 * 5 * 2
    groups = {g["group"]: g for g in result["groups"]}
    assert set(groups) == {"model=m1", "model=m2"}
    assert groups["model=m1"]["n"] == 10 and groups["model=m2"]["n"] == 5
    assert groups["model=m1"]["win_rate"] == 1.0 and groups["model=m1"]["consistent"] == 1.0
    assert set(P.metrics_of(result)) >= {"pairwise/dataset:syn_vs_dataset:dolly_oasst/model:m2/win_rate"}
    with pytest.raises(Exception, match="key=value"):
        P.options({"a": "syn", "b": "dataset=dolly"}) and P.parse_selector("syn")


def test_extra_body_reaches_the_server_and_is_part_of_the_judge_identity(tmp_path):
    write_answers(tmp_path, ["a", "b", "c", "d", "e"])
    with JudgeServer(lambda p, n: "2") as server:
        bias = {"logit_bias": {"20": 100, "21": 100}}
        elyza.judge_cell(tmp_path, judge_opts(server, extra_body=bias), log_metrics=lambda m: None, say=lambda m: None)
        assert all(r["logit_bias"] == {"20": 100, "21": 100} for r in server.requests)
        elyza.judge_cell(tmp_path, judge_opts(server), log_metrics=lambda m: None, say=lambda m: None)
        assert len(server.requests) == 10  # another request, another judgment: not served from the cache


def test_bad_elyza_data_and_options_are_named_before_anything_runs(tmp_path, monkeypatch):
    bad = tmp_path / "test.csv"
    bad.write_text("input,output\n問題,答え\n", encoding="utf-8")
    assert elyza.check({"path": str(bad)}) == [f"{bad}: record 0: field 'eval_aspect': missing or not a string"]
    assert elyza.check({"path": str(tmp_path / "nope.csv")}) == [f"{tmp_path / 'nope.csv'}: file not found"]
    assert "unknown key 'eval.elyza_tasks_100.colour'" in elyza.check({"colour": 1})[0]
    assert elyza.check({"max_new_tokens": 0}) == ["eval.elyza_tasks_100.max_new_tokens must be positive"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    (problem,) = elyza.check({"source": "hub"})
    assert "elyza/ELYZA-tasks-100 is not in the local hub cache" in problem and "eval.elyza_tasks_100.path" in problem
    jsonl = tmp_path / "tasks.jsonl"
    write_answers(tmp_path / "x", ["a"] * 5)
    A.write_jsonl(jsonl, [{"input": "問", "output": "答", "eval_aspect": ""}])
    assert elyza.load_items({"path": str(jsonl)})[0] == [{"input": "問", "output": "答", "eval_aspect": ""}]


def test_a_rerun_cell_reuses_the_judgments_of_its_replaced_directory(tmp_path):
    cell = tmp_path / "cells" / "abc123"
    write_answers(cell, ["同じ答え"] * 5)
    with JudgeServer(lambda p, n: "4") as server:
        opts = judge_opts(server)
        elyza.judge_cell(cell, opts, log_metrics=lambda m: None, say=lambda m: None)
        cell.rename(cell.with_name("abc123.replaced-20260101-000000"))  # what --rerun does
        write_answers(cell, ["同じ答え"] * 4 + ["新しい答え"])
        metrics = elyza.judge_cell(cell, opts, log_metrics=lambda m: None, say=lambda m: None)
        assert len(server.requests) == 5 + 1  # only the changed answer
    assert metrics["elyza_tasks_100/score"] == 4.0
    assert len(J.JudgmentCache(cell / "judgments.jsonl").entries) == 5


def test_token_counts_are_logged_while_credentials_are_not():
    from jsweep.tracking import flatten, redact

    cfg = {
        "judge": {"max_tokens": 512, "api_key_env": "OPENAI_API_KEY", "token": "hf_" + "x" * 30},
        "eval": {"elyza_tasks_100": {"max_new_tokens": 512}},
    }
    flat = flatten(cfg)
    assert flat["judge.max_tokens"] == "512" and flat["eval.elyza_tasks_100.max_new_tokens"] == "512"
    # api_key_env holds the NAME of the variable where the key is kept, not the key (jsweep.redaction)
    assert "judge.token" not in flat and flat["judge.api_key_env"] == "OPENAI_API_KEY"
    assert redact(cfg)["judge"] == {"max_tokens": 512, "api_key_env": "OPENAI_API_KEY", "token": "***"}
