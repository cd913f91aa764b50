"""llm-jp-eval for every cell, following the llm-jp-eval v1.4.1 protocol.

Protocol (deviations are listed in docs/llm_jp_eval.md):

- data: llm-jp-eval's preprocessed ``evaluation/{train,dev,test}/<task>.json`` files
  (instruction, output_length, metrics, samples[{input, output}], optional answer_extract_pattern);
- prompt: the Japanese header, ``### 指示:`` with the task instruction, ``num_few_shots`` examples
  from the train split as ``### 入力:`` / ``### 応答:`` pairs, then the sample's input;
- the first ``max_num_samples`` samples of the split (-1 = all);
- greedy decoding, ``max_new_tokens`` = the task's output_length, prompts tokenised without
  special tokens (v1.4.1's ``pipeline_kwargs.add_special_tokens: False``; ``add_special_tokens``);
- answer: ``normalize(output.split("\n\n")[0]).strip()`` as v1.4.1's evaluator takes it; gold
  NFKC-normalised;
- categories and AVG over the category set (``category_set``: v1.4.1's targets ``all-without-nc``,
  the default, or ``all-with-nc``); a run that scored only part of the set logs ``AVG_partial``
  and ``<CAT>_partial`` instead (see jsweep.eval.llm_jp_eval.metrics).

Importing this module imports no torch (generation is imported when a model is scored).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jsweep.data.sources import FIXTURES
from jsweep.errors import ConfigError, DataError
from jsweep.eval.llm_jp_eval import metrics as M
from jsweep.eval.options import defaults, typed_options
from jsweep.eval.results import log_results

VERSION = "1.4.1"
HEADER = "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。"
FIXTURE_DIR = FIXTURES / "eval" / "llm_jp_eval"
VERSIONS = (VERSION,)


@dataclass
class Options:
    """The ``eval.llm_jp_eval`` options and their defaults (conf/eval/llm_jp_eval.yaml states the same, with
    what each means), typed by the config's converter (jsweep.eval.options); :func:`check` checks values."""

    version: str = VERSION
    data_dir: str | None = None
    split: str = "test"
    tasks: list[str] | str | None = "all"
    num_few_shots: int = 4
    max_num_samples: int | None = 100
    batch_size: int | str = "auto"
    prompt_format: str = "llm_jp_eval"
    add_special_tokens: bool = False
    category_set: str = M.DEFAULT_CATEGORY_SET


DEFAULTS: dict[str, Any] = defaults(Options)


@dataclass
class Sample:
    input: str
    output: str


@dataclass
class Task:
    name: str
    instruction: str
    output_length: int
    metrics: list[str]
    samples: list[Sample]
    answer_extract_pattern: str | None = None
    few_shots: list[Sample] = field(default_factory=list)
    path: str = ""


def evaluation_root(data_dir: str | None) -> Path:
    """The directory holding train/dev/test: ``data_dir`` itself, its ``evaluation/`` child, or fixtures."""
    root = Path(data_dir).expanduser() if data_dir else FIXTURE_DIR
    for cand in (root / "evaluation", root):
        if (cand / "test").is_dir() or (cand / "dev").is_dir():
            return cand
    raise DataError("no llm-jp-eval data here: expected evaluation/{train,dev,test}/<task>.json", file=str(root))


