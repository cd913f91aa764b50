"""Typed cell specification: what one cell of a sweep is, after Hydra composition.

Everything downstream of the compose layer works on these dataclasses. They are built
from a plain (resolved) dict with :func:`cell_from_dict`, which rejects unknown keys and
wrong types and names the offending key; :func:`validate_cell` checks values and
combinations. Neither imports Hydra or torch.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from jsweep.errors import ConfigError


@dataclass
class ModelSpec:
    name: str
    source: str
    revision: Optional[str] = None
    dtype: str = "float32"
    init: str = "pretrained"
    trust_remote_code: bool = False
    prompt_format: str = "alpaca_ja"
    lora_target_modules: list[str] = field(default_factory=list)
    arch: dict[str, Any] = field(default_factory=dict)

    @property
    def builtin(self) -> bool:
        return self.source.startswith("builtin:")


@dataclass
class DatasetSpec:
    """One dataset preset (conf/dataset/<name>.yaml). Where the records come from (``source``:
    hub_id / path / fixture), how they are read (``loader``, ``field_map``), and how many are used
    (``n``, ``budget``). A mixture is ``loader: mixture`` with ``components`` (see
    jsweep.data.mixture for the rules)."""

    name: str
    loader: str
    hub_id: Optional[str] = None
    hub_file: Optional[str] = None
    revision: Optional[str] = None
    path: Optional[str] = None
    fixture: Optional[str] = None
    source: str = "auto"
    n: Optional[int] = None
    seed: int = 0
    on_error: str = "raise"
    license: str = ""
    # jsweep key -> the record's field name, for loaders that read arbitrary records: generic
    # (instruction, input, output, id, system, messages), preference (prompt, chosen, rejected, id,
    # system) and oasst (text: which text column, default text_ja).
    field_map: dict[str, str] = field(default_factory=dict)
    # loader=mixture only: component name -> {preset: <dataset preset>, weight | upsample, any dataset key}.
    components: dict[str, dict[str, Any]] = field(default_factory=dict)
    # equal budgets across a comparison: examples:N | tokens:N | steps:N (null = no budget).
    budget: Optional[str] = None


@dataclass
class LoraSpec:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=list)


@dataclass
class MethodSpec:
    name: str
    trainer: str
    lr: float
    peft: str = "none"
    lora: LoraSpec = field(default_factory=LoraSpec)
    beta: float = 0.1                  # DPO: strength of the KL penalty towards the reference model
    loss_type: str = "sigmoid"         # DPO: TRL loss (sigmoid = DPO, ipo, hinge, robust, ...)
    init_from: Optional[str] = None    # start from this checkpoint: a full model dir, or a LoRA adapter dir (merged)


@dataclass
class PromptSpec:
    format: str = "alpaca_ja"
    train_on_inputs: bool = False
    system: Optional[str] = None


@dataclass
class TrainSpec:
    epochs: float = 1
    max_steps: int = -1
    micro_batch_size: int = 4
    grad_accum: int = 1
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    scheduler: str = "cosine"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 512
    packing: bool = True                # padding-free packing (TRL bfd) of SFT examples into max_length rows
    attention: str = "auto"             # auto | varlen | sdpa | eager (see jsweep.job.attention)
    liger: Any = "auto"                 # auto | true | false: Liger Triton kernels (RMSNorm, SwiGLU, RoPE) on GPU
    eval_fraction: float = 0.1
    eval_steps: int = 0
    logging_steps: int = 1
    precision: str = "auto"
    gradient_checkpointing: bool = False
    save_model: bool = True
    checkpoint_steps: int = 0           # resumable checkpoint every N steps; 0 = each epoch; -1 = none
    keep_checkpoints: int = 1           # how many checkpoints to keep
    delete_checkpoints: bool = True     # remove checkpoints once the cell finished (the final model is kept)


@dataclass
class DistributedSpec:
    name: str = "none"
    backend: str = "none"               # none | ddp | deepspeed
    zero_stage: int = 0
    offload_optimizer: bool = False
    offload_param: bool = False
    min_gpus: int = 0


@dataclass
class ResourcesSpec:
    gpus: int = 1                       # GPUs per cell
    cpu_processes: bool = False         # run multi-process cells on CPU (gloo), for tests


@dataclass
class LauncherSpec:
    name: str = "local"
    concurrency: int = 1
    gpus: Any = "auto"
    stream_logs: bool = True
    fail_fast: bool = False
    dry_run: bool = False
    rerun: Any = False                  # true, or a list of cell-id prefixes, to run finished cells again
    oom_retries: int = 2                # retries of an out-of-memory cell with the micro-batch halved
    report: bool = True                 # write report/ (tables, plots) when the sweep ends; log it to the parent run
    # The executor's own keys (launcher.partition... for slurm), typed by its Options dataclass
    # (jsweep.executors); given flat in conf/launcher/<name>.yaml or as launcher.<key>=... overrides.
    options: Any = None


@dataclass
class TrackingSpec:
    name: str = "mlflow"
    uri: Optional[str] = None
    experiment: str = "jsweep"
    log_predictions: bool = True


@dataclass
class JudgeSpec:
    """The LLM judge (conf/judge/<name>.yaml; jsweep.eval.judge). ``api_key_env`` names the
    environment variable holding the key; the key itself is never in the config."""

    name: str = "local"
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "judge"
    api_key_env: Optional[str] = None
    temperature: float = 0.0
    max_tokens: int = 512
    seed: Optional[int] = None
    extra_body: Optional[dict[str, Any]] = None
    timeout: float = 60.0
    max_retries: int = 6
    backoff: float = 1.0
    backoff_max: float = 60.0
    concurrency: int = 4
    prompt: str = "elyza"
    defer: bool = False
    pairwise: Optional[dict[str, Any]] = None


@dataclass
class CellSpec:
    model: ModelSpec
    dataset: DatasetSpec
    method: MethodSpec
    lr: float
    prompt: PromptSpec = field(default_factory=PromptSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    eval: dict[str, dict[str, Any]] = field(default_factory=dict)
    launcher: LauncherSpec = field(default_factory=LauncherSpec)
    tracking: TrackingSpec = field(default_factory=TrackingSpec)
    distributed: DistributedSpec = field(default_factory=DistributedSpec)
    resources: ResourcesSpec = field(default_factory=ResourcesSpec)
    judge: JudgeSpec = field(default_factory=JudgeSpec)
    seed: int = 0                 # training seed (replicates)
    data_seed: int = 0            # data seed (split, subsets, mixtures); dataset.seed follows it
    output_root: str = "outputs"
    data_source: str = "auto"
    experiment: Optional[dict[str, Any]] = None
    overrides: list[str] = field(default_factory=list)   # the cell's own Hydra overrides (for naming)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def label(self) -> str:
        """Short human label of the cell: its sweep overrides, or model/dataset/method/lr."""
        if self.overrides:
            return " ".join(self.overrides)
        return f"model={self.model.name} dataset={self.dataset.name} method={self.method.name} lr={self.lr:g}"


# --------------------------------------------------------------------------- conversion

def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{key}: must not be null")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return _from_dict(tp, value, key)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_tp,) = typing.get_args(tp) or (Any,)
        return [_convert(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        _, val_tp = typing.get_args(tp) or (Any, Any)
        return {str(k): _convert(v, val_tp, f"{key}.{k}") for k, v in value.items()}
    if value is None:
        raise ConfigError(f"{key}: must not be null")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported type {_type_name(tp)}")


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _launcher_from_dict(data: dict[str, Any], prefix: str) -> "LauncherSpec":
    """The common launcher keys, then the executor's own keys (flat, or under ``options`` as cell.json
    has them) typed by its Options dataclass."""
    from jsweep.executors import EXECUTORS, options_class

    data = dict(data)
    name = str(data.get("name", "local"))
    if name not in EXECUTORS:
        raise ConfigError(f"{prefix}.name={name}: no such launcher (choose from {', '.join(sorted(EXECUTORS))})")
    common = {f.name for f in dataclasses.fields(LauncherSpec)} - {"options"}
    own = dict(data.pop("options", None) or {})
    own.update({k: data.pop(k) for k in list(data) if k not in common})
    opts_cls = options_class(name)
    if opts_cls is None:
        if own:
            raise ConfigError(f"unknown key '{prefix}.{sorted(own)[0]}' (valid keys: {', '.join(sorted(common))})")
        options = None
    else:
        known = {f.name for f in dataclasses.fields(opts_cls)}
        unknown = sorted(set(own) - known)
        if unknown:
            raise ConfigError(f"unknown key '{prefix}.{unknown[0]}' (valid keys: {', '.join(sorted(common | known))})")
        options = _from_dict(opts_cls, own, prefix)
    spec = _from_dict(LauncherSpec, data, prefix, _plain=True)
    spec.options = options
    return spec


def _from_dict(cls: type, data: dict[str, Any], prefix: str, _plain: bool = False) -> Any:
    if cls is LauncherSpec and not _plain:
        return _launcher_from_dict(data, prefix or "launcher")
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"unknown key '{where}{unknown[0]}' (valid keys: {', '.join(sorted(names))})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        if f.name in data:
            kwargs[f.name] = _convert(data[f.name], hints[f.name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing key '{key}'")
    return cls(**kwargs)


def cell_from_dict(data: dict[str, Any]) -> CellSpec:
    """Build a CellSpec from a resolved config dict (the ``hydra`` node must be removed)."""
    return _from_dict(CellSpec, data, "")


# --------------------------------------------------------------------------- validation

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
# transformers' SchedulerType values (kept here: planning imports no transformers).
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr",
              "warmup_stable_decay")
TRACKING_SCHEMES = ("", "file", "sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks",
                    "databricks-uc", "uc")
LLM_JP_EVAL_SPLITS = ("test", "dev")
# Evaluator options that are numbers: key -> (kind, lowest value, also allowed). Checked in pre-flight,
# so a bad value is one line before any cell starts rather than an error after training.
EVAL_NUMBERS: dict[str, dict[str, tuple[type, int, tuple]]] = {
    "llm_jp_eval": {"num_few_shots": (int, 0, ()), "max_num_samples": (int, 1, (-1,)), "batch_size": (int, 1, ("auto",))},
    "jglue": {"limit": (int, 1, (None,)), "batch_size": (int, 1, ("auto",)), "fewshot_seed": (int, 0, ()),
              "jsquad_max_gen_toks": (int, 1, (None,)), "max_length": (int, 1, (None,)),
              "num_fewshot.*": (int, 0, ())},
}


def _number_problem(key: str, value: Any, kind: type, low: int, also: tuple) -> str | None:
    if not isinstance(value, bool) and value in also:
        return None
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
    if ok:
        return None
    extra = "".join(f" or {'null' if a is None else a}" for a in also)
    return f"{key} must be an integer >= {low}{extra}, got {value!r}"


def eval_option_problems(name: str, options: dict[str, Any]) -> list[str]:
    """Numbers and choices of an evaluator's options (the evaluator checks its data itself)."""
    problems = []
    for key, (kind, low, also) in EVAL_NUMBERS.get(name, {}).items():
        if key.endswith(".*"):
            group = options.get(key[:-2])
            items = group.items() if isinstance(group, dict) else []
            for sub, value in items:
                if (p := _number_problem(f"eval.{name}.{key[:-2]}.{sub}", value, kind, low, also)):
                    problems.append(p)
        elif key in options and (p := _number_problem(f"eval.{name}.{key}", options[key], kind, low, also)):
            problems.append(p)
    if name == "llm_jp_eval" and options.get("split", "test") not in LLM_JP_EVAL_SPLITS:
        problems.append(f"eval.llm_jp_eval.split must be one of {', '.join(LLM_JP_EVAL_SPLITS)}, "
                        f"got {options.get('split')!r}")
    return problems


