"""The config schema: typed dataclasses of one cell, and the typed converter that builds them.

This is the bottom layer of jsweep's configuration. Everything downstream of the compose layer
works on these dataclasses; nothing here imports the data layer, Hydra or torch. Validation that
needs more than the types (registries, dataset presets, files) sits above, in :mod:`jsweep.validate`.

- :func:`from_dict` turns a plain dict into any dataclass (a cell's, an executor's or an
  evaluator's options): unknown keys, missing keys, wrong types and (by default) values outside
  a ``Literal`` choice are refused with one line naming the key.
- :func:`choice_problems` lists every value of a dataclass tree outside its ``Literal`` choices;
  :func:`cell_from_dict` leaves those to :func:`jsweep.validate.validate_cell`, so a grid reports
  them together with its other value problems.

A key with a fixed set of values is typed ``Literal[...]``; its choices (for messages and docs)
are ``typing.get_args`` of the type (``choices(Scheduler)``).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from jsweep.errors import ConfigError

Dtype = Literal["float32", "bfloat16", "float16", "auto"]
DataSource = Literal["auto", "fixture", "hub", "path"]
Precision = Literal["auto", "bf16", "fp16", "fp32"]
Attention = Literal["auto", "varlen", "sdpa", "eager"]
Backend = Literal["none", "ddp", "deepspeed"]
# The engine that generates for the evaluators (``eval.backend``; jsweep.eval.generate, jsweep.eval.vllm_engine).
EvalBackend = Literal["transformers", "vllm"]
# transformers' SchedulerType values (kept here: planning imports no transformers).
Scheduler = Literal[
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "reduce_lr_on_plateau",
    "cosine_with_min_lr",
    "cosine_warmup_with_min_lr",
    "warmup_stable_decay",
]
# TRL's DPO loss types.
DpoLoss = Literal[
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
]


def choices(tp: Any) -> tuple[Any, ...]:
    """The values of a ``Literal`` type (``choices(Precision)`` -> ("auto", "bf16", "fp16", "fp32"))."""
    return typing.get_args(tp)


@dataclass
class ModelSpec:
    name: str
    source: str
    revision: str | None = None
    dtype: Dtype = "float32"
    init: Literal["pretrained", "random"] = "pretrained"
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
    hub_id: str | None = None
    hub_file: str | None = None
    revision: str | None = None
    path: str | None = None
    fixture: str | None = None
    source: DataSource = "auto"
    n: int | None = None
    seed: int = 0
    on_error: Literal["raise", "skip"] = "raise"
    license: str = ""
    # jsweep key -> the record's field name, for loaders that read arbitrary records (generic,
    # preference, oasst); each loader declares the keys it reads (jsweep.data.protocols.loader).
    field_map: dict[str, str] = field(default_factory=dict)
    # loader=mixture only: component name -> {preset: <dataset preset>, weight | upsample, any dataset key}.
    components: dict[str, dict[str, Any]] = field(default_factory=dict)
    # equal budgets across a comparison: examples:N | tokens:N | steps:N (null = no budget).
    budget: str | None = None


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
    peft: Literal["none", "lora"] = "none"
    lora: LoraSpec = field(default_factory=LoraSpec)
    beta: float = 0.1  # DPO: strength of the KL penalty towards the reference model
    loss_type: DpoLoss = "sigmoid"  # DPO: TRL loss (sigmoid = DPO, ipo, hinge, robust, ...)
    init_from: str | None = None  # start from this checkpoint: a full model dir, or a LoRA adapter dir (merged)


@dataclass
class PromptSpec:
    format: str = "alpaca_ja"
    train_on_inputs: bool = False
    system: str | None = None


@dataclass
class TrainSpec:
    epochs: float = 1
    max_steps: int = -1
    micro_batch_size: int = 4
    grad_accum: int = 1
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    scheduler: Scheduler = "cosine"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 512
    packing: bool = True  # padding-free packing (TRL bfd) of SFT examples into max_length rows
    attention: Attention = "auto"  # auto | varlen | sdpa | eager (see jsweep.job.attention)
    liger: Literal["auto", True, False] = "auto"  # Liger Triton kernels (RMSNorm, SwiGLU, RoPE) on GPU
    eval_fraction: float = 0.1
    eval_steps: int = 0
    logging_steps: int = 1
    precision: Precision = "auto"
    gradient_checkpointing: bool = False
    dropout: float | None = None  # None: the model's own dropout; a number sets every dropout probability
    save_model: bool = True
    checkpoint_steps: int = 0  # resumable checkpoint every N steps; 0 = each epoch; -1 = none
    keep_checkpoints: int = 1  # how many checkpoints to keep
    delete_checkpoints: bool = True  # remove checkpoints once the cell finished (the final model is kept)


@dataclass
class DistributedSpec:
    name: str = "none"
    backend: Backend = "none"
    zero_stage: Literal[0, 1, 2, 3] = 0  # DeepSpeed ZeRO stage (deepspeed backend only)
    offload_optimizer: bool = False
    offload_param: bool = False
    min_gpus: int = 0


@dataclass
class ResourcesSpec:
    gpus: int = 1  # GPUs per cell
    cpu_processes: bool = False  # run multi-process cells on CPU (gloo), for tests


@dataclass
class LauncherSpec:
    name: str = "local"
    concurrency: int = 1
    gpus: Any = "auto"
    stream_logs: bool = True
    fail_fast: bool = False
    dry_run: bool = False
    rerun: Any = False  # true, or a list of cell-id prefixes, to run finished cells again
    oom_retries: int = 2  # retries of an out-of-memory cell with the micro-batch halved
    report: bool = True  # write report/ (tables, plots) when the sweep ends; log it to the parent run
    # The executor's own keys (launcher.partition... for slurm), typed by its Options dataclass
    # (jsweep.executors); given flat in conf/launcher/<name>.yaml or as launcher.<key>=... overrides.
    options: Any = None

    @classmethod
    def from_mapping(cls, data: dict[str, Any], where: str) -> LauncherSpec:
        """The common launcher keys, then the executor's own keys (flat, or under ``options`` as cell.json
        has them) typed by its Options dataclass."""
        from jsweep.executors import EXECUTORS, options_class

        where = where or "launcher"
        data = dict(data)
        name = str(data.get("name", "local"))
        if name not in EXECUTORS:
            raise ConfigError(f"{where}.name={name}: no such launcher (choose from {', '.join(sorted(EXECUTORS))})")
        common = {f.name for f in dataclasses.fields(cls)} - {"options"}
        own = dict(data.pop("options", None) or {})
        own.update({k: data.pop(k) for k in list(data) if k not in common})
        opts_cls = options_class(name)
        if opts_cls is None:
            if own:
                raise ConfigError(f"unknown key '{where}.{sorted(own)[0]}' (valid keys: {', '.join(sorted(common))})")
            options = None
        else:
            known = {f.name for f in dataclasses.fields(opts_cls)}
            unknown = sorted(set(own) - known)
            if unknown:
                raise ConfigError(
                    f"unknown key '{where}.{unknown[0]}' (valid keys: {', '.join(sorted(common | known))})"
                )
            options = from_dict(opts_cls, own, where)
        spec = build_fields(cls, data, where)
        spec.options = options
        return spec


@dataclass
class TrackingSpec:
    name: str = "mlflow"
    uri: str | None = None
    experiment: str = "jsweep"
    log_predictions: bool = True


@dataclass
class JudgeSpec:
    """The LLM judge (conf/judge/<name>.yaml; jsweep.eval.judge). ``api_key_env`` names the
    environment variable holding the key; the key itself is never in the config."""

    name: str = "local"
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "judge"
    api_key_env: str | None = None
    temperature: float = 0.0
    max_tokens: int = 512
    seed: int | None = None
    extra_body: dict[str, Any] | None = None
    timeout: float = 60.0
    max_retries: int = 6
    backoff: float = 1.0
    backoff_max: float = 60.0
    concurrency: int = 4
    prompt: str = "elyza"
    defer: bool = False
    pairwise: dict[str, Any] | None = None


@dataclass
class CellSpec:
    model: ModelSpec
    dataset: DatasetSpec
    method: MethodSpec
    lr: float
    prompt: PromptSpec = field(default_factory=PromptSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    eval: dict[str, dict[str, Any]] = field(default_factory=dict)
    # ``eval.backend`` in the config: taken out of the evaluator mapping by cell_from_dict, so nothing that
    # iterates ``eval`` (evaluator names) sees it. Part of the cell identity except at its default (jsweep.identity).
    eval_backend: EvalBackend = field(default="transformers", metadata={"key": "eval.backend"})
    launcher: LauncherSpec = field(default_factory=LauncherSpec)
    tracking: TrackingSpec = field(default_factory=TrackingSpec)
    distributed: DistributedSpec = field(default_factory=DistributedSpec)
    resources: ResourcesSpec = field(default_factory=ResourcesSpec)
    judge: JudgeSpec = field(default_factory=JudgeSpec)
    seed: int = 0  # training seed (replicates)
    data_seed: int = 0  # data seed (split, subsets, mixtures); dataset.seed follows it
    output_root: str = "outputs"
    data_source: DataSource = "auto"
    experiment: dict[str, Any] | None = None
    overrides: list[str] = field(default_factory=list)  # the cell's own Hydra overrides (for naming)

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


def _render(value: Any) -> str:
    """A choice as a config file writes it: true, false, null, or the value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_choice(value: Any, options: tuple[Any, ...]) -> bool:
    """``value`` is one of ``options``, of the same type (1 is not True, "1" is not 1)."""
    return any(value == o and type(value) is type(o) for o in options)


