"""Load a dataset spec into records: resolve the source, read rows, convert, subset, budget.

This is what both the planner (pre-flight validation) and the cell (training) call, so a
malformed record is reported before any GPU work starts. Records are Examples (instruction
data) or PreferenceExamples (DPO pairs), depending on the loader.

A dataset is one dataset (:mod:`jsweep.data.single`) or a mixture of presets
(``loader: mixture``, :mod:`jsweep.data.mixture`); both offer ``source``, ``load``, ``records``
and ``problems``, and :func:`_kind` here is the one place that picks between them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from jsweep.data import mixture, single
from jsweep.data.budget import subset
from jsweep.data.records import Record
from jsweep.data.single import LoadedData, check_n, describe_drops, load_single
from jsweep.data.sources import Source, check_source
from jsweep.errors import DataError

__all__ = [
    "LoadedData",
    "check_n",
    "dataset_problems",
    "dataset_records",
    "describe_drops",
    "has_hub_source",
    "load_examples",
    "load_single",
    "preflight",
    "resolve_source",
    "split_train_eval",
    "subset",
]


def _kind(spec: Any) -> ModuleType:
    """The module that handles this dataset: jsweep.data.mixture for ``loader: mixture``, else jsweep.data.single."""
    return mixture if mixture.is_mixture(spec) else single


def resolve_source(spec: Any, *, builtin_model: bool) -> Source:
    """Where a DatasetSpec's records come from: ``source`` = auto | fixture | hub | path (see
    :func:`jsweep.data.sources.resolve_source`); for a mixture a Source of kind ``mixture`` whose
    ``parts`` are its components' Sources."""
    return _kind(spec).source(spec, builtin_model=builtin_model)


def load_examples(spec: Any, *, builtin_model: bool) -> LoadedData:
    """Load a DatasetSpec: a single dataset or a mixture, with ``dataset.n`` and an ``examples:N`` budget."""
    return _kind(spec).load(spec, builtin_model=builtin_model)


def dataset_records(spec: Any) -> str:
    """What a dataset's records are, from its config alone (no data read): ``sft`` (conversations),
    ``preference`` (DPO pairs), or ``mixed`` (a mixture of both, which :func:`dataset_problems` refuses).
    Raises ConfigError for a config :func:`dataset_problems` reports."""
    return _kind(spec).records(spec)


def dataset_problems(spec: Any, where: str = "dataset") -> list[str]:
    """A dataset's config problems that need no data: its loader, the field-map keys that loader
    reads, and a mixture's components."""
    return _kind(spec).problems(spec, where)


def has_hub_source(src: Source) -> bool:
    if src.parts:
        return any(has_hub_source(c) for c in src.parts.values())
    return src.kind == "hub"


def preflight(spec: Any, *, builtin_model: bool) -> dict[str, Any]:
    """Pre-flight check of a dataset (what the planner needs): raise DataError/ConfigError for a
    missing source or a bad record; return the provenance. Local data (fixtures, paths, mixtures of
    them) is read and validated in full; hub data is only checked to be reachable (or cached
    when offline), not downloaded."""
    src = resolve_source(spec, builtin_model=builtin_model)
    issue = check_source(src)
    if issue:
        raise DataError(issue)
    if has_hub_source(src):
        return {"source": src.describe(), "kind": src.kind if src.parts else "hub"}
    return load_examples(spec, builtin_model=builtin_model).provenance()


def split_train_eval(examples: Sequence[Record], fraction: float, seed: int) -> tuple[list[Record], list[Record]]:
    """Seeded held-out split; at least one eval example when fraction > 0 and there are 2+ examples.

    Works for Examples and PreferenceExamples alike. Copies of one record (upsampled mixtures,
    ``examples:N`` budgets: ``meta["repeat_of"]``) stay on one side, so no held-out record is
    also trained on; with no copies this is a plain seeded split of the records.
    """
    if fraction <= 0 or len(examples) < 2:
        return list(examples), []
    groups: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(ex.meta.get("repeat_of", ex.id) if ex.meta else ex.id, []).append(i)
    keys = list(groups)
    if len(keys) < 2:
        return list(examples), []
    order = list(range(len(keys)))
    random.Random(seed + 1).shuffle(order)
    k = max(1, round(len(examples) * fraction))
    held: set[int] = set()
    for g in order:
        if len(held) >= k:
            break
        held.update(groups[keys[g]])
    if len(held) == len(examples):  # one group held everything back: keep the first group for training
        held -= set(groups[keys[order[0]]])
    return ([e for i, e in enumerate(examples) if i not in held], [e for i, e in enumerate(examples) if i in held])