def _arch_problems(arch: dict[str, Any]) -> list[str]:
    """An architecture that cannot be built: widths and head counts that do not divide."""
    problems = []
    width, heads, kv = arch.get("hidden_size"), arch.get("num_attention_heads"), arch.get("num_key_value_heads")
    for key, value in (("hidden_size", width), ("num_attention_heads", heads), ("num_key_value_heads", kv),
                       ("num_hidden_layers", arch.get("num_hidden_layers")),
                       ("intermediate_size", arch.get("intermediate_size"))):
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            problems.append(f"model.arch.{key} must be a positive integer, got {value!r}")
    if not problems and isinstance(width, int) and isinstance(heads, int) and width % heads:
        problems.append(f"model.arch.hidden_size={width} is not divisible by model.arch.num_attention_heads={heads}")
    if not problems and isinstance(heads, int) and isinstance(kv, int) and heads % kv:
        problems.append(f"model.arch.num_attention_heads={heads} is not divisible by "
                        f"model.arch.num_key_value_heads={kv}")
    return problems
DTYPES = ("float32", "bfloat16", "float16", "auto")
SOURCES = ("auto", "fixture", "hub", "path")


def validate_cell(cell: CellSpec) -> list[str]:
    """Return every problem with a cell's values (empty when valid). Imports no torch."""
    from jsweep import registries

    problems: list[str] = []

    def check(cond: bool, msg: str) -> None:
        if not cond:
            problems.append(msg)

    def check_choice(value: str, registry: Any, key: str) -> None:
        if (problem := registry.problem(value, key)) is not None:
            problems.append(problem)

    check(isinstance(cell.lr, float) and math.isfinite(cell.lr) and cell.lr > 0,
          f"lr must be a positive number, got {cell.lr!r}")
    check_choice(cell.dataset.loader, registries.LOADERS, "dataset.loader")
    check_choice(cell.method.trainer, registries.TRAINERS, "method.trainer")
    check_choice(cell.prompt.format, registries.PROMPT_FORMATS, "prompt.format")
    for name in cell.eval:
        check_choice(name, registries.EVALUATORS, "eval")
    if any(name in registries.JUDGED_EVALUATORS for name in cell.eval):   # the judge, before any GPU work
        from jsweep.eval import judge as _judge

        problems.extend(_judge.check(_judge.options(cell.judge)))
    check(cell.method.peft in ("none", "lora"), f"method.peft must be none or lora, got {cell.method.peft!r}")
    if cell.method.peft == "lora":
        check(cell.method.lora.r > 0, f"method.lora.r must be positive, got {cell.method.lora.r}")
        check(bool(cell.method.lora.target_modules), "method.lora.target_modules is empty")
        d = cell.method.lora.dropout
        check(math.isfinite(d) and 0 <= d < 1, f"method.lora.dropout must be in [0, 1), got {d}")
        check(cell.method.lora.alpha > 0, f"method.lora.alpha must be positive, got {cell.method.lora.alpha}")
    check(cell.model.dtype in DTYPES, f"model.dtype must be one of {', '.join(DTYPES)}, got {cell.model.dtype!r}")
    check(cell.model.init in ("pretrained", "random"), f"model.init must be pretrained or random, got {cell.model.init!r}")
    check(cell.dataset.source in SOURCES, f"dataset.source must be one of {', '.join(SOURCES)}, got {cell.dataset.source!r}")
    check(cell.dataset.on_error in ("raise", "skip"), f"dataset.on_error must be raise or skip, got {cell.dataset.on_error!r}")
    check(cell.dataset.n is None or cell.dataset.n > 0, f"dataset.n must be positive, got {cell.dataset.n}")
    problems.extend(_dataset_problems(cell))
    t = cell.train
    check(t.precision in PRECISIONS, f"train.precision must be one of {', '.join(PRECISIONS)}, got {t.precision!r}")
    check(math.isfinite(t.epochs) and t.epochs > 0, f"train.epochs must be a positive finite number, got {t.epochs}")
    check(t.scheduler in SCHEDULERS, f"train.scheduler must be one of {', '.join(SCHEDULERS)}, got {t.scheduler!r}")
    check(0 <= cell.seed < 2**32, f"seed must be an integer in [0, 2**32), got {cell.seed}")
    check(math.isfinite(t.max_grad_norm) and t.max_grad_norm > 0, f"train.max_grad_norm must be positive, got {t.max_grad_norm}")
    check(math.isfinite(t.weight_decay) and t.weight_decay >= 0, f"train.weight_decay must be >= 0, got {t.weight_decay}")
    problems.extend(_arch_problems(cell.model.arch))
    for name, options in cell.eval.items():
        problems.extend(eval_option_problems(name, options or {}))
    uri = cell.tracking.uri
    if uri:
        scheme = uri.split("://", 1)[0].lower() if "://" in uri else ("sqlite" if uri.startswith("sqlite:") else "")
        check(scheme in TRACKING_SCHEMES, f"tracking.uri: unknown scheme '{scheme}://' (use a path, sqlite:///file.db, "
                                          f"http(s)://host:port, or a database URI)")
    check(t.micro_batch_size > 0, f"train.micro_batch_size must be positive, got {t.micro_batch_size}")
    check(t.grad_accum > 0, f"train.grad_accum must be positive, got {t.grad_accum}")
    check(t.max_length > 8, f"train.max_length must be above 8, got {t.max_length}")
    check(0 <= t.eval_fraction < 1, f"train.eval_fraction must be in [0, 1), got {t.eval_fraction}")
    check(t.warmup_steps >= 0 and 0 <= t.warmup_ratio < 1, "train.warmup_steps must be >= 0 and warmup_ratio in [0, 1)")
    check(t.attention in ("auto", "varlen", "sdpa", "eager"),
          f"train.attention must be one of auto, varlen, sdpa, eager, got {t.attention!r}")
    check(t.liger in (True, False, "auto"), f"train.liger must be auto, true or false, got {t.liger!r}")
    check(t.logging_steps > 0, f"train.logging_steps must be positive, got {t.logging_steps}")
    check(cell.launcher.concurrency > 0, f"launcher.concurrency must be positive, got {cell.launcher.concurrency}")
    check(cell.resources.gpus >= 0, f"resources.gpus must be >= 0, got {cell.resources.gpus}")
    d = cell.distributed
    check(d.backend in ("none", "ddp", "deepspeed"), f"distributed.backend must be none, ddp or deepspeed, got {d.backend!r}")
    if d.backend == "none" and cell.resources.gpus > 1:
        problems.append(f"resources.gpus={cell.resources.gpus} needs a multi-GPU method: distributed=ddp|zero2|zero3")
    if d.backend != "none" and cell.eval and not cell.train.save_model:
        problems.append(f"distributed={d.name} cells are evaluated from the saved model: set train.save_model=true "
                        f"or eval=[]")
    if d.backend != "none" and cell.resources.gpus < d.min_gpus:
        problems.append(f"distributed={d.name} needs at least {d.min_gpus} GPUs per cell, got resources.gpus="
                        f"{cell.resources.gpus}" + (" (ZeRO-3 on one GPU only makes sense with offload: "
                                                    "distributed=zero3_offload)" if d.zero_stage == 3 else ""))
    return problems


