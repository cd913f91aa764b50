"""Validation of a cell's values: what needs more than the schema's types.

:mod:`jsweep.schema` converts a config into typed dataclasses; this layer sits above it and above
the data layer: registries (loaders, trainers, formats, evaluators), datasets (loaders' record
kinds and field-map keys, mixtures: :mod:`jsweep.data.load`), evaluator options, and value ranges
and combinations. Imports no torch.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from jsweep import registries
from jsweep.data.budget import parse_budget
from jsweep.data.load import dataset_problems, dataset_records
from jsweep.errors import ConfigError
from jsweep.schema import CellSpec, choice_problems

TRACKING_SCHEMES = (
    "",
    "file",
    "sqlite",
    "http",
    "https",
    "postgresql",
    "mysql",
    "mssql",
    "databricks",
    "databricks-uc",
    "uc",
)


def _number_problem(key: str, value: Any, low: int, also: tuple) -> str | None:
    if not isinstance(value, bool) and value in also:
        return None
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
    if ok:
        return None
    extra = "".join(f" or {'null' if a is None else a}" for a in also)
    return f"{key} must be an integer >= {low}{extra}, got {value!r}"


def eval_option_problems(name: str, options: dict[str, Any]) -> list[str]:
    """Numbers and choices of an evaluator's options, as its declaration states them (the evaluator
    checks its data itself)."""
    from jsweep import registries

    if name not in registries.EVALUATORS:
        return []
    decl = registries.EVALUATORS.get(name)
    problems = []
    for key, (low, also) in decl.numbers.items():
        if key.endswith(".*"):
            group = options.get(key[:-2])
            items = group.items() if isinstance(group, dict) else []
            for sub, value in items:
                if p := _number_problem(f"eval.{name}.{key[:-2]}.{sub}", value, low, also):
                    problems.append(p)
        elif key in options and (p := _number_problem(f"eval.{name}.{key}", options[key], low, also)):
            problems.append(p)
    for key, allowed in decl.choices.items():
        if key in options and options[key] not in allowed:
            problems.append(f"eval.{name}.{key} must be one of {', '.join(map(str, allowed))}, got {options[key]!r}")
    return problems


def _arch_problems(arch: dict[str, Any]) -> list[str]:
    """An architecture that cannot be built: widths and head counts that do not divide."""
    problems = []
    width, heads, kv = arch.get("hidden_size"), arch.get("num_attention_heads"), arch.get("num_key_value_heads")
    for key, value in (
        ("hidden_size", width),
        ("num_attention_heads", heads),
        ("num_key_value_heads", kv),
        ("num_hidden_layers", arch.get("num_hidden_layers")),
        ("intermediate_size", arch.get("intermediate_size")),
    ):
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            problems.append(f"model.arch.{key} must be a positive integer, got {value!r}")
    if not problems and isinstance(width, int) and isinstance(heads, int) and width % heads:
        problems.append(f"model.arch.hidden_size={width} is not divisible by model.arch.num_attention_heads={heads}")
    if not problems and isinstance(heads, int) and isinstance(kv, int) and heads % kv:
        problems.append(
            f"model.arch.num_attention_heads={heads} is not divisible by model.arch.num_key_value_heads={kv}"
        )
    return problems


def validate_cell(cell: CellSpec) -> list[str]:
    """Return every problem with a cell's values (empty when valid). Imports no torch."""
    problems: list[str] = []

    def check(cond: bool, msg: str) -> None:
        if not cond:
            problems.append(msg)

    def check_choice(value: str, registry: Any, key: str) -> None:
        if (problem := registry.problem(value, key)) is not None:
            problems.append(problem)

    check(
        isinstance(cell.lr, float) and math.isfinite(cell.lr) and cell.lr > 0,
        f"lr must be a positive number, got {cell.lr!r}",
    )
    problems.extend(choice_problems(cell))  # every Literal-typed key (precision, scheduler, backend...)
    check_choice(cell.method.trainer, registries.TRAINERS, "method.trainer")
    check_choice(cell.prompt.format, registries.PROMPT_FORMATS, "prompt.format")
    for name in cell.eval:
        check_choice(name, registries.EVALUATORS, "eval")
    if any(name in registries.JUDGED_EVALUATORS for name in cell.eval):  # the judge, before any GPU work
        from jsweep.eval import judge as _judge

        problems.extend(_judge.check(_judge.options(cell.judge)))
    if cell.method.peft == "lora":
        check(cell.method.lora.r > 0, f"method.lora.r must be positive, got {cell.method.lora.r}")
        check(bool(cell.method.lora.target_modules), "method.lora.target_modules is empty")
        d = cell.method.lora.dropout
        check(math.isfinite(d) and 0 <= d < 1, f"method.lora.dropout must be in [0, 1), got {d}")
        check(cell.method.lora.alpha > 0, f"method.lora.alpha must be positive, got {cell.method.lora.alpha}")
    check(cell.dataset.n is None or cell.dataset.n > 0, f"dataset.n must be positive, got {cell.dataset.n}")
    problems.extend(_dataset_problems(cell))
    t = cell.train
    check(math.isfinite(t.epochs) and t.epochs > 0, f"train.epochs must be a positive finite number, got {t.epochs}")
    check(0 <= cell.seed < 2**32, f"seed must be an integer in [0, 2**32), got {cell.seed}")
    check(
        math.isfinite(t.max_grad_norm) and t.max_grad_norm > 0,
        f"train.max_grad_norm must be positive, got {t.max_grad_norm}",
    )
    check(
        math.isfinite(t.weight_decay) and t.weight_decay >= 0, f"train.weight_decay must be >= 0, got {t.weight_decay}"
    )
    problems.extend(_arch_problems(cell.model.arch))
    for name, options in cell.eval.items():
        problems.extend(eval_option_problems(name, options or {}))
    uri = cell.tracking.uri
    if uri:
        scheme = uri.split("://", 1)[0].lower() if "://" in uri else ("sqlite" if uri.startswith("sqlite:") else "")
        check(
            scheme in TRACKING_SCHEMES,
            f"tracking.uri: unknown scheme '{scheme}://' (use a path, sqlite:///file.db, "
            f"http(s)://host:port, or a database URI)",
        )
    check(t.micro_batch_size > 0, f"train.micro_batch_size must be positive, got {t.micro_batch_size}")
    check(t.grad_accum > 0, f"train.grad_accum must be positive, got {t.grad_accum}")
    check(t.max_length > 8, f"train.max_length must be above 8, got {t.max_length}")
    check(0 <= t.eval_fraction < 1, f"train.eval_fraction must be in [0, 1), got {t.eval_fraction}")
    check(t.warmup_steps >= 0 and 0 <= t.warmup_ratio < 1, "train.warmup_steps must be >= 0 and warmup_ratio in [0, 1)")
    check(t.logging_steps > 0, f"train.logging_steps must be positive, got {t.logging_steps}")
    check(cell.launcher.concurrency > 0, f"launcher.concurrency must be positive, got {cell.launcher.concurrency}")
    check(cell.resources.gpus >= 0, f"resources.gpus must be >= 0, got {cell.resources.gpus}")
    dist = cell.distributed
    if dist.backend == "none" and cell.resources.gpus > 1:
        problems.append(f"resources.gpus={cell.resources.gpus} needs a multi-GPU method: distributed=ddp|zero2|zero3")
    if dist.backend != "none" and cell.eval and not cell.train.save_model:
        problems.append(
            f"distributed={dist.name} cells are evaluated from the saved model: set train.save_model=true or eval=[]"
        )
    if dist.backend != "none" and cell.resources.gpus < dist.min_gpus:
        problems.append(
            f"distributed={dist.name} needs at least {dist.min_gpus} GPUs per cell, got resources.gpus="
            f"{cell.resources.gpus}"
            + (
                " (ZeRO-3 on one GPU only makes sense with offload: distributed=zero3_offload)"
                if dist.zero_stage == 3
                else ""
            )
        )
    return problems


