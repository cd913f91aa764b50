"""What a dataset loader is. Registered by name in jsweep.registries.LOADERS."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol, TypeVar

from jsweep.data.records import LoadReport, Record
from jsweep.data.sources import Row

RecordKind = Literal["sft", "preference"]
F = TypeVar("F", bound=Callable[..., Any])


class Loader(Protocol):
    """Turn upstream rows into records: Examples (conversations, ``records == "sft"``), or
    PreferenceExamples (prompt, chosen, rejected; ``records == "preference"``) for DPO-style trainers.
    Raise ``row.error(..., field=..., kind=...)`` (a DataError naming file, record and field) for a bad
    record unless ``on_error == "skip"``, in which case count it with ``report.drop(reason, message)``.
    ``convert_rows`` in jsweep.data.loaders does that for per-row formats. Options: ``field_map``
    (dataset.field_map) is always passed; loaders that do not read it take ``**_``.

    A loader declares itself with :func:`loader`: ``records`` (what it yields) and ``field_map_keys``
    (the dataset.field_map keys it reads, key -> description; empty when it reads none), so the
    planner checks a config against them without reading any data."""

    records: RecordKind
    field_map_keys: Mapping[str, str]

    def __call__(self, rows: list[Row], *, on_error: str, report: LoadReport, **options: Any) -> list[Record]: ...


def loader(*, records: RecordKind = "sft", field_map: Mapping[str, str] | None = None) -> Callable[[F], F]:
    """Declare a loader function's record kind and the dataset.field_map keys it reads."""
    if records not in ("sft", "preference"):
        raise ValueError(f"records must be sft or preference, got {records!r}")

    def declare(fn: F) -> F:
        # attributes of the function itself (declared by the Loader protocol): mypy types a function's
        # attributes from its signature only, so each assignment needs its ignore
        fn.records = records  # type: ignore[attr-defined]
        fn.field_map_keys = dict(field_map or {})  # type: ignore[attr-defined]
        return fn

    return declare
