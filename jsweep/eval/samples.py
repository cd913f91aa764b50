"""Qualitative samples (evaluator ``samples``) and human-graded question sets (``human_eval``).

``samples``: the cell's answers to a prompt list (``prompts: [...]``, or ``path``: a text file with
one prompt per line, or JSON lines with ``prompt`` and optional ``id``; default: the shipped
fixture) with sampling parameters (temperature, top_p, top_k, repetition_penalty, max_new_tokens,
seed; ``num_samples`` answers per prompt). Written to ``<cell_dir>/samples/answers.jsonl``, logged
as the MLflow table ``samples/answers.json``, and shown side by side (prompt x cell) in the report.

``human_eval``: the cell's answers to a question set (docs/grading.md: JSON lines or CSV with
``id``, ``question`` and optional ``reference``), greedy by default, written to
``<cell_dir>/human_eval/answers.jsonl`` for ``jsweep grade export`` (a blinded sheet for
graders) and ``jsweep grade import`` (accuracy per cell).
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from jsweep.data.sources import FIXTURES
from jsweep.errors import ConfigError, DataError
from jsweep.eval import answers as A
from jsweep.eval.declaration import Declaration, Headline
from jsweep.eval.options import defaults, typed_options

SAMPLES_FIXTURE = FIXTURES / "eval" / "samples" / "prompts.txt"
QUESTIONS_FIXTURE = FIXTURES / "eval" / "human_eval" / "questions.jsonl"


@dataclass
class SamplesOptions:
    """``eval.samples`` (conf/eval/samples.yaml says what each means), typed by the config's converter."""

    prompts: list[str] | None = None
    path: str | None = None
    num_samples: int = 1
    prompt_format: str = "cell"
    batch_size: int = 8
    max_new_tokens: int = 128
    do_sample: bool = True
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 40
    repetition_penalty: float = 1.0
    seed: int = 0


@dataclass
class HumanEvalOptions:
    """``eval.human_eval`` (conf/eval/human_eval.yaml says what each means), typed by the config's converter."""

    path: str | None = None
    prompt_format: str = "cell"
    batch_size: int = 8
    max_new_tokens: int = 256
    do_sample: bool = False
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 40
    repetition_penalty: float = 1.0
    seed: int = 0


def _typed(cls: type, options: dict[str, Any], name: str) -> tuple[dict[str, Any], list[str]]:
    try:
        return asdict(typed_options(cls, options, name)), []
    except ConfigError as exc:
        return {}, [str(exc)]


SAMPLES = Declaration(
    name="samples",
    implementation="jsweep.eval.samples:Samples",
    scores=False,  # answers to read, nothing to rank by
    check="jsweep.eval.samples:Samples.check",
    report_section="jsweep.eval.samples:samples_report_section",
)

HUMAN_EVAL = Declaration(
    name="human_eval",
    implementation="jsweep.eval.samples:HumanEval",
    # the share of answers graded correct by people (jsweep grade import), after the sweep
    headlines=(Headline("human_eval/accuracy", higher_is_better=True, scale="0-1", summary=False),),
    check="jsweep.eval.samples:HumanEval.check",
    graded=True,
    report_section="jsweep.eval.samples:grading_report_section",
)


def read_prompts(options: dict[str, Any]) -> list[dict[str, str]]:
    """[{id, prompt}] from ``prompts`` (a list) or ``path`` (text lines or JSON lines)."""
    if options.get("prompts"):
        return [{"id": f"p{i + 1:02d}", "prompt": str(p)} for i, p in enumerate(options["prompts"])]
    path = Path(options.get("path") or SAMPLES_FIXTURE).expanduser()
    if not path.exists():
        raise DataError("prompt list not found", file=str(path))
    out: list[dict[str, str]] = []
    for i, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"not valid JSON ({exc.msg})", file=str(path), record=f"line {i}") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str) or not obj["prompt"].strip():
                raise DataError("needs a non-empty string", file=str(path), record=f"line {i}", field="prompt")
            out.append({"id": str(obj.get("id", f"p{len(out) + 1:02d}")), "prompt": obj["prompt"]})
        else:
            out.append({"id": f"p{len(out) + 1:02d}", "prompt": line.strip()})
    if not out:
        raise DataError("no prompts", file=str(path))
    return out


