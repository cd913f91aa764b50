"""llm-jp-eval scoring edges against known answers (issue 21: what the mutants of jsweep/eval/llm_jp_eval/metrics.py
showed unchecked). Hand-computed values, or values of the reference implementations (fuzzywuzzy's
rounding, sacrebleu's sentence BLEU as llm-jp-eval calls it), committed as numbers."""

from __future__ import annotations

import math

import pytest

from jsweep.eval.llm_jp_eval import metrics as M

# --------------------------------------------------------------------------- char_f1 (token_sort_ratio)


@pytest.mark.parametrize(
    "pred,gold,expected",
    [
        ("caf\u00e9", "caf", 1.0),  # fuzzywuzzy's force_ascii drops chr(128..255): é goes
        ("a\u0080", "a", 1.0),  # the first of the dropped range
        ("a\u00ff", "a", 1.0),  # and the last
        ("a\u0100", "a", 0.67),  # chr(256) is kept (a word character): LCS 1, 2/3 -> 67
        ("a\u007f", "a", 1.0),  # chr(127) is not dropped, but as a non-word character it is a space
        ("東京 大阪", "大阪、東京", 1.0),  # non-word characters are spaces; tokens sorted
        ("  東京\t", "東京", 1.0),  # outer whitespace stripped
        ("TOKYO", "tokyo", 1.0),  # lower-cased
        ("abcdefgh", "aijklmno", 0.12),  # ratio 0.125: 12.5 rounds half to even (Python's round) -> 12
        ("abc", "abd", 0.67),  # LCS 2: 4/6 = 66.7 -> 67
        ("a b", "a c", 0.67),  # the sorted tokens joined by one space: "a b" / "a c", LCS 2 of 3 + 3
        ("\ufb01", "fi", 0.0),  # lower-cased, not upper-cased: "ﬁ" stays a ligature ("FI" if upper)
        ("東京", "", 0.0),  # one empty side scores 0
    ],
)
def test_char_f1_known_answers(pred, gold, expected):
    assert M.char_f1_sample(pred, gold) == expected


def test_process_and_sort_is_fuzzywuzzys_full_process_then_sort():
    assert M.process_and_sort("  Ｂ b, A!\u00e9 ") == "a b ｂ"  # é dropped, ',' '!' spaces, sorted
    assert M.process_and_sort("x-y") == "x y"
    assert M.process_and_sort("...") == ""


def test_indel_ratio_is_the_normalised_indel_similarity():
    assert M.indel_ratio("abc", "abd") == pytest.approx(4 / 6)
    assert M.indel_ratio("abc", "abc") == 1.0 and M.indel_ratio("abc", "xyz") == 0.0


# --------------------------------------------------------------------------- exact_match, set_f1


def test_exact_match_is_equality_as_extracted():
    assert M.exact_match_sample("entailment", "entailment") == 1.0
    assert M.exact_match_sample("entailment ", "entailment") == 0.0  # nothing stripped here
    assert M.normalize("ｅｎｔａｉｌｍｅｎｔ") == "entailment"  # NFKC


@pytest.mark.parametrize(
    "pred,gold,expected",
    [
        ("A", "A\nA", 2 / 3),  # gold lines are a list: P = 1, R = 1/2
        ("", "", 1.0),  # one empty line each: equal
        ("A\nB\nC\nD", "A", 0.4),  # P = 1/4, R = 1: 2 * 0.25 / 1.25
        ("X", "A\nB", 0.0),  # no hit: 0, not a division by zero
    ],
)
def test_set_f1_known_answers(pred, gold, expected):
    assert M.set_f1_sample(pred, gold) == pytest.approx(expected, abs=1e-12)


# --------------------------------------------------------------------------- parse_float, correlations


@pytest.mark.parametrize(
    "text,expected",
    [
        ("約5", 5.0),
        ("-1", 1.0),
        ("1e3", 13.0),
        ("3.25点", 3.25),
        ("1.2.3", -2.0),
        ("", -2.0),
        ("３", -2.0),  # a full-width digit is not an ASCII digit: removed
        (4, 4.0),  # not text: read through str()
    ],
)
def test_parse_float_is_llm_jp_evals(text, expected):
    assert M.parse_float(text) == expected


def test_ranks_average_ties():
    assert M.ranks([10.0, 20.0, 20.0, 30.0]) == [1.0, 2.5, 2.5, 4.0]
    assert M.ranks([3.0, 1.0, 2.0]) == [3.0, 1.0, 2.0]
    assert M.ranks([5.0, 5.0, 5.0]) == [2.0, 2.0, 2.0]
    assert M.ranks([2.0, 1.0, 2.0, 1.0, 9.0]) == [3.5, 1.5, 3.5, 1.5, 5.0]


def test_spearman_with_ties_matches_scipy():
    from scipy.stats import spearmanr

    golds = ["1", "2", "2", "3", "5", "5"]
    preds = ["2", "2", "1", "4", "4", "6"]
    expected = spearmanr([float(g) for g in golds], [float(p) for p in preds])[0]
    assert M.correlation("spearman", preds, golds) == pytest.approx(expected, abs=1e-12)


