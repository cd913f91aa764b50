"""Scores equal the reference tools' own, on adversarial inputs.

The expected values in tests/data/fidelity/ were produced by the reference code run in a scratch
environment on the inputs beside them, never by jsweep:
- llm_jp_eval_v1.4.1_expected.json: llm-jp-eval v1.4.1's answer extraction, metrics and
  post_process_score_results, with its own libraries (fuzzywuzzy 0.18.0 + python-Levenshtein 0.27.5,
  scipy's pearsonr/spearmanr, scikit-learn's accuracy_score);
- jsquad_jp_stable_expected.json: Stability-AI/lm-evaluation-harness@jp-stable
  lm_eval/jasquad/evaluate.py (neologdn, emoji, fugashi with unidic-lite).
"""

from __future__ import annotations

import json
import random

import pytest

from jsweep.eval.llm_jp_eval import metrics as M
from jsweep.eval.llm_jp_eval.evaluator import extract_answer
from jsweep.tools.score import score_file
from tests.support.paths import TEST_DATA

DATA = TEST_DATA / "fidelity"
EDGE = [json.loads(line) for line in (DATA / "llm_jp_eval_edge_cases.jsonl").read_text(encoding="utf-8").splitlines()]
REF = json.loads((DATA / "llm_jp_eval_v1.4.1_expected.json").read_text(encoding="utf-8"))


def test_answer_extraction_equals_llm_jp_eval():
    assert [extract_answer(r["raw"]) for r in EDGE] == REF["extracted"]


@pytest.fixture
def scored(tmp_path):
    f = tmp_path / "preds.jsonl"
    f.write_text(
        "\n".join(
            json.dumps({"task": r["task"], "pred": p, "gold": r["gold"]}, ensure_ascii=False)
            for r, p in zip(EDGE, REF["extracted"])
        ),
        encoding="utf-8",
    )
    return score_file(f)


def test_every_task_score_equals_llm_jp_eval(scored):
    assert set(scored["tasks"]) == set(REF["tasks"])
    for task, metrics in REF["tasks"].items():
        assert set(scored["tasks"][task]) == set(metrics), task
        for metric, value in metrics.items():
            assert scored["tasks"][task][metric] == pytest.approx(value, abs=1e-6), f"{task}/{metric}"


