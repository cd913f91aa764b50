"""llm-jp-eval v2 pieces equal the reference's own results.

Two kinds of expected values, none produced by jsweep:
- tests/data/fidelity/v2/llm_jp_eval_v2_expected.json: llm-jp-eval v2's
  ``answer_parser.extract_answer_with_pattern`` (as vendored in wandb/llm-leaderboard @ fb5ea69,
  2025-07-07) run on the 513 adversarial inputs beside it (34 texts with tags, fences, blank lines,
  full-width characters, CR LF, unclosed markup... under every pattern id and 7 custom regexes).
  Where the reference raised, jsweep must raise too.
- tests/data/fidelity/v2/llm_jp_eval_v2.1.5_results.json: two real llm-jp-eval v2.1.5 runs (from
  sotanengel/LFM2.5-JP): 70 records (jmmlu's left out for its licence) with the prompt v2.1.5
  wrote, the raw output, the answer it extracted and its exact/char_f1, and the runs' task,
  category and AVG scores.

v2.1.5 itself is not selectable (its metrics and categories could not all be checked): the last
test pins that refusal. See docs/llm_jp_eval.md, "llm-jp-eval v2".
"""

from __future__ import annotations

import json
import re

import pytest

from jsweep.eval.llm_jp_eval import evaluator as L
from jsweep.eval.llm_jp_eval import metrics as M
from jsweep.eval.llm_jp_eval import v2 as V2
from tests.support.paths import TEST_DATA

DATA = TEST_DATA / "fidelity" / "v2"
INPUTS = json.loads((DATA / "llm_jp_eval_v2_inputs.json").read_text(encoding="utf-8"))
REF = json.loads((DATA / "llm_jp_eval_v2_expected.json").read_text(encoding="utf-8"))
REAL = json.loads((DATA / "llm_jp_eval_v2.1.5_results.json").read_text(encoding="utf-8"))
RECORDS = [(run, r) for run in REAL["runs"] for r in run["records"]]


def _pattern(run, task):
    """A record's answer pattern: the run's dataset_info_overrides, else the id its prompt shows."""
    override = run["eval_dataset_config"].get("dataset_info_overrides", {}).get(task, {})
    if "answer_pattern_id" in override:
        return override["answer_pattern_id"], override.get("answer_extract_pattern")
    return REAL["answer_pattern_ids_from_prompts"][task], None


def test_reference_files_line_up():
    assert len(INPUTS["extraction"]) == len(REF["extraction"]) == 513
    # the adversarial set exercises every verified pattern, the default custom regex and matches/misses
    ids = {c["pattern_id"] for c in INPUTS["extraction"]}
    assert set(V2.ANSWER_PATTERNS) | {V2.CUSTOM} <= ids
    answers = [e["answer"] for e in REF["extraction"] if "answer" in e]
    assert "" in answers and sum(a != "" for a in answers) > 100
    assert [run["version"] for run in REAL["runs"]] == ["2.1.5", "2.1.5"] and len(RECORDS) == 70
    assert len({r["target_dataset"] for _, r in RECORDS}) == 7


def test_answer_extraction_equals_llm_jp_eval_v2():
    mismatches = []
    for case, ref in zip(INPUTS["extraction"], REF["extraction"]):
        if "error" in ref:
            with pytest.raises(V2.AnswerPatternError):
                V2.extract_answer(case["text"], case["pattern_id"], case["custom_regex"])
            continue
        got = V2.extract_answer(case["text"], case["pattern_id"], case["custom_regex"])
        if got != ref["answer"]:
            mismatches.append((case, got, ref["answer"]))
    assert not mismatches, mismatches[:5]


def test_answer_extraction_equals_real_v2_1_5_records():
    for run, r in RECORDS:
        pattern_id, regex = _pattern(run, r["target_dataset"])
        assert V2.extract_answer(r["output"], pattern_id, regex) == r["pred"], (r["target_dataset"], r["output"][:80])


