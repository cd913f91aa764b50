"""llm-jp-eval metrics, categories and averages (protocol of llm-jp-eval v1.4.1). Pure Python.

Definitions follow llm-jp-eval's evaluator:

- ``exact_match``: share of predictions equal to the gold answer (both NFKC-normalised, stripped).
- ``char_f1``: ``fuzzywuzzy.fuzz.token_sort_ratio(pred, gold) / 100`` averaged. token_sort_ratio
  drops chr(128..255), turns non-word characters into spaces, lower-cases, sorts the whitespace
  tokens, then takes ``python-Levenshtein``'s ratio, which is rapidfuzz's normalised Indel
  similarity ``1 - (len1 + len2 - 2*LCS) / (len1 + len2)`` (computed by rapidfuzz here, as
  python-Levenshtein >= 0.21 does), rounded to an integer percent with Python's ``round``; equal
  strings score 100 and an empty side scores 0.
- ``set_f1``: predictions and golds split on newlines; precision = share of predicted lines found
  among the gold lines, recall = (same count) / number of gold lines; F1 per sample, averaged.
- ``pearson`` / ``spearman``: correlation of gold floats with predictions parsed as llm-jp-eval's
  ``parse_float`` does: every character but the digits and ``.`` is removed, then the rest is read
  as a float, and what cannot be read (empty, ``1.2.3``) counts as -2.0. So ``約5`` reads 5, ``-1``
  reads 1 and ``1e3`` reads 13. A correlation that is NaN (constant predictions, fewer than two
  samples) scores 0.0.
- ``bleu_ja`` / ``bleu_en``: sentence BLEU (sacrebleu, ``trg_lang=ja|en``, effective order; the
  Japanese tokenizer is MeCab via ``sacrebleu[ja]``) averaged over samples, 0-100 scale; a sample
  where either side is empty scores 1.0 if both are empty, else 0.0.

Categories and AVG follow llm-jp-eval v1.4.1's ``post_process_score_results``: a category is the
mean of its tasks' main metrics and AVG the mean of the categories of the category set
(``all-without-nc``, the default target, or ``all-with-nc``, which adds SUM). llm-jp-eval computes
them only when every task of the set was scored; jsweep then logs them under the same names, and
otherwise logs what it can under names that say so (``<CAT>_partial``, ``AVG_partial``).

Metrics that need downloaded models (``comet_wmt22``, ``bert_score_*``) or code execution
(``code_exec``) are reported as skipped with a reason, never as zero.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from statistics import mean

# Category -> {task: main metric}: llm-jp-eval v1.4.1's task_category_to_task_names for the
# target "all-without-nc" (the default); "all-with-nc" adds SUM.
CATEGORIES: dict[str, dict[str, str]] = {
    "NLI": {
        "jamp": "exact_match",
        "janli": "exact_match",
        "jnli": "exact_match",
        "jsem": "exact_match",
        "jsick": "exact_match",
    },
    "QA": {"jemhopqa": "char_f1", "niilc": "char_f1", "aio": "char_f1"},
    "RC": {"jsquad": "char_f1"},
    "MC": {"jcommonsenseqa": "exact_match", "commonsensemoralja": "exact_match", "kuci": "exact_match"},
    "EL": {"chabsa": "set_f1"},
    "FA": {
        "wiki_reading": "char_f1",
        "wiki_ner": "set_f1",
        "wiki_dependency": "set_f1",
        "wiki_pas": "set_f1",
        "wiki_coreference": "set_f1",
    },
    "MR": {"mawps": "exact_match", "mgsm": "exact_match"},
    "MT": {
        "alt-e-to-j": "comet_wmt22",
        "alt-j-to-e": "comet_wmt22",
        "wikicorpus-e-to-j": "comet_wmt22",
        "wikicorpus-j-to-e": "comet_wmt22",
    },
    "HE": {"mmlu_en": "exact_match", "jmmlu": "exact_match"},
    "CG": {"mbpp": "code_exec"},
}
NC_CATEGORIES: dict[str, dict[str, str]] = {"SUM": {"xlsum_ja": "rouge2_scaling"}}
CATEGORY_SETS: dict[str, dict[str, dict[str, str]]] = {
    "all-without-nc": CATEGORIES,
    "all-with-nc": {**CATEGORIES, **NC_CATEGORIES},
}
DEFAULT_CATEGORY_SET = "all-without-nc"
# Reported beside the categories, never averaged (llm-jp-eval scores jsts but leaves it out of AVG).
REPORTED_ONLY: dict[str, dict[str, str]] = {
    "STS": {"jsts": "pearson"},
}
# Metrics that need a downloaded model or code execution.
MODEL_METRICS = {
    "comet_wmt22": "unbabel-comet and the Unbabel/wmt22-comet-da model",
    "bert_score_ja_f1": "bert-score and a Japanese BERT model",
    "bert_score_en_f1": "bert-score and an English BERT model",
    "code_exec": "sandboxed code execution",
    "pylint_check": "pylint",
    "rouge2": "rouge scoring of summaries",
    "rouge2_scaling": "rouge scoring of summaries",
}


class Skipped(Exception):
    """A metric that cannot run here (missing package or model); reported, never scored as zero."""


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


# --------------------------------------------------------------------------- per-sample scores

_NON_WORD = re.compile(r"(?ui)\W")
_LATIN1 = dict.fromkeys(range(128, 256))


def process_and_sort(s: str) -> str:
    s = s.translate(_LATIN1)  # fuzzywuzzy's force_ascii drops chr(128..255)
    s = _NON_WORD.sub(" ", s).lower().strip()
    return " ".join(sorted(s.split())).strip()


def indel_ratio(a: str, b: str) -> float:
    """python-Levenshtein's ``ratio``: rapidfuzz's normalised Indel similarity, 1 - dist / (len(a)+len(b))."""
    from rapidfuzz.distance import Indel

    return Indel.normalized_similarity(a, b)


def char_f1_sample(pred: str, gold: str) -> float:
    """``fuzz.token_sort_ratio(pred, gold) / 100`` (fuzzywuzzy 0.18 with python-Levenshtein)."""
    a, b = process_and_sort(pred), process_and_sort(gold)
    if a == b:
        return 1.0
    if not a or not b:
        return 0.0
    return round(100 * indel_ratio(a, b)) / 100.0


def exact_match_sample(pred: str, gold: str) -> float:
    return float(pred == gold)


def set_f1_sample(pred: str, gold: str) -> float:
    pred_set = {x.strip() for x in pred.split("\n")}
    gold_list = [x.strip() for x in gold.split("\n")]
    hits = sum(1 for y in pred_set if y in gold_list)
    precision = hits / len(pred_set)
    recall = hits / len(gold_list)
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


_NOT_DIGIT_OR_DOT = re.compile(r"[^0-9.]")


def parse_float(text: str) -> float:
    """llm-jp-eval's ``parse_float``: keep only ASCII digits and ``.``, read a float, else -2.0."""
    try:
        return float(_NOT_DIGIT_OR_DOT.sub("", str(text)))
    except ValueError:
        return -2.0