def read_questions(path: str | Path | None) -> list[dict[str, str]]:
    """A question set: JSON lines or CSV with ``id``, ``question`` and optional ``reference``."""
    path = Path(path or QUESTIONS_FIXTURE).expanduser()
    if not path.exists():
        raise DataError("question set not found", file=str(path))
    rows: list[tuple[str, Any]] = []
    if path.suffix == ".csv":
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"id", "question"} <= set(reader.fieldnames):
                raise DataError(
                    "the header must have the columns id and question (and optionally reference)",
                    file=str(path),
                    record="line 1",
                )
            rows = [(f"line {i}", r) for i, r in enumerate(reader, 2)]
    else:
        for i, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
            if line.strip():
                try:
                    rows.append((f"line {i}", json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise DataError(f"not valid JSON ({exc.msg})", file=str(path), record=f"line {i}") from None
    out, seen = [], set()
    for where, r in rows:
        if not isinstance(r, dict):
            raise DataError("not an object", file=str(path), record=where)
        for key in ("id", "question"):
            if not str(r.get(key) or "").strip():
                raise DataError("missing or empty", file=str(path), record=where, field=key)
        qid = str(r["id"]).strip()
        if qid in seen:
            raise DataError(f"duplicate id '{qid}'", file=str(path), record=where, field="id")
        seen.add(qid)
        out.append({"id": qid, "question": str(r["question"]), "reference": str(r.get("reference") or "")})
    if not out:
        raise DataError("no questions", file=str(path))
    return out


class Samples:
    """Evaluator ``samples`` (see jsweep.eval.protocols.Evaluator)."""

    NAME = "samples"
    OPTIONS = SamplesOptions
    DEFAULTS: dict[str, Any] = defaults(SamplesOptions)

    def __init__(self, options: dict[str, Any]):
        self.options = {**self.DEFAULTS, **options}

    @classmethod
    def check(cls, options: dict[str, Any]) -> list[str]:
        opts, problems = _typed(cls.OPTIONS, options, cls.NAME)
        if problems:
            return problems
        problems = A.check_gen(opts, cls.NAME)
        if int(opts["num_samples"]) < 1:
            problems.append(f"eval.{cls.NAME}.num_samples must be at least 1")
        try:
            read_prompts(opts)
        except DataError as exc:
            problems.append(str(exc))
        return problems

    def evaluate(self, ctx: Any, model: Any, tokenizer: Any) -> dict[str, float]:
        prompts = read_prompts(self.options)
        k = int(self.options["num_samples"])
        texts = A.model_prompts([p["prompt"] for p in prompts], ctx, tokenizer, self.options["prompt_format"])
        texts_k = [t for t in texts for _ in range(k)]
        answers = A.generate_answers(model, tokenizer, texts_k, self.options, label="samples")
        gen = A.gen_params(self.options)
        rows = [
            {"id": p["id"], "prompt": p["prompt"], "sample": j, "answer": answers[i * k + j], **gen}
            for i, p in enumerate(prompts)
            for j in range(k)
        ]
        d = Path(ctx.cell_dir) / self.NAME
        A.write_jsonl(d / "answers.jsonl", rows)
        ctx.tracker.log_table(rows, f"{self.NAME}/answers.json")
        ctx.tracker.set_tags({f"{self.NAME}.generation": json.dumps(gen)})
        return {
            f"{self.NAME}/count": float(len(rows)),
            f"{self.NAME}/answer_chars": sum(len(r["answer"]) for r in rows) / max(1, len(rows)),
        }


class HumanEval:
    """Evaluator ``human_eval``: answers to a question set, for graders (jsweep grade)."""

    NAME = "human_eval"
    OPTIONS = HumanEvalOptions
    DEFAULTS: dict[str, Any] = defaults(HumanEvalOptions)

    def __init__(self, options: dict[str, Any]):
        self.options = {**self.DEFAULTS, **options}

    @classmethod
    def check(cls, options: dict[str, Any]) -> list[str]:
        opts, problems = _typed(cls.OPTIONS, options, cls.NAME)
        if problems:
            return problems
        problems = A.check_gen(opts, cls.NAME)
        try:
            read_questions(opts["path"])
        except DataError as exc:
            problems.append(str(exc))
        return problems

    def evaluate(self, ctx: Any, model: Any, tokenizer: Any) -> dict[str, float]:
        questions = read_questions(self.options["path"])
        texts = A.model_prompts([q["question"] for q in questions], ctx, tokenizer, self.options["prompt_format"])
        answers = A.generate_answers(model, tokenizer, texts, self.options, label="human_eval")
        gen = A.gen_params(self.options)
        rows = [{**q, "answer": a} for q, a in zip(questions, answers)]
        d = Path(ctx.cell_dir) / self.NAME
        A.write_jsonl(d / "answers.jsonl", rows)
        (d / "generation.json").write_text(
            json.dumps(
                {"questions": str(self.options["path"] or QUESTIONS_FIXTURE), "generation": gen},
                ensure_ascii=False,
                indent=2,
            ),
            encoding="utf-8",
        )
        ctx.tracker.log_table(rows, f"{self.NAME}/answers.json")
        return {f"{self.NAME}/answers": float(len(rows))}


def grading_report_section(
    sweep_dir: Path, cells: list[tuple[dict[str, Any], Path]], label: dict[str, str]
) -> list[str]:
    """The report's human-grading section: the export (sheet, items) and accuracy per cell once imported
    (``<sweep>/grading/``)."""
    from jsweep.markdown import cell as md_cell
    from jsweep.markdown import read_json, table

    lines: list[str] = []
    gdir = sweep_dir / "grading"
    key = read_json(gdir / "key.json")
    if key:
        res = read_json(gdir / "results.json")
        lines += [
            "## Human grading",
            "",
            f"Blinded sheet: `{key.get('sheet')}` ({len(key.get('items', {}))} answers of {len(key.get('cells', {}))} "
            f"cell(s), shuffled with seed {key.get('seed')}); key: `{gdir / 'key.json'}`.",
            "",
        ]
        if res:
            rows = [
                [cid[:8], md_cell(r.get("label", "")), f"**{r['accuracy']:.3f}**", str(r["graded"])]
                for cid, r in sorted(res["cells"].items(), key=lambda kv: -kv[1]["accuracy"])
            ]
            lines += [*table(["cell", "label", "accuracy", "graded"], rows), ""]
        else:
            lines += [
                f"Not graded yet: fill the `grade` column, then `python -m jsweep grade import {sweep_dir} <sheet>`.",
                "",
            ]

    return lines


def samples_report_section(
    sweep_dir: Path, cells: list[tuple[dict[str, Any], Path]], label: dict[str, str]
) -> list[str]:
    """The report's samples section: the answers side by side, one row per prompt, one column per cell."""
    from jsweep.markdown import cell as md_cell
    from jsweep.markdown import read_jsonl, table

    lines: list[str] = []
    samples = {row["cell_id"]: read_jsonl(d / "samples" / "answers.jsonl") for row, d in cells}
    samples = {k: v for k, v in samples.items() if v}
    if samples:
        ids = list(samples)
        first = samples[ids[0]][0]
        params = ", ".join(
            f"{k}={first[k]}"
            for k in ("temperature", "top_p", "top_k", "repetition_penalty", "max_new_tokens", "seed")
            if k in first
        )
        lines += ["## Samples (prompt x cell)", "", f"Generation: {params}.", ""]
        prompts: dict[tuple, str] = {}
        for rows_ in samples.values():
            for r in rows_:
                prompts.setdefault((r["id"], r.get("sample", 0)), r["prompt"])
        by = {cid: {(r["id"], r.get("sample", 0)): r["answer"] for r in rows_} for cid, rows_ in samples.items()}
        rows = [[md_cell(p, 80), *(md_cell(by[c].get(k, ""), 240) for c in ids)] for k, p in prompts.items()]
        lines += [*table(["prompt", *(f"{c[:8]} {md_cell(label.get(c, ''), 40)}" for c in ids)], rows), ""]
    return lines
