"""Pairwise comparison of cells, or groups of cells, on the same questions, by the LLM judge.

Configured by ``judge.pairwise`` (or ``jsweep judge SWEEP --pairwise A B --by AXIS``)::

    judge.pairwise: {a: dataset=synthetic, b: dataset=oasst, by: [model]}

``a`` and ``b`` select cells by their grid values (``key=value``, alternatives ``key=v1|v2``, several
keys joined by ``,``; e.g. ``b: dataset=dolly|oasst|alpaca_ja|ichikara`` pools the open sets); ``by``
splits the comparison into one per value of those axes (e.g. one per model size). Inside a
group every A cell meets every B cell on every question both have answered (the answers of
``evaluator``, default ``elyza_tasks_100``; they must be the same questions). ``extra_body``
replaces the judge's own extra request parameters for these requests (e.g. a logit bias or a
guided choice towards ``A``/``B``/``C``: a bare ``A``, ``B`` or ``C`` reply counts as a verdict).

Each pair of answers is judged twice, A first and B first, to cancel position bias. The judge
says ``[[A]]``, ``[[B]]`` or ``[[C]]`` (a tie). Per question the A cell earns 1 for a win, 0.5
for a tie, 0 for a loss, averaged over the two orders (orders whose verdict cannot be parsed
are left out; a question with no parseable verdict counts as unparseable). The **win rate** of
A is the mean over questions; its 95% confidence interval is a percentile bootstrap over
questions (2000 resamples, seed 0). ``wins``/``ties``/``losses`` count questions whose mean is
above, at or below 0.5; ``consistent`` is the share of questions where both orders agree.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jsweep.errors import ConfigError, DataError

CI_RESAMPLES = 2000


def parse_selector(expr: str) -> dict[str, set[str]]:
    """``dataset=dolly|oasst,lr=1e-4`` -> {dataset: {dolly, oasst}, lr: {1e-4}} (every key must match)."""
    out = {}
    for part in str(expr).split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not key or not value.strip():
            raise ConfigError(f"pairwise selector must be key=value[|value][,key=value], got {expr!r}")
        out[key.strip()] = {v.strip() for v in value.split("|")}
    return out


def options(cfg: dict[str, Any] | None) -> dict[str, Any] | None:
    if not cfg:
        return None
    unknown = sorted(set(cfg) - {"a", "b", "by", "evaluator", "prompt", "extra_body"})
    if unknown:
        raise ConfigError(
            f"unknown key 'judge.pairwise.{unknown[0]}' (valid keys: a, b, by, evaluator, extra_body, prompt)"
        )
    if not cfg.get("a") or not cfg.get("b"):
        raise ConfigError("judge.pairwise needs a and b, e.g. {a: dataset=synthetic, b: dataset=oasst}")
    by = cfg.get("by") or []
    by = [by] if isinstance(by, str) else list(by)
    return {
        "a": str(cfg["a"]),
        "b": str(cfg["b"]),
        "by": by,
        "evaluator": cfg.get("evaluator") or "elyza_tasks_100",
        "prompt": cfg.get("prompt") or "pairwise",
        "extra_body": cfg.get("extra_body") or None,
    }


def slug(text: str) -> str:
    """A string MLflow accepts in a metric name (alphanumerics, _ - . space : /)."""
    return re.sub(r"[^0-9A-Za-z_\-. :/]", "_", text.replace("=", ":"))


def win_rate(points: Sequence[float], seed: int = 0) -> tuple[float, float, float]:
    """Mean and 95% percentile-bootstrap interval of per-question points (1 win, 0.5 tie, 0 loss)."""
    n = len(points)
    mean = sum(points) / n
    rng = random.Random(seed)
    means = sorted(sum(points[rng.randrange(n)] for _ in range(n)) / n for _ in range(CI_RESAMPLES))
    return mean, means[int(0.025 * CI_RESAMPLES)], means[int(0.975 * CI_RESAMPLES) - 1]


def compare(
    cells: Sequence[dict[str, Any]], cfg: dict[str, Any], judge_opts: dict[str, Any], say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run the comparison. ``cells``: [{cell_id, cell_dir, axes: {key: value}, label}]. Returns
    {"groups": [...], "items": [...], "judge": ..., "prompt_digest": ...}; judgments are cached in
    the cell directories (``judgments.jsonl`` of the pair's first cell by id)."""
    from jsweep.eval import answers as A
    from jsweep.eval import judge as J
    from jsweep.eval.judge_prompts import PAIRWISE_PROMPTS, digest, parse_verdict

    sel_a, sel_b = parse_selector(cfg["a"]), parse_selector(cfg["b"])
    template = PAIRWISE_PROMPTS.get(cfg["prompt"])
    if template is None:
        raise ConfigError(f"unknown pairwise prompt '{cfg['prompt']}' (choose from: {', '.join(PAIRWISE_PROMPTS)})")

    def matches(cell: dict[str, Any], sel: dict[str, set[str]]) -> bool:
        return all(cell["axes"].get(k) in v for k, v in sel.items())

    groups: dict[tuple, dict[str, list]] = {}
    for cell in cells:
        key = tuple(cell["axes"].get(b, "(default)") for b in cfg["by"])
        side = "a" if matches(cell, sel_a) else ("b" if matches(cell, sel_b) else None)
        if side:
            groups.setdefault(key, {"a": [], "b": []})[side].append(cell)
    if not groups:
        raise ConfigError(f"pairwise: no cell matches {cfg['a']} or {cfg['b']}")
    # extra_body of the pairwise config (e.g. a logit bias towards A/B/C) replaces the judge's own for these requests
    judge = J.Judge({**judge_opts, "extra_body": cfg["extra_body"]} if cfg.get("extra_body") else judge_opts)
    jid = J.identity(judge.opts)
    answers_of = {}
    for cell in cells:
        rows = A.read_jsonl(Path(cell["cell_dir"]) / cfg["evaluator"] / "answers.jsonl")
        answers_of[cell["cell_id"]] = rows
    out_groups, out_items = [], []
    for key, sides in groups.items():
        group = ",".join(f"{b}={v}" for b, v in zip(cfg["by"], key))
        result: dict[str, Any] = {
            "a": cfg["a"],
            "b": cfg["b"],
            "group": group,
            "a_cells": [c["cell_id"] for c in sides["a"]],
            "b_cells": [c["cell_id"] for c in sides["b"]],
            "judge_model": judge.opts["model"],
            "judge_prompt": template.name,
            "judge_prompt_digest": template.digest,
            "judge_digest": digest(jid),
        }
        if not sides["a"] or not sides["b"]:
            result["error"] = f"no {'A' if not sides['a'] else 'B'} cell in this group"
            out_groups.append(result)
            continue
        points: list[float] = []
        pending = unparseable = consistent = both = 0
        for ca in sides["a"]:
            for cb in sides["b"]:
                ra, rb = answers_of[ca["cell_id"]], answers_of[cb["cell_id"]]
                if not ra or not rb:
                    raise DataError(
                        f"pairwise: cell {(ca if not ra else cb)['cell_id']} has no {cfg['evaluator']} "
                        f"answers (is {cfg['evaluator']} in its eval list?)"
                    )
                if [r["input"] for r in ra] != [r["input"] for r in rb]:
                    raise DataError(f"pairwise: cells {ca['cell_id']} and {cb['cell_id']} answered different questions")
                prompts = []
                for x, y in zip(ra, rb):
                    common = {
                        "input": x["input"],
                        "output": x.get("output", ""),
                        "eval_aspect": x.get("eval_aspect", ""),
                    }
                    prompts.append(template.render(**common, answer_a=x["answer"], answer_b=y["answer"]))
                    prompts.append(template.render(**common, answer_a=y["answer"], answer_b=x["answer"]))
                first = min(ca["cell_id"], cb["cell_id"])
                cache_dir = next(c["cell_dir"] for c in (ca, cb) if c["cell_id"] == first)
                cache = J.JudgmentCache(Path(cache_dir) / "judgments.jsonl")
                say(
                    f"pairwise {group or 'all'}: {ca['cell_id'][:8]} vs {cb['cell_id'][:8]}: {len(prompts)} judgments "
                    f"(both orders)"
                )
                outcome = J.judge_all(
                    judge, prompts, cache, prompt_digest=template.digest, label="pairwise", progress=say
                )
                for q, x in enumerate(ra):
                    r1, r2 = outcome.replies[2 * q], outcome.replies[2 * q + 1]
                    if r1 is None or r2 is None:
                        pending += 1
                        continue
                    v1, v2 = parse_verdict(r1), parse_verdict(r2)
                    got = []
                    if v1:
                        got.append({"A": 1.0, "B": 0.0, "C": 0.5}[v1])
                    if v2:
                        got.append({"A": 0.0, "B": 1.0, "C": 0.5}[v2])  # B is the A cell in the swapped order
                    if not got:
                        unparseable += 1
                        point = None
                    else:
                        point = sum(got) / len(got)
                        points.append(point)
                        if len(got) == 2:
                            both += 1
                            consistent += got[0] == got[1]
                    out_items.append(
                        {
                            "group": group,
                            "a_cell": ca["cell_id"],
                            "b_cell": cb["cell_id"],
                            "index": q,
                            "question": x["input"],
                            "answer_a": x["answer"],
                            "answer_b": rb[q]["answer"],
                            "verdict_a_first": v1,
                            "verdict_b_first": v2,
                            "point_a": point,
                        }
                    )
                if outcome.error:
                    say(
                        f"warning: pairwise: {outcome.pending} judgment(s) missing ({outcome.error}); "
                        f"run `python -m jsweep judge` again once the judge is back"
                    )
        result.update(
            {
                "n": len(points),
                "pending": pending,
                "unparseable": unparseable,
                "wins": sum(p > 0.5 for p in points),
                "ties": sum(p == 0.5 for p in points),
                "losses": sum(p < 0.5 for p in points),
                "consistent": consistent / both if both else None,
            }
        )
        if points and not pending:
            result["win_rate"], result["ci_low"], result["ci_high"] = win_rate(points)
        out_groups.append(result)
    return {"groups": out_groups, "items": out_items, "judge": jid}


def metrics_of(result: dict[str, Any]) -> dict[str, float]:
    """Parent-run metrics: pairwise/<a>_vs_<b>[/<group>]/{win_rate,ci_low,ci_high,n,wins,ties,losses,...}."""
    out: dict[str, float] = {}
    for g in result["groups"]:
        base = "pairwise/" + slug(f"{g['a']}_vs_{g['b']}") + (f"/{slug(g['group'])}" if g["group"] else "")
        for key in (
            "win_rate",
            "ci_low",
            "ci_high",
            "n",
            "wins",
            "ties",
            "losses",
            "unparseable",
            "pending",
            "consistent",
        ):
            if g.get(key) is not None:
                out[f"{base}/{key}"] = float(g[key])
    return out
