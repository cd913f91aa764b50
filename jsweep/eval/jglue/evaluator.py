"""JGLUE (JCommonsenseQA, JNLI, JSQuAD, MARC-ja) scored by lm-evaluation-harness, offline by default.

Per cell: the trained model (in memory, PEFT-wrapped or not) is handed to the harness as an
``HFLM``; one harness task per JGLUE task is built in code (the modules of :mod:`jsweep.eval.jglue`) over
local JGLUE files (raw v1.3 files or a local copy of the hub dataset; the shipped fixtures by
default) or, with ``hub: true``, over the hub dataset the harness names. Prompts: the harness's
``japanese_leaderboard`` YAMLs (``prompt_style: leaderboard``) or JP-Stable prompt versions
0.2 / 0.3 (``prompt_style: jp_stable``, the default, at the versions of the Stockmark study).

Metrics ``jglue/<task>/<metric>`` in [0, 1]: acc for JCommonsenseQA, JNLI and MARC-ja;
for JSQuAD exact_match (the headline), and in the ``jp_stable`` style also JP-Stable's MeCab-word
f1 and JGLUE's char_f1; ``jglue/AVG`` = mean over the scored tasks of their main metric (acc, acc,
acc, exact_match) on the 0-1 scale, the tasks named in the ``jglue.avg_tasks`` tag.
Logged: per-sample tables (``jglue/samples/<task>.json``), ``jglue/task_config.json`` (harness
version, resolved task configs, data files), tags ``jglue.*``; written: ``<cell>/jglue_results.json``,
``<cell>/predictions/jglue.jsonl`` and the harness's own log ``<cell>/jglue_harness.log``.

Importing this module imports no torch and no lm_eval (planning checks options and files only).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsweep.errors import ConfigError, DataError
from jsweep.eval.jglue.data import TASKS, TaskFiles, find_task_files, load_task_rows
from jsweep.eval.options import defaults, typed_options
from jsweep.eval.results import log_results

PREFIX = "jglue"
MAIN_METRIC = {"jcommonsenseqa": "acc", "jnli": "acc", "marc_ja": "acc", "jsquad": "exact_match"}
ID_FIELD = {"jcommonsenseqa": "q_id", "jnli": "sentence_pair_id", "marc_ja": "review_id", "jsquad": "id"}
STYLES = ("jp_stable", "leaderboard")

# Published defaults. JP-Stable README / models/*/harness.sh: --num_fewshot "2,3,3,3" for
# jsquad, jcommonsenseqa, jnli, marc_ja. Stockmark study (stockmark-13b): JP-Stable prompt 0.3 for
# JCommonsenseQA, 0.2 for the others.
DEFAULT_FEWSHOT = {"jcommonsenseqa": 3, "jnli": 3, "jsquad": 2, "marc_ja": 3}
DEFAULT_VERSIONS = {"jcommonsenseqa": "0.3", "jnli": "0.2", "jsquad": "0.2", "marc_ja": "0.2"}


@dataclass
class Settings:
    """The ``eval.jglue`` keys as written (conf/eval/jglue.yaml states the same defaults), typed by the
    config's converter (jsweep.eval.options); :func:`parse_options` then checks values and resolves them."""

    tasks: list[str] | str | None = field(default_factory=lambda: ["jcommonsenseqa", "jnli", "jsquad"])
    marc_ja: bool | str | None = "auto"  # auto | true | false
    prompt_style: str = "jp_stable"
    prompt_versions: dict[str, Any] | str | float | None = field(default_factory=lambda: dict(DEFAULT_VERSIONS))
    num_fewshot: dict[str, Any] | int | None = field(default_factory=lambda: dict(DEFAULT_FEWSHOT))
    limit: int | None = None
    batch_size: int | str = "auto"
    data_dir: str | None = None
    paths: dict[str, Any] | None = field(default_factory=lambda: dict.fromkeys(TASKS))
    hub: bool = False
    fewshot_seed: int | None = 1234
    jsquad_max_gen_toks: int | None = None
    max_length: int | None = None
    jnli_version: str = "1.1"
    generation: str = "engine"  # engine | harness: who decodes JSQuAD
    loglikelihood: str = "shared"  # shared | harness: multiple-choice scoring, each context once or once per choice


DEFAULTS: dict[str, Any] = defaults(Settings)


# --------------------------------------------------------------------------- options (pure Python)


