"""Contamination check: n-gram overlap between training data and the llm-jp-eval sets a cell is scored on."""

from __future__ import annotations

import functools
import json
import shutil

import pytest

from jsweep.data.contamination import (
    EvalText,
    check_contamination,
    contamination,
    contamination_metrics,
    contamination_tags,
    normalize,
)
from jsweep.data.load import load_examples
from jsweep.data.records import Example, Message, PreferenceExample
from jsweep.errors import DataError
from jsweep.eval.llm_jp_eval.contamination import collect as collect_llm_jp_eval
from jsweep.eval.llm_jp_eval.evaluator import FIXTURE_DIR as LLM_JP_EVAL_FIXTURES
from tests.support.specs import spec_for

P = "data/contamination/llm_jp_eval"


def ex(text: str, reply: str = "はい。") -> Example:
    return Example("x", [Message("user", text), Message("assistant", reply)])


@functools.cache
# --------------------------------------------------------------------------- the pure function

def test_verbatim_eval_sample_in_training_is_contaminated():
    sample = "質問：日本で一番高い山の名前と、その標高を答えてください。"
    r = contamination([ex("前置き。" + sample)], [sample, "まったく関係のない別の評価用の文章がここにあります。"])
    assert (r.eval_samples, r.contaminated_samples, r.overlapping_samples) == (2, 1, 1)
    assert r.overlap_ratio == 0.5 and r.duplicate_ratio == 0.5 and r.status == "samples" and r.flagged
    clean = contamination([ex("今日は良い天気なので散歩に出かけましょう。")], [sample])
    assert clean.status == "none" and clean.overlap_ratio == 0 and not clean.flagged


def test_any_shared_ngram_overlaps_but_only_near_duplicates_flag():
    sample = "飛鳥時代に聖徳太子が建てたとされる法隆寺がある都道府県の県庁所在地はどこですか？"
    r = contamination([ex("東大寺がある都道府県の県庁所在地はどこですか？")], [sample])
    assert r.overlapping_samples == 1 and r.contaminated_samples == 0 and r.status == "none"
    assert 0 < r.ngram_overlap < 0.5


def test_normalisation_and_n_are_applied():
    assert normalize("ＡＢＣ　１２３\n x") == "abc123x"
    sample = "ＡＢＣ商事の２０２３年度の売上高は前年比で増加しました。"
    assert contamination([ex("abc商事の2023年度の売上高は 前年比で増加しました。")], [sample]).contaminated_samples == 1
    short = "東京都の人口は？"  # 8 characters: no 13-gram
    r = contamination([ex(short)], [short])
    assert r.contaminated_samples == 0 and r.short_samples == 1
    assert contamination([ex(short)], [short], n=5).contaminated_samples == 1
    with pytest.raises(ValueError):
        contamination([], [short], n=0)


def test_task_templates_are_not_evidence():
    template = "次の選択肢から正しいものを一つ選んでください。選択肢："
    evals = [
        EvalText(f"{template}{q}", task="mc", sample=str(i))
        for i, q in enumerate(["りんご、みかん", "犬、猫", "赤、青", "春、夏"])
    ]
    r = contamination([ex(f"{template}海、山")], evals)
    assert r.contaminated_samples == 0 and r.overlapping_samples == 0  # shared by all samples: a template


def test_trained_on_task_instructions_flag_tasks_not_samples():
    evals = [
        EvalText(
            "前提と仮説の関係をentailment、contradiction、neutralの中から回答してください。"
            "それ以外には何も含めないことを厳守してください。",
            task="jnli",
            kind="instruction",
        ),
        EvalText(
            "与えられたテキストを全てひらがなに変換してください。それ以外には何も含めないことを厳守してください。",
            task="wiki_reading",
            kind="instruction",
        ),
        EvalText("前提：猫が寝ている。\n仮説：動物が眠っている様子である。", task="jnli", sample="0"),
    ]
    train = [
        ex(
            "前提と仮説の関係をentailment、contradiction、neutralの中から回答してください。"
            "それ以外には何も含めないことを厳守してください。",
            "neutral",
        )
    ]
    r = contamination(train, evals)
    assert r.tasks_seen == ["jnli"] and r.status == "tasks" and r.task_overlap_ratio == 0.5
    assert r.per_task["wiki_reading"]["instruction_overlap"] == 0.0  # shared boilerplate does not count