def test_pearson_is_clamped_to_plus_minus_one():
    # Computed as written, these correlations are 1.0000000000000002 and -1.0000000000000002.
    x = ["4.2", "4.3", "2.4", "4.2"]
    assert M.correlation("pearson", x, x) == 1.0
    assert M.correlation("pearson", ["1.2", "2.9", "3.7", "2.4", "3.0"], ["3.8", "2.1", "1.3", "2.6", "2.0"]) == -1.0


def test_pearson_does_not_depend_on_where_the_scale_starts():
    # centred before multiplying: scores around 10**6 correlate as the same scores around 0
    golds, preds = [0.1, 0.2, 0.7, 0.3, 0.4, 0.6], [0.2, 0.1, 0.8, 0.2, 0.5, 0.5]
    near_zero = M.correlation("pearson", [str(v) for v in preds], [str(v) for v in golds])
    shifted = M.correlation("pearson", [str(v + 1e6) for v in preds], [str(v + 1e6) for v in golds])
    assert near_zero == pytest.approx(0.9103961030886532, abs=1e-12)
    assert shifted == pytest.approx(near_zero, abs=1e-9)


def test_pearson_known_value_and_the_nan_cases():
    # x = 1,2,1,2 (sxx = 1 exactly); y = 1,2,2,2: sxy = 0.5, syy = 0.75 -> 1/sqrt(3)
    assert M.correlation("pearson", ["1", "2", "2", "2"], ["1", "2", "1", "2"]) == pytest.approx(3**-0.5, abs=1e-12)

    # x = 1,2,3,4; y = 1,3,2,4: sxy = 4, sxx = syy = 5 -> 0.8
    assert M.correlation("pearson", ["1", "3", "2", "4"], ["1", "2", "3", "4"]) == pytest.approx(0.8, abs=1e-12)
    assert M.correlation("pearson", ["1", "2"], ["1", "2"]) == pytest.approx(1.0)  # two samples are enough
    assert M.correlation("pearson", ["1"], ["1"]) == 0.0  # one is not: NaN -> 0
    assert M.correlation("pearson", ["1", "2", "3"], ["inf", "2", "3"]) == 0.0  # a non-finite gold
    assert M.correlation("spearman", ["1", "2", "3"], ["4", "4", "4"]) == 0.0  # constant golds
    assert math.isnan(M.pearson([1.0, 2.0], [float("nan"), 1.0]))
    assert math.isnan(M.pearson([1.0, 2.0, 3.0], [2.0, 2.0, 2.0]))


# --------------------------------------------------------------------------- BLEU, scorers, task scores


def test_bleu_en_by_hand_and_ja_as_sacrebleu_scores_it():
    en = M.sample_scorer("bleu_en")
    # 1- to 4-gram precisions 5/6, 3/5, 2/4, 1/3, no brevity penalty: (1/12) ** (1/4)
    assert en("the cat sat on a mat", "the cat sat on the mat") == pytest.approx(100 * (1 / 12) ** 0.25, rel=1e-9)
    # effective order: only 1- and 2-grams exist (both precisions 1); brevity penalty exp(1 - 6/2)
    assert en("the cat", "the cat sat on the mat") == pytest.approx(100 * math.exp(-2), rel=1e-9)
    assert en("  the cat sat on a mat\n", " the cat sat on the mat ") == pytest.approx(
        100 * (1 / 12) ** 0.25, rel=1e-9
    )  # sides stripped
    assert en(" ", "") == 1.0 and en("", "x") == 0.0 and en("x", " ") == 0.0
    # sacrebleu 2.x, trg_lang="ja" (MeCab), effective_order, as llm-jp-eval v1.4.1 calls it
    assert M.sample_scorer("bleu_ja")("今日はいい天気です。", "今日は良い天気です。") == pytest.approx(
        37.99178428257963, rel=1e-9
    )


def test_bleu_is_skipped_with_the_reason_without_sacrebleu_or_mecab(monkeypatch):
    import sys

    import sacrebleu.tokenizers.tokenizer_ja_mecab as ja

    monkeypatch.setattr(ja, "MeCab", None)  # what sacrebleu sets when mecab-python3 is missing
    with pytest.raises(
        M.Skipped,
        match=r"^BLEU tokenizer for 'ja' unavailable \(RuntimeError: install "
        r"sacrebleu\[ja\]\)$",
    ):
        M.sample_scorer("bleu_ja")
    _, skipped, _ = M.task_scores(["bleu_ja", "exact_match"], ["猫"], ["猫"])
    assert skipped == {"bleu_ja": "BLEU tokenizer for 'ja' unavailable (RuntimeError: install sacrebleu[ja])"}
    assert M.sample_scorer("bleu_en")("a b", "a b") == pytest.approx(100.0)  # English needs no MeCab
    monkeypatch.setitem(sys.modules, "sacrebleu.metrics", None)  # sacrebleu not installed
    with pytest.raises(M.Skipped, match=r"^sacrebleu is not installed$"):
        M.sample_scorer("bleu_en")


