"""ELYZA-tasks-100 with an LLM judge: evaluator ``elyza_tasks_100``.

Data: ELYZA-tasks-100 (hub id ``elyza/ELYZA-tasks-100``, split ``test``, 100 rows of ``input``,
``output`` (a reference answer) and ``eval_aspect`` (the task's own grading criteria)), read from
the hub, from a local copy (its ``test.csv``, a directory holding it, JSON lines / JSON records
with the same fields, or a ``save_to_disk`` directory) or, for the builtin tiny model, from the
shipped hand-written fixture in the same format.

1. **Answers.** The cell's model answers every task (one user turn in the cell's prompt format;
   greedy by default, every generation parameter configurable). The answers are written to
   ``<cell_dir>/elyza_tasks_100/answers.jsonl`` with the generation parameters, before any
   judging.
2. **Judging.** The judge (config group ``judge``) scores each answer 1-5 with ELYZA's published
   criteria, the reference answer and the task's ``eval_aspect`` (jsweep.eval.judge_prompts).
   Replies are cached in ``<cell_dir>/judgments.jsonl``. If the judge is unavailable, the cell
   still finishes, with ``elyza_tasks_100/pending`` > 0 and no score; ``jsweep judge`` completes
   the judgments later (and a re-run of the sweep does too).

Metrics: ``elyza_tasks_100/score`` (mean 1-5 over parsed judgments, logged once every answer is
judged), ``elyza_tasks_100/dist/<1..5>`` (counts), ``elyza_tasks_100/unparseable``,
``elyza_tasks_100/judged``, ``elyza_tasks_100/pending``, ``elyza_tasks_100/answer_chars``.
Tags: the judge model, endpoint, parameters and the prompt's digest. Table artifact
``elyza_tasks_100/items.json`` (question, answer, score, reason, judge, prompt digest).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from jsweep.data.sources import FIXTURES
from jsweep.errors import ConfigError, DataError
from jsweep.eval import answers as A
from jsweep.eval.declaration import Declaration, Headline
from jsweep.eval.options import defaults, typed_options

NAME = "elyza_tasks_100"
HUB_ID = "elyza/ELYZA-tasks-100"
FIXTURE = FIXTURES / "eval" / "elyza_tasks_100" / "test.csv"
FIELDS = ("input", "output", "eval_aspect")

EVALUATOR = Declaration(
    name=NAME,
    implementation="jsweep.eval.elyza:ElyzaTasks100",
    # the mean 1-5 grade of the LLM judge; it arrives after the sweep (jsweep judge), not in the summary
    headlines=(Headline(f"{NAME}/score", higher_is_better=True, scale="1-5", summary=False),),
    check="jsweep.eval.elyza:check",
    judged=True,
    judge="jsweep.eval.elyza:judge_cell",
    report_section="jsweep.eval.elyza:report_section",
)


@dataclass
class Options:
    """``eval.elyza_tasks_100`` (conf/eval/elyza_tasks_100.yaml says what each means), typed by the config's converter."""

    hub_id: str = HUB_ID
    revision: str | None = None
    split: str = "test"
    path: str | None = None
    source: str = "auto"
    max_samples: int | None = -1
    prompt_format: str = "cell"
    batch_size: int = 8
    max_new_tokens: int = 512
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    seed: int = 0


DEFAULTS: dict[str, Any] = defaults(Options)


# --------------------------------------------------------------------------- data