DPO_LOSS_TYPES = ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
                  "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm")


def dataset_records(dataset: DatasetSpec) -> str:
    """What a dataset's records are, from its config alone (no data read): ``sft`` (conversations),
    ``preference`` (DPO pairs), or ``mixed`` (a mixture of both, which is refused)."""
    from jsweep import registries

    if dataset.loader == "mixture":
        from jsweep.data.mixture import component_specs

        kinds = {registries.records_of_loader(cs.loader) for cs, _, _ in component_specs(dataset).values()}
        return kinds.pop() if len(kinds) == 1 else "mixed"
    return registries.records_of_loader(dataset.loader)


def _dataset_problems(cell: CellSpec) -> list[str]:
    """Data/method combinations: budgets, field maps, mixtures, and records vs trainer (DPO needs pairs)."""
    from jsweep import registries
    from jsweep.data.mixture import component_specs, parse_budget

    problems: list[str] = []
    d, m = cell.dataset, cell.method
    budget = None
    try:
        budget = parse_budget(d.budget)
    except ConfigError as exc:
        problems.append(str(exc))
    if budget and budget[0] == "steps" and cell.train.max_steps > 0:
        problems.append(f"dataset.budget={d.budget} sets the step count; leave train.max_steps unset "
                        f"(it is {cell.train.max_steps})")
    if budget and budget[0] == "examples" and d.n is not None:
        problems.append(f"dataset.budget={d.budget} fixes the number of examples; leave dataset.n unset (it is {d.n})")

    if d.field_map:
        from jsweep.data.loaders import GENERIC_FIELDS
        from jsweep.data.preference import PREFERENCE_FIELDS

        valid = {"generic": GENERIC_FIELDS, "preference": PREFERENCE_FIELDS, "oasst": {"text": ""}}.get(d.loader)
        if valid is None:
            problems.append(f"dataset.field_map is only read by the generic, preference and oasst loaders "
                            f"(dataset '{d.name}' uses loader {d.loader})")
        else:
            unknown = sorted(set(d.field_map) - set(valid))
            if unknown:
                problems.append(f"unknown key 'dataset.field_map.{unknown[0]}' for loader {d.loader} "
                                f"(valid keys: {', '.join(valid)})")

    records = None
    if d.loader == "mixture":
        try:
            comps = component_specs(d)
            for name, (cs, _, _) in comps.items():
                if cs.loader not in registries.LOADERS:
                    problems.append(f"unknown {registries.LOADERS.kind} '{cs.loader}' for "
                                    f"dataset.components.{name}.loader")
            records = dataset_records(d)
            if records == "mixed":
                problems.append(f"mixture '{d.name}' mixes preference-pair datasets with instruction datasets")
                records = None
        except ConfigError as exc:
            problems.append(str(exc))
    elif d.components:
        problems.append(f"dataset.components is only read by loader mixture (dataset '{d.name}' uses loader {d.loader})")
    elif d.loader in registries.LOADERS:
        records = dataset_records(d)

    need = registries.TRAINER_RECORDS.get(m.trainer)
    if records and need and records != need:
        if need == "preference":
            problems.append(f"method '{m.name}' (trainer {m.trainer}) needs preference pairs (chosen/rejected), but "
                            f"dataset '{d.name}' has none (loader {d.loader}): use a preference dataset such as "
                            f"dataset=hh_rlhf_ja, chatbot_arena_ja or preference")
        else:
            problems.append(f"method '{m.name}' (trainer {m.trainer}) needs instruction data, but dataset '{d.name}' "
                            f"holds preference pairs only (loader {d.loader}): use method=dpo or method=dpo_lora")

    if m.trainer == "dpo":
        if not (math.isfinite(m.beta) and m.beta > 0):
            problems.append(f"method.beta must be a positive number, got {m.beta!r}")
        if m.loss_type not in DPO_LOSS_TYPES:
            problems.append(f"method.loss_type must be one of {', '.join(DPO_LOSS_TYPES)}, got {m.loss_type!r}")
    if m.init_from:
        import os
        from pathlib import Path

        path = Path(os.path.expanduser(m.init_from))
        if not path.is_dir():
            problems.append(f"method.init_from: no such directory: {m.init_from}")
        elif not ((path / "config.json").exists() or (path / "adapter_config.json").exists()):
            problems.append(f"method.init_from: {m.init_from} holds neither a model (config.json) "
                            f"nor a LoRA adapter (adapter_config.json)")
    return problems
