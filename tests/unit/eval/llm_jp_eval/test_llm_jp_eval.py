"""llm-jp-eval: metrics against hand-computed values, golden prompts, categories and AVG, data tools."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jsweep.eval.llm_jp_eval import metrics as M
from jsweep.eval.llm_jp_eval.evaluator import (
    HEADER,
    Sample,
    Task,
    build_prompt,
    check,
    extract_answer,
    load_tasks,
    score_predictions,
)
from jsweep.eval.llm_jp_eval.prepare import TASKS, prepare_jglue
from jsweep.tools.score import score_file
from tests.support.paths import ROOT

FIXTURE_JGLUE = ROOT / "jsweep" / "fixtures" / "eval" / "jglue"


# --------------------------------------------------------------------------- metrics by hand


@pytest.mark.parametrize(
    "pred,gold,expected",
    [
        ("東京都", "東京都", 1.0),
        ("東京", "東京都", 0.8),  # LCS 2: 2*2/(2+3) = 0.8
        ("りんご", "みかん", 0.33),  # LCS 1 ("ん"): 2/6 = 33%
        ("", "東京", 0.0),  # an empty side scores 0
        ("", "", 1.0),  # equal strings score 100
        ("東京。", "東京", 1.0),  # punctuation becomes whitespace and is stripped
        ("b a", "a b", 1.0),  # tokens are sorted
        ("ABC", "abc", 1.0),  # lower-cased
    ],
)
def test_char_f1_by_hand(pred, gold, expected):
    assert M.char_f1_sample(pred, gold) == pytest.approx(expected)


def test_nfkc_width_variants_are_equal_after_extraction():
    assert extract_answer("ｎｅｕｔｒａｌ　") == "neutral"
    assert extract_answer("１２３") == "123"
    assert M.exact_match_sample(extract_answer("ｎｅｕｔｒａｌ"), M.normalize("neutral")) == 1.0


def test_answer_extraction():
    assert extract_answer("東京\n\n理由は...") == "東京"
    assert extract_answer("\n\n東京") == ""  # text before the first blank line
    assert extract_answer("答えは【3】です", r"【(.+?)】") == "3"
    assert extract_answer("no match here", r"【(.+?)】") == ""


@pytest.mark.parametrize(
    "pred,gold,expected",
    [
        ("A positive\nB negative", "A positive\nC neutral", 0.5),  # P = R = 1/2
        ("A positive\nA positive", "A positive\nB negative", 2 / 3),  # set: P = 1, R = 1/2
        ("A positive", "A positive\nB negative\nC neutral", 0.5),  # P = 1, R = 1/3 -> 0.5
        (" A positive \nB negative", "B negative\nA positive", 1.0),  # lines stripped, order free
        ("", "A positive", 0.0),  # empty prediction
    ],
)
def test_set_f1_by_hand(pred, gold, expected):
    assert M.set_f1_sample(pred, gold) == pytest.approx(expected)


def test_pearson_and_spearman_match_scipy_and_handle_non_numeric():
    from scipy.stats import pearsonr, spearmanr

    golds = ["1.0", "2.5", "4.0", "3.0", "0.5"]
    preds = ["1", "3", "abc", "3", "1"]  # "abc" counts as -2.0
    numeric = [1.0, 3.0, -2.0, 3.0, 1.0]
    x = [float(g) for g in golds]
    assert M.correlation("pearson", preds, golds) == pytest.approx(pearsonr(x, numeric)[0])
    assert M.correlation("spearman", preds, golds) == pytest.approx(spearmanr(x, numeric)[0])
    assert M.correlation("pearson", ["2", "2", "2"], ["1", "2", "3"]) == 0.0  # NaN -> 0
    assert M.correlation("pearson", ["1", "2", "3"], ["1", "2", "3"]) == pytest.approx(1.0)


def test_bleu_ja():
    assert M.sample_scorer("bleu_ja")("今日は良い天気です。", "今日は良い天気です。") == pytest.approx(100.0)
    assert M.sample_scorer("bleu_ja")("", "今日は良い天気です。") == 0.0
    assert M.sample_scorer("bleu_ja")("", "") == 1.0
    partial = M.sample_scorer("bleu_ja")("今日はいい天気です。", "今日は良い天気です。")
    assert 0 < partial < 100


def test_model_metrics_are_skipped_not_zero():
    scores, skipped, _ = M.task_scores(["bleu_ja", "comet_wmt22"], ["猫"], ["猫"])
    assert "comet_wmt22" not in scores and "comet_wmt22" in skipped
    result = score_predictions(
        {"alt-e-to-j": (["猫"], ["猫"]), "jnli": (["neutral"], ["neutral"])},
        {"alt-e-to-j": ["bleu_ja", "comet_wmt22"], "jnli": ["exact_match"]},
    )
    assert "MT" not in result["categories"] and "MT" not in result["partial_categories"]  # COMET did not run
    assert result["AVG"] is None  # so there is no full AVG, only a partial one over NLI
    assert result["AVG_partial"] == pytest.approx(1.0) and result["partial_categories"] == {"NLI": 1.0}
    assert "alt-e-to-j/comet_wmt22" in result["skipped"] and "alt-e-to-j/comet_wmt22" in result["missing"]


# --------------------------------------------------------------------------- categories and AVG


def test_category_and_avg_arithmetic():
    tasks = {
        "jnli": {"exact_match": 0.6},
        "jamp": {"exact_match": 0.4},  # NLI = 0.5
        "jsquad": {"char_f1": 0.9},  # RC = 0.9
        "jemhopqa": {"char_f1": 0.2},
        "niilc": {"char_f1": 0.4},  # QA = 0.3
        "jsts": {"pearson": 0.7, "spearman": 0.6},
    }  # STS: reported only
    agg = M.aggregate(tasks)
    assert agg["categories"] == pytest.approx({"RC": 0.9})  # complete: its one task scored
    assert agg["partial_categories"] == pytest.approx({"NLI": 0.5, "QA": 0.3})  # 2 of 5 and 2 of 3 tasks
    assert agg["AVG"] is None and agg["AVG_partial"] == pytest.approx((0.5 + 0.9 + 0.3) / 3)
    assert agg["reported"] == pytest.approx({"STS": 0.7})


# --------------------------------------------------------------------------- golden prompts

TASK = Task(
    "jnli",
    "前提と仮説の関係を答えてください。",
    3,
    ["exact_match"],
    [Sample("前提：A\n仮説：B", "neutral")],
    few_shots=[
        Sample(f"前提：p{i}\n仮説：h{i}", label)
        for i, label in enumerate(["entailment", "neutral", "contradiction", "neutral"])
    ],
)


def test_golden_prompt_zero_shot():
    task = Task(**{**TASK.__dict__, "few_shots": []})
    assert build_prompt(task, "前提：A\n仮説：B") == (
        "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。\n\n"
        "### 指示:\n前提と仮説の関係を答えてください。\n\n"
        "### 入力:\n前提：A\n仮説：B\n\n"
        "### 応答:\n"
    )


def test_golden_prompt_four_shots():
    expected = (
        HEADER + "\n\n### 指示:\n前提と仮説の関係を答えてください。"
        "\n\n### 入力:\n前提：p0\n仮説：h0\n\n### 応答:\nentailment"
        "\n\n### 入力:\n前提：p1\n仮説：h1\n\n### 応答:\nneutral"
        "\n\n### 入力:\n前提：p2\n仮説：h2\n\n### 応答:\ncontradiction"
        "\n\n### 入力:\n前提：p3\n仮説：h3\n\n### 応答:\nneutral"
        "\n\n### 入力:\n前提：A\n仮説：B\n\n### 応答:\n"
    )
    assert build_prompt(TASK, "前提：A\n仮説：B") == expected


def test_shipped_fixtures_load_with_few_shots_and_limits():
    tasks = load_tasks({"num_few_shots": 4, "max_num_samples": 3})
    assert len(tasks) >= 9
    assert {M.category_of(t.name) for t in tasks} >= {"NLI", "QA", "RC", "MC", "EL", "FA", "MR", "HE", "STS"}
    for t in tasks:
        assert len(t.few_shots) == 4 and len(t.samples) == 3
    assert check({"tasks": ["jnli", "nope"]}) and "unknown llm-jp-eval task 'nope'" in check({"tasks": ["nope"]})[0]
    assert "num_few_shots=99" in check({"num_few_shots": 99})[0]


# --------------------------------------------------------------------------- data tools


def test_prepare_converts_raw_jglue_like_llm_jp_eval(tmp_path):
    report = prepare_jglue(FIXTURE_JGLUE, tmp_path)
    assert set(report) == set(TASKS)
    test = json.loads((tmp_path / "evaluation" / "test" / "jcommonsenseqa.json").read_text())
    first_raw = json.loads((FIXTURE_JGLUE / "jcommonsenseqa" / "valid-v1.3.json").read_text().splitlines()[0])
    sample = test["samples"][0]
    assert sample["input"].startswith(f"質問：{first_raw['question']}\n選択肢：0.{first_raw['choice0']},1.")
    assert sample["output"] == str(first_raw["label"])
    squad = json.loads((tmp_path / "evaluation" / "test" / "jsquad.json").read_text())
    assert squad["samples"][0]["input"].startswith("文章：") and "\n質問：" in squad["samples"][0]["input"]
    assert squad["metrics"] == ["char_f1"] and squad["output_length"] == 25
    # train/dev come from the train file, 90/10
    assert report["jnli"]["train"] + report["jnli"]["dev"] == 12 and report["jnli"]["test"] == 16
    tasks = load_tasks({"data_dir": str(tmp_path), "num_few_shots": 2})
    assert {t.name for t in tasks} == set(TASKS)


def test_fixture_instructions_match_the_prepared_ones():
    for name, spec in TASKS.items():
        fixture = json.loads(
            (
                Path(M.__file__).parents[2]
                / "fixtures"
                / "eval"
                / "llm_jp_eval"
                / "evaluation"
                / "test"
                / f"{name}.json"
            ).read_text()
        )
        assert fixture["instruction"] == spec["instruction"], name
        assert fixture["metrics"] == spec["metrics"] and fixture["output_length"] == spec["output_length"]


def test_prepare_refuses_missing_train_files_unless_allowed(tmp_path, capsys):
    from jsweep.errors import DataError
    from jsweep.eval.llm_jp_eval.evaluator import dev_only_tasks

    raw = tmp_path / "raw"
    import shutil

    shutil.copytree(FIXTURE_JGLUE, raw)
    (raw / "jnli" / "train-v1.3.json").unlink()
    with pytest.raises(DataError, match=r"JGLUE train file missing: .*jnli/train-v1.3.json.*--allow-missing-train"):
        prepare_jglue(raw, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written
    report = prepare_jglue(raw, tmp_path / "out", allow_missing_train=True)
    assert "WARNING: jnli" in capsys.readouterr().err
    assert report["jnli"]["dev_only"] is True and report["jcommonsenseqa"]["dev_only"] is False
    assert report["jnli"]["test"] < report["jnli"]["valid_rows"] == 16
    assert dev_only_tasks(str(tmp_path / "out")) == ["jnli"]


def test_prepare_real_jglue_counts(tmp_path, real_jglue):
    SHARED_JGLUE = real_jglue
    from jsweep.errors import DataError

    with pytest.raises(DataError, match="jnli/train-v1.3.json"):  # the shared copy has no JNLI/JSQuAD train
        prepare_jglue(SHARED_JGLUE, tmp_path)
    report = prepare_jglue(SHARED_JGLUE, tmp_path, allow_missing_train=True)
    assert report["jcommonsenseqa"]["test"] == 1119 and not report["jcommonsenseqa"]["dev_only"]
    assert report["jnli"]["train"] + report["jnli"]["dev"] + report["jnli"]["test"] == 2434
    assert report["jnli"]["dev_only"] and report["jnli"]["test"] == 2191 and report["jnli"]["valid_rows"] == 2434
    assert report["jsquad"]["train"] + report["jsquad"]["dev"] + report["jsquad"]["test"] == 4442


def test_score_file(tmp_path):
    f = tmp_path / "preds.jsonl"
    rows = [
        {"task": "jnli", "pred": "neutral", "gold": "neutral"},
        {"task": "jnli", "pred": "ｅｎｔａｉｌｍｅｎｔ", "gold": "entailment"},
        {"task": "jnli", "pred": "", "gold": "contradiction"},
        {"task": "jsquad", "pred": "東京", "gold": "東京都"},
        {"task": "jsts", "pred": "1", "gold": "1.0"},
        {"task": "jsts", "pred": "3", "gold": "3.0"},
    ]
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
    out = score_file(f)
    assert out["tasks"]["jnli"]["exact_match"] == pytest.approx(2 / 3)
    assert out["tasks"]["jsquad"]["char_f1"] == pytest.approx(0.8)
    assert out["categories"] == pytest.approx({"RC": 0.8})
    assert out["partial_categories"] == pytest.approx({"NLI": 2 / 3})
    assert out["AVG"] is None and out["AVG_partial"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert out["category_set"] == "all-without-nc" and "jamp/exact_match" in out["missing"]
    assert out["reported"]["STS"] == pytest.approx(1.0)


def test_score_file_reports_bad_lines(tmp_path):
    from jsweep.errors import DataError

    f = tmp_path / "bad.jsonl"
    f.write_text('{"task": "jnli", "pred": "a", "gold": "a"}\n{"task": "jnli", "gold": "a"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl: record line 2: field 'pred'"):
        score_file(f)