def _read_csv(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def _read_local(path: Path, split: str) -> list[dict[str, Any]]:
    if path.is_dir():
        if (
            (path / "dataset_info.json").exists()
            or (path / "state.json").exists()
            or (path / "dataset_dict.json").exists()
        ):
            from datasets import load_from_disk

            ds = load_from_disk(str(path))
            return [dict(r) for r in (ds[split] if hasattr(ds, "keys") else ds)]
        for name in (f"{split}.csv", f"{split}.jsonl", f"{split}.json"):
            if (path / name).exists():
                return _read_local(path / name, split)
        raise DataError(f"no {split}.csv (ELYZA-tasks-100's file) in this directory", file=str(path))
    if not path.exists():
        raise DataError("file not found", file=str(path))
    if path.suffix == ".csv":
        return _read_csv(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        rows = []
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"not valid JSON ({exc.msg})", file=str(path), record=f"line {i}") from None
        return rows
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON ({exc.msg} at line {exc.lineno})", file=str(path)) from None
    return obj if isinstance(obj, list) else obj.get(split, obj.get("data", []))


def source_of(opts: dict[str, Any], builtin_model: bool) -> tuple[str, str]:
    kind = opts["source"]
    if kind == "auto":
        kind = "path" if opts["path"] else ("fixture" if builtin_model else "hub")
    if kind == "path":
        if not opts["path"]:
            raise DataError(f"eval.{NAME}.source=path needs eval.{NAME}.path")
        return "path", str(Path(opts["path"]).expanduser().resolve())
    if kind == "fixture":
        return "fixture", str(FIXTURE)
    if kind == "hub":
        return "hub", opts["hub_id"]
    raise DataError(f"eval.{NAME}.source must be auto, fixture, hub or path, got {kind!r}")


def load_items(options: dict[str, Any], builtin_model: bool = True) -> tuple[list[dict[str, str]], str]:
    """The tasks ({input, output, eval_aspect}) and a description of where they came from."""
    opts = {**DEFAULTS, **options}
    kind, where = source_of(opts, builtin_model)
    if kind == "hub":
        from datasets import load_dataset

        rows = [dict(r) for r in load_dataset(where, split=opts["split"], revision=opts["revision"])]
        file = f"{where}@{opts['revision'] or 'main'}"
    else:
        rows = _read_local(Path(where), opts["split"])
        file = where
    items = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError("not a record", file=file, record=i)
        for key in FIELDS:
            if not isinstance(row.get(key), str):
                raise DataError("missing or not a string", file=file, record=i, field=key)
        if not row["input"].strip():
            raise DataError("empty task", file=file, record=i, field="input")
        items.append({k: row[k] for k in FIELDS})
    if not items:
        raise DataError("no tasks", file=file)
    n = int(opts["max_samples"])
    return (items[:n] if n >= 0 else items), file


def check(options: dict[str, Any]) -> list[str]:
    try:
        opts = asdict(typed_options(Options, options, NAME))
    except ConfigError as exc:
        return [str(exc)]
    problems = A.check_gen(opts, NAME)
    if opts["source"] != "hub" and (opts["path"] or opts["source"] == "fixture" or opts["source"] == "auto"):
        try:
            load_items(opts, builtin_model=True)
        except DataError as exc:
            problems.append(str(exc))
    elif opts["source"] == "hub":  # offline: the data set must be in the hub cache
        from jsweep.data.sources import Source, check_source

        issue = check_source(Source("hub", opts["hub_id"]))
        if issue:
            problems.append(issue.replace("set dataset.path", f"set eval.{NAME}.path"))
    return problems


# --------------------------------------------------------------------------- judging


def answers_dir(cell_dir: Path) -> Path:
    return Path(cell_dir) / NAME


def judge_cell(
    cell_dir: Path,
    judge_opts: dict[str, Any],
    *,
    log_metrics: Callable[[dict[str, float]], None],
    tracker: Any = None,
    say: Callable[[str], None] = print,
) -> dict[str, float]:
    """Judge a cell's saved answers (cached judgments are reused); log and return the metrics."""
    from jsweep.eval import judge as J
    from jsweep.eval.judge_prompts import PROMPTS, digest, parse_score

    d = answers_dir(cell_dir)
    rows = A.read_jsonl(d / "answers.jsonl")
    if not rows:
        return {}
    opts = J.options(judge_opts)
    template = PROMPTS[opts["prompt"]]
    prompts = [
        template.render(input=r["input"], output=r["output"], eval_aspect=r["eval_aspect"], answer=r["answer"])
        for r in rows
    ]
    judge = J.Judge(opts)
    cache = J.JudgmentCache(Path(cell_dir) / "judgments.jsonl")
    say(f"{NAME}: judging {len(rows)} answers with {opts['model']} at {opts['base_url']} (prompt {template.name})")
    outcome = J.judge_all(judge, prompts, cache, prompt_digest=template.digest, label=f"{NAME} judge", progress=say)
    info = {
        "judge_model": opts["model"],
        "judge_base_url": opts["base_url"],
        "judge_params": json.dumps({k: opts[k] for k in ("temperature", "max_tokens", "seed")}),
        "judge_prompt": template.name,
        "judge_prompt_digest": template.digest,
        "judge_digest": digest(J.identity(opts)),
    }
    items, scores = [], []
    for i, (row, reply) in enumerate(zip(rows, outcome.replies)):
        score, reason = parse_score(reply) if reply is not None else (None, "")
        if score is not None:
            scores.append(score)
        items.append(
            {
                "index": i,
                "question": row["input"],
                "answer": row["answer"],
                "reference": row["output"],
                "eval_aspect": row["eval_aspect"],
                "score": score,
                "reason": reason,
                "judge_reply": reply,
                "status": "pending" if reply is None else ("ok" if score is not None else "unparseable"),
                "judge_model": opts["model"],
                "judge_prompt_digest": template.digest,
            }
        )
    pending = outcome.pending
    unparseable = sum(it["status"] == "unparseable" for it in items)
    metrics: dict[str, float] = {
        f"{NAME}/judged": len(rows) - pending,
        f"{NAME}/pending": pending,
        f"{NAME}/unparseable": unparseable,
    }
    for s in range(1, 6):
        metrics[f"{NAME}/dist/{s}"] = sum(x == s for x in scores)
    if not pending and scores:
        metrics[f"{NAME}/score"] = sum(scores) / len(scores)
    result = {
        "metrics": metrics,
        **info,
        "judge": J.identity(opts),
        "requests": outcome.requested,
        "cached": outcome.cached,
        "error": outcome.error,
    }
    from jsweep.files import write_json

    write_json(d / "results.json", result, ensure_ascii=False)
    A.write_jsonl(d / "items.jsonl", items)
    if outcome.error:
        say(
            f"warning: {NAME}: {pending} of {len(rows)} answers not judged ({outcome.error}); the answers are "
            f"saved in {d / 'answers.jsonl'}: run `python -m jsweep judge {cell_dir}` once the judge is back"
        )
    else:
        head = (
            f"score {metrics[f'{NAME}/score']:.3f} over {len(scores)} judged"
            if f"{NAME}/score" in metrics
            else "no score (no judgment could be parsed)"
        )
        say(f"{NAME}: {head} ({unparseable} unparseable; {outcome.requested} requests, {outcome.cached} cached)")
    log_metrics(metrics)
    if tracker is not None:
        tracker.set_tags({f"{NAME}.{k}": v for k, v in info.items()} | {f"{NAME}.pending": str(pending)})
        tracker.log_table(
            [
                {
                    k: it[k]
                    for k in (
                        "index",
                        "question",
                        "answer",
                        "score",
                        "reason",
                        "status",
                        "judge_model",
                        "judge_prompt_digest",
                    )
                }
                for it in items
            ],
            f"{NAME}/items.json",
        )
        tracker.log_dict(result, f"{NAME}/results.json")
    return metrics


# --------------------------------------------------------------------------- the evaluator


class ElyzaTasks100:
    """Evaluator ``elyza_tasks_100`` (see jsweep.eval.protocols.Evaluator)."""

    check = staticmethod(check)

    def __init__(self, options: dict[str, Any]):
        self.options = {**DEFAULTS, **options}

    def evaluate(self, ctx: Any, model: Any, tokenizer: Any) -> dict[str, float]:
        from jsweep.job.context import say

        items, where = load_items(self.options, builtin_model=ctx.spec.model.builtin)
        prompts = A.model_prompts([it["input"] for it in items], ctx, tokenizer, self.options["prompt_format"])
        answers = A.generate_answers(model, tokenizer, prompts, self.options, label=f"{NAME} answers")
        rows = [{**it, "answer": a, "prompt": p} for it, a, p in zip(items, answers, prompts)]
        d = answers_dir(ctx.cell_dir)
        d.mkdir(parents=True, exist_ok=True)
        A.write_jsonl(d / "answers.jsonl", rows)  # saved before any judging
        gen = A.gen_params(self.options)
        (d / "generation.json").write_text(
            json.dumps(
                {"data": where, "generation": gen, "prompt_format": self.options["prompt_format"]},
                ensure_ascii=False,
                indent=2,
            ),
            encoding="utf-8",
        )
        ctx.tracker.log_artifact(d / "answers.jsonl", NAME)
        ctx.tracker.set_tags({f"{NAME}.data": where, f"{NAME}.generation": json.dumps(gen)})
        chars = sum(len(a) for a in answers) / max(1, len(answers))
        metrics = {f"{NAME}/answers": float(len(rows)), f"{NAME}/answer_chars": chars}
        ctx.log_metrics(metrics)
        from jsweep.eval import judge as J

        judge_opts = J.options(getattr(ctx.spec, "judge", None))
        if judge_opts.get("defer"):
            pending = {f"{NAME}/pending": float(len(rows))}
            say(f"{NAME}: {len(rows)} answers saved; judging deferred (judge.defer=true): run `python -m jsweep judge`")
            return {**metrics, **pending}
        return {
            **metrics,
            **judge_cell(ctx.cell_dir, judge_opts, log_metrics=ctx.log_metrics, tracker=ctx.tracker, say=say),
        }


def report_section(sweep_dir: Path, cells: list[tuple[dict[str, Any], Path]], label: dict[str, str]) -> list[str]:
    """The report's ELYZA-tasks-100 section: each cell's mean score, score distribution, unparseable and
    pending counts, and the judge (model, prompt digest) that produced them."""
    from jsweep.markdown import cell as md_cell
    from jsweep.markdown import read_json, read_jsonl, table

    lines: list[str] = []
    elyza = [(row, read_json(d / "elyza_tasks_100" / "results.json"), d) for row, d in cells]
    elyza = [(row, res, d) for row, res, d in elyza if res or (d / "elyza_tasks_100" / "answers.jsonl").exists()]
    if elyza:
        lines += ["## ELYZA-tasks-100 (LLM judge, 1-5)", ""]
        rows = []
        judges = set()
        for row, res, d in elyza:
            m = (res or {}).get("metrics", {})
            pending = m.get(
                "elyza_tasks_100/pending", len(read_jsonl(d / "elyza_tasks_100" / "answers.jsonl")) if not res else 0
            )
            score = m.get("elyza_tasks_100/score")
            dist = " / ".join(str(int(m.get(f"elyza_tasks_100/dist/{s}", 0))) for s in range(1, 6)) if res else "-"
            rows.append(
                [
                    row["cell_id"][:8],
                    md_cell(label[row["cell_id"]]),
                    f"{score:.3f}" if score is not None else "-",
                    dist,
                    str(int(m.get("elyza_tasks_100/unparseable", 0))),
                    str(int(pending)),
                ]
            )
            if res:
                judges.add(
                    f"`{res.get('judge_model')}` at {res.get('judge_base_url')}, prompt `{res.get('judge_prompt')}` "
                    f"(digest `{res.get('judge_prompt_digest')}`)"
                )
        rows.sort(key=lambda r: -float(r[2]) if r[2] != "-" else float("inf"))
        lines += [*table(["cell", "label", "**score**", "1 / 2 / 3 / 4 / 5", "unparseable", "pending"], rows), ""]
        lines += [f"Judge: {j}" for j in sorted(judges)] + [""]
        if any(r[5] != "0" for r in rows):
            lines += [f"Some answers are not judged yet: `python -m jsweep judge {sweep_dir}`.", ""]

    return lines
