"""llm-jp-eval v2: the parts of its protocol that could be checked against its own code and output.

Status (details and sources in docs/llm_jp_eval.md, "llm-jp-eval v2"): ``eval.llm_jp_eval.version``
still accepts only ``1.4.1``. llm-jp-eval v2.1.5's source (tag commit ``TAG_COMMIT``) could not be
obtained; its metric definitions beyond what a few real records show, its default category table
(``eval_configs/all_datasets.yaml``), its ``*_ool`` rule and the few-shot choice per task are
unknown, so no v2 score is offered: a score that claims to be v2.1.5 without that check would be an
invented protocol. ``check_version`` gives the one-line refusal, naming each unchecked piece.

What this module does implement, each piece checked (tests/unit/eval/llm_jp_eval/test_fidelity_v2.py) against expected
values the reference produced, never jsweep:

- ``extract_answer``: v2's answer extraction by ``answer_pattern_id`` (``answer_tags``,
  ``choice_only``, ``json_output``, ``code_output`` in ``_jp``/``_en`` form, and ``custom`` with the
  task's ``answer_extract_pattern`` or the default "text before the first blank line"): the first
  ``re.search(regex, text, re.DOTALL)`` match, its groups joined and stripped, ``""`` when nothing
  matches. References: v2's ``answer_parser.py`` as vendored in wandb/llm-leaderboard (2025-07-07),
  run on 513 adversarial cases, and 70 real v2.1.5 records (raw output -> extracted answer).
  The ``latex_boxed_*`` and ``dataset`` ids exist upstream but their definitions were not
  available; they raise ``AnswerPatternError`` rather than being guessed.
- ``render_prompt``: v2.1.5's Japanese evaluation prompt, equal to 70 prompts v2.1.5 wrote.
- ``category_scores``: categories and AVG from an evaluation config's ``categories``, equal to two
  real v2.1.5 runs.

Pure Python; imports no torch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

VERSION = "2.1.5"

# Default ``custom`` pattern: the text up to the first blank line (or the end).
DEFAULT_CUSTOM_REGEX = r"(?s)^(.*?)(?=\n\n|\Z)"

_TAGS = r"<answer>(.*?)</answer>"
_FIRST_LINE = r"(?s)^(.*?)(?=\n|\Z)"
_JSON = r"```json\s*\n?(.*?)\n?```"
_CODE = r"```(?:\w+)?\s*\n?(.*?)\n?```"


@dataclass(frozen=True)
class AnswerPattern:
    """An answer format: the line the prompt shows (``### 回答形式``) and the regex that extracts it."""

    text: str
    regex: str


ANSWER_PATTERNS: dict[str, AnswerPattern] = {
    "answer_tags_jp": AnswerPattern("<answer></answer>タグで囲んで回答してください", _TAGS),
    "answer_tags_en": AnswerPattern("Please answer within <answer></answer> tags", _TAGS),
    "choice_only_jp": AnswerPattern("選択肢の番号または文字のみで回答してください", _FIRST_LINE),
    "choice_only_en": AnswerPattern("Please answer with only the choice number or letter", _FIRST_LINE),
    "json_output_jp": AnswerPattern("```json\n```のJSON形式で回答してください", _JSON),
    "json_output_en": AnswerPattern("Please answer in JSON format: ```json\n```", _JSON),
    "code_output_jp": AnswerPattern("```\n```のコードブロック形式で回答してください", _CODE),
    "code_output_en": AnswerPattern("Please answer in code block format: ```\n```", _CODE),
}
CUSTOM = "custom"
# Pattern ids that exist in llm-jp-eval v2.1.x but whose definitions could not be checked.
UNVERIFIED_PATTERNS = ("latex_boxed_jp", "latex_boxed_en", "dataset")


class AnswerPatternError(ValueError):
    """An answer pattern jsweep cannot apply as llm-jp-eval v2 does (unknown or unverified id, or a
    custom regex whose unmatched optional group the reference cannot join either)."""


def extract_answer(generated: str, pattern_id: str, custom_regex: str | None = None) -> str:
    """The answer llm-jp-eval v2 extracts from ``generated`` for a task's ``answer_pattern_id``.

    ``custom`` uses ``custom_regex`` (the task's ``answer_extract_pattern``), or
    ``DEFAULT_CUSTOM_REGEX`` when it is empty or None. The text is not normalised here."""
    if pattern_id == CUSTOM:
        regex = custom_regex or DEFAULT_CUSTOM_REGEX
    elif pattern_id in ANSWER_PATTERNS:
        regex = ANSWER_PATTERNS[pattern_id].regex
    elif pattern_id in UNVERIFIED_PATTERNS:
        raise AnswerPatternError(
            f"answer_pattern_id {pattern_id!r} exists in llm-jp-eval v2.1.x but its definition "
            "could not be checked against llm-jp-eval's code (docs/llm_jp_eval.md)"
        )
    else:
        raise AnswerPatternError(
            f"unknown answer_pattern_id {pattern_id!r} (known: {', '.join([*ANSWER_PATTERNS, CUSTOM])})"
        )
    match = re.search(regex, generated, re.DOTALL)
    if not match:
        return ""
    groups = match.groups()
    if any(g is None for g in groups):
        raise AnswerPatternError(
            f"answer pattern {regex!r} matched {generated[:40]!r} with an unmatched group; "
            "llm-jp-eval v2 fails on it too (it joins the groups)"
        )
    return "".join(groups).strip()


def answer_pattern_text(pattern_id: str) -> str | None:
    """The answer-format line a v2 prompt shows for ``pattern_id`` (None for ``custom``)."""
    if pattern_id == CUSTOM:
        return None
    if pattern_id not in ANSWER_PATTERNS:
        extract_answer("", pattern_id)  # raises: unknown or unverified id
    return ANSWER_PATTERNS[pattern_id].text


def render_prompt(
    instruction: str, few_shots: Sequence[tuple[str, str]], answer_pattern: str | None, input_text: str
) -> str:
    """llm-jp-eval v2.1.5's Japanese evaluation prompt, as its ``dump`` step writes it.

    Blocks separated by a blank line, each only when non-empty: ``### 指示`` and the instruction,
    ``### 回答形式`` and the answer-format line, ``<examples>`` with numbered ``<example_N>`` blocks
    of ``### 入力:`` / ``### 応答:``; then ``### 入力:``, the sample's input and ``### 応答:`` with a
    final newline. Values are inserted verbatim. Checked against 70 prompts written by v2.1.5
    (tests/unit/eval/llm_jp_eval/test_fidelity_v2.py); an empty instruction was not among them."""
    blocks = []
    if instruction:
        blocks.append(f"### 指示\n{instruction}")
    if answer_pattern:
        blocks.append(f"### 回答形式\n{answer_pattern}")
    if few_shots:
        shots = "\n".join(
            f"<example_{i}>\n### 入力:\n{shot_in}\n### 応答:\n{shot_out}\n</example_{i}>"
            for i, (shot_in, shot_out) in enumerate(few_shots, 1)
        )
        blocks.append(f"<examples>\n{shots}\n</examples>")
    blocks.append(f"### 入力:\n{input_text}\n### 応答:\n")
    return "\n\n".join(blocks)


def category_scores(scores: dict[str, float], categories: dict[str, dict]) -> dict[str, float]:
    """Categories and AVG as llm-jp-eval v2.1.5 computes them from an evaluation config's ``categories``.

    A category is the mean of ``<dataset>_<metric>`` over its ``datasets``, the metric being the
    category's ``metrics[dataset]`` when given, else its ``default_metric``; AVG is the mean of the
    categories. Returns {} unless every needed score is present. Checked against two v2.1.5 runs
    (tests/unit/eval/llm_jp_eval/test_fidelity_v2.py), whose config had no per-dataset ``metrics``."""
    out: dict[str, float] = {}
    for name, cat in categories.items():
        keys = [f"{ds}_{(cat.get('metrics') or {}).get(ds, cat['default_metric'])}" for ds in cat["datasets"]]
        if not keys or any(k not in scores for k in keys):
            return {}
        out[name] = sum(scores[k] for k in keys) / len(keys)
    if out:
        out["AVG"] = sum(out.values()) / len(out)
    return out


# The commit llm-jp/llm-jp-eval's v2.1.5 tag points to (llm-jp/scripts @ 820f1d01,
# evaluation/installers/llm-jp-eval-v2.1.5/scripts/environment.sh); its source could not be fetched.
TAG_COMMIT = "5067fe7bcd33797643835573505d5ec06858ea34"

# What a v2.1.5 score needs and no reference available here determines (docs/llm_jp_eval.md).
UNVERIFIED = (
    "its task-level metrics (beyond per-sample exact and char_f1)",
    "its *_ool rule",
    "its default category table (eval_configs/all_datasets.yaml)",
)


def check_version(version: str) -> list[str]:
    """The refusal for a v2 version: one line saying why it cannot be selected yet."""
    if str(version).startswith("2"):
        reason = (
            f"eval.llm_jp_eval.version {version} is not available: llm-jp-eval v2.1.5's own code "
            f"(tag commit {TAG_COMMIT[:8]}) could not be obtained, so {', '.join(UNVERIFIED[:-1])} and {UNVERIFIED[-1]} "
            "are unchecked; jsweep offers only 1.4.1 (docs/llm_jp_eval.md, 'llm-jp-eval v2')"
        )
        return [reason]
    return []