@dataclass
class Options:
    tasks: list[str]
    marc_ja: str  # auto | on | off
    prompt_style: str
    prompt_versions: dict[str, str]
    num_fewshot: dict[str, int]
    limit: int | None
    batch_size: int | str
    data_dir: str | None
    paths: dict[str, Any]
    hub: bool
    fewshot_seed: int | None
    jsquad_max_gen_toks: int | None
    max_length: int | None
    jnli_version: str = "1.1"
    generation: str = "engine"
    loglikelihood: str = "shared"
    raw: dict[str, Any] = field(default_factory=dict)


def _per_task(name: str, value: Any, default: Mapping[str, Any], convert) -> dict[str, Any]:
    out = dict(default)
    items: Iterable[tuple[Any, Any]]
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(TASKS))
        if unknown:
            raise ConfigError(f"eval.jglue.{name} has unknown task '{unknown[0]}' (tasks: {', '.join(TASKS)})")
        items = value.items()
    elif value is None:
        items = ()
    else:
        items = ((t, value) for t in TASKS)  # one value for every task
    for task, v in items:
        try:
            out[task] = convert(v)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"eval.jglue.{name}.{task}: {exc}") from None
    return out


def _version(v: Any) -> str:
    text = f"{v:.1f}" if isinstance(v, float) else str(v)
    if text not in ("0.2", "0.3"):
        raise ValueError(f"JP-Stable prompt version must be 0.2 or 0.3, got {v!r}")
    return text


def _shots(v: Any) -> int:
    if isinstance(v, bool) or int(v) != v or int(v) < 0:
        raise ValueError(f"few-shot count must be an integer >= 0, got {v!r}")
    return int(v)


def parse_options(options: Mapping[str, Any] | None) -> Options:
    """``eval.jglue`` options typed (unknown keys, wrong types), then their values checked and resolved
    (task names, MARC-ja, per-task versions and shot counts); raise ConfigError on the first problem."""
    options = dict(options or {})
    o = dataclasses.asdict(typed_options(Settings, options, PREFIX))
    tasks = o["tasks"]
    if isinstance(tasks, str):
        tasks = list(TASKS) if tasks == "all" else [tasks]
    tasks = list(tasks or [])
    for t in tasks:
        if t not in TASKS:
            raise ConfigError(f"unknown JGLUE task '{t}' in eval.jglue.tasks (choose from: {', '.join(TASKS)})")
    tasks = list(dict.fromkeys(tasks))
    marc = o["marc_ja"]
    marc = (
        {True: "on", False: "off", None: "off"}.get(marc, marc) if isinstance(marc, (bool, type(None))) else str(marc)
    )
    if marc not in ("auto", "on", "off"):
        raise ConfigError(f"eval.jglue.marc_ja must be auto, true or false, got {o['marc_ja']!r}")
    if "marc_ja" in tasks:
        marc = "on"
    elif marc == "on":
        tasks.append("marc_ja")
    if o["prompt_style"] not in STYLES:
        raise ConfigError(f"eval.jglue.prompt_style must be one of {', '.join(STYLES)}, got {o['prompt_style']!r}")
    versions = _per_task("prompt_versions", o["prompt_versions"], DEFAULT_VERSIONS, _version)
    shots = _per_task("num_fewshot", o["num_fewshot"], DEFAULT_FEWSHOT, _shots)
    limit = o["limit"]
    if limit is not None and limit < 1:
        raise ConfigError(f"eval.jglue.limit must be a positive integer or null, got {limit!r}")
    bs = o["batch_size"]
    if not ((isinstance(bs, int) and bs > 0) or (isinstance(bs, str) and bs.startswith("auto"))):
        raise ConfigError(f"eval.jglue.batch_size must be a positive integer or 'auto', got {bs!r}")
    paths = dict(o["paths"] or {})
    bad = sorted(set(paths) - set(TASKS))
    if bad:
        raise ConfigError(f"eval.jglue.paths has unknown task '{bad[0]}' (tasks: {', '.join(TASKS)})")
    for key in ("jsquad_max_gen_toks", "max_length"):
        v = o[key]
        if v is not None and v < 1:
            raise ConfigError(f"eval.jglue.{key} must be a positive integer or null, got {v!r}")
    if not tasks and marc != "auto":
        raise ConfigError("eval.jglue.tasks is empty: nothing to score")
    from jsweep.eval.jglue.jp_stable import JNLI_VERSIONS

    jnli_version = o["jnli_version"]
    if jnli_version not in JNLI_VERSIONS:
        raise ConfigError(
            f"eval.jglue.jnli_version must be one of {', '.join(JNLI_VERSIONS)}, got {o['jnli_version']!r}"
        )
    if o["generation"] not in ("harness", "engine"):
        raise ConfigError(f"eval.jglue.generation must be harness or engine, got {o['generation']!r}")
    if o["loglikelihood"] not in ("shared", "harness"):
        raise ConfigError(f"eval.jglue.loglikelihood must be shared or harness, got {o['loglikelihood']!r}")
    if o["prompt_style"] == "jp_stable" and "jsquad" in tasks:
        import importlib.util

        from jsweep.eval.jglue.metrics import JP_STABLE_PACKAGES

        missing = [m for m in JP_STABLE_PACKAGES if importlib.util.find_spec(m) is None]
        if missing:
            raise ConfigError(
                f"eval.jglue: JSQuAD in the jp_stable style is scored as JP-Stable scores it, which needs "
                f"{', '.join(missing)}: pip install 'jsweep[eval]' (or neologdn emoji fugashi unidic-lite)"
            )
    return Options(
        tasks=tasks,
        marc_ja=marc,
        prompt_style=o["prompt_style"],
        prompt_versions=versions,
        num_fewshot=shots,
        limit=limit,
        batch_size=bs,
        data_dir=o["data_dir"],
        paths=paths,
        hub=bool(o["hub"]),
        fewshot_seed=o["fewshot_seed"],
        jsquad_max_gen_toks=o["jsquad_max_gen_toks"],
        max_length=o["max_length"],
        jnli_version=jnli_version,
        generation=o["generation"],
        loglikelihood=o["loglikelihood"],
        raw={**DEFAULTS, **options},
    )