def _read_task(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON ({exc.msg} at line {exc.lineno})", file=str(path)) from None
    for key, kind in (("instruction", str), ("output_length", int), ("metrics", list), ("samples", list)):
        if not isinstance(obj.get(key), kind):
            raise DataError(f"missing or not a {kind.__name__}", file=str(path), field=key)
    for i, s in enumerate(obj["samples"]):
        if not isinstance(s, dict) or not isinstance(s.get("input"), str) or not isinstance(s.get("output"), str):
            raise DataError("each sample needs string input and output", file=str(path), record=i, field="samples")
    return obj


def dev_only_tasks(data_dir: str | None) -> list[str]:
    """Tasks that ``jsweep prepare --allow-missing-train`` built without a JGLUE train file (its report says so)."""
    root = evaluation_root(data_dir)
    for path in (root.parent / "prepare_report.json", root / "prepare_report.json"):
        if path.is_file():
            try:
                report = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return []
            return sorted(t for t, info in report.items() if isinstance(info, dict) and info.get("dev_only"))
    return []


def available_tasks(data_dir: str | None, split: str = "test") -> list[str]:
    d = evaluation_root(data_dir) / split
    return sorted(p.stem for p in d.glob("*.json"))


def load_tasks(options: dict[str, Any]) -> list[Task]:
    """Load the selected tasks with their few-shot examples (train split), per the options."""
    opts = {**DEFAULTS, **options}
    root = evaluation_root(opts["data_dir"])
    names = available_tasks(opts["data_dir"], opts["split"]) if opts["tasks"] in ("all", None) else list(opts["tasks"])
    tasks = []
    for name in names:
        path = root / opts["split"] / f"{name}.json"
        if not path.exists():
            have = ", ".join(available_tasks(opts["data_dir"], opts["split"]))
            raise DataError(f"unknown llm-jp-eval task '{name}' (available: {have})", file=str(path))
        obj = _read_task(path)
        samples = [Sample(s["input"], s["output"]) for s in obj["samples"]]
        if opts["max_num_samples"] is not None and opts["max_num_samples"] >= 0:
            samples = samples[: opts["max_num_samples"]]
        shots: list[Sample] = []
        k = int(opts["num_few_shots"])
        if k > 0:
            train_path = root / "train" / f"{name}.json"
            if not train_path.exists():
                raise DataError(f"num_few_shots={k} needs the train split of '{name}'", file=str(train_path))
            train = [Sample(s["input"], s["output"]) for s in _read_task(train_path)["samples"]]
            if len(train) < k:
                raise DataError(
                    f"train split has {len(train)} samples, fewer than num_few_shots={k}", file=str(train_path)
                )
            shots = train[:k]
        tasks.append(
            Task(
                name,
                obj["instruction"],
                obj["output_length"],
                list(obj["metrics"]),
                samples,
                obj.get("answer_extract_pattern") or None,
                shots,
                str(path),
            )
        )
    return tasks


def check(options: dict[str, Any]) -> list[str]:
    """Pre-flight: every problem with the options and data (no model needed)."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        return [f"unknown key 'eval.llm_jp_eval.{unknown[0]}' (valid keys: {', '.join(sorted(DEFAULTS))})"]
    if options.get("prompt_format", "llm_jp_eval") not in ("llm_jp_eval", "cell"):
        return [f"eval.llm_jp_eval.prompt_format must be llm_jp_eval or cell, got {options['prompt_format']!r}"]
    # llm-jp-eval v2 (issue 12 item 8): a v2 version gets its own one-line reason (jsweep.eval.llm_jp_eval.v2)
    from jsweep.eval.llm_jp_eval.v2 import check_version as check_v2_version

    if v2_problems := check_v2_version(str(options.get("version", VERSION))):
        return v2_problems
    if str(options.get("version", VERSION)) not in VERSIONS:
        return [f"eval.llm_jp_eval.version must be one of {', '.join(VERSIONS)}, got {options['version']!r}"]
    if options.get("category_set", M.DEFAULT_CATEGORY_SET) not in M.CATEGORY_SETS:
        return [
            f"eval.llm_jp_eval.category_set must be one of {', '.join(M.CATEGORY_SETS)}, "
            f"got {options['category_set']!r}"
        ]
    bs = options.get("batch_size", "auto")
    if bs != "auto" and (isinstance(bs, bool) or not isinstance(bs, int) or bs < 1):
        return [f"eval.llm_jp_eval.batch_size must be a positive integer or auto, got {bs!r}"]
    if not isinstance(options.get("add_special_tokens", False), bool):
        return [f"eval.llm_jp_eval.add_special_tokens must be true or false, got {options['add_special_tokens']!r}"]
    try:
        typed_options(Options, options, "llm_jp_eval")
        load_tasks(options)
    except (ConfigError, DataError) as exc:
        return [str(exc)]
    return []


# --------------------------------------------------------------------------- prompts and answers


def build_prompt(task: Task, sample_input: str) -> str:
    """The llm-jp-eval v1.4 evaluation prompt for one sample."""
    parts = [f"{HEADER}\n\n### 指示:\n{task.instruction}"]
    for shot in task.few_shots:
        parts.append(f"\n\n### 入力:\n{shot.input}\n\n### 応答:\n{shot.output}")
    parts.append(f"\n\n### 入力:\n{sample_input}\n\n### 応答:\n")
    return "".join(parts)


def build_prompt_in_format(
    task: Task, sample_input: str, fmt: Any, tokenizer: Any = None, system: str | None = None
) -> str:
    """The same content in a cell's training format: few-shots as earlier turns of a conversation."""
    from jsweep.data.records import Message

    msgs: list[Message] = []
    for shot in task.few_shots:
        msgs += [Message("user", f"{task.instruction}\n\n{shot.input}"), Message("assistant", shot.output)]
    msgs.append(Message("user", f"{task.instruction}\n\n{sample_input}"))
    return fmt.prompt(msgs, tokenizer=tokenizer, system=system)


def extract_answer(raw: str, pattern: str | None = None) -> str:
    """v1.4.1's ``normalize(raw.split("\n\n")[0]).strip()``; with ``pattern``, its groups instead of the paragraph."""
    if pattern:
        match = re.search(pattern, raw, re.DOTALL)
        text = "".join(g for g in match.groups() if g) if match else ""
    else:
        text = raw.split("\n\n")[0]
    return M.normalize(text).strip()


def score_predictions(
    by_task: dict[str, tuple[list[str], list[str]]],
    metrics_of: dict[str, list[str]],
    category_set: str = M.DEFAULT_CATEGORY_SET,
) -> dict[str, Any]:
    """Score extracted predictions: tasks, categories, AVG (or partial ones), reported, skipped, per_sample."""
    tasks: dict[str, dict[str, float]] = {}
    skipped: dict[str, str] = {}
    per_sample: dict[str, dict[str, list[float]]] = {}
    for name, (preds, golds) in by_task.items():
        scores, skip, samples = M.task_scores(metrics_of[name], preds, golds)
        tasks[name] = scores
        per_sample[name] = samples
        skipped.update({f"{name}/{m}": why for m, why in skip.items()})
    agg = M.aggregate(tasks, category_set)
    return {"tasks": tasks, **agg, "skipped": skipped, "per_sample": per_sample}


def flat_metrics(result: dict[str, Any], prefix: str = "llm_jp_eval") -> dict[str, float]:
    """Metric names: ``AVG`` and ``<CAT>`` only when complete, else ``AVG_partial`` / ``<CAT>_partial``."""
    out: dict[str, float] = {}
    if result.get("AVG") is not None:
        out[f"{prefix}/AVG"] = result["AVG"]
    if result.get("AVG_partial") is not None:
        out[f"{prefix}/AVG_partial"] = result["AVG_partial"]
    for cat, value in result.get("partial_categories", {}).items():
        out[f"{prefix}/{cat}_partial"] = value
    for cat, value in {**result["categories"], **result.get("reported", {})}.items():
        out[f"{prefix}/{cat}"] = value
    for task, scores in result["tasks"].items():
        for metric, value in scores.items():
            out[f"{prefix}/{task}/{metric}"] = value
    return out


# --------------------------------------------------------------------------- the evaluator


class LlmJpEval:
    """Evaluator ``llm_jp_eval`` (see jsweep.eval.protocols.Evaluator)."""

    check = staticmethod(check)

    def __init__(self, options: dict[str, Any]):
        self.options = asdict(typed_options(Options, options, "llm_jp_eval"))

    def prompts(self, tasks: Sequence[Task], ctx: Any, tokenizer: Any) -> list[str]:
        if self.options["prompt_format"] == "cell":
            from jsweep import registries

            fmt = registries.PROMPT_FORMATS.get(ctx.spec.prompt.format)
            return [
                build_prompt_in_format(t, s.input, fmt, tokenizer, ctx.spec.prompt.system)
                for t in tasks
                for s in t.samples
            ]
        return [build_prompt(t, s.input) for t in tasks for s in t.samples]

    def evaluate(self, ctx: Any, model: Any, tokenizer: Any) -> dict[str, float]:
        from jsweep.eval.generate import Request, generate

        tasks = load_tasks(self.options)
        prompts = self.prompts(tasks, ctx, tokenizer)
        requests = [Request(p, t.output_length) for p, t in zip(prompts, [t for t in tasks for _ in t.samples])]
        raw = generate(
            model,
            tokenizer,
            requests,
            batch_size=self.options["batch_size"],
            label="llm_jp_eval",
            add_special_tokens=bool(self.options["add_special_tokens"]),
        )

        rows: list[dict[str, Any]] = []
        by_task: dict[str, tuple[list[str], list[str]]] = {}
        i = 0
        for task in tasks:
            preds, golds = [], []
            for sample in task.samples:
                pred = extract_answer(raw[i])  # v1.4.1 has no answer_extract_pattern
                gold = M.normalize(sample.output)
                preds.append(pred)
                golds.append(gold)
                rows.append(
                    {
                        "task": task.name,
                        "input": sample.input,
                        "prompt": prompts[i],
                        "raw": raw[i],
                        "pred": pred,
                        "gold": gold,
                    }
                )
                i += 1
            by_task[task.name] = (preds, golds)
        result = score_predictions(by_task, {t.name: t.metrics for t in tasks}, self.options["category_set"])
        self._log(ctx, tasks, rows, result)
        return flat_metrics(result)

    def _log(self, ctx: Any, tasks: Sequence[Task], rows: list[dict[str, Any]], result: dict[str, Any]) -> None:
        # Per-sample score of each task's first per-sample metric, for reading predictions next to gold.
        k = {t.name: 0 for t in tasks}
        for row in rows:
            samples = result["per_sample"].get(row["task"], {})
            first = next(iter(samples.values()), None)
            row["score"] = first[k[row["task"]]] if first else None
            k[row["task"]] += 1
        summary = {
            key: result[key]
            for key in (
                "tasks",
                "categories",
                "partial_categories",
                "AVG",
                "AVG_partial",
                "reported",
                "category_set",
                "missing",
                "skipped",
            )
        }
        by_task: dict[str, list[dict[str, Any]]] = {t.name: [] for t in tasks}
        for row in rows:
            by_task[row["task"]].append(row)
        log_results(
            ctx,
            "llm_jp_eval",
            by_task,
            results=summary,
            columns=("input", "pred", "gold", "score", "raw"),
            config={
                "version": self.options["version"],
                "options": self.options,
                "tasks": {
                    t.name: {
                        "metrics": t.metrics,
                        "output_length": t.output_length,
                        "samples": len(t.samples),
                        "few_shots": len(t.few_shots),
                        "path": t.path,
                    }
                    for t in tasks
                },
                "category_set": result["category_set"],
                "missing": result["missing"],
                "skipped": result["skipped"],
            },
            tags={
                "llm_jp_eval.version": self.options["version"],
                "llm_jp_eval.category_set": result["category_set"],
                "llm_jp_eval.avg": "full"
                if result["AVG"] is not None
                else f"partial ({len(result['missing'])} task metrics of {result['category_set']} not scored)",
                "llm_jp_eval.add_special_tokens": self.options["add_special_tokens"],
                "llm_jp_eval.num_few_shots": self.options["num_few_shots"],
                "llm_jp_eval.max_num_samples": self.options["max_num_samples"],
                "llm_jp_eval.prompt_format": self.options["prompt_format"],
            },
        )
        tracker = ctx.tracker
        dev_only = [t for t in dev_only_tasks(self.options["data_dir"]) if t in {x.name for x in tasks}]
        if dev_only:
            from jsweep.job.context import say

            say(
                f"llm_jp_eval: WARNING: {', '.join(dev_only)} prepared without a JGLUE train file (few-shots from "
                f"valid, smaller test set): not comparable with llm-jp-eval's scores"
            )
            tracker.set_tags({"llm_jp_eval.dev_only_tasks": ",".join(dev_only)})
        if result["skipped"]:
            tracker.set_tags({"llm_jp_eval.skipped": "; ".join(f"{k}: {v}" for k, v in result["skipped"].items())})