def _dataset_problems(cell: CellSpec) -> list[str]:
    """Data/method combinations: budgets, field maps, mixtures, and records vs trainer (DPO needs pairs)."""
    problems: list[str] = []
    d, m = cell.dataset, cell.method
    budget = None
    try:
        budget = parse_budget(d.budget)
    except ConfigError as exc:
        problems.append(str(exc))
    if budget and budget[0] == "steps" and cell.train.max_steps > 0:
        problems.append(
            f"dataset.budget={d.budget} sets the step count; leave train.max_steps unset (it is {cell.train.max_steps})"
        )
    if budget and budget[0] == "examples" and d.n is not None:
        problems.append(f"dataset.budget={d.budget} fixes the number of examples; leave dataset.n unset (it is {d.n})")

    problems.extend(dataset_problems(d))  # loader, field-map keys, mixture components
    try:
        records = dataset_records(d)
    except ConfigError:  # reported by dataset_problems
        records = None
    if records == "mixed":  # likewise
        records = None

    need = registries.TRAINER_RECORDS.get(m.trainer)
    if records and need and records != need:
        if need == "preference":
            problems.append(
                f"method '{m.name}' (trainer {m.trainer}) needs preference pairs (chosen/rejected), but "
                f"dataset '{d.name}' has none (loader {d.loader}): use a preference dataset such as "
                f"dataset=hh_rlhf_ja, chatbot_arena_ja or preference"
            )
        else:
            problems.append(
                f"method '{m.name}' (trainer {m.trainer}) needs instruction data, but dataset '{d.name}' "
                f"holds preference pairs only (loader {d.loader}): use method=dpo or method=dpo_lora"
            )

    if m.trainer == "dpo" and not (math.isfinite(m.beta) and m.beta > 0):
        problems.append(f"method.beta must be a positive number, got {m.beta!r}")
    if m.init_from:
        path = Path(os.path.expanduser(m.init_from))
        if not path.is_dir():
            problems.append(f"method.init_from: no such directory: {m.init_from}")
        elif not ((path / "config.json").exists() or (path / "adapter_config.json").exists()):
            problems.append(
                f"method.init_from: {m.init_from} holds neither a model (config.json) "
                f"nor a LoRA adapter (adapter_config.json)"
            )
    return problems