def test_preference_pairs_are_checked_too():
    sample = "梅雨の時期に洗濯物を早く乾かす方法を教えてください。"
    pair = PreferenceExample("p", [Message("user", "質問")], chosen=sample, rejected="知りません。")
    assert contamination([pair], [sample]).contaminated_samples == 1


def test_large_training_side_streams_quickly():
    import time

    train = [ex(f"これは訓練用の文章その{i}です。内容は毎回少しずつ異なります、番号{i * 7}。") for i in range(5000)]
    t0 = time.monotonic()
    r = contamination(train, [f"評価用の文章その{i}。まったく別の話題について書かれています。" for i in range(200)])
    assert r.status == "none" and time.monotonic() - t0 < 10


# --------------------------------------------------------------------------- llm-jp-eval sets and the cell helper


def test_collect_llm_jp_eval_reads_the_scored_samples():
    texts = collect_llm_jp_eval({})
    samples = {(t.task, t.sample) for t in texts if t.kind == "sample"}
    assert len(samples) == 80 and len([t for t in texts if t.kind == "instruction"]) == 10  # 10 tasks x 8 test samples
    few = collect_llm_jp_eval({"split": "dev", "tasks": ["jnli", "jsquad"], "max_num_samples": 2, "num_few_shots": 4})
    assert {(t.task, t.sample) for t in few if t.kind == "sample"} == {
        ("jnli", "dev/0"),
        ("jnli", "dev/1"),
        ("jsquad", "dev/0"),
        ("jsquad", "dev/1"),
    }
    with pytest.raises(DataError, match="no llm-jp-eval data"):
        collect_llm_jp_eval({"data_dir": "/nonexistent"})
    with pytest.raises(DataError, match="task file not found"):
        collect_llm_jp_eval({"tasks": ["nope"]})


def test_jaster_is_flagged_against_llm_jp_eval_and_dolly_is_not():
    jaster = spec_for("dataset=jaster", "eval=[]")
    metrics, tags = check_contamination(jaster, load_examples(jaster.dataset, builtin_model=True).examples)
    assert metrics[f"{P}/flagged"] == 1.0 and metrics[f"{P}/n"] == 13 and metrics[f"{P}/eval_samples"] == 80
    assert metrics[f"{P}/task_overlap_ratio"] >= 0.3 and metrics[f"{P}/jnli/instruction_overlap"] == 1.0
    assert tags["jsweep.contamination"] in ("tasks", "samples") and "jnli" in tags["jsweep.contamination.llm_jp_eval"]
    dolly = spec_for("dataset=dolly", "eval=[]")
    clean = contamination_metrics(dolly, load_examples(dolly.dataset, builtin_model=True).examples)
    assert clean[f"{P}/flagged"] == 0.0 and clean[f"{P}/overlap_ratio"] == 0.0 and set(clean) == set(metrics)
    assert contamination_tags(dolly, []) == {"jsweep.contamination": "none"}


def test_eval_options_data_dir_is_used(tmp_path):
    root = tmp_path / "llm-jp-eval" / "evaluation"
    shutil.copytree(LLM_JP_EVAL_FIXTURES / "evaluation", root)
    dolly = spec_for("dataset=dolly", "eval=[]")
    train = load_examples(dolly.dataset, builtin_model=True).examples
    task = json.loads((root / "test" / "jemhopqa.json").read_text())
    task["samples"].append({"input": f"質問：{train[0].messages[0].content}", "output": train[0].target})
    (root / "test" / "jemhopqa.json").write_text(json.dumps(task, ensure_ascii=False))
    spec = spec_for(
        "dataset=dolly",
        "eval=[llm_jp_eval]",
        f"eval.llm_jp_eval.data_dir={tmp_path / 'llm-jp-eval'}",
        "eval.llm_jp_eval.max_num_samples=-1",
    )
    metrics = contamination_metrics(spec, train)
    assert metrics[f"{P}/contaminated_samples"] == 1 and metrics[f"{P}/eval_samples"] == 81
    assert metrics[f"{P}/jemhopqa/duplicate_ratio"] == pytest.approx(1 / 9)
