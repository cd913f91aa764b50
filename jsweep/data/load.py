"""Load a dataset spec into records: resolve the source, read rows, convert, subset, budget.

This is what both the planner (pre-flight validation) and the cell (training) call, so a
malformed record is reported before any GPU work starts. Records are Examples (instruction
data) or PreferenceExamples (DPO pairs), depending on the loader; a mixture
(``loader: mixture``, see :mod:`jsweep.data.mixture`) loads and mixes other presets.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Sequence

from jsweep import registries
from jsweep.data.records import LoadReport, Record, digest_examples, is_preference
from jsweep.data.sources import Source, check_source, read_rows, resolve_source
from jsweep.errors import DataError


@dataclass
class LoadedData:
    examples: list[Record]
    report: LoadReport
    source: Source
    digest: str            # content digest of the examples actually used (after subsetting and budgets)
    name: str = ""         # the dataset's name (dataset.name)
    components: dict[str, dict[str, Any]] = field(default_factory=dict)   # a mixture's parts (provenance)
    n_requested: int | None = None   # dataset.n when it was more than a shipped fixture holds (capped, labelled)

    @property
    def records(self) -> str:
        """What the records are: ``preference`` (DPO pairs) or ``sft`` (conversations)."""
        return "preference" if is_preference(self.examples) else "sft"

    def provenance(self) -> dict[str, Any]:
        out = {"source": self.source.describe(), "kind": self.source.kind, "n": len(self.examples),
               "read": self.report.read, "dropped": sum(self.report.dropped.values()), "digest": self.digest,
               "records": self.records}
        if self.source.revision:
            out["revision"] = self.source.revision
        if self.report.dropped:
            out["dropped_by_reason"] = dict(self.report.dropped)
        if self.report.unit != "records":
            out["unit"] = self.report.unit
        if self.n_requested is not None:
            out["n_requested"] = self.n_requested
            out["capped"] = f"dataset.n={self.n_requested} capped to the {len(self.examples)} records of the shipped fixture"
        if self.components:
            out["components"] = {n: {k: c.get(k) for k in ("source", "n", "available", "share", "weight",
                                                            "upsample", "digest")}
                                 for n, c in self.components.items()}
        return out


def subset(examples: list[Any], n: int | None, seed: int) -> list[Any]:
    """A reproducible random subset of ``n`` examples, in their original order (all of them when n
    is None or >= len). Subsets are nested: with the same seed, the subset of n is contained in the
    subset of any larger n (a learning curve adds data, it does not redraw it)."""
    if n is None or n >= len(examples):
        return list(examples)
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    return [examples[i] for i in sorted(order[:n])]


def describe_drops(dropped: dict[str, int]) -> str:
    """'3 untranslated (ng_translation), 1 empty text (output)': the reasons, most frequent first."""
    return ", ".join(f"{n} {why}" for why, n in sorted(dropped.items(), key=lambda kv: (-kv[1], kv[0])))


def check_n(spec: Any, available: int, src: Source | None = None) -> None:
    """``dataset.n`` larger than the usable records is an error, never a silent cap: a learning curve
    whose points hold the same data would be labelled as different sizes."""
    n = getattr(spec, "n", None)
    if n is not None and n > available:
        where = f" of {src.describe()}" if src is not None else ""
        raise DataError(f"dataset.n={n} is more than the {available} usable records{where}: "
                        f"choose n <= {available} (or leave dataset.n unset for all of them)")


def load_single(spec: Any, *, builtin_model: bool) -> LoadedData:
    """One (non-mixture) dataset: source -> rows -> records -> ``dataset.n`` subset."""
    src = resolve_source(spec, builtin_model=builtin_model)
    loader = registries.LOADERS.get(spec.loader)
    report = LoadReport(source=src.describe())
    rows = read_rows(src, on_error=spec.on_error, report=report)
    examples = loader(rows, on_error=spec.on_error, report=report, field_map=dict(spec.field_map or {}))
    if not examples:
        raise DataError(f"no usable records: read {report.read} {report.unit}, dropped them all "
                        f"({describe_drops(report.dropped) or 'no reason recorded'})", file=src.location)
    if src.kind != "fixture":
        check_n(spec, len(examples), src)
    used = subset(examples, spec.n, spec.seed)
    data = LoadedData(used, report, src, digest_examples(used), name=spec.name)
    if spec.n is not None and spec.n > len(used):
        # The shipped fixture stands in for the real data (a preset such as dolly_10k pins a size of the
        # real set): capped, and labelled so; a grid whose sizes all cap to the same data is refused by the planner.
        data.n_requested = spec.n
    return data


def load_examples(spec: Any, *, builtin_model: bool) -> LoadedData:
    """Load a DatasetSpec: a single dataset or a mixture, then an ``examples:N`` budget if set."""
    from jsweep.data.mixture import MIXTURE, budget_examples, load_mixture, take

    if spec.loader == MIXTURE:
        return load_mixture(spec, builtin_model=builtin_model)        # applies n / examples budget itself
    data = load_single(spec, builtin_model=builtin_model)
    count = budget_examples(getattr(spec, "budget", None))
    if count is not None:
        data.examples = take(data.examples, count, spec.seed)
        data.digest = digest_examples(data.examples)
    return data


def has_hub_source(src: Source) -> bool:
    if src.kind == "mixture":
        return any(has_hub_source(c) for c in src.extra.get("components", {}).values())
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
        return {"source": src.describe(), "kind": src.kind if src.kind == "mixture" else "hub"}
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
    k = max(1, int(round(len(examples) * fraction)))
    held: set[int] = set()
    for g in order:
        if len(held) >= k:
            break
        held.update(groups[keys[g]])
    if len(held) == len(examples):          # one group held everything back: keep the first group for training
        held -= set(groups[keys[order[0]]])
    return ([e for i, e in enumerate(examples) if i not in held], [e for i, e in enumerate(examples) if i in held])
