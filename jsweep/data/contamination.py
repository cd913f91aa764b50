"""Contamination check: n-gram overlap between a cell's training data and the evaluation sets it is scored on.

Method (character n-grams, since Japanese has no word boundaries):

- every text is NFKC-normalised, lower-cased and stripped of whitespace;
- an evaluation *sample* (its input, and its output when that is at least n characters) *overlaps*
  when any of its n-grams (default n = 13) occurs in any training text (every turn, the input,
  chosen and rejected replies): a lenient upper bound (GPT-3 style; in Japanese 13 characters
  also catch stock phrases such as ``の県庁所在地はどこですか``). It is a *near-duplicate* (the flag)
  when at least ``duplicate_threshold`` (half) of its n-grams occur in training. N-grams shared by
  several samples of one task are templates (``選択肢：0.…``, label words), not evidence, and are ignored;
- a *task* overlaps when at least half of its instruction's own n-grams (those not shared with
  another task's instruction, such as ``…以外には何も含めないことを厳守してください``) occur in the
  training data: the model was tuned on that very task format. This is the known jaster case: jaster is built
  from the train splits of the tasks llm-jp-eval scores, with the same instructions, so its
  samples differ from the test samples but the task formats are trained on.

:func:`contamination` is the pure function; each evaluator that declares a ``contamination`` collector
(jsweep.eval.declaration) reads the samples a cell will be scored on (llm-jp-eval:
jsweep.eval.llm_jp_eval.contamination); :func:`contamination_metrics` ties both to a cell spec and returns the metrics
to log, and :func:`contamination_tags` the run tags (the flag).
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from jsweep.data.records import Record, example_texts

DEFAULT_N = 13
_SPACE = re.compile(r"\s+")


@dataclass
class EvalText:
    """One text of an evaluation set. ``sample`` groups the texts of one scored sample (input, output);
    ``kind`` is ``sample`` or ``instruction`` (the task's instruction, checked per task)."""

    text: str
    task: str = "all"
    sample: str = ""
    kind: str = "sample"


@dataclass
class ContaminationReport:
    n: int
    eval_samples: int = 0
    contaminated_samples: int = 0  # near-duplicates: >= duplicate_threshold of the sample's n-grams in training
    overlapping_samples: int = 0  # any n-gram in training
    eval_ngrams: int = 0  # distinct non-template eval n-grams checked
    matched_ngrams: int = 0  # of those, seen in the training data
    short_samples: int = 0  # samples with no text of n characters (not checkable)
    per_task: dict[str, dict[str, float]] = field(default_factory=dict)
    tasks_seen: list[str] = field(default_factory=list)  # tasks whose instruction is in the training data
    examples: list[str] = field(default_factory=list)  # a few contaminated samples (task: text)

    @property
    def overlap_ratio(self) -> float:
        """Share of eval samples with any n-gram in the training data (lenient)."""
        return self.overlapping_samples / self.eval_samples if self.eval_samples else 0.0

    @property
    def duplicate_ratio(self) -> float:
        """Share of eval samples that are near-duplicates of training text (the flag)."""
        return self.contaminated_samples / self.eval_samples if self.eval_samples else 0.0

    @property
    def ngram_overlap(self) -> float:
        return self.matched_ngrams / self.eval_ngrams if self.eval_ngrams else 0.0

    @property
    def task_overlap_ratio(self) -> float:
        tasks = [t for t in self.per_task if self.per_task[t].get("has_instruction")]
        return len(self.tasks_seen) / len(tasks) if tasks else 0.0

    @property
    def status(self) -> str:
        """``samples`` (near-duplicates of eval samples in training), ``tasks`` (trained on the eval task
        formats: the jaster case) or ``none``."""
        if self.contaminated_samples:
            return "samples"
        return "tasks" if self.tasks_seen else "none"

    @property
    def flagged(self) -> bool:
        return self.status != "none"


def normalize(text: str) -> str:
    return _SPACE.sub("", unicodedata.normalize("NFKC", text)).lower()


def ngrams(text: str, n: int) -> set[str]:
    t = normalize(text)
    return {t[i : i + n] for i in range(len(t) - n + 1)}


def _as_eval_texts(eval_texts: Iterable[EvalText | str]) -> list[EvalText]:
    out = []
    for i, t in enumerate(eval_texts):
        out.append(t if isinstance(t, EvalText) else EvalText(str(t), sample=str(i)))
    return out


def contamination(
    train_examples: Sequence[Record | str],
    eval_texts: Iterable[EvalText | str],
    n: int = DEFAULT_N,
    *,
    template_share: float = 0.1,
    duplicate_threshold: float = 0.5,
    instruction_threshold: float = 0.5,
) -> ContaminationReport:
    """N-gram overlap between training records (or plain strings) and evaluation texts.

    Plain strings in ``eval_texts`` are one sample each (task "all"). Memory is bounded by the
    evaluation side: its n-grams are indexed, the training texts are streamed over.
    """
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    texts = _as_eval_texts(eval_texts)
    report = ContaminationReport(n=n)

    # 1. Index eval n-grams: sample n-grams per task (minus templates), instruction n-grams per task.
    samples: dict[tuple[str, str], set[str]] = defaultdict(set)
    instructions: dict[str, set[str]] = {}
    snippet: dict[tuple[str, str], str] = {}
    for t in texts:
        if t.kind == "instruction":
            instructions.setdefault(t.task, set()).update(ngrams(t.text, n))
            continue
        key = (t.task, t.sample)
        samples[key].update(ngrams(t.text, n))
        snippet.setdefault(key, t.text)
    by_task: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for key in samples:
        by_task[key[0]].append(key)
    for keys in by_task.values():
        counts: dict[str, int] = defaultdict(int)
        for key in keys:
            for g in samples[key]:
                counts[g] += 1
        limit = max(2, int(template_share * len(keys)))
        template = {g for g, c in counts.items() if c >= limit and c > 1}
        for key in keys:
            samples[key] -= template
    shared: dict[str, int] = defaultdict(int)  # instruction n-grams common to several tasks: boilerplate
    for grams in instructions.values():
        for g in grams:
            shared[g] += 1
    for task in instructions:
        instructions[task] = {g for g in instructions[task] if shared[g] == 1}
    index: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for key, grams in samples.items():
        for g in grams:
            index[g].append(key)
    instr_index: dict[str, list[str]] = defaultdict(list)
    for task, grams in instructions.items():
        for g in grams:
            instr_index[g].append(task)

    # 2. Stream the training texts.
    matched: set[str] = set()
    instr_matched: dict[str, set[str]] = defaultdict(set)
    for ex in train_examples:
        for text in [ex] if isinstance(ex, str) else example_texts(ex):
            norm = normalize(text)
            for i in range(len(norm) - n + 1):
                g = norm[i : i + n]
                if g in index:
                    matched.add(g)
                if g in instr_index:
                    for task in instr_index[g]:
                        instr_matched[task].add(g)

    # 3. Summarise per task and overall.
    report.eval_ngrams = len(index)
    report.matched_ngrams = len(matched)
    for task in sorted(set(by_task) | set(instructions)):
        keys = by_task.get(task, [])
        overlapping = [k for k in keys if samples[k] & matched]
        hit = [k for k in overlapping if len(samples[k] & matched) >= duplicate_threshold * len(samples[k])]
        short = sum(1 for k in keys if not samples[k])
        instr = instructions.get(task, set())
        instr_ratio = len(instr_matched.get(task, ())) / len(instr) if instr else 0.0
        report.per_task[task] = {
            "samples": len(keys),
            "contaminated": len(hit),
            "overlapping": len(overlapping),
            "overlap_ratio": len(overlapping) / len(keys) if keys else 0.0,
            "duplicate_ratio": len(hit) / len(keys) if keys else 0.0,
            "instruction_overlap": instr_ratio,
            "has_instruction": bool(instr),
        }
        report.eval_samples += len(keys)
        report.contaminated_samples += len(hit)
        report.overlapping_samples += len(overlapping)
        report.short_samples += short
        if instr and instr_ratio >= instruction_threshold:
            report.tasks_seen.append(task)
        for k in hit[: max(0, 5 - len(report.examples))]:
            report.examples.append(f"{task}: {snippet[k][:80]}")
    return report


# --------------------------------------------------------------------------- llm-jp-eval sets


def collectors(selected: Iterable[str] = ()) -> dict[str, Any]:
    """Benchmarks to check, name -> collector(options) -> [EvalText]: each evaluator that declares a
    ``contamination`` collector (jsweep.eval.declaration) and is selected, or declares it always checked."""
    from jsweep.eval.declaration import declarations

    chosen = set(selected)
    return {
        d.name: d.hook("contamination")
        for d in declarations()
        if d.contamination and (d.contamination_always or d.name in chosen)
    }


def contamination_reports(
    spec: Any, train_examples: Sequence[Record], n: int = DEFAULT_N
) -> dict[str, ContaminationReport]:
    """One report per benchmark whose evaluator declares a collector, with the cell's options for it (or its
    defaults, for one declared always checked: llm-jp-eval's shipped fixtures, test split, 100 samples per task)."""
    evals = getattr(spec, "eval", None) or {}
    return {
        name: contamination(train_examples, collect(evals.get(name) or {}), n)
        for name, collect in collectors(evals).items()
    }


def _metrics(reports: dict[str, ContaminationReport]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, r in reports.items():
        p = f"data/contamination/{name}"
        out.update(
            {
                f"{p}/overlap_ratio": r.overlap_ratio,
                f"{p}/duplicate_ratio": r.duplicate_ratio,
                f"{p}/contaminated_samples": r.contaminated_samples,
                f"{p}/eval_samples": r.eval_samples,
                f"{p}/ngram_overlap": r.ngram_overlap,
                f"{p}/task_overlap_ratio": r.task_overlap_ratio,
                f"{p}/tasks_seen": len(r.tasks_seen),
                f"{p}/flagged": float(r.flagged),
                f"{p}/n": r.n,
            }
        )
        for task, t in r.per_task.items():
            out[f"{p}/{task}/overlap_ratio"] = t["overlap_ratio"]
            out[f"{p}/{task}/duplicate_ratio"] = t["duplicate_ratio"]
            out[f"{p}/{task}/instruction_overlap"] = t["instruction_overlap"]
    return out


def _tags(reports: dict[str, ContaminationReport]) -> dict[str, str]:
    rank = {"none": 0, "tasks": 1, "samples": 2}
    worst = max((r.status for r in reports.values()), key=rank.__getitem__, default="none")
    tags = {"jsweep.contamination": worst}
    for name, r in reports.items():
        if r.flagged:
            detail = [
                f"{r.contaminated_samples}/{r.eval_samples} samples are near-duplicates of training text "
                f"({r.overlapping_samples} share a {r.n}-gram)"
            ]
            if r.tasks_seen:
                detail.append(f"task instructions trained on: {', '.join(r.tasks_seen)}")
            detail += r.examples
            tags[f"jsweep.contamination.{name}"] = "; ".join(detail)[:4900]
    return tags


def check_contamination(
    spec: Any, train_examples: Sequence[Record], n: int = DEFAULT_N
) -> tuple[dict[str, float], dict[str, str]]:
    """Metrics and run tags in one pass (what the cell logs): see contamination_metrics / contamination_tags."""
    reports = contamination_reports(spec, train_examples, n)
    return _metrics(reports), _tags(reports)


def contamination_metrics(spec: Any, train_examples: Sequence[Record], n: int = DEFAULT_N) -> dict[str, float]:
    """Metrics for the cell's run under ``data/contamination/llm_jp_eval/``: ``overlap_ratio`` (share of scored
    eval samples with any n-gram in the training data), ``duplicate_ratio`` (near-duplicates),
    ``task_overlap_ratio`` (share of eval tasks whose instruction was trained on), per-task ratios, and
    ``flagged`` (1.0 when there are near-duplicates or trained-on tasks)."""
    return _metrics(contamination_reports(spec, train_examples, n))


def contamination_tags(spec: Any, train_examples: Sequence[Record], n: int = DEFAULT_N) -> dict[str, str]:
    """Run tags: ``jsweep.contamination`` = samples | tasks | none (worst over benchmarks), and per flagged
    benchmark a one-line detail (``jsweep.contamination.<name>``: counts, tasks, example samples)."""
    return _tags(contamination_reports(spec, train_examples, n))