def test_char_f1_equals_fuzzywuzzy_per_sample_and_on_random_pairs():
    ours = [
        M.char_f1_sample(extract_answer(r["raw"]), M.normalize(r["gold"]))
        for r in EDGE
        if r["task"] in M.CATEGORIES["QA"] or r["task"] in ("jsquad", "wiki_reading")
    ]
    assert ours == REF["char_f1_samples"]
    rnd = random.Random(REF["random_pairs_seed"])
    alphabet = "あいうえおかきくけこ東京都大阪abcAB 12.、"
    pairs = [
        (
            "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 12))),
            "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 12))),
        )
        for _ in range(3000)
    ]
    # pairs whose ratio is exactly x.5% in exact arithmetic (2*LCS/total = 42.5% ...): the reference's
    # float formula, 1 - distance/total, decides which way they round (a plain 2*LCS/total differs)
    pairs += [
        ("東" * lcs + "京" * (n // 2 - lcs), "東" * lcs + "都" * (n // 2 - lcs))
        for n, lcs in ((80, 17), (80, 23), (160, 34), (160, 46), (240, 51), (240, 69), (80, 3), (320, 92))
    ]
    got = [round(100 * M.char_f1_sample(a, b)) for a, b in pairs]
    diff = [
        (pairs[i], got[i], REF["random_pairs_char_f1_percent"][i])
        for i in range(len(pairs))
        if got[i] != REF["random_pairs_char_f1_percent"][i]
    ]
    assert diff == []


def test_jsts_parsing_follows_llm_jp_eval():
    assert M.parse_float("約5") == 5.0 and M.parse_float("-1") == 1.0 and M.parse_float("1e3") == 13.0
    assert M.parse_float("nan") == -2.0 and M.parse_float("inf") == -2.0 and M.parse_float("1.2.3") == -2.0
    assert M.parse_float("") == -2.0 and M.parse_float("3.5点") == 3.5
    # a non-finite value never makes a perfect correlation
    assert M.pearson([1.0, 2.0, 3.0], [1.0, float("nan"), 3.0]) != M.pearson([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert M.correlation("pearson", ["2", "2", "2"], ["1", "2", "3"]) == 0.0  # constant: NaN -> 0


@pytest.mark.parametrize("category_set", ["all-without-nc", "all-with-nc"])
def test_categories_and_avg_equal_post_process_score_results(category_set):
    tasks = {t: dict(s) for t, s in REF["tasks"].items()}
    for key, value in REF["given_scores"].items():  # MT/CG/SUM scores the reference takes as given
        task, _, metric = (
            key.rpartition("_comet_wmt22")[0] and (key.rpartition("_comet_wmt22")[0], "", "comet_wmt22")
        ) or next((key[: -len(m) - 1], "", m) for m in ("code_exec", "rouge2_scaling") if key.endswith(m))
        tasks.setdefault(task, {})[metric] = value
    agg = M.aggregate(tasks, category_set)
    expected = REF["aggregate"][category_set]
    assert agg["AVG"] == pytest.approx(expected["AVG"], abs=1e-6)
    assert agg["AVG_partial"] is None and agg["partial_categories"] == {} and agg["missing"] == []
    assert agg["categories"] == pytest.approx({k: v for k, v in expected.items() if k != "AVG"}, abs=1e-6)


def test_a_partial_run_gets_partial_names_never_the_full_ones(scored):
    # The edge cases have no MT (COMET) or CG (code execution): llm-jp-eval would compute no AVG.
    assert scored["AVG"] is None
    assert scored["AVG_partial"] == pytest.approx(
        sum(REF["aggregate"]["all-without-nc"][c] for c in ("NLI", "QA", "RC", "MC", "HE", "EL", "FA", "MR")) / 8,
        abs=1e-6,
    )
    assert "MT" not in scored["categories"] and "CG" not in scored["categories"]
    assert scored["category_set"] == "all-without-nc"
    assert "mbpp/code_exec" in scored["missing"]
    only_jnli = M.aggregate({"jnli": {"exact_match": 0.5}})
    assert only_jnli["categories"] == {} and only_jnli["partial_categories"] == {"NLI": 0.5}
    from jsweep.eval.llm_jp_eval.evaluator import flat_metrics

    flat = flat_metrics({"tasks": {"jnli": {"exact_match": 0.5}}, **only_jnli})
    assert flat == {"llm_jp_eval/AVG_partial": 0.5, "llm_jp_eval/NLI_partial": 0.5, "llm_jp_eval/jnli/exact_match": 0.5}


# --------------------------------------------------------------------------- JGLUE (JP-Stable)


def test_jsquad_scores_equal_jp_stable_jasquad():
    from jsweep.eval.jglue import metrics as J

    cases = json.loads((DATA / "jsquad_cases.json").read_text(encoding="utf-8"))
    ref = json.loads((DATA / "jsquad_jp_stable_expected.json").read_text(encoding="utf-8"))
    ours = [J.jsquad_scores(c["prediction"], c["answers"]) for c in cases]
    for i, (got, want) in enumerate(zip(ours, ref["per_question"])):
        assert got["exact_match"] == want["exact_match"], (i, cases[i])
        assert got["f1"] == pytest.approx(want["f1"], abs=1e-9), (i, cases[i])
    # the corpus figures JP-Stable prints (x100)
    assert 100 * sum(g["exact_match"] for g in ours) / len(ours) == pytest.approx(ref["evaluate"]["exact_match"])
    assert 100 * sum(g["f1"] for g in ours) / len(ours) == pytest.approx(ref["evaluate"]["f1"])


def test_jnli_task_versions_name_their_labels():
    from jsweep.eval.jglue import jp_stable

    v11 = jp_stable.config("jnli", "0.2", "1.1")
    v12 = jp_stable.config("jnli", "0.2", "1.2")
    assert v11["doc_to_choice"] == ["entailment", "contradiction", "neutral"]
    assert v12["doc_to_choice"] == ["含意", "矛盾", "中立"]
    # JP-Stable f9e1d75 (jnli 1.1 -> 1.2) changed exactly these strings of the 0.2 description
    assert v12["description"] == (
        "前提と仮説の関係を含意、矛盾、中立の中から回答してください。\n\n制約:\n"
        "- 前提から仮説が、論理的知識や常識的知識を用いて導出可能である場合は含意と出力\n"
        "- 前提と仮説が両立しえない場合は矛盾と出力\n- そのいずれでもない場合は中立と出力\n\n"
    )
    assert "entailment" not in jp_stable.config("jnli", "0.3", "1.3")["doc_to_text"]
    assert v11["metadata"]["jp_stable_task"] == "jnli-1.1-0.2" and v12["metadata"]["jp_stable_task"] == "jnli-1.2-0.2"
    from jsweep.errors import ConfigError
    from jsweep.eval.jglue import evaluator as jglue

    assert jglue.parse_options({"jnli_version": 1.3}).jnli_version == "1.3"
    with pytest.raises(ConfigError, match="jnli_version must be one of 1.1, 1.2, 1.3"):
        jglue.parse_options({"jnli_version": "2.0"})


def test_leaderboard_jsquad_keeps_the_harness_metric():
    from jsweep.eval.jglue import harness as H

    cfg = H.prompt_config("jsquad", "leaderboard")
    assert "process_results" not in cfg
    assert [m["metric"] for m in cfg["metric_list"]] == ["exact_match"]  # against answers.text[0]
    assert cfg["doc_to_target"] == "{{ answers['text'][0] }}"
    jp = H.prompt_config("jsquad", "jp_stable", "0.2")
    assert [m["metric"] for m in jp["metric_list"]] == ["exact_match", "f1", "char_f1"]