def test_answer_format_lines_equal_llm_jp_eval_v2():
    assert {k: p.text for k, p in V2.ANSWER_PATTERNS.items()} == REF["pattern_text"]
    assert V2.answer_pattern_text("custom") is None
    with pytest.raises(V2.AnswerPatternError, match="could not be checked"):
        V2.answer_pattern_text("latex_boxed_jp")
    # the lines v2.1.5 itself put in its prompts
    for run, r in RECORDS:
        pattern_id, _ = _pattern(run, r["target_dataset"])
        line = V2.answer_pattern_text(pattern_id)
        assert (f"### 回答形式\n{line}\n" in r["prompt"]) == (line is not None), r["target_dataset"]


def _parse(prompt):
    """Instruction, answer-format line and few-shots out of a v2.1.5 prompt (headers never occur in them)."""
    assert prompt.startswith("### 指示\n")
    head, _, _ = prompt.partition("\n\n### 入力:\n")
    instruction = re.split(r"\n\n(?:### 回答形式\n|<examples>\n)", head[len("### 指示\n") :])[0]
    pattern = re.search(r"### 回答形式\n(.*?)\n\n", prompt)
    shots = re.findall(r"<example_\d+>\n### 入力:\n(.*?)\n### 応答:\n(.*?)\n</example_\d+>", prompt, re.DOTALL)
    return instruction, pattern.group(1) if pattern else None, shots


def test_prompt_equals_real_v2_1_5_prompts():
    kinds = set()
    for _run, r in RECORDS:
        instruction, pattern, shots = _parse(r["prompt"])
        kinds.add((pattern is not None, bool(shots)))
        assert V2.render_prompt(instruction, shots, pattern, r["input"]) == r["prompt"], r["target_dataset"]
    assert kinds == {(True, True), (False, False)}  # with format line and examples, and neither


def test_char_f1_and_exact_of_real_v2_1_5_records():
    for _, r in RECORDS:
        assert M.char_f1_sample(r["pred"], r["true"]) == pytest.approx(r["char_f1"], abs=1e-9)
        assert int(r["pred"] == r["true"]) == r["exact"]


def test_categories_and_avg_equal_real_v2_1_5_runs():
    for run in REAL["runs"]:
        cats = run["eval_dataset_config"]["categories"]
        ours = V2.category_scores(run["scores"], cats)
        assert set(ours) == set(cats) | {"AVG"}
        for name, value in ours.items():
            assert value == pytest.approx(run["scores"][name], abs=1e-6), name
    assert V2.category_scores({}, REAL["runs"][0]["eval_dataset_config"]["categories"]) == {}


def test_v2_version_is_refused_with_one_line_reason():
    problems = L.check({"version": "2.1.5"})
    assert len(problems) == 1 and "2.1.5 is not available" in problems[0] and "docs/llm_jp_eval.md" in problems[0]
    # one line naming the v2.1.5 tag's commit and each piece that could not be checked
    assert "\n" not in problems[0] and V2.TAG_COMMIT[:8] in problems[0]
    for piece in ("task-level metrics", "*_ool rule", "default category table (eval_configs/all_datasets.yaml)"):
        assert piece in problems[0], piece
    assert L.check({"version": "9.9"}) == ["eval.llm_jp_eval.version must be one of 1.4.1, got '9.9'"]


def test_the_v2_refusal_reaches_pre_flight_from_the_override_a_user_types():
    from jsweep.compose import compose_spec
    from jsweep.eval.run import check_evaluators

    for override in ("eval.llm_jp_eval.version=2.1.5", "eval.llm_jp_eval.version=2.1"):
        problems = check_evaluators(compose_spec(["eval=[llm_jp_eval]", override]))
        assert len(problems) == 1 and problems[0].startswith("eval.llm_jp_eval: "), problems
        assert "is not available" in problems[0] and V2.TAG_COMMIT[:8] in problems[0]
    assert check_evaluators(compose_spec(["eval=[llm_jp_eval]", "eval.llm_jp_eval.version=1.4.1"])) == []
