"""Build lm-evaluation-harness tasks for JGLUE from code (no TaskManager, no hub access unless asked).

Two prompt styles:

- ``leaderboard``: the harness's own ``tasks/japanese_leaderboard/ja_leaderboard_<task>.yaml``,
  loaded from the installed lm-eval (so prompts follow the installed harness version);
- ``jp_stable``: JP-Stable prompt versions 0.2 / 0.3 (:mod:`jsweep.eval.jglue.jp_stable`).

In both, only the data fields are replaced (local rows through ``custom_dataset``, or the hub
dataset with ``hub``). JSQuAD is scored as each style's reference scores it: ``jp_stable`` by
:mod:`.metrics` (JP-Stable's exact match and MeCab-word F1, and JGLUE's character F1, best over all
gold answers), ``leaderboard`` by the harness YAML's own metric (exact match against the first
gold answer, whitespace removed). Imports lm_eval: use from the evaluator at scoring time only.
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from jsweep.errors import ConfigError
from jsweep.eval.jglue import jp_stable
from jsweep.eval.jglue import metrics as jsquad_metrics
from jsweep.eval.jglue.data import HUB_CONFIG, HUB_DATASET

STYLES = ("jp_stable", "leaderboard")


def harness_version() -> str:
    import lm_eval

    return str(lm_eval.__version__)


def leaderboard_yaml(task: str) -> Path:
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or spec.origin is None:
        raise ConfigError("eval.jglue needs lm-evaluation-harness: pip install 'lm-eval>=0.4.9'")
    path = Path(spec.origin).parent / "tasks" / "japanese_leaderboard" / f"ja_leaderboard_{task}.yaml"
    if not path.exists():
        raise ConfigError(
            f"prompt_style=leaderboard needs the harness's japanese_leaderboard tasks, "
            f"not in this lm-eval ({path} missing); upgrade lm-eval or use prompt_style=jp_stable"
        )
    return path


def load_task_yaml(path: Path) -> dict[str, Any]:
    try:
        from lm_eval.tasks._yaml_loader import load_yaml
    except ImportError:  # lm-eval < 0.4.10
        from lm_eval.utils import load_yaml_config

        return load_yaml_config(yaml_path=str(path))
    return load_yaml(path)


def leaderboard_config(task: str) -> dict[str, Any]:
    """The harness's ``ja_leaderboard_<task>`` config, as loaded from its YAML (functions resolved)."""
    cfg = load_task_yaml(leaderboard_yaml(task))
    cfg.pop("task", None)
    cfg.pop("tag", None)
    cfg.pop("group", None)
    cfg["metadata"] = {
        **(cfg.get("metadata") or {}),
        "prompt_style": "leaderboard",
        "source": f"lm_eval/tasks/japanese_leaderboard/ja_leaderboard_{task}.yaml (lm-eval {harness_version()})",
    }
    return cfg


def prompt_config(task: str, style: str, version: str | None = None, jnli_version: str = "1.1") -> dict[str, Any]:
    """The TaskConfig fields of ``task`` in ``style`` before data fields are set (JSQuAD scoring included)."""
    if style == "leaderboard":
        return leaderboard_config(task)  # the harness's own prompts and metrics
    if style != "jp_stable":
        raise ConfigError(f"prompt_style must be one of {', '.join(STYLES)}, got {style!r}")
    if version not in jp_stable.VERSIONS:
        raise ConfigError(
            f"JP-Stable prompt version of {task} must be one of {', '.join(jp_stable.VERSIONS)}, got {version!r}"
        )
    cfg = copy.deepcopy(jp_stable.config(task, version, jnli_version))
    if task == "jsquad":
        cfg["process_results"] = jsquad_metrics.process_results
        cfg["metric_list"] = copy.deepcopy(jsquad_metrics.METRIC_LIST)
    return cfg


def _dataset_from_rows(splits: dict[str, list[dict[str, Any]]], **_: Any):
    import datasets

    return datasets.DatasetDict({name: datasets.Dataset.from_list(rows) for name, rows in splits.items()})


def with_data(
    cfg: dict[str, Any], task: str, splits: dict[str, list[dict[str, Any]]] | None, num_fewshot: int
) -> dict[str, Any]:
    """Set the data fields: local ``splits`` (hub rows; "train" optional) or, with None, the hub dataset.

    Few-shot examples come from train. Without a train split they come from the scored split with
    the scored document itself excluded (the harness excludes it when fewshot_split == test_split).
    """
    cfg = dict(cfg)
    for key in ("dataset_path", "dataset_name", "dataset_kwargs", "custom_dataset"):
        cfg.pop(key, None)
    if splits is None:
        cfg.update(
            dataset_path=HUB_DATASET,
            dataset_name=HUB_CONFIG[task],
            training_split="train",
            validation_split="validation",
            test_split=None,
            fewshot_split="train",
        )
    else:
        cfg["custom_dataset"] = partial(_dataset_from_rows, splits)
        if "train" in splits:
            cfg.update(training_split="train", validation_split="validation", test_split=None, fewshot_split="train")
        else:
            cfg.update(
                training_split=None,
                validation_split=None,
                test_split="validation",
                fewshot_split="validation" if num_fewshot > 0 else None,
            )
    cfg["num_fewshot"] = int(num_fewshot)
    return cfg


def answer_token_budget(tokenizer: Any) -> Callable[[dict[str, Any]], int]:
    """JP-Stable JSQuAD's DYNAMIC_MAX_LENGTH: generate at most as many tokens as the longest gold answer."""

    def budget(doc: dict[str, Any]) -> int:
        return max([len(tokenizer.encode(a, add_special_tokens=False)) for a in doc["answers"]["text"]] + [1])

    return budget


def make_task(
    name: str,
    cfg: dict[str, Any],
    *,
    fewshot_seed: int | None = 1234,
    max_gen_toks: int | Callable[[dict[str, Any]], int] | None = None,
):
    """A ConfigurableTask for ``cfg`` (with data fields set); ``max_gen_toks`` caps generation per doc."""
    from lm_eval.api.task import ConfigurableTask

    class JGlueTask(ConfigurableTask):
        def construct_requests(self, doc, ctx, **kwargs):
            inst = super().construct_requests(doc, ctx, **kwargs)
            if max_gen_toks is not None and self.OUTPUT_TYPE == "generate_until":
                inst.arguments[1]["max_gen_toks"] = max_gen_toks(doc) if callable(max_gen_toks) else int(max_gen_toks)
            return inst

    task = JGlueTask(config={**cfg, "task": name})
    task.set_fewshot_seed(seed=fewshot_seed)
    return task


def dump_config(task: Any) -> dict[str, Any]:
    """The resolved task config as JSON-able data (functions by qualified name, data function dropped)."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items() if k != "custom_dataset"}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if isinstance(value, (str, int, float, bool)) or value is None:
            return value
        if callable(value):
            fn = getattr(value, "func", value)
            return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
        if hasattr(value, "__dataclass_fields__"):
            return clean({k: getattr(value, k) for k in value.__dataclass_fields__})
        return str(value)

    cfg = task.config
    return clean({k: getattr(cfg, k) for k in cfg.__dataclass_fields__ if getattr(cfg, k) is not None})
