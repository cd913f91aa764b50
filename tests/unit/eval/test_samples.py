"""Sampled answers: every generation parameter reaches generate(), seeded answers are reproducible,
and the samples/human_eval evaluators write their answers and tables (tiny model, no training)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from jsweep.eval import answers as A
from jsweep.eval.samples import HumanEval, Samples, read_prompts


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval(), AutoTokenizer.from_pretrained(tiny_model_dir)


def ctx_for(run):
    """A cell context whose tracker is a real CellTracker on a temporary SQLite store (``run``)."""
    from jsweep.compose import compose_spec

    return SimpleNamespace(spec=compose_spec([]), cell_dir=run.cell_dir, tracker=run.tracker)


def test_sampling_parameters_reach_generate_and_seeded_answers_repeat(tiny, monkeypatch):
    model, tok = tiny
    opts = {
        "do_sample": True,
        "temperature": 0.7,
        "top_p": 0.75,
        "top_k": 40,
        "repetition_penalty": 5.0,
        "max_new_tokens": 12,
        "seed": 0,
    }
    seen = []
    real = model.generate

    def spy(**kw):
        seen.append(
            {k: kw[k] for k in ("temperature", "top_p", "top_k", "repetition_penalty", "max_new_tokens", "do_sample")}
        )
        return real(**kw)

    monkeypatch.setattr(model, "generate", spy)
    prompts = ["日本の首都は", "富士山の高さは", "猫の鳴き声は"]
    first = A.generate_answers(model, tok, prompts, opts)
    assert seen[0] == {
        "temperature": 0.7,
        "top_p": 0.75,
        "top_k": 40,
        "repetition_penalty": 5.0,
        "max_new_tokens": 12,
        "do_sample": True,
    }
    assert len(seen) == 3  # sampled: one prompt at a time
    assert A.generate_answers(model, tok, prompts, {**opts, "batch_size": 16}) == first  # reproducible
    other = A.generate_answers(model, tok, prompts, {**opts, "seed": 1})
    assert other != first  # the seed matters
    greedy = A.generate_answers(model, tok, prompts, {"max_new_tokens": 12})
    assert seen[-1]["do_sample"] is False and seen[-1]["temperature"] is None
    assert A.generate_answers(model, tok, prompts, {"max_new_tokens": 12}) == greedy


def test_samples_and_human_eval_write_answers_and_tables(tiny, stored_run):
    model, tok = tiny
    ctx = ctx_for(stored_run)
    tmp_path = stored_run.cell_dir
    m = Samples(
        {"prompts": ["自己紹介してください", "春の季語を一つ"], "num_samples": 2, "max_new_tokens": 6}
    ).evaluate(ctx, model, tok)
    assert m["samples/count"] == 4
    rows = A.read_jsonl(tmp_path / "samples" / "answers.jsonl")
    assert [(r["id"], r["sample"]) for r in rows] == [("p01", 0), ("p01", 1), ("p02", 0), ("p02", 1)]
    assert rows[0]["temperature"] == 0.7 and rows[0]["max_new_tokens"] == 6
    assert stored_run.table("samples/answers.json") == rows  # the whole table, as the store holds it
    m = HumanEval({"max_new_tokens": 6}).evaluate(ctx, model, tok)
    assert m["human_eval/answers"] == 5
    assert {"id", "question", "reference", "answer"} <= set(A.read_jsonl(tmp_path / "human_eval" / "answers.jsonl")[0])


def test_prompt_lists_and_their_errors(tmp_path):
    assert len(read_prompts({})) == 4
    (tmp_path / "p.jsonl").write_text('{"id": "x", "prompt": "こんにちは"}\n{"prompt": ""}\n', encoding="utf-8")
    assert "line 2: field 'prompt'" in Samples.check({"path": str(tmp_path / "p.jsonl")})[0]
    assert Samples.check({"do_sample": True, "temperature": 0}) == [
        "eval.samples.temperature must be > 0 when sampling"
    ]
    assert "unknown key 'eval.samples.topp'" in Samples.check({"topp": 0.9})[0]
    assert "question set not found" in HumanEval.check({"path": str(tmp_path / "none.jsonl")})[0]