@dataclass
class PlannedTask:
    task: str
    files: TaskFiles | None  # None = the hub dataset
    num_fewshot: int
    prompt_version: str | None

    @property
    def source(self) -> dict[str, Any]:
        from jsweep.eval.jglue.data import HUB_CONFIG, HUB_DATASET

        if self.files is None:
            return {"hub": HUB_DATASET, "config": HUB_CONFIG[self.task]}
        return self.files.describe()

    @property
    def source_label(self) -> str:
        from jsweep.eval.jglue.data import FIXTURE_DIR

        if self.files is None:
            return "hub"
        where = self.files.disk or self.files.valid
        assert where is not None  # a TaskFiles has its save_to_disk directory or its valid file
        try:
            return f"fixtures/{Path(where).relative_to(FIXTURE_DIR)}"
        except ValueError:
            return str(where)


def plan_tasks(opts: Options) -> tuple[list[PlannedTask], list[str]]:
    """The tasks to score and where their data is; (planned, notes). Raises DataError / ConfigError."""
    planned, notes = [], []
    names = list(opts.tasks)
    if opts.marc_ja == "auto" and "marc_ja" not in names:
        names.append("marc_ja")
    # MARC-ja "auto" takes the shipped fixtures only in a fixtures-only run (the embedded default).
    fixtures_only = opts.data_dir is None and not opts.hub and not any(opts.paths.get(t) for t in opts.tasks)
    for task in names:
        version = opts.prompt_versions[task] if opts.prompt_style == "jp_stable" else None
        override = opts.paths.get(task)
        optional = task == "marc_ja" and opts.marc_ja == "auto"
        if opts.hub and not override:
            if task == "marc_ja":
                if optional:
                    notes.append("marc_ja skipped: hub: true and jsweep never downloads MARC-ja (set paths.marc_ja)")
                    continue
                raise ConfigError(
                    "eval.jglue: jsweep never downloads MARC-ja; supply its files with "
                    "eval.jglue.paths.marc_ja (or data_dir), or drop it from tasks"
                )
            planned.append(PlannedTask(task, None, opts.num_fewshot[task], version))
            continue
        if optional and not override and opts.data_dir is None and not fixtures_only:
            notes.append(
                "marc_ja skipped: the other tasks read your files, MARC-ja would come from the shipped "
                "fixtures (set paths.marc_ja or marc_ja: true)"
            )
            continue
        try:
            files = find_task_files(task, opts.data_dir, override)
        except DataError:
            if optional:
                notes.append("marc_ja skipped: no MARC-ja files found (marc_ja: auto)")
                continue
            raise
        planned.append(PlannedTask(task, files, opts.num_fewshot[task], version))
    if not planned:
        raise ConfigError("eval.jglue: no task to score (tasks is empty and no MARC-ja data was found)")
    return planned, notes