def _choice_error(key: str, value: Any, options: tuple[Any, ...]) -> str:
    return f"{key} must be one of {', '.join(_render(o) for o in options)}, got {value!r}"


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        options = typing.get_args(tp)
        kinds = {type(o) for o in options}
        if len(kinds) == 1 and kinds <= {str, int, bool}:
            value = _convert(value, kinds.pop(), key)  # the type; the choice is checked by choice_problems
        elif value is None or not isinstance(value, (str, int, float, bool)):
            raise ConfigError(_choice_error(key, value, options))
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
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return _build(tp, value, key)
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


def _key(where: str, f: dataclasses.Field) -> str:
    """The config key of a field, for messages: ``metadata["key"]`` where the field sits elsewhere in the
    config than in the dataclass (``CellSpec.eval_backend`` is ``eval.backend``)."""
    if "key" in f.metadata:
        return f"{where}.{f.metadata['key']}" if where else f.metadata["key"]
    return f"{where}.{f.name}" if where else f.name


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    """The dataclass from its keys; a class with a ``from_mapping(data, where)`` classmethod builds itself."""
    custom = getattr(cls, "from_mapping", None)
    if custom is not None:
        return custom(data, where)
    return build_fields(cls, data, where)


def build_fields(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """The dataclass from exactly its own fields, converted by type (no ``from_mapping`` hook, no
    choice check): what a ``from_mapping`` hook calls once it has taken its own keys out."""
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(f"unknown key '{prefix}{unknown[0]}' (valid keys: {', '.join(sorted(names))})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        key = _key(where, f)
        if f.name in data:
            kwargs[f.name] = _convert(data[f.name], hints[f.name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing key '{key}'")
    return cls(**kwargs)


def from_dict(cls: type, data: dict[str, Any], where: str = "", *, check_choices: bool = True) -> Any:
    """Build dataclass ``cls`` from a plain dict (nested dataclasses, lists, dicts, Optional, Literal).

    ``where`` is the key the dict sits under (``launcher``, ``eval.jglue``), so every error names
    the full key. Raises ConfigError (one line) for an unknown key (listing the valid ones), a
    missing required key, a wrong type, and, with ``check_choices``, the first value outside its
    ``Literal`` choices (see :func:`choice_problems` to get them all). A dataclass with a
    ``from_mapping(data, where)`` classmethod builds itself (LauncherSpec: it types its executor's own
    keys), typically taking its own keys out and calling :func:`build_fields` for the rest."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {data!r}")
    obj = _build(cls, data, where)
    if check_choices and (problems := choice_problems(obj, where)):
        raise ConfigError(problems[0])
    return obj


def choice_problems(obj: Any, where: str = "") -> list[str]:
    """Every value of dataclass instance ``obj`` (and the dataclasses inside it) outside its ``Literal``
    choices, as ``<key> must be one of a, b, got 'x'``."""
    problems: list[str] = []
    cls: type = type(obj)
    hints = _hints(cls)
    for f in dataclasses.fields(obj):
        key = _key(where, f)
        value, tp = getattr(obj, f.name), hints[f.name]
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            problems.extend(choice_problems(value, key))
            continue
        literals = (
            [tp]
            if typing.get_origin(tp) is Literal
            else [a for a in typing.get_args(tp) if typing.get_origin(a) is Literal]
            if typing.get_origin(tp) in (Union, types.UnionType)
            else []
        )
        if not literals or (value is None and type(None) in typing.get_args(tp)):
            continue
        options = tuple(o for lit in literals for o in typing.get_args(lit))
        if not _is_choice(value, options):
            problems.append(_choice_error(key, value, options))
    return problems


def cell_from_dict(data: dict[str, Any]) -> CellSpec:
    """Build a CellSpec from a resolved config dict (the ``hydra`` node must be removed). Values outside
    their choices are left to :func:`jsweep.validate.validate_cell`, which reports all of a cell's problems.

    The config's ``eval.backend`` (a reserved key of the ``eval`` node, beside the evaluators) becomes the
    ``eval_backend`` field; a dict written by :meth:`CellSpec.to_dict` has it there already."""
    evals = data.get("eval")
    if isinstance(evals, dict) and "backend" in evals:
        evals = dict(evals)
        data = {**data, "eval": evals, "eval_backend": evals.pop("backend")}
    return from_dict(CellSpec, data, check_choices=False)