def test_scorers_by_metric_name():
    assert M.sample_scorer("exact_match") is M.exact_match_sample
    assert M.sample_scorer("char_f1") is M.char_f1_sample and M.sample_scorer("set_f1") is M.set_f1_sample
    assert M.sample_scorer("pearson") is None and M.sample_scorer("spearman") is None
    with pytest.raises(M.Skipped, match=r"^unknown metric 'rouge9'$"):
        M.sample_scorer("rouge9")
    with pytest.raises(M.Skipped, match=r"^needs sandboxed code execution$"):
        M.sample_scorer("code_exec")
    with pytest.raises(M.Skipped, match=r"^needs unbabel-comet and the Unbabel/wmt22-comet-da model$"):
        M.sample_scorer("comet_wmt22")


def test_task_scores_known_answers():
    preds, golds = ["1", "2", "x"], ["1", "3", "3"]
    # a skipped metric first and the corpus-level one in the middle: each is one metric, the rest still scored
    scores, skipped, per_sample = M.task_scores(["code_exec", "exact_match", "pearson", "char_f1"], preds, golds)
    assert scores["exact_match"] == pytest.approx(1 / 3) and per_sample["exact_match"] == [1.0, 0.0, 0.0]
    assert per_sample["char_f1"] == [1.0, 0.0, 0.0] and scores["char_f1"] == pytest.approx(1 / 3)
    # pearson of golds 1,3,3 with 1,2,-2 ("x" reads -2): corpus-level, no per-sample list
    assert scores["pearson"] == pytest.approx(M.pearson([1.0, 3.0, 3.0], [1.0, 2.0, -2.0]), abs=1e-12)
    assert "pearson" not in per_sample and set(per_sample) == {"exact_match", "char_f1"}
    assert skipped == {"code_exec": "needs sandboxed code execution"} and "code_exec" not in scores
    empty, _, lists = M.task_scores(["exact_match"], [], [])
    assert empty == {"exact_match": 0.0} and lists == {"exact_match": []}


# --------------------------------------------------------------------------- categories and AVG


def _all_tasks(category_set: str, value_of) -> dict[str, dict[str, float]]:
    return {
        t: {m: value_of(cat, t)} for cat, members in M.CATEGORY_SETS[category_set].items() for t, m in members.items()
    }


def test_avg_when_every_task_of_the_set_is_scored():
    # each category scores its position / 10 on every task: category means 0.1 .. 1.0, AVG 0.55
    order = list(M.CATEGORIES)
    tasks = _all_tasks("all-without-nc", lambda cat, t: (order.index(cat) + 1) / 10)
    tasks["jsts"] = {"pearson": 0.25}
    tasks["jnli"]["char_f1"] = 0.0  # a metric that is not NLI's main one is not averaged
    agg = M.aggregate(tasks)
    assert agg["categories"] == pytest.approx({cat: (i + 1) / 10 for i, cat in enumerate(order)})
    assert agg["AVG"] == pytest.approx(0.55) and agg["AVG_partial"] is None
    assert agg["partial_categories"] == {} and agg["missing"] == [] and agg["reported"] == {"STS": 0.25}
    assert agg["category_set"] == "all-without-nc"
    # the same scores judged against all-with-nc: SUM is missing, so only a partial AVG
    nc = M.aggregate(tasks, "all-with-nc")
    assert nc["AVG"] is None and nc["missing"] == ["xlsum_ja/rouge2_scaling"]
    assert nc["AVG_partial"] == pytest.approx(0.55) and nc["category_set"] == "all-with-nc"
    with_sum = M.aggregate({**tasks, "xlsum_ja": {"rouge2_scaling": 0.0}}, "all-with-nc")
    assert with_sum["AVG"] == pytest.approx(5.5 / 11) and with_sum["categories"]["SUM"] == 0.0


def test_a_task_without_its_main_metric_is_missing():
    agg = M.aggregate({"jsquad": {"exact_match": 1.0}, "jnli": {"exact_match": 0.5}})
    assert "jsquad/char_f1" in agg["missing"] and "RC" not in agg["categories"]
    assert agg["partial_categories"] == {"NLI": 0.5} and agg["AVG_partial"] == 0.5
    assert len(agg["missing"]) == sum(len(m) for m in M.CATEGORIES.values()) - 1
    nothing = M.aggregate({})
    assert nothing["AVG"] is None and nothing["AVG_partial"] is None and nothing["reported"] == {}


def test_an_unknown_category_set_is_refused_by_name():
    with pytest.raises(
        ValueError,
        match=r"^unknown llm-jp-eval category set 'all' \(choose from: all-without-nc, "
        r"all-with-nc\)$",
    ):
        M.aggregate({}, "all")


@pytest.mark.parametrize(
    "task,category",
    [("jnli", "NLI"), ("mbpp", "CG"), ("xlsum_ja", "SUM"), ("jsts", "STS"), ("wiki_pas", "FA"), ("nosuch", None)],
)
def test_category_of(task, category):
    assert M.category_of(task) == category