def check(options: Mapping[str, Any]) -> list[str]:
    """Pre-flight: problems with the options or missing data files (files are found, not parsed)."""
    try:
        plan_tasks(parse_options(options))
    except (ConfigError, DataError) as exc:
        return [str(exc)]
    return []


def average(metrics: Mapping[str, float], prefix: str = PREFIX) -> float | None:
    """``jglue/AVG``: the mean of the scored tasks' main metrics (acc; JSQuAD exact_match)."""
    values = [metrics[f"{prefix}/{t}/{m}"] for t, m in MAIN_METRIC.items() if f"{prefix}/{t}/{m}" in metrics]
    return sum(values) / len(values) if values else None


def harness_metrics(results: Mapping[str, Any], names: Mapping[str, str], prefix: str = PREFIX) -> dict[str, float]:
    """``jglue/<task>/<metric>`` from the harness's ``results`` block (``names``: harness task -> JGLUE task)."""
    out: dict[str, float] = {}
    for harness_name, task in names.items():
        for key, value in results.get(harness_name, {}).items():
            metric, _, _filter = key.partition(",")
            if not _filter or metric.endswith("_stderr") or not isinstance(value, (int, float)):
                continue
            out[f"{prefix}/{task}/{metric}"] = float(value)
    avg = average(out, prefix)
    if avg is not None:
        out[f"{prefix}/AVG"] = avg
    return out


# --------------------------------------------------------------------------- running the harness


@contextmanager
def harness_output(log_file: Path) -> Iterator[None]:
    """Send the harness's logging, warnings and progress bars (stderr) to ``log_file``, not the console."""
    from contextlib import redirect_stderr

    log_file.parent.mkdir(parents=True, exist_ok=True)
    names = ("lm_eval", "datasets", "transformers", "accelerate")
    saved = {
        n: (logging.getLogger(n).handlers[:], logging.getLogger(n).propagate, logging.getLogger(n).level) for n in names
    }
    with open(log_file, "a", encoding="utf-8") as fh:
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(name)s] %(message)s"))
        for n in names:
            lg = logging.getLogger(n)
            lg.handlers, lg.propagate = [handler], False
            if n == "lm_eval":
                lg.setLevel(logging.INFO)
        try:
            with redirect_stderr(fh):
                yield
        finally:
            for n, (handlers, propagate, level) in saved.items():
                lg = logging.getLogger(n)
                lg.handlers, lg.propagate, lg.level = handlers, propagate, level


def _say(msg: str) -> None:
    from jsweep.job.context import say

    say(f"jglue: {msg}")


