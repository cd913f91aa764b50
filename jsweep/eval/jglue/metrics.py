"""JSQuAD scoring of the ``jp_stable`` style: JP-Stable's own metrics, and JGLUE's character F1.

All three take the best score over a question's gold answers (JSQuAD dev questions have up to 3).

- ``exact_match`` (the headline, what the JP-Stable tables and their averages print):
  JP-Stable's ``lm_eval/jasquad/evaluate.py``: emoji removed, ``neologdn.normalize``, runs of
  whitespace collapsed; then prediction == gold.
- ``f1``: JP-Stable's F1: both sides normalised as above, split into words by MeCab (fugashi's
  ``Tagger("-Owakati")`` with the unidic-lite dictionary, JP-Stable's ``ja`` extra), punctuation
  tokens dropped, SQuAD's token F1 (0 when nothing is shared, so also when both sides are empty).
- ``char_f1``: JGLUE's character-level F1: NFKC and whitespace collapsed, characters as tokens,
  whitespace and the punctuation above dropped (an empty side scores 1 only if both are empty).

Scores are in [0, 1] (published tables print them x100). neologdn, emoji and fugashi come with
jsweep's ``eval`` extra; they are imported when a JSQuAD answer is scored.
"""

from __future__ import annotations

import functools
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Any

JP_STABLE_PACKAGES = ("neologdn", "emoji", "fugashi", "unidic_lite")

# JP-Stable lm_eval/jasquad/evaluate.py remove_punc(): CJK punctuation + string.punctuation.
PUNCTUATION = frozenset(
    "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏."
    + string.punctuation
)


def normalize_answer(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).split())


# JP-Stable remove_emoji(): emoji.is_emoji per character, then these code-point ranges.
_EMOJI_RANGES = re.compile(
    "[\U0001f600-\U0001f64f\U0001f300-\U0001f5ff\U0001f680-\U0001f6ff\U0001f1e0-\U0001f1ff\U00002702-\U000027b0]+",
    flags=re.UNICODE,
)


def jp_stable_normalize(text: str) -> str:
    """JP-Stable's ``normalize_answer``: emoji removed, neologdn, whitespace collapsed."""
    import emoji
    import neologdn

    text = _EMOJI_RANGES.sub("", "".join("" if emoji.is_emoji(c) else c for c in text))
    return " ".join(neologdn.normalize(text).split())


@functools.lru_cache(maxsize=1)
def _wakati():
    from fugashi import Tagger

    return Tagger("-Owakati")


def _words(text: str) -> list[str]:
    return [w for w in _wakati().parse(jp_stable_normalize(text)).split() if w not in PUNCTUATION]


def jp_stable_exact_match_one(prediction: str, gold: str) -> float:
    return float(jp_stable_normalize(prediction) == jp_stable_normalize(gold))


def jp_stable_f1_one(prediction: str, gold: str) -> float:
    pred, ref = _words(prediction), _words(gold)
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def _chars(text: str) -> list[str]:
    return [c for c in normalize_answer(text) if not c.isspace() and c not in PUNCTUATION]


def exact_match_one(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def char_f1_one(prediction: str, gold: str) -> float:
    pred, ref = _chars(prediction), _chars(gold)
    if not pred or not ref:
        return float(pred == ref)
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def best(metric, prediction: str, golds: Sequence[str]) -> float:
    return max((metric(prediction, g) for g in golds), default=0.0)


def jsquad_scores(prediction: str, golds: Sequence[str]) -> dict[str, float]:
    return {
        "exact_match": best(jp_stable_exact_match_one, prediction, golds),
        "f1": best(jp_stable_f1_one, prediction, golds),
        "char_f1": best(char_f1_one, prediction, golds),
    }


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """The harness's ``process_results`` hook for JSQuAD: ``results`` = [the (filtered) generation]."""
    return jsquad_scores(results[0] if results else "", list(doc["answers"]["text"]))


# The metric_list that goes with process_results (mean over samples).
METRIC_LIST = [{"metric": m, "aggregation": "mean", "higher_is_better": True} for m in ("exact_match", "f1", "char_f1")]
