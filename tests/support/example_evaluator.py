"""A worked example of an evaluator that lives in its own module (see docs: "Adding an evaluator").

``sentence_nll`` scores a model by the mean token NLL of a few fixed Japanese sentences: lower is
better, and its metric name does not say so (it does not end in "loss"), so the summary and the
report can only rank it right by reading the declaration. Everything about it is here: its typed
options, its pre-flight check, its scoring, its results (through the shared jsweep.eval.results),
and its ``Declaration``; registering it is one line:

    registries.EVALUATORS.register("sentence_nll", "tests.support.example_evaluator:EVALUATOR")

(in the package: one line in jsweep/registries.py, plus conf/eval/sentence_nll.yaml).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from jsweep.eval.declaration import Declaration, Headline
from jsweep.eval.options import typed_options
from jsweep.eval.results import log_results

NAME = "sentence_nll"
SENTENCES = ["吾輩は猫である。名前はまだ無い。", "東京は日本の首都です。", "今日はよい天気ですね。"]


@dataclass
class Options:
    sentences: list[str] = field(default_factory=lambda: list(SENTENCES))  # texts to score
    max_length: int = 64  # tokens per text


def check(options: dict[str, Any]) -> list[str]:
    """Pre-flight (no model): typed options, at least one non-empty sentence, a positive length."""
    try:
        opts = typed_options(Options, options, NAME)
    except Exception as exc:
        return [str(exc)]
    problems = []
    if not [s for s in opts.sentences if s.strip()]:
        problems.append("sentences is empty: nothing to score")
    if opts.max_length < 2:
        problems.append(f"max_length must be >= 2, got {opts.max_length}")
    return problems


class SentenceNll:
    def __init__(self, options: dict[str, Any]):
        self.opts = typed_options(Options, options, NAME)

    def evaluate(self, ctx: Any, model: Any, tokenizer: Any) -> dict[str, float]:
        import torch

        rows, total, tokens = [], 0.0, 0
        for i, text in enumerate(s for s in self.opts.sentences if s.strip()):
            ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=self.opts.max_length).input_ids
            with torch.no_grad():
                out = model(input_ids=ids.to(model.device), labels=ids.to(model.device))
            n = ids.shape[1] - 1
            rows.append({"id": i, "text": text, "nll": float(out.loss) * n, "tokens": n})
            total, tokens = total + float(out.loss) * n, tokens + n
        nll = total / max(tokens, 1)
        log_results(
            ctx,
            NAME,
            {"sentences": rows},
            results={"nll": nll, "tokens": tokens},
            config={"options": vars(self.opts)},
            tags={f"{NAME}.sentences": len(rows)},
        )
        return {f"{NAME}/nll": nll, f"{NAME}/perplexity": math.exp(nll), f"{NAME}/tokens": float(tokens)}


EVALUATOR = Declaration(
    name=NAME,
    implementation="tests.support.example_evaluator:SentenceNll",
    headlines=(Headline(f"{NAME}/nll", higher_is_better=False, scale="nats/token"),),
    check="tests.support.example_evaluator:check",
)