def _sample_rows(task: str, harness_task: Any, samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for s in samples:
        doc = s["doc"]
        args = s["arguments"]
        prompt = args[0][0] if args else ""
        row: dict[str, Any] = {"doc_id": s["doc_id"], "id": str(doc.get(ID_FIELD[task], s["doc_id"])), "prompt": prompt}
        if task == "jsquad":
            pred = s["filtered_resps"][0] if s["filtered_resps"] else ""
            raw = s["resps"][0][0] if s["resps"] and s["resps"][0] else ""
            row.update(
                answers=list(doc["answers"]["text"]),
                prediction=pred,
                raw=raw,
                **{m: float(s[m]) for m in ("exact_match", "f1", "char_f1") if m in s},
            )
        else:
            choices = list(harness_task.doc_to_choice(doc))
            lls = [float(r[0]) for r in s["filtered_resps"]]
            best = max(range(len(lls)), key=lls.__getitem__) if lls else -1
            gold = s["target"]
            row.update(
                choices=choices,
                gold=choices[gold] if isinstance(gold, int) and 0 <= gold < len(choices) else str(gold),
                prediction=choices[best] if best >= 0 else "",
                acc=float(s.get("acc", 0.0)),
                loglikelihoods=[round(x, 4) for x in lls],
            )
        rows.append(row)
    return rows


class JGlueEval:
    """Evaluator ``jglue`` (see jsweep.eval.protocols.Evaluator)."""

    check = staticmethod(check)

    def __init__(self, options: Mapping[str, Any] | None = None):
        self.opts = parse_options(options)

    # Build the harness tasks (data read here); returns {harness name: task}, {harness name: JGLUE task}, info.
    def build_tasks(
        self, tokenizer: Any
    ) -> tuple[dict[str, Any], dict[str, str], dict[str, dict[str, Any]], list[str]]:
        from jsweep.eval.jglue import harness as H

        planned, notes = plan_tasks(self.opts)
        tasks, names, info = {}, {}, {}
        for p in planned:
            splits = None if p.files is None else load_task_rows(p.files)
            k = p.num_fewshot
            if p.files is not None and splits is not None and k > 0:
                pool, need = (len(splits["train"]), k) if "train" in splits else (len(splits["validation"]), k + 1)
                if pool < need:
                    where = p.files.train if "train" in splits else p.files.valid
                    raise DataError(
                        f"{p.task}: {k}-shot needs {need} examples to draw from, the file has {pool}; "
                        f"lower eval.jglue.num_fewshot.{p.task}",
                        file=str(where or p.files.disk),
                    )
            cfg = H.with_data(
                H.prompt_config(p.task, self.opts.prompt_style, p.prompt_version, self.opts.jnli_version),
                p.task,
                splits,
                k,
            )
            budget: Any = None  # JSQuAD generation cap: int, per-doc function, or harness default
            if p.task == "jsquad":
                budget = self.opts.jsquad_max_gen_toks
                if budget is None and self.opts.prompt_style == "jp_stable":
                    budget = H.answer_token_budget(tokenizer)
            name = f"{PREFIX}_{p.task}"
            try:
                tasks[name] = H.make_task(name, cfg, fewshot_seed=self.opts.fewshot_seed, max_gen_toks=budget)
            except Exception as exc:  # a hub load failure becomes a one-line data error
                if p.files is not None:
                    raise
                raise DataError(
                    f"hub dataset {cfg.get('dataset_path')} ({cfg.get('dataset_name')}) could not be "
                    f"loaded ({type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}); "
                    f"offline runs need local files: set eval.jglue.data_dir and hub: false"
                ) from exc
            names[name] = p.task
            info[p.task] = {
                "prompt_style": self.opts.prompt_style,
                "prompt_version": p.prompt_version,
                "num_fewshot": k,
                "fewshot_split": cfg.get("fewshot_split") if k > 0 else None,
                "data": p.source,
                "data_label": p.source_label,
                "n_valid": len(splits["validation"]) if splits else None,
                "n_train": len(splits["train"]) if splits and "train" in splits else None,
            }
            if p.task == "jnli" and self.opts.prompt_style == "jp_stable":
                info[p.task]["jnli_version"] = self.opts.jnli_version
                info[p.task]["jp_stable_task"] = cfg["metadata"]["jp_stable_task"]
            if p.task == "jsquad":
                info[p.task]["scoring"] = (
                    "JP-Stable jasquad: exact_match (headline) and MeCab-word f1, best over the golds; JGLUE char_f1"
                    if self.opts.prompt_style == "jp_stable"
                    else "harness japanese_leaderboard: exact_match against the first gold answer, whitespace removed"
                )
                info[p.task]["max_gen_toks"] = (
                    budget
                    if isinstance(budget, int)
                    else "harness default (256)"
                    if budget is None
                    else "longest gold answer in tokens (JP-Stable)"
                )
            if splits is not None and "train" not in splits and k > 0:
                notes.append(
                    f"{p.task}: no train file, few-shot examples drawn from the scored split "
                    f"(the scored document excluded)"
                )
        return tasks, names, info, notes

    def evaluate(self, ctx: Any, model: Any, tokenizer: Any) -> dict[str, float]:
        t0 = time.monotonic()
        log_file = Path(ctx.cell_dir) / "jglue_harness.log"
        old_sides = (getattr(tokenizer, "padding_side", None), getattr(tokenizer, "truncation_side", None))
        try:
            with harness_output(log_file):
                from lm_eval.evaluator import evaluate as lm_evaluate

                from jsweep.eval.jglue import harness as H
                from jsweep.eval.jglue.lm import cached_templates, harness_lm

                tasks, names, info, notes = self.build_tasks(tokenizer)
                for note in notes:
                    _say(note)
                for name, task in tasks.items():
                    t = names[name]
                    n = len(task.eval_docs)
                    n = min(n, self.opts.limit) if self.opts.limit else n
                    _say(
                        f"{t}: {n} docs, {info[t]['num_fewshot']}-shot, {self.opts.prompt_style}"
                        f"{' ' + info[t]['prompt_version'] if info[t]['prompt_version'] else ''}, data {info[t]['data_label']}"
                    )
                    info[t]["n_scored"] = n
                bs = self.opts.batch_size
                if isinstance(bs, str) and bs.startswith("auto") and next(model.parameters()).device.type != "cuda":
                    bs = 8  # the harness's auto search is for GPU memory; a CPU takes 8
                hflm_args: dict[str, Any] = {"batch_size": bs}
                if isinstance(bs, str) and bs.startswith("auto"):
                    hflm_args["max_batch_size"] = 512  # the harness's auto search starts here (its default: 64)
                if self.opts.max_length:
                    hflm_args["max_length"] = self.opts.max_length
                lm = harness_lm(model.eval(), tokenizer, self.opts.generation, self.opts.loglikelihood, **hflm_args)
                with cached_templates():
                    out = lm_evaluate(
                        lm, {"tasks": tasks, "groups": {}}, limit=self.opts.limit, bootstrap_iters=0, log_samples=True
                    )
                version = H.harness_version()
                configs = {names[n]: H.dump_config(t) for n, t in tasks.items()}
        finally:
            if old_sides[0] is not None:
                tokenizer.padding_side = old_sides[0]
            if old_sides[1] is not None:
                tokenizer.truncation_side = old_sides[1]
        metrics = harness_metrics(out["results"], names)
        rows = {names[n]: _sample_rows(names[n], tasks[n], out.get("samples", {}).get(n, [])) for n in tasks}
        seconds = time.monotonic() - t0
        for t in info:
            scores = ", ".join(
                f"{k.rsplit('/', 1)[1]}={v:.4f}" for k, v in metrics.items() if k.startswith(f"{PREFIX}/{t}/")
            )
            _say(f"{t}: {scores}")
        if f"{PREFIX}/AVG" in metrics:
            _say(f"AVG={metrics[f'{PREFIX}/AVG']:.4f} over {', '.join(info)} ({seconds:.1f}s)")
        self._log(ctx, metrics, rows, info, configs, version, notes, seconds)
        return metrics

    def _log(
        self,
        ctx: Any,
        metrics: dict[str, float],
        rows: dict[str, list[dict[str, Any]]],
        info: dict[str, dict[str, Any]],
        configs: dict[str, Any],
        version: str,
        notes: list[str],
        seconds: float,
    ) -> None:
        summary = {
            "harness": "lm-evaluation-harness",
            "harness_version": version,
            "prompt_style": self.opts.prompt_style,
            "metrics": metrics,
            "main_metric": {t: MAIN_METRIC[t] for t in info},
            "tasks": info,
            "notes": notes,
            "limit": self.opts.limit,
            "fewshot_seed": self.opts.fewshot_seed,
            "seconds": round(seconds, 2),
            "options": self.opts.raw,
        }
        log_results(
            ctx,
            PREFIX,
            rows,
            results=summary,
            table_dir="samples",
            config_file="task_config.json",
            config={
                "harness": "lm-evaluation-harness",
                "harness_version": version,
                "prompt_style": self.opts.prompt_style,
                "tasks": info,
                "task_configs": configs,
                "notes": notes,
                "options": self.opts.raw,
            },
            tags={
                "jglue.harness_version": version,
                "jglue.prompt_style": self.opts.prompt_style,
                "jglue.tasks": ",".join(info),
                "jglue.prompt_versions": ",".join(
                    f"{t}={i['prompt_version']}" for t, i in info.items() if i["prompt_version"]
                ),
                "jglue.num_fewshot": ",".join(f"{t}={i['num_fewshot']}" for t, i in info.items()),
                "jglue.limit": self.opts.limit,
                "jglue.avg_tasks": ",".join(f"{t}/{MAIN_METRIC[t]}" for t in info),
                "jglue.avg_scale": "0-1 mean of the tasks in jglue.avg_tasks (the JP-Stable leaderboard prints 0-100 over 8 tasks)",
                **(
                    {"jglue.jnli_version": self.opts.jnli_version}
                    if "jnli" in info and self.opts.prompt_style == "jp_stable"
                    else {}
                ),
                "jglue.data": "; ".join(f"{t}={i['data_label']}" for t, i in info.items())[:4000],
            },
        )