def _bleu_sample(lang: str) -> Callable[[str, str], float]:
    try:
        from sacrebleu.metrics import BLEU
    except ImportError as exc:  # pragma: no cover - sacrebleu is a dependency of the eval extra
        raise Skipped("sacrebleu is not installed") from exc
    try:
        bleu = BLEU(trg_lang=lang, effective_order=True)
        bleu.sentence_score("テスト", ["テスト"])
    except Exception as exc:  # MeCab tokenizer missing for ja
        raise Skipped(f"BLEU tokenizer for '{lang}' unavailable ({type(exc).__name__}: install sacrebleu[ja])") from exc

    def score(pred: str, gold: str) -> float:
        if pred.strip() and gold.strip():
            return bleu.corpus_score([pred.strip()], [[gold.strip()]]).score
        return float(pred.strip() == gold.strip())

    return score


SAMPLE_METRICS: dict[str, Callable[[str, str], float]] = {
    "exact_match": exact_match_sample,
    "char_f1": char_f1_sample,
    "set_f1": set_f1_sample,
}


def sample_scorer(metric: str) -> Callable[[str, str], float] | None:
    """Per-sample scorer of a metric (None for corpus-level metrics such as pearson)."""
    if metric in SAMPLE_METRICS:
        return SAMPLE_METRICS[metric]
    if metric in ("bleu_ja", "bleu_en"):
        return _bleu_sample(metric[-2:])
    if metric in MODEL_METRICS:
        raise Skipped(f"needs {MODEL_METRICS[metric]}")
    if metric in ("pearson", "spearman"):
        return None
    raise Skipped(f"unknown metric '{metric}'")


