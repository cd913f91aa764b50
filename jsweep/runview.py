"""What a cell's MLflow run shows, so cells compare in readable columns.

- **Params**: the grid axes plus the settings a person compares (model, dataset, method, lr,
  epochs, effective batch, max length, LoRA r/alpha/dropout, seeds, data size...), not the ~200
  flattened config keys; the whole resolved config is the run's ``config.yaml`` artifact and its
  digest the one param ``config_digest``.
- **Run name**: every override of the command line that sets a result-changing value, so two runs
  with different configs never share a name; bookkeeping (``launcher.*``, ``tracking.*``,
  ``output_root``) is left out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

# Overrides that change where and how a sweep is run or logged, not what a cell computes.
BOOKKEEPING = ("launcher.", "tracking.", "output_root", "hydra.", "resources.cpu_processes", "train.logging_steps")


def _get(d: dict[str, Any], dotted: str) -> Any:
    cur: Any = d
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def config_digest(spec_dict: dict[str, Any]) -> str:
    """Digest of the whole resolved config (minus the cell's override labels): equal digests, equal configs."""
    payload = {k: v for k, v in spec_dict.items() if k != "overrides"}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cell_params(spec_dict: dict[str, Any], axes: Iterable[str] = ()) -> dict[str, str]:
    """The params of a cell's run: the compared settings, each grid axis, and ``config_digest``."""
    train = spec_dict.get("train", {})
    method = spec_dict.get("method", {})
    peft = method.get("peft")
    gpus = _get(spec_dict, "resources.gpus") or 1
    params: dict[str, Any] = {
        "model": _get(spec_dict, "model.name"),
        "dataset": _get(spec_dict, "dataset.name"),
        "method": method.get("name"),
        "lr": spec_dict.get("lr"),
        "epochs": train.get("epochs"),
        "max_steps": train.get("max_steps"),
        "effective_batch": (train.get("micro_batch_size") or 0) * (train.get("grad_accum") or 0) * gpus,
        "micro_batch_size": train.get("micro_batch_size"),
        "grad_accum": train.get("grad_accum"),
        "max_length": train.get("max_length"),
        "warmup_steps": train.get("warmup_steps"),
        "scheduler": train.get("scheduler"),
        "seed": spec_dict.get("seed"),
        "data_seed": spec_dict.get("data_seed"),
        "dataset.n": _get(spec_dict, "dataset.n"),
        "dataset.budget": _get(spec_dict, "dataset.budget"),
        "prompt.format": _get(spec_dict, "prompt.format"),
        "prompt.train_on_inputs": _get(spec_dict, "prompt.train_on_inputs"),
        "train.packing": train.get("packing"),
        "train.attention": train.get("attention"),
        "train.liger": train.get("liger"),
        "gpus": gpus,
        "distributed": _get(spec_dict, "distributed.name"),
        "eval": ",".join(sorted(spec_dict.get("eval") or {})) or "none",
        "eval.backend": spec_dict.get("eval_backend") or "transformers",
    }
    if peft == "lora":
        params.update(
            {
                "lora.r": _get(method, "lora.r"),
                "lora.alpha": _get(method, "lora.alpha"),
                "lora.dropout": _get(method, "lora.dropout"),
            }
        )
    if train.get("dropout") is not None:  # set by the user; otherwise the model's own dropout
        params["train.dropout"] = train.get("dropout")
    if method.get("beta") is not None:
        params["dpo.beta"] = method.get("beta")
    from jsweep.registries import JUDGED_EVALUATORS

    if any(name in JUDGED_EVALUATORS for name in spec_dict.get("eval") or {}):  # judged scores: which judge
        params["judge.model"] = _get(spec_dict, "judge.model")
    for axis in axes:  # every grid axis, under its own key
        key = axis.split("@")[0].lstrip("+~")
        if key in params or key.startswith(BOOKKEEPING):
            continue
        value = _get(spec_dict, key)
        params[key] = value if value is not None else "(group option)"
    out = {k: _text(v) for k, v in params.items()}
    out["config_digest"] = config_digest(spec_dict)
    return out


def run_name(overrides: Iterable[str], fixed: Iterable[str] = ()) -> str:
    """A run name that holds every result-changing override: the cell's own grid values, then the
    command line's fixed ones (``train.epochs=3``), bookkeeping left out."""
    seen: dict[str, str] = {}
    for o in [*overrides, *fixed]:
        key = o.partition("=")[0].lstrip("+~")
        if "=" not in o or key.startswith(BOOKKEEPING) or key in seen:
            continue
        seen[key] = o.lstrip("+~")
    return " ".join(seen.values()) or "(defaults)"


# The scores a person looks at first, in order: each evaluator's declared headlines (registry order; not
# the optional ones, nor those that arrive after the sweep), then the cell's own losses. MLflow lists metrics
# by name (capitals before small letters), so aliases under "Headline/<n>_" come before the data bookkeeping
# (data/contamination/...) in the run page, the compare page and its default plot.
OWN_HEADLINES = ("eval/loss", "train/final_loss")


def headline_keys() -> list[str]:
    from jsweep.eval.declaration import headlines

    return [h.metric for h in headlines() if h.summary and not h.optional] + list(OWN_HEADLINES)


def headline_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for i, key in enumerate(headline_keys(), 1):
        value = metrics.get(key)
        if isinstance(value, (int, float)) and value == value:
            out[f"Headline/{i}_{key}"] = float(value)
    return out


# The runs table opens on MLflow's default columns (source, models, dataset) with child runs folded
# under their parent. A shared view (an experiment tag MLflow's UI reads from ?viewStateShareKey=...)
# opens it on the sweep's cells with the grid axes and headline scores as columns.
SHARED_VIEW_TAG = "mlflow.sharedViewState."
LATEST_VIEW = "jsweep-latest"


def column(kind: str, key: str) -> str:
    return f"{kind}.`{key}`"


def shared_view(sweep_id: str, axes: Iterable[str], metric_keys: Iterable[str]) -> dict[str, Any]:
    """The view state of a sweep's runs table: its cells only, axes and headline metrics as columns,
    sorted by the first headline score."""
    params = ["model", "dataset", "method", "lr"]
    params += [
        a.split("@")[0].lstrip("+~")
        for a in axes
        if a.split("@")[0].lstrip("+~") not in params and not a.startswith(BOOKKEEPING)
    ]
    headline = sorted(k for k in metric_keys if k.startswith("Headline/"))
    columns = [column("params", p) for p in params] + [column("metrics", m) for m in headline]
    view: dict[str, Any] = {
        "searchFilter": f'tags.`jsweep.sweep_id` = "{sweep_id}" and tags.`jsweep.kind` = "cell"',
        "selectedColumns": columns,
        "runsHiddenMode": "SHOW_ALL",
        "columnOrder": [],
        "columnWidths": {c: 190 for c in columns if c.startswith("metrics.")},
    }
    if headline:
        view["orderByKey"] = column("metrics", headline[0])
        view["orderByAsc"] = headline[0].endswith("loss")
    return view


def view_url(base: str, experiment_id: str, key: str = LATEST_VIEW) -> str:
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?viewStateShareKey={key}"
