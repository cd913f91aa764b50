"""Where records come from: shipped fixtures, a local path, or the Hugging Face hub.

Rows keep their origin (file and line or index) so every error can name it. Local files may be
JSON (an array, or an object holding one), JSON lines, Parquet, or a directory of those.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsweep.errors import DataError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SUFFIXES = (".json", ".jsonl", ".parquet")
# Local-only presets whose path defaults to an environment variable (conf/dataset/<name>.yaml: ${oc.env:...}).
ENV_PATHS = {"ichikara": "JSWEEP_ICHIKARA_PATH", "jaster": "JSWEEP_JASTER_PATH", "synthetic": "JSWEEP_SYNTHETIC_PATH"}


@dataclass
class Row:
    data: dict[str, Any]
    file: str
    index: int  # 1-based line number for JSON lines, 0-based record index otherwise
    line_based: bool = False

    @property
    def where(self) -> str:
        return f"{self.file}: {'line' if self.line_based else 'record'} {self.index}"

    def error(self, message: str, *, field: str | None = None, kind: str | None = None) -> DataError:
        return DataError(
            message,
            file=self.file,
            record=f"line {self.index}" if self.line_based else self.index,
            field=field,
            kind=kind,
        )


@dataclass
class Source:
    kind: str  # fixture | path | hub, or mixture (its parts in extra["components"])
    location: str  # file or directory path, or hub id
    revision: str | None = None
    hub_file: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def parts(self) -> dict[str, Source]:
        """The Sources a composite source (a mixture) is made of; empty for one dataset."""
        return self.extra.get("components", {})

    def describe(self) -> str:
        return f"{self.location}@{self.revision}" if self.revision else self.location


def resolve_source(spec: Any, *, builtin_model: bool) -> Source:
    """Pick the source of a DatasetSpec: ``source`` = auto | fixture | hub | path.

    auto: ``path`` if set; else the shipped fixture when the model is builtin (the embedded
    default); else the hub id. A dataset with no hub id (ichikara) needs ``dataset.path``.
    One dataset only: a mixture's Source (its components' Sources) comes from
    :func:`jsweep.data.load.resolve_source`.
    """
    kind = spec.source
    if kind == "auto":
        kind = "path" if spec.path else ("fixture" if builtin_model and spec.fixture else "hub")
    if kind == "path":
        if not spec.path:
            raise DataError(f"dataset '{spec.name}' has source=path but no dataset.path")
        return Source("path", str(Path(os.path.expanduser(spec.path)).resolve()))
    if kind == "fixture":
        if not spec.fixture:
            raise DataError(f"dataset '{spec.name}' ships no fixture; set dataset.path or dataset.source=hub")
        return Source("fixture", str(FIXTURES / spec.fixture))
    if not spec.hub_id:
        env = f" or ${ENV_PATHS[spec.name]}" if spec.name in ENV_PATHS else ""
        raise DataError(
            f"dataset '{spec.name}' is not on the hub: set dataset.path=/path/to/{spec.name}{env} "
            f"(a local copy in its upstream format)"
        )
    return Source("hub", spec.hub_id, revision=spec.revision, hub_file=spec.hub_file)


def check_source(src: Source) -> str | None:
    """Cheap pre-flight check (no download): a problem description, or None."""
    if src.parts:
        for name, comp in src.parts.items():
            problem = check_source(comp)
            if problem:
                return f"{src.kind} component '{name}': {problem}"
        return None
    if src.kind in ("path", "fixture"):
        if not Path(src.location).exists():
            return f"dataset path not found: {src.location}"
        return None
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        from huggingface_hub import scan_cache_dir  # light: no torch

        try:
            cached = {r.repo_id for r in scan_cache_dir().repos if r.repo_type == "dataset"}
        except Exception:
            cached = set()
        if src.location not in cached:
            return (
                f"dataset {src.location} is not in the local hub cache and HF_HUB_OFFLINE=1; "
                f"download it on a machine with network or set dataset.path"
            )
    return None


def _rows_from_file(path: Path, on_error: str = "raise", report: Any = None) -> list[Row]:
    name = str(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return [Row(r, name, i) for i, r in enumerate(pq.read_table(path).to_pylist())]
    text = path.read_text(encoding="utf-8")
    obj: Any = None
    if path.suffix != ".jsonl":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            if exc.msg != "Extra data":  # "Extra data" = several objects: JSON lines named .json (JGLUE does this)
                raise DataError(
                    f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})", file=name
                ) from None
    if obj is None:
        rows = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(
                        f"not valid JSON ({exc.msg} at column {exc.colno})",
                        file=name,
                        record=f"line {lineno}",
                        kind="not valid JSON",
                    ) from None
                if not isinstance(rec, dict):
                    raise DataError(
                        f"expected a JSON object, got {type(rec).__name__}",
                        file=name,
                        record=f"line {lineno}",
                        kind="not a JSON object",
                    )
            except DataError as exc:
                # A broken line is one bad record: on_error=skip drops and counts it like any other.
                if on_error != "skip" or report is None:
                    raise
                report.read += 1
                report.drop(exc.kind, str(exc))
                continue
            rows.append(Row(rec, name, lineno, line_based=True))
        return rows
    if isinstance(obj, dict):
        lists = [v for v in obj.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise DataError("expected a JSON array of records (or an object holding one)", file=name)
        obj = lists[0]
    if not isinstance(obj, list):
        raise DataError("expected a JSON array of records", file=name)
    rows = []
    for i, rec in enumerate(obj):
        if not isinstance(rec, dict):
            err = DataError(
                f"expected a JSON object, got {type(rec).__name__}", file=name, record=i, kind="not a JSON object"
            )
            if on_error != "skip" or report is None:
                raise err
            report.read += 1
            report.drop(err.kind, str(err))
            continue
        rows.append(Row(rec, name, i))
    return rows


def read_rows(src: Source, *, on_error: str = "raise", report: Any = None) -> list[Row]:
    """Read every row of a source. Hub sources go through ``datasets`` (honours HF_HUB_OFFLINE).

    With ``on_error="skip"`` and a LoadReport, a line of JSON lines that does not parse (or is not
    an object) is dropped and counted in the report instead of stopping the load. A JSON array
    file that does not parse has no records to keep, so it always raises.
    """
    if src.kind == "hub":
        import datasets

        kwargs: dict[str, Any] = {"revision": src.revision}
        if src.hub_file:
            kwargs["data_files"] = src.hub_file
        try:
            ds = datasets.load_dataset(src.location, split="train", **kwargs)
        except Exception as exc:  # network, missing cache, bad id: report in one line
            raise DataError(
                f"could not load from the hub ({type(exc).__name__}: {str(exc).splitlines()[0]})", file=src.location
            ) from None
        return [Row(dict(r), src.location, i) for i, r in enumerate(ds)]
    path = Path(src.location)
    if not path.exists():
        raise DataError("file not found", file=str(path))
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
        if not files:
            raise DataError(f"no {'/'.join(SUFFIXES)} files in directory", file=str(path))
        return [row for f in files for row in _rows_from_file(f, on_error, report)]
    return _rows_from_file(path, on_error, report)
