"""One (non-mixture) dataset: its source, its records, its loaded data and its config problems.

The same four functions exist for a mixture in :mod:`jsweep.data.mixture`; :mod:`jsweep.data.load`
picks one of the two (the only place that tells them apart).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jsweep import registries
from jsweep.data.budget import budget_examples, subset, take
from jsweep.data.records import LoadReport, Record, digest_examples, is_preference
from jsweep.data.sources import Source, read_rows, resolve_source
from jsweep.errors import DataError


@dataclass
class LoadedData:
    examples: list[Record]
    report: LoadReport
    source: Source
    digest: str  # content digest of the examples actually used (after subsetting and budgets)
    name: str = ""  # the dataset's name (dataset.name)
    components: dict[str, dict[str, Any]] = field(default_factory=dict)  # a mixture's parts (provenance)
    n_requested: int | None = None  # dataset.n when it was more than a shipped fixture holds (capped, labelled)

    @property
    def records(self) -> str:
        """What the records are: ``preference`` (DPO pairs) or ``sft`` (conversations)."""
        return "preference" if is_preference(self.examples) else "sft"

    def provenance(self) -> dict[str, Any]:
        out = {
            "source": self.source.describe(),
            "kind": self.source.kind,
            "n": len(self.examples),
            "read": self.report.read,
            "dropped": sum(self.report.dropped.values()),
            "digest": self.digest,
            "records": self.records,
        }
        if self.source.revision:
            out["revision"] = self.source.revision
        if self.report.dropped:
            out["dropped_by_reason"] = dict(self.report.dropped)
        if self.report.unit != "records":
            out["unit"] = self.report.unit
        if self.n_requested is not None:
            out["n_requested"] = self.n_requested
            out["capped"] = (
                f"dataset.n={self.n_requested} capped to the {len(self.examples)} records of the shipped fixture"
            )
        if self.components:
            out["components"] = {
                n: {k: c.get(k) for k in ("source", "n", "available", "share", "weight", "upsample", "digest")}
                for n, c in self.components.items()
            }
        return out


def describe_drops(dropped: dict[str, int]) -> str:
    """'3 untranslated (ng_translation), 1 empty text (output)': the reasons, most frequent first."""
    return ", ".join(f"{n} {why}" for why, n in sorted(dropped.items(), key=lambda kv: (-kv[1], kv[0])))


def check_n(spec: Any, available: int, src: Source | None = None) -> None:
    """``dataset.n`` larger than the usable records is an error, never a silent cap: a learning curve
    whose points hold the same data would be labelled as different sizes."""
    n = getattr(spec, "n", None)
    if n is not None and n > available:
        where = f" of {src.describe()}" if src is not None else ""
        raise DataError(
            f"dataset.n={n} is more than the {available} usable records{where}: "
            f"choose n <= {available} (or leave dataset.n unset for all of them)"
        )


def source(spec: Any, *, builtin_model: bool) -> Source:
    """Where the dataset's rows come from (see :func:`jsweep.data.sources.resolve_source`)."""
    return resolve_source(spec, builtin_model=builtin_model)


def load_single(spec: Any, *, builtin_model: bool) -> LoadedData:
    """Source -> rows -> records -> ``dataset.n`` subset (no budget)."""
    src = resolve_source(spec, builtin_model=builtin_model)
    loader = registries.LOADERS.get(spec.loader)
    report = LoadReport(source=src.describe())
    rows = read_rows(src, on_error=spec.on_error, report=report)
    examples = loader(rows, on_error=spec.on_error, report=report, field_map=dict(spec.field_map or {}))
    if not examples:
        raise DataError(
            f"no usable records: read {report.read} {report.unit}, dropped them all "
            f"({describe_drops(report.dropped) or 'no reason recorded'})",
            file=src.location,
        )
    if src.kind != "fixture":
        check_n(spec, len(examples), src)
    used = subset(examples, spec.n, spec.seed)
    data = LoadedData(used, report, src, digest_examples(used), name=spec.name)
    if spec.n is not None and spec.n > len(used):
        # The shipped fixture stands in for the real data (a preset such as dolly_10k pins a size of the
        # real set): capped, and labelled so; a grid whose sizes all cap to the same data is refused by the planner.
        data.n_requested = spec.n
    return data


def load(spec: Any, *, builtin_model: bool) -> LoadedData:
    """The dataset's records, then an ``examples:N`` budget if set."""
    data = load_single(spec, builtin_model=builtin_model)
    count = budget_examples(getattr(spec, "budget", None))
    if count is not None:
        data.examples = take(data.examples, count, spec.seed)
        data.digest = digest_examples(data.examples)
    return data


def records(spec: Any) -> str:
    """``sft`` or ``preference``, as the dataset's loader declares (no data read)."""
    return registries.LOADERS.get(spec.loader).records


def problems(spec: Any, where: str = "dataset") -> list[str]:
    """The dataset's config problems that need no data: its loader, and the field-map keys that
    loader declares it reads."""
    if (problem := registries.LOADERS.problem(spec.loader, f"{where}.loader")) is not None:
        return [problem]
    out = []
    if spec.components:
        out.append(
            f"{where}.components is only read by loader mixture (dataset '{spec.name}' uses loader {spec.loader})"
        )
    if spec.field_map:
        keys = registries.LOADERS.get(spec.loader).field_map_keys
        if not keys:
            readers = [
                n for n in registries.LOADERS.names() if getattr(registries.LOADERS.get(n), "field_map_keys", None)
            ]
            out.append(
                f"{where}.field_map is only read by the {', '.join(readers[:-1])} and {readers[-1]} loaders "
                f"(dataset '{spec.name}' uses loader {spec.loader})"
            )
        else:
            unknown = sorted(set(spec.field_map) - set(keys))
            if unknown:
                out.append(
                    f"unknown key '{where}.field_map.{unknown[0]}' for loader {spec.loader} "
                    f"(valid keys: {', '.join(keys)})"
                )
    return out