# --------------------------------------------------------------------------- corpus-level scores


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    n = len(x)
    if n < 2 or not all(math.isfinite(v) for v in (*x, *y)):
        return math.nan
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return math.nan
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def correlation(metric: str, preds: Sequence[str], golds: Sequence[str]) -> float:
    x = [float(g) for g in golds]
    y = [parse_float(p) for p in preds]
    r = pearson(x, y) if metric == "pearson" else pearson(ranks(x), ranks(y))
    return 0.0 if math.isnan(r) else r


def task_scores(
    metrics: Iterable[str], preds: Sequence[str], golds: Sequence[str]
) -> tuple[dict[str, float], dict[str, str], dict[str, list[float]]]:
    """Score one task: ({metric: value}, {metric: why skipped}, {metric: per-sample scores})."""
    scores: dict[str, float] = {}
    skipped: dict[str, str] = {}
    per_sample: dict[str, list[float]] = {}
    for metric in metrics:
        try:
            scorer = sample_scorer(metric)
        except Skipped as exc:
            skipped[metric] = str(exc)
            continue
        if scorer is None:
            scores[metric] = correlation(metric, preds, golds)
            continue
        values = [scorer(p, g) for p, g in zip(preds, golds)]
        per_sample[metric] = values
        scores[metric] = mean(values) if values else 0.0
    return scores, skipped, per_sample


def aggregate(tasks: dict[str, dict[str, float]], category_set: str = DEFAULT_CATEGORY_SET) -> dict[str, object]:
    """Categories and AVG as llm-jp-eval v1.4.1 computes them, and what can be said of a partial run.

    Returns a dict with
    - ``categories``: {CAT: mean of its tasks' main metrics}, for categories whose every task was scored;
    - ``partial_categories``: {CAT: mean over the tasks scored}, for categories scored in part;
    - ``AVG``: mean of all categories of the set, when every one of them is complete (else None);
    - ``AVG_partial``: when AVG is None, the mean over the categories scored in whole or part (else None);
    - ``reported``: {STS: jsts pearson}, never averaged;
    - ``category_set`` and ``missing``: the set's tasks whose main metric was not scored.
    """
    if category_set not in CATEGORY_SETS:
        raise ValueError(f"unknown llm-jp-eval category set {category_set!r} (choose from: {', '.join(CATEGORY_SETS)})")
    categories: dict[str, float] = {}
    partial: dict[str, float] = {}
    missing: list[str] = []
    for cat, members in CATEGORY_SETS[category_set].items():
        vals = [tasks[t][m] for t, m in members.items() if t in tasks and m in tasks[t]]
        missing += [f"{t}/{m}" for t, m in members.items() if not (t in tasks and m in tasks[t])]
        if vals and len(vals) == len(members):
            categories[cat] = mean(vals)
        elif vals:
            partial[cat] = mean(vals)
    reported: dict[str, float] = {}
    for cat, members in REPORTED_ONLY.items():
        vals = [tasks[t][m] for t, m in members.items() if t in tasks and m in tasks[t]]
        if vals:
            reported[cat] = mean(vals)
    complete = not missing
    avg = mean(categories.values()) if complete else None
    scored = {**categories, **partial}
    avg_partial = mean(scored.values()) if not complete and scored else None
    return {
        "categories": categories,
        "partial_categories": partial,
        "AVG": avg,
        "AVG_partial": avg_partial,
        "reported": reported,
        "category_set": category_set,
        "missing": missing,
    }


def category_of(task: str) -> str | None:
    for cat, members in {**CATEGORY_SETS["all-with-nc"], **REPORTED_ONLY}.items():
        if task in members:
            return cat
    return None
